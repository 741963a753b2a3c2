/* floor.c - crosstalk-floor: the least a server can do to deliver a
 * published message over SSE or WebSocket, for scripts/bench/run to measure
 * crosstalkd and nginx+nchan against.
 *
 * One epoll loop; a publish is framed once and handed to each subscriber's
 * socket with one send(). No store, no history, no JSON, no timeouts; its
 * limits (--help) only keep bad input from growing it. It speaks the part of
 * nchan's API crosstalk-bench --target nchan uses for the streams (POST
 * /pub?id=R, GET /sub/sse?id=R, GET /sub/ws?id=R), so the same client measures
 * all three. A measuring stick, not a server to deploy: it is not installed. */
#include <errno.h>
#include <getopt.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "strlist.h"
#include "wscore.h"
#include "wsframe.h"
#include "xmalloc.h"

#define HEAD_MAX 8192       /* a request head longer than this: 431 */
#define BODY_MAX 65536      /* a published body longer than this: 413 */
#define PENDING_MAX 8388608 /* a subscriber this far behind is closed */
#define ROOM_MAX 64
#define EVENTS 512
#define ACCEPT_PAUSE_MS 100 /* out of descriptors: accept again after this */

enum kind { K_REQUEST, K_SSE, K_WS };

struct room;

struct client {
    int fd;
    enum kind kind;
    char *in; /* a request's bytes not yet handled (K_REQUEST only) */
    size_t inlen;
    char *out; /* bytes the kernel did not take yet */
    size_t outlen;
    bool closing;                 /* close once `out` is written */
    uint8_t fh[WSFRAME_HEAD_MAX]; /* K_WS: a client frame's header so far */
    size_t fhlen;
    uint64_t frame_left; /* K_WS: payload bytes of the client's frame to skip */
    bool dead; /* closed; freed after the loop turn (events may name it) */
    struct room *room;
    struct client *prev, *next; /* in the room's list */
    struct client *next_dead;
};

struct room {
    char id[ROOM_MAX + 1];
    struct client *subs;
    struct room *next;
};

static int ep;
static int lfd = -1;
static struct room *rooms;
static int64_t accept_paused_until; /* ms; 0: accepting */
static bool accept_starved;         /* out of descriptors, said once */
static struct client *dead;         /* closed this loop turn */

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- rooms --- */

/* A room exists while it has subscribers: a publish to any other finds
 * nobody, and ids that come and go leave nothing behind. */
static struct room *room_find(const char *id)
{
    struct room *r;

    for (r = rooms; r != NULL; r = r->next)
        if (strcmp(r->id, id) == 0)
            return r;
    return NULL;
}

static void room_join(const char *id, struct client *c)
{
    struct room *r = room_find(id);

    if (r == NULL) {
        r = xcalloc(1, sizeof(*r));
        strcpy(r->id, id);
        r->next = rooms;
        rooms = r;
    }
    c->room = r;
    c->next = r->subs;
    if (r->subs != NULL)
        r->subs->prev = c;
    r->subs = c;
}

static void room_leave(struct client *c)
{
    struct room *r = c->room, **pp;

    if (r == NULL)
        return;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        r->subs = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->room = NULL;
    if (r->subs != NULL)
        return;
    for (pp = &rooms; *pp != r; pp = &(*pp)->next)
        ;
    *pp = r->next;
    free(r);
}

/* --- connections --- */

/* Closes c at once; its memory goes at the end of the loop turn, as a
 * publish may close a subscriber whose event is still to be handled. */
static void client_close(struct client *c)
{
    room_leave(c);
    close(c->fd); /* leaves the epoll set with it */
    c->dead = true;
    c->next_dead = dead;
    dead = c;
}

static void free_dead(void)
{
    while (dead != NULL) {
        struct client *c = dead;
        dead = c->next_dead;
        free(c->in);
        free(c->out);
        free(c);
    }
}

static void want_write(struct client *c, bool on)
{
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0),
                             .data.ptr = c};

    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Sends what is pending, then `len` more bytes. Returns false when the
 * client was closed (a send error, or too far behind). */
static bool client_write(struct client *c, const char *data, size_t len)
{
    ssize_t n;

    if (c->outlen == 0 && len > 0) {
        n = send(c->fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            client_close(c);
            return false;
        }
        if (n > 0) {
            data += n;
            len -= (size_t)n;
        }
        if (len == 0)
            return true;
        want_write(c, true);
    }
    if (c->outlen + len > PENDING_MAX) {
        client_close(c);
        return false;
    }
    c->out = xrealloc(c->out, c->outlen + len);
    memcpy(c->out + c->outlen, data, len);
    c->outlen += len;
    return true;
}

static void client_writable(struct client *c)
{
    ssize_t n = send(c->fd, c->out, c->outlen, MSG_NOSIGNAL);

    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            client_close(c);
        return;
    }
    memmove(c->out, c->out + n, c->outlen - (size_t)n);
    c->outlen -= (size_t)n;
    if (c->outlen > 0)
        return;
    if (c->closing) {
        client_close(c);
        return;
    }
    want_write(c, false);
}

/* Answers with `status` (and `extra` header lines, each ending in CRLF)
 * and closes the connection: a request it does not serve. */
static void refuse_with(struct client *c, const char *status, const char *extra)
{
    char head[512];
    size_t len = strlen(status) + 2;
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %s\r\nContent-Type: text/plain\r\n%s"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s\r\n",
                     status, extra, len, status);

    c->closing = true;
    if (client_write(c, head, (size_t)n) && c->outlen == 0)
        client_close(c);
}

static void refuse(struct client *c, const char *status)
{
    refuse_with(c, status, "");
}

/* --- requests --- */

/* The value of header `name` in head[0..len), trimmed, or NULL; *vlen gets
 * its length. *twice is set when the header comes more than once (the
 * request is then refused: which one counts is the smuggler's question). */
static const char *header(const char *head, size_t len, const char *name,
                          size_t *vlen, bool *twice)
{
    size_t nl = strlen(name);
    const char *p = memchr(head, '\n', len), *end = head + len, *found = NULL;

    *twice = false;
    while (p != NULL && ++p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *v = p + nl + 1;

        if (eol == NULL)
            eol = end;
        if ((size_t)(eol - p) > nl && p[nl] == ':' &&
            strncasecmp(p, name, nl) == 0) {
            if (found != NULL) {
                *twice = true;
                return found;
            }
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            *vlen = (size_t)(eol - v);
            while (*vlen > 0 && (v[*vlen - 1] == '\r' || v[*vlen - 1] == ' '))
                (*vlen)--;
            found = v;
        }
        p = eol;
    }
    return found;
}

/* True when the comma-separated value[0..len) lists `token` (any case). */
static bool has_token(const char *value, size_t len, const char *token)
{
    char list[256];

    if (len >= sizeof(list))
        return false;
    memcpy(list, value, len);
    list[len] = '\0';
    return strlist_has(list, token);
}

/* The id=R query parameter of target[0..len) into id; false when there is
 * none, or it is empty, too long or has a character outside [A-Za-z0-9._-]. */
static bool room_id(const char *target, size_t len, char id[ROOM_MAX + 1])
{
    const char *q = memchr(target, '?', len), *end = target + len;
    size_t n = 0;

    while (q != NULL && q < end) {
        q++;
        if (end - q > 3 && memcmp(q, "id=", 3) == 0) {
            for (q += 3; q < end && *q != '&'; q++) {
                bool ok = (*q >= 'a' && *q <= 'z') ||
                          (*q >= 'A' && *q <= 'Z') ||
                          (*q >= '0' && *q <= '9') || *q == '.' || *q == '_' ||
                          *q == '-';
                if (!ok || n == ROOM_MAX)
                    return false;
                id[n++] = *q;
            }
            id[n] = '\0';
            return n > 0;
        }
        q = memchr(q, '&', (size_t)(end - q));
    }
    return false;
}

static bool path_is(const char *target, size_t len, const char *path)
{
    size_t pl = strlen(path);

    return len >= pl && memcmp(target, path, pl) == 0 &&
           (len == pl || target[pl] == '?');
}

/* Frames `body` once and sends it to every subscriber of room `id`. */
static void publish(const char *id, const char *body, size_t len)
{
    struct room *r = room_find(id);
    uint8_t wh[WSCORE_HEAD_MAX];
    size_t whl, sl;
    char *sse, *ws;
    struct client *c, *next;

    if (r == NULL)
        return; /* nobody listens */
    whl = wscore_frame_header(wh, WSCORE_TEXT, len);
    sse = xmalloc(len * 7 + 16);
    ws = xmalloc(whl + len);
    /* SSE: every line of the body is a data: line */
    memcpy(sse, "data: ", 6);
    sl = 6;
    for (size_t i = 0; i < len; i++) {
        if (body[i] == '\r' || body[i] == '\n') {
            /* CRLF, CR and LF each end a line, as they do for the client */
            if (body[i] == '\r' && i + 1 < len && body[i + 1] == '\n')
                i++;
            memcpy(sse + sl, "\ndata: ", 7);
            sl += 7;
        } else {
            sse[sl++] = body[i];
        }
    }
    memcpy(sse + sl, "\n\n", 2);
    sl += 2;
    memcpy(ws, wh, whl);
    memcpy(ws + whl, body, len);

    /* a write that fails closes its subscriber: client_close() unlinks it
     * (`next` stays valid) and frees the room only with its last one */
    for (c = r->subs; c != NULL; c = next) {
        next = c->next;
        if (c->kind == K_SSE)
            client_write(c, sse, sl);
        else
            client_write(c, ws, whl + len);
    }
    free(sse);
    free(ws);
}

static bool subscribe_sse(struct client *c, const char *id)
{
    static const char head[] = "HTTP/1.1 200 OK\r\n"
                               "Content-Type: text/event-stream\r\n"
                               "Cache-Control: no-cache\r\n"
                               "Connection: close\r\n\r\n";

    if (!client_write(c, head, sizeof(head) - 1))
        return false;
    c->kind = K_SSE;
    room_join(id, c);
    return true;
}

static bool subscribe_ws(struct client *c, const char *id, const char *head,
                         size_t hlen)
{
    char key[WSCORE_KEY_LEN + 1] = "", accept[WSCORE_ACCEPT_LEN + 1];
    char answer[256];
    size_t kl = 0, ul = 0, cl = 0, vl = 0;
    bool twice[4];
    const char *k = header(head, hlen, "Sec-WebSocket-Key", &kl, &twice[0]);
    const char *u = header(head, hlen, "Upgrade", &ul, &twice[1]);
    const char *conn = header(head, hlen, "Connection", &cl, &twice[2]);
    const char *v = header(head, hlen, "Sec-WebSocket-Version", &vl, &twice[3]);
    int n;

    if (k != NULL && kl == WSCORE_KEY_LEN) {
        memcpy(key, k, kl);
        key[kl] = '\0';
    }
    if (u == NULL || ul != 9 || strncasecmp(u, "websocket", 9) != 0 ||
        conn == NULL || !has_token(conn, cl, "upgrade") ||
        !wscore_key_valid(key) || twice[0] || twice[1] || twice[2] ||
        twice[3]) {
        refuse(c, "400 Bad Request");
        return false;
    }
    if (v == NULL || vl != 2 || memcmp(v, "13", 2) != 0) {
        refuse_with(c, "426 Upgrade Required", "Sec-WebSocket-Version: 13\r\n");
        return false;
    }
    wscore_accept_key(key, accept);
    n = snprintf(answer, sizeof(answer),
                 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                 accept);
    if (!client_write(c, answer, (size_t)n))
        return false;
    c->kind = K_WS;
    room_join(id, c);
    return true;
}

/* The body length a request declares: 0 without Content-Length, -1 (and
 * an answer sent, c closed) when it is not one number of digits, comes
 * twice, exceeds BODY_MAX or comes with a Transfer-Encoding, which the
 * floor does not read. */
static long body_length(struct client *c, const char *head, size_t hlen,
                        bool *declared)
{
    size_t vl = 0, tl = 0;
    bool twice, te_twice;
    const char *v = header(head, hlen, "Content-Length", &vl, &twice);
    long n = 0;

    *declared = v != NULL;
    if (header(head, hlen, "Transfer-Encoding", &tl, &te_twice) != NULL) {
        refuse(c, "501 Not Implemented");
        return -1;
    }
    if (v == NULL)
        return 0;
    if (twice || vl == 0) {
        refuse(c, "400 Bad Request");
        return -1;
    }
    for (size_t i = 0; i < vl; i++) {
        if (v[i] < '0' || v[i] > '9') {
            refuse(c, "400 Bad Request");
            return -1;
        }
        if (n <= BODY_MAX)
            n = n * 10 + (v[i] - '0');
    }
    if (n > BODY_MAX) {
        refuse(c, "413 Content Too Large");
        return -1;
    }
    return n;
}

/* Handles the requests whole in c->in. Returns false when c was closed. */
static bool handle_requests(struct client *c)
{
    static const char created[] = "HTTP/1.1 201 Created\r\n"
                                  "Content-Length: 0\r\n\r\n";
    static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                             "Content-Length: 3\r\n\r\nok\n";

    while (c->kind == K_REQUEST && c->inlen > 0) {
        const char *end = memmem(c->in, c->inlen, "\r\n\r\n", 4);
        const char *sp1, *sp2, *target;
        size_t hlen, tlen, used;
        long body;
        bool get, post, declared;
        char id[ROOM_MAX + 1];

        hlen = end != NULL ? (size_t)(end - c->in) + 4 : c->inlen;
        if (hlen > HEAD_MAX) {
            refuse(c, "431 Request Header Fields Too Large");
            return false;
        }
        if (end == NULL)
            return true;
        /* METHOD SP TARGET SP HTTP/1.x CRLF */
        sp1 = memchr(c->in, ' ', hlen);
        sp2 =
            sp1 ? memchr(sp1 + 1, ' ', hlen - (size_t)(sp1 + 1 - c->in)) : NULL;
        if (sp2 == NULL || hlen - (size_t)(sp2 + 1 - c->in) < 8 ||
            memcmp(sp2 + 1, "HTTP/1.", 7) != 0) {
            refuse(c, "400 Bad Request");
            return false;
        }
        target = sp1 + 1;
        tlen = (size_t)(sp2 - target);
        if ((body = body_length(c, c->in, hlen, &declared)) < 0)
            return false;
        if (c->inlen < hlen + (size_t)body)
            return true; /* the body is still coming */
        used = hlen + (size_t)body;
        get = sp1 - c->in == 3 && memcmp(c->in, "GET", 3) == 0;
        post = sp1 - c->in == 4 && memcmp(c->in, "POST", 4) == 0;

        if (path_is(target, tlen, "/pub")) {
            if (!post) {
                refuse(c, "405 Method Not Allowed");
                return false;
            }
            if (!declared) {
                refuse(c, "411 Length Required");
                return false;
            }
            if (!room_id(target, tlen, id)) {
                refuse(c, "400 Bad Request");
                return false;
            }
            publish(id, c->in + hlen, (size_t)body);
            if (!client_write(c, created, sizeof(created) - 1))
                return false;
        } else if (path_is(target, tlen, "/healthz") ||
                   path_is(target, tlen, "/sub/sse") ||
                   path_is(target, tlen, "/sub/ws")) {
            bool sse = path_is(target, tlen, "/sub/sse");
            if (!get) {
                refuse(c, "405 Method Not Allowed");
                return false;
            }
            if (path_is(target, tlen, "/healthz")) {
                if (!client_write(c, ok, sizeof(ok) - 1))
                    return false;
            } else if (!room_id(target, tlen, id)) {
                refuse(c, "400 Bad Request");
                return false;
            } else if (sse ? !subscribe_sse(c, id)
                           : !subscribe_ws(c, id, c->in, hlen)) {
                return false;
            }
        } else {
            refuse(c, "404 Not Found");
            return false;
        }
        memmove(c->in, c->in + used, c->inlen - used);
        c->inlen -= used;
    }
    if (c->kind != K_REQUEST) {
        /* a subscriber's input is read and dropped from now on */
        free(c->in);
        c->in = NULL;
        c->inlen = 0;
    }
    return true;
}

/* Skips a WebSocket client's frames (pongs, its messages) but for a close,
 * which is answered with a close frame before the connection is closed. */
static void ws_input(struct client *c, const uint8_t *p, size_t n)
{
    static const uint8_t close_frame[] = {0x80 | WSCORE_CLOSE, 0};

    while (n > 0) {
        size_t take, hl, had = c->fhlen;
        uint64_t plen;

        if (c->frame_left > 0) {
            take = c->frame_left < n ? (size_t)c->frame_left : n;
            c->frame_left -= take;
            p += take;
            n -= take;
            continue;
        }
        take = n < sizeof(c->fh) - had ? n : sizeof(c->fh) - had;
        memcpy(c->fh + had, p, take);
        hl = wsframe_head(c->fh, had + take, &plen);
        if (hl == 0) {
            c->fhlen += take; /* the header is still coming */
            return;
        }
        p += hl - had;
        n -= hl - had;
        c->fhlen = 0;
        if ((c->fh[0] & 0x0f) == WSCORE_CLOSE) {
            room_leave(c);
            c->closing = true;
            if (client_write(c, (const char *)close_frame,
                             sizeof(close_frame)) &&
                c->outlen == 0)
                client_close(c);
            return;
        }
        c->frame_left = plen;
    }
}

static void client_readable(struct client *c)
{
    char buf[16384];
    ssize_t n = recv(c->fd, buf, sizeof(buf), 0);

    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        client_close(c);
        return;
    }
    if (n < 0 || c->closing)
        return;
    if (c->kind == K_WS) {
        ws_input(c, (const uint8_t *)buf, (size_t)n);
        return;
    }
    if (c->kind == K_SSE)
        return; /* nothing an SSE client sends means anything */
    c->in = xrealloc(c->in, c->inlen + (size_t)n);
    memcpy(c->in + c->inlen, buf, (size_t)n);
    c->inlen += (size_t)n;
    handle_requests(c);
}

/* --- the listener --- */

static void listener_arm(bool on)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};

    epoll_ctl(ep, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, lfd, &ev);
}

static void accept_all(void)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        struct client *c;
        struct epoll_event ev;

        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                errno == ENOMEM) {
                /* the pending connection stays queued; a level-triggered
                 * listener would report it again at once */
                if (!accept_starved)
                    fprintf(stderr,
                            "crosstalk-floor: accept: %s; trying again "
                            "every %d ms\n",
                            strerror(errno), ACCEPT_PAUSE_MS);
                accept_starved = true;
                listener_arm(false);
                accept_paused_until = now_ms() + ACCEPT_PAUSE_MS;
            }
            return;
        }
        if (accept_starved) {
            fprintf(stderr, "crosstalk-floor: accepting connections again\n");
            accept_starved = false;
        }
        c = xcalloc(1, sizeof(*c));
        c->fd = fd;
        c->kind = K_REQUEST;
        ev = (struct epoll_event){.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
            client_close(c);
    }
}

static int listen_on(const char *host, int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    int one = 1, fd;

    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "crosstalk-floor: --bind %s is not an IPv4 address\n",
                host);
        return -1;
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(fd, 65535) != 0) {
        fprintf(stderr, "crosstalk-floor: cannot listen on %s:%d: %s\n", host,
                port, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: crosstalk-floor --port PORT [--bind ADDRESS]\n"
            "\n"
            "The least a server can do to deliver a published message over "
            "SSE or\n"
            "WebSocket: one epoll loop, each publish framed once and sent to "
            "each\n"
            "subscriber with one send(). scripts/bench/run measures crosstalkd "
            "and\n"
            "nginx+nchan against it (crosstalk-bench --target nchan speaks "
            "to it).\n"
            "Not a server to deploy: no history, no authentication, no "
            "timeouts.\n"
            "\n"
            "  POST /pub?id=ROOM      the body (Content-Length) goes to "
            "ROOM's\n"
            "                         subscribers (201)\n"
            "  GET /sub/sse?id=ROOM   an SSE stream: data: lines\n"
            "  GET /sub/ws?id=ROOM    a WebSocket: one text frame per "
            "publish\n"
            "  GET /healthz           200 ok\n"
            "\n"
            "Limits: a head of 8 KiB (431), a body of 64 KiB (413), a room "
            "id of 1-64\n"
            "of [A-Za-z0-9._-] (400); a subscriber 8 MiB behind is "
            "closed.\n"
            "\n"
            "  --port PORT      TCP port to listen on (required)\n"
            "  --bind ADDRESS   IPv4 address to listen on (default "
            "127.0.0.1)\n"
            "  -h, --help       this text\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"port", required_argument, NULL, 'p'},
        {"bind", required_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *host = "127.0.0.1";
    int port = 0, opt;
    struct epoll_event evs[EVENTS];

    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        char *end;
        long v;
        switch (opt) {
        case 'p':
            v = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || v < 1 || v > 65535) {
                fprintf(stderr,
                        "crosstalk-floor: --port '%s' is not a port "
                        "(1-65535)\n",
                        optarg);
                return 2;
            }
            port = (int)v;
            break;
        case 'b':
            host = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "crosstalk-floor: unexpected argument '%s'\n",
                argv[optind]);
        return 2;
    }
    if (port == 0) {
        fprintf(stderr, "crosstalk-floor: --port is required (try --help)\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if ((lfd = listen_on(host, port)) < 0)
        return 1;
    if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        fprintf(stderr, "crosstalk-floor: epoll_create1: %s\n",
                strerror(errno));
        return 1;
    }
    listener_arm(true);
    /* OpenSSL sets up its digests on first use: done now, they count to
     * the process before any subscriber rather than to the first
     * WebSocket's share of the benchmark's RSS per connection */
    {
        char warm[WSCORE_ACCEPT_LEN + 1];
        wscore_accept_key("dGhlIHNhbXBsZSBub25jZQ==", warm);
    }
    fprintf(stderr, "crosstalk-floor: listening on %s:%d\n", host, port);

    for (;;) {
        int timeout = -1, n;

        if (accept_paused_until != 0) {
            int64_t left = accept_paused_until - now_ms();
            if (left <= 0) {
                accept_paused_until = 0;
                listener_arm(true);
            } else {
                timeout = (int)left;
            }
        }
        n = epoll_wait(ep, evs, EVENTS, timeout);
        if (n < 0 && errno != EINTR) {
            fprintf(stderr, "crosstalk-floor: epoll_wait: %s\n",
                    strerror(errno));
            return 1;
        }
        for (int i = 0; i < n; i++) {
            struct client *c = evs[i].data.ptr;
            if (c != NULL && c->dead)
                continue;
            if (c == NULL) {
                accept_all();
            } else if (evs[i].events & EPOLLOUT) {
                /* a write first: it may close c */
                client_writable(c);
            } else {
                client_readable(c);
            }
        }
        free_dead();
    }
}
