/* route.c - the routing table */
#include "route.h"

#include <string.h>

/* What a 405 lists: HEAD wherever GET answers whole (not a stream) */
#define MESSAGES_ALLOW "GET, HEAD, POST"

static const struct route routes[] = {
    {ROUTE_HEALTHZ, "/healthz", "GET", "GET, HEAD", TRANSPORT_REST, 0},
    {ROUTE_METRICS, "/metrics", "GET", "GET, HEAD", TRANSPORT_REST,
     ROUTE_DAEMON},
    {ROUTE_STATS, "/api/stats", "GET", "GET, HEAD", TRANSPORT_REST,
     ROUTE_DAEMON},
    {ROUTE_REGISTER, "/api/register", "POST", "POST", TRANSPORT_REST, 0},
    {ROUTE_ROOMS, "/api/rooms", "GET", "GET, HEAD", TRANSPORT_REST, ROUTE_AUTH},
    {ROUTE_HISTORY, "messages", "GET", MESSAGES_ALLOW, TRANSPORT_SHORT_POLL,
     ROUTE_ROOM | ROUTE_AUTH},
    {ROUTE_SEND, "messages", "POST", MESSAGES_ALLOW, TRANSPORT_REST,
     ROUTE_ROOM | ROUTE_AUTH},
    {ROUTE_TYPING, "typing", "POST", "POST", TRANSPORT_REST,
     ROUTE_ROOM | ROUTE_AUTH},
    {ROUTE_PRESENCE, "presence", "GET", "GET, HEAD", TRANSPORT_REST,
     ROUTE_ROOM | ROUTE_AUTH},
    {ROUTE_POLL, "poll", "GET", "GET", TRANSPORT_LONG_POLL,
     ROUTE_ROOM | ROUTE_AUTH | ROUTE_STREAM | ROUTE_DAEMON},
    {ROUTE_EVENTS, "events", "GET", "GET", TRANSPORT_SSE,
     ROUTE_ROOM | ROUTE_AUTH | ROUTE_STREAM | ROUTE_DAEMON},
    {ROUTE_WS, "ws", "GET", "GET", TRANSPORT_WEBSOCKET,
     ROUTE_ROOM | ROUTE_AUTH | ROUTE_STREAM | ROUTE_DAEMON},
};
static const struct route static_route = {
    ROUTE_STATIC, "/", "GET", "GET, HEAD", TRANSPORT_REST, ROUTE_DAEMON};

#define N_ROUTES (sizeof(routes) / sizeof(routes[0]))
#define ROOMS_PREFIX "/api/rooms/"

bool route_method_known(const char *method)
{
    static const char *const known[] = {"GET",   "HEAD",    "POST",
                                        "PUT",   "DELETE",  "OPTIONS",
                                        "TRACE", "CONNECT", "PATCH"};

    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(method, known[i]) == 0)
            return true;
    return false;
}

static bool method_matches(const struct route *r, const char *method)
{
    if (strcmp(method, r->method) == 0)
        return true;
    /* HEAD is a GET without the body, except of what is held open */
    return strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0 &&
           !(r->flags & ROUTE_STREAM);
}

/* The route of `method` among those whose path is `path` (a room's action
 * when `room`); NULL with *allow set when the path is known but not the
 * method, NULL with *allow NULL when the path is not known. */
static const struct route *lookup(const char *path, size_t len, bool room,
                                  const char *method, const char **allow)
{
    *allow = NULL;
    for (size_t i = 0; i < N_ROUTES; i++) {
        const struct route *r = &routes[i];

        if (!(r->flags & ROUTE_ROOM) != !room || strlen(r->path) != len ||
            memcmp(r->path, path, len) != 0)
            continue;
        if (method_matches(r, method))
            return r;
        *allow = r->allow;
    }
    return NULL;
}

static int no_method(const char *allow, struct api_error *err)
{
    return api_fail(err, 405, API_METHOD_NOT_ALLOWED, "this path allows %s",
                    allow);
}

int route_find(const char *method, const char *path, struct route_match *m,
               struct api_error *err, const char **allow)
{
    const char *room, *action;
    size_t room_len;

    m->route = NULL;
    m->room[0] = '\0';
    *allow = NULL;
    if (!route_method_known(method))
        return api_fail(err, 501, "not_implemented", "unknown method");
    if (strncmp(path, ROOMS_PREFIX, strlen(ROOMS_PREFIX)) == 0) {
        room = path + strlen(ROOMS_PREFIX);
        action = strchr(room, '/');
        if (action == NULL || strchr(action + 1, '/') != NULL)
            return api_fail(err, 404, API_NOT_FOUND, "no such path");
        room_len = (size_t)(action - room);
        action++;
        m->route = lookup(action, strlen(action), true, method, allow);
        if (m->route == NULL)
            return *allow != NULL
                       ? no_method(*allow, err)
                       : api_fail(err, 404, API_NOT_FOUND, "no such path");
        if (!names_room_valid(room, room_len)) {
            m->route = NULL;
            return api_fail(err, 400, API_BAD_NAME,
                            "a room name is 1 to %d of a-z 0-9 _ -",
                            NAME_ROOM_MAX);
        }
        memcpy(m->room, room, room_len);
        m->room[room_len] = '\0';
        return 0;
    }
    m->route = lookup(path, strlen(path), false, method, allow);
    if (m->route != NULL)
        return 0;
    if (*allow != NULL)
        return no_method(*allow, err);
    if (strncmp(path, "/api/", 5) == 0 || strcmp(path, "/api") == 0)
        return api_fail(err, 404, API_NOT_FOUND, "no such path");
    if (!method_matches(&static_route, method)) {
        *allow = static_route.allow;
        return no_method(*allow, err);
    }
    m->route = &static_route;
    return 0;
}
