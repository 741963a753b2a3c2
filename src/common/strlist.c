/* strlist.c - comma-separated lists, in config values and headers */
#include "strlist.h"

#include <string.h>
#include <strings.h>

const char *strlist_next(const char **list, size_t *len)
{
    const char *item = *list;
    size_t n;

    if (item == NULL || *item == '\0')
        return NULL;
    n = strcspn(item, ",");
    *list = item[n] == ',' ? item + n + 1 : item + n;
    while (n > 0 && (*item == ' ' || *item == '\t')) {
        item++;
        n--;
    }
    while (n > 0 && (item[n - 1] == ' ' || item[n - 1] == '\t'))
        n--;
    *len = n;
    return item;
}

bool strlist_has(const char *list, const char *token)
{
    size_t tlen = strlen(token), len;
    const char *item;

    while ((item = strlist_next(&list, &len)) != NULL)
        if (len == tlen && strncasecmp(item, token, tlen) == 0)
            return true;
    return false;
}
