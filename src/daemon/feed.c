/* feed.c - the Redis bus subscription (PSUBSCRIBE ct:bus:*) into the bus,
 * with resubscription, its watchdog and the gap fill from the streams */
#include "feed.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "bus.h"
#include "config.h"
#include "keys.h"
#include "log.h"
#include "names.h"
#include "redis.h"
#include "store.h"
#include "xmalloc.h"

#define FILL_PAGE 500

struct feed {
    struct redis *redis;
    struct store *store;
    struct bus *bus;
    const struct config *cfg;
    redisAsyncContext *sub; /* the subscription, reconnecting */
    bool sub_up;
    int sub_backoff;
    struct event *sub_timer, *fill_timer;
    bool fill_wanted; /* rooms must be filled once both are up */
    bool closing;
    int64_t sub_since;  /* PSUBSCRIBE sent and not answered; 0 when none */
    int64_t sub_probed; /* when the last probe of the subscription went */
};

/* One room being filled. */
struct fill {
    struct feed *f;
    char room[NAME_ROOM_MAX + 1];
    struct streamid after; /* where the fill reads from */
};

static void fill_all(struct feed *f);

static void schedule(struct feed *f)
{
    if (!f->closing)
        redis_retry(f->sub_timer, &f->sub_backoff);
}

static void on_bus_message(redisAsyncContext *ac, void *reply, void *priv)
{
    struct feed *f = ac->data;
    redisReply *r = reply;
    struct chat_event ev;
    struct bus_event *e;
    const redisReply *chan, *payload;
    char room[NAME_ROOM_MAX + 1];

    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 3)
        return;
    if (strcmp(r->element[0]->str, "psubscribe") == 0) {
        f->sub_since = 0;
        if (f->sub_up) /* the answer to the watchdog's probe */
            return;
        log_info("redis: subscribed to %s", KEYS_BUS_PATTERN);
        f->sub_up = true;
        f->sub_backoff = REDIS_BACKOFF_MIN_MS;
        f->fill_wanted = true;
        if (redis_up(f->redis))
            fill_all(f);
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
    if (keys_bus_room(chan->str, room) == NULL || strcmp(room, ev.room) != 0) {
        log_warn("bus: event for room %s on channel %s dropped", ev.room,
                 chan->str);
        event_clear(&ev);
        return;
    }
    e = bus_event_new(&ev);
    bus_publish(f->bus, e);
    bus_event_unref(e);
}

static void sub_connected(const redisAsyncContext *ac, int status)
{
    struct feed *f = ac->data;

    if (ac != f->sub)
        return;
    if (status != REDIS_OK) {
        f->sub = NULL;
        f->sub_since = 0;
        schedule(f);
    }
}

/* What is published from now until we are subscribed again goes by
 * unseen: gap filling reads it from the streams then. */
static void sub_lost(struct feed *f)
{
    f->sub = NULL;
    f->sub_up = false;
    f->sub_since = 0;
    bus_forget_latest(f->bus);
}

static void sub_disconnected(const redisAsyncContext *ac, int status)
{
    struct feed *f = ac->data;

    if (ac != f->sub)
        return;
    sub_lost(f);
    if (f->closing)
        return;
    log_warn("redis: subscription lost; resubscribing");
    schedule(f);
}

static void sub_subscribe(struct feed *f)
{
    redisAsyncCommand(f->sub, on_bus_message, NULL, "PSUBSCRIBE %s",
                      KEYS_BUS_PATTERN);
    f->sub_since = redis_mono_ms();
}

static void sub_connect(struct feed *f)
{
    if (f->closing || f->sub != NULL)
        return;
    f->sub = redis_connect(f->redis, "subscription", f);
    if (f->sub == NULL) {
        schedule(f);
        return;
    }
    redisAsyncSetConnectCallback(f->sub, sub_connected);
    redisAsyncSetDisconnectCallback(f->sub, sub_disconnected);
    sub_subscribe(f);
}

static void sub_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    sub_connect(arg);
}

/* The subscription's part of the watchdog: a PSUBSCRIBE unanswered for
 * redis_timeout_ms drops the connection. */
static void feed_tick(void *arg)
{
    struct feed *f = arg;
    int64_t now = redis_mono_ms(), limit = f->cfg->redis_timeout_ms;

    if (f->sub != NULL && f->sub_since != 0 && now - f->sub_since >= limit) {
        redisAsyncContext *ac = f->sub;

        log_warn("redis: the subscription did not answer in %lld ms; "
                 "resubscribing",
                 (long long)limit);
        sub_lost(f);
        redisAsyncFree(ac);
        schedule(f);
    } else if (f->sub_up && f->sub_since == 0 && now - f->sub_probed >= limit) {
        /* Subscribing again to what we follow is answered in order behind
         * any message: a live subscription answers it at once. */
        sub_subscribe(f);
        f->sub_probed = f->sub_since;
    }
}

/* --- gap filling: what was published while we were not subscribed --- */

static void fill_room(struct feed *f, const char *room,
                      const struct streamid *after);

static struct fill *fill_new(struct feed *f, const char *room)
{
    struct fill *c = xcalloc(1, sizeof(*c));

    c->f = f;
    strcpy(c->room, room);
    return c;
}

static void fill_page(int status, struct chat_event *evs, size_t n, void *arg)
{
    struct fill *c = arg;
    struct feed *f = c->f;

    if (status != 0) {
        /* the room stays filling (live events held) until a retry works */
        struct timeval tv = {1, 0};
        f->fill_wanted = true;
        evtimer_add(f->fill_timer, &tv);
        free(c);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct bus_event *e = bus_event_new(&evs[i]);
        bus_fill_publish(f->bus, e);
        bus_event_unref(e);
    }
    if (n == FILL_PAGE)
        fill_room(f, c->room, &evs[n - 1].sid);
    else
        bus_fill_end(f->bus, c->room);
    free(c);
}

static void fill_room(struct feed *f, const char *room,
                      const struct streamid *after)
{
    struct fill *c = fill_new(f, room);

    if (store_after(f->store, room, after, FILL_PAGE, fill_page, c) != 0)
        fill_page(-1, NULL, 0, c);
}

/* The first page of a fill comes with what Redis says of the stream: the
 * room's subscribers learn of a gap or a reset (Redis flushed, or back from
 * an older file) before the page. A reset moves a subscriber back to the
 * room's newest id: then the fill reads again from there. */
static void fill_checked(int status, struct chat_event *evs, size_t n,
                         const struct streamid_log *log, void *arg)
{
    struct fill *c = arg;
    struct feed *f = c->f;
    struct streamid from;

    if (status != 0) {
        fill_page(-1, NULL, 0, c);
        return;
    }
    bus_room_judge(f->bus, c->room, log);
    if (bus_room_oldest(f->bus, c->room, &from) &&
        streamid_cmp(&from, &c->after) < 0) {
        fill_room(f, c->room, &from);
        free(c);
        return;
    }
    fill_page(0, evs, n, c);
}

static void fill_one(const char *room, void *arg)
{
    struct feed *f = arg;
    struct fill *c = fill_new(f, room);

    if (!bus_room_oldest(f->bus, room, &c->after)) {
        free(c);
        return;
    }
    bus_fill_begin(f->bus, room);
    if (store_resume(f->store, room, &c->after, FILL_PAGE, fill_checked, c) !=
        0)
        fill_page(-1, NULL, 0, c);
}

static void fill_all(struct feed *f)
{
    f->fill_wanted = false;
    bus_foreach_room(f->bus, fill_one, f);
}

static void fill_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct feed *f = arg;

    if (f->fill_wanted && redis_up(f->redis) && f->sub_up)
        fill_all(f);
}

/* The command connection is up (again). */
static void feed_up(void *arg)
{
    struct feed *f = arg;

    if (f->fill_wanted && f->sub_up)
        fill_all(f);
}

struct feed *feed_new(struct event_base *base, struct redis *r,
                      struct store *st, struct bus *bus,
                      const struct config *cfg)
{
    struct feed *f = xcalloc(1, sizeof(*f));

    f->redis = r;
    f->store = st;
    f->bus = bus;
    f->cfg = cfg;
    f->sub_backoff = REDIS_BACKOFF_MIN_MS;
    f->sub_timer = evtimer_new(base, sub_timer_cb, f);
    f->fill_timer = evtimer_new(base, fill_timer_cb, f);
    redis_watch(r, feed_up, feed_tick, f);
    sub_connect(f);
    return f;
}

void feed_free(struct feed *f)
{
    if (f == NULL)
        return;
    f->closing = true;
    if (f->sub)
        redisAsyncDisconnect(f->sub);
    if (f->sub_timer)
        event_free(f->sub_timer);
    if (f->fill_timer)
        event_free(f->fill_timer);
    free(f);
}
