/* test_wscore.c - the WebSocket protocol core on handcrafted client frames */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "tap.h"
#include "wscore.h"

/* A connection over memory: the client's bytes in `in`, ours in `out`. */
struct conn {
    struct wscore core; /* first: the callbacks get it back */
    uint8_t in[4096];
    size_t in_len, taken;
    uint8_t out[4096];
    size_t out_len;
    char msgs[512]; /* "T:text P:ping Q:pong C: " as the core hands them up */
    int closing;    /* times it left WSCORE_OPEN */
    int errors;
};

static size_t t_peek(struct wscore *w, uint8_t *buf, size_t len)
{
    struct conn *c = (struct conn *)w;
    size_t avail = c->in_len - c->taken;

    if (len > 0) /* the core peeks with (NULL, 0) for the length alone */
        memcpy(buf, c->in + c->taken, avail < len ? avail : len);
    return avail;
}

static void t_take(struct wscore *w, uint8_t *buf, size_t n)
{
    struct conn *c = (struct conn *)w;

    if (buf != NULL)
        memcpy(buf, c->in + c->taken, n);
    c->taken += n;
}

static void t_write(struct wscore *w, const uint8_t *data, size_t len)
{
    struct conn *c = (struct conn *)w;

    if (c->out_len + len <= sizeof(c->out))
        memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
}

static void t_frame(struct wscore *w)
{
}

static void t_message(struct wscore *w, unsigned opcode, const uint8_t *msg,
                      size_t len)
{
    struct conn *c = (struct conn *)w;
    size_t at = strlen(c->msgs);

    if (opcode == WSCORE_CLOSE)
        len = 0; /* its payload is checked in what we echo */
    snprintf(c->msgs + at, sizeof(c->msgs) - at, "%c:%.*s ",
             opcode == WSCORE_TEXT    ? 'T'
             : opcode == WSCORE_PING  ? 'P'
             : opcode == WSCORE_PONG  ? 'Q'
             : opcode == WSCORE_CLOSE ? 'C'
                                      : '?',
             (int)len, (const char *)msg);
}

static void t_closing(struct wscore *w)
{
    ((struct conn *)w)->closing++;
}

static void t_error(struct wscore *w, const char *what, int rc)
{
    ((struct conn *)w)->errors++;
}

static const struct wscore_ops ops = {t_peek,    t_take,    t_write, t_frame,
                                      t_message, t_closing, t_error};

static void start(struct conn *c, size_t max_message)
{
    struct wscore_limits limits = {max_message};

    memset(c, 0, sizeof(*c));
    wscore_setup(&ops);
    wscore_init(&c->core, &limits);
}

/* Appends a masked client frame. */
static void client(struct conn *c, bool fin, unsigned opcode, const void *data,
                   size_t len)
{
    static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    uint8_t *p = c->in + c->in_len;
    size_t hl = 2;

    p[0] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    if (len < 126) {
        p[1] = (uint8_t)(0x80 | len);
    } else {
        p[1] = 0x80 | 126;
        p[2] = (uint8_t)(len >> 8);
        p[3] = (uint8_t)len;
        hl = 4;
    }
    memcpy(p + hl, mask, 4);
    for (size_t i = 0; i < len; i++)
        p[hl + 4 + i] = ((const uint8_t *)data)[i] ^ mask[i % 4];
    c->in_len += hl + 4 + len;
}

/* Reads what the client sent, as websocket.c does, with a socket that
 * writes everything at once. */
static enum wscore_next feed(struct conn *c)
{
    if (wscore_read(&c->core) != 0)
        return WSCORE_END;
    wscore_flush(&c->core);
    return wscore_settle(&c->core, 0);
}

/* Our frame at *off in c->out: its opcode (-1 when there is none), payload
 * and length. */
static int server(const struct conn *c, size_t *off, const uint8_t **pl,
                  size_t *len)
{
    const uint8_t *p = c->out + *off;

    if (c->out_len - *off < 2 || (p[1] & 0x80) || !(p[0] & 0x80))
        return -1;
    *len = p[1] & 0x7f;
    if (*len >= 126)
        return -1; /* none of ours here is that long */
    *pl = p + 2;
    *off += 2 + *len;
    return p[0] & 0x0f;
}

/* True when our output is exactly one close frame with `code` (0: none)
 * and a reason that starts with `reason`. */
static bool closed_with(const struct conn *c, unsigned code, const char *reason)
{
    size_t off = 0, len;
    const uint8_t *pl;

    if (server(c, &off, &pl, &len) != WSCORE_CLOSE || off != c->out_len)
        return false;
    if (code == 0)
        return len == 0;
    return len >= 2 && ((unsigned)pl[0] << 8 | pl[1]) == code &&
           strncmp((const char *)pl + 2, reason, strlen(reason)) == 0;
}

int main(void)
{
    struct conn c;
    size_t off, len;
    const uint8_t *pl;
    uint8_t big[200];
    static const uint8_t close_bye[] = {0x03, 0xe8, 'b', 'y', 'e'};

    start(&c, 64);
    client(&c, false, WSCORE_TEXT, "Hel", 3);
    client(&c, false, 0, "lo, ", 4);
    client(&c, true, 0, "world", 5);
    is_int(feed(&c), WSCORE_CHAT, "fragmented text: still chatting");
    is_str(c.msgs, "T:Hello, world ", "fragmented text: one message, whole");
    is_int(c.out_len, 0, "fragmented text: nothing written");
    ok(wscore_open(&c.core) && c.closing == 0, "fragmented text: open");
    wscore_free(&c.core);

    start(&c, 64);
    client(&c, false, WSCORE_TEXT, "ab", 2);
    client(&c, true, WSCORE_PING, "p1", 2);
    client(&c, true, 0, "cd", 2);
    is_int(feed(&c), WSCORE_CHAT, "ping inside a message: still chatting");
    is_str(c.msgs, "P:p1 T:abcd ", "ping inside a message: ping, then text");
    off = 0;
    ok(server(&c, &off, &pl, &len) == WSCORE_PONG && len == 2 &&
           memcmp(pl, "p1", 2) == 0 && off == c.out_len,
       "ping inside a message: answered by one pong with its payload");
    wscore_free(&c.core);

    start(&c, 64);
    memset(big, 'x', sizeof(big));
    client(&c, true, WSCORE_TEXT, big, 65);
    is_int(feed(&c), WSCORE_SHUT_WR,
           "oversize: close written, the write side shuts");
    ok(closed_with(&c, 1009, ""), "oversize: closed with 1009");
    ok(!wscore_open(&c.core) && c.closing == 1, "oversize: closing, once");
    is_str(c.msgs, "", "oversize: no message handed up");
    client(&c, true, WSCORE_TEXT, "late", 4);
    is_int(feed(&c), WSCORE_WAIT, "oversize: lingering on what follows");
    ok(c.taken == c.in_len && c.msgs[0] == '\0',
       "oversize: what follows is read and dropped");
    wscore_free(&c.core);

    start(&c, 64);
    client(&c, true, WSCORE_TEXT, "ok\xff", 3);
    is_int(feed(&c), WSCORE_SHUT_WR, "bad UTF-8: close written");
    ok(closed_with(&c, 1007, ""), "bad UTF-8: closed with 1007");
    is_str(c.msgs, "", "bad UTF-8: no message handed up");
    wscore_free(&c.core);

    start(&c, 64);
    client(&c, true, WSCORE_TEXT, "hi", 2);
    client(&c, true, WSCORE_CLOSE, close_bye, sizeof(close_bye));
    is_int(feed(&c), WSCORE_END, "client close: echoed, the socket ends");
    is_str(c.msgs, "T:hi C: ", "client close: the message before it, then it");
    ok(closed_with(&c, 1000, "bye") && c.out[1] == sizeof(close_bye),
       "client close: its code and reason echoed");
    wscore_free(&c.core);

    start(&c, 64);
    client(&c, true, WSCORE_BINARY, "\x01", 1);
    is_int(feed(&c), WSCORE_SHUT_WR, "binary: close written");
    ok(closed_with(&c, 1003, "binary frames are not taken"),
       "binary: closed with 1003 and why");
    wscore_free(&c.core);

    start(&c, 64);
    client(&c, true, WSCORE_PING, big, 126);
    is_int(feed(&c), WSCORE_SHUT_WR, "long ping: close written");
    ok(closed_with(&c, 1002, "malformed frame"),
       "long ping: our own close 1002, not wslay's without a code");
    wscore_free(&c.core);

    start(&c, 64);
    is_int(wscore_tick(&c.core), WSCORE_TICK_PINGED, "tick: a ping goes out");
    is_int(feed(&c), WSCORE_CHAT, "tick: still chatting");
    off = 0;
    ok(server(&c, &off, &pl, &len) == WSCORE_PING && len == 9 &&
           memcmp(pl, "crosstalk", 9) == 0,
       "tick: the ping is written");
    is_int(wscore_tick(&c.core), WSCORE_TICK_NO_PONG,
           "tick: no pong by the next tick drops the socket");
    client(&c, true, WSCORE_PONG, "crosstalk", 9);
    feed(&c);
    is_int(wscore_tick(&c.core), WSCORE_TICK_PINGED,
           "tick: after a pong the next tick pings again");
    ok(wscore_close(&c.core, WSCORE_GOING_AWAY, "bye", false),
       "close: queued while open");
    ok(!wscore_close(&c.core, WSCORE_POLICY, "again", true),
       "close: once only");
    c.out_len = 0;
    is_int(feed(&c), WSCORE_END, "close without linger: ends once written");
    ok(closed_with(&c, 1001, "bye"), "close: 1001 and its reason");
    is_int(wscore_tick(&c.core), WSCORE_TICK_LATE,
           "tick while closing: the close deadline passed");
    wscore_kill(&c.core);
    c.out_len = 0;
    wscore_send_text(&c.core, "{}", 2);
    wscore_flush(&c.core);
    is_int(c.out_len, 0, "killed: nothing more is written");
    is_int(c.errors, 0, "no wslay error along the way");
    wscore_free(&c.core);

    /* the wslay context exists only while something is in progress */
    start(&c, 64);
    ok(c.core.ctx == NULL, "idle: no wslay context after init");
    is_int(wscore_tick(&c.core), WSCORE_TICK_PINGED, "idle: a ping goes out");
    ok(c.core.ctx == NULL, "idle: a ping needs no context");
    ok(wscore_send_frame(&c.core, (const uint8_t *)"\x81\x02{}", 4),
       "idle: a shared frame goes as it is");
    client(&c, true, WSCORE_PONG, "crosstalk", 9);
    is_int(feed(&c), WSCORE_CHAT, "idle: the pong is read");
    ok(c.core.ctx == NULL, "idle: the context is freed after the pong");
    client(&c, false, WSCORE_TEXT, "Hel", 3);
    is_int(feed(&c), WSCORE_CHAT, "idle: half a message read");
    ok(c.core.ctx != NULL, "idle: the context stays while a message is cut");
    client(&c, true, WSCORE_PING, "p2", 2);
    feed(&c);
    ok(c.core.ctx != NULL, "idle: a ping inside it does not end the message");
    client(&c, true, 0, "lo", 2);
    is_int(feed(&c), WSCORE_CHAT, "idle: the rest read");
    is_str(c.msgs, "Q:crosstalk P:p2 T:Hello ",
           "idle: pong, ping, then the whole message");
    ok(c.core.ctx == NULL, "idle: the context is freed once it is whole");
    c.in[c.in_len++] = 0x81; /* one byte of a header */
    feed(&c);
    ok(c.core.ctx != NULL, "idle: the context stays on a partial header");
    c.in_len--;
    is_int(c.errors, 0, "idle: no wslay error along the way");
    wscore_free(&c.core);

    is_int(wscore_max_message(64), 64 * 6 + 1024, "the 1009 limit's formula");
    return tap_done();
}
