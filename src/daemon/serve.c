/* serve.c - crosstalkd's side of the REST core */
#include "serve.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "app.h"
#include "bus.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "presence.h"
#include "query.h"
#include "rest.h"
#include "stats.h"
#include "store.h"
#include "transport.h"
#include "window.h"
#include "xmalloc.h"

/* A request on its way through the core. */
struct served {
    struct http_req *req;
    struct rest_request rq;
    bool write; /* counted in app.inflight until answered */
};

/* --- the hooks --- */

static void hook_touch(void *arg, const char *room, const char *user)
{
    (void)arg;
    presence_touch(room, user);
}

/* A short poll whose since is inside the span the bus has seen without a
 * break is answered from the room's window, as a long poll is: the
 * messages after it with their JSON as the bus has it, or nothing new when
 * it is the newest. The room is followed from now on for the next poll. */
static bool hook_recent(void *arg, const char *room,
                        const struct streamid *since, int limit,
                        rest_recent_cb answer, void *call)
{
    struct bus_event *evs[WINDOW_EVENTS];
    const char *jsons[WINDOW_EVENTS];
    size_t lens[WINDOW_EVENTS];
    size_t want =
        limit > 0 && limit < WINDOW_EVENTS ? (size_t)limit : WINDOW_EVENTS;
    struct streamid latest;
    int n;

    (void)arg;
    bus_room_follow(app.bus, room);
    n = bus_room_recent(app.bus, room, since, want, evs);
    if (n < 0) {
        /* the window may not reach back to the newest message the bus saw
         * (only a fill brought it): a client there is still up to date */
        if (!bus_room_latest(app.bus, room, &latest) ||
            streamid_cmp(since, &latest) != 0)
            return false;
        n = 0;
    }
    for (int i = 0; i < n; i++) {
        jsons[i] = evs[i]->json->data;
        lens[i] = evs[i]->json->len;
    }
    answer(call, jsons, lens, (size_t)n, n > 0 ? evs[n - 1]->ev.id : NULL);
    return true;
}

static bool hook_draining(void *arg)
{
    (void)arg;
    return app.draining;
}

void serve_init(struct rest_ctx *ctx)
{
    rest_init(ctx, app.cfg, app.store);
    ctx->serves_streams = true;
    ctx->hooks.touch = hook_touch;
    ctx->hooks.recent = hook_recent;
    ctx->hooks.draining = hook_draining;
}

/* --- what the core passes on --- */

static const char *content_type(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".json", "application/json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".txt", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(path, '.');

    for (size_t i = 0; dot && i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

static void serve_static(struct http_req *req, const char *raw_path)
{
    size_t len = 0;
    char *path = evhttp_uridecode(raw_path, 0, &len);
    char *full = NULL, *real = NULL, *root = NULL;
    struct stat sb;
    int fd = -1;

    /* a decoded NUL would cut the name short: no such file */
    if (path == NULL || strlen(path) != len || strstr(path, "..") != NULL ||
        strchr(path, '\\') || path[0] != '/') {
        http_reply_error(req, TRANSPORT_REST, 404, "not_found", "no such file");
        goto done;
    }
    full = xasprintf("%s%s%s", app.cfg->www_root, path,
                     path[strlen(path) - 1] == '/' ? "index.html" : "");
    root = realpath(app.cfg->www_root, NULL);
    real = realpath(full, NULL);
    if (root == NULL || real == NULL ||
        strncmp(real, root, strlen(root)) != 0 ||
        (real[strlen(root)] != '/' && real[strlen(root)] != '\0') ||
        (fd = open(real, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &sb) != 0 ||
        !S_ISREG(sb.st_mode)) {
        http_reply_error(req, TRANSPORT_REST, 404, "not_found", "no such file");
        goto done;
    }
    http_add_header(req, "Content-Type", content_type(real));
    http_add_header(req, "Cache-Control", "no-cache");
    /* a HEAD's Content-Length comes from the file's segment, which
     * http_send_reply then drops unread */
    if (sb.st_size > 0) {
        evbuffer_add_file(http_output(req), fd, 0, sb.st_size);
        fd = -1; /* the buffer owns it now */
    }
    http_send_reply(req, 200, "OK");
done:
    if (fd >= 0)
        close(fd);
    free(path);
    free(full);
    free(real);
    free(root);
}

static void stats_done(int status, const char *const *recs, const size_t *lens,
                       size_t n, void *arg)
{
    struct http_req *req = arg;
    size_t len;
    char *json = stats_cluster_json(status == 0, recs, lens, n, &len);

    http_reply_json(req, TRANSPORT_REST, 200, json, len);
    free(json);
}

/* The sum over every process that wrote its counters to Redis lately, or
 * with ?scope=process (or Redis unreadable) this process alone. */
static void serve_stats(struct http_req *req, const char *qs)
{
    char *scope = query_get(qs, "scope");
    bool cluster = scope == NULL || strcmp(scope, "cluster") == 0;

    if (scope != NULL && !cluster && strcmp(scope, "process") != 0)
        http_reply_error(req, TRANSPORT_REST, 400, "bad_request",
                         "scope is \"cluster\" (the default) or "
                         "\"process\"");
    else if (!cluster || store_stats_read(app.store, stats_done, req) != 0)
        stats_done(-1, NULL, NULL, 0, req);
    free(scope);
}

static void serve_metrics(struct http_req *req)
{
    size_t len;
    char *text = stats_prometheus(&len);

    http_add_header(req, "Content-Type",
                    "text/plain; version=0.0.4; charset=utf-8");
    evbuffer_add(http_output(req), text, len);
    http_send_reply(req, 200, "OK");
    free(text);
}

/* A long poll, an event stream or a WebSocket: refused while this server
 * holds max_connections of them, else handed to its transport. */
static void serve_stream(struct http_req *req, const struct rest_request *rq,
                         const struct rest_response *rs)
{
    const struct route *route = rs->pass.route;
    struct request *r;

    /* Draining: a new stream is not started here, nor refused with a 503,
     * which nginx would hand to the client and a bare EventSource take as
     * final. Its connection is closed unanswered instead: nginx then tries
     * the next daemon (proxy_next_upstream error), and a browser reconnects.
     * A long poll is answered at once (long_poll.c). */
    if (app.draining && route->id != ROUTE_POLL) {
        http_drop(req);
        return;
    }
    if (stats_streams() >= (uint64_t)app.cfg->max_connections) {
        http_reply_error(req, route->kind, 503, "unavailable",
                         "this server holds max_connections (%d) "
                         "streams; try another or later",
                         app.cfg->max_connections);
        return;
    }
    r = xcalloc(1, sizeof(*r));
    r->req = req;
    r->kind = route->kind;
    strcpy(r->room, rs->pass.room);
    strcpy(r->user, rs->user);
    r->query = rq->query != NULL ? xstrdup(rq->query) : NULL;
    if (route->id == ROUTE_POLL)
        long_poll_handle(r);
    else if (route->id == ROUTE_EVENTS)
        sse_handle(r);
    else
        ws_handle(r);
}

static void pass_on(struct http_req *req, const struct rest_request *rq,
                    const struct rest_response *rs)
{
    switch (rs->pass.route->id) {
    case ROUTE_STATIC:
        serve_static(req, rq->path);
        break;
    case ROUTE_METRICS:
        serve_metrics(req);
        break;
    case ROUTE_STATS:
        serve_stats(req, rq->query);
        break;
    default:
        serve_stream(req, rq, rs);
        break;
    }
}

/* --- the core's answer --- */

static void answered(const struct rest_request *rq, struct rest_response *rs,
                     void *arg)
{
    struct served *s = arg;
    struct http_req *req = s->req;
    const struct route *route = rs->pass.route;

    if (s->write)
        app.inflight--;
    if (route != NULL && route->id != ROUTE_HEALTHZ &&
        !(route->flags & ROUTE_DAEMON && !(route->flags & ROUTE_STREAM)))
        stats[rs->kind].requests++;
    if (rs->status == 0) {
        pass_on(req, rq, rs);
        free(s);
        return;
    }
    for (int i = 0; i < rs->n_headers; i++)
        http_add_header(req, rs->headers[i].name, rs->headers[i].value);
    if ((rs->status == 501 || rs->status == 431) &&
        http_answer_header(req, "Connection") == NULL)
        http_add_header(req, "Connection", "close");
    http_add_json(req, rs->kind, rs->body, rs->len);
    if (rs->delivered > 0)
        stats[rs->kind].delivered += (uint64_t)rs->delivered;
    else if (rs->delivered == 0)
        stats[rs->kind].empty++;
    http_send_reply(req, rs->status, rest_reason(rs->status));
    free(s);
}

void serve_request(struct http_req *req)
{
    struct served *s = xcalloc(1, sizeof(*s));
    struct rest_request *rq = &s->rq;
    const char *path = http_path(req);
    size_t body_len;

    s->req = req;
    rq->method = http_method(req);
    rq->path = path[0] != '\0' ? path : "/";
    rq->query = http_query(req);
    rq->authorization_twice =
        http_header_once(req, "Authorization", &rq->authorization) != 0;
    rq->idempotency_key_twice =
        http_header_once(req, "Idempotency-Key", &rq->idempotency_key) != 0;
    rq->origin = http_header(req, "Origin");
    rq->host = http_header(req, "Host");
    rq->preflight = http_header(req, "Access-Control-Request-Method") != NULL;
    rq->remote_addr = http_client_address(req);
    rq->head_bytes = http_head_bytes(req);
    rq->body = http_body(req, &body_len);
    rq->body_too_large = body_len > (size_t)app.cfg->max_body_bytes;
    rq->body_len = rq->body_too_large ? 0 : body_len;
    if (rq->body_too_large || body_len == 0)
        rq->body = NULL;
    s->write = strcmp(rq->method, "POST") == 0;
    if (s->write)
        app.inflight++;
    rest_handle(&app.rest, rq, answered, s);
}
