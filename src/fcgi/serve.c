/* serve.c - crosstalk-fcgi's side of the REST core */
#include "serve.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "archive.h"
#include "config.h"
#include "log.h"
#include "store.h"
#include "xmalloc.h"

/* What is drained of a body too large to handle, so the web server is not
 * cut off mid-send; beyond it the connection is simply closed. */
#define DRAIN_MAX (64L << 20)

/* --- the hooks --- */

struct touch {
    struct store *store;
    char room[NAME_ROOM_MAX + 1];
};

static void announce(int status, const char *const *names, size_t n, void *arg)
{
    struct touch *t = arg;
    struct chat_event ev;

    if (status != 0)
        return;
    event_init_presence(&ev, t->room, names, n, event_now_ms());
    store_publish(t->store, &ev, NULL, NULL);
    event_clear(&ev);
}

static void touched(int status, bool changed, void *arg)
{
    struct touch *t = arg;

    /* a user who was not online, or expired ones dropped on the way: the
     * room's list is announced */
    if (status == 0 && changed)
        store_online(t->store, t->room, announce, t);
}

/* Activity keeps the user online until presence_ttl from now. The pool
 * holds nothing between requests: every touch is written. Best effort:
 * the answer does not depend on it. */
static void hook_touch(void *arg, const char *room, const char *user)
{
    struct rest_ctx *ctx = arg;
    struct touch t = {ctx->store, ""};

    snprintf(t.room, sizeof(t.room), "%s", room);
    store_presence_add(ctx->store, room, user, "pool",
                       event_now_ms() + (int64_t)ctx->cfg->presence_ttl * 1000,
                       touched, &t);
}

static int hook_archive(void *arg, const char *room,
                        const struct streamid *before, int limit,
                        struct chat_event **evs, size_t *n)
{
    (void)arg;
    if (!archive_enabled())
        return 0;
    return archive_before(room, before, limit, evs, n);
}

void serve_init(struct rest_ctx *ctx, const struct config *cfg,
                struct store *store)
{
    rest_init(ctx, cfg, store);
    ctx->hooks.arg = ctx;
    ctx->hooks.touch = hook_touch;
    ctx->hooks.archive_before = hook_archive;
}

/* --- the request --- */

/* Reads the body: at most max_body bytes, or notes that it is larger and
 * drains it. Returns the body (NUL-terminated, newly allocated) or NULL. */
static char *read_body(FCGX_Request *req, long max_body, size_t *len,
                       bool *too_large)
{
    const char *cl = FCGX_GetParam("CONTENT_LENGTH", req->envp);
    char *end, *body, sink[8192];
    long want = -1, got = 0;
    int n;

    *len = 0;
    *too_large = false;
    if (cl != NULL && *cl != '\0') {
        errno = 0;
        want = strtol(cl, &end, 10);
        if (errno != 0 || *end != '\0' || want < 0)
            want = -1;
    }
    if (want == 0)
        return NULL;
    if (want > max_body) {
        *too_large = true;
        while (got < DRAIN_MAX &&
               (n = FCGX_GetStr(sink, sizeof(sink), req->in)) > 0)
            got += n;
        return NULL;
    }
    /* without a length, read to the end, one byte past the limit at most */
    body = xmalloc((size_t)(want >= 0 ? want : max_body + 1) + 1);
    for (;;) {
        long room = (want >= 0 ? want : max_body + 1) - got;

        if (room <= 0)
            break;
        n = FCGX_GetStr(body + got, room > 65536 ? 65536 : (int)room, req->in);
        if (n <= 0)
            break;
        got += n;
    }
    if (got > max_body) {
        *too_large = true;
        free(body);
        while ((n = FCGX_GetStr(sink, sizeof(sink), req->in)) > 0)
            ;
        return NULL;
    }
    body[got] = '\0';
    *len = (size_t)got;
    return body;
}

/* A request header's value, and how many times it came: nginx before 1.23
 * passes each of several as a parameter of its own. */
static const char *header_param(FCGX_Request *req, const char *name, int *count)
{
    size_t n = strlen(name);
    const char *first = NULL;

    *count = 0;
    for (char **e = req->envp; e != NULL && *e != NULL; e++) {
        if (strncmp(*e, name, n) != 0 || (*e)[n] != '=')
            continue;
        if (first == NULL)
            first = *e + n + 1;
        (*count)++;
    }
    return first;
}

/* The request head's size as the REST core counts it (rest.h), from what
 * the web server passes: HTTP_X_Y for each header X-Y. nginx passes
 * Content-Type and Content-Length that way too, besides CONTENT_TYPE and
 * CONTENT_LENGTH; those two count only from a server that does not. Behind
 * nginx the two paths still differ by the headers nginx adds for
 * crosstalkd (X-Real-IP, X-Forwarded-*), a few dozen bytes. */
static size_t head_bytes(FCGX_Request *req, const char *uri)
{
    static const char *const meta[][2] = {
        {"CONTENT_TYPE", "HTTP_CONTENT_TYPE"},
        {"CONTENT_LENGTH", "HTTP_CONTENT_LENGTH"}};
    size_t n = (uri != NULL ? strlen(uri) : 0) + 16;

    for (char **e = req->envp; e != NULL && *e != NULL; e++) {
        const char *eq = strchr(*e, '=');

        if (eq != NULL && strncmp(*e, "HTTP_", 5) == 0)
            n += (size_t)(eq - *e) - 5 + strlen(eq + 1) + 4;
    }
    for (size_t i = 0; i < sizeof(meta) / sizeof(meta[0]); i++) {
        const char *v = FCGX_GetParam(meta[i][0], req->envp);
        if (v != NULL && *v != '\0' &&
            FCGX_GetParam(meta[i][1], req->envp) == NULL)
            n += strlen(meta[i][0]) + strlen(v) + 4;
    }
    return n;
}

/* libfcgi's own printf knows no %zu: the head is formatted here. A body
 * ends with a newline, as crosstalkd's do. */
static void write_response(FCGX_Request *req, const struct rest_response *rs)
{
    char head[REST_HEADERS_MAX * (REST_HEADER_VALUE_MAX + 64) + 128];
    size_t n;

    n = (size_t)snprintf(head, sizeof(head), "Status: %d %s\r\n", rs->status,
                         rest_reason(rs->status));
    for (int i = 0; i < rs->n_headers; i++)
        n += (size_t)snprintf(head + n, sizeof(head) - n, "%s: %s\r\n",
                              rs->headers[i].name, rs->headers[i].value);
    n += (size_t)snprintf(head + n, sizeof(head) - n,
                          "Content-Length: %zu\r\n\r\n",
                          rs->len > 0 ? rs->len + 1 : 0);
    FCGX_PutStr(head, (int)n, req->out);
    if (rs->body != NULL && rs->len > 0) {
        FCGX_PutStr(rs->body, (int)rs->len, req->out);
        FCGX_PutChar('\n', req->out);
    }
}

struct served {
    FCGX_Request *req;
    struct serve_outcome *out;
};

static void answered(const struct rest_request *rq, struct rest_response *rs,
                     void *arg)
{
    struct served *s = arg;

    (void)rq;
    write_response(s->req, rs);
    s->out->kind = rs->kind;
    s->out->status = rs->status;
    s->out->bytes_out = rs->len > 0 ? rs->len + 1 : 0;
    s->out->delivered = rs->delivered;
}

static long elapsed_us(const struct timeval *t0)
{
    struct timeval t1;

    gettimeofday(&t1, NULL);
    return (t1.tv_sec - t0->tv_sec) * 1000000L + (t1.tv_usec - t0->tv_usec);
}

/* The path is the raw one of REQUEST_URI, as crosstalkd sees it;
 * SCRIPT_NAME and PATH_INFO serve for web servers that send no
 * REQUEST_URI. */
void serve_request(struct rest_ctx *ctx, FCGX_Request *req,
                   struct serve_outcome *out)
{
    const char *method = FCGX_GetParam("REQUEST_METHOD", req->envp);
    const char *uri = FCGX_GetParam("REQUEST_URI", req->envp);
    struct served s = {req, out};
    struct rest_request rq;
    struct timeval t0;
    char *path, *body;
    const char *q;
    int count;

    gettimeofday(&t0, NULL);
    memset(&rq, 0, sizeof(rq));
    memset(out, 0, sizeof(*out));
    rq.method = method != NULL ? method : "GET";
    if (uri != NULL && *uri != '\0') {
        q = strchr(uri, '?');
        path = q != NULL ? xstrndup(uri, (size_t)(q - uri)) : xstrdup(uri);
        rq.query = q != NULL ? q + 1 : NULL;
    } else {
        const char *sn = FCGX_GetParam("SCRIPT_NAME", req->envp);
        const char *pi = FCGX_GetParam("PATH_INFO", req->envp);

        path = xasprintf("%s%s", sn != NULL ? sn : "", pi != NULL ? pi : "");
        rq.query = FCGX_GetParam("QUERY_STRING", req->envp);
    }
    if (rq.query != NULL && *rq.query == '\0')
        rq.query = NULL;
    rq.path = path[0] != '\0' ? path : "/";
    rq.authorization = header_param(req, "HTTP_AUTHORIZATION", &count);
    rq.authorization_twice = count > 1;
    rq.idempotency_key = header_param(req, "HTTP_IDEMPOTENCY_KEY", &count);
    rq.idempotency_key_twice = count > 1;
    rq.origin = FCGX_GetParam("HTTP_ORIGIN", req->envp);
    rq.host = FCGX_GetParam("HTTP_HOST", req->envp);
    rq.preflight =
        FCGX_GetParam("HTTP_ACCESS_CONTROL_REQUEST_METHOD", req->envp) != NULL;
    rq.remote_addr = FCGX_GetParam("REMOTE_ADDR", req->envp);
    rq.head_bytes = head_bytes(req, uri);
    body = read_body(req, ctx->cfg->max_body_bytes, &rq.body_len,
                     &rq.body_too_large);
    rq.body = body;
    rest_handle(ctx, &rq, answered, &s);
    log_debug("%s %s %d %zu bytes %ld us", rq.method, path, out->status,
              out->bytes_out, elapsed_us(&t0));
    free(body);
    free(path);
}
