/* websocket.c - GET /api/rooms/{room}/ws: RFC 6455 on the same port. The
 * handshake is answered here, and the HTTP layer then hands the connection
 * over; wscore.c speaks the protocol, driven from its bufferevent. */
#include "websocket.h"
#include "wscore.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

#include "config.h"
#include "flush.h"
#include "log.h"
#include "query.h"
#include "session.h"
#include "strlist.h"
#include "transport.h"
#include "xmalloc.h"

/* History is read in chunks of this many messages, each once the socket has
 * written most of the last: a client far behind catches up at its own pace
 * without passing client_buffer_limit on history alone. */

struct ws {
    struct session sess;     /* first: the bus sees a subscriber */
    struct http_conn *conn;  /* NULL once closed */
    struct bufferevent *bev; /* conn's; NULL with it */
    struct event *timer;     /* next ping, pong or close deadline */
    struct wscore core;      /* the protocol; core.dead: torn down, freed on
                              * the next turn */
    unsigned busy;           /* depth of calls into wslay */
    struct flush flush;      /* events not yet handed to the socket */
};

/* Common timeouts: every connection's timer sits in one of these queues,
 * so arming and re-arming it costs O(1) however many sockets are open. */
static const struct timeval *tv_ping; /* ws_ping_interval */
static const struct timeval *tv_pong; /* ws_pong_timeout, also for close */

static void after_io(struct ws *c);

/* --- frames --- */

struct bus_blob *ws_encode(const struct bus_event *e)
{
    uint8_t h[WSCORE_HEAD_MAX];
    size_t n = wscore_frame_header(h, WSCORE_TEXT, e->json->len);
    struct bus_blob *b = bus_blob_new(n + e->json->len);

    memcpy(b->data, h, n);
    memcpy(b->data + n, e->json->data, e->json->len);
    return b;
}

size_t ws_max_message(const struct config *cfg)
{
    return wscore_max_message((size_t)cfg->max_message_bytes);
}

/* --- output --- */

static struct evbuffer *output(struct ws *c)
{
    return bufferevent_get_output(c->bev);
}

/* Bytes not yet taken by the socket. */
static size_t unsent_bytes(struct ws *c)
{
    return flush_queued(&c->flush, c->bev);
}

static void out_add(struct ws *c, const void *data, size_t len)
{
    flush_settle(&c->flush); /* the events before it go first */
    evbuffer_add(output(c), data, len);
    stats[TRANSPORT_WEBSOCKET].bytes_out += len;
}

static void flush(struct ws *c)
{
    c->busy++;
    wscore_flush(&c->core);
    c->busy--;
}

/* Queues a text frame (copied), after anything queued. */
static void send_text(struct ws *c, const char *json, size_t len)
{
    c->busy++;
    wscore_send_text(&c->core, json, len);
    c->busy--;
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

/* A broadcast frame shared with the room's other sockets. It is added by
 * reference when nothing is queued before it (to the batch written at the
 * end of the loop turn, or behind what the socket has not taken), else
 * queued as a copy. */
static void send_blob(struct ws *c, struct bus_blob *b)
{
    c->busy++;
    if (wscore_send_frame(&c->core, (const uint8_t *)b->data, b->len)) {
        bus_blob_add(b, flush_out(&c->flush, c->bev));
        stats[TRANSPORT_WEBSOCKET].bytes_out += b->len;
    }
    c->busy--;
}

/* --- the connection's life --- */

static void arm(struct ws *c, const struct timeval *tv)
{
    event_add(c->timer, tv);
}

static void ws_free(void *arg)
{
    struct ws *c = arg;

    wscore_free(&c->core);
    event_free(c->timer);
    free(c);
}

/* Everything but the socket: the session (bus, presence, counters,
 * sends), the timer. */
static void detach(struct ws *c)
{
    flush_cancel(&c->flush);
    wscore_kill(&c->core);
    session_leave(&c->sess);
    event_del(c->timer);
    stats[TRANSPORT_WEBSOCKET].open--;
}

/* Closes the socket now and frees c on the next turn of the loop (we may be
 * inside its deliver callback, or inside wslay). */
static void teardown(struct ws *c)
{
    if (c->core.dead)
        return;
    detach(c);
    if (c->conn != NULL)
        http_conn_close(c->conn); /* the bufferevent and the socket */
    c->conn = NULL;
    c->bev = NULL;
    http_defer(ws_free, c);
}

/* The HTTP layer closes a handed-over connection itself only at exit,
 * when the loop has stopped (a socket still closing then goes with it),
 * or when its client left before the hand-over was done. */
static void conn_gone(void *arg)
{
    struct ws *c = arg;

    log_info("ws: %s in %s %s", c->sess.sub.user, c->sess.sub.room,
             session_draining(&c->sess) ? "still closing at exit"
                                        : "left during its upgrade");
    detach(c);
    c->conn = NULL;
    c->bev = NULL;
    if (c->busy > 0)
        http_defer(ws_free, c);
    else
        ws_free(c);
}

/* Starts the closing handshake with `code`. */
static void begin_close(struct ws *c, uint16_t code, const char *reason)
{
    if (wscore_close(&c->core, code, reason, true))
        after_io(c);
}

/* Shutdown: close 1001, and free as soon as it is written. */
static void go_away(struct ws *c)
{
    /* false when already closing (a 401 of a send while held): it then
     * still ends as soon as what is queued is written */
    wscore_close(&c->core, WSCORE_GOING_AWAY, "server shutting down", false);
    after_io(c);
}

/* Closes with 1008 a consumer that let its output (or what the bus holds
 * for it while it resumes) pile up past client_buffer_limit. */
static void drop_slow(struct ws *c)
{
    stats[TRANSPORT_WEBSOCKET].dropped++;
    log_info("ws: dropped a slow consumer of %s (%s)", c->sess.sub.room,
             c->sess.sub.user);
    begin_close(c, WSCORE_POLICY, "slow consumer: resume with since");
}

/* After any input, output or event: notices a close that wslay queued,
 * ends the connection once the close handshake is done, and drops a
 * consumer that lets its output pile up. */
static void after_io(struct ws *c)
{
    size_t unsent;

    if (c->core.dead)
        return;
    flush(c);
    unsent = unsent_bytes(c);
    switch (wscore_settle(&c->core, unsent)) {
    case WSCORE_CHAT:
        /* history is paced by the resume, not held against the client */
        if (!c->sess.sub.resuming &&
            unsent > (size_t)c->sess.cfg->client_buffer_limit)
            drop_slow(c);
        break;
    case WSCORE_END:
        teardown(c);
        break;
    case WSCORE_SHUT_WR:
        shutdown(bufferevent_getfd(c->bev), SHUT_WR);
        break;
    case WSCORE_WAIT:
        break;
    }
}

/* --- client frames --- */

/* The answer to a message frame: an ack with its id, or an error. A token
 * no longer its user's closes the socket with 1008. */
static void sent(struct session *sess, const char *key, const char *id,
                 const struct api_error *err)
{
    struct ws *c = (struct ws *)sess;

    if (id != NULL) {
        char frame[32 + STREAMID_STRLEN];
        int n = snprintf(frame, sizeof(frame),
                         "{\"type\":\"ack\",\"id\":\"%s\"}", id);
        send_about(c, key, frame, (size_t)n);
        after_io(c);
    } else if (err->status == 401) {
        send_error_about(c, key, err);
        begin_close(c, WSCORE_POLICY, "unauthorized");
    } else {
        send_error_about(c, key, err);
        after_io(c);
    }
    if (sess->holding && !session_sending(sess))
        go_away(c);
}

static void on_text(struct ws *c, const uint8_t *msg, size_t len)
{
    struct api_error err;
    char *text = NULL, key[API_KEY_MAX + 1];
    size_t tlen = 0;
    int type = api_parse_client_frame_key(
        (const char *)msg, len, (size_t)c->sess.cfg->max_message_bytes, &text,
        &tlen, key, &err);

    if (type == EVENT_MESSAGE) {
        /* the session takes the text */
        if (session_send(&c->sess, text, tlen, key, sent, &err) != 0)
            send_error_about(c, key, &err);
        text = NULL;
    } else if (type == EVENT_TYPING) {
        if (session_typing(&c->sess, &err) != 0)
            send_error(c, &err);
    } else {
        send_error(c, &err);
    }
    free(text);
}

/* --- the core's callbacks --- */

static struct ws *core_ws(struct wscore *w)
{
    return (struct ws *)((char *)w - offsetof(struct ws, core));
}

static size_t core_peek(struct wscore *w, uint8_t *buf, size_t len)
{
    struct evbuffer *in = bufferevent_get_input(core_ws(w)->bev);
    size_t avail = evbuffer_get_length(in);

    if (avail > 0 && len > 0)
        evbuffer_copyout(in, buf, len);
    return avail;
}

static void core_take(struct wscore *w, uint8_t *buf, size_t n)
{
    struct evbuffer *in = bufferevent_get_input(core_ws(w)->bev);

    if (buf != NULL)
        evbuffer_remove(in, buf, n);
    else
        evbuffer_drain(in, n);
}

static void core_write(struct wscore *w, const uint8_t *data, size_t len)
{
    out_add(core_ws(w), data, len);
}

static void core_frame(struct wscore *w)
{
    stats[TRANSPORT_WEBSOCKET].requests++;
}

static void core_message(struct wscore *w, unsigned opcode, const uint8_t *msg,
                         size_t len)
{
    struct ws *c = core_ws(w);

    if (opcode == WSCORE_PONG && wscore_open(w))
        arm(c, tv_ping);
    else if (opcode == WSCORE_TEXT && wscore_open(w))
        on_text(c, msg, len);
}

/* No more events go out once a close frame is queued. */
static void core_closing(struct wscore *w)
{
    struct ws *c = core_ws(w);

    session_stop(&c->sess);
    arm(c, tv_pong);
}

static void core_error(struct wscore *w, const char *what, int rc)
{
    log_error("ws: %s: %d", what, rc);
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

/* --- bufferevent callbacks --- */

static void on_read(struct bufferevent *bev, void *arg)
{
    struct ws *c = arg;
    int rc;

    if (c->core.dead)
        return;
    c->busy++;
    rc = wscore_read(&c->core);
    c->busy--;
    if (c->core.dead)
        return;
    if (rc != 0) {
        teardown(c);
        return;
    }
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
                 what & BEV_EVENT_READING ? "read" : "write", c->sess.sub.user,
                 c->sess.sub.room);
        http_clear_timeouts(bev);
        if (c->sess.holding) /* shutting down: see close_sub */
            bufferevent_disable(bev, EV_READ);
    }
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    struct ws *c = arg;

    switch (wscore_tick(&c->core)) {
    case WSCORE_TICK_LATE:
        /* the peer had ws_pong_timeout to finish the close handshake */
        teardown(c);
        break;
    case WSCORE_TICK_NO_PONG:
        log_info("ws: no pong from %s in %s within %d s: dropped",
                 c->sess.sub.user, c->sess.sub.room,
                 c->sess.cfg->ws_pong_timeout);
        teardown(c);
        break;
    case WSCORE_TICK_PINGED:
        arm(c, tv_pong);
        after_io(c);
        break;
    case WSCORE_TICK_NONE:
        break;
    }
}

/* --- the bus --- */

static void deliver(struct subscriber *sub, struct bus_event *e)
{
    struct ws *c = (struct ws *)sub;

    if (!wscore_open(&c->core) || c->core.dead)
        return;
    if (!sub->resuming &&
        unsent_bytes(c) > (size_t)c->sess.cfg->client_buffer_limit) {
        after_io(c); /* drops it */
        return;
    }
    send_blob(c, bus_event_encoded(e, BUS_SLOT_WS, ws_encode));
    stats[TRANSPORT_WEBSOCKET].delivered++;
}

/* Shutdown: 1001 at once, unless a message frame already taken awaits its
 * answer. Its ack must reach the client, which would otherwise send the
 * message again: so the close follows the last answer (sent), and the
 * drain waits until the socket is closed (session_hold). Meanwhile the
 * socket is not read, so nothing more is taken; it gets no more events
 * (it resumes by id), nor pings, whose pongs could not be read. */
static void close_sub(struct subscriber *sub)
{
    struct ws *c = (struct ws *)sub;

    if (!session_sending(&c->sess)) {
        go_away(c);
        return;
    }
    session_hold(&c->sess); /* sent() closes once the last is answered */
    session_stop(&c->sess);
    event_del(c->timer);
    bufferevent_disable(c->bev, EV_READ);
}

static size_t queued(const struct subscriber *sub)
{
    return unsent_bytes((struct ws *)sub);
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
                 API_READ_FAILED "; reconnect with since");
        send_error(c, &err);
        begin_close(c, WSCORE_INTERNAL_ERROR,
                    "the message store did not answer");
        return;
    }
    if (c->core.dead || !wscore_open(&c->core))
        return;
    /* held live events may close (and so free) c here */
    bus_resume_done(sub);
}

/* --- the handshake --- */

/* Checks the upgrade request; on failure answers it and returns false. */
static bool handshake_ok(struct request *r, const char **key)
{
    struct http_req *req = r->req;
    const char *version = http_header(req, "Sec-WebSocket-Version");
    const char *origin = http_header(req, "Origin");

    /* RFC 6455 4.1; and HTTP/1.0 has no Upgrade (RFC 9110 7.8) */
    if (http_minor(req) == 0) {
        http_reply_error(req, r->kind, 400, API_BAD_REQUEST,
                         "a WebSocket upgrade needs HTTP/1.1");
        return false;
    }
    if (http_header_once(r->req, "Sec-WebSocket-Key", key) != 0) {
        http_reply_error(r->req, r->kind, 400, API_BAD_REQUEST,
                         "Sec-WebSocket-Key is given more than once");
        return false;
    }
    if (!strlist_has(http_header(req, "Upgrade"), "websocket")) {
        http_add_header(req, "Upgrade", "websocket");
        http_add_header(req, "Connection", "Upgrade");
        http_reply_error(r->req, r->kind, 426, API_BAD_REQUEST,
                         "this is a WebSocket endpoint: send Upgrade: "
                         "websocket");
        return false;
    }
    if (!strlist_has(http_header(req, "Connection"), "upgrade")) {
        http_reply_error(r->req, r->kind, 400, API_BAD_REQUEST,
                         "Connection: Upgrade is missing");
        return false;
    }
    if (version == NULL || strcmp(version, "13") != 0) {
        http_add_header(req, "Sec-WebSocket-Version", "13");
        http_reply_error(r->req, r->kind, 426, API_BAD_REQUEST,
                         "only WebSocket version 13 is spoken here");
        return false;
    }
    if (!wscore_key_valid(*key)) {
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

static void timers_init(const struct session *s)
{
    static struct timeval ping, pong;

    if (tv_ping != NULL)
        return;
    ping.tv_sec = s->cfg->ws_ping_interval;
    pong.tv_sec = s->cfg->ws_pong_timeout;
    tv_ping = event_base_init_common_timeout(s->base, &ping);
    tv_pong = event_base_init_common_timeout(s->base, &pong);
    if (tv_ping == NULL)
        tv_ping = &ping;
    if (tv_pong == NULL)
        tv_pong = &pong;
}

void ws_handle(struct request *r)
{
    struct http_conn *conn;
    struct api_error err;
    struct query_history q;
    const char *key;
    char accept[WSCORE_ACCEPT_LEN + 1];
    struct ws *c = NULL;
    const struct config *cfg;
    struct wscore_limits limits;
    struct evbuffer *out;
    size_t before;

    if (!handshake_ok(r, &key))
        goto done;
    c = xcalloc(1, sizeof(*c));
    session_open(&c->sess, r, &ops);
    cfg = c->sess.cfg;
    if (query_parse_history(r->query, cfg->longpoll_max_timeout, &q, &err) !=
            0 ||
        (q.has_before &&
         api_fail(&err, 400, API_BAD_REQUEST,
                  "a WebSocket takes since, not before") != 0)) {
        http_reply_api_error(r->req, r->kind, &err);
        goto done;
    }
    /* refused with a plain answer (429 too_many_streams), before any
     * upgrade */
    if (session_take(&c->sess, &err) != 0) {
        http_reply_api_error(r->req, r->kind, &err);
        goto done;
    }
    wscore_accept_key(key, accept);
    timers_init(&c->sess);

    /* Take the connection over: the request goes, the socket is ours */
    conn = http_upgrade(r->req);
    if (conn == NULL) {
        /* the client left while we authenticated it */
        session_leave(&c->sess);
        goto done;
    }
    c->conn = conn;
    c->bev = http_conn_bev(conn);
    limits.max_message = ws_max_message(cfg);
    wscore_setup(&core_ops);
    wscore_init(&c->core, &limits);
    c->timer = event_new(c->sess.base, -1, 0, tick, c);
    http_conn_on_close(conn, conn_gone, c);
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, 0);
    /* the write callback runs at half the limit too, to pace history */
    bufferevent_setwatermark(c->bev, EV_WRITE,
                             (size_t)cfg->client_buffer_limit / 2, 0);
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

    arm(c, tv_ping);
    /* presence, then the resume, which may call resumed() before it
     * returns; c stays allocated until the next loop turn whatever
     * happens */
    session_join(&c->sess, q.has_since ? &q.since : NULL, 0, resumed);
    /* frames the client sent right behind its request */
    if (!c->core.dead && evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
        on_read(c->bev, c);
    c = NULL; /* the connection's now: freed when it ends */
done:
    free(c); /* refused: its session took nothing */
    http_request_free(r);
}
