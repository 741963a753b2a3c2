/* conn.h - one client connection of the benchmark: non-blocking connect,
 * HTTP/1.1 requests written as given, responses parsed incrementally
 * (Content-Length, chunked, or until close), WebSocket frames after a 101 */
#ifndef CT_BENCH_CONN_H
#define CT_BENCH_CONN_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct conn;

/* How the response to a request is handed over. */
enum conn_mode {
    CONN_WHOLE,   /* complete, to ops->response */
    CONN_STREAM,  /* head to ops->head, body bytes as they come to ops->body;
                     an answer other than 2xx is handed over whole */
    CONN_UPGRADE, /* a 101 goes to ops->head and then frames to
                     ops->message; any other answer is handed over whole */
};

/* WebSocket opcodes (RFC 6455). */
enum {
    WS_CONT = 0,
    WS_TEXT = 1,
    WS_BINARY = 2,
    WS_CLOSE = 8,
    WS_PING = 9,
    WS_PONG = 10
};

/* Every callback may call conn_close on its connection (the connection is
 * freed once the callback returns) but must not free it otherwise. */
struct conn_ops {
    /* The TCP connection is established. May be NULL. */
    void (*connected)(struct conn *c);
    /* CONN_STREAM and CONN_UPGRADE: the response head (`head` is the status
     * line and headers, without the blank line). */
    void (*head)(struct conn *c, int status, const char *head, size_t hlen);
    /* CONN_STREAM: the decoded body bytes not consumed yet; returns how
     * many it consumed (the rest is handed over again with what follows). */
    size_t (*body)(struct conn *c, const char *data, size_t len);
    /* CONN_WHOLE (and a refused upgrade): the complete response. */
    void (*response)(struct conn *c, int status, const char *head, size_t hlen,
                     const char *body, size_t blen);
    /* After an upgrade: one complete text or binary message. Pings are
     * answered and a close is echoed without bothering the owner. */
    void (*message)(struct conn *c, int opcode, const char *data, size_t len);
    /* The connection failed or ended (`why` says how, for humans). The
     * connection is freed right after this returns. */
    void (*closed)(struct conn *c, const char *why);
};

/* Byte and request counters of a class of connections (subscribers,
 * publishers), kept by every connection that points to them. */
struct conn_totals {
    uint64_t bytes_in, bytes_out;
    uint64_t requests;  /* requests written */
    uint64_t responses; /* complete responses and WebSocket messages */
    uint64_t connects, connect_failures;
};

/* Starts connecting to `addr`, counting into *tot. Never NULL: a failure
 * to even start is reported through ops->closed on the next loop turn. */
struct conn *conn_new(struct event_base *base, const struct sockaddr_in *addr,
                      const struct conn_ops *ops, void *arg,
                      struct conn_totals *tot);
/* Writes a request (queued until the connection is up) and says how its
 * response is to be handed over. One request at a time. */
void conn_request(struct conn *c, const char *req, size_t len,
                  enum conn_mode mode);
/* Sends one masked WebSocket frame (client to server). */
void conn_ws_send(struct conn *c, int opcode, const char *data, size_t len);
/* Closes and frees the connection without calling ops->closed; inside one
 * of its callbacks the freeing waits until the callback returns. */
void conn_close(struct conn *c);

void *conn_arg(const struct conn *c);
bool conn_is_up(const struct conn *c);
/* True while the answer being handed over said Connection: close: the
 * server reads no more requests on this connection, so the next one goes
 * on a new connection. Close this one yourself (conn_close) and ops->closed
 * is not called; otherwise it follows once the answer is handed over. */
bool conn_ending(const struct conn *c);
/* CLOCK_MONOTONIC ns of the read that brought the bytes being handed over. */
uint64_t conn_read_ns(const struct conn *c);

/* Finds header `name` (case-insensitive) in a response head; sets *val and
 * *vlen to its value without surrounding blanks. Returns false if absent. */
bool conn_header(const char *head, size_t hlen, const char *name,
                 const char **val, size_t *vlen);

/* CLOCK_MONOTONIC in ns. */
uint64_t now_ns(void);

#endif
