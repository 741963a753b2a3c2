/* lock.c - one crosstalk-backup run at a time */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "lock.h"
#include "log.h"

/* KEYS[1] = lock, ARGV = {token, ttl ms}. */
static const char lock_renew_lua[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0";
static const char lock_release_lua[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('DEL', KEYS[1]) end return 0";

int64_t lock_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int lock_token(char *out)
{
    unsigned char b[16];
    size_t got = 0;
    ssize_t r;
    int i;

    while (got < sizeof(b)) {
        r = getrandom(b + got, sizeof(b) - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            log_error("getrandom: %s", strerror(errno));
            return -1;
        }
        got += (size_t)r;
    }
    for (i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
    return 0;
}

int lock_acquire(redisContext *c, struct lock *l, const char *key, int ttl_ms,
                 long long *left_ms)
{
    redisReply *r;
    int rc = -1;

    memset(l, 0, sizeof(*l));
    snprintf(l->key, sizeof(l->key), "%s", key);
    l->ttl_ms = ttl_ms;
    if (lock_token(l->token) < 0)
        return -1;
    r = redisCommand(c, "SET %s %s NX PX %d", l->key, l->token, ttl_ms);
    if (r == NULL) {
        log_error("redis SET %s NX: %s", l->key, c->errstr);
        return -1;
    }
    if (r->type == REDIS_REPLY_STATUS) {
        l->held = true;
        l->renewed_ms = lock_now_ms();
        rc = 1;
    } else if (r->type == REDIS_REPLY_NIL) {
        rc = 0;
    } else {
        log_error("redis SET %s NX: %s", l->key,
                  r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    }
    freeReplyObject(r);
    if (rc == 0) {
        *left_ms = -1;
        r = redisCommand(c, "PTTL %s", l->key);
        if (r != NULL && r->type == REDIS_REPLY_INTEGER)
            *left_ms = r->integer;
        if (r != NULL)
            freeReplyObject(r);
    }
    return rc;
}

int lock_refresh(redisContext *c, struct lock *l, bool force)
{
    redisReply *r;
    int64_t now = lock_now_ms();
    int rc = -1;

    if (!l->held)
        return -1;
    if (!force && now - l->renewed_ms < l->ttl_ms / 3)
        return 0;
    r = redisCommand(c, "EVAL %s 1 %s %s %d", lock_renew_lua, l->key, l->token,
                     l->ttl_ms);
    if (r == NULL) {
        log_error("redis: renewing %s: %s", l->key, c->errstr);
        return -1;
    }
    if (r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
        l->renewed_ms = now;
        rc = 0;
    } else if (r->type == REDIS_REPLY_INTEGER) {
        log_error("lost the lock %s (it expired after %d ms without renewal);"
                  " stopping",
                  l->key, l->ttl_ms);
        l->held = false;
    } else {
        log_error("redis: renewing %s: %s", l->key,
                  r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    }
    freeReplyObject(r);
    return rc;
}

void lock_renewed(struct lock *l)
{
    l->renewed_ms = lock_now_ms();
}

void lock_release(redisContext *c, struct lock *l)
{
    redisReply *r;

    if (!l->held)
        return;
    l->held = false;
    r = redisCommand(c, "EVAL %s 1 %s %s", lock_release_lua, l->key, l->token);
    if (r == NULL)
        log_warn("redis: releasing %s: %s (it expires by itself)", l->key,
                 c->errstr);
    else
        freeReplyObject(r);
}
