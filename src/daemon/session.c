/* session.c - what a transport does to a room on behalf of its user: the
 * per-user tallies, presence, resume, sends and typing */
#include "session.h"

#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "config.h"
#include "http.h"
#include "presence.h"
#include "ratelimit.h"
#include "reply.h"
#include "resume.h"
#include "store.h"
#include "tally.h"
#include "xmalloc.h"

/* A message of a session on its way into Redis. The session may leave
 * before the answer comes: then `s` is NULL and the answer is dropped. */
struct session_send {
    struct session *s;
    session_sent_cb cb;
    TAILQ_ENTRY(session_send) link;
    char key[API_KEY_MAX + 1]; /* the idempotency key, or "" */
    char *text;                /* until it is handed to the store */
    size_t len;
};

static struct app *ctx;

void session_init(struct app *daemon)
{
    ctx = daemon;
}

/* SSE and WebSocket count against streams_per_token and mark their user
 * gone when the last closes; a long poll holds its user online only while
 * it waits, and counts against longpolls_per_token. */
static bool is_stream(const struct session *s)
{
    return s->sub.kind == TRANSPORT_SSE || s->sub.kind == TRANSPORT_WEBSOCKET;
}

static struct tally *tally_of(const struct session *s)
{
    if (is_stream(s))
        return ctx->streams;
    return s->sub.kind == TRANSPORT_LONG_POLL ? ctx->polls : NULL;
}

void session_open(struct session *s, const struct request *r,
                  const struct subscriber_ops *ops)
{
    char *token =
        auth_from_request(http_header(r->req, "Authorization"), r->query);

    s->sub.ops = ops;
    s->sub.kind = r->kind;
    strcpy(s->sub.room, r->room);
    strcpy(s->sub.user, r->user);
    s->cfg = ctx->cfg;
    s->base = ctx->base;
    /* http_authenticate found it there a moment ago */
    if (token != NULL)
        snprintf(s->token, sizeof(s->token), "%s", token);
    free(token);
    TAILQ_INIT(&s->sends);
}

int session_take(struct session *s, struct api_error *err)
{
    struct tally *t = tally_of(s);

    /* While draining, no stream gets here (serve.c closes its connection
     * unanswered), and a long poll is answered at once with what there is
     * (long_poll.c), with Connection: close, as every answer while
     * draining: a 503 would reach clients through nginx's kept connections,
     * and nginx cannot pass a 503 over without taking a daemon whose Redis
     * shard is down out for every room. */
    if (t == NULL)
        return 0;
    if (!tally_take(t, s->sub.user)) {
        if (is_stream(s))
            return api_fail(err, 429, API_TOO_MANY_STREAMS,
                            "at most %u streams (SSE and WebSocket) at once "
                            "per user (streams_per_token); close one first",
                            tally_limit(t));
        return api_fail(err, 429, API_RATE_LIMITED,
                        "at most %d long polls at once per user",
                        ctx->cfg->longpolls_per_token);
    }
    s->counted = true;
    return 0;
}

void session_join(struct session *s, const struct streamid *since, int max,
                  session_joined_cb done)
{
    presence_join(s->sub.room, s->sub.user);
    s->joined = true;
    resume_start(&s->sub, since, max, done);
}

bool session_draining(const struct session *s)
{
    return ctx->draining;
}

void session_stop(struct session *s)
{
    resume_cancel(&s->sub);
    bus_unsubscribe(ctx->bus, &s->sub);
}

void session_leave(struct session *s)
{
    struct session_send *a;

    session_stop(s);
    if (s->joined && is_stream(s))
        presence_leave(s->sub.room, s->sub.user);
    else if (s->joined)
        presence_release(s->sub.room, s->sub.user);
    s->joined = false;
    if (s->counted)
        tally_give(tally_of(s), s->sub.user);
    s->counted = false;
    if (s->holding)
        ctx->inflight--;
    s->holding = false;
    while ((a = TAILQ_FIRST(&s->sends)) != NULL) {
        TAILQ_REMOVE(&s->sends, a, link);
        a->s = NULL;
    }
}

void session_touch(struct session *s)
{
    presence_touch(s->sub.room, s->sub.user);
}

/* --- sends --- */

static void appended(int status, const struct reply_appended *ap, void *arg)
{
    struct session_send *a = arg;
    struct session *s = a->s;

    ctx->inflight--;
    if (s != NULL) {
        TAILQ_REMOVE(&s->sends, a, link);
        if (status == 0) {
            session_touch(s);
            a->cb(s, a->key, ap->id, NULL);
        } else {
            struct api_error err;

            api_unavailable(&err, status, API_DOING_WS_SEND);
            a->cb(s, a->key, NULL, &err);
        }
    }
    free(a->text);
    free(a);
}

/* The token is still its user's: the message goes to Redis. A token
 * whose user was deleted (or registered anew) gets a 401. */
static void authed(int status, const char *user, void *arg)
{
    struct session_send *a = arg;
    struct session *s = a->s;
    struct api_error err;

    if (s != NULL && status == 0 &&
        (user == NULL || strcmp(user, s->sub.user) != 0)) {
        ctx->inflight--;
        TAILQ_REMOVE(&s->sends, a, link);
        api_fail(&err, 401, API_UNAUTHORIZED,
                 "the token is no longer valid; nothing was stored");
        a->cb(s, a->key, NULL, &err);
        free(a->text);
        free(a);
    } else if (s == NULL || status != 0 ||
               store_append(ctx->store, s->sub.room, s->sub.user, a->text,
                            a->len, a->key, appended, a) != 0) {
        appended(API_FAULT_DOWN, NULL, a);
    }
}

int session_send(struct session *s, char *text, size_t len, const char *key,
                 session_sent_cb cb, struct api_error *err)
{
    struct session_send *a;
    int retry;

    if (!ratelimit_take(ctx->send_limit, s->sub.user, event_now_ms(), &retry)) {
        free(text);
        return api_fail(err, 429, API_RATE_LIMITED,
                        "too many messages; retry in %d s", retry);
    }
    a = xcalloc(1, sizeof(*a));
    a->s = s;
    a->cb = cb;
    snprintf(a->key, sizeof(a->key), "%s", key ? key : "");
    a->text = text;
    a->len = len;
    TAILQ_INSERT_TAIL(&s->sends, a, link);
    /* counted from here, so that a drain also waits for a send whose token
     * is still being asked after */
    ctx->inflight++;
    /* asked again every time (store_auth answers from its cache for
     * token_cache_ttl), so a user deleted while its socket is open cannot
     * go on sending */
    if (store_auth(ctx->store, s->token, authed, a) != 0)
        authed(-1, NULL, a);
    return 0;
}

bool session_sending(const struct session *s)
{
    return !TAILQ_EMPTY(&s->sends);
}

void session_hold(struct session *s)
{
    if (!s->holding)
        ctx->inflight++;
    s->holding = true;
}

int session_typing(struct session *s, struct api_error *err)
{
    struct chat_event ev;
    int retry, rc = 0;

    /* over rate_typing_per_sec it is dropped without an answer: the room
     * saw this user typing less than a second ago */
    if (!ratelimit_take(ctx->typing_limit, s->sub.user, event_now_ms(), &retry))
        return 0;
    event_init_typing(&ev, s->sub.room, s->sub.user, event_now_ms());
    if (store_publish(ctx->store, &ev, NULL, NULL) != 0)
        rc = api_fail(err, 503, API_UNAVAILABLE,
                      "the message store is unreachable; try again");
    else
        session_touch(s);
    event_clear(&ev);
    return rc;
}
