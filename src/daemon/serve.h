/* serve.h - crosstalkd's side of the REST core: an HTTP request in, the
 * core's answer out, and what the core passes on (the streams, the page's
 * files, /metrics and /api/stats) served here */
#ifndef CT_SERVE_H
#define CT_SERVE_H

struct http_req;
struct rest_ctx;

/* Sets up the core for this process (app.cfg, app.store, the hooks). */
void serve_init(struct rest_ctx *ctx);
/* Serves one request whose head passed the HTTP layer's checks. */
void serve_request(struct http_req *req);

#endif
