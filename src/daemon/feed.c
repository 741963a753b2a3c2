/* feed.c - the Redis bus subscriptions into the bus: SUBSCRIBE ct:bus:{room}
 * for each room listened to, on a connection per shard, with
 * resubscription, its watchdog and the gap fill from the streams */
#include "feed.h"

#include <search.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "bus.h"
#include "config.h"
#include "keys.h"
#include "log.h"
#include "names.h"
#include "redis.h"
#include "shard.h"
#include "store.h"
#include "xmalloc.h"

#define FILL_PAGE 500
/* Room names are never empty, so this channel is no room's: each shard's
 * subscription holds it throughout, and the watchdog probes with it. */
#define PROBE_ROOM ""

struct feed;

/* One shard's subscription connection. */
struct shard {
    struct feed *f;
    int index;
    struct redis *redis;
    redisAsyncContext *sub; /* the subscription, reconnecting */
    bool up;                /* the probe channel is subscribed */
    int backoff;
    struct event *timer;
    int64_t since;  /* probe sent and not answered; 0 when none */
    int64_t probed; /* when the last probe went */
};

/* A room listened to, lingering, or with a SUBSCRIBE or UNSUBSCRIBE in
 * flight. One SUBSCRIBE is never sent while an UNSUBSCRIBE of the same
 * channel is (hiredis would forget the channel's callback). */
struct froom {
    char name[NAME_ROOM_MAX + 1];
    struct shard *sh;
    bool wanted;      /* listened to, or lingering */
    bool confirmed;   /* subscribed, its SUBSCRIBE answered */
    int subs, unsubs; /* SUBSCRIBE / UNSUBSCRIBE sent and not answered */
    bool filling;     /* a fill is in flight */
    bool refill;      /* another one is wanted after it */
    bool fill_wanted; /* a fill waits for Redis */
    bool held;        /* live events held for a fill that waits */
    struct event *linger;
    TAILQ_ENTRY(froom) link;
};

TAILQ_HEAD(froom_list, froom);

struct feed {
    struct event_base *base;
    struct store *store;
    struct bus *bus;
    const struct config *cfg;
    struct shard *shards;
    int nshards;
    void *tree; /* tsearch of struct froom, by name */
    struct froom_list rooms;
    struct event *fill_timer;
    bool closing;
};

/* One room being filled. */
struct fill {
    struct feed *f;
    char room[NAME_ROOM_MAX + 1];
    struct streamid after; /* where the fill reads from */
    uint64_t epoch;        /* the subscription it fills for */
};

static void room_fill(struct feed *f, struct froom *fr);
static void room_probe(struct feed *f, struct froom *fr);
static void room_subscribe(struct froom *fr);

/* --- the rooms --- */

static int froom_cmp(const void *a, const void *b)
{
    return strcmp(((const struct froom *)a)->name,
                  ((const struct froom *)b)->name);
}

static struct froom *room_find(struct feed *f, const char *name)
{
    struct froom key;
    void *node;

    if (strlen(name) > NAME_ROOM_MAX)
        return NULL;
    strcpy(key.name, name);
    node = tfind(&key, &f->tree, froom_cmp);
    return node ? *(struct froom **)node : NULL;
}

static void linger_cb(evutil_socket_t fd, short what, void *arg);

static struct froom *room_get(struct feed *f, const char *name)
{
    struct froom *fr = room_find(f, name);

    if (fr != NULL)
        return fr;
    fr = xcalloc(1, sizeof(*fr));
    strcpy(fr->name, name);
    fr->sh = &f->shards[shard_of_room(name, f->nshards)];
    fr->linger = evtimer_new(f->base, linger_cb, fr);
    if (tsearch(fr, &f->tree, froom_cmp) == NULL) {
        log_error("feed: out of memory");
        abort();
    }
    TAILQ_INSERT_TAIL(&f->rooms, fr, link);
    return fr;
}

static void room_free(struct feed *f, struct froom *fr)
{
    tdelete(fr, &f->tree, froom_cmp);
    TAILQ_REMOVE(&f->rooms, fr, link);
    event_free(fr->linger);
    free(fr);
}

/* Forgets a room nothing is left to do for. */
static void room_tidy(struct feed *f, struct froom *fr)
{
    if (fr->wanted || fr->confirmed || fr->subs != 0 || fr->unsubs != 0 ||
        fr->filling)
        return;
    if (fr->held) /* a fill that waited for nobody: nothing to hold for */
        bus_fill_end(f->bus, fr->name);
    room_free(f, fr);
}

static void room_command(struct froom *fr, const char *cmd, int *count);

static void room_subscribe(struct froom *fr)
{
    if (fr->sh->sub == NULL || fr->confirmed || fr->subs > 0 || fr->unsubs > 0)
        return;
    room_command(fr, "SUBSCRIBE", &fr->subs);
}

/* The room's subscription is no longer wanted, or a SUBSCRIBE was answered
 * after it stopped being wanted. */
static void room_unsubscribe(struct feed *f, struct froom *fr)
{
    bool was = fr->confirmed;

    bus_room_live(f->bus, fr->name, false);
    fr->confirmed = false;
    if (was && fr->sh->sub != NULL)
        room_command(fr, "UNSUBSCRIBE", &fr->unsubs);
    room_tidy(f, fr);
}

static void linger_cb(evutil_socket_t fd, short what, void *arg)
{
    struct froom *fr = arg;

    fr->wanted = false;
    room_unsubscribe(fr->sh->f, fr);
}

/* --- the bus's hooks --- */

static void hook_first(const char *room, void *arg)
{
    struct feed *f = arg;
    struct froom *fr = room_get(f, room);

    evtimer_del(fr->linger);
    fr->wanted = true;
    if (fr->confirmed) { /* lingering: subscribed throughout */
        bus_room_live(f->bus, room, true);
        room_probe(f, fr);
    } else
        room_subscribe(fr);
}

static void hook_last(const char *room, void *arg)
{
    struct feed *f = arg;
    struct froom *fr = room_find(f, room);
    struct timeval tv = {FEED_LINGER_MS / 1000, FEED_LINGER_MS % 1000 * 1000};

    if (fr != NULL && fr->wanted)
        evtimer_add(fr->linger, &tv);
}

static void hook_catch_up(const char *room, void *arg)
{
    struct feed *f = arg;
    struct froom *fr = room_find(f, room);

    if (fr != NULL && fr->confirmed)
        room_fill(f, fr);
    /* else its SUBSCRIBE, once answered, fills the room */
}

/* --- the subscription connections --- */

static void schedule(struct shard *sh)
{
    if (!sh->f->closing)
        redis_retry(sh->timer, &sh->backoff);
}

static void on_subscribed(struct shard *sh, const char *room)
{
    struct feed *f = sh->f;
    struct froom *fr;

    if (room == NULL) { /* the probe channel */
        sh->since = 0;
        if (sh->up) /* the answer to the watchdog's probe */
            return;
        log_info("redis: subscribed to the bus of shard %d", sh->index);
        sh->up = true;
        sh->backoff = REDIS_BACKOFF_MIN_MS;
        return;
    }
    if ((fr = room_find(f, room)) == NULL || fr->sh != sh || fr->subs == 0)
        return;
    if (--fr->subs > 0)
        return;
    fr->confirmed = true;
    if (!fr->wanted) {
        room_unsubscribe(f, fr);
        return;
    }
    /* What was published before the SUBSCRIBE took effect was read by
     * nobody's history after it: the fill reads it from the stream. */
    bus_room_live(f->bus, room, true);
    room_fill(f, fr);
}

static void on_unsubscribed(struct shard *sh, const char *room)
{
    struct feed *f = sh->f;
    struct froom *fr;

    if (room == NULL || (fr = room_find(f, room)) == NULL || fr->sh != sh ||
        fr->unsubs == 0)
        return;
    if (--fr->unsubs == 0 && fr->wanted)
        room_subscribe(fr);
    else
        room_tidy(f, fr);
}

static bool is_notice(const redisReply *payload, const char *notice)
{
    return payload->len == strlen(notice) &&
           memcmp(payload->str, notice, payload->len) == 0;
}

/* Messages were appended to the room's stream that the bus did not carry:
 * what the bus believed of its newest is forgotten, and read again. */
static void room_restored(struct feed *f, const char *room)
{
    struct froom *fr = room_find(f, room);

    bus_room_forget(f->bus, room);
    if (fr != NULL && fr->confirmed)
        room_probe(f, fr);
}

static void on_message(struct shard *sh, const char *room,
                       const redisReply *chan, const redisReply *payload)
{
    struct chat_event ev;
    struct bus_event *e;

    if (room != NULL && is_notice(payload, KEYS_BUS_TRIMMED)) {
        bus_trimmed(sh->f->bus, room);
        return;
    }
    if (room != NULL && is_notice(payload, KEYS_BUS_RESTORED)) {
        room_restored(sh->f, room);
        return;
    }
    if (event_from_json(payload->str, payload->len, &ev) != 0) {
        log_warn("bus: dropped a malformed event on %s", chan->str);
        return;
    }
    if (room == NULL || strcmp(room, ev.room) != 0) {
        log_warn("bus: event for room %s on channel %s dropped", ev.room,
                 chan->str);
        event_clear(&ev);
        return;
    }
    e = bus_event_new(&ev);
    bus_publish(sh->f->bus, e);
    bus_event_unref(e);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct shard *sh = ac->data;
    redisReply *r = reply;
    const redisReply *kind, *chan;
    char buf[NAME_ROOM_MAX + 1];
    const char *room;

    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
        r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[1]->type != REDIS_REPLY_STRING)
        return;
    kind = r->element[0];
    chan = r->element[1];
    room = keys_bus_room(chan->str, buf);
    if (strcmp(kind->str, "message") == 0 &&
        r->element[2]->type == REDIS_REPLY_STRING)
        on_message(sh, room, chan, r->element[2]);
    else if (strcmp(kind->str, "subscribe") == 0)
        on_subscribed(sh, room);
    else if (strcmp(kind->str, "unsubscribe") == 0)
        on_unsubscribed(sh, room);
}

static void room_command(struct froom *fr, const char *cmd, int *count)
{
    char chan[KEYS_MAX];

    if (redisAsyncCommand(fr->sh->sub, on_reply, NULL, "%s %s", cmd,
                          keys_bus(chan, fr->name)) == REDIS_OK)
        (*count)++;
}

/* What its rooms publish from now until they are subscribed again goes by
 * unseen: each is filled from its stream once its SUBSCRIBE is answered. */
static void sub_lost(struct shard *sh)
{
    struct feed *f = sh->f;
    struct froom *fr, *next;

    sh->sub = NULL;
    sh->up = false;
    sh->since = 0;
    for (fr = TAILQ_FIRST(&f->rooms); fr != NULL; fr = next) {
        next = TAILQ_NEXT(fr, link);
        if (fr->sh != sh)
            continue;
        fr->subs = fr->unsubs = 0;
        fr->confirmed = false;
        bus_room_live(f->bus, fr->name, false);
        room_tidy(f, fr);
    }
}

static void sub_connected(const redisAsyncContext *ac, int status)
{
    struct shard *sh = ac->data;

    if (ac != sh->sub)
        return;
    if (status != REDIS_OK) {
        sub_lost(sh);
        schedule(sh);
    }
}

static void sub_disconnected(const redisAsyncContext *ac, int status)
{
    struct shard *sh = ac->data;

    if (ac != sh->sub)
        return;
    sub_lost(sh);
    if (sh->f->closing)
        return;
    log_warn("redis: subscription to shard %d lost; resubscribing", sh->index);
    schedule(sh);
}

static void sub_probe(struct shard *sh)
{
    char chan[KEYS_MAX];

    redisAsyncCommand(sh->sub, on_reply, NULL, "SUBSCRIBE %s",
                      keys_bus(chan, PROBE_ROOM));
    sh->since = redis_mono_ms();
}

static void sub_connect(struct shard *sh)
{
    struct froom *fr;

    if (sh->f->closing || sh->sub != NULL)
        return;
    sh->sub = redis_connect(sh->redis, "subscription", sh);
    if (sh->sub == NULL) {
        schedule(sh);
        return;
    }
    redisAsyncSetConnectCallback(sh->sub, sub_connected);
    redisAsyncSetDisconnectCallback(sh->sub, sub_disconnected);
    sub_probe(sh);
    TAILQ_FOREACH(fr, &sh->f->rooms, link) {
        if (fr->sh == sh && fr->wanted)
            room_subscribe(fr);
    }
}

static void sub_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    sub_connect(arg);
}

/* The subscription's part of the watchdog: a probe unanswered for
 * redis_timeout_ms drops the connection. */
static void shard_tick(void *arg)
{
    struct shard *sh = arg;
    int64_t now = redis_mono_ms(), limit = sh->f->cfg->redis_timeout_ms;

    if (sh->sub != NULL && sh->since != 0 && now - sh->since >= limit) {
        redisAsyncContext *ac = sh->sub;

        log_warn("redis: the subscription to shard %d did not answer in "
                 "%lld ms; resubscribing",
                 sh->index, (long long)limit);
        sub_lost(sh);
        redisAsyncFree(ac);
        schedule(sh);
    } else if (sh->up && sh->since == 0 && now - sh->probed >= limit) {
        /* Subscribing again to what we follow is answered in order behind
         * any message: a live subscription answers it at once. */
        sub_probe(sh);
        sh->probed = sh->since;
    }
}

/* --- gap filling: what was published while a room was not subscribed --- */

static void fill_room(struct feed *f, const char *room,
                      const struct streamid *after);

static struct fill *fill_new(struct feed *f, const char *room)
{
    struct fill *c = xcalloc(1, sizeof(*c));

    c->f = f;
    strcpy(c->room, room);
    return c;
}

/* The room's fill is over (done, or failed and to be retried). */
static void fill_over(struct feed *f, const char *room, bool failed)
{
    struct froom *fr = room_find(f, room);

    if (fr == NULL)
        return;
    fr->filling = false;
    if (failed) {
        /* the room stays filling (live events held) until a retry works */
        struct timeval tv = {1, 0};
        fr->fill_wanted = true;
        evtimer_add(f->fill_timer, &tv);
    } else if (fr->refill) {
        fr->refill = false;
        room_fill(f, fr);
    } else {
        room_tidy(f, fr);
    }
}

static void fill_page(int status, struct chat_event *evs, size_t n, void *arg)
{
    struct fill *c = arg;
    struct feed *f = c->f;

    if (status != 0) {
        fill_over(f, c->room, true);
        free(c);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct bus_event *e = bus_event_new(&evs[i]);
        bus_fill_publish(f->bus, e);
        bus_event_unref(e);
    }
    if (n == FILL_PAGE) {
        fill_room(f, c->room, &evs[n - 1].sid);
    } else {
        /* fill_end may ask for another fill (catch_up): refill */
        bus_fill_end(f->bus, c->room);
        fill_over(f, c->room, false);
    }
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
    bus_room_learn(f->bus, c->room, c->epoch, log);
    if (bus_room_oldest(f->bus, c->room, &from) &&
        streamid_cmp(&from, &c->after) < 0) {
        fill_room(f, c->room, &from);
        free(c);
        return;
    }
    fill_page(0, evs, n, c);
}

static void probe_done(int status, struct chat_event *evs, size_t n,
                       const struct streamid_log *log, void *arg)
{
    struct fill *c = arg;

    (void)evs;
    (void)n;
    if (status == 0)
        bus_room_learn(c->f->bus, c->room, c->epoch, log);
    fill_over(c->f, c->room, status != 0);
    free(c);
}

/* A live room no subscriber resumes in (its pollers come and go, or its
 * streams started at the newest): one read of what Redis holds tells the
 * bus the room's newest message, so that polls already there are answered
 * without Redis before the room's next message. Runs as a fill does, one
 * at a time per room (one asked for meanwhile runs after it), retried
 * when Redis fails. */
static void room_probe(struct feed *f, struct froom *fr)
{
    static const struct streamid first = {0, 0};
    uint64_t epoch = bus_room_epoch(f->bus, fr->name);
    struct fill *c;

    if (fr->filling) {
        fr->refill = true; /* what is in flight may be from before */
        return;
    }
    if (epoch == 0 || bus_room_knows_latest(f->bus, fr->name))
        return;
    c = fill_new(f, fr->name);
    c->epoch = epoch;
    fr->filling = true;
    if (store_resume(f->store, fr->name, &first, 1, probe_done, c) != 0)
        probe_done(-1, NULL, 0, NULL, c);
}

/* Fills the room from its stream, after the oldest id of its subscribers
 * (bus_room_oldest), once its subscription is confirmed; with none, probes
 * it. */
static void room_fill(struct feed *f, struct froom *fr)
{
    struct fill *c;

    if (fr->filling) {
        fr->refill = true;
        return;
    }
    if (!fr->confirmed) {
        /* its SUBSCRIBE, once answered, fills it; a room no longer wanted
         * (a failed fill retried after its linger) is forgotten */
        fr->fill_wanted = false;
        room_tidy(f, fr);
        return;
    }
    if (!redis_up(fr->sh->redis)) {
        /* shard_up fills it. Live events wait for the fill: the
         * subscription may be back before the command connection, and an
         * event delivered now would move the subscribers past what the
         * fill has to read first, which they would then never get. */
        fr->fill_wanted = true;
        if (!fr->held)
            bus_fill_begin(f->bus, fr->name);
        fr->held = true;
        return;
    }
    fr->fill_wanted = false;
    c = fill_new(f, fr->name);
    c->epoch = bus_room_epoch(f->bus, fr->name);
    if (!bus_room_oldest(f->bus, fr->name, &c->after)) {
        /* nobody to fill for (any more): what was held goes out */
        free(c);
        if (fr->held)
            bus_fill_end(f->bus, fr->name);
        fr->held = false;
        room_probe(f, fr);
        return;
    }
    fr->held = false; /* the fill ends the hold */
    fr->filling = true;
    bus_fill_begin(f->bus, fr->name);
    if (store_resume(f->store, fr->name, &c->after, FILL_PAGE, fill_checked,
                     c) != 0)
        fill_page(-1, NULL, 0, c);
}

/* Fills the rooms whose fill waits, of one shard or (sh NULL) all. */
static void fill_waiting(struct feed *f, const struct shard *sh)
{
    struct froom *fr, *next;

    for (fr = TAILQ_FIRST(&f->rooms); fr != NULL; fr = next) {
        next = TAILQ_NEXT(fr, link);
        if (fr->fill_wanted && (sh == NULL || fr->sh == sh))
            room_fill(f, fr);
    }
}

static void fill_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    fill_waiting(arg, NULL);
}

/* A shard's command connection is up (again). */
static void shard_up(void *arg)
{
    struct shard *sh = arg;

    fill_waiting(sh->f, sh);
}

/* An append through this daemon's store was acknowledged: the bus must not
 * answer from memory for the room before that message has gone by. */
static void on_stored(void *arg, const char *room, const char *id)
{
    struct feed *f = arg;
    struct streamid sid;

    if (streamid_parse(id, strlen(id), &sid) == 0)
        bus_room_stored(f->bus, room, &sid);
}

struct feed *feed_new(struct event_base *base, struct redis **r, int n,
                      struct store *st, struct bus *bus,
                      const struct config *cfg)
{
    struct feed *f = xcalloc(1, sizeof(*f));
    struct bus_room_hooks hooks = {hook_first, hook_last, hook_catch_up, f};

    f->base = base;
    f->store = st;
    f->bus = bus;
    f->cfg = cfg;
    f->nshards = n;
    f->shards = xcalloc((size_t)n, sizeof(*f->shards));
    TAILQ_INIT(&f->rooms);
    f->fill_timer = evtimer_new(base, fill_timer_cb, f);
    for (int i = 0; i < n; i++) {
        struct shard *sh = &f->shards[i];
        sh->f = f;
        sh->index = i;
        sh->redis = r[i];
        sh->backoff = REDIS_BACKOFF_MIN_MS;
        sh->timer = evtimer_new(base, sub_timer_cb, sh);
        redis_watch(r[i], shard_up, shard_tick, sh);
    }
    bus_set_room_hooks(bus, &hooks);
    store_on_stored(st, on_stored, f);
    for (int i = 0; i < n; i++)
        sub_connect(&f->shards[i]);
    return f;
}

void feed_free(struct feed *f)
{
    struct bus_room_hooks none = {0};
    struct froom *fr;

    if (f == NULL)
        return;
    f->closing = true;
    bus_set_room_hooks(f->bus, &none);
    store_on_stored(f->store, NULL, NULL);
    for (int i = 0; i < f->nshards; i++) {
        struct shard *sh = &f->shards[i];
        if (sh->sub)
            redisAsyncFree(sh->sub); /* callbacks run now, with no reply */
        event_free(sh->timer);
    }
    while ((fr = TAILQ_FIRST(&f->rooms)) != NULL)
        room_free(f, fr);
    event_free(f->fill_timer);
    free(f->shards);
    free(f);
}
