/* http.h - crosstalkd's HTTP layer: connections, request heads, replies,
 * and watching a held request */
#ifndef CT_HTTP_H
#define CT_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/http.h>

#include "api.h"
#include "names.h"
#include "transport_kind.h"

/* One API call on its way through authentication to its handler. */
struct request {
    struct evhttp_request *req;
    enum transport kind;
    char room[NAME_ROOM_MAX + 1];
    char user[NAME_USER_MAX + 1];
    char *query; /* the raw query string, NULL when none */
};

/* Frees the request record (not the evhttp request). Accepts NULL. */
void http_request_free(struct request *r);

/* Binds cfg->bind:cfg->port and hands every request whose head is sound
 * to `handler`. Returns 0, or -1 with a message logged. */
int http_start(void (*handler)(struct evhttp_request *req));
/* Stops accepting new connections (shutdown). */
void http_stop_accepting(void);
/* Closes every connection and frees the server (at exit). */
void http_free(void);

/* evhttp_send_reply with no extra body; the answer is written in this
 * loop turn. The request may be freed by any later callback. */
void http_send_reply(struct evhttp_request *req, int status,
                     const char *reason);
/* evhttp_send_reply_start (a stream's head), with Connection: close where
 * the connection ends with the stream, as http_send_reply does. */
void http_reply_start(struct evhttp_request *req, int status,
                      const char *reason);
/* Closes the request's connection without an answer, once the callback
 * that calls this has returned: for a request this daemon will not serve
 * while it drains, and that a client should take elsewhere (nginx passes a
 * request so failed to its next daemon; a browser's EventSource reconnects
 * after a dropped connection, where a 503 would end it). */
void http_drop(struct evhttp_request *req, enum transport kind);
/* Adds a JSON body (copied) and its line end to the answer, and counts its
 * bytes for `kind` (not for HEAD, whose body is not sent). */
void http_add_json(struct evhttp_request *req, enum transport kind,
                   const char *body, size_t len);
/* Replies with a JSON body (copied) and the status; counts bytes for `kind`. */
void http_reply_json(struct evhttp_request *req, enum transport kind,
                     int status, const char *body, size_t len);
/* Replies with {"error":code,"message":...}. */
void http_reply_error(struct evhttp_request *req, enum transport kind,
                      int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void http_reply_api_error(struct evhttp_request *req, enum transport kind,
                          const struct api_error *err);
/* The request body as a NUL-terminated string (the buffer is pulled up in
 * place); *len gets its length. */
const char *http_body(struct evhttp_request *req, size_t *len);
/* True when `origin` may use the API from a browser: listed in
 * allowed_origins ("*" allows any), or, with none configured, the same
 * host as the request's Host header. */
bool http_origin_allowed(struct evhttp_request *req, const char *origin);
/* The value of header `name` in *value (NULL when absent). Returns 0, or -1
 * when the request carries it more than once. */
int http_header_once(struct evhttp_request *req, const char *name,
                     const char **value);
/* The request head's size as the REST core counts it (rest.h). */
size_t http_head_bytes(struct evhttp_request *req);
/* Sets the headers every API answer carries (content type, no caching). */
void http_api_headers(struct evhttp_request *req, const char *content_type);

/* Watches a request whose answer is pending (long poll, stream) for its
 * client going away. When it does, `gone(arg)` is called; the evhttp
 * request no longer exists when it returns: free your state, do not touch
 * the request, do not free the watch. */
struct http_watch;
struct http_watch *http_watch_new(struct evhttp_request *req,
                                  void (*gone)(void *arg), void *arg);
/* Stops watching before you answer the request yourself. Accepts NULL. */
void http_watch_free(struct http_watch *w);

/* Calls cb(evcon, arg) when evhttp frees the connection (the one close
 * callback evhttp has: use this, not evhttp_connection_set_closecb, which
 * would take it from the connection count). A NULL cb stops it. */
void http_on_close(struct evhttp_connection *evcon,
                   void (*cb)(struct evhttp_connection *evcon, void *arg),
                   void *arg);

struct bufferevent;
/* Removes every timeout from a connection's bufferevent and enables it
 * both ways: for a connection taken over from evhttp (an upgrade), which
 * no HTTP timeout governs. */
void http_clear_timeouts(struct bufferevent *bev);

/* The client's address: the peer's, or, when the peer is one of
 * trusted_proxies (nginx), the X-Real-IP it set. Points into the request
 * or its connection. */
const char *http_client_address(struct evhttp_request *req);

/* Runs fn(arg) on the next turn of the event loop: for freeing a
 * subscriber from inside its own deliver callback. */
void http_defer(void (*fn)(void *arg), void *arg);

#endif
