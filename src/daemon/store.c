/* store.c - crosstalkd's Redis: async commands, the bus subscription,
 * reconnection with backoff and gap filling */
#include "store.h"

#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "auth.h"
#include "bus.h"
#include "config.h"
#include "keys.h"
#include "log.h"
#include "redisurl.h"
#include "reply.h"
#include "statrec.h"
#include "xmalloc.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define FILL_PAGE 500
#define AUTH_CACHE_MAX 65536
/* How often the watchdog looks at the commands in flight, at most. */
#define WATCH_MAX_MS 250

/* A command in flight on the command connection. Redis answers in order,
 * so the head of the list is the oldest; hiredis 0.14 has no command
 * timeout of its own. */
struct pending {
    TAILQ_ENTRY(pending) link;
    struct store *st;
    int64_t sent_ms; /* monotonic */
    redisCallbackFn *fn;
    void *priv;
};
TAILQ_HEAD(pending_list, pending);

struct store {
    struct event_base *base;
    const struct config *cfg;
    struct bus *bus;
    struct redisurl url; /* where Redis is */
    /* the command connection and the subscription, each reconnecting */
    redisAsyncContext *cmd, *sub;
    bool cmd_up, sub_up;
    int cmd_backoff, sub_backoff;
    struct event *cmd_timer, *sub_timer, *fill_timer;
    bool fill_wanted; /* rooms must be filled once both are up */
    bool closing;
    /* token -> user name, believed for token_cache_ttl after Redis said so */
    void *auth_cache;
    size_t auth_cached;
    /* Every Redis command is bounded by redis_timeout_ms: the watchdog
     * drops a connection whose oldest command (or whose connect, or the
     * subscription's probe) has waited longer, and reconnects. */
    struct pending_list pending;
    struct event *watchdog;
    int64_t cmd_since;  /* when the connect started; 0 when none is */
    int64_t sub_since;  /* PSUBSCRIBE sent and not answered; 0 when none */
    int64_t sub_probed; /* when the last probe of the subscription went */
};

/* One command in flight and what to tell whom when it answers. */
struct call {
    struct store *st;
    union {
        store_append_cb append;
        store_events_cb events;
        store_resume_cb resume;
        store_user_cb user;
        store_register_cb reg;
        store_rooms_cb rooms;
        store_online_cb online;
        store_status_cb status;
    } cb;
    void *arg;
    char room[NAME_ROOM_MAX + 1];
    struct streamid after; /* where a gap fill reads from */
    char key[AUTH_HASH_LEN + 1];
    char token[AUTH_TOKEN_LEN + 1];
    char created[24];
    bool reverse;
    /* the command, kept to resend as EVAL after NOSCRIPT */
    int argc;
    const char *argv[KEYS_APPEND_ARGC];
    size_t lens[KEYS_APPEND_ARGC];
    char from[NAME_USER_MAX + 1];
    char *text;
    size_t text_len;
    char idem[API_KEY_MAX + 1]; /* the idempotency key, "" for none */
    char bufs[KEYS_APPEND_BUFS];
};

/* Tokens are looked up by their token rather than their digest, so a
 * cached token costs no SHA-256; the digest is what Redis keeps. */
struct auth_entry {
    char token[AUTH_TOKEN_LEN + 1];
    char user[NAME_USER_MAX + 1];
    int64_t checked_ms; /* monotonic: when Redis last confirmed it */
};

static void cmd_connect(struct store *st);
static void sub_connect(struct store *st);
static void fill_all(struct store *st);

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct call *call_new(struct store *st, void *arg)
{
    struct call *c = xcalloc(1, sizeof(*c));

    c->st = st;
    c->arg = arg;
    return c;
}

static void call_free(struct call *c)
{
    if (c == NULL)
        return;
    free(c->text);
    free(c);
}

/* An error reply or none at all (disconnected) is a failure. */
static bool reply_failed(const redisReply *r, const char *what)
{
    if (r == NULL)
        return true;
    if (r->type == REDIS_REPLY_ERROR) {
        log_warn("redis: %s: %s", what, r->str);
        return true;
    }
    return false;
}

static redisAsyncContext *connect_one(struct store *st, const char *what)
{
    const struct redisurl *u = &st->url;
    redisAsyncContext *ac = u->path ? redisAsyncConnectUnix(u->path)
                                    : redisAsyncConnect(u->host, u->port);
    const char *argv[2][3];
    int argc[2], n;
    char dbbuf[16];

    if (ac == NULL)
        return NULL;
    if (ac->err) {
        log_warn("redis: %s connection: %s", what, ac->errstr);
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = st;
    redisLibeventAttach(ac, st->base);
    /* AUTH and SELECT go first, so every later command runs after them */
    n = redisurl_setup(u, argv, argc, dbbuf);
    for (int i = 0; i < n; i++)
        redisAsyncCommandArgv(ac, NULL, NULL, argc[i], argv[i], NULL);
    return ac;
}

static void schedule(struct store *st, struct event *timer, int *backoff)
{
    struct timeval tv;

    if (st->closing)
        return;
    tv.tv_sec = *backoff / 1000;
    tv.tv_usec = (*backoff % 1000) * 1000;
    evtimer_add(timer, &tv);
    *backoff = *backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : *backoff * 2;
}

/* --- the command connection --- */

static void cmd_connected(const redisAsyncContext *ac, int status)
{
    struct store *st = ac->data;

    if (ac != st->cmd)
        return;
    st->cmd_since = 0;
    if (status != REDIS_OK) {
        log_warn("redis: cannot connect: %s", ac->errstr);
        st->cmd = NULL;
        schedule(st, st->cmd_timer, &st->cmd_backoff);
        return;
    }
    log_info("redis: connected");
    st->cmd_up = true;
    st->cmd_backoff = BACKOFF_MIN_MS;
    if (st->fill_wanted && st->sub_up)
        fill_all(st);
}

static void cmd_disconnected(const redisAsyncContext *ac, int status)
{
    struct store *st = ac->data;

    if (ac != st->cmd) /* dropped by the watchdog, which reconnects */
        return;
    st->cmd = NULL;
    st->cmd_up = false;
    if (st->closing)
        return;
    log_warn("redis: connection lost%s%s", ac->errstr[0] ? ": " : "",
             ac->errstr);
    schedule(st, st->cmd_timer, &st->cmd_backoff);
}

static void cmd_connect(struct store *st)
{
    if (st->closing || st->cmd != NULL)
        return;
    st->cmd = connect_one(st, "command");
    if (st->cmd == NULL) {
        schedule(st, st->cmd_timer, &st->cmd_backoff);
        return;
    }
    st->cmd_since = mono_ms();
    redisAsyncSetConnectCallback(st->cmd, cmd_connected);
    redisAsyncSetDisconnectCallback(st->cmd, cmd_disconnected);
}

static void cmd_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    cmd_connect(arg);
}

/* Drops the command connection: every command in flight on it is answered
 * with no reply (its outcome unknown), then we reconnect with backoff. */
static void cmd_reset(struct store *st)
{
    redisAsyncContext *ac = st->cmd;

    st->cmd = NULL;
    st->cmd_up = false;
    st->cmd_since = 0;
    redisAsyncFree(ac);
    schedule(st, st->cmd_timer, &st->cmd_backoff);
}

static void on_pending(redisAsyncContext *ac, void *reply, void *priv)
{
    struct pending *p = priv;

    TAILQ_REMOVE(&p->st->pending, p, link);
    if (p->fn != NULL)
        p->fn(ac, reply, p->priv);
    free(p);
}

/* Sends a command on the command connection; `fn` (which may be NULL) gets
 * the reply, or NULL when the connection is lost or the command times out.
 * Returns -1, without calling fn, when the command could not be sent. */
static int cmd_send(struct store *st, redisCallbackFn *fn, void *priv, int argc,
                    const char **argv, const size_t *lens)
{
    struct pending *p;

    if (!st->cmd_up || st->cmd == NULL)
        return -1;
    p = xmalloc(sizeof(*p));
    p->st = st;
    p->sent_ms = mono_ms();
    p->fn = fn;
    p->priv = priv;
    if (redisAsyncCommandArgv(st->cmd, on_pending, p, argc, argv, lens) !=
        REDIS_OK) {
        free(p);
        return -1;
    }
    TAILQ_INSERT_TAIL(&st->pending, p, link);
    return 0;
}

static int send_argv(struct store *st, redisCallbackFn *fn, struct call *c,
                     int argc, const char **argv, const size_t *lens)
{
    return cmd_send(st, fn, c, argc, argv, lens);
}

/* --- the bus subscription --- */

static void on_bus_message(redisAsyncContext *ac, void *reply, void *priv)
{
    struct store *st = ac->data;
    redisReply *r = reply;
    struct chat_event ev;
    struct bus_event *e;
    const redisReply *chan, *payload;

    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 3)
        return;
    if (strcmp(r->element[0]->str, "psubscribe") == 0) {
        st->sub_since = 0;
        if (st->sub_up) /* the answer to the watchdog's probe */
            return;
        log_info("redis: subscribed to %s", KEYS_BUS_PATTERN);
        st->sub_up = true;
        st->sub_backoff = BACKOFF_MIN_MS;
        st->fill_wanted = true;
        if (st->cmd_up)
            fill_all(st);
        return;
    }
    if (strcmp(r->element[0]->str, "pmessage") != 0 || r->elements != 4)
        return;
    chan = r->element[2];
    payload = r->element[3];
    if (event_from_json(payload->str, payload->len, &ev) != 0) {
        log_warn("bus: dropped a malformed event on %s", chan->str);
        return;
    }
    if (chan->len <= strlen(KEYS_BUS_PREFIX) ||
        strcmp(chan->str + strlen(KEYS_BUS_PREFIX), ev.room) != 0) {
        log_warn("bus: event for room %s on channel %s dropped", ev.room,
                 chan->str);
        event_clear(&ev);
        return;
    }
    e = bus_event_new(&ev);
    bus_publish(st->bus, e);
    bus_event_unref(e);
}

static void sub_connected(const redisAsyncContext *ac, int status)
{
    struct store *st = ac->data;

    if (ac != st->sub)
        return;
    if (status != REDIS_OK) {
        st->sub = NULL;
        st->sub_since = 0;
        schedule(st, st->sub_timer, &st->sub_backoff);
    }
}

/* What is published from now until we are subscribed again goes by
 * unseen: gap filling reads it from the streams then. */
static void sub_lost(struct store *st)
{
    st->sub = NULL;
    st->sub_up = false;
    st->sub_since = 0;
    bus_forget_latest(st->bus);
}

static void sub_disconnected(const redisAsyncContext *ac, int status)
{
    struct store *st = ac->data;

    if (ac != st->sub)
        return;
    sub_lost(st);
    if (st->closing)
        return;
    log_warn("redis: subscription lost; resubscribing");
    schedule(st, st->sub_timer, &st->sub_backoff);
}

static void sub_subscribe(struct store *st)
{
    redisAsyncCommand(st->sub, on_bus_message, NULL, "PSUBSCRIBE %s",
                      KEYS_BUS_PATTERN);
    st->sub_since = mono_ms();
}

static void sub_connect(struct store *st)
{
    if (st->closing || st->sub != NULL)
        return;
    st->sub = connect_one(st, "subscription");
    if (st->sub == NULL) {
        schedule(st, st->sub_timer, &st->sub_backoff);
        return;
    }
    redisAsyncSetConnectCallback(st->sub, sub_connected);
    redisAsyncSetDisconnectCallback(st->sub, sub_disconnected);
    sub_subscribe(st);
}

static void sub_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    sub_connect(arg);
}

/* --- the watchdog --- */

static void watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
    struct store *st = arg;
    int64_t now = mono_ms(), limit = st->cfg->redis_timeout_ms;
    struct pending *oldest = TAILQ_FIRST(&st->pending);

    if (st->cmd != NULL &&
        ((oldest != NULL && now - oldest->sent_ms >= limit) ||
         (st->cmd_since != 0 && now - st->cmd_since >= limit))) {
        log_warn("redis: no answer in %lld ms; dropping the connection and "
                 "failing what was sent on it as unknown",
                 (long long)limit);
        cmd_reset(st);
    }
    if (st->sub != NULL && st->sub_since != 0 && now - st->sub_since >= limit) {
        redisAsyncContext *ac = st->sub;

        log_warn("redis: the subscription did not answer in %lld ms; "
                 "resubscribing",
                 (long long)limit);
        sub_lost(st);
        redisAsyncFree(ac);
        schedule(st, st->sub_timer, &st->sub_backoff);
    } else if (st->sub_up && st->sub_since == 0 &&
               now - st->sub_probed >= limit) {
        /* Subscribing again to what we follow is answered in order behind
         * any message: a live subscription answers it at once. */
        sub_subscribe(st);
        st->sub_probed = st->sub_since;
    }
}

/* --- gap filling: what was published while we were not subscribed --- */

static void fill_room(struct store *st, const char *room,
                      const struct streamid *after);

static void fill_page(int status, struct chat_event *evs, size_t n, void *arg)
{
    struct call *c = arg;
    struct store *st = c->st;

    if (status != 0) {
        /* the room stays filling (live events held) until a retry works */
        struct timeval tv = {1, 0};
        st->fill_wanted = true;
        evtimer_add(st->fill_timer, &tv);
        call_free(c);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct bus_event *e = bus_event_new(&evs[i]);
        bus_fill_publish(st->bus, e);
        bus_event_unref(e);
    }
    if (n == FILL_PAGE)
        fill_room(st, c->room, &evs[n - 1].sid);
    else
        bus_fill_end(st->bus, c->room);
    call_free(c);
}

static void fill_room(struct store *st, const char *room,
                      const struct streamid *after)
{
    struct call *c = call_new(st, NULL);

    c->arg = c;
    strcpy(c->room, room);
    if (store_after(st, room, after, FILL_PAGE, fill_page, c) != 0)
        fill_page(-1, NULL, 0, c);
}

/* The first page of a fill comes with what Redis says of the stream: the
 * room's subscribers learn of a gap or a reset (Redis flushed, or back from
 * an older file) before the page. A reset moves a subscriber back to the
 * room's newest id: then the fill reads again from there. */
static void fill_checked(int status, struct chat_event *evs, size_t n,
                         const struct streamid_log *log, void *arg)
{
    struct call *c = arg;
    struct store *st = c->st;
    struct streamid from;

    if (status != 0) {
        fill_page(-1, NULL, 0, c);
        return;
    }
    bus_room_judge(st->bus, c->room, log);
    if (bus_room_oldest(st->bus, c->room, &from) &&
        streamid_cmp(&from, &c->after) < 0) {
        fill_room(st, c->room, &from);
        call_free(c);
        return;
    }
    fill_page(0, evs, n, c);
}

static void fill_one(const char *room, void *arg)
{
    struct store *st = arg;
    struct call *c;

    c = call_new(st, NULL);
    c->arg = c;
    strcpy(c->room, room);
    if (!bus_room_oldest(st->bus, room, &c->after)) {
        call_free(c);
        return;
    }
    bus_fill_begin(st->bus, room);
    if (store_resume(st, room, &c->after, FILL_PAGE, fill_checked, c) != 0)
        fill_page(-1, NULL, 0, c);
}

static void fill_all(struct store *st)
{
    st->fill_wanted = false;
    bus_foreach_room(st->bus, fill_one, st);
}

static void fill_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct store *st = arg;

    if (st->fill_wanted && st->cmd_up && st->sub_up)
        fill_all(st);
}

/* --- life cycle --- */

struct store *store_new(struct event_base *base, const struct config *cfg,
                        struct bus *bus)
{
    struct store *st = xcalloc(1, sizeof(*st));
    char err[256];

    st->base = base;
    st->cfg = cfg;
    st->bus = bus;
    if (redisurl_parse(cfg->redis_url, &st->url, err, sizeof(err)) != 0) {
        log_error("%s", err);
        store_free(st);
        return NULL;
    }
    st->cmd_backoff = st->sub_backoff = BACKOFF_MIN_MS;
    st->cmd_timer = evtimer_new(base, cmd_timer_cb, st);
    st->sub_timer = evtimer_new(base, sub_timer_cb, st);
    st->fill_timer = evtimer_new(base, fill_timer_cb, st);
    TAILQ_INIT(&st->pending);
    {
        int ms = cfg->redis_timeout_ms / 4;
        struct timeval tv;

        ms = ms < 10 ? 10 : ms > WATCH_MAX_MS ? WATCH_MAX_MS : ms;
        tv.tv_sec = 0;
        tv.tv_usec = ms * 1000;
        st->watchdog = event_new(base, -1, EV_PERSIST, watchdog_cb, st);
        event_add(st->watchdog, &tv);
    }
    keys_init();
    cmd_connect(st);
    sub_connect(st);
    return st;
}

void store_drain(struct store *st)
{
    int64_t until = mono_ms() + st->cfg->redis_timeout_ms;

    /* every reply hiredis still waits for, fire-and-forget ones too; the
     * watchdog wakes the loop at least every WATCH_MAX_MS */
    while (st->cmd_up && st->cmd != NULL && st->cmd->replies.head != NULL &&
           mono_ms() < until)
        event_base_loop(st->base, EVLOOP_ONCE);
}

void store_free(struct store *st)
{
    if (st == NULL)
        return;
    st->closing = true;
    if (st->cmd)
        redisAsyncDisconnect(st->cmd);
    if (st->sub)
        redisAsyncDisconnect(st->sub);
    if (st->cmd_timer)
        event_free(st->cmd_timer);
    if (st->sub_timer)
        event_free(st->sub_timer);
    if (st->fill_timer)
        event_free(st->fill_timer);
    if (st->watchdog)
        event_free(st->watchdog);
    tdestroy(st->auth_cache, free);
    redisurl_free(&st->url);
    free(st);
}

bool store_ready(const struct store *st)
{
    return st->cmd_up;
}

/* --- commands --- */

static void on_append(redisAsyncContext *ac, void *reply, void *priv)
{
    struct call *c = priv;
    redisReply *r = reply;
    struct reply_appended a;
    enum api_fault fault;

    if (r != NULL && r->type == REDIS_REPLY_ERROR &&
        strncmp(r->str, "NOSCRIPT", 8) == 0 && c->argv[0][4] == 'S') {
        /* the script cache was flushed (restart): send the body once */
        c->argc = keys_append_argv(c->argv, c->lens, c->bufs, 0, c->room,
                                   c->from, c->text, c->text_len, c->idem);
        if (send_argv(c->st, on_append, c, c->argc, c->argv, c->lens) == 0)
            return;
        /* lost between the two: the EVALSHA did nothing, the EVAL went
         * nowhere */
        c->cb.append(API_FAULT_DOWN, NULL, c->arg);
        call_free(c);
        return;
    }
    if ((fault = reply_fault(r)) != API_FAULT_NONE) {
        if (r != NULL)
            log_warn("redis: append in %s: %s", c->room, r->str);
        c->cb.append(fault, NULL, c->arg);
    } else if (reply_appended(r, &a) != 0) {
        c->cb.append(API_FAULT_ERROR, NULL, c->arg);
    } else {
        c->cb.append(0, &a, c->arg);
    }
    call_free(c);
}

int store_append(struct store *st, const char *room, const char *from,
                 const char *text, size_t len, const char *key,
                 store_append_cb cb, void *arg)
{
    struct call *c = call_new(st, arg);

    c->cb.append = cb;
    strcpy(c->room, room);
    strcpy(c->from, from);
    snprintf(c->idem, sizeof(c->idem), "%s", key != NULL ? key : "");
    c->text = xmalloc(len + 1);
    memcpy(c->text, text, len);
    c->text[len] = '\0';
    c->text_len = len;
    c->argc = keys_append_argv(c->argv, c->lens, c->bufs, 1, c->room, c->from,
                               c->text, len, c->idem);
    if (send_argv(st, on_append, c, c->argc, c->argv, c->lens) != 0) {
        call_free(c);
        return -1;
    }
    return 0;
}

static void on_range(redisAsyncContext *ac, void *reply, void *priv)
{
    struct call *c = priv;
    redisReply *r = reply;
    struct chat_event *evs = NULL;
    size_t n = 0;

    if (reply_failed(r, "range") || reply_events(r, c->room, &evs, &n) != 0) {
        c->cb.events(-1, NULL, 0, c->arg);
    } else {
        if (c->reverse) {
            for (size_t i = 0; i < n / 2; i++) {
                struct chat_event t = evs[i];
                evs[i] = evs[n - 1 - i];
                evs[n - 1 - i] = t;
            }
        }
        c->cb.events(0, evs, n, c->arg);
    }
    event_free_array(evs, n);
    call_free(c);
}

static int range(struct store *st, const char *cmd, const char *room,
                 const char *start, const char *end, int limit,
                 store_events_cb cb, void *arg)
{
    struct call *c = call_new(st, arg);
    char key[KEYS_MAX], count[16];
    const char *argv[6];

    c->cb.events = cb;
    c->reverse = strcmp(cmd, "XREVRANGE") == 0;
    strcpy(c->room, room);
    snprintf(count, sizeof(count), "%d", limit);
    argv[0] = cmd;
    argv[1] = keys_room_log(key, room);
    argv[2] = start;
    argv[3] = end;
    argv[4] = "COUNT";
    argv[5] = count;
    if (send_argv(st, on_range, c, 6, argv, NULL) != 0) {
        call_free(c);
        return -1;
    }
    return 0;
}

int store_after(struct store *st, const char *room,
                const struct streamid *after, int limit, store_events_cb cb,
                void *arg)
{
    char id[STREAMID_STRLEN + 1];

    streamid_format_after(after, id);
    return range(st, "XRANGE", room, id, "+", limit, cb, arg);
}

int store_before(struct store *st, const char *room,
                 const struct streamid *before, int limit, store_events_cb cb,
                 void *arg)
{
    char id[STREAMID_STRLEN + 1] = "+";

    if (before != NULL) {
        id[0] = '(';
        streamid_format(before, id + 1);
    }
    return range(st, "XREVRANGE", room, id, "-", limit, cb, arg);
}

static void on_resume(redisAsyncContext *ac, void *reply, void *priv)
{
    struct call *c = priv;
    redisReply *r = reply;
    struct streamid_log log;
    struct chat_event *evs = NULL;
    size_t n = 0;

    if (reply_failed(r, "resume") ||
        reply_resume(r, c->room, &log, &evs, &n) != 0)
        c->cb.resume(-1, NULL, 0, NULL, c->arg);
    else
        c->cb.resume(0, evs, n, &log, c->arg);
    event_free_array(evs, n);
    call_free(c);
}

int store_resume(struct store *st, const char *room,
                 const struct streamid *after, int limit, store_resume_cb cb,
                 void *arg)
{
    static const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"};
    struct call *c;
    struct keys_resume k;

    if (!st->cmd_up || st->cmd == NULL)
        return -1;
    c = call_new(st, arg);
    c->cb.resume = cb;
    strcpy(c->room, room);
    keys_resume_init(&k, room, after, limit);
    /* one write, one round trip: only EXEC's reply is read */
    redisAsyncCommandArgv(st->cmd, NULL, NULL, 1, multi, NULL);
    redisAsyncCommandArgv(st->cmd, NULL, NULL, 3, k.xinfo, NULL);
    redisAsyncCommandArgv(st->cmd, NULL, NULL, 6, k.xrange, NULL);
    if (send_argv(st, on_resume, c, 1, exec, NULL) != 0) {
        call_free(c);
        return -1;
    }
    return 0;
}

static int auth_cmp(const void *a, const void *b)
{
    return strcmp(((const struct auth_entry *)a)->token,
                  ((const struct auth_entry *)b)->token);
}

/* Believes `token` is `user`'s from now for token_cache_ttl. */
static void auth_remember(struct store *st, const char *token, const char *user)
{
    struct auth_entry *e = xmalloc(sizeof(*e)), *old;

    strcpy(e->token, token);
    strcpy(e->user, user);
    e->checked_ms = mono_ms();
    if (st->auth_cached >= AUTH_CACHE_MAX) {
        tdestroy(st->auth_cache, free);
        st->auth_cache = NULL;
        st->auth_cached = 0;
    }
    old = *(struct auth_entry **)tsearch(e, &st->auth_cache, auth_cmp);
    if (old != e) {
        *old = *e;
        free(e);
    } else {
        st->auth_cached++;
    }
}

static void auth_forget(struct store *st, const char *token)
{
    struct auth_entry key, *e;
    void *node;

    strcpy(key.token, token);
    if ((node = tfind(&key, &st->auth_cache, auth_cmp)) == NULL)
        return;
    e = *(struct auth_entry **)node;
    tdelete(&key, &st->auth_cache, auth_cmp);
    free(e);
    st->auth_cached--;
}

/* The second step: the user still exists and this is still its token (a
 * user deleted, or deleted and registered again, leaves the old token's
 * ct:token key pointing at the name). */
static void on_auth_user(redisAsyncContext *ac, void *reply, void *priv)
{
    struct call *c = priv;
    redisReply *r = reply;

    if (reply_failed(r, "auth")) {
        c->cb.user(-1, NULL, c->arg);
    } else if (r->type != REDIS_REPLY_STRING || strcmp(r->str, c->key) != 0) {
        auth_forget(c->st, c->token);
        c->cb.user(0, NULL, c->arg);
    } else {
        auth_remember(c->st, c->token, c->from);
        c->cb.user(0, c->from, c->arg);
    }
    call_free(c);
}

static void on_auth(redisAsyncContext *ac, void *reply, void *priv)
{
    struct call *c = priv;
    redisReply *r = reply;
    char k[KEYS_MAX];
    const char *argv[3] = {"HGET", k, "token_sha256"};

    if (reply_failed(r, "auth")) {
        c->cb.user(-1, NULL, c->arg);
    } else if (r->type != REDIS_REPLY_STRING ||
               !names_user_valid(r->str, r->len)) {
        auth_forget(c->st, c->token);
        c->cb.user(0, NULL, c->arg);
    } else {
        strcpy(c->from, r->str);
        keys_user(k, c->from);
        if (send_argv(c->st, on_auth_user, c, 3, argv, NULL) == 0)
            return;
        c->cb.user(-1, NULL, c->arg);
    }
    call_free(c);
}

int store_auth(struct store *st, const char *token, store_user_cb cb, void *arg)
{
    struct auth_entry key, *e;
    void *node;
    struct call *c;
    char k[KEYS_MAX];

    if (!auth_token_wellformed(token, strlen(token))) {
        cb(0, NULL, arg);
        return 0;
    }
    strcpy(key.token, token);
    if ((node = tfind(&key, &st->auth_cache, auth_cmp)) != NULL) {
        e = *(struct auth_entry **)node;
        if (mono_ms() - e->checked_ms < st->cfg->token_cache_ttl * 1000LL) {
            cb(0, e->user, arg);
            return 0;
        }
    }
    c = call_new(st, arg);
    c->cb.user = cb;
    strcpy(c->token, token);
    auth_hash(token, strlen(token), c->key);
    keys_token(k, c->key);
    {
        const char *argv[2] = {"GET", k};
        if (send_argv(st, on_auth, c, 2, argv, NULL) != 0) {
            call_free(c);
            return -1;
        }
    }
    return 0;
}

static void on_register(redisAsyncContext *ac, void *reply, void *priv)
{
    struct call *c = priv;
    redisReply *r = reply;

    if (r != NULL && r->type == REDIS_REPLY_ERROR &&
        strncmp(r->str, "NOSCRIPT", 8) == 0 && c->argv[0][4] == 'S') {
        c->argv[0] = "EVAL";
        c->argv[1] = keys_register_script.body;
        c->lens[0] = 4;
        c->lens[1] = strlen(c->argv[1]);
        if (send_argv(c->st, on_register, c, c->argc, c->argv, c->lens) == 0)
            return;
        r = NULL;
    }
    if (reply_failed(r, "register") || r->type != REDIS_REPLY_INTEGER)
        c->cb.reg(-1, false, c->arg);
    else
        c->cb.reg(0, r->integer == 1, c->arg);
    call_free(c);
}

int store_register(struct store *st, const char *name, const char *token,
                   store_register_cb cb, void *arg)
{
    struct call *c = call_new(st, arg);
    char *hash = c->key, *created = c->created;
    char *ukey = c->bufs, *tkey = c->bufs + KEYS_MAX;

    c->cb.reg = cb;
    strcpy(c->room, name); /* the name lives as long as the call */
    auth_hash(token, strlen(token), hash);
    snprintf(created, sizeof(c->created), "%lld", (long long)event_now_ms());
    keys_user(ukey, name);
    keys_token(tkey, hash);
    c->argc = 8;
    c->argv[0] = "EVALSHA";
    c->argv[1] = keys_register_script.sha;
    c->argv[2] = "2";
    c->argv[3] = ukey;
    c->argv[4] = tkey;
    c->argv[5] = hash;
    c->argv[6] = created;
    c->argv[7] = c->room;
    for (int i = 0; i < c->argc; i++)
        c->lens[i] = strlen(c->argv[i]);
    if (send_argv(st, on_register, c, c->argc, c->argv, c->lens) != 0) {
        call_free(c);
        return -1;
    }
    return 0;
}

static void on_rooms(redisAsyncContext *ac, void *reply, void *priv)
{
    struct call *c = priv;
    redisReply *r = reply;

    if (reply_failed(r, "rooms") || r->type != REDIS_REPLY_ARRAY) {
        c->cb.rooms(-1, NULL, NULL, 0, c->arg);
    } else {
        size_t n = r->elements / 2;
        const char **names = xcalloc(n + 1, sizeof(*names));
        long long *ts = xcalloc(n + 1, sizeof(*ts));
        for (size_t i = 0; i < n; i++) {
            names[i] = r->element[2 * i]->str;
            ts[i] = strtoll(r->element[2 * i + 1]->str, NULL, 10);
        }
        c->cb.rooms(0, names, ts, n, c->arg);
        free(names);
        free(ts);
    }
    call_free(c);
}

int store_rooms(struct store *st, int n, long long after_ts,
                const char *after_name, store_rooms_cb cb, void *arg)
{
    struct call *c = call_new(st, arg);
    struct keys_rooms k;

    c->cb.rooms = cb;
    keys_rooms_init(&k, n, after_ts, after_name);
    if (send_argv(st, on_rooms, c, KEYS_ROOMS_ARGC, k.argv, NULL) != 0) {
        call_free(c);
        return -1;
    }
    return 0;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void on_online(redisAsyncContext *ac, void *reply, void *priv)
{
    struct call *c = priv;
    redisReply *r = reply;

    if (reply_failed(r, "presence") || r->type != REDIS_REPLY_ARRAY) {
        c->cb.online(-1, NULL, 0, c->arg);
    } else {
        const char **names = xcalloc(r->elements + 1, sizeof(*names));
        for (size_t i = 0; i < r->elements; i++)
            names[i] = r->element[i]->str;
        /* by name, as crosstalk-fcgi and presence events list them */
        qsort(names, r->elements, sizeof(*names), name_cmp);
        c->cb.online(0, names, r->elements, c->arg);
        free(names);
    }
    call_free(c);
}

int store_online(struct store *st, const char *room, store_online_cb cb,
                 void *arg)
{
    struct call *c = call_new(st, arg);
    char key[KEYS_MAX], now[24];
    const char *argv[4];

    c->cb.online = cb;
    snprintf(now, sizeof(now), "%lld", (long long)event_now_ms());
    argv[0] = "ZRANGEBYSCORE";
    argv[1] = keys_presence(key, room);
    argv[2] = now;
    argv[3] = "+inf";
    if (send_argv(st, on_online, c, 4, argv, NULL) != 0) {
        call_free(c);
        return -1;
    }
    return 0;
}

struct added {
    store_added_cb cb;
    void *arg;
};

static void on_added(redisAsyncContext *ac, void *reply, void *priv)
{
    struct added *a = priv;
    redisReply *r = reply;

    if (r == NULL || r->type != REDIS_REPLY_INTEGER)
        a->cb(-1, false, a->arg);
    else
        a->cb(0, r->integer == 1, a->arg);
    free(a);
}

int store_presence_add(struct store *st, const char *room, const char *user,
                       int64_t expiry_ms, store_added_cb cb, void *arg)
{
    char key[KEYS_MAX], now[24], expiry[24];
    const char *argv[4];
    struct added *a;

    if (!st->cmd_up)
        return -1;
    snprintf(now, sizeof(now), "%lld", (long long)event_now_ms());
    snprintf(expiry, sizeof(expiry), "%lld", (long long)expiry_ms);
    keys_presence(key, room);
    /* forget the expired first, so that ZADD tells who is new */
    argv[0] = "ZREMRANGEBYSCORE";
    argv[1] = key;
    argv[2] = "-inf";
    argv[3] = now;
    cmd_send(st, NULL, NULL, 4, argv, NULL);
    argv[0] = "ZADD";
    argv[2] = expiry;
    argv[3] = user;
    a = xmalloc(sizeof(*a));
    a->cb = cb;
    a->arg = arg;
    if (cmd_send(st, on_added, a, 4, argv, NULL) != 0) {
        free(a);
        return -1;
    }
    return 0;
}

void store_presence_remove(struct store *st, const char *room, const char *user)
{
    char key[KEYS_MAX];
    const char *argv[3];

    if (!st->cmd_up)
        return;
    argv[0] = "ZREM";
    argv[1] = keys_presence(key, room);
    argv[2] = user;
    cmd_send(st, NULL, NULL, 3, argv, NULL);
}

int store_publish(struct store *st, const struct chat_event *ev)
{
    char chan[KEYS_MAX];
    size_t len;
    char *json;
    const char *argv[3];
    size_t lens[3];
    int rc;

    if (!st->cmd_up)
        return -1;
    json = event_to_json(ev, &len);
    argv[0] = "PUBLISH";
    argv[1] = keys_bus(chan, ev->room);
    argv[2] = json;
    lens[0] = 7;
    lens[1] = strlen(chan);
    lens[2] = len;
    rc = cmd_send(st, NULL, NULL, 3, argv, lens);
    free(json);
    return rc;
}

static void on_health(redisAsyncContext *ac, void *reply, void *priv)
{
    struct call *c = priv;
    redisReply *r = reply;

    if (r != NULL && r->type == REDIS_REPLY_ERROR)
        log_warn("redis: health probe: %s", r->str);
    c->cb.status(reply_fault(r), c->arg);
    call_free(c);
}

int store_health(struct store *st, store_status_cb cb, void *arg)
{
    struct call *c = call_new(st, arg);
    const char *argv[5] = {"SET", KEYS_HEALTH, "1", "PX", "10000"};

    c->cb.status = cb;
    if (send_argv(st, on_health, c, 5, argv, NULL) != 0) {
        call_free(c);
        return -1;
    }
    return 0;
}

/* --- the counters records of every process --- */

void store_stats_write(struct store *st, const char *id, const char *json,
                       size_t len, int ttl_ms)
{
    char key[STATREC_KEY_MAX], px[24];
    const char *set[5] = {"SET", statrec_key(key, id), json, "PX", px};
    size_t lens[5];
    const char *sadd[3] = {"SADD", STATREC_INDEX, id};

    if (!st->cmd_up)
        return;
    snprintf(px, sizeof(px), "%d", ttl_ms);
    for (int i = 0; i < 5; i++)
        lens[i] = strlen(set[i]);
    lens[2] = len;
    redisAsyncCommandArgv(st->cmd, NULL, NULL, 5, set, lens);
    redisAsyncCommandArgv(st->cmd, NULL, NULL, 3, sadd, NULL);
}

struct strings_call {
    store_strings_cb cb;
    void *arg;
};

static void on_stats_read(redisAsyncContext *ac, void *reply, void *priv)
{
    struct strings_call *c = priv;
    redisReply *r = reply;

    if (reply_failed(r, "stats") || r->type != REDIS_REPLY_ARRAY) {
        c->cb(-1, NULL, NULL, 0, c->arg);
    } else {
        const char **v = xcalloc(r->elements + 1, sizeof(*v));
        size_t *lens = xcalloc(r->elements + 1, sizeof(*lens));
        size_t n = 0;

        for (size_t i = 0; i < r->elements; i++) {
            if (r->element[i]->type != REDIS_REPLY_STRING)
                continue;
            v[n] = r->element[i]->str;
            lens[n++] = r->element[i]->len;
        }
        c->cb(0, v, lens, n, c->arg);
        free(v);
        free(lens);
    }
    free(c);
}

int store_stats_read(struct store *st, store_strings_cb cb, void *arg)
{
    struct strings_call *c = xcalloc(1, sizeof(*c));
    const char *argv[] = {"EVAL", STATREC_READ_SCRIPT, "1", STATREC_INDEX,
                          STATREC_PREFIX};

    c->cb = cb;
    c->arg = arg;
    if (!st->cmd_up || st->cmd == NULL ||
        redisAsyncCommandArgv(st->cmd, on_stats_read, c, 5, argv, NULL) !=
            REDIS_OK) {
        free(c);
        return -1;
    }
    return 0;
}
