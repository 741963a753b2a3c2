/* flush.c - a stream's new bytes written once per loop turn */
#include "flush.h"

#include <stdlib.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "log.h"

/* Empty buffers kept for the next batches, so that a batch costs no
 * allocation. */
#define FLUSH_SPARES 256

static TAILQ_HEAD(, flush) batch = TAILQ_HEAD_INITIALIZER(batch);
static struct event *turn; /* active while the batch is not empty */
static struct evbuffer *spares[FLUSH_SPARES];
static size_t nspares;

static struct evbuffer *buffer_get(void)
{
    struct evbuffer *b = nspares > 0 ? spares[--nspares] : evbuffer_new();

    if (b == NULL) {
        log_error("flush: out of memory");
        abort();
    }
    return b;
}

static void buffer_put(struct evbuffer *b)
{
    if (turn != NULL && nspares < FLUSH_SPARES && evbuffer_get_length(b) == 0)
        spares[nspares++] = b;
    else
        evbuffer_free(b);
}

/* Leaves the batch list, handing back its buffer. */
static void take_out(struct flush *f)
{
    TAILQ_REMOVE(&batch, f, link);
    buffer_put(f->pending);
    f->pending = NULL;
    f->bev = NULL;
}

/* One writev per stream; what the socket does not take goes to the
 * bufferevent, whose write event then carries on (and times out). */
static void write_batch(evutil_socket_t fd, short what, void *arg)
{
    struct flush *f;

    while ((f = TAILQ_FIRST(&batch)) != NULL) {
        evutil_socket_t sfd = bufferevent_getfd(f->bev);

        if (sfd >= 0)
            (void)evbuffer_write(f->pending, sfd);
        /* EAGAIN, a short write or an error: the bufferevent's write
         * event meets it as it always did */
        if (evbuffer_get_length(f->pending) > 0)
            evbuffer_add_buffer(bufferevent_get_output(f->bev), f->pending);
        take_out(f);
    }
}

struct evbuffer *flush_out(struct flush *f, struct bufferevent *bev)
{
    struct evbuffer *out = bufferevent_get_output(bev);

    if (f->pending != NULL)
        return f->pending;
    if (evbuffer_get_length(out) > 0)
        return out;
    if (turn == NULL) {
        turn = event_new(bufferevent_get_base(bev), -1, 0, write_batch, NULL);
        if (turn == NULL) {
            log_error("flush: out of memory");
            abort();
        }
    }
    f->bev = bev;
    f->pending = buffer_get();
    if (TAILQ_EMPTY(&batch))
        event_active(turn, EV_TIMEOUT, 0);
    TAILQ_INSERT_TAIL(&batch, f, link);
    return f->pending;
}

size_t flush_queued(const struct flush *f, struct bufferevent *bev)
{
    return evbuffer_get_length(bufferevent_get_output(bev)) +
           (f->pending != NULL ? evbuffer_get_length(f->pending) : 0);
}

void flush_settle(struct flush *f)
{
    if (f->pending == NULL)
        return;
    evbuffer_add_buffer(bufferevent_get_output(f->bev), f->pending);
    take_out(f);
}

void flush_cancel(struct flush *f)
{
    if (f->pending == NULL)
        return;
    evbuffer_drain(f->pending, evbuffer_get_length(f->pending));
    take_out(f);
}

void flush_shutdown(void)
{
    struct flush *f;

    while ((f = TAILQ_FIRST(&batch)) != NULL)
        flush_settle(f);
    if (turn != NULL)
        event_free(turn);
    turn = NULL;
    while (nspares > 0)
        evbuffer_free(spares[--nspares]);
}
