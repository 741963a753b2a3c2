/* rest.h - crosstalk-fcgi's REST calls: routing, authentication and the
 * handlers, independent of the FastCGI transport */
#ifndef CT_FCGI_REST_H
#define CT_FCGI_REST_H

#include <stdbool.h>
#include <stddef.h>

struct config;
struct store;

/* A request as the web server handed it over. Strings are borrowed. */
struct rest_request {
    const char *method;        /* "GET", "POST", ... */
    const char *path;          /* raw path, without the query */
    const char *query;         /* raw query string, NULL when none */
    const char *authorization; /* the Authorization header, or NULL */
    const char *remote_addr;   /* the client's address, for rate limits */
    const char *body;          /* NUL-terminated, NULL when none was read */
    size_t body_len;
    bool body_too_large; /* the body was over max_body_bytes, unread */
    /* the Idempotency-Key header, or NULL */
    const char *idempotency_key;
};

/* The answer. `body` is newly allocated JSON (or NULL for none). */
struct rest_response {
    int status;
    char *body;
    size_t len;
    const char *allow;     /* static; set on 405 */
    int retry_after;       /* seconds; 0 = no Retry-After header */
    bool www_authenticate; /* set on 401 */
};

/* Remembers the configuration and the store, both of which must outlive
 * the calls, and sets up the rate limits (rate_register_per_min per client
 * address, rate_send_per_sec per user, burst 2x), which like crosstalkd's
 * are counted in process memory: a pool of N processes allows up to N
 * times as much. */
void rest_init(const struct config *cfg, struct store *st);
/* Frees what rest_init set up. */
void rest_shutdown(void);

/* Handles one request and fills *rs (free its body with
 * rest_response_clear). Never fails: every failure is an error answer. */
void rest_handle(const struct rest_request *rq, struct rest_response *rs);
void rest_response_clear(struct rest_response *rs);

/* The standard reason phrase of an HTTP status ("Not Found"). */
const char *rest_reason(int status);

#endif
