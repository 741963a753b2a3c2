/* names.h - user and room names */
#ifndef CT_NAMES_H
#define CT_NAMES_H

#include <stdbool.h>
#include <stddef.h>

#define NAME_USER_MAX 32
#define NAME_ROOM_MAX 64

/* A user name is [A-Za-z0-9_.-]{1,32}. */
bool names_user_valid(const char *s, size_t len);
/* Writes into out the name as it is compared: user names are one name
 * whatever the case of their letters ("ALICE1" is "alice1"), so this is
 * the name in lower case. `name` is a valid user name; out may be name. */
void names_user_fold(const char *name, char out[NAME_USER_MAX + 1]);
/* A room name is [a-z0-9_-]{1,64}. */
bool names_room_valid(const char *s, size_t len);

#endif
