/* sub.c - the benchmark's subscribers (see sub.h) */
#include "sub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "bench.h"
#include "conn.h"
#include "xmalloc.h"

#define CURSOR_MAX 96
#define SP_LIMIT 500
#define BACKOFF_MIN_MS 10
#define BACKOFF_MAX_MS 1000
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define REPORT_MAX 5 /* connection problems told in full; the rest counted */

struct sub {
    int idx;
    struct conn *c;
    void (*ready)(struct sub *s, bool ok);
    bool is_ready;
    bool warm;
    uint64_t t0;                /* connect start */
    uint64_t sent;              /* last request written (closed loop) */
    char cursor[CURSOR_MAX];    /* crosstalk since / SSE and WS event id */
    char lastmod[64], etag[64]; /* nchan long and interval poll */
    char accept[32];            /* the Sec-WebSocket-Accept we expect */
    const char *token;
    uint8_t *seen; /* bitmap of measured sequence numbers */
    size_t seen_bytes;
    uint64_t unique, dups, top; /* top: highest seq + 1 */
    unsigned found;             /* markers in the answer being read */
    int backoff_ms;
    struct event *timer;
};

static bool stopped;
static unsigned reported;

static void reconnect(struct sub *s);
static void poll_again(struct sub *s);

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    poll_again(arg);
}

static void report(struct sub *s, const char *fmt, const char *what)
{
    if (reported++ < REPORT_MAX) {
        fprintf(stderr, "crosstalk-bench: subscriber %d: ", s->idx);
        fprintf(stderr, fmt, what);
        fputc('\n', stderr);
        if (reported == REPORT_MAX)
            fprintf(stderr, "crosstalk-bench: (further connection problems "
                            "are only counted)\n");
    }
}

struct sub *sub_new(int idx)
{
    struct sub *s = xcalloc(1, sizeof(*s));

    s->idx = idx;
    s->backoff_ms = BACKOFF_MIN_MS;
    if (R.tokens != NULL)
        s->token = R.tokens[idx % R.o.users];
    return s;
}

void sub_free(struct sub *s)
{
    if (s == NULL)
        return;
    conn_close(s->c);
    if (s->timer)
        event_free(s->timer);
    free(s->seen);
    free(s);
}

bool sub_warm(const struct sub *s)
{
    return s->warm;
}

uint64_t sub_unique(const struct sub *s)
{
    return s->unique;
}

uint64_t sub_dups(const struct sub *s)
{
    return s->dups;
}

void sub_stop_all(void)
{
    stopped = true;
}

/* --- accounting --- */

static void on_marker(void *arg, bool warm, uint64_t seq)
{
    struct sub *s = arg;
    size_t byte = seq / 8;
    uint8_t bit = (uint8_t)(1u << (seq % 8));

    s->found++;
    if (stopped)
        return;
    if (warm) {
        if (!s->warm) {
            s->warm = true;
            R.warm_needed--;
        }
        return;
    }
    if (seq >= R.nseq) {
        R.unknown++;
        return;
    }
    if (byte >= s->seen_bytes) {
        size_t n = s->seen_bytes ? s->seen_bytes : 64;
        while (n <= byte)
            n *= 2;
        s->seen = xrealloc(s->seen, n);
        memset(s->seen + s->seen_bytes, 0, n - s->seen_bytes);
        s->seen_bytes = n;
    }
    if (s->seen[byte] & bit) {
        s->dups++;
        R.dups++;
        R.steps[R.step_of[seq]].dups++;
        return;
    }
    s->seen[byte] |= bit;
    s->unique++;
    if (seq + 1 < s->top)
        R.reordered++;
    else
        s->top = seq + 1;
    run_delivered(seq, conn_read_ns(s->c), true);
}

/* --- requests --- */

static void set_ready(struct sub *s, bool ok)
{
    if (s->is_ready)
        return;
    s->is_ready = true;
    if (ok)
        hist_record(R.connect, now_ns() - s->t0);
    if (s->ready)
        s->ready(s, ok);
}

static size_t auth_header(const struct sub *s, char *buf, size_t size)
{
    if (R.o.target != TARGET_CROSSTALK)
        return (size_t)snprintf(buf, size, "%s", "");
    return (size_t)snprintf(buf, size, "Authorization: Bearer %s\r\n",
                            s->token);
}

static void ws_key(struct sub *s, char key[32])
{
    unsigned char raw[16], digest[SHA_DIGEST_LENGTH];
    char cat[64 + sizeof(WS_GUID)];

    for (size_t i = 0; i < sizeof(raw); i++)
        raw[i] = (unsigned char)random();
    EVP_EncodeBlock((unsigned char *)key, raw, sizeof(raw));
    snprintf(cat, sizeof(cat), "%s%s", key, WS_GUID);
    SHA1((unsigned char *)cat, strlen(cat), digest);
    EVP_EncodeBlock((unsigned char *)s->accept, digest, sizeof(digest));
}

/* Writes the request that (re)subscribes or polls. */
static void send_request(struct sub *s)
{
    char req[1536], auth[128], extra[512] = "", path[512];
    const char *p = R.o.prefix, *room = R.o.room;
    enum conn_mode mode = CONN_WHOLE;
    int n;

    auth_header(s, auth, sizeof(auth));
    switch (R.o.transport) {
    case BT_SSE:
        mode = CONN_STREAM;
        if (R.o.target == TARGET_CROSSTALK)
            snprintf(path, sizeof(path), "%s/api/rooms/%s/events?token=%s", p,
                     room, s->token);
        else
            snprintf(path, sizeof(path), "%s/sub/sse?id=%s", p, room);
        snprintf(extra, sizeof(extra), "Accept: text/event-stream\r\n%s%s%s",
                 s->cursor[0] ? "Last-Event-ID: " : "", s->cursor,
                 s->cursor[0] ? "\r\n" : "");
        auth[0] = '\0';
        break;
    case BT_WS: {
        char key[32];
        mode = CONN_UPGRADE;
        ws_key(s, key);
        if (R.o.target == TARGET_CROSSTALK)
            snprintf(path, sizeof(path), "%s/api/rooms/%s/ws?token=%s%s%s", p,
                     room, s->token, s->cursor[0] ? "&since=" : "", s->cursor);
        else
            snprintf(path, sizeof(path), "%s/sub/ws?id=%s", p, room);
        snprintf(extra, sizeof(extra),
                 "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                 "Origin: http://%s\r\n%s%s%s%s",
                 key, R.hosthdr,
                 R.o.target == TARGET_NCHAN
                     ? "Sec-WebSocket-Protocol: ws+meta.nchan\r\n"
                     : "",
                 R.o.target == TARGET_NCHAN && s->cursor[0] ? "Last-Event-ID: "
                                                            : "",
                 R.o.target == TARGET_NCHAN ? s->cursor : "",
                 R.o.target == TARGET_NCHAN && s->cursor[0] ? "\r\n" : "");
        auth[0] = '\0';
        break;
    }
    case BT_LONG_POLL:
    case BT_SHORT_POLL:
        if (R.o.target == TARGET_CROSSTALK) {
            if (R.o.transport == BT_LONG_POLL)
                snprintf(path, sizeof(path),
                         "%s/api/rooms/%s/poll?timeout=%d%s%s", p, room,
                         R.o.poll_timeout, s->cursor[0] ? "&since=" : "",
                         s->cursor);
            else if (s->cursor[0])
                snprintf(path, sizeof(path),
                         "%s/api/rooms/%s/messages?since=%s&limit=%d", p, room,
                         s->cursor, SP_LIMIT);
            else
                snprintf(path, sizeof(path), "%s/api/rooms/%s/messages?limit=1",
                         p, room);
        } else {
            snprintf(path, sizeof(path), "%s/sub/%s?id=%s", p,
                     R.o.transport == BT_LONG_POLL ? "lp" : "ip", room);
            if (s->etag[0])
                snprintf(extra, sizeof(extra),
                         "If-Modified-Since: %s\r\nIf-None-Match: %s\r\n",
                         s->lastmod, s->etag);
        }
        break;
    }
    n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: %s\r\n%s%s\r\n",
                 path, R.hosthdr, auth, extra);
    s->sent = now_ns();
    s->found = 0;
    R.sub_requests++;
    conn_request(s->c, req, (size_t)n, mode);
}

static void backoff(struct sub *s)
{
    struct timeval tv = {s->backoff_ms / 1000, (s->backoff_ms % 1000) * 1000};

    if (s->timer == NULL)
        s->timer = evtimer_new(R.base, on_timer, s);
    evtimer_add(s->timer, &tv);
    s->backoff_ms =
        s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
}

/* --- streams: SSE --- */

static void copy_line(char *dst, size_t size, const char *p, const char *end)
{
    size_t n = 0;

    while (p + n < end && p[n] != '\n' && p[n] != '\r' && n + 1 < size)
        n++;
    memcpy(dst, p, n);
    dst[n] = '\0';
}

static void on_head(struct conn *c, int status, const char *head, size_t hlen)
{
    struct sub *s = conn_arg(c);
    const char *v;
    size_t vl;

    if (R.o.transport == BT_WS) {
        if (!conn_header(head, hlen, "Sec-WebSocket-Accept", &v, &vl) ||
            vl != strlen(s->accept) || memcmp(v, s->accept, vl) != 0) {
            report(s, "%s", "the 101 answer has a wrong Sec-WebSocket-Accept");
            R.sub_errors++;
            conn_close(c);
            s->c = NULL;
            if (!s->is_ready)
                set_ready(s, false);
            return;
        }
    } else if (status != 200) {
        char what[160];
        snprintf(what, sizeof(what), "%.*s", (int)(hlen > 150 ? 150 : hlen),
                 head);
        report(s, "the stream was refused: %s", what);
        R.sub_errors++;
        conn_close(c);
        s->c = NULL;
        if (!s->is_ready)
            set_ready(s, false);
        else
            backoff(s);
        return;
    }
    s->backoff_ms = BACKOFF_MIN_MS;
    set_ready(s, true);
}

static size_t on_body(struct conn *c, const char *data, size_t len)
{
    struct sub *s = conn_arg(c);
    const char *p = data, *end = data + len;

    for (;;) {
        const char *e = memmem(p, (size_t)(end - p), "\n\n", 2);
        if (e == NULL)
            break;
        if (e - p > 4 && memcmp(p, "id: ", 4) == 0)
            copy_line(s->cursor, sizeof(s->cursor), p + 4, e);
        bench_scan(p, (size_t)(e - p), on_marker, s);
        p = e + 2;
    }
    return (size_t)(p - data);
}

/* --- WebSocket --- */

static void on_message(struct conn *c, int opcode, const char *data, size_t len)
{
    struct sub *s = conn_arg(c);
    const char *end = data + len;

    if (R.o.target == TARGET_CROSSTALK) {
        if (len > 8 && memcmp(data, "{\"id\":\"", 7) == 0) {
            const char *q = memchr(data + 7, '"', len - 7);
            size_t n = q ? (size_t)(q - data - 7) : 0;
            if (n > 0 && n < sizeof(s->cursor)) {
                memcpy(s->cursor, data + 7, n);
                s->cursor[n] = '\0';
            }
        }
    } else if (len > 4 && memcmp(data, "id: ", 4) == 0) {
        copy_line(s->cursor, sizeof(s->cursor), data + 4, end);
    }
    bench_scan(data, len, on_marker, s);
}

/* --- polls --- */

/* A 429 or (while setting up) a 503 ends the run with the server's answer
 * rather than retrying: past a limit of the server's configuration, a
 * subscriber would only retry until the warm-up gave up. */
static bool refused(struct sub *s, int status, const char *body, size_t blen)
{
    static const char *const names[] = {"short poll", "long poll", "SSE stream",
                                        "WebSocket upgrade"};
    const char *hint = NULL;
    char what[96];

    if (status == 429 && R.o.target == TARGET_CROSSTALK) {
        hint = R.o.transport == BT_LONG_POLL
                   ? "(the server's longpolls_per_token: --per-user 8 fits "
                     "the shipped default)"
               : R.o.transport == BT_SHORT_POLL
                   ? "(a limit of the server's configuration)"
                   : "(the server's streams_per_token: --per-user 16 fits "
                     "the shipped default)";
    }
    snprintf(what, sizeof(what), "subscriber %d's %s", s->idx,
             names[R.o.transport]);
    return run_refused(what, status, body, blen, hint);
}

static void poll_again(struct sub *s)
{
    if (s->c == NULL) {
        reconnect(s);
        return;
    }
    send_request(s);
}

/* The answer said Connection: close (as nginx's last one on a connection
 * does after keepalive_requests): the next poll goes on a new connection.
 * That is the connection's ordinary end, not a loss: neither counted as a
 * reconnect nor backed off. */
static void drop_if_ending(struct sub *s, struct conn *c)
{
    if (conn_ending(c)) {
        conn_close(c);
        s->c = NULL;
    }
}

static void schedule_poll(struct sub *s, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    if (s->timer == NULL)
        s->timer = evtimer_new(R.base, on_timer, s);
    evtimer_add(s->timer, &tv);
}

static void on_response(struct conn *c, int status, const char *head,
                        size_t hlen, const char *body, size_t blen)
{
    struct sub *s = conn_arg(c);
    const char *v;
    size_t vl;
    bool ok = status == 200 || status == 204 || status == 304;

    if (R.o.closed_loop && !stopped) {
        hist_record(R.rtt, now_ns() - s->sent);
        R.closed_responses++;
    }
    if (!ok) {
        char what[160];
        if (refused(s, status, body, blen))
            return;
        snprintf(what, sizeof(what), "%d %.*s", status,
                 (int)(blen > 140 ? 140 : blen), body ? body : "");
        report(s, "a poll was answered %s", what);
        R.sub_errors++;
        if (!s->is_ready) {
            set_ready(s, false);
            return;
        }
        drop_if_ending(s, c);
        backoff(s);
        return;
    }
    s->backoff_ms = BACKOFF_MIN_MS;
    if (R.o.target == TARGET_NCHAN) {
        /* a 304 to a poll without a cursor carries the newest one */
        if (conn_header(head, hlen, "Last-Modified", &v, &vl) &&
            vl < sizeof(s->lastmod)) {
            memcpy(s->lastmod, v, vl);
            s->lastmod[vl] = '\0';
        }
        if (conn_header(head, hlen, "Etag", &v, &vl) && vl < sizeof(s->etag)) {
            memcpy(s->etag, v, vl);
            s->etag[vl] = '\0';
        }
    }
    if (status == 200) {
        if (R.o.target == TARGET_CROSSTALK) {
            const char *k = memmem(body, blen, "\"last_id\":\"", 11);
            if (k != NULL) {
                const char *q =
                    memchr(k + 11, '"', (size_t)(body + blen - k - 11));
                size_t n = q ? (size_t)(q - k - 11) : 0;
                if (n > 0 && n < sizeof(s->cursor)) {
                    memcpy(s->cursor, k + 11, n);
                    s->cursor[n] = '\0';
                }
            }
        }
        bench_scan(body, blen, on_marker, s);
    }
    if (R.o.transport == BT_SHORT_POLL && !s->is_ready) {
        set_ready(s, true);
        if (s->c == NULL)
            return;
    }
    if (stopped && !R.o.closed_loop)
        return;
    drop_if_ending(s, c);
    if (R.o.closed_loop) {
        if (!stopped)
            poll_again(s);
    } else if (R.o.transport == BT_LONG_POLL || s->found >= SP_LIMIT ||
               (R.o.target == TARGET_NCHAN && status == 200)) {
        /* a full page, or nchan's one message per answer: there may be
         * more right away */
        poll_again(s);
    } else {
        schedule_poll(s, R.o.interval_ms);
    }
}

/* --- the connection --- */

static void on_connected(struct conn *c)
{
    struct sub *s = conn_arg(c);

    /* a long poll is in place once its request is on its way; the server
     * answers it only when there is something */
    if (R.o.transport == BT_LONG_POLL)
        set_ready(s, true);
}

static void on_closed(struct conn *c, const char *why)
{
    struct sub *s = conn_arg(c);

    s->c = NULL;
    if (stopped)
        return;
    if (!s->is_ready) {
        report(s, "could not subscribe: %s", why);
        set_ready(s, false);
        return;
    }
    report(s, "lost its connection (%s); resuming", why);
    R.reconnects++;
    backoff(s);
}

static const struct conn_ops ops = {
    .connected = on_connected,
    .head = on_head,
    .body = on_body,
    .response = on_response,
    .message = on_message,
    .closed = on_closed,
};

static void reconnect(struct sub *s)
{
    if (stopped)
        return;
    s->c = conn_new(R.base, &R.addr, &ops, s, &R.sub_io);
    send_request(s);
}

void sub_start(struct sub *s, void (*ready)(struct sub *s, bool ok))
{
    s->ready = ready;
    s->t0 = now_ns();
    s->c = conn_new(R.base, &R.addr, &ops, s, &R.sub_io);
    send_request(s);
}
