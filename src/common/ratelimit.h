/* ratelimit.h - token buckets by key (an IP, a user), in process memory */
#ifndef CT_RATELIMIT_H
#define CT_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct ratelimit;

/* A table of buckets that each hold up to `burst` tokens and gain `rate`
 * tokens per `per_ms` milliseconds. */
struct ratelimit *ratelimit_new(double rate, int64_t per_ms, double burst);
void ratelimit_free(struct ratelimit *rl);

/* Takes one token from `key`'s bucket at time now_ms. Returns true when
 * there was one; otherwise false and *retry_s gets the whole seconds until
 * there will be (at least 1). Idle full buckets are forgotten as it goes,
 * so memory follows the keys active in the last refill period. */
bool ratelimit_take(struct ratelimit *rl, const char *key, int64_t now_ms,
                    int *retry_s);

#endif
