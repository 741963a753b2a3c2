/* xmalloc.h - allocation that aborts on out-of-memory */
#ifndef CT_XMALLOC_H
#define CT_XMALLOC_H

#include <stddef.h>

/* These never return NULL: out of memory prints a message and aborts, so
 * callers need no NULL check (as tmux's xmalloc and redis's zmalloc). */
void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Frees each of the n strings and the array. Accepts NULL. */
void xfree_strings(char **v, size_t n);
/* Returns a newly allocated formatted string; the caller frees it. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
