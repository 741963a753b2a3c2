/* rest.c - the request/response calls: register, rooms, send, typing,
 * presence, stats, metrics, health */
#include "rest.h"

#include <stdlib.h>
#include <string.h>

#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>

#include "api.h"
#include "app.h"
#include "auth.h"
#include "config.h"
#include "log.h"
#include "presence.h"
#include "query.h"
#include "ratelimit.h"
#include "reply.h"
#include "store.h"
#include "xmalloc.h"

static void unavailable(struct evhttp_request *req, enum transport kind)
{
    http_reply_error(req, kind, 503, "unavailable",
                     "the message store is unreachable; nothing was stored");
}

/* --- register --- */

struct reg {
    struct evhttp_request *req;
    char name[NAME_USER_MAX + 1];
    char token[AUTH_TOKEN_LEN + 1];
};

static void register_done(int status, bool created, void *arg)
{
    struct reg *g = arg;

    app.inflight--;
    if (status != 0) {
        unavailable(g->req, TRANSPORT_REST);
    } else if (!created) {
        http_reply_error(g->req, TRANSPORT_REST, 409, "name_taken",
                         "the name %s is taken", g->name);
    } else {
        size_t len;
        char *json = api_register_json(g->name, g->token, &len);
        log_info("registered user %s", g->name);
        http_reply_json(g->req, TRANSPORT_REST, 201, json, len);
        free(json);
    }
    free(g);
}

void rest_register(struct evhttp_request *req)
{
    struct reg *g = xcalloc(1, sizeof(*g));
    struct api_error err;
    size_t len;
    const char *body = http_body(req, &len);

    g->req = req;
    if (!http_rate_ok(req, TRANSPORT_REST, app.register_limit,
                      http_client_address(req))) {
        free(g);
        return;
    }
    if (api_parse_register(body, len, g->name, &err) != 0) {
        http_reply_api_error(req, TRANSPORT_REST, &err);
        free(g);
        return;
    }
    if (auth_new_token(g->token) != 0) {
        http_reply_error(req, TRANSPORT_REST, 500, "internal",
                         "no randomness for a token");
        free(g);
        return;
    }
    app.inflight++;
    if (store_register(app.store, g->name, g->token, register_done, g) != 0)
        register_done(-1, false, g);
}

/* --- rooms --- */

struct rooms {
    struct evhttp_request *req;
    struct query_rooms q;
};

static void rooms_done(int status, const char *const *names,
                       const long long *last_ts, size_t n, void *arg)
{
    struct rooms *g = arg;
    size_t len;
    char *json;

    if (status != 0) {
        unavailable(g->req, TRANSPORT_REST);
    } else {
        json = api_rooms_json(names, last_ts, n, (size_t)g->q.limit, &len);
        http_reply_json(g->req, TRANSPORT_REST, 200, json, len);
        free(json);
    }
    free(g);
}

void rest_rooms(struct request *r)
{
    struct evhttp_request *req = r->req;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    struct rooms *g = xcalloc(1, sizeof(*g));
    struct api_error err;

    http_request_free(r);
    g->req = req;
    if (query_parse_rooms(uri ? evhttp_uri_get_query(uri) : NULL, &g->q,
                          &err) != 0) {
        http_reply_api_error(req, TRANSPORT_REST, &err);
        free(g);
        return;
    }
    /* one more than the page, to know whether there are more */
    if (store_rooms(app.store, g->q.limit + 1, g->q.after_ts,
                    g->q.has_after ? g->q.after_name : NULL, rooms_done,
                    g) != 0)
        rooms_done(-1, NULL, NULL, 0, g);
}

/* --- send --- */

struct send {
    struct request *r;
    char *text;
    size_t len;
    char key[API_KEY_MAX + 1];
};

static void send_done(int status, const struct reply_appended *a, void *arg)
{
    struct send *s = arg;
    struct request *r = s->r;

    app.inflight--;
    if (status != 0) {
        struct api_error err;

        api_unavailable(&err, status, API_DOING_SEND);
        http_reply_api_error(r->req, r->kind, &err);
    } else {
        struct chat_event ev;
        size_t len;
        char *json;

        /* a repeat answers the first message, whatever this one said */
        event_init_message(&ev, r->room, a->id, r->user,
                           a->repeat ? a->text : s->text,
                           a->repeat ? a->text_len : s->len, a->ts);
        json = event_to_json(&ev, &len);
        http_reply_json(r->req, r->kind, a->repeat ? 200 : 201, json, len);
        free(json);
        event_clear(&ev);
        presence_touch(r->room, r->user);
    }
    free(s->text);
    free(s);
    http_request_free(r);
}

/* The Idempotency-Key header, at most one. */
static int idempotency_key(struct evhttp_request *req,
                           char key[API_KEY_MAX + 1], struct api_error *err)
{
    const char *value;

    if (http_header_once(req, "Idempotency-Key", &value) != 0)
        return api_fail(err, 400, API_BAD_REQUEST,
                        "one Idempotency-Key header at most");
    return api_parse_key(value, value ? strlen(value) : 0, key, err);
}

void rest_send(struct request *r)
{
    struct send *s = xcalloc(1, sizeof(*s));
    struct api_error err;
    size_t len;
    const char *body = http_body(r->req, &len);

    s->r = r;
    if (!http_rate_ok(r->req, r->kind, app.send_limit, r->user)) {
        free(s);
        http_request_free(r);
        return;
    }
    if (idempotency_key(r->req, s->key, &err) != 0 ||
        api_parse_message(body, len, app.cfg->max_message_bytes, &s->text,
                          &s->len, &err) != 0) {
        http_reply_api_error(r->req, r->kind, &err);
        free(s->text);
        free(s);
        http_request_free(r);
        return;
    }
    app.inflight++;
    if (store_append(app.store, r->room, r->user, s->text, s->len, s->key,
                     send_done, s) != 0)
        send_done(API_FAULT_DOWN, NULL, s);
}

/* --- typing --- */

void rest_typing(struct request *r)
{
    struct chat_event ev;

    if (!http_rate_ok(r->req, r->kind, app.typing_limit, r->user)) {
        http_request_free(r);
        return;
    }
    event_init_typing(&ev, r->room, r->user, event_now_ms());
    if (store_publish(app.store, &ev) != 0) {
        unavailable(r->req, r->kind);
    } else {
        presence_touch(r->room, r->user);
        http_reply_json(r->req, r->kind, 202, "{\"ok\":true}", 11);
    }
    event_clear(&ev);
    http_request_free(r);
}

/* --- presence --- */

static void presence_done(int status, const char *const *names, size_t n,
                          void *arg)
{
    struct request *r = arg;
    size_t len;
    char *json;

    if (status != 0) {
        unavailable(r->req, r->kind);
    } else {
        json = api_online_json(names, n, &len);
        http_reply_json(r->req, r->kind, 200, json, len);
        free(json);
    }
    http_request_free(r);
}

void rest_presence(struct request *r)
{
    if (store_online(app.store, r->room, presence_done, r) != 0)
        presence_done(-1, NULL, 0, r);
}

/* --- stats, metrics, health --- */

static void stats_done(int status, const char *const *recs, const size_t *lens,
                       size_t n, void *arg)
{
    struct evhttp_request *req = arg;
    size_t len;
    char *json = stats_cluster_json(status == 0, recs, lens, n, &len);

    http_reply_json(req, TRANSPORT_REST, 200, json, len);
    free(json);
}

/* The sum over every process that wrote its counters to Redis lately, or
 * with ?scope=process (or Redis unreadable) this process alone. */
void rest_stats(struct evhttp_request *req)
{
    const char *qs = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    char *scope = query_get(qs, "scope");
    bool cluster = scope == NULL || strcmp(scope, "cluster") == 0;

    if (scope != NULL && !cluster && strcmp(scope, "process") != 0) {
        http_reply_error(req, TRANSPORT_REST, 400, "bad_request",
                         "scope is \"cluster\" (the default) or "
                         "\"process\"");
    } else if (!cluster || store_stats_read(app.store, stats_done, req) != 0) {
        stats_done(-1, NULL, NULL, 0, req);
    }
    free(scope);
}

void rest_metrics(struct evhttp_request *req)
{
    size_t len;
    char *text = stats_prometheus(&len);

    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    evbuffer_add(evhttp_request_get_output_buffer(req), text, len);
    evhttp_send_reply(req, 200, "OK", NULL);
    free(text);
}

static void healthz_done(int status, void *arg)
{
    struct evhttp_request *req = arg;

    if (status != 0) {
        struct api_error err;

        api_unavailable(&err, status, API_DOING_HEALTH);
        http_reply_api_error(req, TRANSPORT_REST, &err);
    } else {
        http_reply_json(req, TRANSPORT_REST, 200, "{\"status\":\"ok\"}", 15);
    }
}

void rest_healthz(struct evhttp_request *req)
{
    if (app.draining)
        http_reply_error(req, TRANSPORT_REST, 503, "unavailable",
                         "shutting down");
    else if (store_health(app.store, healthz_done, req) != 0)
        healthz_done(API_FAULT_DOWN, req);
}
