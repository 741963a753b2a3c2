/* hist.c - a log-bucket latency histogram (see hist.h) */
#include "hist.h"

#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

#define SUB (1u << HIST_SUB_BITS)        /* exact values below this */
#define HALF (1u << (HIST_SUB_BITS - 1)) /* buckets per power of two above */
#define NBUCKETS (SUB + (64 - HIST_SUB_BITS) * HALF)

struct hist {
    uint64_t count;
    uint64_t min, max;
    long double sum;
    uint64_t b[NBUCKETS];
};

unsigned hist_bucket_of(uint64_t v)
{
    unsigned m, top;

    if (v < SUB)
        return (unsigned)v;
    m = 63u - (unsigned)__builtin_clzll(v);           /* >= HIST_SUB_BITS */
    top = (unsigned)(v >> (m - (HIST_SUB_BITS - 1))); /* in [HALF, SUB) */
    return SUB + (m - HIST_SUB_BITS) * HALF + (top - HALF);
}

uint64_t hist_bucket_high(unsigned bucket)
{
    unsigned m, top, shift;

    if (bucket < SUB)
        return bucket;
    m = (bucket - SUB) / HALF + HIST_SUB_BITS;
    top = (bucket - SUB) % HALF + HALF;
    shift = m - (HIST_SUB_BITS - 1);
    return (((uint64_t)top + 1) << shift) - 1;
}

struct hist *hist_new(void)
{
    return xcalloc(1, sizeof(struct hist));
}

void hist_free(struct hist *h)
{
    free(h);
}

void hist_reset(struct hist *h)
{
    memset(h, 0, sizeof(*h));
}

void hist_record(struct hist *h, uint64_t v)
{
    if (h->count == 0 || v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
    h->count++;
    h->sum += v;
    h->b[hist_bucket_of(v)]++;
}

void hist_merge(struct hist *dst, const struct hist *src)
{
    if (src->count == 0)
        return;
    if (dst->count == 0 || src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
    dst->count += src->count;
    dst->sum += src->sum;
    for (unsigned i = 0; i < NBUCKETS; i++)
        dst->b[i] += src->b[i];
}

uint64_t hist_count(const struct hist *h)
{
    return h->count;
}

uint64_t hist_min(const struct hist *h)
{
    return h->min;
}

uint64_t hist_max(const struct hist *h)
{
    return h->max;
}

double hist_mean(const struct hist *h)
{
    return h->count ? (double)(h->sum / h->count) : 0.0;
}

uint64_t hist_percentile(const struct hist *h, double p)
{
    uint64_t want, seen = 0;

    if (h->count == 0)
        return 0;
    if (p <= 0)
        return h->min;
    if (p >= 100)
        return h->max;
    /* the smallest value with at least p % of the values at or below it */
    want = (uint64_t)((p / 100.0) * (double)h->count + 0.999999);
    if (want == 0)
        want = 1;
    for (unsigned i = 0; i < NBUCKETS; i++) {
        seen += h->b[i];
        if (seen >= want) {
            uint64_t v = hist_bucket_high(i);
            return v > h->max ? h->max : v < h->min ? h->min : v;
        }
    }
    return h->max;
}
