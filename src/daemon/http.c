/* http.c - crosstalkd's HTTP/1.1 server: connections, request heads and
 * bodies, answers, and handing a connection over to a stream
 *
 * A connection is read with recv() into an evbuffer and answered with one
 * writev() per answer, written in the loop turn the answer is made; its
 * read event stays armed from accept to close, and its write event is
 * armed only while the socket will not take an answer whole. A request
 * therefore costs two system calls, where evhttp's bufferevent made four
 * (it asks the socket how much there is to read before each read, and
 * disarms and re-arms reading around every request). A stream (SSE, an
 * upgraded WebSocket) takes its connection over as a bufferevent, which
 * paces what the socket does not take at once. */
#include "http.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "app.h"
#include "config.h"
#include "log.h"
#include "rest.h"
#include "stats.h"
#include "streamid.h"
#include "strlist.h"
#include "xmalloc.h"

/* Bytes asked of the socket per read. */
#define READ_CHUNK 8192
/* Bytes a connection may send ahead while its request is served (pipelined
 * requests); past them it is not read until the answer is out. */
#define READ_AHEAD 65536

struct http_watch {
    void (*gone)(void *arg);
    void *arg;
};

struct header {
    const char *name, *value;
};

struct http_req {
    struct http_conn *conn; /* NULL once its client left */
    const char *method, *path, *query;
    int minor;     /* HTTP/1.minor */
    unsigned scan; /* SCAN_* of its head */
    bool is_head;
    size_t head_len;
    struct header *hdrs;
    size_t n_hdrs;
    /* the body */
    char *body;
    size_t body_len, body_cap;
    /* the answer */
    char *out_hdrs; /* "Name: value\r\n" lines */
    size_t out_len, out_cap;
    struct evbuffer *out;
    struct http_watch watch;
};

enum body_state {
    BODY_NONE,       /* no body, or all of it read */
    BODY_LENGTH,     /* Content-Length bytes */
    BODY_CHUNK_SIZE, /* a chunk's size line */
    BODY_CHUNK_DATA, /* a chunk's bytes, then its line end */
    BODY_TRAILER,    /* trailer lines until an empty one */
};

struct http_conn {
    evutil_socket_t fd;
    struct event *rev, *wev;   /* ours: NULL once handed over */
    struct evbuffer *in, *out; /* ours: NULL once handed over */
    struct bufferevent *bev;   /* once handed over */
    struct http_req *req;      /* being read or served */
    bool serving;              /* req is with the handler */
    bool closing;              /* closed once `out` is written */
    bool dropping;             /* closed at the end of the turn */
    bool eof;                  /* the client sent its last byte */
    bool paused;               /* not read until the answer is out */
    bool sending;              /* in `sending` */
    bool chunked;              /* a stream framed in chunks */
    bool continued;            /* "100 Continue" sent for req */
    bool version_refused;      /* HTTP/2 or later: 505 */
    bool linger;               /* read and drop what comes before closing */
    bool lingering;            /* doing so: in `lingering` */
    enum body_state body;
    size_t body_left;        /* of the length or the chunk */
    int64_t head_since_ms;   /* awaiting a head since; -1: not */
    size_t scan_at;          /* input bytes the head scan has read */
    unsigned scan;           /* SCAN_* of the head being read */
    void (*gone)(void *arg); /* handed over: closed by us */
    void *cb_arg;
    TAILQ_ENTRY(http_conn) all;  /* in `conns` */
    TAILQ_ENTRY(http_conn) wait; /* in `awaiting` */
    TAILQ_ENTRY(http_conn) send; /* in `sending` */
    char peer[INET6_ADDRSTRLEN]; /* "unix" on unix_socket */
    bool on_unix;                /* accepted on unix_socket */
};

TAILQ_HEAD(conn_list, http_conn);

static struct evconnlistener *listener;      /* bind:port */
static struct evconnlistener *unix_listener; /* unix_socket, if set */
static void (*serve)(struct http_req *req);
static struct conn_list conns;     /* every open connection */
static struct conn_list awaiting;  /* awaiting a head, oldest first */
static struct conn_list sending;   /* to write or close this loop turn */
static struct conn_list lingering; /* closing, reading what still comes */
static size_t n_conns;             /* counted against max_connections */
static struct event *head_sweep, *send_ev;
static int64_t refused_logged_ms, n_refused;

static char refusal[256]; /* the body of the answer past max_connections */

static void conn_process(struct http_conn *c);
static const char *http_date(void);

void http_request_free(struct request *r)
{
    if (r == NULL)
        return;
    free(r->query);
    free(r);
}

/* --- the request --- */

static void req_free(struct http_req *req)
{
    if (req == NULL)
        return;
    free(req->body);
    free(req->out_hdrs);
    if (req->out != NULL)
        evbuffer_free(req->out);
    free(req);
}

const char *http_method(const struct http_req *req)
{
    return req->method;
}

bool http_is_head(const struct http_req *req)
{
    return req->is_head;
}

int http_minor(const struct http_req *req)
{
    return req->minor;
}

const char *http_path(const struct http_req *req)
{
    return req->path;
}

const char *http_query(const struct http_req *req)
{
    return req->query;
}

/* Header names are compared in any case; most differ in their first
 * letter, which is checked first. */
static bool same_name(const char *a, const char *b)
{
    return (a[0] | 0x20) == (b[0] | 0x20) && evutil_ascii_strcasecmp(a, b) == 0;
}

const char *http_header(const struct http_req *req, const char *name)
{
    for (size_t i = 0; i < req->n_hdrs; i++)
        if (same_name(req->hdrs[i].name, name))
            return req->hdrs[i].value;
    return NULL;
}

int http_header_once(const struct http_req *req, const char *name,
                     const char **value)
{
    *value = NULL;
    for (size_t i = 0; i < req->n_hdrs; i++) {
        if (!same_name(req->hdrs[i].name, name))
            continue;
        if (*value != NULL)
            return -1;
        *value = req->hdrs[i].value;
    }
    return 0;
}

const char *http_body(const struct http_req *req, size_t *len)
{
    *len = req->body_len;
    return req->body != NULL ? req->body : "";
}

size_t http_head_bytes(const struct http_req *req)
{
    return req->head_len;
}

bool http_origin_allowed(const struct http_req *req, const char *origin)
{
    return rest_origin_allowed(app.cfg, origin, http_header(req, "Host"));
}

/* --- the answer --- */

void http_add_header(struct http_req *req, const char *name, const char *value)
{
    size_t n = strlen(name), v = strlen(value), need = n + v + 4;

    if (req->out_len + need > req->out_cap) {
        req->out_cap =
            (req->out_len + need) * 2 < 256 ? 256 : (req->out_len + need) * 2;
        req->out_hdrs = xrealloc(req->out_hdrs, req->out_cap);
    }
    memcpy(req->out_hdrs + req->out_len, name, n);
    memcpy(req->out_hdrs + req->out_len + n, ": ", 2);
    memcpy(req->out_hdrs + req->out_len + n + 2, value, v);
    memcpy(req->out_hdrs + req->out_len + n + 2 + v, "\r\n", 2);
    req->out_len += need;
}

/* The value of the answer's header `name`, and its length in *len. */
static const char *answer_header(const struct http_req *req, const char *name,
                                 size_t *len)
{
    size_t n = strlen(name);
    const char *p = req->out_hdrs, *end = p + req->out_len;

    while (p < end) {
        const char *eol = memchr(p, '\r', (size_t)(end - p));

        if (eol - p > (ptrdiff_t)n + 1 && p[n] == ':' &&
            evutil_ascii_strncasecmp(p, name, n) == 0) {
            *len = (size_t)(eol - p) - n - 2;
            return p + n + 2;
        }
        p = eol + 2;
    }
    return NULL;
}

const char *http_answer_header(const struct http_req *req, const char *name)
{
    size_t len;

    return answer_header(req, name, &len);
}

static bool answer_says(const struct http_req *req, const char *name,
                        const char *value)
{
    size_t len;
    const char *v = answer_header(req, name, &len);

    return v != NULL && len == strlen(value) &&
           evutil_ascii_strncasecmp(v, value, len) == 0;
}

struct evbuffer *http_output(struct http_req *req)
{
    if (req->out == NULL)
        req->out = evbuffer_new();
    return req->out;
}

void http_api_headers(struct http_req *req, const char *content_type)
{
    const char *origin = http_header(req, "Origin");

    http_add_header(req, "Content-Type", content_type);
    http_add_header(req, "Cache-Control", "no-store");
    if (origin != NULL && http_origin_allowed(req, origin) &&
        app.cfg->allowed_origins[0] != '\0') {
        http_add_header(req, "Access-Control-Allow-Origin", origin);
        http_add_header(req, "Vary", "Origin");
    }
}

void http_add_json(struct http_req *req, enum transport kind, const char *body,
                   size_t len)
{
    struct evbuffer *out = http_output(req);

    if (len == 0)
        return;
    evbuffer_add(out, body, len);
    evbuffer_add(out, "\n", 1);
    if (!req->is_head)
        stats[kind].bytes_out += len + 1;
}

void http_reply_json(struct http_req *req, enum transport kind, int status,
                     const char *body, size_t len)
{
    http_api_headers(req, "application/json");
    http_add_json(req, kind, body, len);
    http_send_reply(req, status, NULL);
}

void http_reply_api_error(struct http_req *req, enum transport kind,
                          const struct api_error *err)
{
    size_t len;
    char *json = api_error_json(err, &len);

    if (err->status == 401)
        http_add_header(req, "WWW-Authenticate", "Bearer");
    /* every 503 says when to come back (docs/api.md) */
    if (err->status == 503 && http_answer_header(req, "Retry-After") == NULL)
        http_add_header(req, "Retry-After", "1");
    http_reply_json(req, kind, err->status, json, len);
    free(json);
}

void http_reply_error(struct http_req *req, enum transport kind, int status,
                      const char *code, const char *fmt, ...)
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

/* --- trusted proxies --- */

struct addr {
    int family;
    unsigned char bytes[16];
};

static struct addr *proxies; /* trusted_proxies, parsed */
static size_t n_proxies;
static bool trust_unix; /* "unix" among them: unix_socket's peers */

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

/* Fills `proxies` from the comma-separated trusted_proxies, where the word
 * "unix" stands for every peer on unix_socket. Returns 0, or -1 with a
 * message logged when an item is neither that nor a numeric address. */
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
        if (strcmp(item, "unix") == 0) {
            trust_unix = true;
            continue;
        }
        proxies = xrealloc(proxies, (n_proxies + 1) * sizeof(*proxies));
        if (!addr_parse(item, &proxies[n_proxies])) {
            log_error("trusted_proxies: \"%s\" is not an IPv4 or IPv6 "
                      "address, nor \"unix\"",
                      item);
            return -1;
        }
        n_proxies++;
    }
    return 0;
}

static bool proxy_trusted(const struct http_conn *c)
{
    struct addr a;

    if (c->on_unix)
        return trust_unix;
    if (n_proxies == 0 || !addr_parse(c->peer, &a))
        return false;
    for (size_t i = 0; i < n_proxies; i++)
        if (proxies[i].family == a.family &&
            memcmp(proxies[i].bytes, a.bytes, sizeof(a.bytes)) == 0)
            return true;
    return false;
}

const char *http_client_address(const struct http_req *req)
{
    const char *real;

    if (req->conn == NULL || req->conn->peer[0] == '\0')
        return "?";
    if (proxy_trusted(req->conn)) {
        real = http_header(req, "X-Real-IP");
        if (real != NULL && real[0] != '\0')
            return real;
    }
    return req->conn->peer;
}

/* What http_defer() keeps: run, in order, by one event after the callback
 * that deferred them has returned. A poll answered by a publish defers its
 * own free, so this is on every answer's path: a queue and one event, not
 * an allocation and a timer for each. */
struct deferred {
    void (*fn)(void *);
    void *arg;
};

static struct deferred *deferred;
static size_t n_deferred, cap_deferred;
static struct event *defer_ev;

static void run_deferred(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    /* what these defer in turn runs in this same pass, after them */
    for (size_t i = 0; i < n_deferred; i++)
        deferred[i].fn(deferred[i].arg);
    n_deferred = 0;
}

void http_defer(void (*fn)(void *arg), void *arg)
{
    if (n_deferred == cap_deferred) {
        cap_deferred = cap_deferred ? cap_deferred * 2 : 64;
        deferred = xrealloc(deferred, cap_deferred * sizeof(*deferred));
    }
    deferred[n_deferred].fn = fn;
    deferred[n_deferred].arg = arg;
    if (n_deferred++ == 0)
        event_active(defer_ev, EV_TIMEOUT, 0);
}

/* --- the head as it comes ---
 *
 * Each head is scanned line by line as its bytes arrive, and one that is
 * not sound is answered 400 in JSON and closed at its first bad line: a
 * proxy in front of us and we must never disagree about what a head says
 * or where the request ends (request smuggling). So a NUL or a bare CR,
 * several Content-Lengths, one that is not plain digits, "Content-Length :"
 * or a Transfer-Encoding other than chunked are refused, not guessed at. */

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
    SCAN_KEEP = 128,  /* HTTP/1.0 asking to be kept: "keep-alive" among the
                         options of a Connection header */
    SCAN_HEAD = 256,  /* a HEAD request: refusals carry no body either */
};

/* The characters of a header name (RFC 9110 token). */
static bool tchars[256]; /* filled by http_start */

static bool is_tchar(unsigned char ch)
{
    return tchars[ch];
}

static void tchars_init(void)
{
    static const char more[] = "!#$%&'*+-.^_`|~";

    for (int ch = 0; ch < 256; ch++)
        tchars[ch] = isalnum(ch) || (ch != '\0' && strchr(more, ch));
}

#define BAD_REQUEST_LINE                                                       \
    "a request line that is not a method, a target and HTTP/1.0 or 1.1, "      \
    "one space apart"

static bool host_valid(const char *s, size_t n);

/* Where an absolute-form target's authority lies: the host and port
 * after "scheme://", up to the path or query. NULL when there is no
 * "://" (the asterisk and authority forms). */
static const char *authority_of(const char *target, size_t n, size_t *len)
{
    const char *end = target + n, *sep = NULL, *p;

    for (p = target; p + 3 <= end; p++)
        if (memcmp(p, "://", 3) == 0) {
            sep = p;
            break;
        }
    if (sep == NULL)
        return NULL;
    for (p = sep + 3; p < end && *p != '/' && *p != '?'; p++)
        ;
    *len = (size_t)(p - (sep + 3));
    return sep + 3;
}

/* An absolute-form target (http://host[:port]/path), whose authority
 * authority_of() found: it is the request's host (RFC 9112 3.2.2), so it
 * must be one, as a Host must. */
static const char *absolute_target(const char *target, const char *authority,
                                   size_t len)
{
    size_t scheme = (size_t)(authority - 3 - target);

    if (!((scheme == 4 && evutil_ascii_strncasecmp(target, "http", 4) == 0) ||
          (scheme == 5 && evutil_ascii_strncasecmp(target, "https", 5) == 0)))
        return "an absolute-form target whose scheme is not http or https";
    if (len == 0 || memchr(authority, '@', len) != NULL ||
        !host_valid(authority, len))
        return "an absolute-form target whose authority is not a host name "
               "or address, with an optional port";
    return NULL;
}

/* The request line: method SP target SP version, as RFC 9112 has it. NULL
 * if it is sound; else what is wrong with it. */
static const char *request_line(struct http_conn *c, const char *s, size_t n)
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
    /* HTTP/d.d (RFC 9112 2.3): a later 1.x is read as 1.1, which it must
     * be compatible with; "HTTP/1.00" or "HTTP/01.0" is no version */
    if (end - version != 8 || memcmp(version, "HTTP/", 5) != 0 ||
        !isdigit((unsigned char)version[5]) || version[6] != '.' ||
        !isdigit((unsigned char)version[7]))
        return end - version >= 5 && memcmp(version, "HTTP/", 5) == 0
                   ? "an HTTP version other than HTTP/1.0 or 1.1"
                   : BAD_REQUEST_LINE;
    if (version[5] != '1') {
        c->version_refused = version[5] > '1';
        return "an HTTP version other than HTTP/1.0 or 1.1";
    }
    if (version[7] == '0')
        c->scan |= SCAN_OLD;
    if (target - s == 5 && memcmp(s, "HEAD ", 5) == 0)
        c->scan |= SCAN_HEAD;
    /* a target not in origin form (http://host/path, *, host:port) is a
     * proxy's request: answered, then closed */
    if (target[0] != '/') {
        size_t tlen = (size_t)(version - 1 - target), len;
        const char *authority = authority_of(target, tlen, &len);

        c->scan |= SCAN_CLOSE;
        if (authority != NULL)
            return absolute_target(target, authority, len);
        /* the authority form is CONNECT's (refused after), the asterisk
         * form OPTIONS's (RFC 9112 3.2.3, 3.2.4) */
        if (!(target - s == 8 && memcmp(s, "CONNECT ", 8) == 0) &&
            !(tlen == 1 && target[0] == '*' && target - s == 8 &&
              memcmp(s, "OPTIONS ", 8) == 0))
            return "a request target that is not a path, an absolute URL, "
                   "or * for OPTIONS";
    }
    return NULL;
}

static bool names(const char *name, const char *s, size_t n)
{
    return strlen(name) == n && evutil_ascii_strncasecmp(name, s, n) == 0;
}

/* A Host value (RFC 9112 3.2, RFC 3986 3.2.2): empty, or a registered
 * name or an IPv4 address, or an IPv6 one in brackets, then maybe ":port";
 * a port with no host before it (":80", "[]:80") is no host. */
static bool host_valid(const char *s, size_t n)
{
    static const char name[] = "-._~%!$&'()*+,;=";
    const char *end = s + n, *p = s;
    long port;

    if (p < end && *p == '[') {
        for (p++;
             p < end && (isxdigit((unsigned char)*p) || *p == ':' || *p == '.');
             p++)
            ;
        if (p == end || *p != ']' || p == s + 1)
            return false;
        p++;
    } else {
        for (; p < end &&
               (isalnum((unsigned char)*p) || (*p != '\0' && strchr(name, *p)));
             p++)
            ;
    }
    if (p == end)
        return true;
    if (p == s)
        return false;
    if (*p++ != ':' || end - p > 5)
        return false;
    for (port = 0; p < end; p++) {
        if (!isdigit((unsigned char)*p))
            return false;
        port = port * 10 + (*p - '0');
    }
    return port <= 65535;
}

/* One line of a head, without its LF; NULL if it is sound, else what is
 * wrong with it. */
static const char *head_line(struct http_conn *c, const char *s, size_t n)
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
        /* RFC 9112 6.1: HTTP/1.0 has no chunked framing to trust */
        if ((c->scan & SCAN_TE) && (c->scan & SCAN_OLD))
            return "a Transfer-Encoding in an HTTP/1.0 request";
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
        if (!host_valid(v, (size_t)(end - v)))
            return "a Host that is not a host name or address, with an "
                   "optional port";
    } else if (names("Connection", s, (size_t)(colon - s))) {
        /* comma-separated options (RFC 9110 7.6.1) */
        while (v < end) {
            const char *o = v;

            while (v < end && *v != ',' && *v != ' ' && *v != '\t')
                v++;
            if (names("close", o, (size_t)(v - o)))
                c->scan |= SCAN_CLOSE;
            else if (names("keep-alive", o, (size_t)(v - o)))
                c->scan |= SCAN_KEEP;
            while (v < end && (*v == ',' || *v == ' ' || *v == '\t'))
                v++;
        }
    }
    return NULL;
}

/* --- connections ---
 *
 * Every accepted connection is counted against max_connections until it
 * closes; one past the limit is refused at once with a fixed 503.
 *
 * A connection is timed from its accept, and again from the end of each
 * answer, until its next request (head and body) is in, and is cut once
 * header_timeout has passed: a client sending a header line every few
 * seconds (slowloris) cannot hold it. A request being answered (a long
 * poll, a stream, an upgraded WebSocket) is not timed here; an answer the
 * client does not take for header_timeout ends its connection. */

static void head_stop(struct http_conn *c)
{
    if (c->head_since_ms < 0 || c->lingering)
        return;
    TAILQ_REMOVE(&awaiting, c, wait);
    c->head_since_ms = -1;
}

/* The connection's next request head is awaited, and timed. */
static void head_wait(struct http_conn *c)
{
    head_stop(c);
    c->head_since_ms = event_now_ms();
    TAILQ_INSERT_TAIL(&awaiting, c, wait);
    c->scan = 0;
    c->scan_at = 0;
    c->body = BODY_NONE;
    c->continued = false;
    c->version_refused = false;
}

static void queue_send(struct http_conn *c)
{
    if (!c->sending) {
        c->sending = true;
        TAILQ_INSERT_TAIL(&sending, c, send);
    }
    event_active(send_ev, EV_TIMEOUT, 0);
}

/* The connection is closed at the end of this loop turn, after whatever
 * callback is on the stack, without writing what it has not written. */
static void conn_drop(struct http_conn *c)
{
    head_stop(c);
    c->dropping = true;
    if (c->rev != NULL)
        event_del(c->rev);
    queue_send(c);
}

/* A fixed answer written straight to the socket; a short one, which the
 * socket takes whole. */
static void send_raw(evutil_socket_t fd, const char *buf, size_t len)
{
    if (send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
        log_debug("a fixed answer: send: %s", strerror(errno));
}

/* Closes the socket: our side first, then what the client sent that was
 * not read is dropped, so that a close with unread bytes (which resets the
 * connection) rarely takes the last answer with it. */
static void close_socket(evutil_socket_t fd)
{
    char sink[4096];

    shutdown(fd, SHUT_WR);
    (void)recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
    evutil_closesocket(fd);
}

/* Frees the connection now. A request on it being served stays, for its
 * answer to go nowhere; one a watch waits on ends with it. */
static void conn_free(struct http_conn *c)
{
    struct http_req *req = c->req;

    c->req = NULL;
    if (req != NULL && c->serving && req->watch.gone != NULL) {
        void (*gone)(void *) = req->watch.gone;

        req->watch.gone = NULL;
        req->conn = NULL;
        gone(req->watch.arg);
        req_free(req);
    } else if (req != NULL && c->serving) {
        req->conn = NULL;
    } else {
        req_free(req);
    }
    if (c->gone != NULL) {
        void (*gone)(void *) = c->gone;

        c->gone = NULL;
        gone(c->cb_arg);
    }
    if (c->lingering) {
        TAILQ_REMOVE(&lingering, c, wait);
        c->lingering = false;
        c->head_since_ms = -1;
    }
    head_stop(c);
    if (c->sending)
        TAILQ_REMOVE(&sending, c, send);
    TAILQ_REMOVE(&conns, c, all);
    if (c->rev != NULL)
        event_free(c->rev);
    if (c->wev != NULL)
        event_free(c->wev);
    if (c->in != NULL)
        evbuffer_free(c->in);
    if (c->out != NULL)
        evbuffer_free(c->out);
    if (c->bev != NULL)
        bufferevent_free(c->bev); /* closes the socket */
    else
        close_socket(c->fd);
    n_conns--;
    free(c);
}

/* A head or body that will not be served: its answer, and the connection
 * closed. What came of it is dropped unread. */
static void conn_refuse(struct http_conn *c, int status, const char *code,
                        const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void conn_refuse(struct http_conn *c, int status, const char *code,
                        const char *fmt, ...)
{
    struct api_error err = {.status = status, .code = code};
    char answer[1024];
    size_t len;
    char *json;
    va_list ap;
    int n;

    va_start(ap, fmt);
    vsnprintf(err.message, sizeof(err.message), fmt, ap);
    va_end(ap);
    json = api_error_json(&err, &len);
    n = snprintf(answer, sizeof(answer),
                 "HTTP/1.1 %d %s\r\n"
                 "Content-Type: application/json\r\n"
                 "Cache-Control: no-store\r\n"
                 "Date: %s\r\n"
                 "Connection: close\r\n"
                 "Content-Length: %zu\r\n\r\n%s\n",
                 status, rest_reason(status), http_date(), len + 1,
                 (c->scan & SCAN_HEAD) ? "" : json);
    if (n > 0 && (c->scan & SCAN_HEAD))
        n--; /* nor the line end */
    free(json);
    log_debug("refusing a request: %s", err.message);
    evbuffer_drain(c->in, evbuffer_get_length(c->in));
    if (n > 0 && (size_t)n < sizeof(answer))
        evbuffer_add(c->out, answer, (size_t)n);
    c->closing = true;
    c->linger = true; /* the client may be sending still */
    head_stop(c);
    if (c->rev != NULL)
        event_del(c->rev);
    queue_send(c);
}

/* The whole lines of the awaited head that came in since the last scan.
 * False when the head was refused. */
static bool head_scan(struct http_conn *c)
{
    struct evbuffer *in = c->in;
    size_t len = evbuffer_get_length(in);

    while (!(c->scan & SCAN_DONE) && c->scan_at < len) {
        struct evbuffer_ptr at, eol;
        const char *line, *why;

        evbuffer_ptr_set(in, &at, c->scan_at, EVBUFFER_PTR_SET);
        eol = evbuffer_search_eol(in, &at, NULL, EVBUFFER_EOL_LF);
        if (eol.pos < 0)
            break; /* the rest when it is whole */
        line = (const char *)evbuffer_pullup(in, eol.pos + 1);
        /* an empty line before the request line (a CRLF sent after the
         * last body, RFC 9112 2.2) is ignored */
        if (!(c->scan & SCAN_HEADERS) &&
            (eol.pos == 0 || (eol.pos == 1 && line[0] == '\r'))) {
            evbuffer_drain(in, (size_t)eol.pos + 1);
            len = evbuffer_get_length(in);
            continue;
        }
        why = head_line(c, line + c->scan_at, (size_t)eol.pos - c->scan_at);
        c->scan_at = (size_t)eol.pos + 1;
        if (why != NULL && c->version_refused) {
            conn_refuse(c, 505, "bad_request",
                        "HTTP/1.0 and 1.1 are spoken here, no later one");
            return false;
        }
        if (why != NULL) {
            conn_refuse(c, 400, "bad_request", "malformed request head: %s",
                        why);
            return false;
        }
    }
    /* a head is read up to 4 x max_header_bytes, so that one over the
     * limit is answered 431 by the REST core with the route it was for */
    if (!(c->scan & SCAN_DONE) && len > (size_t)app.cfg->max_header_bytes * 4) {
        conn_refuse(c, 431, API_TOO_LARGE, "the request head is over %d bytes",
                    app.cfg->max_header_bytes);
        return false;
    }
    return true;
}

/* The target's path and query, in place; for the absolute form
 * (http://host[:port]/path?query) its authority too, moved to the start of
 * the target and ended there, else NULL. */
static char *split_target(struct http_req *req, char *target)
{
    size_t len = 0;
    const char *a =
        target[0] != '/' ? authority_of(target, strlen(target), &len) : NULL;
    char *authority = NULL, *rest = target, *q;

    if (a != NULL) {
        rest = target + (a - target) + len;
        /* "http://" is longer than the NUL this needs after it */
        memmove(target, a, len);
        target[len] = '\0';
        authority = target;
    }
    q = strchr(rest, '?');
    if (q != NULL) {
        *q = '\0';
        req->query = q + 1;
    }
    req->path = rest[0] == '/' || authority == NULL ? rest : "/";
    return authority;
}

/* The scanned head, taken out of the input into a request of its own. */
static struct http_req *head_parse(struct http_conn *c)
{
    size_t len = c->scan_at, lines = 0;
    struct http_req *req;
    char *p, *end, *eol, *sp, *authority;

    {
        const char *s = (const char *)evbuffer_pullup(c->in, (ev_ssize_t)len);

        for (size_t i = 0; i < len; i++)
            lines += s[i] == '\n';
    }
    /* the request, its header table and its text, in one block */
    req = xcalloc(1, sizeof(*req) + lines * sizeof(struct header) + len + 1);
    req->hdrs = (struct header *)(req + 1);
    p = (char *)(req->hdrs + lines);
    evbuffer_remove(c->in, p, len);
    p[len] = '\0';
    end = p + len;
    req->head_len = len;
    req->scan = c->scan;
    req->minor = (c->scan & SCAN_OLD) ? 0 : 1;
    req->watch.gone = NULL;

    /* the request line: method SP target SP version */
    eol = memchr(p, '\n', (size_t)(end - p));
    *eol = '\0';
    if (eol > p && eol[-1] == '\r')
        eol[-1] = '\0';
    sp = strchr(p, ' ');
    *sp = '\0';
    req->method = p;
    req->is_head = strcmp(p, "HEAD") == 0;
    p = sp + 1;
    sp = strchr(p, ' ');
    *sp = '\0';
    authority = split_target(req, p);
    p = eol + 1;

    while (p < end) {
        char *colon, *v, *ve;

        eol = memchr(p, '\n', (size_t)(end - p));
        *eol = '\0';
        if (eol > p && eol[-1] == '\r')
            eol[-1] = '\0';
        if (*p == '\0')
            break; /* the empty line */
        colon = strchr(p, ':');
        *colon = '\0';
        for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
            ;
        ve = v + strlen(v);
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            *--ve = '\0';
        req->hdrs[req->n_hdrs].name = p;
        req->hdrs[req->n_hdrs].value = v;
        req->n_hdrs++;
        p = eol + 1;
    }
    /* an absolute-form target's host is the request's, whatever Host says
     * (RFC 9112 3.2.2); the table has room, as the request line and the
     * empty line took none */
    if (authority != NULL) {
        size_t i = 0;

        while (i < req->n_hdrs &&
               evutil_ascii_strcasecmp(req->hdrs[i].name, "Host") != 0)
            i++;
        if (i == req->n_hdrs) {
            req->hdrs[i].name = "Host";
            req->n_hdrs++;
        }
        req->hdrs[i].value = authority;
    }
    return req;
}

static void body_add(struct http_req *req, struct evbuffer *in, size_t n)
{
    if (req->body_len + n + 1 > req->body_cap) {
        req->body_cap = (req->body_len + n + 1) * 2;
        req->body = xrealloc(req->body, req->body_cap);
    }
    evbuffer_remove(in, req->body + req->body_len, n);
    req->body_len += n;
    req->body[req->body_len] = '\0';
}

/* A line of the input, without its line end, in line[]; false when it is
 * not whole yet, or (*bad) when it is longer than the buffer or holds a
 * NUL or a CR but at its end. */
static bool take_line(struct evbuffer *in, char *line, size_t size, bool *bad)
{
    struct evbuffer_ptr eol =
        evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
    size_t n;

    *bad = false;
    if (eol.pos < 0) {
        *bad = evbuffer_get_length(in) >= size;
        return false;
    }
    n = (size_t)eol.pos;
    if (n >= size) {
        *bad = true;
        return false;
    }
    evbuffer_remove(in, line, n);
    evbuffer_drain(in, 1);
    if (n > 0 && line[n - 1] == '\r')
        n--;
    line[n] = '\0';
    if (memchr(line, '\r', n) != NULL || strlen(line) != n) {
        *bad = true;
        return false;
    }
    return true;
}

/* A chunk-size line (RFC 9112 7.1): hex digits, then nothing or chunk
 * extensions, which are ignored. 0 with the size in *size; 1 when it is
 * over `limit`; -1 when it is not a chunk size ("+5", "0x5", " 5" are
 * not, though strtoul takes them). */
static int chunk_size(const char *line, size_t limit, size_t *size)
{
    const char *p = line;

    *size = 0;
    for (; isxdigit((unsigned char)*p); p++) {
        unsigned d = (unsigned)(*p <= '9' ? *p - '0' : (*p | 0x20) - 'a' + 10);

        if (*size > (limit - d) / 16)
            return 1;
        *size = *size * 16 + d;
    }
    if (p == line)
        return -1;
    while (*p == ' ' || *p == '\t')
        p++;
    return *p == '\0' || *p == ';' ? 0 : -1;
}

/* Takes up to body_left bytes of the `have` in the input into the body.
 * True once body_left is taken whole. */
static bool body_take(struct http_conn *c, size_t have)
{
    size_t n = have < c->body_left ? have : c->body_left;

    if (n > 0)
        body_add(c->req, c->in, n);
    c->body_left -= n;
    return c->body_left == 0;
}

/* Reads what there is of the request's body. 1: all of it is in; 0: more
 * is to come; -1: refused (answered, and the connection closing). */
static int body_read(struct http_conn *c)
{
    struct http_req *req = c->req;
    size_t limit = (size_t)app.cfg->max_body_bytes * 4;
    char line[128];
    bool bad;

    for (;;) {
        size_t have = evbuffer_get_length(c->in);

        switch (c->body) {
        case BODY_NONE:
            return 1;
        case BODY_LENGTH:
            if (!body_take(c, have))
                return 0;
            c->body = BODY_NONE;
            break;
        case BODY_CHUNK_SIZE: {
            size_t size;

            if (!take_line(c->in, line, sizeof(line), &bad)) {
                if (bad)
                    goto bad_chunk;
                return 0;
            }
            switch (chunk_size(line, limit, &size)) {
            case -1:
                goto bad_chunk;
            case 1:
                goto too_large;
            }
            if (req->body_len + size > limit)
                goto too_large;
            c->body_left = (size_t)size;
            c->body = size == 0 ? BODY_TRAILER : BODY_CHUNK_DATA;
            break;
        }
        case BODY_CHUNK_DATA:
            if (!body_take(c, have))
                return 0;
            /* the chunk's line end */
            if (!take_line(c->in, line, sizeof(line), &bad)) {
                if (bad)
                    goto bad_chunk;
                return 0;
            }
            if (line[0] != '\0')
                goto bad_chunk;
            c->body = BODY_CHUNK_SIZE;
            break;
        case BODY_TRAILER:
            if (!take_line(c->in, line, sizeof(line), &bad)) {
                if (bad)
                    goto bad_chunk;
                return 0;
            }
            if (line[0] == '\0')
                c->body = BODY_NONE;
            break;
        }
    }
bad_chunk:
    conn_refuse(c, 400, "bad_request",
                "malformed chunked body: a chunk size is not hexadecimal "
                "or a chunk does not end where its size says");
    return -1;
too_large:
    conn_refuse(c, 413, API_TOO_LARGE, "the request body is over %d bytes",
                app.cfg->max_body_bytes);
    return -1;
}

/* After its head: how its body comes, and whether it is wanted at all. 0,
 * or -1 when refused. */
static int body_start(struct http_conn *c)
{
    struct http_req *req = c->req;
    size_t limit = (size_t)app.cfg->max_body_bytes * 4;
    const char *expect = http_header(req, "Expect");

    if (req->scan & SCAN_TE) {
        c->body = BODY_CHUNK_SIZE;
    } else if (req->scan & SCAN_CL) {
        const char *cl = http_header(req, "Content-Length");
        unsigned long long n;

        errno = 0;
        n = strtoull(cl, NULL, 10);
        /* a larger declared length is refused without reading the body */
        if (errno != 0 || n > limit) {
            conn_refuse(c, 413, API_TOO_LARGE,
                        "the request body is over %d bytes",
                        app.cfg->max_body_bytes);
            return -1;
        }
        c->body_left = (size_t)n;
        c->body = n > 0 ? BODY_LENGTH : BODY_NONE;
    } else {
        c->body = BODY_NONE;
    }
    if (expect != NULL && req->minor == 1) {
        if (evutil_ascii_strcasecmp(expect, "100-continue") != 0) {
            conn_refuse(c, 417, "bad_request",
                        "Expect: only 100-continue is understood");
            return -1;
        }
        /* a body the REST core would refuse is refused unsent */
        if (c->body == BODY_LENGTH &&
            c->body_left > (size_t)app.cfg->max_body_bytes) {
            conn_refuse(c, 413, API_TOO_LARGE,
                        "the request body is over %d bytes",
                        app.cfg->max_body_bytes);
            return -1;
        }
        /* the client waits for this before it sends its body; it goes
         * out at the end of the loop turn, before any answer */
        if (c->body != BODY_NONE && evbuffer_get_length(c->in) == 0 &&
            !c->continued) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

            evbuffer_add(c->out, cont, sizeof(cont) - 1);
            queue_send(c);
            c->continued = true;
        }
    }
    return 0;
}

/* Reads and serves the requests in the input, one at a time: the next is
 * read once the last is answered and its answer written. */
static void conn_process(struct http_conn *c)
{
    while (!c->serving && !c->closing && !c->dropping && c->bev == NULL) {
        if (c->req == NULL) {
            /* the last answer goes out first */
            if (evbuffer_get_length(c->out) > 0 ||
                evbuffer_get_length(c->in) == 0 || !head_scan(c) ||
                !(c->scan & SCAN_DONE))
                return;
            c->req = head_parse(c);
            c->req->conn = c;
            if (body_start(c) != 0)
                return;
        }
        if (body_read(c) <= 0)
            return;
        head_stop(c);
        c->serving = true;
        /* an answer to CONNECT could be taken for the start of a
         * tunnel: the connection closes after it */
        if (strcmp(c->req->method, "CONNECT") == 0)
            c->req->scan |= SCAN_CLOSE;
        if (evbuffer_get_length(c->in) > READ_AHEAD && c->rev != NULL) {
            event_del(c->rev);
            c->paused = true;
        }
        serve(c->req);
    }
}

/* Whether a connection whose client said its last has nothing left to
 * do: no request served or to be read whole, no answer to write. */
static bool eof_done(const struct http_conn *c)
{
    return c->eof && !c->serving && !c->sending && c->bev == NULL &&
           !c->dropping && !c->lingering && evbuffer_get_length(c->out) == 0;
}

/* The client is gone, or has said its last (a half-close): a request a
 * watch waits on ends now; one being served otherwise is answered, and so
 * are the whole requests it sent before its last byte. */
static void conn_eof(struct http_conn *c)
{
    c->eof = true;
    c->paused = false;
    if (c->rev != NULL)
        event_del(c->rev);
    if (c->serving && c->req != NULL && c->req->watch.gone != NULL) {
        conn_free(c);
        return;
    }
    if (!c->serving)
        conn_process(c);
    if (eof_done(c))
        conn_free(c);
}

/* An answer that closes the connection went out while the client may
 * still be sending (a body refused unread): what it sends is read and
 * dropped for a moment, so that the close does not reset the connection
 * and take the answer with it before the client reads it. */
#define LINGER_MS 2000

static void conn_linger(struct http_conn *c)
{
    shutdown(c->fd, SHUT_WR);
    c->lingering = true;
    c->head_since_ms = event_now_ms(); /* for the sweep only */
    TAILQ_INSERT_TAIL(&lingering, c, wait);
    if (c->rev != NULL)
        event_add(c->rev, NULL);
}

static void linger_read(struct http_conn *c)
{
    char sink[16384];
    ssize_t n = 1;

    /* a few reads a turn: a client sending fast must not hold the loop */
    for (int i = 0; i < 16 && (n = recv(c->fd, sink, sizeof(sink), 0)) > 0; i++)
        ;
    if (n > 0)
        return;
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
        conn_free(c);
}

static void conn_readable(evutil_socket_t fd, short what, void *arg)
{
    /* one buffer for every connection's reads, which go into its input
     * at their size: a request costs no buffer of READ_CHUNK of its own */
    static char buf[READ_CHUNK];
    struct http_conn *c = arg;
    ssize_t n;

    (void)what;
    if (c->lingering) {
        linger_read(c);
        return;
    }
    n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        conn_eof(c);
        return;
    }
    if (n == 0) {
        conn_eof(c);
        return;
    }
    evbuffer_add(c->in, buf, (size_t)n);
    if (c->serving || (c->req == NULL && evbuffer_get_length(c->out) > 0)) {
        /* a pipelined request: read once this one is answered */
        if (evbuffer_get_length(c->in) > READ_AHEAD) {
            event_del(c->rev);
            c->paused = true;
        }
        return;
    }
    conn_process(c);
}

/* Writes what the connection has to write. Returns false when it was
 * freed. */
static bool conn_flush(struct http_conn *c)
{
    while (evbuffer_get_length(c->out) > 0) {
        int n = evbuffer_write(c->out, c->fd);

        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct timeval tv = {app.cfg->header_timeout, 0};

            event_add(c->wev, &tv);
            return true;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            log_debug("an answer: write: %s", strerror(errno));
            conn_free(c);
            return false;
        }
    }
    event_del(c->wev);
    if (c->closing && c->linger && !c->eof) {
        conn_linger(c);
        return false;
    }
    if (c->closing) {
        conn_free(c);
        return false;
    }
    return true;
}

/* The answer is out: the next request, from what came meanwhile. */
static void conn_next(struct http_conn *c)
{
    head_wait(c);
    if (c->paused) {
        c->paused = false;
        event_add(c->rev, NULL);
    }
    conn_process(c);
    if (eof_done(c))
        conn_free(c);
}

static void conn_writable(evutil_socket_t fd, short what, void *arg)
{
    struct http_conn *c = arg;

    (void)fd;
    if (what & EV_TIMEOUT) {
        log_debug("cutting a connection that took no bytes of its answer "
                  "for %d s",
                  app.cfg->header_timeout);
        conn_free(c);
        return;
    }
    if (conn_flush(c) && evbuffer_get_length(c->out) == 0 && !c->serving &&
        c->req == NULL)
        conn_next(c);
}

/* Answers made in this loop turn, written after the callbacks that made
 * them; and connections to close. */
static void send_answers(evutil_socket_t fd, short what, void *arg)
{
    struct http_conn *c;

    (void)fd;
    (void)what;
    (void)arg;
    while ((c = TAILQ_FIRST(&sending)) != NULL) {
        TAILQ_REMOVE(&sending, c, send);
        c->sending = false;
        if (c->dropping) {
            conn_free(c);
            continue;
        }
        if (c->bev != NULL)
            continue;
        if (!conn_flush(c))
            continue;
        if (evbuffer_get_length(c->out) == 0 && !c->serving && c->req == NULL)
            conn_next(c);
    }
}

static void sweep_heads(evutil_socket_t fd, short what, void *arg)
{
    int64_t deadline = event_now_ms() - app.cfg->header_timeout * 1000LL;
    struct http_conn *c;

    while ((c = TAILQ_FIRST(&awaiting)) != NULL &&
           c->head_since_ms < deadline) {
        log_debug("cutting a connection whose request took over %d s",
                  app.cfg->header_timeout);
        conn_free(c);
    }
    deadline = event_now_ms() - LINGER_MS;
    while ((c = TAILQ_FIRST(&lingering)) != NULL && c->head_since_ms < deadline)
        conn_free(c);
}

/* --- answering --- */

static const char *http_date(void)
{
    static char date[64];
    static time_t at = -1;
    struct timeval now;
    struct tm tm;

    event_base_gettimeofday_cached(app.base, &now);
    if (now.tv_sec != at) {
        at = now.tv_sec;
        gmtime_r(&at, &tm);
        strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    }
    return date;
}

/* Whether the connection ends with this answer, and the answer's
 * Connection header where it says so. */
static bool answer_closes(struct http_req *req)
{
    bool has = http_answer_header(req, "Connection") != NULL;

    /* Shutting down: each connection ends with its answer, so that its
     * client comes back on a new one (another daemon, behind nginx)
     * rather than asking this one again until it exits. */
    if (!has && (app.draining || (req->scan & SCAN_CLOSE))) {
        http_add_header(req, "Connection", "close");
        return true;
    }
    if (answer_says(req, "Connection", "close") || (req->scan & SCAN_CLOSE))
        return true;
    if (req->minor == 0) {
        if (!(req->scan & SCAN_KEEP))
            return true;
        if (!has)
            http_add_header(req, "Connection", "keep-alive");
    }
    return false;
}

static char *put(char *p, const char *s)
{
    size_t n = strlen(s);

    memcpy(p, s, n);
    return p + n;
}

/* The status line and headers of the answer, into `out`. `length`: the
 * Content-Length to add, or -1 for none. */
static void write_head(struct evbuffer *out, struct http_req *req, int status,
                       const char *reason, long long length, bool chunked)
{
    struct evbuffer_iovec v;
    size_t need = req->out_len + strlen(reason) + 160;
    char *p;

    if (evbuffer_reserve_space(out, (ev_ssize_t)need, &v, 1) < 1) {
        log_error("evbuffer_reserve_space failed");
        abort();
    }
    p = v.iov_base;
    /* HTTP/1.1 to a 1.0 client too, as RFC 9110 2.5 asks (with no
     * chunks and no other 1.1 feature it could not read); written by
     * hand, as printf cost a poll's answer more than its JSON */
    p = put(p, "HTTP/1.1 ");
    p = decimal_put(p, (uint64_t)status);
    *p++ = ' ';
    p = put(p, reason);
    p = put(p, "\r\n");
    memcpy(p, req->out_hdrs, req->out_len);
    p += req->out_len;
    if (http_answer_header(req, "Date") == NULL) {
        p = put(p, "Date: ");
        p = put(p, http_date());
        p = put(p, "\r\n");
    }
    if (length >= 0 && http_answer_header(req, "Content-Length") == NULL) {
        p = put(p, "Content-Length: ");
        p = decimal_put(p, (uint64_t)length);
        p = put(p, "\r\n");
    }
    if (chunked)
        p = put(p, "Transfer-Encoding: chunked\r\n");
    p = put(p, "\r\n");
    v.iov_len = (size_t)(p - (char *)v.iov_base);
    evbuffer_commit_space(out, &v, 1);
}

void http_send_reply(struct http_req *req, int status, const char *reason)
{
    struct http_conn *c = req->conn;
    /* 1xx, 204 and 304 have no body, nor a length (RFC 9110 8.6) */
    bool bodiless = status < 200 || status == 204 || status == 304;
    size_t len = req->out != NULL ? evbuffer_get_length(req->out) : 0;

    if (c == NULL) { /* its client left while it was served */
        req_free(req);
        return;
    }
    if (answer_closes(req))
        c->closing = true;
    write_head(c->out, req, status,
               reason != NULL ? reason : rest_reason(status),
               bodiless ? -1 : (long long)len, false);
    /* HEAD: the length of what GET would answer, and no body */
    if (!bodiless && !req->is_head && len > 0)
        evbuffer_add_buffer(c->out, req->out);
    c->req = NULL;
    c->serving = false;
    req_free(req);
    queue_send(c);
}

void http_drop(struct http_req *req)
{
    struct http_conn *c = req->conn;

    if (c != NULL) {
        c->req = NULL;
        c->serving = false;
        conn_drop(c);
    }
    req_free(req);
}

struct http_watch *http_watch_new(struct http_req *req, void (*gone)(void *arg),
                                  void *arg)
{
    req->watch.gone = gone;
    req->watch.arg = arg;
    /* a client that half-closed before the watch began is gone now */
    if (req->conn != NULL && req->conn->eof)
        conn_drop(req->conn);
    return &req->watch;
}

void http_watch_free(struct http_watch *w)
{
    if (w != NULL)
        w->gone = NULL;
}

/* --- connections handed over --- */

/* The connection becomes a bufferevent with what is unread in its input
 * and unwritten in its output; the request is freed. */
static struct http_conn *hand_over(struct http_req *req)
{
    struct http_conn *c = req->conn;

    if (c != NULL) {
        c->req = NULL;
        c->serving = false;
    }
    req_free(req);
    if (c == NULL)
        return NULL;
    /* a connection dropping (its client left) is handed over all the
     * same: it closes at the end of the turn, and its new owner hears of
     * it then (http_conn_on_close) */
    event_free(c->rev);
    event_free(c->wev);
    c->rev = c->wev = NULL;
    c->bev = bufferevent_socket_new(app.base, c->fd, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL) {
        log_error("bufferevent_socket_new failed");
        abort();
    }
    /* the end of a bufferevent's input is frozen for all but its reads */
    evbuffer_unfreeze(bufferevent_get_input(c->bev), 0);
    evbuffer_add_buffer(bufferevent_get_input(c->bev), c->in);
    evbuffer_freeze(bufferevent_get_input(c->bev), 0);
    evbuffer_add_buffer(bufferevent_get_output(c->bev), c->out);
    evbuffer_free(c->in);
    evbuffer_free(c->out);
    c->in = c->out = NULL;
    return c;
}

struct http_conn *http_upgrade(struct http_req *req)
{
    return hand_over(req);
}

struct bufferevent *http_conn_bev(const struct http_conn *conn)
{
    return conn->bev;
}

void http_conn_close(struct http_conn *conn)
{
    if (conn->bev != NULL) {
        bufferevent_setcb(conn->bev, NULL, NULL, NULL, NULL);
        bufferevent_disable(conn->bev, EV_READ | EV_WRITE);
    }
    conn->gone = NULL;
    conn_drop(conn);
}

void http_conn_on_close(struct http_conn *conn, void (*cb)(void *arg),
                        void *arg)
{
    conn->gone = cb;
    conn->cb_arg = arg;
}

static void stream_read(struct bufferevent *bev, void *arg)
{
    struct evbuffer *in = bufferevent_get_input(bev);

    (void)arg;
    /* a stream's client has nothing to say; read only to see it go */
    evbuffer_drain(in, evbuffer_get_length(in));
}

static void stream_event(struct bufferevent *bev, short what, void *arg)
{
    struct http_conn *c = arg;
    void (*gone)(void *) = c->gone;

    (void)bev;
    if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)))
        return;
    http_conn_close(c);
    if (gone != NULL)
        gone(c->cb_arg);
}

/* An ended stream: closed once its last bytes are written. */
static void stream_written(struct bufferevent *bev, void *arg)
{
    struct http_conn *c = arg;

    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        http_conn_close(c);
}

struct http_conn *http_stream_start(struct http_req *req, int status,
                                    int write_timeout, bool *chunked,
                                    void (*gone)(void *arg), void *arg)
{
    struct http_conn *c = req->conn;
    struct timeval wtv = {write_timeout, 0};

    *chunked = false;
    if (c != NULL) {
        /* an HTTP/1.0 stream ends with its connection */
        *chunked = req->minor == 1;
        if (!*chunked)
            req->scan |= SCAN_CLOSE;
        (void)answer_closes(req);
        write_head(c->out, req, status, rest_reason(status), -1, *chunked);
    }
    c = hand_over(req);
    if (c == NULL)
        return NULL;
    c->chunked = *chunked;
    c->gone = gone;
    c->cb_arg = arg;
    bufferevent_setcb(c->bev, stream_read, NULL, stream_event, c);
    bufferevent_set_timeouts(c->bev, NULL, &wtv);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    return c;
}

void http_stream_end(struct http_conn *conn)
{
    struct evbuffer *out = bufferevent_get_output(conn->bev);

    conn->gone = NULL;
    if (conn->chunked)
        evbuffer_add(out, "0\r\n\r\n", 5);
    if (evbuffer_get_length(out) == 0) {
        http_conn_close(conn);
        return;
    }
    bufferevent_setwatermark(conn->bev, EV_WRITE, 0, 0);
    bufferevent_setcb(conn->bev, stream_read, stream_written, stream_event,
                      conn);
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

/* --- accepting --- */

#define ACCEPT_BACKOFF_MS 250

static struct event *accept_resume;
static bool accept_paused;
static int64_t accept_logged_ms;
static uint64_t accept_failures; /* since last logged */

static void resume_accepting(evutil_socket_t fd, short what, void *arg)
{
    if (listener != NULL)
        evconnlistener_enable(listener);
    if (unix_listener != NULL)
        evconnlistener_enable(unix_listener);
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

/* The connection is one too many: the fixed answer, then closed. A request
 * the client already sent is read first, so that closing does not reset
 * the connection under the answer. */
static void refuse(evutil_socket_t fd)
{
    char sink[4096], answer[512];
    int n;
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
    n = snprintf(answer, sizeof(answer),
                 "HTTP/1.1 503 Service Unavailable\r\n"
                 "Content-Type: application/json\r\n"
                 "Cache-Control: no-store\r\n"
                 "Date: %s\r\n"
                 "Retry-After: 1\r\n"
                 "Connection: close\r\n"
                 "Content-Length: %zu\r\n\r\n%s",
                 http_date(), strlen(refusal), refusal);
    if (n > 0 && (size_t)n < sizeof(answer))
        send_raw(fd, answer, (size_t)n);
    close_socket(fd);
}

static void accepted(struct evconnlistener *lev, evutil_socket_t fd,
                     struct sockaddr *sa, int salen, void *arg)
{
    struct http_conn *c;

    (void)lev;
    (void)arg;
    if (accept_paused) {
        accept_paused = false;
        log_info("accepting connections again");
        accept_failures = 0;
        accept_logged_ms = 0;
    }
    if (n_conns >= (size_t)app.cfg->max_connections) {
        refuse(fd);
        return;
    }
    c = xcalloc(1, sizeof(*c));
    c->fd = fd;
    c->head_since_ms = -1;
    if (sa->sa_family == AF_UNIX) {
        c->on_unix = true;
        strcpy(c->peer, "unix");
    } else if (getnameinfo(sa, (socklen_t)salen, c->peer, sizeof(c->peer), NULL,
                           0, NI_NUMERICHOST) != 0) {
        c->peer[0] = '\0';
    }
    c->in = evbuffer_new();
    c->out = evbuffer_new();
    c->rev = event_new(app.base, fd, EV_READ | EV_PERSIST, conn_readable, c);
    c->wev = event_new(app.base, fd, EV_WRITE, conn_writable, c);
    if (c->in == NULL || c->out == NULL || c->rev == NULL || c->wev == NULL) {
        log_error("out of memory for a connection");
        abort();
    }
    TAILQ_INSERT_TAIL(&conns, c, all);
    n_conns++;
    event_add(c->rev, NULL);
    head_wait(c);
}

/* The listening socket, with a backlog as long as the kernel allows
 * (net.core.somaxconn caps it; 4096 by default since Linux 5.4): a burst
 * of connections beyond a short one (clients coming back after a restart,
 * nginx opening upstream connections for a wave of re-polls) had its SYNs
 * dropped while crosstalkd was busy, and each waited for the client's
 * retry, 1 s and then 3 s later. */
#define LISTEN_BACKLOG 65535

static struct evconnlistener *bind_listener(const char *host, int port)
{
    struct evutil_addrinfo hints, *ai = NULL;
    struct evconnlistener *lev;
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
    lev = evconnlistener_new_bind(
        app.base, accepted, NULL,
        LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
        LISTEN_BACKLOG, ai->ai_addr, (int)ai->ai_addrlen);
    err = errno;
    evutil_freeaddrinfo(ai);
    if (lev == NULL)
        log_error("cannot listen on %s:%d: %s", host, port, strerror(err));
    return lev;
}

/* unix_socket's file, while it is ours: removed when we stop accepting,
 * unless another process has put its own there since. `unix_lock` is the
 * descriptor of PATH.lock, locked for as long as we accept. */
static char *unix_path;
static dev_t unix_dev;
static ino_t unix_ino;
static int unix_lock = -1;

/* Takes PATH.lock with flock(), held until we stop accepting (the drain
 * frees the path for a new daemon): two crosstalkd started on
 * one path at the same instant could otherwise each take the other's
 * socket, bound and not yet listening, for one left by a dead process,
 * and remove it. The file is left in place (removing a lock file races
 * with the next one to open it). Returns 0, or -1 with the reason logged. */
static int unix_take_lock(const char *path)
{
    char *lock = xasprintf("%s.lock", path);
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);

    if (fd < 0) {
        log_error("cannot listen on unix:%s: %s: %s", path, lock,
                  strerror(errno));
    } else if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            log_error("cannot listen on unix:%s: another crosstalkd holds "
                      "%s",
                      path, lock);
        else
            log_error("cannot listen on unix:%s: %s: %s", path, lock,
                      strerror(errno));
        close(fd);
        fd = -1;
    }
    free(lock);
    unix_lock = fd;
    return fd < 0 ? -1 : 0;
}

/* A socket file left at `path` by a process that is gone (killed, or
 * crashed) refuses connections: remove it. Returns 0 when the path is
 * free, -1 with the reason logged when it is not a socket, something
 * listens on it, or it cannot be removed. */
static int unix_clear(const char *path, const struct sockaddr_un *su)
{
    struct stat st;
    int fd, rc, err;

    if (lstat(path, &st) != 0)
        return 0;
    if (!S_ISSOCK(st.st_mode)) {
        log_error("cannot listen on unix:%s: the file exists and is not a "
                  "socket%s",
                  path, S_ISLNK(st.st_mode) ? " (a symbolic link)" : "");
        return -1;
    }
    /* non-blocking: a listener whose backlog is full makes connect()
     * wait for room, and EAGAIN says as well that something listens */
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        log_error("cannot listen on unix:%s: socket: %s", path,
                  strerror(errno));
        return -1;
    }
    rc = connect(fd, (const struct sockaddr *)su, sizeof(*su));
    err = errno;
    close(fd);
    if (rc == 0 || err == EAGAIN) {
        log_error("cannot listen on unix:%s: another process listens on it",
                  path);
        return -1;
    }
    if (err != ECONNREFUSED) {
        log_error("cannot listen on unix:%s: %s", path, strerror(err));
        return -1;
    }
    if (unlink(path) != 0) {
        log_error("cannot listen on unix:%s: it was left by a process that "
                  "is gone, and removing it failed: %s",
                  path, strerror(errno));
        return -1;
    }
    log_info("unix:%s was left by a process that is gone: removed", path);
    return 0;
}

/* Listens on unix_socket too, a socket file any local user may connect to,
 * like the TCP port on loopback beside it (mode 0666; a directory's mode
 * narrows who reaches it). An nginx on the same host proxies to it without
 * TCP's cost on each side (docs/operations.md). */
static struct evconnlistener *bind_unix(const char *path)
{
    struct sockaddr_un su;
    struct evconnlistener *lev;
    struct stat st;
    size_t len = strlen(path);
    mode_t mask;
    int err;

    memset(&su, 0, sizeof(su));
    su.sun_family = AF_UNIX;
    if (len >= sizeof(su.sun_path)) {
        log_error("cannot listen on unix:%s: the path is %zu bytes, longer "
                  "than a socket's may be (%zu)",
                  path, len, sizeof(su.sun_path) - 1);
        return NULL;
    }
    memcpy(su.sun_path, path, len + 1);
    if (unix_take_lock(path) != 0 || unix_clear(path, &su) != 0)
        return NULL;
    /* bind() makes the file with the mode the umask leaves of 0777: the
     * mode is set as it is made, not by chmod() on a path another process
     * may have replaced by then */
    mask = umask(0111);
    lev = evconnlistener_new_bind(
        app.base, accepted, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
        LISTEN_BACKLOG, (struct sockaddr *)&su, (int)sizeof(su));
    err = errno;
    umask(mask);
    if (lev == NULL) {
        log_error("cannot listen on unix:%s: %s", path, strerror(err));
        return NULL;
    }
    if (lstat(path, &st) != 0 || !S_ISSOCK(st.st_mode)) {
        log_error("cannot listen on unix:%s: the socket file was replaced "
                  "as it was made",
                  path);
        evconnlistener_free(lev);
        return NULL;
    }
    unix_path = xstrdup(path);
    unix_dev = st.st_dev;
    unix_ino = st.st_ino;
    return lev;
}

int http_start(void (*handler)(struct http_req *req))
{
    const struct config *cfg = app.cfg;
    struct timeval tv = {1, 0};

    if (proxies_load(cfg->trusted_proxies) != 0)
        return -1;
    tchars_init();
    snprintf(refusal, sizeof(refusal),
             "{\"error\":\"unavailable\",\"message\":\"this server holds "
             "max_connections (%d) connections; try another or later\"}\n",
             cfg->max_connections);
    serve = handler;
    TAILQ_INIT(&conns);
    TAILQ_INIT(&awaiting);
    TAILQ_INIT(&sending);
    TAILQ_INIT(&lingering);
    send_ev = event_new(app.base, -1, 0, send_answers, NULL);
    defer_ev = event_new(app.base, -1, 0, run_deferred, NULL);
    accept_resume = event_new(app.base, -1, 0, resume_accepting, NULL);
    head_sweep = event_new(app.base, -1, EV_PERSIST, sweep_heads, NULL);
    event_add(head_sweep, &tv);
    listener = bind_listener(cfg->bind, cfg->port);
    if (listener == NULL)
        return -1;
    evconnlistener_set_error_cb(listener, accept_error);
    log_info("listening on http://%s:%d/", cfg->bind, cfg->port);
    if (cfg->unix_socket[0] != '\0') {
        unix_listener = bind_unix(cfg->unix_socket);
        if (unix_listener == NULL)
            return -1;
        evconnlistener_set_error_cb(unix_listener, accept_error);
        log_info("listening on unix:%s", cfg->unix_socket);
        /* a proxy trusted on loopback and now coming in on the socket (an
         * upgrade to the shipped nginx config) would put every client
         * behind it under one address, "unix", in the per-IP limits */
        if (n_proxies > 0 && !trust_unix)
            log_warn("trusted_proxies names addresses but not unix: "
                     "X-Real-IP on unix:%s is ignored, and every client of "
                     "a proxy there shares the address \"unix\" (add unix "
                     "to trusted_proxies if nginx comes in on it)",
                     cfg->unix_socket);
    }
    return 0;
}

void http_free(void)
{
    struct http_conn *c;

    http_stop_accepting();
    /* what waits to be freed goes first, while the bus is still there */
    run_deferred(-1, 0, NULL);
    /* a watched request's or a stream's owner hears of it */
    while ((c = TAILQ_FIRST(&conns)) != NULL)
        conn_free(c);
    run_deferred(-1, 0, NULL);
    free(deferred);
    deferred = NULL;
    cap_deferred = 0;
    if (defer_ev != NULL)
        event_free(defer_ev);
    defer_ev = NULL;
    if (head_sweep != NULL)
        event_free(head_sweep);
    head_sweep = NULL;
    if (send_ev != NULL)
        event_free(send_ev);
    send_ev = NULL;
    if (accept_resume != NULL)
        event_free(accept_resume);
    accept_resume = NULL;
    free(proxies);
    proxies = NULL;
    n_proxies = 0;
    trust_unix = false;
}

void http_stop_accepting(void)
{
    struct stat st;

    if (listener != NULL) {
        evconnlistener_free(listener);
        listener = NULL;
    }
    if (unix_listener != NULL) {
        evconnlistener_free(unix_listener);
        unix_listener = NULL;
    }
    if (unix_path != NULL) {
        if (lstat(unix_path, &st) == 0 && st.st_dev == unix_dev &&
            st.st_ino == unix_ino)
            unlink(unix_path);
        free(unix_path);
        unix_path = NULL;
    }
    /* the path is free for a new daemon while this one drains */
    if (unix_lock >= 0) {
        close(unix_lock);
        unix_lock = -1;
    }
}
