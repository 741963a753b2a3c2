/* fuzz_utf8.c - UTF-8 validation whole and fed in pieces (any split must
 * give the same answer), checked against the Unicode table of well-formed
 * byte sequences (Table 3-7) written out a second way */
#include <stdbool.h>

#include "fuzz.h"
#include "utf8.h"

/* Table 3-7: for a lead byte, how many bytes follow and the range of the
 * first of them (the rest are always 80..BF). false for a byte that
 * cannot start a character. */
static bool ref_lead(unsigned char b, int *follow, unsigned char *lo,
                     unsigned char *hi)
{
    *lo = 0x80;
    *hi = 0xBF;
    if (b <= 0x7F)
        *follow = 0;
    else if (b >= 0xC2 && b <= 0xDF)
        *follow = 1;
    else if (b == 0xE0)
        *follow = 2, *lo = 0xA0;
    else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF)
        *follow = 2;
    else if (b == 0xED)
        *follow = 2, *hi = 0x9F;
    else if (b == 0xF0)
        *follow = 3, *lo = 0x90;
    else if (b >= 0xF1 && b <= 0xF3)
        *follow = 3;
    else if (b == 0xF4)
        *follow = 3, *hi = 0x8F;
    else
        return false;
    return true;
}

/* The index of the first byte no valid text could have there, or -1;
 * *complete says whether the bytes end on a character boundary. */
static long ref_first_bad(const unsigned char *p, size_t len, bool *complete)
{
    size_t i = 0;

    *complete = true;
    while (i < len) {
        int follow, k;
        unsigned char lo, hi;

        if (!ref_lead(p[i], &follow, &lo, &hi))
            return (long)i;
        for (k = 1; k <= follow; k++) {
            if (i + k >= len) {
                *complete = false;
                return -1;
            }
            if (k == 1 ? p[i + k] < lo || p[i + k] > hi
                       : (p[i + k] & 0xC0) != 0x80)
                return (long)(i + k);
        }
        i += (size_t)follow + 1;
    }
    return -1;
}

/* Feeds buf in pieces whose sizes come from `sizes` (cycled); returns
 * utf8_valid's answer for the whole. */
static bool feed_pieces(const char *buf, size_t len, const uint8_t *sizes,
                        size_t nsizes)
{
    struct utf8_state st;
    size_t off = 0, k = 0;
    bool ok = true;

    utf8_init(&st);
    while (off < len) {
        size_t n = nsizes > 0 ? sizes[k++ % nsizes] % 17 : 1;

        if (n == 0) {
            /* an empty piece changes nothing; then move on by one */
            ok = utf8_feed(&st, buf + off, 0);
            n = 1;
        }
        if (n > len - off)
            n = len - off;
        ok = ok && utf8_feed(&st, buf + off, n);
        if (!ok)
            break;
        off += n;
    }
    return ok && utf8_done(&st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    struct utf8_state st;
    bool whole, complete, ok;
    long bad, at = -1;
    size_t i, cut;

    whole = utf8_valid(buf, size);
    bad = ref_first_bad(data, size, &complete);
    FUZZ_CHECK(whole == (bad < 0 && complete),
               "utf8_valid says %d, the table says %d (first bad byte %ld)",
               whole, bad < 0 && complete, bad);

    /* Byte by byte, the first refusal is exactly at the first bad byte:
     * a sequence is refused as soon as it cannot be completed. */
    utf8_init(&st);
    for (i = 0; i < size; i++) {
        if (!utf8_feed(&st, buf + i, 1)) {
            at = (long)i;
            break;
        }
    }
    FUZZ_CHECK(at == bad, "byte by byte refused at %ld, first bad byte %ld", at,
               bad);
    if (at < 0)
        FUZZ_CHECK(utf8_done(&st) == complete, "done %d, complete %d",
                   utf8_done(&st), complete);

    /* Every split in two gives the whole answer (for a long input, 64 of
     * them: the byte-by-byte pass above already crossed every boundary). */
    for (i = 0; i <= size && i < 64; i++) {
        cut = size <= 64 ? i : (size_t)data[i] * size / 255;
        utf8_init(&st);
        ok = utf8_feed(&st, buf, cut);
        ok = ok && utf8_feed(&st, buf + cut, size - cut) && utf8_done(&st);
        FUZZ_CHECK(ok == whole, "split at %zu says %d, whole says %d", cut, ok,
                   whole);
    }

    /* Pieces of sizes 0..16 taken from the input itself. */
    FUZZ_CHECK(feed_pieces(buf, size, data, size) == whole,
               "pieces disagree with the whole");
    FUZZ_CHECK(feed_pieces(buf, size, data + size / 2, size - size / 2) ==
                   whole,
               "pieces disagree with the whole");
    return 0;
}
