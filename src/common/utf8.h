/* utf8.h - strict UTF-8 validation, whole or incremental */
#ifndef CT_UTF8_H
#define CT_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when buf[0..len) is well-formed UTF-8 (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF). */
bool utf8_valid(const char *buf, size_t len);

/* Incremental validation for text split anywhere, even inside a code point
 * (WebSocket fragments). Start with utf8_init, feed pieces, then utf8_done. */
struct utf8_state {
    uint32_t need; /* continuation bytes still expected */
    uint32_t cp;   /* code point so far */
    uint32_t min;  /* smallest code point the lead byte allows */
};
void utf8_init(struct utf8_state *st);
/* Returns false as soon as the bytes cannot be a prefix of valid UTF-8. */
bool utf8_feed(struct utf8_state *st, const char *buf, size_t len);
/* True when everything fed so far ends on a code point boundary. */
bool utf8_done(const struct utf8_state *st);

#endif
