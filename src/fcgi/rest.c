/* rest.c - the stateless REST calls of DESIGN.md that crosstalk-fcgi serves:
 * routing, authentication and handlers over the synchronous store */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "archive.h"
#include "auth.h"
#include "config.h"
#include "event.h"
#include "log.h"
#include "names.h"
#include "query.h"
#include "ratelimit.h"
#include "reply.h"
#include "rest.h"
#include "store.h"
#include "xmalloc.h"

static const struct config *cfg;
static struct store *store;
static struct ratelimit *register_limit, *send_limit, *typing_limit;

/* One call in progress: the request, the answer, and what the route and the
 * token told us. */
struct call {
    const struct rest_request *rq;
    struct rest_response *rs;
    char room[NAME_ROOM_MAX + 1];
    char user[NAME_USER_MAX + 1];
};

enum route_id {
    ROUTE_NONE,
    ROUTE_HEALTHZ,
    ROUTE_REGISTER,
    ROUTE_ROOMS,
    ROUTE_MESSAGES,
    ROUTE_TYPING,
    ROUTE_PRESENCE,
    ROUTE_DAEMON_ONLY /* poll, events, ws: crosstalkd's, not ours */
};

struct route {
    enum route_id id;
    const char *allow; /* the methods it answers, for 405 */
    bool room;         /* has a {room} */
    bool auth;         /* needs a token */
};

static const struct route routes[] = {
    {ROUTE_NONE, NULL, false, false},
    {ROUTE_HEALTHZ, "GET", false, false},
    {ROUTE_REGISTER, "POST", false, false},
    {ROUTE_ROOMS, "GET", false, true},
    {ROUTE_MESSAGES, "GET, POST", true, true},
    {ROUTE_TYPING, "POST", true, true},
    {ROUTE_PRESENCE, "GET", true, true},
    {ROUTE_DAEMON_ONLY, NULL, true, true},
};

void rest_init(const struct config *c, struct store *st)
{
    cfg = c;
    store = st;
    register_limit = ratelimit_new(c->rate_register_per_min, 60000,
                                   c->rate_register_per_min);
    send_limit =
        ratelimit_new(c->rate_send_per_sec, 1000, 2.0 * c->rate_send_per_sec);
    typing_limit = ratelimit_new(c->rate_typing_per_sec, 1000,
                                 2.0 * c->rate_typing_per_sec);
}

void rest_shutdown(void)
{
    ratelimit_free(register_limit);
    ratelimit_free(send_limit);
    ratelimit_free(typing_limit);
    register_limit = send_limit = typing_limit = NULL;
}

const char *rest_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 429:
        return "Too Many Requests";
    case 503:
        return "Service Unavailable";
    default:
        return status < 500 ? "Bad Request" : "Internal Server Error";
    }
}

void rest_response_clear(struct rest_response *rs)
{
    free(rs->body);
    memset(rs, 0, sizeof(*rs));
}

static void answer(struct call *c, int status, char *body, size_t len)
{
    free(c->rs->body);
    c->rs->status = status;
    c->rs->body = body;
    c->rs->len = len;
}

static void answer_error(struct call *c, const struct api_error *err)
{
    size_t len;
    char *body = api_error_json(err, &len);

    answer(c, err->status, body, len);
    if (err->status == 401)
        c->rs->www_authenticate = true;
}

static void __attribute__((format(printf, 4, 5)))
fail(struct call *c, int status, const char *code, const char *fmt, ...)
{
    struct api_error err = {status, code, ""};
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err.message, sizeof(err.message), fmt, ap);
    va_end(ap);
    answer_error(c, &err);
}

static void unavailable(struct call *c)
{
    fail(c, 503, API_UNAVAILABLE,
         "the message store is unreachable; nothing was stored");
    c->rs->retry_after = 1;
}

/* The 503 of a write or a health probe that failed: what Redis said, and
 * whether anything was stored. */
static void write_failed(struct call *c, enum api_doing doing)
{
    struct api_error err;

    api_unavailable(&err, store_fault(store), doing);
    answer_error(c, &err);
    c->rs->retry_after = 1;
}

/* Takes a token from key's bucket; false with a 429 answer when empty. */
static bool rate_ok(struct call *c, struct ratelimit *rl, const char *key)
{
    int retry;

    if (ratelimit_take(rl, key, event_now_ms(), &retry))
        return true;
    fail(c, 429, API_RATE_LIMITED, "too many requests; retry in %d s", retry);
    c->rs->retry_after = retry;
    return false;
}

/* Splits the path into a route and, for /api/rooms/{room}/..., the room
 * segment as given (it is checked once the route and method are). */
static enum route_id route_of(const char *path, const char **room,
                              size_t *room_len)
{
    const char *rest, *slash;

    *room = NULL;
    *room_len = 0;
    if (strcmp(path, "/healthz") == 0)
        return ROUTE_HEALTHZ;
    if (strcmp(path, "/api/register") == 0)
        return ROUTE_REGISTER;
    if (strcmp(path, "/api/rooms") == 0)
        return ROUTE_ROOMS;
    if (strncmp(path, "/api/rooms/", 11) != 0)
        return ROUTE_NONE;
    rest = path + 11;
    slash = strchr(rest, '/');
    if (slash == NULL)
        return ROUTE_NONE;
    *room = rest;
    *room_len = (size_t)(slash - rest);
    rest = slash + 1;
    if (strcmp(rest, "messages") == 0)
        return ROUTE_MESSAGES;
    if (strcmp(rest, "typing") == 0)
        return ROUTE_TYPING;
    if (strcmp(rest, "presence") == 0)
        return ROUTE_PRESENCE;
    if (strcmp(rest, "poll") == 0 || strcmp(rest, "events") == 0 ||
        strcmp(rest, "ws") == 0)
        return ROUTE_DAEMON_ONLY;
    return ROUTE_NONE;
}

static bool method_allowed(const char *allow, const char *method)
{
    size_t n = strlen(method);
    const char *p = allow;

    while ((p = strstr(p, method)) != NULL) {
        if ((p == allow || p[-1] == ' ') && (p[n] == ',' || p[n] == '\0'))
            return true;
        p += n;
    }
    return false;
}

/* The token's user into c->user; false with the answer set otherwise. */
static bool authenticate(struct call *c)
{
    char hash[AUTH_HASH_LEN + 1];
    char *token;
    int rc;

    token = auth_from_request(c->rq->authorization, c->rq->query);
    if (token == NULL) {
        fail(c, 401, API_UNAUTHORIZED,
             "a token is required: Authorization: Bearer <token> or ?token=");
        return false;
    }
    if (!auth_token_wellformed(token, strlen(token))) {
        free(token);
        fail(c, 401, API_UNAUTHORIZED, "unknown token");
        return false;
    }
    auth_hash(token, strlen(token), hash);
    free(token);
    rc = store_token_user(store, hash, c->user);
    if (rc == STORE_DOWN) {
        unavailable(c);
        return false;
    }
    if (rc == STORE_NONE) {
        fail(c, 401, API_UNAUTHORIZED, "unknown token");
        return false;
    }
    return true;
}

/* Activity keeps the user online; a user who was not is announced. Best
 * effort: the call's answer does not depend on it. */
static void touch_presence(struct call *c)
{
    int64_t now = event_now_ms();
    int joined = 0;
    char **names = NULL;
    size_t n = 0, len;
    struct chat_event ev;
    char *json;

    if (store_presence_touch(store, c->room, c->user, now,
                             now + (int64_t)cfg->presence_ttl * 1000,
                             &joined) != STORE_OK ||
        !joined)
        return;
    if (store_presence_online(store, c->room, now, &names, &n) != STORE_OK)
        return;
    event_init_presence(&ev, c->room, (const char *const *)names, n, now);
    json = event_to_json(&ev, &len);
    store_publish(store, c->room, json, len);
    free(json);
    event_clear(&ev);
    xfree_strings(names, n);
}

static void do_healthz(struct call *c)
{
    static const char ok[] = "{\"status\":\"ok\"}";

    if (store_health(store) != STORE_OK) {
        write_failed(c, API_DOING_HEALTH);
        return;
    }
    answer(c, 200, xstrdup(ok), sizeof(ok) - 1);
}

static void do_register(struct call *c)
{
    char name[NAME_USER_MAX + 1], token[AUTH_TOKEN_LEN + 1];
    char hash[AUTH_HASH_LEN + 1];
    struct api_error err;
    size_t len;
    char *body;
    int rc;

    if (!rate_ok(c, register_limit,
                 c->rq->remote_addr != NULL ? c->rq->remote_addr : "?"))
        return;
    if (api_parse_register(c->rq->body, c->rq->body_len, name, &err) < 0) {
        answer_error(c, &err);
        return;
    }
    if (auth_new_token(token) < 0) {
        log_error("register %s: no random bytes for a token", name);
        fail(c, 500, "internal", "no randomness for a token");
        return;
    }
    auth_hash(token, strlen(token), hash);
    rc = store_register(store, name, hash, event_now_ms());
    if (rc == STORE_DOWN) {
        unavailable(c);
    } else if (rc == STORE_NONE) {
        fail(c, 409, API_NAME_TAKEN, "the name %s is taken", name);
    } else {
        body = api_register_json(name, token, &len);
        answer(c, 201, body, len);
        log_info("registered %s", name);
    }
}

static void do_rooms(struct call *c)
{
    struct query_rooms q;
    struct api_error err;
    char **names;
    long long *last_ts;
    size_t n, len;
    char *body;

    if (query_parse_rooms(c->rq->query, &q, &err) < 0) {
        answer_error(c, &err);
        return;
    }
    /* one more than the page, to know whether there are more */
    if (store_rooms(store, q.limit + 1, q.after_ts,
                    q.has_after ? q.after_name : NULL, &names, &last_ts,
                    &n) != STORE_OK) {
        unavailable(c);
        return;
    }
    body = api_rooms_json((const char *const *)names, last_ts, n,
                          (size_t)q.limit, &len);
    store_free_rooms(names, last_ts, n);
    answer(c, 200, body, len);
}

static void do_send(struct call *c)
{
    char key[API_KEY_MAX + 1];
    struct store_appended a;
    struct api_error err;
    struct chat_event ev;
    size_t text_len, len;
    char *text = NULL, *body;
    const char *ikey = c->rq->idempotency_key;

    if (!rate_ok(c, send_limit, c->user))
        return;
    if (api_parse_key(ikey, ikey != NULL ? strlen(ikey) : 0, key, &err) < 0 ||
        api_parse_message(c->rq->body, c->rq->body_len,
                          (size_t)cfg->max_message_bytes, &text, &text_len,
                          &err) < 0) {
        answer_error(c, &err);
        return;
    }
    if (store_append(store, c->room, c->user, text, text_len, key, &a) !=
        STORE_OK) {
        free(text);
        write_failed(c, API_DOING_SEND);
        return;
    }
    /* a repeat answers the first message, whatever this one said */
    event_init_message(&ev, c->room, a.id, c->user, a.repeat ? a.text : text,
                       a.repeat ? a.text_len : text_len, a.ts);
    body = event_to_json(&ev, &len);
    event_clear(&ev);
    free(text);
    free(a.text);
    answer(c, a.repeat ? 200 : 201, body, len);
    touch_presence(c);
}

/* Prepends to the Redis page what the archive holds before its oldest
 * message, when Redis had fewer than asked for. */
static void fill_from_archive(struct call *c, const struct query_history *h,
                              struct chat_event **evs, size_t *n)
{
    const struct streamid *oldest = *n > 0 ? &(*evs)[0].sid : &h->before;
    struct chat_event *old = NULL, *all;
    size_t k = 0;

    if (!archive_enabled() || *n >= (size_t)h->limit)
        return;
    if (archive_before(c->room, oldest, h->limit - (int)*n, &old, &k) < 0 ||
        k == 0) {
        event_free_array(old, k);
        return;
    }
    all = xcalloc(k + *n, sizeof(*all));
    memcpy(all, old, k * sizeof(*all));
    if (*n > 0)
        memcpy(all + k, *evs, *n * sizeof(*all));
    free(old);
    free(*evs);
    *evs = all;
    *n += k;
}

static void do_history(struct call *c)
{
    struct query_history h;
    struct api_error err;
    struct chat_event *evs = NULL;
    struct streamid_log log;
    struct streamid_signal sig = {STREAMID_FINE};
    size_t n = 0, i, len;
    char **jsons;
    size_t *lens;
    char from[STREAMID_STRLEN];
    const char *last_id;
    char *body;
    int rc;

    if (query_parse_history(c->rq->query, cfg->longpoll_max_timeout, &h, &err) <
        0) {
        answer_error(c, &err);
        return;
    }
    sig.from = h.since; /* 0-0 when absent */
    if (h.has_since) {
        rc = store_resume(store, c->room, &h.since, h.limit, &log, &evs, &n);
        if (rc == STORE_OK)
            streamid_judge(&h.since, &log, &sig);
    } else
        rc = store_before(store, c->room, h.has_before ? &h.before : NULL,
                          h.limit, &evs, &n);
    if (rc != STORE_OK) {
        unavailable(c);
        return;
    }
    if (h.has_before)
        fill_from_archive(c, &h, &evs, &n);
    jsons = xcalloc(n + 1, sizeof(*jsons));
    lens = xcalloc(n + 1, sizeof(*lens));
    for (i = 0; i < n; i++)
        jsons[i] = event_to_json(&evs[i], &lens[i]);
    /* with nothing new, where the client goes on from: its since, or the
     * room's newest after a gap or a reset */
    last_id = n > 0 ? evs[n - 1].id : streamid_format(&sig.from, from);
    body = api_events_json((const char *const *)jsons, lens, n, last_id, &sig,
                           &len);
    for (i = 0; i < n; i++)
        free(jsons[i]);
    free(jsons);
    free(lens);
    event_free_array(evs, n);
    answer(c, 200, body, len);
    touch_presence(c);
}

static void do_typing(struct call *c)
{
    static const char ok[] = "{\"ok\":true}";
    struct chat_event ev;
    size_t len;
    char *json;
    int rc;

    if (!rate_ok(c, typing_limit, c->user))
        return;
    event_init_typing(&ev, c->room, c->user, event_now_ms());
    json = event_to_json(&ev, &len);
    rc = store_publish(store, c->room, json, len);
    free(json);
    event_clear(&ev);
    if (rc != STORE_OK) {
        unavailable(c);
        return;
    }
    answer(c, 202, xstrdup(ok), sizeof(ok) - 1);
    touch_presence(c);
}

static void do_presence(struct call *c)
{
    char **names;
    size_t n, len;
    char *body;

    if (store_presence_online(store, c->room, event_now_ms(), &names, &n) !=
        STORE_OK) {
        unavailable(c);
        return;
    }
    body = api_online_json((const char *const *)names, n, &len);
    xfree_strings(names, n);
    answer(c, 200, body, len);
}

void rest_handle(const struct rest_request *rq, struct rest_response *rs)
{
    struct call c;
    const struct route *r;
    const char *room;
    size_t room_len;
    bool is_get, is_post;

    memset(rs, 0, sizeof(*rs));
    memset(&c, 0, sizeof(c));
    c.rq = rq;
    c.rs = rs;
    /* crosstalkd checks the body's size before anything else */
    if (rq->body_too_large) {
        fail(&c, 413, API_TOO_LARGE, "the request body is over %d bytes",
             cfg->max_body_bytes);
        return;
    }
    r = &routes[route_of(rq->path, &room, &room_len)];
    if (r->id == ROUTE_NONE) {
        fail(&c, 404, API_NOT_FOUND, "no such path");
        return;
    }
    if (r->id == ROUTE_DAEMON_ONLY) {
        fail(&c, 404, API_NOT_FOUND,
             "polls and streams are served by crosstalkd");
        return;
    }
    is_get = strcmp(rq->method, "GET") == 0 || strcmp(rq->method, "HEAD") == 0;
    is_post = strcmp(rq->method, "POST") == 0;
    if (!method_allowed(r->allow, is_get ? "GET" : rq->method)) {
        fail(&c, 405, API_METHOD_NOT_ALLOWED, "this path allows %s", r->allow);
        rs->allow = r->allow;
        return;
    }
    if (r->room) {
        if (!names_room_valid(room, room_len)) {
            fail(&c, 400, API_BAD_NAME, "a room name is 1 to %d of a-z 0-9 _ -",
                 NAME_ROOM_MAX);
            return;
        }
        memcpy(c.room, room, room_len);
        c.room[room_len] = '\0';
    }
    if (r->auth && !authenticate(&c))
        return;
    switch (r->id) {
    case ROUTE_HEALTHZ:
        do_healthz(&c);
        break;
    case ROUTE_REGISTER:
        do_register(&c);
        break;
    case ROUTE_ROOMS:
        do_rooms(&c);
        break;
    case ROUTE_MESSAGES:
        if (is_post)
            do_send(&c);
        else if (is_get)
            do_history(&c);
        break;
    case ROUTE_TYPING:
        do_typing(&c);
        break;
    case ROUTE_PRESENCE:
        do_presence(&c);
        break;
    default:
        break;
    }
}
