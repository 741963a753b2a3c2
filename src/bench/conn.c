/* conn.c - one client connection of the benchmark (see conn.h) */
#include "conn.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "xmalloc.h"

#define READ_CHUNK 65536
#define HEAD_MAX 65536

enum state {
    ST_CONNECTING,
    ST_IDLE, /* no request outstanding */
    ST_HEAD,
    ST_BODY_LEN,   /* `left` bytes of a Content-Length body */
    ST_CHUNK_SIZE, /* a chunk-size line */
    ST_CHUNK_DATA, /* `left` bytes of a chunk */
    ST_CHUNK_CRLF, /* the CRLF after a chunk */
    ST_TRAILER,    /* trailer lines after the last chunk */
    ST_BODY_EOF,   /* the body runs until the connection closes */
    ST_WS,
};

struct buf {
    char *p;
    size_t len, cap;
};

struct conn {
    int fd;
    struct event *rev, *wev;
    const struct conn_ops *ops;
    void *arg;
    enum state st;
    enum conn_mode mode;
    bool up;
    bool busy;          /* inside a callback: freeing waits */
    bool dead;          /* conn_close was called while busy */
    bool server_closes; /* the answer said Connection: close */
    struct buf in;      /* raw bytes read, from `off` on not parsed yet */
    size_t off;
    struct buf out;  /* bytes not written yet */
    struct buf body; /* the decoded body, or a fragmented message */
    char *head;      /* the head of the response being read */
    size_t hlen;
    int status;
    uint64_t left;
    int frag_op; /* opcode of a fragmented message, 0 when none */
    uint64_t read_ns;
    const char *fail; /* why, for a failure reported on the next turn */
    struct conn_totals *tot;
};

uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void buf_reserve(struct buf *b, size_t more)
{
    if (b->len + more <= b->cap)
        return;
    b->cap = b->cap ? b->cap : 1024;
    while (b->cap < b->len + more)
        b->cap *= 2;
    b->p = xrealloc(b->p, b->cap);
}

static void buf_add(struct buf *b, const void *data, size_t len)
{
    buf_reserve(b, len);
    memcpy(b->p + b->len, data, len);
    b->len += len;
}

static void buf_consume(struct buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}

void *conn_arg(const struct conn *c)
{
    return c->arg;
}

bool conn_is_up(const struct conn *c)
{
    return c->up;
}

bool conn_ending(const struct conn *c)
{
    return c->server_closes;
}

uint64_t conn_read_ns(const struct conn *c)
{
    return c->read_ns;
}

static void conn_free(struct conn *c)
{
    if (c->rev)
        event_free(c->rev);
    if (c->wev)
        event_free(c->wev);
    if (c->fd >= 0)
        close(c->fd);
    free(c->in.p);
    free(c->out.p);
    free(c->body.p);
    free(c->head);
    free(c);
}

void conn_close(struct conn *c)
{
    if (c == NULL)
        return;
    if (c->busy) {
        c->dead = true;
        return;
    }
    conn_free(c);
}

/* Ends the connection: tells the owner (unless it closed it) and frees. */
static void fail(struct conn *c, const char *why)
{
    if (!c->dead) {
        c->busy = true;
        c->ops->closed(c, why);
    }
    conn_free(c);
}

static int flush(struct conn *c)
{
    while (c->out.len > 0) {
        ssize_t n = write(c->fd, c->out.p, c->out.len);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                event_add(c->wev, NULL);
                return 0;
            }
            if (errno == EINTR)
                continue;
            return -1;
        }
        c->tot->bytes_out += (uint64_t)n;
        buf_consume(&c->out, (size_t)n);
    }
    event_del(c->wev);
    return 0;
}

static void send_bytes(struct conn *c, const void *data, size_t len)
{
    buf_add(&c->out, data, len);
    if (c->up && flush(c) != 0) {
        /* reported by the read side, which sees the same error */
        event_active(c->rev, EV_READ, 0);
    }
}

void conn_request(struct conn *c, const char *req, size_t len,
                  enum conn_mode mode)
{
    c->mode = mode;
    if (c->st == ST_IDLE || c->st == ST_CONNECTING) {
        if (c->st == ST_IDLE)
            c->st = ST_HEAD;
    }
    c->tot->requests++;
    send_bytes(c, req, len);
}

void conn_ws_send(struct conn *c, int opcode, const char *data, size_t len)
{
    unsigned char h[14];
    size_t hl = 2;
    uint32_t key = (uint32_t)random();
    unsigned char *mask;
    char small[256], *p;

    h[0] = (unsigned char)(0x80 | (opcode & 0x0f));
    if (len < 126) {
        h[1] = (unsigned char)(0x80 | len);
    } else if (len <= 0xffff) {
        h[1] = 0x80 | 126;
        h[2] = (unsigned char)(len >> 8);
        h[3] = (unsigned char)len;
        hl = 4;
    } else {
        h[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
        hl = 10;
    }
    mask = h + hl;
    memcpy(mask, &key, 4);
    hl += 4;
    p = len <= sizeof(small) ? small : xmalloc(len);
    for (size_t i = 0; i < len; i++)
        p[i] = (char)(data[i] ^ mask[i & 3]);
    send_bytes(c, h, hl);
    send_bytes(c, p, len);
    if (p != small)
        free(p);
}

bool conn_header(const char *head, size_t hlen, const char *name,
                 const char **val, size_t *vlen)
{
    size_t nlen = strlen(name);
    const char *p = head, *end = head + hlen;

    /* skip the status line */
    while (p < end && *p != '\n')
        p++;
    while (p < end) {
        const char *line = ++p, *eol;
        while (p < end && *p != '\n')
            p++;
        eol = p;
        if (eol > line && eol[-1] == '\r')
            eol--;
        if ((size_t)(eol - line) > nlen && line[nlen] == ':' &&
            strncasecmp(line, name, nlen) == 0) {
            const char *v = line + nlen + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            while (eol > v && (eol[-1] == ' ' || eol[-1] == '\t'))
                eol--;
            *val = v;
            *vlen = (size_t)(eol - v);
            return true;
        }
    }
    return false;
}

static bool header_has(const char *head, size_t hlen, const char *name,
                       const char *token)
{
    const char *v;
    size_t vl, tl = strlen(token);

    if (!conn_header(head, hlen, name, &v, &vl))
        return false;
    for (size_t i = 0; i + tl <= vl; i++)
        if (strncasecmp(v + i, token, tl) == 0)
            return true;
    return false;
}

/* The response is complete: hand it over and get ready for the next. */
static void complete(struct conn *c)
{
    c->st = ST_IDLE;
    c->tot->responses++;
    if (c->mode == CONN_STREAM) {
        if (c->body.len > 0)
            buf_consume(&c->body, c->ops->body(c, c->body.p, c->body.len));
    } else {
        c->ops->response(c, c->status, c->head, c->hlen, c->body.p,
                         c->body.len);
    }
    c->body.len = 0;
    if (c->server_closes && !c->dead) {
        c->dead = true;
        c->ops->closed(c, "the server closed after the answer");
    }
}

/* Parses the head at in[off..]; returns 0 when it needs more bytes, 1 when
 * parsed, -1 on a malformed answer. */
static int parse_head(struct conn *c)
{
    const char *p = c->in.p + c->off;
    size_t avail = c->in.len - c->off;
    const char *end = NULL;
    const char *v;
    size_t vl;

    for (size_t i = 3; i < avail; i++) {
        if (p[i] == '\n' && p[i - 1] == '\r' && p[i - 2] == '\n' &&
            p[i - 3] == '\r') {
            end = p + i + 1;
            break;
        }
    }
    if (end == NULL)
        return avail > HEAD_MAX ? -1 : 0;
    if (avail < 12 || strncmp(p, "HTTP/1.", 7) != 0)
        return -1;
    c->status = atoi(p + 9);
    c->hlen = (size_t)(end - p) - 4;
    free(c->head);
    c->head = xstrndup(p, c->hlen);
    c->off += (size_t)(end - p);
    c->body.len = 0;
    c->server_closes = header_has(c->head, c->hlen, "Connection", "close");

    if (c->mode == CONN_UPGRADE && c->status == 101) {
        c->st = ST_WS;
        c->ops->head(c, c->status, c->head, c->hlen);
        return 1;
    }
    if (c->mode == CONN_UPGRADE ||
        (c->mode == CONN_STREAM && c->status / 100 != 2))
        c->mode = CONN_WHOLE;
    if (c->mode == CONN_STREAM)
        c->ops->head(c, c->status, c->head, c->hlen);
    if (c->dead)
        return 1;
    if (c->status == 204 || c->status == 304 || c->status / 100 == 1) {
        complete(c);
    } else if (header_has(c->head, c->hlen, "Transfer-Encoding", "chunked")) {
        c->st = ST_CHUNK_SIZE;
    } else if (conn_header(c->head, c->hlen, "Content-Length", &v, &vl)) {
        c->left = strtoull(v, NULL, 10);
        c->st = ST_BODY_LEN;
        if (c->left == 0)
            complete(c);
    } else {
        c->st = ST_BODY_EOF;
    }
    return 1;
}

/* One WebSocket frame at in[off..]: 0 needs more, 1 done, -1 bad. */
static int parse_frame(struct conn *c)
{
    const unsigned char *p = (const unsigned char *)c->in.p + c->off;
    size_t avail = c->in.len - c->off, hl = 2;
    uint64_t len;
    bool fin;
    int op;
    const char *data;

    if (avail < 2)
        return 0;
    fin = (p[0] & 0x80) != 0;
    op = p[0] & 0x0f;
    if (p[1] & 0x80)
        return -1; /* servers never mask */
    len = p[1] & 0x7f;
    if (len == 126) {
        if (avail < 4)
            return 0;
        len = ((uint64_t)p[2] << 8) | p[3];
        hl = 4;
    } else if (len == 127) {
        if (avail < 10)
            return 0;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = (len << 8) | p[2 + i];
        hl = 10;
    }
    if (avail - hl < len)
        return 0;
    data = (const char *)p + hl;
    c->off += hl + (size_t)len;
    c->tot->responses++;
    switch (op) {
    case WS_PING:
        conn_ws_send(c, WS_PONG, data, (size_t)len);
        return 1;
    case WS_PONG:
        return 1;
    case WS_CLOSE:
        conn_ws_send(c, WS_CLOSE, data, len >= 2 ? 2 : 0);
        return -2;
    case WS_CONT:
        if (c->frag_op == 0)
            return -1;
        buf_add(&c->body, data, (size_t)len);
        if (fin) {
            c->ops->message(c, c->frag_op, c->body.p, c->body.len);
            c->body.len = 0;
            c->frag_op = 0;
        }
        return 1;
    case WS_TEXT:
    case WS_BINARY:
        if (fin) {
            c->ops->message(c, op, data, (size_t)len);
        } else {
            c->frag_op = op;
            c->body.len = 0;
            buf_add(&c->body, data, (size_t)len);
        }
        return 1;
    default:
        return -1;
    }
}

/* Parses what has been read; returns NULL or why the connection must go. */
static const char *process(struct conn *c)
{
    while (!c->dead && c->off < c->in.len) {
        char *p = c->in.p + c->off;
        size_t avail = c->in.len - c->off;
        int rc;

        switch (c->st) {
        case ST_CONNECTING:
        case ST_IDLE:
            return "bytes from the server with no request outstanding";
        case ST_HEAD:
            rc = parse_head(c);
            if (rc < 0)
                return "a malformed response head";
            if (rc == 0)
                return NULL;
            break;
        case ST_BODY_LEN: {
            size_t n = avail < c->left ? avail : (size_t)c->left;
            buf_add(&c->body, p, n);
            c->off += n;
            c->left -= n;
            if (c->left == 0)
                complete(c);
            break;
        }
        case ST_BODY_EOF:
            buf_add(&c->body, p, avail);
            c->off += avail;
            break;
        case ST_CHUNK_SIZE:
        case ST_TRAILER: {
            char *nl = memchr(p, '\n', avail);
            if (nl == NULL)
                return avail > 1024 ? "a malformed chunk line" : NULL;
            c->off += (size_t)(nl - p) + 1;
            if (c->st == ST_TRAILER) {
                if (nl == p || (nl == p + 1 && p[0] == '\r'))
                    complete(c);
                break;
            }
            c->left = strtoull(p, NULL, 16);
            c->st = c->left ? ST_CHUNK_DATA : ST_TRAILER;
            break;
        }
        case ST_CHUNK_DATA: {
            size_t n = avail < c->left ? avail : (size_t)c->left;
            buf_add(&c->body, p, n);
            c->off += n;
            c->left -= n;
            if (c->left == 0)
                c->st = ST_CHUNK_CRLF;
            break;
        }
        case ST_CHUNK_CRLF: {
            char *nl = memchr(p, '\n', avail);
            if (nl == NULL)
                return avail > 2 ? "a malformed chunk end" : NULL;
            c->off += (size_t)(nl - p) + 1;
            c->st = ST_CHUNK_SIZE;
            break;
        }
        case ST_WS:
            rc = parse_frame(c);
            if (rc == -2)
                return "the server closed the WebSocket";
            if (rc < 0)
                return "a malformed WebSocket frame";
            if (rc == 0)
                return NULL;
            break;
        }
    }
    return NULL;
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    const char *why = NULL;
    ssize_t n;

    if (c->fail != NULL) {
        fail(c, c->fail);
        return;
    }
    if (c->off > 0 && c->off == c->in.len) {
        c->off = c->in.len = 0;
    } else if (c->off > c->in.cap / 2) {
        buf_consume(&c->in, c->off);
        c->off = 0;
    }
    buf_reserve(&c->in, READ_CHUNK);
    n = read(fd, c->in.p + c->in.len, c->in.cap - c->in.len);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        fail(c, strerror(errno));
        return;
    }
    c->read_ns = now_ns();
    c->busy = true;
    if (n == 0) {
        if (c->st == ST_BODY_EOF)
            complete(c);
        if (c->dead) {
            conn_free(c);
            return;
        }
        c->busy = false;
        fail(c, c->st == ST_IDLE || c->st == ST_BODY_EOF
                    ? "the server closed the connection"
                    : "the server closed the connection mid-answer");
        return;
    }
    c->tot->bytes_in += (uint64_t)n;
    c->in.len += (size_t)n;
    why = process(c);
    if (!c->dead && why == NULL && c->mode == CONN_STREAM && c->body.len > 0 &&
        (c->st == ST_BODY_EOF || c->st == ST_CHUNK_SIZE ||
         c->st == ST_CHUNK_DATA || c->st == ST_CHUNK_CRLF ||
         c->st == ST_BODY_LEN))
        buf_consume(&c->body, c->ops->body(c, c->body.p, c->body.len));
    c->busy = false;
    if (c->dead) {
        conn_free(c);
        return;
    }
    if (why != NULL)
        fail(c, why);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    if (!c->up) {
        int err = 0;
        socklen_t len = sizeof(err);

        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err != 0) {
            c->tot->connect_failures++;
            fail(c, strerror(err));
            return;
        }
        c->up = true;
        c->tot->connects++;
        if (c->st == ST_CONNECTING)
            c->st = c->out.len > 0 ? ST_HEAD : ST_IDLE;
        event_add(c->rev, NULL);
        if (c->ops->connected != NULL) {
            c->busy = true;
            c->ops->connected(c);
            c->busy = false;
            if (c->dead) {
                conn_free(c);
                return;
            }
        }
    }
    if (flush(c) != 0)
        fail(c, strerror(errno));
}

struct conn *conn_new(struct event_base *base, const struct sockaddr_in *addr,
                      const struct conn_ops *ops, void *arg,
                      struct conn_totals *tot)
{
    struct conn *c = xcalloc(1, sizeof(*c));
    int one = 1;

    c->tot = tot;
    c->ops = ops;
    c->arg = arg;
    c->st = ST_CONNECTING;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        c->fail = strerror(errno);
    } else {
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(c->fd, (const struct sockaddr *)addr, sizeof(*addr)) != 0 &&
            errno != EINPROGRESS)
            c->fail = strerror(errno);
    }
    c->rev = event_new(base, c->fd, EV_READ | EV_PERSIST, on_read, c);
    c->wev = event_new(base, c->fd, EV_WRITE | EV_PERSIST, on_write, c);
    if (c->fail != NULL) {
        c->tot->connect_failures++;
        event_active(c->rev, EV_READ, 0);
    } else {
        event_add(c->wev, NULL);
    }
    return c;
}
