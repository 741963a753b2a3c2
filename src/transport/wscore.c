/* wscore.c - a WebSocket server connection's protocol without its socket */
#include "wscore.h"
#include "wsframe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <wslay/wslay.h>

#include "log.h"

static const struct wscore_ops *ops;

static void on_frame_start(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_start_arg *f,
                           void *arg);
static void on_msg(wslay_event_context_ptr ctx,
                   const struct wslay_event_on_msg_recv_arg *m, void *arg);

/* --- wslay's I/O, through the driver --- */

/* wslay 1.1.1 looks at a frame only once some of its payload is there, so a
 * client could send a header and stop, holding the frame (and wslay's
 * context) open. The frames wslay would refuse on their header are refused
 * as soon as the header is in, with the close wslay sends (a code, no
 * reason): an unmasked one (1002) and a data frame longer than a whole
 * message may be (1009). Returns that code, or 0 (a length with its top bit
 * set stays wslay's to refuse). */
static uint16_t header_refusal(const struct wscore *w, const uint8_t *h,
                               size_t seen)
{
    uint64_t plen;

    if (wsframe_head(h, seen, &plen) == 0 || plen >> 63 != 0)
        return 0;
    if ((h[1] & 0x80) == 0)
        return WSCORE_PROTOCOL_ERROR;
    if ((h[0] & 0x08) == 0 && plen > w->max_message)
        return WSCORE_MESSAGE_TOO_BIG;
    return 0;
}

/* Gives wslay the client's bytes, control frames whole (wsframe.h). */
static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                       int flags, void *arg)
{
    struct wscore *w = arg;
    size_t n = 0;

    while (!w->dead && n < len) {
        uint8_t h[WSFRAME_HEAD_MAX];
        size_t avail, seen = 0, take;

        if (w->frame_left == 0) {
            avail = ops->peek(w, h, sizeof(h));
            seen = avail < sizeof(h) ? avail : sizeof(h);
        } else {
            avail = ops->peek(w, NULL, 0);
        }
        if (seen > 0 && header_refusal(w, h, seen) != 0)
            break; /* wscore_read refuses it */
        take = wsframe_take(h, seen, avail, len - n, n, &w->frame_left);
        if (take == 0)
            break;
        /* a data frame begins: does its message go on past it? */
        if (seen > 0 && (h[0] & 0x08) == 0)
            w->fragmented = (h[0] & 0x80) == 0;
        ops->take(w, buf + n, take);
        n += take;
    }
    if (n == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    return (ssize_t)n;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data,
                       size_t len, int flags, void *arg)
{
    struct wscore *w = arg;

    if (w->dead) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    ops->write(w, data, len);
    return (ssize_t)len;
}

/* --- the wslay context, only while needed --- */

static void ctx_need(struct wscore *w)
{
    static const struct wslay_event_callbacks callbacks = {
        recv_cb, send_cb, NULL, on_frame_start, NULL, NULL, on_msg,
    };

    if (w->ctx != NULL)
        return;
    if (wslay_event_context_server_init(&w->ctx, &callbacks, w) != 0) {
        log_error("ws: out of memory");
        abort();
    }
    wslay_event_config_set_max_recv_msg_length(w->ctx, w->max_message);
}

/* Frees the context of an open connection with nothing in progress: no
 * frame half given to wslay, no message continued in a frame to come, no
 * unread byte, nothing queued to send. */
static void ctx_release(struct wscore *w)
{
    if (w->ctx == NULL || w->depth > 0 || w->state != WSCORE_OPEN || w->dead ||
        w->frame_left != 0 || w->fragmented || ops->peek(w, NULL, 0) != 0 ||
        wslay_event_get_queued_msg_count(w->ctx) != 0 ||
        !wslay_event_get_read_enabled(w->ctx) ||
        !wslay_event_get_write_enabled(w->ctx) ||
        wslay_event_get_close_received(w->ctx) ||
        wslay_event_get_close_sent(w->ctx))
        return;
    wslay_event_context_free(w->ctx);
    w->ctx = NULL;
}

/* --- states --- */

/* No more events go out once a close frame is queued. */
static void enter_closing(struct wscore *w)
{
    if (w->state != WSCORE_OPEN)
        return;
    w->state = WSCORE_CLOSING;
    ops->closing(w);
}

/* Fails the connection with a close frame wslay would not send: wslay
 * answers some protocol errors with a close without a code, and is told to
 * send nothing more. */
static void fail_raw(struct wscore *w, uint16_t code, const char *reason)
{
    uint8_t frame[2 + 2 + 123];
    size_t rlen = strlen(reason);

    ctx_need(w);
    wslay_event_shutdown_read(w->ctx);
    if (w->state == WSCORE_OPEN && !wslay_event_get_close_sent(w->ctx)) {
        wslay_event_shutdown_write(w->ctx);
        frame[0] = 0x80 | WSLAY_CONNECTION_CLOSE;
        frame[1] = (uint8_t)(2 + rlen);
        frame[2] = (uint8_t)(code >> 8);
        frame[3] = (uint8_t)code;
        memcpy(frame + 4, reason, rlen);
        ops->write(w, frame, 4 + rlen);
        w->raw_close = true;
    }
    enter_closing(w);
}

/* Refuses what the client sends with a close of our own. */
static void refuse(struct wscore *w, uint16_t code, const char *why)
{
    ctx_need(w);
    wslay_event_shutdown_read(w->ctx);
    wslay_event_queue_close(w->ctx, code, (const uint8_t *)why, strlen(why));
    enter_closing(w);
}

/* --- client frames --- */

static void on_frame_start(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_start_arg *f,
                           void *arg)
{
    struct wscore *w = arg;

    ops->frame(w);
    if (w->state != WSCORE_OPEN)
        return;
    /* Fail before reading what we would refuse anyway. */
    if (f->opcode == WSLAY_BINARY_FRAME)
        refuse(w, WSCORE_UNSUPPORTED_DATA,
               "binary frames are not taken; send JSON");
    else if (f->opcode == WSLAY_CONNECTION_CLOSE && f->payload_length == 1)
        refuse(w, WSCORE_PROTOCOL_ERROR, "a close payload of one byte");
}

static void on_msg(wslay_event_context_ptr ctx,
                   const struct wslay_event_on_msg_recv_arg *m, void *arg)
{
    struct wscore *w = arg;

    if (m->opcode == WSLAY_PONG)
        w->awaiting_pong = false;
    else if (m->opcode == WSLAY_PING)
        /* wslay queued the pong; send it now, before a close that a later
         * frame in the same read may queue (wslay drops control frames
         * still queued behind a close) */
        wscore_flush(w);
    /* closes are echoed by wslay itself */
    ops->message(w, m->opcode, m->msg, m->msg_length);
}

/* --- the driver's calls --- */

void wscore_setup(const struct wscore_ops *o)
{
    ops = o;
}

void wscore_init(struct wscore *w, const struct wscore_limits *limits)
{
    memset(w, 0, sizeof(*w));
    w->state = WSCORE_OPEN;
    w->max_message = limits->max_message > UINT32_MAX
                         ? UINT32_MAX
                         : (uint32_t)limits->max_message;
}

void wscore_free(struct wscore *w)
{
    if (w->ctx != NULL)
        wslay_event_context_free(w->ctx);
    w->ctx = NULL;
}

void wscore_kill(struct wscore *w)
{
    w->dead = true;
}

bool wscore_open(const struct wscore *w)
{
    return w->state == WSCORE_OPEN;
}

/* Drops what the client sends once reading has stopped. */
static void discard(struct wscore *w)
{
    ops->take(w, NULL, ops->peek(w, NULL, 0));
}

/* Refuses, as soon as its header is in, the client's frame waiting at the
 * head of the unread bytes when header_refusal says so (recv_cb gives wslay
 * no such header). */
static bool refused_on_header(struct wscore *w)
{
    uint8_t h[WSFRAME_HEAD_MAX];
    size_t seen;
    uint16_t code;

    if (w->frame_left != 0)
        return false;
    seen = ops->peek(w, h, sizeof(h));
    code = header_refusal(w, h, seen < sizeof(h) ? seen : sizeof(h));
    if (code == 0)
        return false;
    refuse(w, code, ""); /* wslay's own close: a code, no reason */
    discard(w);
    return true;
}

int wscore_read(struct wscore *w)
{
    int rc;

    if (w->dead)
        return 0;
    if (w->ctx == NULL && ops->peek(w, NULL, 0) == 0)
        return 0;
    ctx_need(w);
    if (!wslay_event_get_read_enabled(w->ctx)) {
        discard(w);
        return 0;
    }
    w->depth++;
    rc = wslay_event_recv(w->ctx);
    w->depth--;
    if (w->dead)
        return 0;
    if (rc == WSLAY_ERR_CALLBACK_FAILURE) {
        /* Our callbacks do not fail: the frame layer saw a control frame
         * over 125 bytes or fragmented, or a length not in its shortest
         * form, and queued a close without a code. */
        fail_raw(w, WSCORE_PROTOCOL_ERROR, "malformed frame");
    } else if (rc != 0) {
        ops->error(w, "wslay_event_recv", rc);
        return -1;
    }
    /* a header recv_cb held back, first or behind the frames wslay took */
    if (wslay_event_get_read_enabled(w->ctx) && refused_on_header(w))
        return 0;
    if (!wslay_event_get_read_enabled(w->ctx))
        discard(w);
    return 0;
}

/* Hands wslay's queue (pongs, close frames, text) to the driver, which
 * takes everything: wslay never holds a frame half written. */
void wscore_flush(struct wscore *w)
{
    int rc;

    if (w->dead || w->ctx == NULL)
        return;
    w->depth++;
    rc = wslay_event_send(w->ctx);
    w->depth--;
    if (rc != 0 && rc != WSLAY_ERR_CALLBACK_FAILURE)
        ops->error(w, "wslay_event_send", rc);
}

enum wscore_next wscore_settle(struct wscore *w, size_t unsent)
{
    if (w->state == WSCORE_OPEN && w->ctx == NULL)
        return WSCORE_CHAT;
    if (w->state == WSCORE_OPEN && (!wslay_event_get_read_enabled(w->ctx) ||
                                    wslay_event_get_close_received(w->ctx) ||
                                    wslay_event_get_close_sent(w->ctx)))
        enter_closing(w);
    if (w->state == WSCORE_OPEN) {
        ctx_release(w);
        return WSCORE_CHAT;
    }
    if (!(w->raw_close || wslay_event_get_close_sent(w->ctx)) || unsent > 0)
        return WSCORE_WAIT;
    /* Our close frame is on the wire. */
    if (w->end_when_written || wslay_event_get_close_received(w->ctx))
        return WSCORE_END;
    if (w->state == WSCORE_CLOSING) {
        /* Half-close and read on: the peer's close frame or its end of the
         * stream comes next, and no data it sent meanwhile resets the
         * connection under the close frame it is reading. */
        w->state = WSCORE_LINGER;
        return WSCORE_SHUT_WR;
    }
    return WSCORE_WAIT;
}

void wscore_send_text(struct wscore *w, const char *text, size_t len)
{
    struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)text, len};

    if (w->state != WSCORE_OPEN || w->dead)
        return;
    ctx_need(w);
    if (wslay_event_queue_msg(w->ctx, &m) == 0)
        wscore_flush(w);
}

/* Frames never interleave: a shared frame goes by reference only when
 * wslay has nothing queued. */
bool wscore_send_frame(struct wscore *w, const uint8_t *frame, size_t len)
{
    unsigned len7 = frame[1] & 0x7f;
    size_t hlen = len7 < 126 ? 2 : len7 == 126 ? 4 : 10;
    struct wslay_event_msg m = {WSLAY_TEXT_FRAME, frame + hlen, len - hlen};

    wscore_flush(w);
    if (w->ctx == NULL || wslay_event_get_queued_msg_count(w->ctx) == 0)
        return true;
    if (wslay_event_queue_msg(w->ctx, &m) == 0)
        wscore_flush(w);
    return false;
}

bool wscore_close(struct wscore *w, uint16_t code, const char *reason,
                  bool linger)
{
    if (!linger)
        w->end_when_written = true;
    if (w->state != WSCORE_OPEN || w->dead)
        return false;
    ctx_need(w);
    wslay_event_queue_close(w->ctx, code, (const uint8_t *)reason,
                            strlen(reason));
    enter_closing(w);
    return true;
}

enum wscore_tick wscore_tick(struct wscore *w)
{
    static const uint8_t payload[] = "crosstalk";
    struct wslay_event_msg ping = {WSLAY_PING, payload, sizeof(payload) - 1};

    if (w->state != WSCORE_OPEN)
        return WSCORE_TICK_LATE;
    if (w->awaiting_pong)
        return WSCORE_TICK_NO_PONG;
    if (w->ctx == NULL) {
        /* nothing queued: the ping goes out as it is, without a context */
        uint8_t frame[2 + sizeof(payload) - 1];
        size_t n = wscore_frame_header(frame, WSCORE_PING, ping.msg_length);
        memcpy(frame + n, payload, ping.msg_length);
        ops->write(w, frame, n + ping.msg_length);
    } else if (wslay_event_queue_msg(w->ctx, &ping) != 0) {
        return WSCORE_TICK_NONE;
    }
    w->awaiting_pong = true;
    return WSCORE_TICK_PINGED;
}

size_t wscore_frame_header(uint8_t h[WSCORE_HEAD_MAX], uint8_t opcode,
                           size_t len)
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

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

bool wscore_key_valid(const char *key)
{
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    if (key == NULL || strlen(key) != WSCORE_KEY_LEN ||
        strcmp(key + 22, "==") != 0)
        return false;
    for (int i = 0; i < 22; i++)
        if (key[i] == '\0' || strchr(b64, key[i]) == NULL)
            return false;
    return true;
}

void wscore_accept_key(const char *key, char out[WSCORE_ACCEPT_LEN + 1])
{
    char buf[WSCORE_KEY_LEN + sizeof(WS_GUID)];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    snprintf(buf, sizeof(buf), "%.*s%s", WSCORE_KEY_LEN, key, WS_GUID);
    if (EVP_Digest(buf, strlen(buf), md, &mdlen, EVP_sha1(), NULL) != 1 ||
        mdlen != 20) {
        log_error("ws: SHA-1 failed");
        abort();
    }
    EVP_EncodeBlock((unsigned char *)out, md, (int)mdlen);
}

size_t wscore_max_message(size_t max_message_bytes)
{
    return max_message_bytes * 6 + 1024;
}
