/* http.h - crosstalkd's HTTP/1.1 server: connections, request heads and
 * bodies, answers, and handing a connection over to a stream */
#ifndef CT_HTTP_H
#define CT_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "api.h"
#include "names.h"
#include "transport_kind.h"

struct bufferevent;
struct evbuffer;

/* One request: its head and body as they came, and its answer as it is
 * made. It lives from its head's arrival until it is answered (or dropped,
 * or its client leaves while it waits unwatched: then it lives on until
 * answered, and the answer goes nowhere). */
struct http_req;

/* A client connection: the HTTP layer's while it carries requests; a
 * stream's (SSE, WebSocket) once handed over. */
struct http_conn;

/* One API call on its way through authentication to its handler. */
struct request {
    struct http_req *req;
    enum transport kind;
    char room[NAME_ROOM_MAX + 1];
    char user[NAME_USER_MAX + 1];
    char *query; /* the raw query string, NULL when none */
};

/* Frees the request record (not the HTTP request). Accepts NULL. */
void http_request_free(struct request *r);

/* Binds cfg->bind:cfg->port and hands every request whose head is sound
 * to `handler`. Returns 0, or -1 with a message logged. */
int http_start(void (*handler)(struct http_req *req));
/* Stops accepting new connections (shutdown). */
void http_stop_accepting(void);
/* Closes every connection and frees the server (at exit). */
void http_free(void);

/* --- the request --- */

/* The method as sent ("GET", "POST", ...). */
const char *http_method(const struct http_req *req);
bool http_is_head(const struct http_req *req);
/* 0 for an HTTP/1.0 request, 1 for HTTP/1.1 (or a later 1.x). */
int http_minor(const struct http_req *req);
/* The target's path (as sent, still percent-encoded; "/" for none) and its
 * query (NULL when it has none). */
const char *http_path(const struct http_req *req);
const char *http_query(const struct http_req *req);
/* The first header `name` (any case), or NULL. */
const char *http_header(const struct http_req *req, const char *name);
/* The value of header `name` in *value (NULL when absent). Returns 0, or -1
 * when the request carries it more than once. */
int http_header_once(const struct http_req *req, const char *name,
                     const char **value);
/* The request body as a NUL-terminated string; *len gets its length (0 and
 * "" when it has none). */
const char *http_body(const struct http_req *req, size_t *len);
/* The request head's size in bytes, as it came. */
size_t http_head_bytes(const struct http_req *req);
/* True when `origin` may use the API from a browser: listed in
 * allowed_origins ("*" allows any), or, with none configured, the same
 * host as the request's Host header. */
bool http_origin_allowed(const struct http_req *req, const char *origin);
/* The client's address: the peer's, or, when the peer is one of
 * trusted_proxies (nginx), the X-Real-IP it set. Points into the request
 * or its connection. */
const char *http_client_address(const struct http_req *req);

/* --- the answer --- */

/* Adds a header (both copied) to the answer. */
void http_add_header(struct http_req *req, const char *name, const char *value);
/* The answer's header `name` as added so far, or NULL. */
const char *http_answer_header(const struct http_req *req, const char *name);
/* The answer's body, to add to. */
struct evbuffer *http_output(struct http_req *req);
/* Sets the headers every API answer carries (content type, no caching). */
void http_api_headers(struct http_req *req, const char *content_type);
/* Adds a JSON body (copied) and its line end to the answer, and counts its
 * bytes for `kind` (not for HEAD, whose body is not sent). */
void http_add_json(struct http_req *req, enum transport kind, const char *body,
                   size_t len);

/* Sends the answer: the status, the headers added, the body; written in
 * this loop turn. `reason` NULL: the usual phrase. Frees the request. */
void http_send_reply(struct http_req *req, int status, const char *reason);
/* Replies with a JSON body (copied) and the status; counts bytes for `kind`.
 * Frees the request. */
void http_reply_json(struct http_req *req, enum transport kind, int status,
                     const char *body, size_t len);
/* Replies with {"error":code,"message":...}. Frees the request. */
void http_reply_error(struct http_req *req, enum transport kind, int status,
                      const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void http_reply_api_error(struct http_req *req, enum transport kind,
                          const struct api_error *err);
/* Closes the request's connection without an answer, once the callback
 * that calls this has returned: for a request this daemon will not serve
 * while it drains, and that a client should take elsewhere (nginx passes a
 * request so failed to its next daemon; a browser's EventSource reconnects
 * after a dropped connection, where a 503 would end it). Frees the
 * request. */
void http_drop(struct http_req *req);

/* --- a request held open --- */

/* Watches a request whose answer is pending (a long poll) for its client
 * going away. When it does, `gone(arg)` is called and the request is freed
 * when it returns: free your state, do not touch the request, do not free
 * the watch. */
struct http_watch;
struct http_watch *http_watch_new(struct http_req *req, void (*gone)(void *arg),
                                  void *arg);
/* Stops watching before you answer the request yourself. Accepts NULL. */
void http_watch_free(struct http_watch *w);

/* --- a connection handed over --- */

/* Answers `req` with the head of a stream (status and the headers added;
 * chunked for HTTP/1.1, ended by the close for HTTP/1.0) and hands its
 * connection over: the request is freed, and the stream's bytes go to the
 * returned connection's bufferevent (http_conn_bev). *chunked says whether
 * they must be framed as chunks. When the client goes away or stops taking
 * bytes for `write_timeout` seconds, gone(arg) is called and the
 * connection closed. */
struct http_conn *http_stream_start(struct http_req *req, int status,
                                    int write_timeout, bool *chunked,
                                    void (*gone)(void *arg), void *arg);
/* Ends a stream: what is queued is written (a chunked stream's last chunk
 * with it), then the connection is closed; gone is not called. */
void http_stream_end(struct http_conn *conn);

/* Hands the connection of `req` over as it is (a protocol upgrade, which
 * writes its own answer): the request is freed, and bytes the client sent
 * after its head are in the bufferevent's input. NULL when the client
 * already left (the request is freed all the same). The bufferevent has
 * no timeouts and no callbacks: set yours. */
struct http_conn *http_upgrade(struct http_req *req);
/* The bufferevent of a handed-over connection. */
struct bufferevent *http_conn_bev(const struct http_conn *conn);
/* Closes a handed-over connection now (its fd, its bufferevent), after
 * any callback of its bufferevent that is on the stack. */
void http_conn_close(struct http_conn *conn);
/* Calls cb(arg) when the server closes a handed-over connection itself:
 * at exit (http_free), or when its client left before the hand-over was
 * done. Not called for http_conn_close. A NULL cb stops it. */
void http_conn_on_close(struct http_conn *conn, void (*cb)(void *arg),
                        void *arg);

/* Removes every timeout from a bufferevent and enables it both ways. */
void http_clear_timeouts(struct bufferevent *bev);

/* Runs fn(arg) on the next turn of the event loop: for freeing a
 * subscriber from inside its own deliver callback. */
void http_defer(void (*fn)(void *arg), void *arg);

#endif
