/* names.h - user and room names */
#ifndef CT_NAMES_H
#define CT_NAMES_H

#include <stdbool.h>
#include <stddef.h>

#define NAME_USER_MAX 32
#define NAME_ROOM_MAX 64

/* A user name is [A-Za-z0-9_.-]{1,32}. */
bool names_user_valid(const char *s, size_t len);
/* A room name is [a-z0-9_-]{1,64}. */
bool names_room_valid(const char *s, size_t len);

#endif
