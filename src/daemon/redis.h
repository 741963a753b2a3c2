/* redis.h - crosstalkd's connection to Redis: the asynchronous executor
 * (rexec.h) the store sends through, on the daemon's event base, with
 * reconnection, backoff and a bound on every command (redis_timeout_ms) */
#ifndef CT_REDIS_H
#define CT_REDIS_H

#include <stdbool.h>
#include <stdint.h>

struct event;
struct event_base;
struct config;
struct redis;
struct redisAsyncContext;

#define REDIS_BACKOFF_MIN_MS 100

/* Connects (and keeps reconnecting with backoff) to `url`, one Redis (one
 * item of redis_url: crosstalkd makes one per shard); cfg gives the
 * timeouts. Returns NULL, with a message logged, when the URL is
 * malformed. */
struct redis *redis_new(struct event_base *base, const char *url,
                        const struct config *cfg);
/* Disconnects; every command in flight is answered with no reply. Accepts
 * NULL. */
void redis_free(struct redis *r);
/* The executor to give store_new; it lives as long as `r`. Its send fails
 * (-1) while the connection is down; a command without an answer within
 * redis_timeout_ms has the connection dropped, every command in flight on
 * it answered with no reply, and the connection made again. */
struct rexec *redis_rexec(struct redis *r);
/* True when the command connection is up. */
bool redis_up(const struct redis *r);
/* At exit, before the HTTP server goes: runs the event loop until every
 * command in flight has its answer (what shutdown itself sent, such as
 * presence removals), for at most redis_timeout_ms, so that their callbacks
 * still find what they answer. */
void redis_drain(struct redis *r);

/* For one other module (the bus feed): `up` is called each time the
 * command connection comes up, `tick` each time the watchdog looks
 * (at least every redis_timeout_ms / 4, at most every 250 ms). */
void redis_watch(struct redis *r, void (*up)(void *arg),
                 void (*tick)(void *arg), void *arg);
/* Opens another connection to the same Redis on the same event base, with
 * the URL's AUTH and SELECT sent first and ac->data = data; NULL (logged)
 * when it cannot even start. */
struct redisAsyncContext *redis_connect(struct redis *r, const char *what,
                                        void *data);
/* Arms `timer` for *backoff ms, then doubles *backoff (up to 5 s). */
void redis_retry(struct event *timer, int *backoff);
/* Now, in ms of the monotonic clock. */
int64_t redis_mono_ms(void);

#endif
