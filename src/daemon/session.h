/* session.h - what a transport does to a room on behalf of its user: joins
 * it (stream tally, presence, resume), leaves it, sends and types in it.
 * Transports call this, never the store, presence or resume. */
#ifndef CT_SESSION_H
#define CT_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>

#include "api.h"
#include "auth.h"
#include "bus.h"
#include "streamid.h"

struct app;
struct config;
struct event_base;
struct request;
struct session_send;

/* One user in one room through one connection, embedded first in the
 * transport's state: the bus sees its subscriber. */
struct session {
    struct subscriber sub;
    /* what the transport needs of the daemon it runs in */
    const struct config *cfg;
    struct event_base *base;
    bool counted; /* holds one of its user's streams or long polls */
    bool joined;  /* counted in presence (a stream) */
    bool holding; /* the drain waits for it (session_hold): shutting down */
    char token[AUTH_TOKEN_LEN + 1];   /* what it authenticated with */
    TAILQ_HEAD(, session_send) sends; /* messages on their way to Redis */
};

/* Gives the sessions the daemon they run in (main.c, before any request):
 * its configuration and event base go into every session opened
 * afterwards, so transports never reach for a global. */
void session_init(struct app *daemon);

/* Sets s up for r's user, room and transport as a bus subscriber with
 * `ops`, remembering the token r authenticated with. Takes nothing yet:
 * session_leave on it is safe. */
void session_open(struct session *s, const struct request *r,
                  const struct subscriber_ops *ops);
/* Takes one of the user's SSE and WebSocket streams (streams_per_token),
 * or of its waiting long polls (longpolls_per_token). Returns 0, or -1
 * with *err to answer: 503 while the daemon drains (streams), 429
 * too_many_streams or rate_limited (a long poll: answer with Retry-After). */
int session_take(struct session *s, struct api_error *err);
/* Joins the room: a stream keeps its user online until it leaves
 * (presence), a poll counts as activity; then s is subscribed, resuming
 * after `since` (NULL: from now), with at most `max` messages of history
 * (0: all), as resume_start does: `done` gets status 0 once the history
 * is delivered (the caller then calls bus_resume_done) or -1 when it
 * could not be read. `done` may run before this returns, so the caller
 * must not touch s after the call unless s is freed on a later loop turn
 * whatever happens. */
typedef void (*session_joined_cb)(struct subscriber *sub, int status);
void session_join(struct session *s, const struct streamid *since, int max,
                  session_joined_cb done);
/* True once the daemon is shutting down: a poll answers at once. */
bool session_draining(const struct session *s);
/* Stops events: cancels the resume and leaves the bus. Presence and the
 * tally stay until session_leave. Safe when not subscribed. */
void session_stop(struct session *s);
/* Leaves the room: session_stop, presence, the tally given back, the
 * answers of sends still in flight dropped, and the drain no longer held.
 * Safe to call more than once. */
void session_leave(struct session *s);

/* The answer to one session_send: `key` is the message's idempotency key
 * ("" for none); `id` the message's id when it was stored (now, or before
 * with that key), else NULL with `err` (a 503 for a fault, a 401 when the
 * token no longer belongs to the user). Not called once the session has
 * left. */
typedef void (*session_sent_cb)(struct session *s, const char *key,
                                const char *id, const struct api_error *err);
/* Sends a message into the room: rate_send_per_sec, the token asked again
 * (cached for token_cache_ttl), then the append with the idempotency key
 * `key` (NULL or "" for none); a stored message counts as activity.
 * Takes ownership of `text` (malloc'd, `len` bytes). Returns 0 and calls
 * `cb` once, possibly before it returns; or -1 with *err (429) when over
 * the rate, and cb is not called. */
int session_send(struct session *s, char *text, size_t len, const char *key,
                 session_sent_cb cb, struct api_error *err);
/* True while a send of the session awaits its answer. */
bool session_sending(const struct session *s);
/* Shutting down: the drain waits for this session, until it leaves (its
 * transport has written the answers of its sends and closed), or for at
 * most its own bound. */
void session_hold(struct session *s);
/* Tells the room the user is typing: over rate_typing_per_sec it is
 * dropped quietly (0). Returns 0, or -1 with *err (503) when it could not
 * be published. */
int session_typing(struct session *s, struct api_error *err);
/* Activity without a stream (a poll): the user stays online for
 * presence_ttl. */
void session_touch(struct session *s);

#endif
