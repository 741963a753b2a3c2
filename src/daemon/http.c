/* http.c - crosstalkd's HTTP layer: connections, request heads, replies,
 * and watching a held request */
#include "http.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <arpa/inet.h>
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
#include <event2/listener.h>

#include "app.h"
#include "config.h"
#include "log.h"
#include "rest.h"
#include "stats.h"
#include "strlist.h"
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

void http_add_json(struct evhttp_request *req, enum transport kind,
                   const char *body, size_t len)
{
    struct evbuffer *out = evhttp_request_get_output_buffer(req);

    if (len == 0)
        return;
    evbuffer_add(out, body, len);
    evbuffer_add(out, "\n", 1);
    if (evhttp_request_get_command(req) != EVHTTP_REQ_HEAD)
        stats[kind].bytes_out += len + 1;
}

void http_reply_json(struct evhttp_request *req, enum transport kind,
                     int status, const char *body, size_t len)
{
    http_api_headers(req, "application/json");
    http_add_json(req, kind, body, len);
    http_send_reply(req, status, NULL);
}

void http_reply_api_error(struct evhttp_request *req, enum transport kind,
                          const struct api_error *err)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    size_t len;
    char *json = api_error_json(err, &len);

    if (err->status == 401)
        evhttp_add_header(out, "WWW-Authenticate", "Bearer");
    /* every 503 says when to come back (docs/api.md) */
    if (err->status == 503 && evhttp_find_header(out, "Retry-After") == NULL)
        evhttp_add_header(out, "Retry-After", "1");
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
    return rest_origin_allowed(
        app.cfg, origin,
        evhttp_find_header(evhttp_request_get_input_headers(req), "Host"));
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
    http_on_close(evcon, watch_closed, w);
    return w;
}

void http_watch_free(struct http_watch *w)
{
    if (w == NULL)
        return;
    http_on_close(w->evcon, NULL, NULL);
    event_free(w->peek);
    free(w);
}

/* --- trusted proxies --- */

struct addr {
    int family;
    unsigned char bytes[16];
};

static struct addr *proxies; /* trusted_proxies, parsed */
static size_t n_proxies;

/* Parses a numeric IPv4 or IPv6 address; an IPv4-mapped IPv6 address is
 * taken as the IPv4 one. Returns false when `s` is neither. */
static bool addr_parse(const char *s, struct addr *a)
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0,    0,
                                             0, 0, 0, 0, 0xff, 0xff};

    memset(a, 0, sizeof(*a));
    if (inet_pton(AF_INET, s, a->bytes) == 1) {
        a->family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, s, a->bytes) != 1)
        return false;
    a->family = AF_INET6;
    if (memcmp(a->bytes, mapped, sizeof(mapped)) == 0) {
        memmove(a->bytes, a->bytes + 12, 4);
        memset(a->bytes + 4, 0, 12);
        a->family = AF_INET;
    }
    return true;
}

/* Fills `proxies` from the comma-separated trusted_proxies. Returns 0, or
 * -1 with a message logged when an item is not a numeric address. */
static int proxies_load(const char *list)
{
    const char *p;
    size_t len;

    while ((p = strlist_next(&list, &len)) != NULL) {
        char item[64];

        if (len == 0)
            continue;
        if (len >= sizeof(item))
            len = sizeof(item) - 1;
        memcpy(item, p, len);
        item[len] = '\0';
        proxies = xrealloc(proxies, (n_proxies + 1) * sizeof(*proxies));
        if (!addr_parse(item, &proxies[n_proxies])) {
            log_error("trusted_proxies: \"%s\" is not an IPv4 or IPv6 "
                      "address",
                      item);
            return -1;
        }
        n_proxies++;
    }
    return 0;
}

static bool proxy_trusted(const char *peer)
{
    struct addr a;

    if (n_proxies == 0 || !addr_parse(peer, &a))
        return false;
    for (size_t i = 0; i < n_proxies; i++)
        if (proxies[i].family == a.family &&
            memcmp(proxies[i].bytes, a.bytes, sizeof(a.bytes)) == 0)
            return true;
    return false;
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
    if (proxy_trusted(addr)) {
        real = evhttp_find_header(evhttp_request_get_input_headers(req),
                                  "X-Real-IP");
        if (real != NULL && real[0] != '\0')
            return real;
    }
    return addr;
}

/* The request line and headers as they came, in bytes (near enough: the
 * separators are counted as ": " and CRLF). */
size_t http_head_bytes(struct evhttp_request *req)
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

/* --- accepting --- */

#define ACCEPT_BACKOFF_MS 250

static struct event *accept_resume;
static bool accept_paused;
static int64_t accept_logged_ms;
static uint64_t accept_failures; /* since last logged */

static void resume_accepting(evutil_socket_t fd, short what, void *arg)
{
    if (listener != NULL)
        evconnlistener_enable(evhttp_bound_socket_get_listener(listener));
}

/* accept() failed for another reason than a retriable one: out of
 * descriptors (EMFILE, ENFILE) or of kernel memory. The connection stays
 * in the backlog and the socket readable, so trying again at once spins:
 * stop accepting for a moment instead. */
static void accept_error(struct evconnlistener *lev, void *arg)
{
    int err = EVUTIL_SOCKET_ERROR();
    struct timeval tv = {0, ACCEPT_BACKOFF_MS * 1000};
    int64_t now = event_now_ms();

    evconnlistener_disable(lev);
    event_add(accept_resume, &tv);
    accept_paused = true;
    accept_failures++;
    if (now - accept_logged_ms >= 10000) {
        log_error("accept: %s (%llu time%s): pausing accepts for %d ms at "
                  "a time",
                  evutil_socket_error_to_string(err),
                  (unsigned long long)accept_failures,
                  accept_failures == 1 ? "" : "s", ACCEPT_BACKOFF_MS);
        accept_logged_ms = now;
        accept_failures = 0;
    }
}

/* Called on each accepted connection. */
static void accepted(void)
{
    if (!accept_paused)
        return;
    accept_paused = false;
    log_info("accepting connections again");
    accept_failures = 0;
    accept_logged_ms = 0;
}

/* --- connections ---
 *
 * Every accepted connection has a record here. It is counted against
 * max_connections from its accept to evhttp's close callback (shared with
 * the transports through http_on_close); one past the limit is refused at
 * once with a fixed 503.
 *
 * evhttp's timeout bounds each pause in a request head, so a client that
 * sends a header line every few seconds (slowloris) holds its connection
 * for ever. So each connection is also timed from its accept, and again
 * from the end of each answer, until its next request is routed, and is
 * cut once header_timeout has passed. A request being answered (a long
 * poll, a stream, an upgraded WebSocket) is not timed here. */

struct conn {
    struct bufferevent *bev;
    struct evhttp_connection *evcon; /* NULL until adopted */
    evutil_socket_t fd;              /* its socket, once adopted */
    int64_t head_since_ms;           /* awaiting a head since; -1: not */
    size_t scan_at;                  /* input bytes the head scan has read */
    unsigned scan;                   /* SCAN_* of the head being read */
    bool refused;                    /* one past max_connections */
    bool sending;                    /* in `sending` */
    bool dropping;                   /* closed unanswered when sent */
    bool quiet;                      /* after a closing answer: refuse the
                                        next head by closing, unanswered */
    TAILQ_ENTRY(conn) link;          /* in `fresh`, `awaiting` or `sending` */
    void (*on_close)(struct evhttp_connection *evcon, void *arg);
    void *on_close_arg;
};

TAILQ_HEAD(conn_list, conn);

static struct conn **by_fd; /* adopted conns, by socket */
static size_t n_by_fd;
static struct conn_list fresh;    /* accepted, evhttp's evcon not known yet */
static struct conn_list awaiting; /* awaiting a head, oldest first */
static struct conn_list sending;  /* answered in this loop turn */
static size_t n_conns;            /* counted against max_connections */
static struct event *adopt_ev, *head_sweep, *send_ev;
static int64_t refused_logged_ms, n_refused;

static char refusal[512]; /* the fixed answer past max_connections */
static size_t refusal_len;

/* A connection's record is found by its socket, which it keeps from its
 * accept to its close: every answer looks it up (a tree of 10,000 cost
 * about 5 % of a long poll's CPU). */
static void conn_index(struct conn *c)
{
    size_t fd = (size_t)c->fd;

    if (fd >= n_by_fd) {
        size_t n = n_by_fd ? n_by_fd : 1024;
        while (n <= fd)
            n *= 2;
        by_fd = xrealloc(by_fd, n * sizeof(*by_fd));
        memset(by_fd + n_by_fd, 0, (n - n_by_fd) * sizeof(*by_fd));
        n_by_fd = n;
    }
    by_fd[fd] = c;
}

static struct conn *conn_find(struct evhttp_connection *evcon)
{
    evutil_socket_t fd;
    struct conn *c;

    if (evcon == NULL)
        return NULL;
    fd = bufferevent_getfd(evhttp_connection_get_bufferevent(evcon));
    if (fd < 0 || (size_t)fd >= n_by_fd)
        return NULL;
    c = by_fd[fd];
    return c != NULL && c->evcon == evcon ? c : NULL;
}

static void head_scan(struct conn *c);

/* The connection's next request head is awaited: it is timed, and scanned
 * as it comes (what is in already is the start of a pipelined one). */
static void head_wait(struct conn *c, bool quiet)
{
    c->quiet = quiet;
    if (c->head_since_ms >= 0)
        TAILQ_REMOVE(&awaiting, c, link);
    c->head_since_ms = event_now_ms();
    TAILQ_INSERT_TAIL(&awaiting, c, link);
    c->scan = 0;
    c->scan_at = 0;
    head_scan(c);
}

static void head_stop(struct conn *c)
{
    if (c->head_since_ms < 0)
        return;
    TAILQ_REMOVE(&awaiting, c, link);
    c->head_since_ms = -1;
}

/* The connection is closed with this loop turn's answers, after whatever
 * callback of evhttp's or bufferevent's is on the stack. */
static void conn_drop(struct conn *c)
{
    head_stop(c);
    c->dropping = true;
    if (!c->sending) {
        c->sending = true;
        TAILQ_INSERT_TAIL(&sending, c, link);
    }
    event_active(send_ev, EV_TIMEOUT, 0);
}

/* A fixed answer written straight to the socket, for a connection evhttp
 * has no request on; a short one, which the socket takes whole. */
static void send_raw(evutil_socket_t fd, const char *buf, size_t len)
{
    if (send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
        log_debug("a fixed answer: send: %s", strerror(errno));
}

/* --- the head as it came ---
 *
 * evhttp 2.1 parses a head into C strings and is lenient about framing, so
 * evhttp and a proxy in front of it could disagree about what a head says
 * or where the request ends (request smuggling): a NUL ends a value early
 * ("Content-Length: 1\0" "99" is 1 to evhttp; a token followed by NUL and
 * junk is the token), several Content-Lengths are the first, "Content-
 * Length :" is no Content-Length and "+2" is 2, "0x0e" or "1, 1" get its
 * HTML 400. So each head is scanned line by line before evhttp reads it
 * (an input buffer callback, which runs as bytes arrive and before the
 * bufferevent's read callback), and one that is any of these is answered
 * 400 in JSON and closed; evhttp never sees it. A line is scanned once it
 * is whole; scan_at follows what evhttp drains. */

enum {
    SCAN_HEADERS = 1, /* past the request line */
    SCAN_CL = 2,      /* a Content-Length seen */
    SCAN_TE = 4,      /* a Transfer-Encoding seen */
    SCAN_DONE = 8,    /* the empty line that ends the head seen */
    SCAN_OLD = 16,    /* HTTP/1.0: closed after its answer by default */
    SCAN_CLOSE = 32,  /* closed after its answer: "close" among the options
                         of a Connection header, or a target not in origin
                         form */
    SCAN_HOST = 64,   /* a Host header seen */
};

/* The characters of a header name (RFC 9110 token). */
static bool is_tchar(unsigned char ch)
{
    static const char tchar[] = "!#$%&'*+-.^_`|~";

    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
           (ch >= 'A' && ch <= 'Z') || (ch != '\0' && strchr(tchar, ch));
}

#define BAD_REQUEST_LINE                                                       \
    "a request line that is not a method, a target and HTTP/1.0 or 1.1, "      \
    "one space apart"

/* The request line: method SP target SP version, as RFC 9112 has it (evhttp
 * takes extra spaces, a trailing one, or none and no version). NULL if it
 * is sound; else what is wrong with it. */
static const char *request_line(struct conn *c, const char *s, size_t n)
{
    const char *end = s + n, *target, *version, *p;

    if (n == 0)
        return "an empty line where the request line belongs";
    for (p = s; p < end && *p != ' '; p++)
        if (!is_tchar((unsigned char)*p))
            return BAD_REQUEST_LINE;
    if (p == s || p == end)
        return BAD_REQUEST_LINE;
    target = ++p;
    for (; p < end && *p != ' '; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return BAD_REQUEST_LINE;
    if (p == target || p == end)
        return BAD_REQUEST_LINE;
    version = p + 1;
    if (memchr(version, ' ', (size_t)(end - version)) != NULL)
        return BAD_REQUEST_LINE;
    /* evhttp reads "HTTP/1.00", "HTTP/01.0" or "HTTP/0.5" as before 1.1,
     * and so closes after the answer, where we would not know it, and
     * answers "HTTP/1.2" in kind: HTTP/1.0 and 1.1 only */
    if (end - version != 8 || memcmp(version, "HTTP/1.", 7) != 0 ||
        (version[7] != '0' && version[7] != '1'))
        return end - version >= 5 && memcmp(version, "HTTP/", 5) == 0
                   ? "an HTTP version other than HTTP/1.0 or 1.1"
                   : BAD_REQUEST_LINE;
    if (version[7] == '0')
        c->scan |= SCAN_OLD;
    /* a target not in origin form (http://host/path, *, host:port):
     * evhttp takes it as a proxy's request and closes after it */
    if (target[0] != '/')
        c->scan |= SCAN_CLOSE;
    return NULL;
}

static bool names(const char *name, const char *s, size_t n)
{
    return strlen(name) == n && evutil_ascii_strncasecmp(name, s, n) == 0;
}

/* One line of a head, without its LF; NULL if it is sound, else what is
 * wrong with it. */
static const char *head_line(struct conn *c, const char *s, size_t n)
{
    const char *colon, *v, *end;

    if (n > 0 && s[n - 1] == '\r')
        n--;
    if (memchr(s, '\0', n) != NULL)
        return "a NUL byte";
    if (memchr(s, '\r', n) != NULL)
        return "a CR not followed by LF";
    if (!(c->scan & SCAN_HEADERS)) {
        c->scan |= SCAN_HEADERS;
        return request_line(c, s, n);
    }
    if (n == 0) {
        c->scan |= SCAN_DONE;
        if ((c->scan & SCAN_CL) && (c->scan & SCAN_TE))
            return "both Content-Length and Transfer-Encoding";
        if (!(c->scan & (SCAN_HOST | SCAN_OLD)))
            return "no Host header (HTTP/1.1 requires one)";
        return NULL;
    }
    if (s[0] == ' ' || s[0] == '\t')
        return "a folded header line (obs-fold)";
    colon = memchr(s, ':', n);
    if (colon == NULL)
        return "a header line without a colon";
    for (v = s; v < colon; v++)
        if (!is_tchar((unsigned char)*v))
            return "a header name is not a token (whitespace before its "
                   "colon?)";
    if (colon == s)
        return "a header line without a name";
    end = s + n;
    for (v = colon + 1; v < end && (*v == ' ' || *v == '\t'); v++)
        ;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (names("Content-Length", s, (size_t)(colon - s))) {
        const char *d;

        if (c->scan & SCAN_CL)
            return "more than one Content-Length";
        c->scan |= SCAN_CL;
        for (d = v; d < end && *d >= '0' && *d <= '9'; d++)
            ;
        if (d == v || d != end)
            return "the Content-Length is not a decimal number";
    } else if (names("Transfer-Encoding", s, (size_t)(colon - s))) {
        if (c->scan & SCAN_TE)
            return "more than one Transfer-Encoding";
        c->scan |= SCAN_TE;
        if (!names("chunked", v, (size_t)(end - v)))
            return "a Transfer-Encoding other than chunked";
    } else if (names("Host", s, (size_t)(colon - s))) {
        if (c->scan & SCAN_HOST)
            return "more than one Host";
        c->scan |= SCAN_HOST;
    } else if (names("Connection", s, (size_t)(colon - s))) {
        /* comma-separated options (RFC 9110 7.6.1) */
        while (v < end) {
            const char *o = v;

            while (v < end && *v != ',' && *v != ' ' && *v != '\t')
                v++;
            if (names("close", o, (size_t)(v - o)))
                c->scan |= SCAN_CLOSE;
            while (v < end && (*v == ',' || *v == ' ' || *v == '\t'))
                v++;
        }
    }
    return NULL;
}

/* A head that is not sound: its 400, and the connection closed. What came
 * of it is dropped, so that evhttp reads none of it. */
static void head_refuse(struct conn *c, struct evbuffer *in, const char *why)
{
    struct api_error err = {.status = 400, .code = "bad_request"};
    char answer[1024];
    size_t len;
    char *json;
    int n;

    snprintf(err.message, sizeof(err.message), "malformed request head: %s",
             why);
    json = api_error_json(&err, &len);
    n = snprintf(answer, sizeof(answer),
                 "HTTP/1.1 400 Bad Request\r\n"
                 "Content-Type: application/json\r\n"
                 "Cache-Control: no-store\r\n"
                 "Connection: close\r\n"
                 "Content-Length: %zu\r\n\r\n%s\n",
                 len + 1, json);
    free(json);
    log_debug("refusing a request head: %s", why);
    evbuffer_drain(in, evbuffer_get_length(in));
    c->scan |= SCAN_DONE;
    if (n > 0 && (size_t)n < sizeof(answer) && !c->quiet)
        send_raw(bufferevent_getfd(c->bev), answer, (size_t)n);
    conn_drop(c);
}

/* The whole lines of the awaited head that came in since the last scan. */
static void head_scan(struct conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t len = evbuffer_get_length(in);

    /* bounded by evhttp, which closes a connection whose unparsed head
     * outgrows 4 x max_header_bytes */
    while (!(c->scan & SCAN_DONE) && c->scan_at < len) {
        struct evbuffer_ptr at, eol;
        const char *line, *why;

        evbuffer_ptr_set(in, &at, c->scan_at, EVBUFFER_PTR_SET);
        eol = evbuffer_search_eol(in, &at, NULL, EVBUFFER_EOL_LF);
        if (eol.pos < 0)
            return; /* the rest when it is whole */
        line = (const char *)evbuffer_pullup(in, eol.pos + 1);
        why = head_line(c, line + c->scan_at, (size_t)eol.pos - c->scan_at);
        c->scan_at = (size_t)eol.pos + 1;
        if (why != NULL) {
            head_refuse(c, in, why);
            return;
        }
    }
}

/* The input buffer's callback: bytes came (before evhttp reads them) or
 * were drained (by evhttp, as it parses). */
static void head_bytes(struct evbuffer *in, const struct evbuffer_cb_info *info,
                       void *arg)
{
    struct conn *c = arg;

    (void)in;
    c->scan_at =
        c->scan_at > info->n_deleted ? c->scan_at - info->n_deleted : 0;
    if (info->n_added > 0 && c->head_since_ms >= 0 && !c->dropping)
        head_scan(c);
}

static void conn_closed(struct evhttp_connection *evcon, void *arg)
{
    struct conn *c = arg;

    if (c->on_close != NULL)
        c->on_close(evcon, c->on_close_arg);
    head_stop(c);
    if (c->sending)
        TAILQ_REMOVE(&sending, c, link);
    if (c->fd >= 0 && by_fd[c->fd] == c)
        by_fd[c->fd] = NULL;
    n_conns--;
    free(c);
}

void http_on_close(struct evhttp_connection *evcon,
                   void (*cb)(struct evhttp_connection *evcon, void *arg),
                   void *arg)
{
    struct conn *c = conn_find(evcon);

    if (c == NULL) {
        evhttp_connection_set_closecb(evcon, cb, arg);
        return;
    }
    c->on_close = cb;
    c->on_close_arg = arg;
}

/* The connection is one too many: the fixed answer, then closed. A request
 * the client already sent is read first, so that closing does not reset
 * the connection under the answer. */
static void refuse(struct conn *c)
{
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    char sink[4096];
    int64_t now = event_now_ms();

    n_refused++;
    if (now - refused_logged_ms >= 10000) {
        log_warn("max_connections (%d) reached: refused %lld connection%s",
                 app.cfg->max_connections, (long long)n_refused,
                 n_refused == 1 ? "" : "s");
        refused_logged_ms = now;
        n_refused = 0;
    }
    if (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) < 0 && errno != EAGAIN &&
        errno != EWOULDBLOCK)
        log_debug("refusing a connection: recv: %s", strerror(errno));
    send_raw(fd, refusal, refusal_len);
    evhttp_connection_free(c->evcon); /* shuts down our side */
}

/* Runs in the loop turn of the accept, before the new connection is read:
 * evhttp's callback argument on the bufferevent is its connection now. */
static void adopt(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c;

    while ((c = TAILQ_FIRST(&fresh)) != NULL) {
        bufferevent_data_cb rcb, wcb;
        bufferevent_event_cb ecb;
        void *cbarg;

        TAILQ_REMOVE(&fresh, c, link);
        bufferevent_getcb(c->bev, &rcb, &wcb, &ecb, &cbarg);
        if (rcb == NULL && wcb == NULL && ecb == NULL) {
            /* evhttp gave it up already (bufferevent_free cleared them) */
            bufferevent_decref(c->bev);
            if (!c->refused)
                n_conns--;
            free(c);
            continue;
        }
        c->evcon = cbarg;
        if (c->refused) {
            refuse(c);
            bufferevent_decref(c->bev); /* the last reference: closes it */
            free(c);
            continue;
        }
        c->fd = bufferevent_getfd(c->bev);
        if (c->fd >= 0)
            conn_index(c);
        evhttp_connection_set_closecb(c->evcon, conn_closed, c);
        bufferevent_decref(c->bev); /* conn_closed tells us its end now */
        head_wait(c, false);
    }
}

static struct bufferevent *new_connection(struct event_base *base, void *arg)
{
    struct bufferevent *bev =
        bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    struct conn *c = xcalloc(1, sizeof(*c));

    if (bev == NULL) {
        log_error("bufferevent_socket_new failed");
        abort();
    }
    c->bev = bev;
    c->fd = -1;
    c->head_since_ms = -1;
    evbuffer_add_cb(bufferevent_get_input(bev), head_bytes, c);
    accepted();
    c->refused = n_conns >= (size_t)app.cfg->max_connections;
    if (!c->refused)
        n_conns++;
    /* held until adopted, so that we may look at it whatever evhttp did */
    bufferevent_incref(bev);
    TAILQ_INSERT_TAIL(&fresh, c, link);
    event_active(adopt_ev, EV_TIMEOUT, 0);
    return bev;
}

/* Whether evhttp will close the connection once `req` is answered, as
 * its evhttp_send_done decides: what the head scan found closes ("close"
 * among a Connection header's options, a proxy's target), our answer's
 * "Connection: close", or an HTTP/1.0 request whose Connection value does
 * not start "keep-alive". A guess only; what rides on it is that the
 * answer to a broken next head is the close alone, which is right either
 * way. */
static bool closes_after(const struct conn *c, struct evhttp_request *req)
{
    const char *out, *in;

    if (c->scan & SCAN_CLOSE)
        return true;
    out = evhttp_find_header(evhttp_request_get_output_headers(req),
                             "Connection");
    if (out != NULL && evutil_ascii_strcasecmp(out, "close") == 0)
        return true;
    if (!(c->scan & SCAN_OLD))
        return false;
    in =
        evhttp_find_header(evhttp_request_get_input_headers(req), "Connection");
    return !(in != NULL && evutil_ascii_strncasecmp(in, "keep-alive", 10) == 0);
}

static void answered(struct evhttp_request *req, void *arg)
{
    struct conn *c = arg;

    /* an answer to CONNECT has no length (see route): the close ends it,
     * which evhttp, keeping the connection for a tunnel, would not do */
    if (evhttp_request_get_command(req) == EVHTTP_REQ_CONNECT) {
        struct evbuffer *in = bufferevent_get_input(c->bev);

        evbuffer_drain(in, evbuffer_get_length(in));
        conn_drop(c);
        return;
    }
    /* evhttp reads the connection's next request head now, or closes it
     * (and conn_closed forgets it). The head is scanned and timed either
     * way, in case evhttp keeps the connection; but after an answer that
     * closes it, a broken head is not answered, only closed on. */
    head_wait(c, closes_after(c, req));
}

/* Answers written in the loop turn they were made, after the callback
 * that made them, rather than on the next turn's write event: evhttp then
 * arms and disarms the socket's write event within one turn, which the
 * epoll changelist cancels, so a request costs no epoll_ctl and no loop
 * turn of its own for its answer. What the socket does not take at once is
 * left to the bufferevent's write event, as before. */
static void send_answers(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c;

    while ((c = TAILQ_FIRST(&sending)) != NULL) {
        struct evbuffer *out = bufferevent_get_output(c->bev);
        evutil_socket_t sfd = bufferevent_getfd(c->bev);
        int n;

        TAILQ_REMOVE(&sending, c, link);
        c->sending = false;
        if (c->dropping) {
            evhttp_connection_free(c->evcon); /* conn_closed frees c */
            continue;
        }
        if (sfd < 0 || evbuffer_get_length(out) == 0)
            continue; /* the write event came first */
        evbuffer_unfreeze(out, 1);
        n = evbuffer_write(out, sfd);
        evbuffer_freeze(out, 1);
        /* evhttp's write callback: the answer is out, the request done
         * (and c may be freed) */
        if (n > 0 && evbuffer_get_length(out) == 0)
            bufferevent_trigger(c->bev, EV_WRITE, 0);
    }
}

/* An answer's Connection: close, where it is the connection's last. */
static void close_if_last(struct conn *c, struct evkeyvalq *out)
{
    if (evhttp_find_header(out, "Connection") != NULL)
        return;
    /* Shutting down: each connection ends with its answer, so that its
     * client comes back on a new one (another daemon, behind nginx)
     * rather than asking this one again until it exits. "Connection:
     * keep-alive, close" and the like, as the head scan found: closed as
     * asked, which evhttp would not do (it honours only a first Connection
     * header that is "close" whole). */
    if (app.draining || (c != NULL && (c->scan & SCAN_CLOSE)))
        evhttp_add_header(out, "Connection", "close");
}

void http_reply_start(struct evhttp_request *req, int status,
                      const char *reason)
{
    close_if_last(conn_find(evhttp_request_get_connection(req)),
                  evhttp_request_get_output_headers(req));
    evhttp_send_reply_start(req, status, reason);
}

void http_send_reply(struct evhttp_request *req, int status, const char *reason)
{
    struct conn *c = conn_find(evhttp_request_get_connection(req));
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);

    close_if_last(c, out);
    /* HEAD: the length of what GET would answer, and no body (evhttp
     * writes whatever is in the buffer) */
    if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
        struct evbuffer *body = evhttp_request_get_output_buffer(req);

        if (evhttp_find_header(out, "Content-Length") == NULL) {
            char n[24];

            snprintf(n, sizeof(n), "%zu", evbuffer_get_length(body));
            evhttp_add_header(out, "Content-Length", n);
        }
        evbuffer_drain(body, evbuffer_get_length(body));
    }
    /* evhttp's own table lacks some (429, 426: "Client Error") */
    evhttp_send_reply(req, status,
                      reason != NULL ? reason : rest_reason(status), NULL);
    if (c == NULL || c->sending || c->head_since_ms >= 0)
        return;
    c->sending = true;
    TAILQ_INSERT_TAIL(&sending, c, link);
    event_active(send_ev, EV_TIMEOUT, 0);
}

void http_drop(struct evhttp_request *req, enum transport kind)
{
    struct conn *c = conn_find(evhttp_request_get_connection(req));

    if (c == NULL) { /* not adopted: cannot be, but say no rather than hang */
        http_reply_error(req, kind, 503, "unavailable", "shutting down");
        return;
    }
    /* evhttp's request callback (or a Redis reply's, when the token was
     * asked after) may be on the stack */
    conn_drop(c);
}

/* A request came in whole: it is not timed while it is answered. False
 * if its head was not scanned whole. */
static bool head_done(struct evhttp_request *req)
{
    struct conn *c = conn_find(evhttp_request_get_connection(req));

    if (c == NULL)
        return true; /* not adopted: cannot be */
    head_stop(c);
    evhttp_request_set_on_complete_cb(req, answered, c);
    return (c->scan & SCAN_DONE) != 0;
}

static void sweep_heads(evutil_socket_t fd, short what, void *arg)
{
    int64_t deadline = event_now_ms() - app.cfg->header_timeout * 1000LL;
    struct conn *c;

    while ((c = TAILQ_FIRST(&awaiting)) != NULL &&
           c->head_since_ms < deadline) {
        head_stop(c);
        log_debug("cutting a connection whose request head took over %d s",
                  app.cfg->header_timeout);
        evhttp_connection_free(c->evcon); /* conn_closed frees c */
    }
}

void http_clear_timeouts(struct bufferevent *bev)
{
    static const struct timeval day = {86400, 0};

    /* libevent 2.1 keeps the timeout an event was last added with and
     * re-arms it on each activation, even after bufferevent_set_timeouts
     * (NULL, NULL), unless the timer is removed while it is pending: so
     * add the events with a timeout, then remove it. */
    bufferevent_set_timeouts(bev, &day, &day);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    bufferevent_set_timeouts(bev, NULL, NULL);
}

int http_header_once(struct evhttp_request *req, const char *name,
                     const char **value)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    const struct evkeyval *h;

    *value = NULL;
    TAILQ_FOREACH(h, in, next) {
        if (evutil_ascii_strcasecmp(h->key, name) != 0)
            continue;
        if (*value != NULL)
            return -1;
        *value = h->value;
    }
    return 0;
}

/* --- routing --- */

static void (*serve)(struct evhttp_request *req);

/* Every request: what evhttp lets through that is unsafe or too large to
 * hand on is answered here, the rest is served. */
static void route(struct evhttp_request *req, void *arg)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);

    (void)arg;
    if (!head_done(req)) {
        /* cannot be: every head is scanned before evhttp reads it */
        log_error("a request head came in unscanned; refusing it");
        evhttp_add_header(out, "Connection", "close");
        http_reply_error(req, TRANSPORT_REST, 400, "bad_request",
                         "malformed request head");
        return;
    }
    /* evhttp frames no answer to CONNECT with a Content-Length (a 2xx one
     * would start a tunnel): closing the connection frames ours, which
     * answered() does */
    if (evhttp_request_get_command(req) == EVHTTP_REQ_CONNECT)
        evhttp_add_header(out, "Connection", "close");
    serve(req);
}

/* The listening socket, with a backlog as long as the kernel allows
 * (net.core.somaxconn caps it; 4096 by default since Linux 5.4).
 * evhttp_bind_socket listens with 128: a burst of connections beyond that
 * (clients coming back after a restart, nginx opening upstream connections
 * for a wave of re-polls) had its SYNs dropped while crosstalkd was busy,
 * and each waited for the client's retry, 1 s and then 3 s later. */
#define LISTEN_BACKLOG 65535

static struct evhttp_bound_socket *bind_listener(const char *host, int port)
{
    struct evutil_addrinfo hints, *ai = NULL;
    struct evconnlistener *lev;
    struct evhttp_bound_socket *bound;
    char service[16];
    int rc, err;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = EVUTIL_AI_PASSIVE | EVUTIL_AI_ADDRCONFIG;
    snprintf(service, sizeof(service), "%d", port);
    rc = evutil_getaddrinfo(host, service, &hints, &ai);
    if (rc != 0) {
        log_error("cannot listen on %s:%d: %s", host, port,
                  evutil_gai_strerror(rc));
        return NULL;
    }
    /* as evhttp_bind_socket does (SO_REUSEADDR, SO_KEEPALIVE, close on
     * exec), but with our backlog; evhttp takes the listener over */
    lev = evconnlistener_new_bind(
        app.base, NULL, NULL,
        LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
        LISTEN_BACKLOG, ai->ai_addr, (int)ai->ai_addrlen);
    err = errno;
    evutil_freeaddrinfo(ai);
    if (lev == NULL) {
        log_error("cannot listen on %s:%d: %s", host, port, strerror(err));
        return NULL;
    }
    bound = evhttp_bind_listener(app.http, lev);
    if (bound == NULL) {
        log_error("cannot listen on %s:%d: out of memory", host, port);
        evconnlistener_free(lev);
    }
    return bound;
}

int http_start(void (*handler)(struct evhttp_request *req))
{
    const struct config *cfg = app.cfg;
    char body[256];
    struct evconnlistener *lev;

    if (proxies_load(cfg->trusted_proxies) != 0)
        return -1;
    snprintf(body, sizeof(body),
             "{\"error\":\"unavailable\",\"message\":\"this server holds "
             "max_connections (%d) connections; try another or later\"}\n",
             cfg->max_connections);
    refusal_len = (size_t)snprintf(refusal, sizeof(refusal),
                                   "HTTP/1.1 503 Service Unavailable\r\n"
                                   "Content-Type: application/json\r\n"
                                   "Cache-Control: no-store\r\n"
                                   "Retry-After: 1\r\n"
                                   "Connection: close\r\n"
                                   "Content-Length: %zu\r\n\r\n%s",
                                   strlen(body), body);
    serve = handler;
    TAILQ_INIT(&fresh);
    TAILQ_INIT(&awaiting);
    TAILQ_INIT(&sending);
    adopt_ev = event_new(app.base, -1, 0, adopt, NULL);
    send_ev = event_new(app.base, -1, 0, send_answers, NULL);
    accept_resume = event_new(app.base, -1, 0, resume_accepting, NULL);

    app.http = evhttp_new(app.base);
    /* Every method reaches route(), so that one we do not serve is
     * answered in JSON rather than with evhttp's HTML 501. */
    evhttp_set_allowed_methods(app.http, (ev_uint16_t)~0);
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
    listener = bind_listener(cfg->bind, cfg->port);
    if (listener == NULL)
        return -1;
    lev = evhttp_bound_socket_get_listener(listener);
    evconnlistener_set_error_cb(lev, accept_error);
    log_info("listening on http://%s:%d/", cfg->bind, cfg->port);
    return 0;
}

void http_free(void)
{
    struct conn *c;

    http_stop_accepting();
    if (app.http != NULL)
        evhttp_free(app.http); /* conn_closed forgets every adopted one */
    app.http = NULL;
    while ((c = TAILQ_FIRST(&fresh)) != NULL) {
        TAILQ_REMOVE(&fresh, c, link);
        bufferevent_decref(c->bev);
        free(c);
    }
    if (head_sweep != NULL)
        event_free(head_sweep);
    head_sweep = NULL;
    if (adopt_ev != NULL)
        event_free(adopt_ev);
    adopt_ev = NULL;
    if (send_ev != NULL)
        event_free(send_ev);
    send_ev = NULL;
    if (accept_resume != NULL)
        event_free(accept_resume);
    accept_resume = NULL;
    free(by_fd);
    by_fd = NULL;
    n_by_fd = 0;
    free(proxies);
    proxies = NULL;
    n_proxies = 0;
}

void http_stop_accepting(void)
{
    if (listener != NULL) {
        evhttp_del_accept_socket(app.http, listener);
        listener = NULL;
    }
}
