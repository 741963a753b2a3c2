/* streamid.c - Redis stream ids: parse, compare, format */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "streamid.h"

/* Parses a run of decimal digits that fits 64 bits; -1 on an empty run,
 * a non-digit or overflow. */
static int parse_u64(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    size_t i;

    if (len == 0)
        return -1;
    for (i = 0; i < len; i++) {
        unsigned d;

        if (s[i] < '0' || s[i] > '9')
            return -1;
        d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int streamid_parse(const char *s, size_t len, struct streamid *out)
{
    struct streamid id = {0, 0};
    size_t dash;

    if (s == NULL)
        return -1;
    for (dash = 0; dash < len && s[dash] != '-'; dash++)
        ;
    if (parse_u64(s, dash, &id.ms) < 0)
        return -1;
    if (dash < len && parse_u64(s + dash + 1, len - dash - 1, &id.seq) < 0)
        return -1;
    *out = id;
    return 0;
}

int streamid_cmp(const struct streamid *a, const struct streamid *b)
{
    if (a->ms != b->ms)
        return a->ms < b->ms ? -1 : 1;
    if (a->seq != b->seq)
        return a->seq < b->seq ? -1 : 1;
    return 0;
}

char *decimal_put(char *p, uint64_t v)
{
    char digits[20];
    size_t i = sizeof(digits);

    do
        digits[--i] = (char)('0' + v % 10);
    while ((v /= 10) > 0);
    memcpy(p, digits + i, sizeof(digits) - i);
    return p + sizeof(digits) - i;
}

char *streamid_format(const struct streamid *id, char *buf)
{
    char *p = decimal_put(buf, id->ms);

    *p++ = '-';
    *decimal_put(p, id->seq) = '\0';
    return buf;
}

bool streamid_is_zero(const struct streamid *id)
{
    return id->ms == 0 && id->seq == 0;
}

struct streamid streamid_next(const struct streamid *id)
{
    struct streamid n = *id;

    if (n.seq < UINT64_MAX) {
        n.seq++;
    } else if (n.ms < UINT64_MAX) {
        n.ms++;
        n.seq = 0;
    }
    return n;
}

char *streamid_format_after(const struct streamid *id, char *buf)
{
    if (id->ms == UINT64_MAX && id->seq == UINT64_MAX) {
        strcpy(buf, "+");
        return buf;
    }
    buf[0] = '(';
    streamid_format(id, buf + 1);
    return buf;
}

void streamid_judge(const struct streamid *since,
                    const struct streamid_log *log, struct streamid_signal *out)
{
    static const struct streamid zero = {0, 0};

    out->verdict = STREAMID_FINE;
    out->id = zero;
    out->from = *since;
    if (!log->exists) {
        /* flushed, lost, or never written: every room starts at 0-0 */
        if (!streamid_is_zero(since)) {
            out->verdict = STREAMID_RESET;
            out->from = zero;
        }
        return;
    }
    if (streamid_cmp(since, &log->last) > 0) {
        out->verdict = STREAMID_RESET;
        out->id = out->from = log->last;
        return;
    }
    /* Trimming removes the oldest entries, so what was removed lies below
     * the oldest held, and a client older than that may lack some of it.
     * (Had it seen the entry right before the oldest held, it lacks none;
     * Redis cannot tell, so it is told, and finds nothing if it looks.) */
    if (log->removed == 0)
        return;
    if (log->length > 0 && streamid_cmp(since, &log->first) < 0) {
        out->verdict = STREAMID_TRUNCATED;
        out->id = log->first;
    } else if (log->length == 0 && streamid_cmp(since, &log->last) < 0) {
        out->verdict = STREAMID_TRUNCATED;
        out->id = streamid_next(&log->last);
        out->from = log->last;
    }
}
