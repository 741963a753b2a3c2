/* test_utf8.c - strict UTF-8, whole and fed piece by piece */
#include <string.h>

#include "tap.h"
#include "utf8.h"

struct vec {
    const char *name;
    const char *bytes;
    int valid;   /* whole string */
    int fail_at; /* byte index where feeding byte by byte first fails,
                  * -1 when every prefix is acceptable */
};

static const struct vec vecs[] = {
    {"ASCII", "hello", 1, -1},
    {"empty", "", 1, -1},
    {"2-byte e acute", "\xc3\xa9", 1, -1},
    {"3-byte euro", "\xe2\x82\xac", 1, -1},
    {"4-byte emoji", "\xf0\x9f\x98\x80", 1, -1},
    {"U+0080 lowest 2-byte", "\xc2\x80", 1, -1},
    {"U+07FF", "\xdf\xbf", 1, -1},
    {"U+0800 lowest 3-byte", "\xe0\xa0\x80", 1, -1},
    {"U+D7FF below surrogates", "\xed\x9f\xbf", 1, -1},
    {"U+E000 above surrogates", "\xee\x80\x80", 1, -1},
    {"U+FFFF", "\xef\xbf\xbf", 1, -1},
    {"U+10000 lowest 4-byte", "\xf0\x90\x80\x80", 1, -1},
    {"U+10FFFF highest", "\xf4\x8f\xbf\xbf", 1, -1},
    {"overlong '/' in 2 bytes (C0 AF)", "\xc0\xaf", 0, 0},
    {"overlong C1 BF", "\xc1\xbf", 0, 0},
    {"overlong NUL in 3 bytes", "\xe0\x80\x80", 0, 1},
    {"overlong U+07FF in 3 bytes", "\xe0\x9f\xbf", 0, 1},
    {"overlong in 4 bytes", "\xf0\x8f\xbf\xbf", 0, 1},
    {"surrogate U+D800", "\xed\xa0\x80", 0, 1},
    {"surrogate U+DFFF", "\xed\xbf\xbf", 0, 1},
    {"surrogate pair as CESU-8", "\xed\xa0\xbd\xed\xb8\x80", 0, 1},
    {"U+110000 (F4 90)", "\xf4\x90\x80\x80", 0, 1},
    {"F5 lead", "\xf5\x80\x80\x80", 0, 0},
    {"FF byte", "a\xff", 0, 1},
    {"FE byte", "\xfe", 0, 0},
    {"stray continuation", "a\x80", 0, 1},
    {"truncated 2-byte at end", "ab\xc3", 0, -1},
    {"truncated 3-byte at end", "\xe2\x82", 0, -1},
    {"truncated 4-byte at end", "\xf0\x9f\x98", 0, -1},
    {"lead then ASCII",
     "\xc3"
     "a",
     0, 1},
    {"3-byte lead then new lead", "\xe2\x82\xe2\x82\xac", 0, 2},
    {"4-byte lead then ASCII",
     "\xf0\x9f"
     "a",
     0, 2},
    {"5-byte form (F8)", "\xf8\x88\x80\x80\x80", 0, 0},
};

/* Feeds one byte at a time; returns the index of the first rejected byte,
 * or -1. */
static int fail_index(const char *s, size_t len)
{
    struct utf8_state st;
    size_t i;

    utf8_init(&st);
    for (i = 0; i < len; i++)
        if (!utf8_feed(&st, s + i, 1))
            return (int)i;
    return -1;
}

/* A second, differently built validator: decode whole sequences, then
 * check the value. */
static int reference_valid(const unsigned char *s, size_t len)
{
    size_t i = 0, k, n;
    unsigned long cp, min;

    while (i < len) {
        unsigned char c = s[i];

        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xE0) == 0xC0) {
            n = 1, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (i + n >= len)
            return 0;
        for (k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += n + 1;
    }
    return 1;
}

int main(void)
{
    struct utf8_state st;
    size_t i, split;

    for (i = 0; i < sizeof(vecs) / sizeof(vecs[0]); i++) {
        const struct vec *v = &vecs[i];
        size_t len = strlen(v->bytes);

        is_int(utf8_valid(v->bytes, len), v->valid, "whole: %s", v->name);
        is_int(fail_index(v->bytes, len), v->fail_at, "byte by byte: %s",
               v->name);
    }

    ok(utf8_valid("a\0b", 3), "U+0000 is valid UTF-8");
    ok(utf8_valid(NULL, 0), "NULL with length 0 is empty");

    /* A mixed string split at every position stays valid and only ends
     * on a boundary where the split is between code points. */
    {
        const char *s = "h\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80!";
        size_t len = strlen(s);
        int all = 1;

        for (split = 0; split <= len; split++) {
            utf8_init(&st);
            if (!utf8_feed(&st, s, split) ||
                !utf8_feed(&st, s + split, len - split) || !utf8_done(&st))
                all = 0;
        }
        ok(all, "mixed text split anywhere into two pieces is valid");
        utf8_init(&st);
        utf8_feed(&st, s, 2);
        ok(!utf8_done(&st), "not done inside a code point");
        utf8_feed(&st, s + 2, 1);
        ok(utf8_done(&st), "done after its last byte");
    }

    /* Random short strings biased towards UTF-8's interesting bytes: the
     * state machine, whole or split at a random point, agrees with the
     * reference, and a rejected string is rejected by byte-wise feeding
     * no later than its invalid tail allows. */
    {
        static const unsigned char pool[] = {
            'a',  0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0,
            0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xED,
            0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF};
        unsigned char s[8];
        unsigned seed = 12345;
        int agree = 1, split_agree = 1, prefix_ok = 1, runs;

        for (runs = 0; runs < 200000; runs++) {
            size_t len, j, cut;
            int want, got, fi;

            seed = seed * 1103515245u + 12345u;
            len = (seed >> 16) % 7;
            for (j = 0; j < len; j++) {
                seed = seed * 1103515245u + 12345u;
                s[j] = pool[(seed >> 16) % sizeof(pool)];
            }
            want = reference_valid(s, len);
            got = utf8_valid((const char *)s, len);
            if (want != got && agree) {
                agree = 0;
                diag("disagree on %zu bytes starting %02x", len, s[0]);
            }
            seed = seed * 1103515245u + 12345u;
            cut = len ? (seed >> 16) % (len + 1) : 0;
            utf8_init(&st);
            got = utf8_feed(&st, (const char *)s, cut) &&
                  utf8_feed(&st, (const char *)s + cut, len - cut) &&
                  utf8_done(&st);
            if (want != got)
                split_agree = 0;
            /* Early detection: every prefix that feeding accepted can
             * still be completed into valid text (so a failure is never
             * reported later than it could be), and the byte it rejects
             * leaves no completion among these tails. */
            fi = fail_index((const char *)s, len);
            {
                static const unsigned char tails[][3] = {{0x80, 0x80, 0x80},
                                                         {0x90, 0x80, 0x80},
                                                         {0xA0, 0x80, 0x80},
                                                         {0xBF, 0xBF, 0xBF}};
                unsigned char t[12];
                size_t acc = fi >= 0 ? (size_t)fi : len, k, m, tl;

                for (k = 0; k <= acc; k++) {
                    int completes = 0;

                    memcpy(t, s, k);
                    for (m = 0; m < 4; m++)
                        for (tl = 0; tl <= 3; tl++) {
                            memcpy(t + k, tails[m], tl);
                            if (reference_valid(t, k + tl))
                                completes = 1;
                        }
                    if (!completes)
                        prefix_ok = 0;
                }
                if (fi >= 0) {
                    memcpy(t, s, (size_t)fi + 1);
                    for (m = 0; m < 4; m++)
                        for (tl = 0; tl <= 3; tl++) {
                            memcpy(t + fi + 1, tails[m], tl);
                            if (reference_valid(t, (size_t)fi + 1 + tl))
                                prefix_ok = 0;
                        }
                }
            }
        }
        ok(agree, "200000 random strings: utf8_valid = reference");
        ok(split_agree, "  and fed in two pieces too");
        ok(prefix_ok,
           "  accepted prefixes complete, rejected ones do not (fail-fast)");
    }

    utf8_init(&st);
    ok(utf8_done(&st), "fresh state is done");
    ok(!utf8_feed(&st, "\xed\xa0", 2), "surrogate prefix fails in one piece");
    utf8_init(&st);
    ok(utf8_feed(&st, "\xf4", 1), "F4 alone is a possible prefix");
    ok(!utf8_feed(&st, "\x90", 1), "F4 90 is not");
    return tap_done();
}
