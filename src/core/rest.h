/* rest.h - the REST calls, written once: a request in, store operations,
 * an answer out. It knows neither evhttp nor FastCGI: crosstalkd and
 * crosstalk-fcgi turn their requests into a struct rest_request and write
 * out the struct rest_response it answers. The store is driven through
 * callbacks: asynchronously in crosstalkd, synchronously in the pool,
 * where every answer is given before rest_handle returns. */
#ifndef CT_REST_CORE_H
#define CT_REST_CORE_H

#include <stdbool.h>
#include <stddef.h>

#include "event.h"
#include "route.h"
#include "streamid.h"

struct config;
struct store;
struct ratelimit;

/* A request as the web server handed it over. Strings are borrowed and
 * must live until the answer. */
struct rest_request {
    const char *method;        /* "GET", "POST", ... */
    const char *path;          /* raw path, without the query, not decoded */
    const char *query;         /* raw query string, NULL when none */
    const char *authorization; /* the Authorization header, or NULL */
    const char *idempotency_key;
    const char *origin;      /* the Origin header, or NULL */
    const char *host;        /* the Host header, or NULL */
    const char *remote_addr; /* the client's address, for rate limits */
    const char *body;        /* NUL-terminated; NULL when none */
    size_t body_len;
    bool body_too_large;      /* over max_body_bytes, unread */
    bool authorization_twice; /* two Authorization headers */
    bool idempotency_key_twice;
    bool preflight; /* an OPTIONS with Access-Control-Request-Method */
    /* the request target + 16, plus name + value + 4 per header: over
     * max_header_bytes is a 431 */
    size_t head_bytes;
};

#define REST_HEADERS_MAX 8
#define REST_HEADER_VALUE_MAX 256

/* The answer: status, the headers to send besides Content-Length, and the
 * body (newly allocated; sent followed by a newline). */
struct rest_response {
    int status;
    struct {
        const char *name;
        char value[REST_HEADER_VALUE_MAX];
    } headers[REST_HEADERS_MAX];
    int n_headers;
    char *body; /* NULL for none */
    size_t len;
    /* for the counters: the route's transport, and the events a poll
     * answer carries (-1 when it is not one) */
    enum transport kind;
    int delivered;
    /* a route the core does not answer itself (a stream, the page's
     * files, /metrics, /api/stats), status 0: the route, its room, and
     * the user when the route needs a token, for the program to serve */
    struct route_match pass;
    char user[NAME_USER_MAX + 1];
};

/* How a `recent` hook hands over what it holds: the JSON encodings of the
 * messages (borrowed for the call), oldest first, and the id of the last
 * one (NULL when there is none: the client is up to date). */
typedef void (*rest_recent_cb)(void *call, const char *const *jsons,
                               const size_t *lens, size_t n,
                               const char *last_id);

/* What the program adds to the calls: all optional (NULL). */
struct rest_hooks {
    void *arg;
    /* activity of a user in a room (a send, a poll, typing): keeps the
     * user online and announces a join */
    void (*touch)(void *arg, const char *room, const char *user);
    /* a short poll answered without Redis: when the program knows every
     * stored message of the room after `since`, it calls `answer(call,
     * ...)` at once with at most `limit` of them and returns true; false
     * when it cannot tell (then Redis answers, gaps and resets included) */
    bool (*recent)(void *arg, const char *room, const struct streamid *since,
                   int limit, rest_recent_cb answer, void *call);
    /* messages before `before` that Redis no longer holds (the archive),
     * oldest first; returns the count, or -1 */
    int (*archive_before)(void *arg, const char *room,
                          const struct streamid *before, int limit,
                          struct chat_event **evs, size_t *n);
    /* true while the program shuts down: /healthz answers 503 */
    bool (*draining)(void *arg);
};

/* The program's part: its configuration and store (both outlive the
 * calls), its hooks, and the rate limits rest_init sets up. */
struct rest_ctx {
    const struct config *cfg;
    struct store *store;
    struct rest_hooks hooks;
    /* true in crosstalkd: the routes marked ROUTE_DAEMON are passed on
     * (status 0); in the pool they are 404 */
    bool serves_streams;
    struct ratelimit *register_limit; /* per client address */
    struct ratelimit *send_limit;     /* per user, every transport */
    struct ratelimit *typing_limit;   /* per user */
};

/* Clears *ctx (no hooks), then sets up the rate limits (rate_register_per_min
 * per client address, rate_send_per_sec and rate_typing_per_sec per user, burst
 * 2x), counted in this process's memory. */
void rest_init(struct rest_ctx *ctx, const struct config *cfg,
               struct store *store);
void rest_shutdown(struct rest_ctx *ctx);

/* Called once with the answer (rs and what it holds live until `done`
 * returns; the core frees them). */
typedef void (*rest_done_cb)(const struct rest_request *rq,
                             struct rest_response *rs, void *arg);

/* Handles one request: every failure is an answer. */
void rest_handle(struct rest_ctx *ctx, const struct rest_request *rq,
                 rest_done_cb done, void *arg);

/* Adds a header to an answer (ignored past REST_HEADERS_MAX). */
void rest_header(struct rest_response *rs, const char *name, const char *value);
/* The headers every API answer carries: content type, no caching, and for
 * an allowed cross-origin browser, Access-Control-Allow-Origin. */
void rest_api_headers(const struct rest_ctx *ctx, const struct rest_request *rq,
                      struct rest_response *rs);
/* True when `origin` may use the API from a browser: listed in
 * allowed_origins ("*" allows any) or, with none listed, on `host`. */
bool rest_origin_allowed(const struct config *cfg, const char *origin,
                         const char *host);

/* The standard reason phrase of an HTTP status ("Not Found"). */
const char *rest_reason(int status);

#endif
