/* sse.c - GET /api/rooms/{room}/events: a Server-Sent Events stream of the
 * room, resumable after Last-Event-ID or ?since= */
#include "sse.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "config.h"
#include "flush.h"
#include "log.h"
#include "query.h"
#include "session.h"
#include "transport.h"
#include "xmalloc.h"

/* Seconds a stream may go without its peer taking any bytes. */
#define SSE_WRITE_TIMEOUT 60

struct sse {
    struct session sess;    /* first: the bus sees its subscriber */
    struct http_req *req;   /* until the stream starts */
    struct http_conn *conn; /* once it has */
    struct http_watch *watch;
    bool chunked;          /* HTTP/1.1: the body goes in chunks */
    bool started;          /* the head is written */
    struct flush flush;    /* events not yet handed to the socket */
    TAILQ_ENTRY(sse) link; /* every open stream, for heartbeats */
};

static TAILQ_HEAD(, sse) streams = TAILQ_HEAD_INITIALIZER(streams);
static size_t nstreams;
static struct event *heartbeat;
static struct evbuffer *scratch; /* moved into the output on every send */

struct bus_blob *sse_encode(const struct bus_event *e)
{
    const struct chat_event *ev = &e->ev;
    const char *type = event_type_name(ev->type);
    size_t len = strlen("event: \ndata: \n\n") + strlen(type) + e->json->len;
    struct bus_blob *b;
    int n;

    if (ev->id[0] != '\0')
        len += strlen("id: \n") + strlen(ev->id);
    b = bus_blob_new(len);
    n = ev->id[0] != '\0'
            ? snprintf(b->data, len + 1, "id: %s\nevent: %s\ndata: ", ev->id,
                       type)
            : snprintf(b->data, len + 1, "event: %s\ndata: ", type);
    memcpy(b->data + n, e->json->data, e->json->len);
    memcpy(b->data + n + e->json->len, "\n\n", 2);
    return b;
}

struct bus_blob *sse_encode_chunked(const struct bus_event *e)
{
    struct bus_blob *plain = sse_encode(e), *b;
    char head[24];
    int n = snprintf(head, sizeof(head), "%zx\r\n", plain->len);

    b = bus_blob_new(n + plain->len + 2);
    memcpy(b->data, head, n);
    memcpy(b->data + n, plain->data, plain->len);
    memcpy(b->data + n + plain->len, "\r\n", 2);
    bus_blob_unref(plain);
    return b;
}

static struct bufferevent *bev_of(const struct sse *s)
{
    return s->conn != NULL ? http_conn_bev(s->conn) : NULL;
}

static void send_bytes(struct sse *s, const char *data, size_t len,
                       struct bus_blob *blob)
{
    if (blob != NULL)
        bus_blob_add(blob, scratch);
    else
        evbuffer_add(scratch, data, len);
    size_t n = evbuffer_get_length(scratch);
    struct bufferevent *bev = bev_of(s);

    if (bev == NULL) {
        evbuffer_drain(scratch, n);
        return;
    }
    flush_settle(&s->flush); /* the events before it go first */
    stats[TRANSPORT_SSE].bytes_out += n;
    if (s->chunked)
        evbuffer_add_printf(bufferevent_get_output(bev), "%zx\r\n", n);
    evbuffer_add_buffer(bufferevent_get_output(bev), scratch);
    if (s->chunked)
        evbuffer_add(bufferevent_get_output(bev), "\r\n", 2);
}

static void free_stream(void *arg)
{
    free(arg);
}

/* Everything but the request: the bus, presence, heartbeats, the watch. */
static void detach(struct sse *s)
{
    flush_cancel(&s->flush);
    session_leave(&s->sess);
    TAILQ_REMOVE(&streams, s, link);
    nstreams--;
    stats[TRANSPORT_SSE].open--;
    http_watch_free(s->watch);
    s->watch = NULL;
}

/* Ends the stream cleanly: the last chunk goes after what is queued. */
static void end_stream(struct sse *s)
{
    flush_settle(&s->flush);
    detach(s);
    if (s->conn != NULL)
        http_stream_end(s->conn);
    else if (s->req != NULL)
        http_drop(s->req); /* not started: the client comes back */
    http_defer(free_stream, s);
}

/* Drops the connection at once (slow consumer): what is queued is lost to
 * it, and it resumes by id. */
static void drop_stream(struct sse *s)
{
    detach(s);
    stats[TRANSPORT_SSE].dropped++;
    log_info("sse: dropped a slow consumer of %s (%s)", s->sess.sub.room,
             s->sess.sub.user);
    if (s->conn != NULL)
        http_conn_close(s->conn);
    else if (s->req != NULL)
        http_drop(s->req);
    http_defer(free_stream, s);
}

static void deliver(struct subscriber *sub, struct bus_event *e)
{
    struct sse *s = (struct sse *)sub;
    struct bufferevent *bev = bev_of(s);
    struct bus_blob *blob;

    if (bev == NULL)
        return;
    /* history is paced by the resume; live events may not pile up */
    if (!sub->resuming && flush_queued(&s->flush, bev) >
                              (size_t)s->sess.cfg->client_buffer_limit) {
        drop_stream(s);
        return;
    }
    /* the event's bytes, framed once for every stream, written with the
     * stream's other new events at the end of the loop turn, or queued
     * behind what the socket has not taken (the stream's bufferevent
     * keeps a blocked socket going) */
    blob = s->chunked
               ? bus_event_encoded(e, BUS_SLOT_SSE_CHUNKED, sse_encode_chunked)
               : bus_event_encoded(e, BUS_SLOT_SSE, sse_encode);
    bus_blob_add(blob, flush_out(&s->flush, bev));
    stats[TRANSPORT_SSE].bytes_out += blob->len;
    stats[TRANSPORT_SSE].delivered++;
}

static void close_stream(struct subscriber *sub)
{
    end_stream((struct sse *)sub);
}

static size_t queued(const struct subscriber *sub)
{
    const struct sse *s = (const struct sse *)sub;
    struct bufferevent *bev = bev_of(s);

    return bev ? flush_queued(&s->flush, bev) : 0;
}

static void drop_sub(struct subscriber *sub)
{
    drop_stream((struct sse *)sub);
}

/* "event: truncated" or "event: reset" with the id where the stream goes
 * on from, so that EventSource's next Last-Event-ID is that, not an id
 * from the future. */
static void signal_stream(struct subscriber *sub,
                          const struct streamid_signal *sig)
{
    struct sse *s = (struct sse *)sub;
    char from[STREAMID_STRLEN];
    char *data = api_signal_json(sig, false, NULL);
    char *block = xasprintf("id: %s\nevent: %s\ndata: %s\n\n",
                            streamid_format(&sig->from, from),
                            api_signal_type(sig), data);

    send_bytes(s, block, strlen(block), NULL);
    free(block);
    free(data);
}

static const struct subscriber_ops ops = {.deliver = deliver,
                                          .close = close_stream,
                                          .queued = queued,
                                          .drop = drop_sub,
                                          .signal = signal_stream};

static void beat(evutil_socket_t fd, short what, void *arg)
{
    struct sse *s, *next;

    for (s = TAILQ_FIRST(&streams); s != NULL; s = next) {
        next = TAILQ_NEXT(s, link);
        if (s->started)
            send_bytes(s, ":\n\n", 3, NULL);
    }
}

static void gone(void *arg)
{
    struct sse *s = arg;

    s->watch = NULL; /* freed by http.c */
    s->conn = NULL;  /* closed by http.c */
    detach(s);
    free_stream(s);
}

/* Writes the head and the retry: line; from now on the stream is open, on
 * a connection of its own: the request is gone. */
static void start_stream(struct sse *s)
{
    struct http_req *req = s->req;
    char retry[32];

    http_add_header(req, "Content-Type", "text/event-stream; charset=utf-8");
    http_add_header(req, "Cache-Control", "no-cache");
    http_add_header(req, "X-Accel-Buffering", "no");
    http_watch_free(s->watch);
    s->watch = NULL;
    s->req = NULL;
    /* a quiet stream is read only to notice a close, and outlives the head
     * timeout; a peer that stops taking bytes still times out on writing */
    s->conn =
        http_stream_start(req, 200, SSE_WRITE_TIMEOUT, &s->chunked, gone, s);
    snprintf(retry, sizeof(retry), "retry: %d\n\n", s->sess.cfg->sse_retry_ms);
    send_bytes(s, retry, strlen(retry), NULL);
    s->started = true;
}

static void resumed(struct subscriber *sub, int status)
{
    struct sse *s = (struct sse *)sub;

    if (status != 0 && !s->started) {
        /* nothing sent yet: the client hears why, and comes back */
        detach(s);
        http_reply_error(s->req, TRANSPORT_SSE, 503, "unavailable",
                         API_READ_FAILED "; try again");
        http_defer(free_stream, s);
        return;
    }
    if (status != 0) {
        /* EventSource comes back after retry: and Redis may be back too */
        end_stream(s);
        return;
    }
    if (!s->started)
        start_stream(s);
    bus_resume_done(sub);
}

void sse_handle(struct request *r)
{
    struct sse *s = xcalloc(1, sizeof(*s));
    const struct config *cfg;
    const char *last_event_id = http_header(r->req, "Last-Event-ID");
    struct query_history q;
    struct streamid since;
    bool has_since = false;
    struct api_error err;

    s->req = r->req;
    session_open(&s->sess, r, &ops);
    cfg = s->sess.cfg;
    if (query_parse_history(r->query, cfg->longpoll_max_timeout, &q, &err) !=
        0) {
        http_reply_api_error(r->req, r->kind, &err);
        goto refused;
    }
    if (last_event_id != NULL && last_event_id[0] != '\0') {
        if (streamid_parse(last_event_id, strlen(last_event_id), &since) != 0) {
            http_reply_error(r->req, r->kind, 400, "bad_request",
                             "Last-Event-ID is not a message id");
            goto refused;
        }
        has_since = true;
    } else if (q.has_since) {
        since = q.since;
        has_since = true;
    }
    if (session_take(&s->sess, &err) != 0) {
        http_reply_api_error(r->req, r->kind, &err);
        goto refused;
    }
    if (heartbeat == NULL) {
        struct timeval tv = {cfg->sse_heartbeat, 0};
        scratch = evbuffer_new();
        heartbeat = event_new(s->sess.base, -1, EV_PERSIST, beat, NULL);
        event_add(heartbeat, &tv);
    }
    TAILQ_INSERT_TAIL(&streams, s, link);
    nstreams++;
    stats[TRANSPORT_SSE].open++;

    s->watch = http_watch_new(r->req, gone, s);
    /* From the room's newest message on: the head waits until that is
     * known, so that whatever the client sends once it sees the head comes
     * after it, and reaches it. */
    if (has_since)
        start_stream(s);
    session_join(&s->sess, has_since ? &since : NULL, 0, resumed);
    http_request_free(r);
    return;
refused:
    free_stream(s);
    http_request_free(r);
}

void sse_shutdown(void)
{
    if (heartbeat != NULL)
        event_free(heartbeat);
    heartbeat = NULL;
    if (scratch != NULL)
        evbuffer_free(scratch);
    scratch = NULL;
    flush_shutdown();
}
