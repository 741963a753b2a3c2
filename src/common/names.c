/* names.c - user and room names */
#include "names.h"

static bool user_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

static bool room_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

bool names_user_valid(const char *s, size_t len)
{
    size_t i;

    if (s == NULL || len == 0 || len > NAME_USER_MAX)
        return false;
    for (i = 0; i < len; i++)
        if (!user_char((unsigned char)s[i]))
            return false;
    return true;
}

void names_user_fold(const char *name, char out[NAME_USER_MAX + 1])
{
    size_t i;

    for (i = 0; i < NAME_USER_MAX && name[i] != '\0'; i++)
        out[i] =
            name[i] >= 'A' && name[i] <= 'Z' ? name[i] - 'A' + 'a' : name[i];
    out[i] = '\0';
}

bool names_room_valid(const char *s, size_t len)
{
    size_t i;

    if (s == NULL || len == 0 || len > NAME_ROOM_MAX)
        return false;
    for (i = 0; i < len; i++)
        if (!room_char((unsigned char)s[i]))
            return false;
    return true;
}
