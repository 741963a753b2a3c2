/* route.h - every path and method crosstalk answers, in one table that
 * crosstalkd and crosstalk-fcgi both route by, so that both answer an
 * unknown path, a method a path does not allow and a bad room name alike */
#ifndef CT_ROUTE_H
#define CT_ROUTE_H

#include <stdbool.h>

#include "api.h"
#include "names.h"
#include "transport_kind.h"

enum route_id {
    ROUTE_HEALTHZ,
    ROUTE_METRICS,
    ROUTE_STATS,
    ROUTE_REGISTER,
    ROUTE_ROOMS,
    ROUTE_HISTORY,  /* GET .../messages: short poll, history */
    ROUTE_SEND,     /* POST .../messages */
    ROUTE_TYPING,   /* POST .../typing */
    ROUTE_PRESENCE, /* GET .../presence */
    ROUTE_POLL,     /* GET .../poll: long poll */
    ROUTE_EVENTS,   /* GET .../events: Server-Sent Events */
    ROUTE_WS,       /* GET .../ws: the WebSocket upgrade */
    ROUTE_STATIC    /* anything outside /api: the page's files */
};

/* What a route is. */
#define ROUTE_ROOM 0x1 /* /api/rooms/{room}/...: has a room */
#define ROUTE_AUTH 0x2 /* needs a token */
#define ROUTE_STREAM                                                           \
    0x4                  /* held open (no HEAD): counts against                \
                          * max_connections */
#define ROUTE_DAEMON 0x8 /* served by crosstalkd only, never by the pool */

struct route {
    enum route_id id;
    const char *path;   /* "/healthz", or the action after /api/rooms/{room}/ */
    const char *method; /* "GET" also answers HEAD, unless a stream */
    const char *allow;  /* the methods the path allows, for 405 and Allow */
    enum transport kind;
    unsigned flags;
};

/* A request's route and, for a room's route, its room. */
struct route_match {
    const struct route *route;
    char room[NAME_ROOM_MAX + 1];
};

/* Finds the route of `method` on the raw (undecoded) `path`: the room
 * segment must be a valid room name as it stands, so "a%62c" is not
 * "abc" but a bad name. Returns 0 with *m filled, or -1 with err set:
 * 501 not_implemented for a method HTTP does not define, 404 not_found for
 * no such path under /api, 405 method_not_allowed (with *allow the value
 * of the Allow header; otherwise *allow is NULL), 400 bad_name. */
int route_find(const char *method, const char *path, struct route_match *m,
               struct api_error *err, const char **allow);

/* True for a method HTTP/1.1 defines (RFC 9110, and PATCH). */
bool route_method_known(const char *method);

#endif
