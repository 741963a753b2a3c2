/* hist.h - a log-bucket latency histogram in the spirit of HdrHistogram:
 * constant relative error, fixed memory, cheap to record and to merge */
#ifndef CT_BENCH_HIST_H
#define CT_BENCH_HIST_H

#include <stdint.h>

/* Values are unsigned 64-bit (we record nanoseconds). Values below
 * 2^HIST_SUB_BITS are exact; above, each power of two is split into
 * 2^(HIST_SUB_BITS-1) equal buckets, so a reported value is at most
 * 1/128 (0.8 %) above the true one. */
#define HIST_SUB_BITS 8

struct hist;

/* A new empty histogram (about 60 KiB). Never NULL. */
struct hist *hist_new(void);
/* Accepts NULL. */
void hist_free(struct hist *h);
void hist_reset(struct hist *h);
void hist_record(struct hist *h, uint64_t v);
/* Adds every value of src to dst. */
void hist_merge(struct hist *dst, const struct hist *src);
uint64_t hist_count(const struct hist *h);
/* Exact smallest and largest values recorded; 0 when empty. */
uint64_t hist_min(const struct hist *h);
uint64_t hist_max(const struct hist *h);
double hist_mean(const struct hist *h);
/* The value at percentile p (0..100): the highest value of the bucket
 * holding the p-th percentile value, never above the exact maximum. 0 when
 * empty. */
uint64_t hist_percentile(const struct hist *h, double p);

/* For the unit of this histogram: the bucket of v, and the highest value
 * that falls in a bucket. Exposed for tests. */
unsigned hist_bucket_of(uint64_t v);
uint64_t hist_bucket_high(unsigned bucket);

#endif
