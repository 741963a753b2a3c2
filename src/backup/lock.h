/* lock.h - one crosstalk-backup run at a time: a Redis key taken with
 * SET NX PX holding a random token, extended while the run works, and
 * deleted only by its holder */
#ifndef CT_LOCK_H
#define CT_LOCK_H

#include <stdbool.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "keys.h"

struct lock {
    char key[KEYS_MAX];
    char token[33];     /* 16 random bytes in hex */
    int ttl_ms;         /* the key's expiry, renewed by lock_refresh */
    int64_t renewed_ms; /* monotonic time of the last renewal */
    bool held;
};

/* Tries to take the lock `key` for `ttl_ms`. Returns 1 when taken; 0 when
 * another run holds it (*left_ms gets its remaining time, -1 if it has no
 * expiry); -1 on a Redis error (logged). */
int lock_acquire(redisContext *c, struct lock *l, const char *key, int ttl_ms,
                 long long *left_ms);

/* Renews the expiry if the lock is still ours, but only once a third of the
 * ttl has passed since the last renewal (always when `force`), so callers
 * may call it after every step. Returns 0, or -1 when the lock was lost (it
 * expired, and another run may hold it now) or Redis failed; both are
 * logged, and the caller should stop writing. */
int lock_refresh(redisContext *c, struct lock *l, bool force);

/* Records that a script that checked the token also renewed the expiry. */
void lock_renewed(struct lock *l);

/* Deletes the lock if it is still ours (compare-and-delete); a lock that
 * expired and was taken by another run is left alone. Accepts a lock that
 * is not held. */
void lock_release(redisContext *c, struct lock *l);

/* Milliseconds of a monotonic clock. */
int64_t lock_now_ms(void);

#endif
