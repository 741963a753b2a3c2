/* rest.c - the REST calls: routing, authentication, the handlers */
#include "rest.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "api.h"
#include "auth.h"
#include "config.h"
#include "log.h"
#include "query.h"
#include "ratelimit.h"
#include "redisurl.h"
#include "reply.h"
#include "store.h"
#include "strlist.h"
#include "xmalloc.h"

/* One call on its way: the request, the answer, and what each handler
 * keeps across its store operation. */
struct call {
    struct rest_ctx *ctx;
    const struct rest_request *rq;
    struct rest_response rs;
    rest_done_cb done;
    void *arg;
    /* send */
    char *text;
    size_t text_len;
    char key[API_KEY_MAX + 1];
    /* register */
    char name[NAME_USER_MAX + 1];
    char token[AUTH_TOKEN_LEN + 1];
    /* history and rooms */
    struct query_history history;
    struct query_rooms rooms;
};

void rest_init(struct rest_ctx *ctx, const struct config *cfg,
               struct store *store)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->cfg = cfg;
    ctx->store = store;
    ctx->register_limit = ratelimit_new(cfg->rate_register_per_min, 60000,
                                        cfg->rate_register_per_min);
    ctx->send_limit = ratelimit_new(cfg->rate_send_per_sec, 1000,
                                    2.0 * cfg->rate_send_per_sec);
    ctx->typing_limit = ratelimit_new(cfg->rate_typing_per_sec, 1000,
                                      2.0 * cfg->rate_typing_per_sec);
}

/* Finished calls kept for the next ones: a call is larger than malloc's
 * per-thread cache takes, and allocating one per request made malloc merge
 * the small chunks the last answers freed, every time. */
#define SPARE_CALLS 64
static struct call *spare_calls[SPARE_CALLS];
static size_t n_spare_calls;

void rest_shutdown(struct rest_ctx *ctx)
{
    ratelimit_free(ctx->register_limit);
    ratelimit_free(ctx->send_limit);
    ratelimit_free(ctx->typing_limit);
    ctx->register_limit = ctx->send_limit = ctx->typing_limit = NULL;
    while (n_spare_calls > 0)
        free(spare_calls[--n_spare_calls]);
}

const char *rest_reason(int status)
{
    static const struct {
        int status;
        const char *reason;
    } reasons[] = {
        {200, "OK"},
        {201, "Created"},
        {202, "Accepted"},
        {204, "No Content"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {409, "Conflict"},
        {413, "Payload Too Large"},
        {417, "Expectation Failed"},
        {426, "Upgrade Required"},
        {429, "Too Many Requests"},
        {431, "Request Header Fields Too Large"},
        {500, "Internal Server Error"},
        {501, "Not Implemented"},
        {503, "Service Unavailable"},
        {505, "HTTP Version Not Supported"},
    };

    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        if (reasons[i].status == status)
            return reasons[i].reason;
    return status < 500 ? "Bad Request" : "Internal Server Error";
}

void rest_header(struct rest_response *rs, const char *name, const char *value)
{
    if (rs->n_headers >= REST_HEADERS_MAX)
        return;
    rs->headers[rs->n_headers].name = name;
    snprintf(rs->headers[rs->n_headers].value, REST_HEADER_VALUE_MAX, "%s",
             value);
    rs->n_headers++;
}

bool rest_origin_allowed(const struct config *cfg, const char *origin,
                         const char *host)
{
    const char *list = cfg->allowed_origins;
    size_t olen = strlen(origin), ilen;
    const char *item;

    if (list[0] == '\0') {
        /* same host: the Origin's authority equals the Host header */
        const char *authority = strstr(origin, "://");

        return host != NULL && authority != NULL &&
               strcmp(authority + 3, host) == 0;
    }
    while ((item = strlist_next(&list, &ilen)) != NULL)
        if ((ilen == 1 && item[0] == '*') ||
            (ilen == olen && strncasecmp(item, origin, olen) == 0))
            return true;
    return false;
}

/* Whether to name `origin` in Access-Control-Allow-Origin: only when
 * allowed_origins lists some (a same-host page needs no CORS), and never
 * a value too long to carry. */
static bool cors_allowed(const struct rest_ctx *ctx,
                         const struct rest_request *rq)
{
    return rq->origin != NULL && ctx->cfg->allowed_origins[0] != '\0' &&
           strlen(rq->origin) < REST_HEADER_VALUE_MAX &&
           rest_origin_allowed(ctx->cfg, rq->origin, rq->host);
}

void rest_api_headers(const struct rest_ctx *ctx, const struct rest_request *rq,
                      struct rest_response *rs)
{
    rest_header(rs, "Content-Type", "application/json");
    rest_header(rs, "Cache-Control", "no-store");
    if (cors_allowed(ctx, rq)) {
        rest_header(rs, "Access-Control-Allow-Origin", rq->origin);
        rest_header(rs, "Vary", "Origin");
    }
}

/* --- answering --- */

static struct call *call_new(void)
{
    struct call *c;

    if (n_spare_calls == 0)
        return xcalloc(1, sizeof(*c));
    c = spare_calls[--n_spare_calls];
    memset(c, 0, sizeof(*c));
    return c;
}

static void call_free(struct call *c)
{
    if (n_spare_calls < SPARE_CALLS)
        spare_calls[n_spare_calls++] = c;
    else
        free(c);
}

static void finish(struct call *c)
{
    c->done(c->rq, &c->rs, c->arg);
    free(c->rs.body);
    free(c->text);
    call_free(c);
}

/* Answers `status` with the JSON body (taken over) and finishes. */
static void answer(struct call *c, int status, char *body, size_t len)
{
    c->rs.status = status;
    c->rs.body = body;
    c->rs.len = len;
    rest_api_headers(c->ctx, c->rq, &c->rs);
    finish(c);
}

static void answer_error(struct call *c, const struct api_error *err)
{
    size_t len;
    char *body = api_error_json(err, &len);

    if (err->status == 401)
        rest_header(&c->rs, "WWW-Authenticate", "Bearer");
    if (err->status == 503)
        rest_header(&c->rs, "Retry-After", "1");
    answer(c, err->status, body, len);
}

static void __attribute__((format(printf, 4, 5)))
fail(struct call *c, int status, const char *code, const char *fmt, ...)
{
    struct api_error err = {status, code, ""};
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err.message, sizeof(err.message), fmt, ap);
    va_end(ap);
    answer_error(c, &err);
}

/* A read or a lookup Redis did not answer: nothing was written. */
static void unavailable(struct call *c)
{
    fail(c, 503, API_UNAVAILABLE, API_READ_FAILED "; try again");
}

/* Takes a token from key's bucket; false with the 429 answered when it is
 * empty. */
static bool rate_ok(struct call *c, struct ratelimit *rl, const char *key)
{
    char retry_after[16];
    int retry;

    if (ratelimit_take(rl, key, event_now_ms(), &retry))
        return true;
    snprintf(retry_after, sizeof(retry_after), "%d", retry);
    rest_header(&c->rs, "Retry-After", retry_after);
    fail(c, 429, API_RATE_LIMITED, "too many requests; retry in %d s", retry);
    return false;
}

static void touch(struct call *c)
{
    const struct rest_hooks *h = &c->ctx->hooks;

    if (h->touch != NULL)
        h->touch(h->arg, c->rs.pass.room, c->rs.user);
}

/* --- health --- */

/* With several shards, a 503 names each shard down in its message and
 * lists every shard's state (0-based, in redis_url's order, no password):
 * {"error":"unavailable","message":"shard 2 of 3 (127.0.0.1:6381): ...",
 *  "shards":[{"shard":0,"redis":"127.0.0.1:6379","status":"ok"},...]} */
static void healthz_shards(struct call *c, const int *faults, int n)
{
    struct redisurl *urls = NULL;
    char why[256], where[160], msg[sizeof(((struct api_error *)0)->message)];
    size_t used = 0;
    json_object *o = json_object_new_object(), *list = json_object_new_array();
    const char *body;
    int got =
        redisurl_parse_list(c->ctx->cfg->redis_url, &urls, why, sizeof(why));

    msg[0] = '\0';
    for (int i = 0; i < n; i++) {
        json_object *e = json_object_new_object();
        struct api_error err;

        if (i < got)
            redisurl_where(&urls[i], where, sizeof(where));
        else
            snprintf(where, sizeof(where), "?");
        json_object_object_add(e, "shard", json_object_new_int(i));
        json_object_object_add(e, "redis", json_object_new_string(where));
        if (faults[i] == 0) {
            json_object_object_add(e, "status", json_object_new_string("ok"));
        } else {
            api_unavailable(&err, faults[i], API_DOING_HEALTH);
            json_object_object_add(e, "status",
                                   json_object_new_string(API_UNAVAILABLE));
            json_object_object_add(e, "message",
                                   json_object_new_string(err.message));
            if (used < sizeof(msg))
                used += (size_t)snprintf(
                    msg + used, sizeof(msg) - used, "%sshard %d of %d (%s): %s",
                    used > 0 ? "; " : "", i, n, where, err.message);
        }
        json_object_array_add(list, e);
    }
    redisurl_free_list(urls, got > 0 ? got : 0);
    json_object_object_add(o, "error", json_object_new_string(API_UNAVAILABLE));
    json_object_object_add(o, "message", json_object_new_string(msg));
    json_object_object_add(o, "shards", list);
    body = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
    rest_header(&c->rs, "Retry-After", "1");
    answer(c, 503, xstrdup(body), strlen(body));
    json_object_put(o);
}

static void healthz_done(const int *faults, int n, void *arg)
{
    struct call *c = arg;
    struct api_error err;
    int down = 0;

    for (int i = 0; i < n; i++)
        down += faults[i] != 0;
    if (down > 0 && n > 1) {
        healthz_shards(c, faults, n);
    } else if (down > 0) {
        api_unavailable(&err, faults[0], API_DOING_HEALTH);
        answer_error(c, &err);
    } else {
        answer(c, 200, xstrdup("{\"status\":\"ok\"}"), 15);
    }
}

static void do_healthz(struct call *c)
{
    const struct rest_hooks *h = &c->ctx->hooks;

    if (h->draining != NULL && h->draining(h->arg))
        fail(c, 503, API_UNAVAILABLE, "shutting down");
    else
        store_health(c->ctx->store, healthz_done, c);
}

/* --- register --- */

static void register_done(int status, bool created, void *arg)
{
    struct call *c = arg;
    size_t len;
    char *body;

    if (status != 0) {
        struct api_error err;

        api_unavailable(&err, status == -1 ? API_FAULT_UNKNOWN : status,
                        API_DOING_REGISTER);
        answer_error(c, &err);
    } else if (!created) {
        fail(c, 409, API_NAME_TAKEN, "the name %s is taken", c->name);
    } else {
        log_info("registered user %s", c->name);
        body = api_register_json(c->name, c->token, &len);
        answer(c, 201, body, len);
    }
}

static void do_register(struct call *c)
{
    const struct rest_request *rq = c->rq;
    struct api_error err;

    if (!rate_ok(c, c->ctx->register_limit,
                 rq->remote_addr != NULL ? rq->remote_addr : "?"))
        return;
    if (api_parse_register(rq->body, rq->body_len, c->name, &err) != 0) {
        answer_error(c, &err);
        return;
    }
    if (auth_new_token(c->token) != 0) {
        log_error("register %s: no random bytes for a token", c->name);
        fail(c, 500, "internal", "no randomness for a token");
        return;
    }
    if (store_register(c->ctx->store, c->name, c->token, register_done, c) != 0)
        register_done(API_FAULT_DOWN, false, c);
}

/* --- rooms --- */

static void rooms_done(int status, const char *const *names,
                       const long long *last_ts, size_t n, void *arg)
{
    struct call *c = arg;
    size_t len;
    char *body;

    if (status != 0) {
        unavailable(c);
        return;
    }
    body = api_rooms_json(names, last_ts, n, (size_t)c->rooms.limit, &len);
    answer(c, 200, body, len);
}

static void do_rooms(struct call *c)
{
    struct query_rooms *q = &c->rooms;
    struct api_error err;

    if (query_parse_rooms(c->rq->query, q, &err) != 0) {
        answer_error(c, &err);
        return;
    }
    /* one more than the page, to know whether there are more */
    if (store_rooms(c->ctx->store, q->limit + 1, q->after_ts,
                    q->has_after ? q->after_name : NULL, rooms_done, c) != 0)
        rooms_done(-1, NULL, NULL, 0, c);
}

/* --- send --- */

static void send_done(int status, const struct reply_appended *a, void *arg)
{
    struct call *c = arg;
    struct chat_event ev;
    size_t len;
    char *body;

    if (status != 0) {
        struct api_error err;

        api_unavailable(&err, status, API_DOING_SEND);
        answer_error(c, &err);
        return;
    }
    /* a repeat answers the first message, whatever this one said */
    event_init_message(&ev, c->rs.pass.room, a->id, c->rs.user,
                       a->repeat ? a->text : c->text,
                       a->repeat ? a->text_len : c->text_len, a->ts);
    body = event_to_json(&ev, &len);
    event_clear(&ev);
    touch(c);
    answer(c, a->repeat ? 200 : 201, body, len);
}

static void do_send(struct call *c)
{
    const struct rest_request *rq = c->rq;
    const char *ikey = rq->idempotency_key;
    struct api_error err;

    if (!rate_ok(c, c->ctx->send_limit, c->rs.user))
        return;
    if (rq->idempotency_key_twice) {
        fail(c, 400, API_BAD_REQUEST, "one Idempotency-Key header at most");
        return;
    }
    if (api_parse_key(ikey, ikey != NULL ? strlen(ikey) : 0, c->key, &err) !=
            0 ||
        api_parse_message(rq->body, rq->body_len,
                          (size_t)c->ctx->cfg->max_message_bytes, &c->text,
                          &c->text_len, &err) != 0) {
        answer_error(c, &err);
        return;
    }
    if (store_append(c->ctx->store, c->rs.pass.room, c->rs.user, c->text,
                     c->text_len, c->key, send_done, c) != 0)
        send_done(API_FAULT_DOWN, NULL, c);
}

/* --- history: a short poll (since) or a page of history (before) --- */

/* Answers {"events":[...],"last_id":...} and the signal's members with
 * events already encoded. */
static void answer_jsons(struct call *c, const char *const *jsons,
                         const size_t *lens, size_t n, const char *last_id,
                         const struct streamid_signal *sig)
{
    size_t len;
    char *body = api_events_json(jsons, lens, n, last_id, sig, &len);

    c->rs.delivered = (int)n;
    answer(c, 200, body, len);
}

/* The same, encoding each event once. `from` is where the client goes on
 * from when there is no event. */
static void answer_events(struct call *c, const struct chat_event *evs,
                          size_t n, const char *from,
                          const struct streamid_signal *sig)
{
    const char **jsons = xcalloc(n + 1, sizeof(*jsons));
    size_t *lens = xcalloc(n + 1, sizeof(*lens));

    for (size_t i = 0; i < n; i++)
        jsons[i] = event_to_json(&evs[i], &lens[i]);
    answer_jsons(c, jsons, lens, n, n > 0 ? evs[n - 1].id : from, sig);
    for (size_t i = 0; i < n; i++)
        free((char *)jsons[i]);
    free(jsons);
    free(lens);
}

/* Prepends what the archive holds before the oldest of `evs` when Redis
 * had fewer than asked for. */
static void with_archive(struct call *c, struct chat_event *evs, size_t n)
{
    const struct rest_hooks *h = &c->ctx->hooks;
    const struct query_history *q = &c->history;
    const struct streamid *oldest = n > 0 ? &evs[0].sid : &q->before;
    struct chat_event *old = NULL, *all;
    size_t k = 0;

    if (h->archive_before == NULL || !q->has_before || n >= (size_t)q->limit ||
        h->archive_before(h->arg, c->rs.pass.room, oldest, q->limit - (int)n,
                          &old, &k) < 0 ||
        k == 0) {
        event_free_array(old, k);
        answer_events(c, evs, n, "0-0", NULL);
        return;
    }
    all = xcalloc(k + n, sizeof(*all));
    memcpy(all, old, k * sizeof(*all));
    if (n > 0)
        memcpy(all + k, evs, n * sizeof(*all));
    free(old);
    answer_events(c, all, k + n, "0-0", NULL);
    /* the events of `evs` are the caller's to clear */
    for (size_t i = 0; i < k; i++)
        event_clear(&all[i]);
    free(all);
}

static void before_done(int status, struct chat_event *evs, size_t n, void *arg)
{
    struct call *c = arg;

    if (status != 0)
        unavailable(c);
    else
        with_archive(c, evs, n);
}

/* What the program held in memory (rest_hooks.recent): no gap or reset to
 * tell, and with nothing new the client stays at its `since`. */
static void recent_done(void *arg, const char *const *jsons, const size_t *lens,
                        size_t n, const char *last_id)
{
    struct call *c = arg;

    answer_jsons(c, jsons, lens, n,
                 last_id != NULL ? last_id : c->history.since_str, NULL);
}

/* After `since`: with a gap or a reset told, "last_id" is where the
 * client goes on from. */
static void resume_done(int status, struct chat_event *evs, size_t n,
                        const struct streamid_log *log, void *arg)
{
    struct call *c = arg;
    struct streamid_signal sig;
    char from[STREAMID_STRLEN];

    if (status != 0) {
        unavailable(c);
        return;
    }
    streamid_judge(&c->history.since, log, &sig);
    answer_events(c, evs, n, streamid_format(&sig.from, from), &sig);
}

static void do_history(struct call *c)
{
    const struct rest_hooks *h = &c->ctx->hooks;
    struct query_history *q = &c->history;
    const char *room = c->rs.pass.room;
    struct api_error err;
    int rc;

    if (query_parse_history(c->rq->query, c->ctx->cfg->longpoll_max_timeout, q,
                            &err) != 0) {
        answer_error(c, &err);
        return;
    }
    touch(c);
    if (q->has_since && h->recent != NULL &&
        h->recent(h->arg, room, &q->since, q->limit, recent_done, c))
        return;
    if (q->has_since)
        rc = store_resume(c->ctx->store, room, &q->since, q->limit, resume_done,
                          c);
    else
        rc =
            store_before(c->ctx->store, room, q->has_before ? &q->before : NULL,
                         q->limit, before_done, c);
    if (rc != 0)
        unavailable(c);
}

/* --- typing, presence --- */

static void typing_done(int status, void *arg)
{
    struct call *c = arg;

    if (status != 0) {
        unavailable(c);
        return;
    }
    touch(c);
    answer(c, 202, xstrdup("{\"ok\":true}"), 11);
}

static void do_typing(struct call *c)
{
    struct chat_event ev;
    int rc;

    if (!rate_ok(c, c->ctx->typing_limit, c->rs.user))
        return;
    event_init_typing(&ev, c->rs.pass.room, c->rs.user, event_now_ms());
    rc = store_publish(c->ctx->store, &ev, typing_done, c);
    event_clear(&ev);
    if (rc != 0)
        unavailable(c);
}

static void presence_done(int status, const char *const *names, size_t n,
                          void *arg)
{
    struct call *c = arg;
    size_t len;
    char *body;

    if (status != 0) {
        unavailable(c);
        return;
    }
    body = api_online_json(names, n, &len);
    answer(c, 200, body, len);
}

static void do_presence(struct call *c)
{
    if (store_online(c->ctx->store, c->rs.pass.room, presence_done, c) != 0)
        unavailable(c);
}

/* --- routing and authentication --- */

static void serve(struct call *c)
{
    switch (c->rs.pass.route->id) {
    case ROUTE_HEALTHZ:
        do_healthz(c);
        break;
    case ROUTE_REGISTER:
        do_register(c);
        break;
    case ROUTE_ROOMS:
        do_rooms(c);
        break;
    case ROUTE_HISTORY:
        do_history(c);
        break;
    case ROUTE_SEND:
        do_send(c);
        break;
    case ROUTE_TYPING:
        do_typing(c);
        break;
    case ROUTE_PRESENCE:
        do_presence(c);
        break;
    default:
        /* the program's own (status 0) */
        finish(c);
        break;
    }
}

static void auth_done(int status, const char *user, void *arg)
{
    struct call *c = arg;

    if (status != 0)
        unavailable(c);
    else if (user == NULL)
        fail(c, 401, API_UNAUTHORIZED, "unknown token");
    else {
        snprintf(c->rs.user, sizeof(c->rs.user), "%s", user);
        serve(c);
    }
}

static void authenticate(struct call *c)
{
    const struct rest_request *rq = c->rq;
    char *token;

    /* two credentials: a proxy and we could each believe another one */
    if (rq->authorization_twice) {
        fail(c, 400, API_BAD_REQUEST, "one Authorization header at most");
        return;
    }
    token = auth_from_request(rq->authorization, rq->query);
    if (token == NULL) {
        fail(c, 401, API_UNAUTHORIZED,
             "a token is required: Authorization: Bearer <token> or ?token=");
        return;
    }
    if (store_auth(c->ctx->store, token, auth_done, c) != 0)
        auth_done(-1, NULL, c);
    free(token);
}

/* A browser's CORS preflight: answered for the origins allowed_origins
 * names (none by default, so cross-origin browsers are refused). */
static void preflight(struct call *c)
{
    if (cors_allowed(c->ctx, c->rq)) {
        rest_header(&c->rs, "Access-Control-Allow-Origin", c->rq->origin);
        rest_header(&c->rs, "Access-Control-Allow-Methods",
                    "GET, POST, OPTIONS");
        rest_header(&c->rs, "Access-Control-Allow-Headers",
                    "Authorization, Content-Type, Idempotency-Key, "
                    "Last-Event-ID");
        rest_header(&c->rs, "Access-Control-Max-Age", "600");
    }
    rest_header(&c->rs, "Vary", "Origin");
    c->rs.status = 204;
    finish(c);
}

void rest_handle(struct rest_ctx *ctx, const struct rest_request *rq,
                 rest_done_cb done, void *arg)
{
    struct call *c = call_new();
    const struct route *r;
    struct api_error err;
    const char *allow;

    c->ctx = ctx;
    c->rq = rq;
    c->done = done;
    c->arg = arg;
    c->rs.kind = TRANSPORT_REST;
    c->rs.delivered = -1;
    if (rq->head_bytes > (size_t)ctx->cfg->max_header_bytes) {
        fail(c, 431, API_TOO_LARGE, "the request head is over %d bytes",
             ctx->cfg->max_header_bytes);
        return;
    }
    if (rq->preflight && strcmp(rq->method, "OPTIONS") == 0 &&
        rq->origin != NULL) {
        preflight(c);
        return;
    }
    if (route_find(rq->method, rq->path, &c->rs.pass, &err, &allow) != 0) {
        if (allow != NULL)
            rest_header(&c->rs, "Allow", allow);
        answer_error(c, &err);
        return;
    }
    r = c->rs.pass.route;
    c->rs.kind = r->kind;
    if ((r->flags & ROUTE_DAEMON) && !ctx->serves_streams) {
        fail(c, 404, API_NOT_FOUND, "%s",
             r->id == ROUTE_STATIC     ? "no such file"
             : r->flags & ROUTE_STREAM ? "polls and streams are served by "
                                         "crosstalkd"
                                       : "no such path");
        return;
    }
    if (rq->body_too_large) {
        fail(c, 413, API_TOO_LARGE, "the request body is over %d bytes",
             ctx->cfg->max_body_bytes);
        return;
    }
    if (r->flags & ROUTE_AUTH)
        authenticate(c);
    else
        serve(c);
}
