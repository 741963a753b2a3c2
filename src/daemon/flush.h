/* flush.h - a stream's new bytes written once per loop turn: a socket that
 * keeps up costs one writev per batch of events and no write event; only a
 * socket that would block gets its bufferevent's write event armed */
#ifndef CT_FLUSH_H
#define CT_FLUSH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>

struct bufferevent;
struct evbuffer;

/* Embedded in a stream (SSE, WebSocket); zeroed is idle. */
struct flush {
    struct bufferevent *bev;  /* set by flush_out while a batch waits */
    struct evbuffer *pending; /* the batch; NULL when none */
    TAILQ_ENTRY(flush) link;
};

/* The buffer a stream appends its next bytes to, in order after what it
 * sent before: bev's output while that holds bytes (the socket is behind
 * and its write event armed, as without this module), else the batch
 * written straight to the socket at the end of this loop turn, after the
 * callback running now (a Redis read and every event it fanned out). */
struct evbuffer *flush_out(struct flush *f, struct bufferevent *bev);

/* Bytes of the stream not yet taken by its socket: its output and the
 * batch. */
size_t flush_queued(const struct flush *f, struct bufferevent *bev);

/* Moves the batch to the end of bev's output now (which arms the write
 * event): call before writing to the output by other means, before
 * closing, and before anything that waits for the output to drain. */
void flush_settle(struct flush *f);

/* Forgets the batch unsent (the stream is dropped or freed). Safe on an
 * idle flush, and after flush_shutdown. */
void flush_cancel(struct flush *f);

/* Frees the module's event and spare buffers (at exit, loop stopped). */
void flush_shutdown(void);

#endif
