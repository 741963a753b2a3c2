/* store.h - crosstalkd's Redis: async commands on the daemon's event base,
 * the bus subscription, reconnection and gap filling */
#ifndef CT_STORE_H
#define CT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"
#include "streamid.h"

struct event_base;
struct config;
struct bus;
struct store;

/* Connects (and keeps reconnecting with backoff) to config->redis_url.
 * Events from the Redis bus are published on `bus`. Returns NULL, with a
 * message logged, when the URL is malformed. */
struct store *store_new(struct event_base *base, const struct config *cfg,
                        struct bus *bus);
/* Disconnects; pending callbacks are called with status -1. Accepts NULL. */
void store_free(struct store *st);
/* True when the command connection is up. */
bool store_ready(const struct store *st);

/* In every callback, status is 0 on success and -1 when Redis could not be
 * reached or answered with an error; data passed to a callback is valid
 * only during it. The functions return 0 when the command was sent; on -1
 * (Redis down) the callback is not called. */

typedef void (*store_append_cb)(int status, const char *id, int64_t ts,
                                void *arg);
/* Runs the append script: stored, published, acknowledged in that order. */
int store_append(struct store *st, const char *room, const char *from,
                 const char *text, size_t len, store_append_cb cb, void *arg);

typedef void (*store_events_cb)(int status, struct event *evs, size_t n,
                                void *arg);
/* Up to `limit` messages after `after` (exclusive), oldest first. */
int store_after(struct store *st, const char *room,
                const struct streamid *after, int limit, store_events_cb cb,
                void *arg);
/* The newest `limit` messages before `before` (exclusive; NULL = newest of
 * all), oldest first. */
int store_before(struct store *st, const char *room,
                 const struct streamid *before, int limit, store_events_cb cb,
                 void *arg);

typedef void (*store_resume_cb)(int status, struct event *evs, size_t n,
                                const struct streamid_log *log, void *arg);
/* As store_after, with what Redis says of the room's stream (XINFO
 * STREAM) in the same round trip and at the same instant, for
 * streamid_judge: a resume that goes to Redis learns of gaps and resets at
 * no extra round trip. */
int store_resume(struct store *st, const char *room,
                 const struct streamid *after, int limit, store_resume_cb cb,
                 void *arg);

typedef void (*store_user_cb)(int status, const char *user, void *arg);
/* The user a token belongs to (user NULL when unknown). Answers from a
 * cache when it can, then synchronously. */
int store_auth(struct store *st, const char *token, store_user_cb cb,
               void *arg);

typedef void (*store_register_cb)(int status, bool created, void *arg);
int store_register(struct store *st, const char *name, const char *token,
                   store_register_cb cb, void *arg);

typedef void (*store_rooms_cb)(int status, const char *const *names,
                               const long long *last_ts, size_t n, void *arg);
/* The first `n` rooms after the cursor (after_name NULL: from the top),
 * newest first: keys_rooms_init. */
int store_rooms(struct store *st, int n, long long after_ts,
                const char *after_name, store_rooms_cb cb, void *arg);

typedef void (*store_online_cb)(int status, const char *const *names, size_t n,
                                void *arg);
int store_online(struct store *st, const char *room, store_online_cb cb,
                 void *arg);
typedef void (*store_added_cb)(int status, bool added, void *arg);
/* Marks the user online in the room until expiry_ms, first dropping the
 * expired: `added` tells whether the user was not online before. */
int store_presence_add(struct store *st, const char *room, const char *user,
                       int64_t expiry_ms, store_added_cb cb, void *arg);
/* Removes the user from the room's presence (fire and forget). */
void store_presence_remove(struct store *st, const char *room,
                           const char *user);
/* Publishes an ephemeral event (not stored). Returns 0 or -1 when down. */
int store_publish(struct store *st, const struct event *ev);

typedef void (*store_status_cb)(int status, void *arg);
/* PING, for /healthz. */
int store_ping(struct store *st, store_status_cb cb, void *arg);

#endif
