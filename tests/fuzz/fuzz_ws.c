/* fuzz_ws.c - the WebSocket frame path: the shipped protocol core
 * (src/transport/wscore.c, which websocket.c drives from its bufferevent)
 * driven over memory, with a tiny app that answers text as websocket.c
 * does (an ack or an error frame). What it checks:
 * - every byte the server writes is a well-formed RFC 6455 server frame:
 *   unmasked, shortest length form, control frames short and final, text
 *   valid UTF-8 and a JSON object, a close code we may send, and nothing
 *   after the close frame or after our write side is shut;
 * - the messages wslay hands up are exactly those a plain reading of the
 *   client's frames gives (up to the first frame that ends reading);
 * - every client ping before that point is answered with its payload, and
 *   a well-formed client close is echoed (code and reason), unless the
 *   server closed first.
 *
 * Input: byte 0 is the size of the pieces the client bytes arrive in
 * (0: all at once), byte 1 holds flags for server-side events between
 * pieces (FLAG_*), the rest is what the client sends after the handshake.
 */
#include <json-c/json.h>
#include <stdbool.h>

#include "api.h"
#include "fuzz.h"
#include "utf8.h"
#include "wscore.h"

/* max_message_bytes for this harness: small, so the 1009 limit is within
 * reach of a fuzz input; the limit itself is the shipped formula. */
#define MAX_MESSAGE_BYTES 64
#define MAX_MESSAGE wscore_max_message(MAX_MESSAGE_BYTES)

#define FLAG_PING 0x01         /* the ping timer fires after the first piece */
#define FLAG_SHUTDOWN 0x02     /* shutdown (1001) after the second piece */
#define FLAG_BLOB_SHIFT 2      /* 2 bits: size class of a broadcast event */
#define FLAG_PONG_TIMEOUT 0x10 /* the timer fires again at the end */

struct msg {
    uint8_t opcode;
    uint8_t *data;
    size_t len;
};

struct msgs {
    struct msg *v;
    size_t n, cap;
};

struct conn {
    struct wscore core; /* first: the callbacks get it back */
    const uint8_t *in;  /* everything the client will send */
    size_t in_len;
    size_t arrived; /* how much of it is in our input buffer */
    size_t taken;   /* how much the core has read */
    uint8_t *out;   /* everything we wrote */
    size_t out_len, out_cap;
    bool write_shut;
    bool server_ended;   /* we ended it (shutdown, ping timer), not the
                          * client's bytes */
    struct msgs got;     /* what wslay handed up */
    const uint8_t *blob; /* the broadcast frame of this run, if any */
    size_t blob_len;
};

static void msgs_add(struct msgs *m, uint8_t opcode, const uint8_t *data,
                     size_t len)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 8;
        m->v = realloc(m->v, m->cap * sizeof(*m->v));
        if (m->v == NULL)
            abort();
    }
    m->v[m->n].opcode = opcode;
    m->v[m->n].data = malloc(len + 1);
    if (m->v[m->n].data == NULL)
        abort();
    if (len > 0)
        memcpy(m->v[m->n].data, data, len);
    m->v[m->n].len = len;
    m->n++;
}

static void msgs_free(struct msgs *m)
{
    size_t i;

    for (i = 0; i < m->n; i++)
        free(m->v[i].data);
    free(m->v);
}

/* --- the socket, in memory: it takes all that is written at once --- */

static void out_add(struct conn *c, const void *data, size_t len)
{
    FUZZ_CHECK(!c->write_shut, "%zu bytes written after shutdown(SHUT_WR)",
               len);
    FUZZ_CHECK(!c->core.dead, "%zu bytes written after teardown", len);
    if (c->out_len + len > c->out_cap) {
        c->out_cap = (c->out_len + len) * 2;
        c->out = realloc(c->out, c->out_cap);
        if (c->out == NULL)
            abort();
    }
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
}

/* --- the core's callbacks --- */

static size_t core_peek(struct wscore *w, uint8_t *buf, size_t len)
{
    struct conn *c = (struct conn *)w;
    size_t avail = c->arrived - c->taken;

    if (len > 0)
        memcpy(buf, c->in + c->taken, avail < len ? avail : len);
    return avail;
}

static void core_take(struct wscore *w, uint8_t *buf, size_t n)
{
    struct conn *c = (struct conn *)w;

    FUZZ_CHECK(n <= c->arrived - c->taken, "took %zu of %zu bytes", n,
               c->arrived - c->taken);
    if (buf != NULL)
        memcpy(buf, c->in + c->taken, n);
    c->taken += n;
}

static void core_write(struct wscore *w, const uint8_t *data, size_t len)
{
    out_add((struct conn *)w, data, len);
}

static void core_frame(struct wscore *w)
{
}

/* The app: a message is stored at once (the ack), any other frame but
 * typing gets an error frame, as websocket.c answers. */
static void on_text(struct conn *c, const uint8_t *msg, size_t len)
{
    static const char ack[] = "{\"type\":\"ack\",\"id\":\"1732230000000-0\"}";
    struct api_error err;
    char *text = NULL, *json, *frame = NULL;
    size_t tlen = 0, jlen;
    int type = api_parse_client_frame((const char *)msg, len, MAX_MESSAGE_BYTES,
                                      &text, &tlen, &err);

    free(text);
    if (type == EVENT_MESSAGE) {
        wscore_send_text(&c->core, ack, sizeof(ack) - 1);
    } else if (type != EVENT_TYPING) {
        json = api_error_json(&err, &jlen);
        if (asprintf(&frame, "{\"type\":\"error\",%s", json + 1) < 0)
            abort();
        wscore_send_text(&c->core, frame, jlen + 15);
        free(frame);
        free(json);
    }
}

static void core_message(struct wscore *w, unsigned opcode, const uint8_t *msg,
                         size_t len)
{
    struct conn *c = (struct conn *)w;

    msgs_add(&c->got, (uint8_t)opcode, msg, len);
    if (opcode == WSCORE_TEXT)
        FUZZ_CHECK(len <= MAX_MESSAGE && utf8_valid((const char *)msg, len),
                   "text message of %zu bytes over the limit or not UTF-8",
                   len);
    if (opcode == WSCORE_TEXT && wscore_open(w))
        on_text(c, msg, len);
}

static void core_closing(struct wscore *w)
{
}

static void core_error(struct wscore *w, const char *what, int rc)
{
    /* websocket.c logs it as an error and drops the client */
    FUZZ_CHECK(0, "%s: %d", what, rc);
}

static const struct wscore_ops core_ops = {
    .peek = core_peek,
    .take = core_take,
    .write = core_write,
    .frame = core_frame,
    .message = core_message,
    .closing = core_closing,
    .error = core_error,
};

/* --- the driver, as websocket.c drives the core --- */

static void teardown(struct conn *c)
{
    wscore_kill(&c->core);
}

static void after_io(struct conn *c)
{
    if (c->core.dead)
        return;
    wscore_flush(&c->core);
    switch (wscore_settle(&c->core, 0)) {
    case WSCORE_END:
        teardown(c);
        break;
    case WSCORE_SHUT_WR:
        c->write_shut = true;
        break;
    case WSCORE_CHAT:
    case WSCORE_WAIT:
        break;
    }
}

static void on_read(struct conn *c)
{
    int rc;

    if (c->core.dead)
        return;
    rc = wscore_read(&c->core);
    if (c->core.dead)
        return;
    FUZZ_CHECK(rc == 0, "wscore_read: %d", rc);
    after_io(c);
}

static void tick(struct conn *c)
{
    if (c->core.dead)
        return;
    switch (wscore_tick(&c->core)) {
    case WSCORE_TICK_LATE:
    case WSCORE_TICK_NO_PONG:
        c->server_ended = true;
        teardown(c);
        break;
    case WSCORE_TICK_PINGED:
        after_io(c);
        break;
    case WSCORE_TICK_NONE:
        break;
    }
}

static void deliver(struct conn *c, const uint8_t *blob, size_t blen)
{
    if (!wscore_open(&c->core) || c->core.dead)
        return;
    if (wscore_send_frame(&c->core, blob, blen))
        out_add(c, blob, blen);
}

static void close_sub(struct conn *c)
{
    if (c->core.dead)
        return;
    c->server_ended = true;
    if (wscore_close(&c->core, WSCORE_GOING_AWAY, "server shutting down",
                     false))
        after_io(c);
}

/* --- the plain reading of the client's frames --- */

static bool close_code_ok(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
           (code >= 3000 && code <= 4999);
}

/* The client's close frame, when reading got to a well-formed one. */
struct ref_close {
    bool seen;
    uint8_t payload[125];
    size_t len;
};

/* The messages wslay should hand up: text (whole, after reassembly), ping
 * and pong, until the input ends or a frame stops reading (a protocol
 * error, binary, close, invalid UTF-8, a message over the limit). */
static void ref_walk(const uint8_t *p, size_t len, struct msgs *want,
                     struct ref_close *close)
{
    size_t off = 0, cur_len = 0;
    uint8_t *cur = NULL;
    bool in_text = false;
    struct utf8_state u;

    for (;;) {
        size_t hl = 2, plen, i;
        uint8_t b0, b1, op, mask[4], *pl;
        bool fin, ctrl;

        if (len - off < 2)
            break;
        b0 = p[off];
        b1 = p[off + 1];
        fin = (b0 & 0x80) != 0;
        op = b0 & 0x0f;
        ctrl = (op & 0x08) != 0;
        plen = b1 & 0x7f;
        if (ctrl && (plen > 125 || !fin))
            break;
        if (plen == 126) {
            if (len - off < 4)
                break;
            plen = (size_t)p[off + 2] << 8 | p[off + 3];
            if (plen < 126)
                break;
            hl = 4;
        } else if (plen == 127) {
            uint64_t v = 0;

            if (len - off < 10)
                break;
            for (i = 0; i < 8; i++)
                v = v << 8 | p[off + 2 + i];
            if (v < 65536 || (v >> 63) != 0)
                break;
            if (v > SIZE_MAX / 2)
                break; /* more than any input holds */
            plen = (size_t)v;
            hl = 10;
        }
        if ((b0 & 0x70) != 0 || (b1 & 0x80) == 0)
            break; /* RSV bits, or a client frame without a mask */
        if (!in_text ? !(op == 1 || op == 2 || op == 8 || op == 9 || op == 10)
                     : !(op == 0 || op == 8 || op == 9 || op == 10))
            break;
        if (!ctrl && (op == 0 ? cur_len : 0) + plen > MAX_MESSAGE)
            break; /* 1009 */
        if (op == 2)
            break; /* binary: refused with 1003 */
        if (len - off < hl + 4 || len - off - hl - 4 < plen)
            break; /* not all here yet */
        memcpy(mask, p + off + hl, 4);
        pl = malloc(plen + 1);
        if (pl == NULL)
            abort();
        for (i = 0; i < plen; i++)
            pl[i] = p[off + hl + 4 + i] ^ mask[i % 4];
        off += hl + 4 + plen;
        if (op == 8) {
            /* the close handshake: reading ends here */
            if (plen == 0 ||
                (plen >= 2 && close_code_ok((unsigned)pl[0] << 8 | pl[1]) &&
                 utf8_valid((const char *)pl + 2, plen - 2))) {
                close->seen = true;
                close->len = plen;
                memcpy(close->payload, pl, plen);
            }
            free(pl);
            break;
        }
        if (ctrl) {
            msgs_add(want, op, pl, plen);
            free(pl);
            continue;
        }
        if (op == 1) {
            utf8_init(&u);
            in_text = true;
            cur_len = 0;
        }
        if (!utf8_feed(&u, (const char *)pl, plen)) {
            free(pl);
            break;
        }
        cur = realloc(cur, cur_len + plen + 1);
        if (cur == NULL)
            abort();
        if (plen > 0)
            memcpy(cur + cur_len, pl, plen);
        cur_len += plen;
        free(pl);
        if (fin) {
            if (!utf8_done(&u))
                break;
            msgs_add(want, WSCORE_TEXT, cur, cur_len);
            in_text = false;
            cur_len = 0;
        }
    }
    free(cur);
}

/* --- what the server wrote --- */

/* What check_output saw besides well-formedness. */
struct seen {
    struct msgs pongs; /* payloads of our pongs, in order */
    bool closed;
    uint8_t close[125]; /* our close frame's payload */
    size_t close_len;
};

static void check_output(const struct conn *c, const uint8_t *p, size_t len,
                         struct seen *seen)
{
    size_t off = 0;
    bool closed = false;

    while (off < len) {
        size_t hl = 2, plen, i;
        uint8_t b0, b1, op;
        const uint8_t *pl;

        FUZZ_CHECK(!closed, "a frame after our close frame, at byte %zu", off);
        FUZZ_CHECK(len - off >= 2, "output ends inside a frame header");
        b0 = p[off];
        b1 = p[off + 1];
        op = b0 & 0x0f;
        FUZZ_CHECK((b0 & 0x70) == 0, "RSV bits set in 0x%02x", b0);
        FUZZ_CHECK((b1 & 0x80) == 0, "a masked server frame");
        FUZZ_CHECK(b0 & 0x80, "a fragmented server frame (opcode %u)", op);
        plen = b1 & 0x7f;
        if (plen == 126) {
            FUZZ_CHECK(len - off >= 4, "output ends inside a header");
            plen = (size_t)p[off + 2] << 8 | p[off + 3];
            FUZZ_CHECK(plen >= 126, "16-bit length %zu not shortest", plen);
            hl = 4;
        } else if (plen == 127) {
            uint64_t v = 0;

            FUZZ_CHECK(len - off >= 10, "output ends inside a header");
            for (i = 0; i < 8; i++)
                v = v << 8 | p[off + 2 + i];
            FUZZ_CHECK(v >= 65536 && v <= len, "64-bit length %llu",
                       (unsigned long long)v);
            plen = (size_t)v;
            hl = 10;
        }
        FUZZ_CHECK(len - off - hl >= plen,
                   "output ends inside a payload "
                   "(opcode %u, %zu bytes)",
                   op, plen);
        pl = p + off + hl;
        off += hl + plen;
        switch (op) {
        case WSCORE_TEXT: {
            json_tokener *tok = json_tokener_new();
            json_object *o, *t;

            if (plen > 4096) {
                /* only our own big broadcast is this long: compared, not
                 * parsed, which would cost more than the rest of a run */
                FUZZ_CHECK(c->blob != NULL && plen == c->blob_len - 10 &&
                               memcmp(pl, c->blob + 10, plen) == 0,
                           "a text frame of %zu bytes", plen);
                json_tokener_free(tok);
                break;
            }
            FUZZ_CHECK(utf8_valid((const char *)pl, plen),
                       "text frame not UTF-8");
            o = json_tokener_parse_ex(tok, (const char *)pl, (int)plen);
            FUZZ_CHECK(o != NULL && json_object_is_type(o, json_type_object) &&
                           json_tokener_get_parse_end(tok) == plen,
                       "text frame is not one JSON object: %.*s", (int)plen,
                       (const char *)pl);
            FUZZ_CHECK(json_object_object_get_ex(o, "type", &t) &&
                           json_object_is_type(t, json_type_string),
                       "text frame without a type: %.*s", (int)plen,
                       (const char *)pl);
            json_object_put(o);
            json_tokener_free(tok);
            break;
        }
        case WSCORE_PING:
            FUZZ_CHECK(plen <= 125, "ping of %zu bytes", plen);
            break;
        case WSCORE_PONG:
            FUZZ_CHECK(plen <= 125, "pong of %zu bytes", plen);
            msgs_add(&seen->pongs, op, pl, plen);
            break;
        case WSCORE_CLOSE:
            FUZZ_CHECK(plen <= 125 && plen != 1, "close payload of %zu bytes",
                       plen);
            if (plen >= 2) {
                unsigned code = (unsigned)pl[0] << 8 | pl[1];

                FUZZ_CHECK(close_code_ok(code), "close code %u", code);
                /* wslay 1.1.1 echoed a bad reason of a close frame read in
                 * pieces; websocket.c now gives it control frames whole */
                FUZZ_CHECK(utf8_valid((const char *)pl + 2, plen - 2),
                           "close reason not UTF-8 (code %u)", code);
            }
            closed = true;
            seen->closed = true;
            seen->close_len = plen;
            memcpy(seen->close, pl, plen);
            break;
        default:
            FUZZ_CHECK(0, "server frame with opcode %u", op);
        }
    }
}

/* --- the run --- */

/* A broadcast event as ws_encode makes it: header and event JSON. Made
 * once per size class and kept. */
static const uint8_t *make_blob(unsigned size_class, size_t *blen)
{
    static const size_t text_len[] = {0, 16, 300, 65536};
    static uint8_t *blobs[4];
    static size_t lens[4];
    size_t tl = text_len[size_class], jl, hl;
    char *json;
    uint8_t h[WSCORE_HEAD_MAX], *b;

    if (blobs[size_class] != NULL) {
        *blen = lens[size_class];
        return blobs[size_class];
    }

    json = malloc(tl + 128);
    if (json == NULL)
        abort();
    jl = (size_t)sprintf(json, "{\"id\":\"1-0\",\"room\":\"lobby\",\"type\":"
                               "\"message\",\"from\":\"alice\",\"text\":\"");
    memset(json + jl, 'x', tl);
    jl += tl;
    jl += (size_t)sprintf(json + jl, "\",\"ts\":1}");
    hl = wscore_frame_header(h, WSCORE_TEXT, jl);
    b = malloc(hl + jl);
    if (b == NULL)
        abort();
    memcpy(b, h, hl);
    memcpy(b + hl, json, jl);
    free(json);
    *blen = lens[size_class] = hl + jl;
    return blobs[size_class] = b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct wscore_limits limits = {MAX_MESSAGE};
    struct conn c;
    struct msgs want = {NULL, 0, 0};
    struct ref_close close = {false, {0}, 0};
    struct seen seen;
    size_t piece, k, i, blen = 0;
    unsigned flags, blob_class;
    const uint8_t *blob = NULL;

    if (size < 2)
        return 0;
    memset(&c, 0, sizeof(c));
    piece = data[0];
    flags = data[1];
    c.in = data + 2;
    c.in_len = size - 2;
    if (piece == 0)
        piece = c.in_len > 0 ? c.in_len : 1;
    blob_class = (flags >> FLAG_BLOB_SHIFT) & 3;
    if (blob_class != 0)
        blob = make_blob(blob_class, &blen);

    wscore_setup(&core_ops);
    wscore_init(&c.core, &limits);

    for (k = 0; c.arrived < c.in_len || k == 0; k++) {
        c.arrived +=
            piece < c.in_len - c.arrived ? piece : c.in_len - c.arrived;
        on_read(&c);
        if (k == 0 && (flags & FLAG_PING))
            tick(&c);
        if (k == 1 && (flags & FLAG_SHUTDOWN))
            close_sub(&c);
        /* the big one once; small ones after every piece */
        if (blob != NULL && (blob_class < 3 || k == 0))
            deliver(&c, blob, blen);
    }
    if (flags & FLAG_PONG_TIMEOUT)
        tick(&c);

    c.blob = blob;
    c.blob_len = blen;
    memset(&seen, 0, sizeof(seen));
    check_output(&c, c.out, c.out_len, &seen);

    /* What wslay handed up is what the frames say, up to where reading
     * stopped; all of it unless we ended the connection ourselves. */
    ref_walk(c.in, c.in_len, &want, &close);
    {
        size_t n = 0;

        for (i = 0; i < c.got.n; i++) {
            const struct msg *g = &c.got.v[i];

            if (g->opcode != WSCORE_TEXT && g->opcode != WSCORE_PING &&
                g->opcode != WSCORE_PONG)
                continue; /* binary and close: reading stops there */
            FUZZ_CHECK(n < want.n,
                       "wslay handed up message %zu (opcode %u, "
                       "%zu bytes) the frames do not hold",
                       n, g->opcode, g->len);
            FUZZ_CHECK(g->opcode == want.v[n].opcode &&
                           g->len == want.v[n].len &&
                           (g->len == 0 ||
                            memcmp(g->data, want.v[n].data, g->len) == 0),
                       "message %zu: opcode %u/%u, %zu/%zu bytes", n, g->opcode,
                       want.v[n].opcode, g->len, want.v[n].len);
            n++;
        }
        FUZZ_CHECK(n == want.n || c.server_ended,
                   "wslay handed up %zu messages, the frames hold %zu", n,
                   want.n);
    }

    /* Unless we closed first: a pong for each ping, with its payload, and
     * the client's close echoed. */
    if (!c.server_ended) {
        size_t n = 0;

        for (i = 0; i < want.n; i++) {
            if (want.v[i].opcode != WSCORE_PING)
                continue;
            FUZZ_CHECK(n < seen.pongs.n, "ping %zu (%zu bytes) not answered", n,
                       want.v[i].len);
            FUZZ_CHECK(seen.pongs.v[n].len == want.v[i].len &&
                           (want.v[i].len == 0 ||
                            memcmp(seen.pongs.v[n].data, want.v[i].data,
                                   want.v[i].len) == 0),
                       "pong %zu does not carry its ping's payload", n);
            n++;
        }
        FUZZ_CHECK(n == seen.pongs.n, "%zu pongs for %zu pings", seen.pongs.n,
                   n);
        if (close.seen)
            FUZZ_CHECK(seen.closed && seen.close_len == close.len &&
                           memcmp(seen.close, close.payload, close.len) == 0,
                       "a well-formed close (%zu bytes, code %u) not echoed: "
                       "%s, %zu bytes, code %u",
                       close.len,
                       close.len >= 2
                           ? (unsigned)close.payload[0] << 8 | close.payload[1]
                           : 0,
                       seen.closed ? "we sent" : "we did not close",
                       seen.close_len,
                       seen.close_len >= 2
                           ? (unsigned)seen.close[0] << 8 | seen.close[1]
                           : 0);
    }
    msgs_free(&seen.pongs);

    wscore_free(&c.core);
    msgs_free(&c.got);
    msgs_free(&want);
    free(c.out);
    return 0;
}
