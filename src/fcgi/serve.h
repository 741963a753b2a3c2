/* serve.h - crosstalk-fcgi's side of the REST core: the FastCGI parameters
 * and body in, the core's answer out, and the pool's hooks (presence kept
 * in Redis alone, the archive for pages of old history) */
#ifndef CT_FCGI_SERVE_H
#define CT_FCGI_SERVE_H

#include <fcgiapp.h>

#include "rest.h"

/* Sets up the core over `store` for the pool (no streams). */
void serve_init(struct rest_ctx *ctx, const struct config *cfg,
                struct store *store);

/* What serving a request tells the counters. */
struct serve_outcome {
    enum transport kind;
    int status;
    size_t bytes_out;
    int delivered; /* events of a poll answer, -1 when not one */
};

/* Reads one request, answers it on req->out (the store is synchronous, so
 * the answer is written before this returns) and fills *out. */
void serve_request(struct rest_ctx *ctx, FCGX_Request *req,
                   struct serve_outcome *out);

#endif
