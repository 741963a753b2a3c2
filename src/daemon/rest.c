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

static void rooms_done(int status, const char *const *names,
                       const long long *last_ts, size_t n, void *arg)
{
    struct evhttp_request *req = arg;
    size_t len;
    char *json;

    if (status != 0) {
        unavailable(req, TRANSPORT_REST);
        return;
    }
    json = api_rooms_json(names, last_ts, n, &len);
    http_reply_json(req, TRANSPORT_REST, 200, json, len);
    free(json);
}

void rest_rooms(struct evhttp_request *req)
{
    if (store_rooms(app.store, rooms_done, req) != 0)
        unavailable(req, TRANSPORT_REST);
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
        struct event ev;
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
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    const struct evkeyval *h, *found = NULL;

    TAILQ_FOREACH(h, in, next) {
        if (evutil_ascii_strcasecmp(h->key, "Idempotency-Key") != 0)
            continue;
        if (found != NULL)
            return api_fail(err, 400, API_BAD_REQUEST,
                            "one Idempotency-Key header at most");
        found = h;
    }
    return api_parse_key(found ? found->value : NULL,
                         found ? strlen(found->value) : 0, key, err);
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
    struct event ev;

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

void rest_stats(struct evhttp_request *req)
{
    size_t len;
    char *json = stats_json(&len);

    http_reply_json(req, TRANSPORT_REST, 200, json, len);
    free(json);
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
