/* http.c - crosstalkd's HTTP layer: routing, authentication, replies,
 * static files */
#include "http.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <search.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "app.h"
#include "auth.h"
#include "config.h"
#include "log.h"
#include "ratelimit.h"
#include "rest.h"
#include "store.h"
#include "transport.h"
#include "xmalloc.h"

static struct evhttp_bound_socket *listener;

struct http_watch {
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    struct event *peek;
    void (*gone)(void *arg);
    void *arg;
};

void http_request_free(struct request *r)
{
    if (r == NULL)
        return;
    free(r->query);
    free(r);
}

void http_api_headers(struct evhttp_request *req, const char *content_type)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    const char *origin =
        evhttp_find_header(evhttp_request_get_input_headers(req), "Origin");

    evhttp_add_header(h, "Content-Type", content_type);
    evhttp_add_header(h, "Cache-Control", "no-store");
    if (origin != NULL && http_origin_allowed(req, origin) &&
        app.cfg->allowed_origins[0] != '\0') {
        evhttp_add_header(h, "Access-Control-Allow-Origin", origin);
        evhttp_add_header(h, "Vary", "Origin");
    }
}

void http_reply_json(struct evhttp_request *req, enum transport kind,
                     int status, const char *body, size_t len)
{
    struct evbuffer *out = evhttp_request_get_output_buffer(req);

    http_api_headers(req, "application/json");
    if (len > 0) {
        evbuffer_add(out, body, len);
        evbuffer_add(out, "\n", 1);
        stats[kind].bytes_out += len + 1;
    }
    evhttp_send_reply(req, status, NULL, NULL);
}

void http_reply_api_error(struct evhttp_request *req, enum transport kind,
                          const struct api_error *err)
{
    size_t len;
    char *json = api_error_json(err, &len);

    if (err->status == 401)
        evhttp_add_header(evhttp_request_get_output_headers(req),
                          "WWW-Authenticate", "Bearer");
    http_reply_json(req, kind, err->status, json, len);
    free(json);
}

void http_reply_error(struct evhttp_request *req, enum transport kind,
                      int status, const char *code, const char *fmt, ...)
{
    struct api_error err;
    va_list ap;

    err.status = status;
    err.code = code;
    va_start(ap, fmt);
    vsnprintf(err.message, sizeof(err.message), fmt, ap);
    va_end(ap);
    http_reply_api_error(req, kind, &err);
}

const char *http_body(struct evhttp_request *req, size_t *len)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    unsigned char *p;

    /* a NUL after the body, so parsers may treat it as a string */
    evbuffer_add(in, "", 1);
    *len = evbuffer_get_length(in) - 1;
    p = evbuffer_pullup(in, -1);
    return (const char *)p;
}

bool http_origin_allowed(struct evhttp_request *req, const char *origin)
{
    const char *list = app.cfg->allowed_origins;
    size_t olen = strlen(origin);

    if (list[0] == '\0') {
        /* same host: the Origin's authority equals the Host header */
        const char *host =
            evhttp_find_header(evhttp_request_get_input_headers(req), "Host");
        const char *auth = strstr(origin, "://");
        return host != NULL && auth != NULL && strcmp(auth + 3, host) == 0;
    }
    while (*list) {
        size_t n = strcspn(list, ",");
        const char *item = list;
        size_t ilen = n;
        while (ilen > 0 && (*item == ' ' || *item == '\t')) {
            item++;
            ilen--;
        }
        while (ilen > 0 && (item[ilen - 1] == ' ' || item[ilen - 1] == '\t'))
            ilen--;
        if ((ilen == 1 && item[0] == '*') ||
            (ilen == olen && strncasecmp(item, origin, olen) == 0))
            return true;
        list += n;
        if (*list == ',')
            list++;
    }
    return false;
}

/* --- watching for a client that goes away --- */

static void watch_closed(struct evhttp_connection *evcon, void *arg)
{
    struct http_watch *w = arg;
    struct evhttp_request *req = w->req;
    bool detached = evhttp_request_get_connection(req) == NULL;
    void (*gone)(void *) = w->gone;
    void *garg = w->arg;

    event_free(w->peek);
    free(w);
    gone(garg);
    /* evhttp frees a request still on its connection; one it detached on
     * EOF or timeout waits for an answer that will never come */
    if (detached)
        evhttp_request_free(req);
}

static void watch_peek(evutil_socket_t fd, short what, void *arg)
{
    struct http_watch *w = arg;
    struct evhttp_connection *evcon = w->evcon;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);

    if (n > 0) {
        /* a pipelined request: evhttp reads it after our answer */
        event_del(w->peek);
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    /* EOF or reset: drop the connection, which ends in watch_closed */
    evhttp_connection_free(evcon);
}

struct http_watch *http_watch_new(struct evhttp_request *req,
                                  void (*gone)(void *arg), void *arg)
{
    struct http_watch *w = xcalloc(1, sizeof(*w));
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);

    w->req = req;
    w->evcon = evcon;
    w->gone = gone;
    w->arg = arg;
    w->peek = event_new(app.base, bufferevent_getfd(bev), EV_READ | EV_PERSIST,
                        watch_peek, w);
    event_add(w->peek, NULL);
    evhttp_connection_set_closecb(evcon, watch_closed, w);
    return w;
}

void http_watch_free(struct http_watch *w)
{
    if (w == NULL)
        return;
    evhttp_connection_set_closecb(w->evcon, NULL, NULL);
    event_free(w->peek);
    free(w);
}

const char *http_client_address(struct evhttp_request *req)
{
    char *addr = NULL;
    ev_uint16_t port;
    const char *real;

    evhttp_connection_get_peer(evhttp_request_get_connection(req), &addr,
                               &port);
    if (addr == NULL)
        return "?";
    if (strcmp(addr, "127.0.0.1") == 0 || strcmp(addr, "::1") == 0) {
        real = evhttp_find_header(evhttp_request_get_input_headers(req),
                                  "X-Real-IP");
        if (real != NULL && real[0] != '\0')
            return real;
    }
    return addr;
}

bool http_rate_ok(struct evhttp_request *req, enum transport kind,
                  struct ratelimit *rl, const char *key)
{
    int retry;
    char value[16];

    if (ratelimit_take(rl, key, event_now_ms(), &retry))
        return true;
    snprintf(value, sizeof(value), "%d", retry);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After",
                      value);
    http_reply_error(req, kind, 429, "rate_limited",
                     "too many requests; retry in %d s", retry);
    return false;
}

/* The request line and headers as they came, in bytes (near enough: the
 * separators are counted as ": " and CRLF). */
static size_t head_bytes(struct evhttp_request *req)
{
    const struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    const struct evkeyval *kv;
    size_t n = strlen(evhttp_request_get_uri(req)) + 16;

    TAILQ_FOREACH(kv, h, next)
        n += strlen(kv->key) + strlen(kv->value) + 4;
    return n;
}

struct deferred {
    void (*fn)(void *);
    void *arg;
};

static void run_deferred(evutil_socket_t fd, short what, void *arg)
{
    struct deferred d = *(struct deferred *)arg;

    free(arg);
    d.fn(d.arg);
}

void http_defer(void (*fn)(void *arg), void *arg)
{
    struct deferred *d = xmalloc(sizeof(*d));
    struct timeval now = {0, 0};

    d->fn = fn;
    d->arg = arg;
    if (event_base_once(app.base, -1, EV_TIMEOUT, run_deferred, d, &now) != 0) {
        log_error("event_base_once failed");
        abort();
    }
}

/* --- the whole-head timeout ---
 *
 * evhttp's timeout bounds each pause in a request head, so a client that
 * sends a header line every few seconds (slowloris) holds its connection
 * for ever. Until its first request is routed, each connection is watched
 * here and cut once header_timeout has passed since it was accepted. We
 * hold a reference on its bufferevent meanwhile, so the pointer stays ours
 * to look at after evhttp has let go of it. */

struct head_watch {
    struct bufferevent *bev;
    int64_t accepted_ms;
    bool cut;
};

static void *head_watches; /* tsearch of struct head_watch, by bev */
static size_t n_head_watches;
static struct event *head_sweep;

static int head_cmp(const void *a, const void *b)
{
    const struct head_watch *x = a, *y = b;

    return x->bev < y->bev ? -1 : x->bev > y->bev;
}

static struct bufferevent *new_connection(struct event_base *base, void *arg)
{
    struct bufferevent *bev =
        bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    struct head_watch *w = xmalloc(sizeof(*w));

    if (bev == NULL) {
        log_error("bufferevent_socket_new failed");
        abort();
    }
    w->bev = bev;
    w->accepted_ms = event_now_ms();
    w->cut = false;
    bufferevent_incref(bev);
    tsearch(w, &head_watches, head_cmp);
    n_head_watches++;
    return bev;
}

static void head_forget(struct head_watch *w)
{
    tdelete(w, &head_watches, head_cmp);
    n_head_watches--;
    bufferevent_decref(w->bev); /* the last reference closes a dead one */
    free(w);
}

/* A request head came in whole: the connection is evhttp's alone now. */
static void head_done(struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct head_watch key, *w;
    void *node;

    if (n_head_watches == 0 || evcon == NULL)
        return;
    key.bev = evhttp_connection_get_bufferevent(evcon);
    if ((node = tfind(&key, &head_watches, head_cmp)) == NULL)
        return;
    w = *(struct head_watch **)node;
    head_forget(w);
}

static struct head_watch **sweep_list;
static size_t sweep_n;

static void collect_watch(const void *node, VISIT which, int depth)
{
    if (which == postorder || which == leaf)
        sweep_list[sweep_n++] = *(struct head_watch *const *)node;
}

static void sweep_heads(evutil_socket_t fd, short what, void *arg)
{
    int64_t deadline = event_now_ms() - app.cfg->header_timeout * 1000LL;

    if (n_head_watches == 0)
        return;
    sweep_list = xcalloc(n_head_watches, sizeof(*sweep_list));
    sweep_n = 0;
    twalk(head_watches, collect_watch);
    for (size_t i = 0; i < sweep_n; i++) {
        struct head_watch *w = sweep_list[i];
        bufferevent_data_cb rcb, wcb;
        bufferevent_event_cb ecb;

        bufferevent_getcb(w->bev, &rcb, &wcb, &ecb, NULL);
        if (rcb == NULL && wcb == NULL && ecb == NULL) {
            /* bufferevent_free cleared them: evhttp is done with it */
            bufferevent_disable(w->bev, EV_READ | EV_WRITE);
            head_forget(w);
        } else if (!w->cut && w->accepted_ms < deadline) {
            /* evhttp sees the end of the stream and frees the connection */
            log_debug("cutting a connection whose request head took over "
                      "%d s",
                      app.cfg->header_timeout);
            shutdown(bufferevent_getfd(w->bev), SHUT_RDWR);
            w->cut = true;
        }
    }
    free(sweep_list);
    sweep_list = NULL;
}

/* --- authentication --- */

static void auth_done(int status, const char *user, void *arg)
{
    struct request *r = arg;

    if (status != 0) {
        http_reply_error(r->req, r->kind, 503, "unavailable",
                         "the message store is unreachable; try again");
        http_request_free(r);
        return;
    }
    if (user == NULL) {
        http_reply_error(r->req, r->kind, 401, "unauthorized", "unknown token");
        http_request_free(r);
        return;
    }
    strcpy(r->user, user);
    r->handler(r);
}

void http_authenticate(struct request *r)
{
    const char *authz = evhttp_find_header(
        evhttp_request_get_input_headers(r->req), "Authorization");
    char *token = auth_from_request(authz, r->query);

    if (token == NULL) {
        http_reply_error(r->req, r->kind, 401, "unauthorized",
                         "a token is required: Authorization: Bearer <token> "
                         "or ?token=");
        http_request_free(r);
    } else if (store_auth(app.store, token, auth_done, r) != 0) {
        auth_done(-1, NULL, r);
    }
    free(token);
}

/* --- static files --- */

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

static void serve_static(struct evhttp_request *req, const char *raw_path)
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
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      content_type(real));
    evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control",
                      "no-cache");
    if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
        char size[32];
        snprintf(size, sizeof(size), "%lld", (long long)sb.st_size);
        evhttp_add_header(evhttp_request_get_output_headers(req),
                          "Content-Length", size);
    } else if (sb.st_size > 0) {
        evbuffer_add_file(evhttp_request_get_output_buffer(req), fd, 0,
                          sb.st_size);
        fd = -1; /* the buffer owns it now */
    }
    evhttp_send_reply(req, 200, "OK", NULL);
done:
    if (fd >= 0)
        close(fd);
    free(path);
    free(full);
    free(real);
    free(root);
}

/* --- routing --- */

struct route {
    const char *action; /* after /api/rooms/{room}/ */
    enum evhttp_cmd_type method;
    enum transport kind;
    void (*handler)(struct request *r);
};

static const struct route room_routes[] = {
    {"messages", EVHTTP_REQ_GET, TRANSPORT_SHORT_POLL, short_poll_handle},
    {"messages", EVHTTP_REQ_POST, TRANSPORT_REST, rest_send},
    {"poll", EVHTTP_REQ_GET, TRANSPORT_LONG_POLL, long_poll_handle},
    {"events", EVHTTP_REQ_GET, TRANSPORT_SSE, sse_handle},
    {"ws", EVHTTP_REQ_GET, TRANSPORT_WEBSOCKET, ws_handle},
    {"typing", EVHTTP_REQ_POST, TRANSPORT_REST, rest_typing},
    {"presence", EVHTTP_REQ_GET, TRANSPORT_REST, rest_presence},
};

static void method_not_allowed(struct evhttp_request *req, const char *allow)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
    http_reply_error(req, TRANSPORT_REST, 405, "method_not_allowed",
                     "this path allows %s", allow);
}

static void route_room(struct evhttp_request *req, enum evhttp_cmd_type m,
                       const char *rest, const char *query)
{
    const char *slash = strchr(rest, '/');
    const char *action;
    const struct route *found = NULL;
    bool path_known = false;
    struct request *r;

    if (slash == NULL || strchr(slash + 1, '/') != NULL) {
        http_reply_error(req, TRANSPORT_REST, 404, "not_found", "no such path");
        return;
    }
    action = slash + 1;
    for (size_t i = 0; i < sizeof(room_routes) / sizeof(room_routes[0]); i++) {
        if (strcmp(room_routes[i].action, action) != 0)
            continue;
        path_known = true;
        if (room_routes[i].method == m ||
            (m == EVHTTP_REQ_HEAD && room_routes[i].method == EVHTTP_REQ_GET &&
             strcmp(action, "ws") != 0 && strcmp(action, "events") != 0 &&
             strcmp(action, "poll") != 0))
            found = &room_routes[i];
    }
    if (!path_known) {
        http_reply_error(req, TRANSPORT_REST, 404, "not_found", "no such path");
        return;
    }
    if (found == NULL) {
        method_not_allowed(req, strcmp(action, "messages") == 0 ? "GET, POST"
                                : strcmp(action, "typing") == 0 ? "POST"
                                                                : "GET");
        return;
    }
    if (!names_room_valid(rest, slash - rest)) {
        http_reply_error(req, found->kind, 400, "bad_name",
                         "a room name is 1 to 64 of a-z 0-9 _ -");
        return;
    }
    stats[found->kind].requests++;
    if (found->kind == TRANSPORT_LONG_POLL || found->kind == TRANSPORT_SSE ||
        found->kind == TRANSPORT_WEBSOCKET) {
        if (stats_streams() >= (uint64_t)app.cfg->max_connections) {
            evhttp_add_header(evhttp_request_get_output_headers(req),
                              "Retry-After", "1");
            http_reply_error(req, found->kind, 503, "unavailable",
                             "this server holds max_connections (%d) "
                             "streams; try another or later",
                             app.cfg->max_connections);
            return;
        }
    }
    r = xcalloc(1, sizeof(*r));
    r->req = req;
    r->method = m;
    r->kind = found->kind;
    memcpy(r->room, rest, slash - rest);
    r->query = query ? xstrdup(query) : NULL;
    r->handler = found->handler;
    http_authenticate(r);
}

/* A browser's CORS preflight: answered for origins allowed_origins names
 * (none by default, so cross-origin browsers are refused). Returns false
 * when the request is not one. */
static bool preflight(struct evhttp_request *req)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    const char *origin = evhttp_find_header(in, "Origin");

    if (evhttp_request_get_command(req) != EVHTTP_REQ_OPTIONS ||
        origin == NULL ||
        evhttp_find_header(in, "Access-Control-Request-Method") == NULL)
        return false;
    if (app.cfg->allowed_origins[0] != '\0' &&
        http_origin_allowed(req, origin)) {
        evhttp_add_header(out, "Access-Control-Allow-Origin", origin);
        evhttp_add_header(out, "Access-Control-Allow-Methods",
                          "GET, POST, OPTIONS");
        evhttp_add_header(
            out, "Access-Control-Allow-Headers",
            "Authorization, Content-Type, Idempotency-Key, Last-Event-ID");
        evhttp_add_header(out, "Access-Control-Max-Age", "600");
    }
    evhttp_add_header(out, "Vary", "Origin");
    evhttp_send_reply(req, 204, "No Content", NULL);
    return true;
}

static void route(struct evhttp_request *req, void *arg)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
    bool get = m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD;

    head_done(req);
    if (path == NULL || path[0] == '\0')
        path = "/";
    if (head_bytes(req) > (size_t)app.cfg->max_header_bytes) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Connection",
                          "close");
        http_reply_error(req, TRANSPORT_REST, 431, "too_large",
                         "the request head is over %d bytes",
                         app.cfg->max_header_bytes);
        return;
    }
    if (evbuffer_get_length(evhttp_request_get_input_buffer(req)) >
        (size_t)app.cfg->max_body_bytes) {
        http_reply_error(req, TRANSPORT_REST, 413, "too_large",
                         "the request body is over %d bytes",
                         app.cfg->max_body_bytes);
        return;
    }
    if (preflight(req)) {
        return;
    } else if (strncmp(path, "/api/rooms/", 11) == 0) {
        route_room(req, m, path + 11, query);
    } else if (strcmp(path, "/api/register") == 0) {
        if (m != EVHTTP_REQ_POST)
            return method_not_allowed(req, "POST");
        stats[TRANSPORT_REST].requests++;
        rest_register(req);
    } else if (strcmp(path, "/api/rooms") == 0) {
        if (!get)
            return method_not_allowed(req, "GET");
        stats[TRANSPORT_REST].requests++;
        rest_rooms(req);
    } else if (strcmp(path, "/api/stats") == 0) {
        if (!get)
            return method_not_allowed(req, "GET");
        rest_stats(req);
    } else if (strcmp(path, "/metrics") == 0) {
        if (!get)
            return method_not_allowed(req, "GET");
        rest_metrics(req);
    } else if (strcmp(path, "/healthz") == 0) {
        if (!get)
            return method_not_allowed(req, "GET");
        rest_healthz(req);
    } else if (strncmp(path, "/api/", 5) == 0 || strcmp(path, "/api") == 0) {
        http_reply_error(req, TRANSPORT_REST, 404, "not_found", "no such path");
    } else if (!get) {
        method_not_allowed(req, "GET, HEAD");
    } else {
        serve_static(req, path);
    }
}

int http_start(void)
{
    const struct config *cfg = app.cfg;

    app.http = evhttp_new(app.base);
    evhttp_set_allowed_methods(
        app.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                      EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                      EVHTTP_REQ_PATCH);
    /* Heads up to 4x the limit are read so that we answer 431 in JSON; a
     * larger one gets evhttp's own 400. */
    evhttp_set_max_headers_size(app.http,
                                (ev_ssize_t)cfg->max_header_bytes * 4);
    /* Bodies up to 4x the limit are read so that we answer 413 in JSON;
     * a larger declared length gets evhttp's own 413 without reading. */
    evhttp_set_max_body_size(app.http, (ev_ssize_t)cfg->max_body_bytes * 4);
    evhttp_set_timeout(app.http, cfg->header_timeout);
    evhttp_set_gencb(app.http, route, NULL);
    evhttp_set_bevcb(app.http, new_connection, NULL);
    {
        struct timeval tv = {1, 0};
        head_sweep = event_new(app.base, -1, EV_PERSIST, sweep_heads, NULL);
        event_add(head_sweep, &tv);
    }
    listener = evhttp_bind_socket_with_handle(app.http, cfg->bind,
                                              (ev_uint16_t)cfg->port);
    if (listener == NULL) {
        log_error("cannot listen on %s:%d: %s", cfg->bind, cfg->port,
                  strerror(errno));
        return -1;
    }
    log_info("listening on http://%s:%d/", cfg->bind, cfg->port);
    return 0;
}

void http_free(void)
{
    struct head_watch *w;

    http_stop_accepting();
    if (app.http != NULL)
        evhttp_free(app.http);
    app.http = NULL;
    while (head_watches != NULL) {
        w = *(struct head_watch **)head_watches;
        head_forget(w);
    }
}

void http_stop_accepting(void)
{
    if (head_sweep != NULL) {
        event_free(head_sweep);
        head_sweep = NULL;
    }
    if (listener != NULL) {
        evhttp_del_accept_socket(app.http, listener);
        listener = NULL;
    }
}
