/* store.h - the Redis commands of crosstalk, written once: each builds its
 * arguments, sends them through an executor (rexec.h) and decodes the reply
 * for its callback. crosstalkd drives it asynchronously, the pool and the
 * backup synchronously (then every callback runs before the call returns). */
#ifndef CT_STORE_H
#define CT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"
#include "names.h"
#include "streamid.h"

struct config;
struct rexec;
struct store;
struct reply_appended; /* reply.h */

/* A store over n >= 1 Redis shards, sending through the executors x[0..n-1]
 * (the order of redis_url), which must outlive it; the array is copied, cfg
 * is kept (token_cache_ttl). A room's commands go to shard_of_room, a
 * user's to shard_of_user (shard.h); see docs/sharding.md. */
struct store *store_new(struct rexec **x, int n, const struct config *cfg);
/* Frees the token cache and the store, not the executor. Accepts NULL. */
void store_free(struct store *st);
/* True when every shard's executor can send now. */
bool store_ready(const struct store *st);
/* How many shards. */
int store_shards(const struct store *st);

/* In every callback, status is 0 on success and non-zero when Redis could
 * not be reached, answered with an error, or did not answer within
 * redis_timeout_ms (then the connection is dropped, every command in
 * flight on it fails, and it is made again). Data passed to a callback is
 * valid only during it. The functions return 0 when the command was sent;
 * on -1 (Redis down: nothing was sent) the callback is not called. */

/* For the append: status is an enum api_fault (API_FAULT_UNKNOWN: sent, no
 * answer, whether it was stored is unknown); on success `a` is what the
 * script answered. */
typedef void (*store_append_cb)(int status, const struct reply_appended *a,
                                void *arg);
/* Runs the append script: stored, published, acknowledged in that order.
 * `key` (NULL or "" for none) is the sender's idempotency key: a repeat
 * within KEYS_IDEM_TTL stores and publishes nothing and answers the first
 * message (a->repeat). */
int store_append(struct store *st, const char *room, const char *from,
                 const char *text, size_t len, const char *key,
                 store_append_cb cb, void *arg);

/* Tells fn of every message an append through this store stored (or, for a
 * repeat, found: the first one's id), before the append's own callback:
 * crosstalkd's bus learns what it has not yet seen go by, so that a client
 * never misses its own message in an answer from memory. fn NULL: none. */
typedef void (*store_stored_fn)(void *arg, const char *room, const char *id);
void store_on_stored(struct store *st, store_stored_fn fn, void *arg);

typedef void (*store_events_cb)(int status, struct chat_event *evs, size_t n,
                                void *arg);
/* Up to `limit` messages after `after` (exclusive; NULL = from the
 * first), oldest first. */
int store_after(struct store *st, const char *room,
                const struct streamid *after, int limit, store_events_cb cb,
                void *arg);
/* The newest `limit` messages before `before` (exclusive; NULL = newest of
 * all), oldest first. */
int store_before(struct store *st, const char *room,
                 const struct streamid *before, int limit, store_events_cb cb,
                 void *arg);

typedef void (*store_resume_cb)(int status, struct chat_event *evs, size_t n,
                                const struct streamid_log *log, void *arg);
/* As store_after, with what Redis says of the room's stream (XINFO
 * STREAM) in the same round trip and at the same instant, for
 * streamid_judge: a resume that goes to Redis learns of gaps and resets at
 * no extra round trip. */
int store_resume(struct store *st, const char *room,
                 const struct streamid *after, int limit, store_resume_cb cb,
                 void *arg);

typedef void (*store_user_cb)(int status, const char *user, void *arg);
/* The user a token belongs to (user NULL when unknown, or when the user
 * no longer has that token). A token Redis confirmed less than
 * token_cache_ttl seconds ago is answered from a cache, synchronously.
 * Only the token is known, not its user's shard: every shard is asked at
 * once, and the first that holds it answers (a shard that hangs does not
 * delay a token another shard holds); unknown everywhere but a shard did
 * not answer is a failure (status -1), not an unknown token. */
int store_auth(struct store *st, const char *token, store_user_cb cb,
               void *arg);

typedef void (*store_register_cb)(int status, bool created, void *arg);
int store_register(struct store *st, const char *name, const char *token,
                   store_register_cb cb, void *arg);

typedef void (*store_rooms_cb)(int status, const char *const *names,
                               const long long *last_ts, size_t n, void *arg);
/* The first `n` rooms after the cursor (after_name NULL: from the top),
 * newest first: keys_rooms_init. Each shard keeps the index of its rooms:
 * each is asked for its first n after the cursor, in turn, and the lists
 * merged (store_rooms_merge); one shard failing fails the call. */
int store_rooms(struct store *st, int n, long long after_ts,
                const char *after_name, store_rooms_cb cb, void *arg);

/* One room of the merged index. */
struct store_room {
    char name[NAME_ROOM_MAX + 1];
    long long last_ts;
};
/* Sorts rooms gathered from several shards into the order of one index
 * (last_ts descending, then name descending, as ZREVRANGEBYSCORE) and
 * returns how many of them make the page: min(n, want). */
size_t store_rooms_merge(struct store_room *rooms, size_t n, size_t want);

typedef void (*store_online_cb)(int status, const char *const *names, size_t n,
                                void *arg);
int store_online(struct store *st, const char *room, store_online_cb cb,
                 void *arg);
/* The process that writes a presence: crosstalkd's "host:pid", or
 * "pool" for the FastCGI pool (its processes hold nothing between
 * requests). At most STORE_HOLDER_MAX - 1 bytes. */
#define STORE_HOLDER_MAX 200 /* STATREC_ID_MAX */
#define STORE_MEMBER_MAX (NAME_USER_MAX + 1 + STORE_HOLDER_MAX)
/* `changed`: the room's presence is not what it was (worth announcing). */
typedef void (*store_added_cb)(int status, bool changed, void *arg);
/* Marks the user online in the room until expiry_ms, as seen by `holder`
 * (a member of its own: the user stays online while any holder's lasts),
 * first dropping the expired: `changed` when the holder's member is new,
 * or expired ones were dropped. */
int store_presence_add(struct store *st, const char *room, const char *user,
                       const char *holder, int64_t expiry_ms, store_added_cb cb,
                       void *arg);
/* Drops the room's expired members: `changed` when there were any. The one
 * process that drops a member is the one told, so each expiry is announced
 * once, whoever wrote it (a daemon, the pool). */
int store_presence_expire(struct store *st, const char *room, store_added_cb cb,
                          void *arg);
/* Removes `holder`'s member of the user (fire and forget): the user is
 * offline unless another holder's member lasts. */
void store_presence_remove(struct store *st, const char *room, const char *user,
                           const char *holder);
typedef void (*store_status_cb)(int status, void *arg);
/* Publishes an ephemeral event (not stored). Returns 0, or -1 when down
 * (then cb is not called). `cb` (NULL: fire and forget) gets Redis'
 * answer: status an enum api_fault. */
int store_publish(struct store *st, const struct chat_event *ev,
                  store_status_cb cb, void *arg);

/* For /healthz: a small write (SET KEYS_HEALTH PX) on every shard at
 * once, since Redis may answer PING and refuse every write (out of memory,
 * read-only replica). faults[i] is shard i's enum api_fault (0: healthy);
 * the callback always comes (synchronously when every shard is down). */
typedef void (*store_health_cb)(const int *faults, int n, void *arg);
void store_health(struct store *st, store_health_cb cb, void *arg);

/* Writes this process's counters record (statrec.h) with its TTL, and its
 * id into the index (fire and forget; nothing when Redis is down). The
 * records live on shard 0 (statrec_sink writes there too). */
void store_stats_write(struct store *st, const char *id, const char *json,
                       size_t len, int ttl_ms);
typedef void (*store_strings_cb)(int status, const char *const *v,
                                 const size_t *lens, size_t n, void *arg);
/* The live counters records of every process (statrec.h). */
int store_stats_read(struct store *st, store_strings_cb cb, void *arg);

#endif
