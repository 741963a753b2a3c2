/* app.h - the one crosstalkd process: what every daemon module shares */
#ifndef CT_APP_H
#define CT_APP_H

#include <stdbool.h>

#include "rest.h"

struct event_base;
struct config;
struct bus;
struct store;
struct ratelimit;
struct tally;

struct app {
    struct event_base *base;
    const struct config *cfg;
    struct bus *bus;
    struct store *store;
    bool draining; /* SIGTERM: finishing, accepting no streams */
    /* writes to Redis not yet answered, and sessions still writing such
     * answers (session_hold): the drain waits for none to be left */
    unsigned inflight;
    struct rest_ctx rest;           /* the REST core, with the rate limits */
    struct ratelimit *send_limit;   /* rest's: per user, every transport */
    struct ratelimit *typing_limit; /* rest's: per user, REST and WebSocket */
    struct tally *streams;          /* SSE + WebSocket, per user */
    struct tally *polls;            /* long polls, per user */
};

extern struct app app;

#endif
