/* websocket.c - GET /api/rooms/{room}/ws: RFC 6455 on the same port. The
 * handshake is answered here on evhttp's connection, which we then take
 * over; wslay does the framing, driven from the connection's bufferevent. */
#include "websocket.h"
#include "wsframe.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/evp.h>
#include <wslay/wslay.h>

#include "app.h"
#include "auth.h"
#include "config.h"
#include "log.h"
#include "presence.h"
#include "query.h"
#include "ratelimit.h"
#include "reply.h"
#include "resume.h"
#include "store.h"
#include "strlist.h"
#include "tally.h"
#include "transport.h"
#include "xmalloc.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_KEY_LEN 24    /* base64 of the 16 random bytes */
#define WS_ACCEPT_LEN 28 /* base64 of a SHA-1 */

/* History is read in chunks of this many messages, each once the socket has
 * written most of the last: a client far behind catches up at its own pace
 * without passing client_buffer_limit on history alone. */

/* Close codes of RFC 6455 section 7.4.1 that we send. */
#define WS_GOING_AWAY 1001
#define WS_PROTOCOL_ERROR 1002
#define WS_UNSUPPORTED_DATA 1003
#define WS_POLICY 1008
#define WS_INTERNAL_ERROR 1011

enum ws_state {
    WS_OPEN,    /* chatting */
    WS_CLOSING, /* our close frame is queued behind what is still unsent */
    WS_LINGER,  /* it is sent and our side shut: reading to the peer's end */
};

struct ws;

/* A message of this connection on its way into Redis. The connection may
 * go before the answer comes: then `c` is NULL and the answer is dropped. */
struct ws_append {
    struct ws *c;
    TAILQ_ENTRY(ws_append) link;
    char key[API_KEY_MAX + 1]; /* the frame's idempotency key, or "" */
    char *text;                /* until it is handed to the store */
    size_t len;
};

struct ws {
    struct subscriber sub;           /* first: the bus sees a subscriber */
    struct evhttp_connection *evcon; /* NULL once freed */
    struct bufferevent *bev;         /* evcon's; NULL with it */
    wslay_event_context_ptr ctx;
    struct event *timer; /* next ping, pong or close deadline */
    enum ws_state state;
    bool awaiting_pong;     /* a ping is out */
    bool raw_close;         /* we wrote a close frame past wslay */
    bool free_when_written; /* shutdown: no lingering */
    bool joined;            /* counted in presence */
    bool counted;           /* holds one of its user's streams_per_token */
    bool dead;              /* torn down; freed on the next turn */
    unsigned busy;          /* depth of calls into wslay */
    uint64_t frame_left;    /* of the client's frame being read,
                             * bytes not yet given to wslay */
    TAILQ_HEAD(, ws_append) appends;
    /* what it authenticated with: every send asks again (store_auth
     * answers from its cache for token_cache_ttl), so a user deleted
     * while its socket is open cannot go on sending */
    char token[AUTH_TOKEN_LEN + 1];
};

/* Common timeouts: every connection's timer sits in one of these queues,
 * so arming and re-arming it costs O(1) however many sockets are open. */
static const struct timeval *tv_ping; /* ws_ping_interval */
static const struct timeval *tv_pong; /* ws_pong_timeout, also for close */

static void after_io(struct ws *c);

/* --- frames --- */

/* Writes the header of a final unmasked frame with a payload of `len`
 * bytes into h (10 bytes at most); returns the header's length. */
static size_t frame_header(uint8_t *h, uint8_t opcode, size_t len)
{
    h[0] = 0x80 | opcode;
    if (len < 126) {
        h[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xffff) {
        h[1] = 126;
        h[2] = (uint8_t)(len >> 8);
        h[3] = (uint8_t)len;
        return 4;
    }
    h[1] = 127;
    for (int i = 0; i < 8; i++)
        h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    return 10;
}

struct bus_blob *ws_encode(const struct bus_event *e)
{
    uint8_t h[10];
    size_t n = frame_header(h, WSLAY_TEXT_FRAME, e->json->len);
    struct bus_blob *b = bus_blob_new(n + e->json->len);

    memcpy(b->data, h, n);
    memcpy(b->data + n, e->json->data, e->json->len);
    return b;
}

size_t ws_max_message(const struct config *cfg)
{
    return (size_t)cfg->max_message_bytes * 6 + 1024;
}

/* --- output --- */

static struct evbuffer *output(struct ws *c)
{
    return bufferevent_get_output(c->bev);
}

static void out_add(struct ws *c, const void *data, size_t len)
{
    evbuffer_add(output(c), data, len);
    stats[TRANSPORT_WEBSOCKET].bytes_out += len;
}

/* Hands wslay's queue (pongs, close frames, acks) to the output buffer,
 * which takes everything: wslay never holds a frame half written. */
static void flush(struct ws *c)
{
    int rc;

    if (c->dead)
        return;
    c->busy++;
    rc = wslay_event_send(c->ctx);
    c->busy--;
    if (rc != 0 && rc != WSLAY_ERR_CALLBACK_FAILURE)
        log_error("ws: wslay_event_send: %d", rc);
}

/* Queues a text frame through wslay (copied), after anything queued. */
static void send_text(struct ws *c, const char *json, size_t len)
{
    struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)json, len};

    if (c->state != WS_OPEN || c->dead)
        return;
    if (wslay_event_queue_msg(c->ctx, &m) == 0)
        flush(c);
}

/* Acks and errors of a message frame name its key, when it had one, so a
 * client knows which of its messages they are about. */
static void send_about(struct ws *c, const char *key, const char *json,
                       size_t len)
{
    char *frame;

    if (key[0] == '\0') {
        send_text(c, json, len);
        return;
    }
    /* a key is [A-Za-z0-9_-]: nothing to escape */
    frame = xasprintf("%.*s,\"key\":\"%s\"}", (int)len - 1, json, key);
    send_text(c, frame, strlen(frame));
    free(frame);
}

/* {"type":"error","error":code,"message":...}: the REST error body with a
 * type in front. The socket stays open. */
static void send_error_about(struct ws *c, const char *key,
                             const struct api_error *err)
{
    size_t len;
    char *json = api_error_json(err, &len);
    char *frame = xasprintf("{\"type\":\"error\",%s", json + 1);

    send_about(c, key, frame, len + 15);
    free(frame);
    free(json);
}

static void send_error(struct ws *c, const struct api_error *err)
{
    send_error_about(c, "", err);
}

/* A broadcast frame shared with the room's other sockets. It is added to
 * the output by reference when wslay has nothing queued (so frames never
 * interleave), else queued through wslay as a copy. */
static void send_blob(struct ws *c, struct bus_blob *b)
{
    unsigned len7 = (unsigned char)b->data[1] & 0x7f;
    size_t hlen = len7 < 126 ? 2 : len7 == 126 ? 4 : 10;

    flush(c);
    if (wslay_event_get_queued_msg_count(c->ctx) == 0) {
        bus_blob_add(b, output(c));
        stats[TRANSPORT_WEBSOCKET].bytes_out += b->len;
    } else {
        struct wslay_event_msg m = {
            WSLAY_TEXT_FRAME, (const uint8_t *)b->data + hlen, b->len - hlen};
        if (wslay_event_queue_msg(c->ctx, &m) == 0)
            flush(c);
    }
}

/* --- wslay's I/O, on the bufferevent's buffers --- */

/* Gives wslay the client's bytes, control frames whole (wsframe.h). */
static ssize_t wslay_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf,
                             size_t len, int flags, void *arg)
{
    struct ws *c = arg;
    struct evbuffer *in = c->bev ? bufferevent_get_input(c->bev) : NULL;
    size_t n = 0;

    while (in != NULL && n < len) {
        uint8_t h[WSFRAME_HEAD_MAX];
        size_t avail = evbuffer_get_length(in), seen = 0, take;

        if (avail > 0 && c->frame_left == 0)
            seen = (size_t)evbuffer_copyout(in, h, sizeof(h));
        take = wsframe_take(h, seen, avail, len - n, n, &c->frame_left);
        if (take == 0)
            break;
        evbuffer_remove(in, buf + n, take);
        n += take;
    }
    if (n == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    return (ssize_t)n;
}

static ssize_t wslay_send_cb(wslay_event_context_ptr ctx, const uint8_t *data,
                             size_t len, int flags, void *arg)
{
    struct ws *c = arg;

    if (c->bev == NULL) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    out_add(c, data, len);
    return (ssize_t)len;
}

/* --- the connection's life --- */

static void arm(struct ws *c, const struct timeval *tv)
{
    event_add(c->timer, tv);
}

static void leave_bus(struct ws *c)
{
    resume_cancel(&c->sub);
    bus_unsubscribe(app.bus, &c->sub);
}

static void ws_free(void *arg)
{
    struct ws *c = arg;

    wslay_event_context_free(c->ctx);
    event_free(c->timer);
    free(c);
}

/* Everything but the socket: bus, presence, counters, timer, appends. */
static void detach(struct ws *c)
{
    struct ws_append *a;

    c->dead = true;
    leave_bus(c);
    if (c->joined)
        presence_leave(c->sub.room, c->sub.user);
    c->joined = false;
    if (c->counted)
        tally_give(app.streams, c->sub.user);
    c->counted = false;
    event_del(c->timer);
    while ((a = TAILQ_FIRST(&c->appends)) != NULL) {
        TAILQ_REMOVE(&c->appends, a, link);
        a->c = NULL;
    }
    stats[TRANSPORT_WEBSOCKET].open--;
}

/* Closes the socket now and frees c on the next turn of the loop (we may be
 * inside its deliver callback, or inside wslay). */
static void teardown(struct ws *c)
{
    if (c->dead)
        return;
    detach(c);
    if (c->evcon != NULL) {
        http_on_close(c->evcon, NULL, NULL);
        /* frees the bufferevent and the pending request, closes the fd */
        evhttp_connection_free(c->evcon);
    }
    c->evcon = NULL;
    c->bev = NULL;
    http_defer(ws_free, c);
}

/* evhttp frees its connections itself only in evhttp_free, at exit, when
 * the loop has stopped: a socket still closing then goes with it. */
static void evcon_gone(struct evhttp_connection *evcon, void *arg)
{
    struct ws *c = arg;

    log_info("ws: %s in %s still closing at exit", c->sub.user, c->sub.room);
    detach(c);
    c->evcon = NULL;
    c->bev = NULL;
    if (c->busy > 0)
        http_defer(ws_free, c);
    else
        ws_free(c);
}

/* No more events go out once a close frame is queued. */
static void enter_closing(struct ws *c)
{
    if (c->state != WS_OPEN)
        return;
    c->state = WS_CLOSING;
    leave_bus(c);
    arm(c, tv_pong);
}

/* Starts the closing handshake with `code`. */
static void begin_close(struct ws *c, uint16_t code, const char *reason)
{
    if (c->state != WS_OPEN || c->dead)
        return;
    wslay_event_queue_close(c->ctx, code, (const uint8_t *)reason,
                            strlen(reason));
    enter_closing(c);
    after_io(c);
}

/* Fails the connection with a close frame wslay would not send: wslay
 * answers some protocol errors with a close without a code, and is told to
 * send nothing more. */
static void fail_raw(struct ws *c, uint16_t code, const char *reason)
{
    uint8_t frame[2 + 2 + 123];
    size_t rlen = strlen(reason);

    wslay_event_shutdown_read(c->ctx);
    if (c->state == WS_OPEN && !wslay_event_get_close_sent(c->ctx)) {
        wslay_event_shutdown_write(c->ctx);
        frame[0] = 0x80 | WSLAY_CONNECTION_CLOSE;
        frame[1] = (uint8_t)(2 + rlen);
        frame[2] = (uint8_t)(code >> 8);
        frame[3] = (uint8_t)code;
        memcpy(frame + 4, reason, rlen);
        out_add(c, frame, 4 + rlen);
        c->raw_close = true;
    }
    enter_closing(c);
}

static bool close_written(struct ws *c)
{
    return c->raw_close || wslay_event_get_close_sent(c->ctx);
}

/* Closes with 1008 a consumer that let its output (or what the bus holds
 * for it while it resumes) pile up past client_buffer_limit. */
static void drop_slow(struct ws *c)
{
    stats[TRANSPORT_WEBSOCKET].dropped++;
    log_info("ws: dropped a slow consumer of %s (%s)", c->sub.room,
             c->sub.user);
    begin_close(c, WS_POLICY, "slow consumer: resume with since");
}

/* After any input, output or event: notices a close that wslay queued,
 * ends the connection once the close handshake is done, and drops a
 * consumer that lets its output pile up. */
static void after_io(struct ws *c)
{
    struct evbuffer *out;

    if (c->dead)
        return;
    flush(c);
    if (c->state == WS_OPEN && (!wslay_event_get_read_enabled(c->ctx) ||
                                wslay_event_get_close_received(c->ctx) ||
                                wslay_event_get_close_sent(c->ctx)))
        enter_closing(c);
    out = output(c);
    if (c->state == WS_OPEN) {
        size_t limit = (size_t)app.cfg->client_buffer_limit;
        /* history is paced by the resume, not held against the client */
        if (!c->sub.resuming && evbuffer_get_length(out) > limit)
            drop_slow(c);
        return;
    }
    if (!close_written(c) || evbuffer_get_length(out) > 0)
        return;
    /* Our close frame is on the wire. */
    if (c->free_when_written || wslay_event_get_close_received(c->ctx)) {
        teardown(c);
    } else if (c->state == WS_CLOSING) {
        /* Half-close and read on: the peer's close frame or its end of the
         * stream comes next, and no data it sent meanwhile resets the
         * connection under the close frame it is reading. */
        c->state = WS_LINGER;
        shutdown(bufferevent_getfd(c->bev), SHUT_WR);
    }
}

/* --- client frames --- */

static void append_done(int status, const struct reply_appended *ap, void *arg)
{
    struct ws_append *a = arg;
    struct ws *c = a->c;

    app.inflight--;
    if (c != NULL) {
        TAILQ_REMOVE(&c->appends, a, link);
        if (status == 0) {
            char frame[32 + STREAMID_STRLEN];
            int n = snprintf(frame, sizeof(frame),
                             "{\"type\":\"ack\",\"id\":\"%s\"}", ap->id);
            send_about(c, a->key, frame, (size_t)n);
            presence_touch(c->sub.room, c->sub.user);
        } else {
            struct api_error err;

            api_unavailable(&err, status, API_DOING_WS_SEND);
            send_error_about(c, a->key, &err);
        }
        after_io(c);
    }
    free(a->text);
    free(a);
}

/* The token is still its user's: the message goes to Redis. A token
 * whose user was deleted (or registered anew) gets an error frame, and the
 * socket closes 1008. */
static void append_authed(int status, const char *user, void *arg)
{
    struct ws_append *a = arg;
    struct ws *c = a->c;
    struct api_error err;

    app.inflight++;
    if (c != NULL && status == 0 &&
        (user == NULL || strcmp(user, c->sub.user) != 0)) {
        app.inflight--;
        TAILQ_REMOVE(&c->appends, a, link);
        api_fail(&err, 401, API_UNAUTHORIZED,
                 "the token is no longer valid; nothing was stored");
        send_error_about(c, a->key, &err);
        free(a->text);
        free(a);
        begin_close(c, WS_POLICY, "unauthorized");
    } else if (c == NULL || status != 0 ||
               store_append(app.store, c->sub.room, c->sub.user, a->text,
                            a->len, a->key, append_done, a) != 0) {
        append_done(API_FAULT_DOWN, NULL, a);
    }
}

static void on_text(struct ws *c, const uint8_t *msg, size_t len)
{
    struct api_error err;
    char *text = NULL, key[API_KEY_MAX + 1];
    size_t tlen = 0;
    int retry;
    int type = api_parse_client_frame_key((const char *)msg, len,
                                          (size_t)app.cfg->max_message_bytes,
                                          &text, &tlen, key, &err);

    if (type == EVENT_MESSAGE) {
        struct ws_append *a;
        if (!ratelimit_take(app.send_limit, c->sub.user, event_now_ms(),
                            &retry)) {
            api_fail(&err, 429, API_RATE_LIMITED,
                     "too many messages; retry in %d s", retry);
            send_error_about(c, key, &err);
            goto done;
        }
        a = xcalloc(1, sizeof(*a));
        a->c = c;
        strcpy(a->key, key);
        a->text = text;
        a->len = tlen;
        text = NULL;
        TAILQ_INSERT_TAIL(&c->appends, a, link);
        if (store_auth(app.store, c->token, append_authed, a) != 0)
            append_authed(-1, NULL, a);
    } else if (type == EVENT_TYPING) {
        struct event ev;
        /* over rate_typing_per_sec the frame is dropped without an answer:
         * the room saw this user typing less than a second ago */
        if (!ratelimit_take(app.typing_limit, c->sub.user, event_now_ms(),
                            &retry))
            goto done;
        event_init_typing(&ev, c->sub.room, c->sub.user, event_now_ms());
        if (store_publish(app.store, &ev) != 0) {
            api_fail(&err, 503, API_UNAVAILABLE,
                     "the message store is unreachable; try again");
            send_error(c, &err);
        } else {
            presence_touch(c->sub.room, c->sub.user);
        }
        event_clear(&ev);
    } else {
        send_error(c, &err);
    }
done:
    free(text);
}

static void on_frame_start(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_start_arg *f,
                           void *arg)
{
    struct ws *c = arg;

    stats[TRANSPORT_WEBSOCKET].requests++;
    if (c->state != WS_OPEN)
        return;
    /* Fail before reading what we would refuse anyway. */
    if (f->opcode == WSLAY_BINARY_FRAME) {
        static const char why[] = "binary frames are not taken; send JSON";
        wslay_event_shutdown_read(ctx);
        wslay_event_queue_close(ctx, WS_UNSUPPORTED_DATA, (const uint8_t *)why,
                                sizeof(why) - 1);
        enter_closing(c);
    } else if (f->opcode == WSLAY_CONNECTION_CLOSE && f->payload_length == 1) {
        static const char why[] = "a close payload of one byte";
        wslay_event_shutdown_read(ctx);
        wslay_event_queue_close(ctx, WS_PROTOCOL_ERROR, (const uint8_t *)why,
                                sizeof(why) - 1);
        enter_closing(c);
    }
}

static void on_msg(wslay_event_context_ptr ctx,
                   const struct wslay_event_on_msg_recv_arg *m, void *arg)
{
    struct ws *c = arg;

    if (m->opcode == WSLAY_PONG) {
        c->awaiting_pong = false;
        if (c->state == WS_OPEN)
            arm(c, tv_ping);
    } else if (m->opcode == WSLAY_PING) {
        /* wslay queued the pong; send it now, before a close that a later
         * frame in the same read may queue (wslay drops control frames
         * still queued behind a close) */
        flush(c);
    } else if (m->opcode == WSLAY_TEXT_FRAME && c->state == WS_OPEN) {
        on_text(c, m->msg, m->msg_length);
    }
    /* closes are echoed by wslay itself */
}

/* --- bufferevent callbacks --- */

static void on_read(struct bufferevent *bev, void *arg)
{
    struct ws *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    int rc;

    if (c->dead)
        return;
    if (!wslay_event_get_read_enabled(c->ctx)) {
        evbuffer_drain(in, evbuffer_get_length(in));
        after_io(c);
        return;
    }
    c->busy++;
    rc = wslay_event_recv(c->ctx);
    c->busy--;
    if (c->dead)
        return;
    if (rc == WSLAY_ERR_CALLBACK_FAILURE) {
        /* Our callbacks do not fail: the frame layer saw a control frame
         * over 125 bytes or fragmented, or a length not in its shortest
         * form, and queued a close without a code. */
        fail_raw(c, WS_PROTOCOL_ERROR, "malformed frame");
    } else if (rc != 0) {
        log_error("ws: wslay_event_recv: %d", rc);
        teardown(c);
        return;
    }
    if (!wslay_event_get_read_enabled(c->ctx))
        evbuffer_drain(in, evbuffer_get_length(in));
    after_io(c);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    after_io(arg);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct ws *c = arg;

    /* end of stream or a socket error: nobody left to talk to */
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        teardown(c);
    } else if (what & BEV_EVENT_TIMEOUT) {
        /* No HTTP timeout governs an upgraded connection (pings do): one
         * that fires anyway must not leave the socket unread. */
        log_warn("ws: a stray %s timeout on %s in %s; ignored",
                 what & BEV_EVENT_READING ? "read" : "write", c->sub.user,
                 c->sub.room);
        http_clear_timeouts(bev);
    }
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    struct ws *c = arg;
    static const uint8_t payload[] = "crosstalk";
    struct wslay_event_msg ping = {WSLAY_PING, payload, sizeof(payload) - 1};

    if (c->state != WS_OPEN) {
        /* the peer had ws_pong_timeout to finish the close handshake */
        teardown(c);
        return;
    }
    if (c->awaiting_pong) {
        log_info("ws: no pong from %s in %s within %d s: dropped", c->sub.user,
                 c->sub.room, app.cfg->ws_pong_timeout);
        teardown(c);
        return;
    }
    if (wslay_event_queue_msg(c->ctx, &ping) == 0) {
        c->awaiting_pong = true;
        arm(c, tv_pong);
        after_io(c);
    }
}

/* --- the bus --- */

static void deliver(struct subscriber *sub, struct bus_event *e)
{
    struct ws *c = (struct ws *)sub;

    if (c->state != WS_OPEN || c->dead)
        return;
    if (!sub->resuming &&
        evbuffer_get_length(output(c)) > (size_t)app.cfg->client_buffer_limit) {
        after_io(c); /* drops it */
        return;
    }
    send_blob(c, bus_event_encoded(e, BUS_SLOT_WS, ws_encode));
    stats[TRANSPORT_WEBSOCKET].delivered++;
}

/* Shutdown: close 1001, and free as soon as it is written. */
static void close_sub(struct subscriber *sub)
{
    struct ws *c = (struct ws *)sub;

    c->free_when_written = true;
    begin_close(c, WS_GOING_AWAY, "server shutting down");
}

static size_t queued(const struct subscriber *sub)
{
    return evbuffer_get_length(output((struct ws *)sub));
}

static void drop_sub(struct subscriber *sub)
{
    drop_slow((struct ws *)sub);
}

/* {"type":"truncated","first_id":...} or {"type":"reset","last_id":...},
 * ahead of what follows it. */
static void signal_sub(struct subscriber *sub,
                       const struct streamid_signal *sig)
{
    struct ws *c = (struct ws *)sub;
    size_t len;
    char *json = api_signal_json(sig, true, &len);

    send_text(c, json, len);
    free(json);
}

static const struct subscriber_ops ops = {.deliver = deliver,
                                          .close = close_sub,
                                          .queued = queued,
                                          .drop = drop_sub,
                                          .signal = signal_sub};

static void resumed(struct subscriber *sub, int status)
{
    struct ws *c = (struct ws *)sub;

    if (status != 0) {
        struct api_error err;
        api_fail(&err, 503, API_UNAVAILABLE,
                 "the message store is unreachable; reconnect with since");
        send_error(c, &err);
        begin_close(c, WS_INTERNAL_ERROR, "message store unreachable");
        return;
    }
    if (c->dead || c->state != WS_OPEN)
        return;
    /* held live events may close (and so free) c here */
    bus_resume_done(&c->sub);
}

/* --- the handshake --- */

/* True when the comma separated header value lists `token` (any case). */
static bool has_token(const char *value, const char *token)
{
    size_t tlen = strlen(token), len;
    const char *p;

    while ((p = strlist_next(&value, &len)) != NULL)
        if (len == tlen && strncasecmp(p, token, tlen) == 0)
            return true;
    return false;
}

/* A Sec-WebSocket-Key is 16 bytes in base64: 22 characters and "==". */
static bool key_valid(const char *key)
{
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    if (key == NULL || strlen(key) != WS_KEY_LEN || strcmp(key + 22, "==") != 0)
        return false;
    for (int i = 0; i < 22; i++)
        if (key[i] == '\0' || strchr(b64, key[i]) == NULL)
            return false;
    return true;
}

/* Sec-WebSocket-Accept: base64(SHA-1(key GUID)). */
static void accept_key(const char *key, char out[WS_ACCEPT_LEN + 1])
{
    char buf[WS_KEY_LEN + sizeof(WS_GUID)];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    snprintf(buf, sizeof(buf), "%s%s", key, WS_GUID);
    if (EVP_Digest(buf, strlen(buf), md, &mdlen, EVP_sha1(), NULL) != 1 ||
        mdlen != 20) {
        log_error("ws: SHA-1 failed");
        abort();
    }
    EVP_EncodeBlock((unsigned char *)out, md, (int)mdlen);
}

/* Checks the upgrade request; on failure answers it and returns false. */
static bool handshake_ok(struct request *r, const char **key)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(r->req);
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
    const char *version = evhttp_find_header(in, "Sec-WebSocket-Version");
    const char *origin = evhttp_find_header(in, "Origin");

    *key = evhttp_find_header(in, "Sec-WebSocket-Key");
    if (!has_token(evhttp_find_header(in, "Upgrade"), "websocket")) {
        evhttp_add_header(h, "Upgrade", "websocket");
        evhttp_add_header(h, "Connection", "Upgrade");
        http_reply_error(r->req, r->kind, 426, API_BAD_REQUEST,
                         "this is a WebSocket endpoint: send Upgrade: "
                         "websocket");
        return false;
    }
    if (!has_token(evhttp_find_header(in, "Connection"), "upgrade")) {
        http_reply_error(r->req, r->kind, 400, API_BAD_REQUEST,
                         "Connection: Upgrade is missing");
        return false;
    }
    if (version == NULL || strcmp(version, "13") != 0) {
        evhttp_add_header(h, "Sec-WebSocket-Version", "13");
        http_reply_error(r->req, r->kind, 426, API_BAD_REQUEST,
                         "only WebSocket version 13 is spoken here");
        return false;
    }
    if (!key_valid(*key)) {
        http_reply_error(r->req, r->kind, 400, API_BAD_REQUEST,
                         "Sec-WebSocket-Key must be 16 bytes in base64");
        return false;
    }
    /* A browser says where the page came from; refusing foreign pages
     * stops cross-site WebSocket hijacking with the user's token. */
    if (origin != NULL && !http_origin_allowed(r->req, origin)) {
        http_reply_error(r->req, r->kind, 403, "forbidden",
                         "the origin %s may not open WebSockets here", origin);
        return false;
    }
    return true;
}

static void timers_init(void)
{
    static struct timeval ping, pong;

    if (tv_ping != NULL)
        return;
    ping.tv_sec = app.cfg->ws_ping_interval;
    pong.tv_sec = app.cfg->ws_pong_timeout;
    tv_ping = event_base_init_common_timeout(app.base, &ping);
    tv_pong = event_base_init_common_timeout(app.base, &pong);
    if (tv_ping == NULL)
        tv_ping = &ping;
    if (tv_pong == NULL)
        tv_pong = &pong;
}

void ws_handle(struct request *r)
{
    static const struct wslay_event_callbacks callbacks = {
        wslay_recv_cb, wslay_send_cb, NULL, on_frame_start, NULL, NULL, on_msg,
    };
    struct evhttp_connection *evcon;
    struct api_error err;
    struct query_history q;
    const char *key;
    char accept[WS_ACCEPT_LEN + 1];
    struct ws *c;
    struct evbuffer *out;
    size_t before;

    if (!handshake_ok(r, &key))
        goto done;
    if (query_parse_history(r->query, app.cfg->longpoll_max_timeout, &q,
                            &err) != 0 ||
        (q.has_before &&
         api_fail(&err, 400, API_BAD_REQUEST,
                  "a WebSocket takes since, not before") != 0)) {
        http_reply_api_error(r->req, r->kind, &err);
        goto done;
    }
    if (app.draining) {
        http_reply_error(r->req, r->kind, 503, API_UNAVAILABLE,
                         "shutting down");
        goto done;
    }
    evcon = evhttp_request_get_connection(r->req);
    if (evcon == NULL) {
        /* the client left while we authenticated it */
        evhttp_request_free(r->req);
        goto done;
    }
    /* refused with a plain 429 answer, before any upgrade */
    if (!transport_stream_take(r))
        goto done;
    accept_key(key, accept);
    timers_init();

    /* Take the connection over. evhttp's callbacks must never run on it
     * again: its read callback aborts the process on input in the state
     * the connection is in (answer pending). It keeps owning the request
     * and the bufferevent, both freed by evhttp_connection_free. */
    c = xcalloc(1, sizeof(*c));
    c->evcon = evcon;
    c->bev = evhttp_connection_get_bufferevent(evcon);
    c->counted = true;
    c->sub.ops = &ops;
    c->sub.kind = TRANSPORT_WEBSOCKET;
    strcpy(c->sub.room, r->room);
    strcpy(c->sub.user, r->user);
    {
        char *token = auth_from_request(
            evhttp_find_header(evhttp_request_get_input_headers(r->req),
                               "Authorization"),
            r->query);
        /* http_authenticate found it there a moment ago */
        if (token != NULL)
            snprintf(c->token, sizeof(c->token), "%s", token);
        free(token);
    }
    TAILQ_INIT(&c->appends);
    if (wslay_event_context_server_init(&c->ctx, &callbacks, c) != 0) {
        log_error("ws: out of memory");
        abort();
    }
    wslay_event_config_set_max_recv_msg_length(c->ctx, ws_max_message(app.cfg));
    c->timer = event_new(app.base, -1, 0, tick, c);
    http_on_close(evcon, evcon_gone, c);
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, 0);
    /* the write callback runs at half the limit too, to pace history */
    bufferevent_setwatermark(c->bev, EV_WRITE,
                             (size_t)app.cfg->client_buffer_limit / 2, 0);
    http_clear_timeouts(c->bev);

    out = output(c);
    before = evbuffer_get_length(out);
    evbuffer_add_printf(out,
                        "HTTP/1.1 101 Switching Protocols\r\n"
                        "Upgrade: websocket\r\n"
                        "Connection: Upgrade\r\n"
                        "Sec-WebSocket-Accept: %s\r\n\r\n",
                        accept);
    stats[TRANSPORT_WEBSOCKET].bytes_out += evbuffer_get_length(out) - before;
    stats[TRANSPORT_WEBSOCKET].open++;

    presence_join(c->sub.room, c->sub.user);
    c->joined = true;
    arm(c, tv_ping);
    /* may call resumed() before it returns; c stays allocated until the
     * next loop turn whatever happens */
    resume_start(&c->sub, q.has_since ? &q.since : NULL, 0, resumed);
    /* frames the client sent right behind its request */
    if (!c->dead && evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
        on_read(c->bev, c);
done:
    http_request_free(r);
}
