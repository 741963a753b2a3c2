/* streamid.h - Redis stream ids: parse, compare, format */
#ifndef CT_STREAMID_H
#define CT_STREAMID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "18446744073709551615-18446744073709551615" plus NUL */
#define STREAMID_STRLEN 42

struct streamid {
    uint64_t ms;
    uint64_t seq;
};

/* Parses "MS-SEQ" or "MS" (seq 0), digits only, no sign or space, each part
 * fitting 64 bits. Returns 0, or -1 for anything else. */
int streamid_parse(const char *s, size_t len, struct streamid *out);
/* -1, 0, 1 as a is before, equal to, after b. */
int streamid_cmp(const struct streamid *a, const struct streamid *b);
/* Writes "MS-SEQ" into buf (at least STREAMID_STRLEN bytes); returns buf. */
char *streamid_format(const struct streamid *id, char *buf);
bool streamid_is_zero(const struct streamid *id);

#endif
