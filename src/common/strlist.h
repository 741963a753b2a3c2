/* strlist.h - comma-separated lists, in config values and headers */
#ifndef CT_STRLIST_H
#define CT_STRLIST_H

#include <stdbool.h>
#include <stddef.h>

/* Steps through the comma-separated `*list`: returns its next item with
 * blanks (spaces, tabs) trimmed, sets *len to the item's length (0 for an
 * empty item) and moves *list past it. Returns NULL at the end. */
const char *strlist_next(const char **list, size_t *len);

/* True when the comma-separated `list` has an item equal to `token` in any
 * case (a header's tokens: "Connection: keep-alive, Upgrade"). A NULL list
 * has none. */
bool strlist_has(const char *list, const char *token);

#endif
