/* utf8.c - strict UTF-8 validation (RFC 3629), whole or incremental */
#include "utf8.h"

void utf8_init(struct utf8_state *st)
{
    st->need = 0;
    st->cp = 0;
    st->min = 0;
}

/*
 * Each byte is checked against what the bytes before it allow, so a
 * sequence is rejected at the first byte that no valid text could contain:
 * an overlong or surrogate form is caught at its second byte (as the
 * Unicode "well-formed byte sequences" table does), not once it completes.
 */
bool utf8_feed(struct utf8_state *st, const char *buf, size_t len)
{
    const unsigned char *p = (const unsigned char *)buf;
    size_t i;

    for (i = 0; i < len; i++) {
        unsigned char c = p[i];

        if (st->need == 0) {
            if (c < 0x80)
                continue;
            if (c >= 0xC2 && c <= 0xDF) {
                st->need = 1;
                st->cp = c & 0x1F;
                st->min = 0x80;
            } else if (c >= 0xE0 && c <= 0xEF) {
                st->need = 2;
                st->cp = c & 0x0F;
                st->min = 0x800;
            } else if (c >= 0xF0 && c <= 0xF4) {
                st->need = 3;
                st->cp = c & 0x07;
                st->min = 0x10000;
            } else {
                return false; /* 0x80..0xC1 (stray or overlong), 0xF5.. */
            }
            continue;
        }
        if ((c & 0xC0) != 0x80)
            return false;
        st->cp = (st->cp << 6) | (c & 0x3F);
        st->need--;
        /* The value's top bits are known once the second byte is in: the
         * shortest form, surrogate and U+10FFFF checks can run on the
         * prefix shifted to full width. */
        {
            uint32_t lo = st->cp << (6 * st->need);
            uint32_t hi = lo | ((1u << (6 * st->need)) - 1);

            if (hi < st->min)
                return false;
            if (lo > 0x10FFFF)
                return false;
            if (lo >= 0xD800 && hi <= 0xDFFF)
                return false;
        }
    }
    return true;
}

bool utf8_done(const struct utf8_state *st)
{
    return st->need == 0;
}

bool utf8_valid(const char *buf, size_t len)
{
    struct utf8_state st;

    utf8_init(&st);
    return utf8_feed(&st, buf, len) && utf8_done(&st);
}
