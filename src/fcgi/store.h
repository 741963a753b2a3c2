/* store.h - crosstalk-fcgi's synchronous Redis client: the few commands the
 * stateless REST calls need, with timeouts and reconnection */
#ifndef CT_FCGI_STORE_H
#define CT_FCGI_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "api.h"
#include "event.h"
#include "names.h"
#include "streamid.h"

/* Every call below answers STORE_OK, or STORE_DOWN when Redis could not be
 * reached, timed out, or answered an error (store_fault says which). After
 * a failed connection it is dropped and the next call connects again, so
 * one request's failure is never the next request's. */
#define STORE_OK 0
#define STORE_DOWN (-1)
#define STORE_NONE 1 /* the thing asked for does not exist */

struct store;

/* Parses `url` (redis://[:password@]host[:port][/db] or
 * unix:///path[?db=N]) and remembers the timeout; connects lazily. Returns
 * NULL, with a message in err, when the URL is malformed. */
struct store *store_new(const char *url, int timeout_ms, char *err,
                        size_t errlen);
/* Closes the connection; accepts NULL. */
void store_free(struct store *st);

/* Why the last call answered STORE_DOWN: API_FAULT_DOWN (nothing was
 * sent), API_FAULT_UNKNOWN (sent, then no answer within the timeout or the
 * connection was lost), or the fault Redis' error answer names. */
enum api_fault store_fault(const struct store *st);

/* Whether Redis takes writes: a SET of KEYS_HEALTH with PX, since Redis
 * may answer PING and refuse every write (out of memory, read-only). */
int store_health(struct store *st);

/* The user name a token's digest belongs to (GET ct:token:{hash}, then
 * the user's token_sha256 must still be `hash`): STORE_OK and `name`
 * filled, STORE_NONE when no user has it, or STORE_DOWN. */
int store_token_user(struct store *st, const char *hash,
                     char name[NAME_USER_MAX + 1]);

/* Runs the register script: STORE_OK when the user was created, STORE_NONE
 * when the name is taken (nothing written), or STORE_DOWN. */
int store_register(struct store *st, const char *name, const char *hash,
                   int64_t created_ms);

/* What the append script answered. */
struct store_appended {
    char id[STREAMID_STRLEN];
    int64_t ts;
    int repeat; /* the key was known: this is the first message */
    char *text; /* repeat: its text, newly allocated; else NULL */
    size_t text_len;
};
/* Runs the append script: the message is stored and published atomically.
 * `key` (NULL or "" for none) is the sender's idempotency key: a repeat
 * within KEYS_IDEM_TTL stores and publishes nothing and answers the first
 * message. STORE_OK fills *out (free out->text); on STORE_DOWN,
 * store_fault tells whether the message may have been stored
 * (API_FAULT_UNKNOWN) or surely was not. */
int store_append(struct store *st, const char *room, const char *from,
                 const char *text, size_t text_len, const char *key,
                 struct store_appended *out);

/* The first `limit` messages after `since` (all from the start when since
 * is NULL), ascending. *evs is newly allocated (event_free_array). */
int store_after(struct store *st, const char *room,
                const struct streamid *since, int limit,
                struct chat_event **evs, size_t *n);
/* The newest `limit` messages older than `before` (the newest of all when
 * before is NULL), ascending. */
int store_before(struct store *st, const char *room,
                 const struct streamid *before, int limit,
                 struct chat_event **evs, size_t *n);

/* As store_after, with what Redis says of the room's stream (XINFO STREAM)
 * from the same round trip, for streamid_judge. */
int store_resume(struct store *st, const char *room,
                 const struct streamid *since, int limit,
                 struct streamid_log *log, struct chat_event **evs, size_t *n);

/* The first `limit` rooms after the cursor (after_name NULL: from the top),
 * newest first (keys_rooms_init). *names (each and the array) and *last_ts
 * are newly allocated; free with store_free_rooms. */
int store_rooms(struct store *st, int limit, long long after_ts,
                const char *after_name, char ***names, long long **last_ts,
                size_t *n);
void store_free_rooms(char **names, long long *last_ts, size_t n);

/* Marks `user` online in `room` until `expiry_ms`. *joined is set to 1
 * when the user was not online at `now_ms` before the call. */
int store_presence_touch(struct store *st, const char *room, const char *user,
                         int64_t now_ms, int64_t expiry_ms, int *joined);
/* Users online in `room` at `now_ms`, sorted by name. *names is newly
 * allocated; free with xfree_strings. */
int store_presence_online(struct store *st, const char *room, int64_t now_ms,
                          char ***names, size_t *n);

/* PUBLISH on the room's bus channel. */
int store_publish(struct store *st, const char *room, const char *json,
                  size_t len);

#endif
