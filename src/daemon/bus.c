/* bus.c - rooms, subscribers and fan-out of events */
#include "bus.h"

#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "log.h"
#include "window.h"
#include "xmalloc.h"

/* An event held back for a subscriber or a room. */
struct bus_pending {
    struct bus_event *e;
    TAILQ_ENTRY(bus_pending) link;
};

TAILQ_HEAD(subscriber_list, subscriber);

/* A user who typed in a room lately: typing events of one user closer
 * together than BUS_TYPING_GAP_MS are not fanned out (see bus.h). */
struct typist {
    char user[NAME_USER_MAX + 1];
    int64_t at_ms; /* when its last typing event went out */
};

struct bus_room {
    struct bus *bus;
    char name[NAME_ROOM_MAX + 1];
    struct subscriber_list subs;
    size_t nsubs;
    bool filling;
    struct bus_pending_list held;
    /* The newest stored message seen on the bus, while the bus has been
     * subscribed throughout (latest_known). A room outlives its last
     * subscriber for a while (bus_sweep) to keep it for the next poll. */
    struct streamid latest;
    bool latest_known;
    /* The newest stored message the bus itself delivered live: `latest`
     * may be ahead of it by what Redis said (bus_room_learn), and then the
     * window, which holds what the bus delivered, lacks what lies between */
    struct streamid seen;
    bool seen_known;
    /* The newest message this daemon stored in the room (bus_room_stored);
     * until the bus has seen it go by, the room's memory is behind what a
     * client here was told (0-0: none) */
    struct streamid stored;
    bool live;      /* its Redis subscription confirmed (bus_room_live) */
    uint64_t epoch; /* that subscription's (bus_room_epoch), while live */
    bool followed;  /* by short polls (bus_room_follow), until swept */
    int64_t empty_since_ms;
    /* its newest live messages, for polls (NULL until the first) */
    struct window *window;
    void *typists; /* tsearch of struct typist, by user */
    size_t ntypists;
};

struct bus {
    size_t limit;     /* bytes queued or held per subscriber; 0: none */
    void *rooms;      /* tsearch tree of struct bus_room, by name */
    size_t nrooms;    /* in the tree */
    size_t nactive;   /* with subscribers */
    size_t nfollowed; /* followed (bus_room_follow) */
    uint64_t epochs;  /* subscriptions confirmed so far */
    struct bus_room_hooks hooks;
};

struct bus_blob *bus_blob_new(size_t len)
{
    struct bus_blob *b = xmalloc(sizeof(*b) + len + 1);

    b->refs = 1;
    b->len = len;
    b->data[len] = '\0';
    return b;
}

struct bus_blob *bus_blob_ref(struct bus_blob *b)
{
    b->refs++;
    return b;
}

void bus_blob_unref(struct bus_blob *b)
{
    if (b != NULL && --b->refs == 0)
        free(b);
}

static void blob_cleanup(const void *data, size_t len, void *arg)
{
    bus_blob_unref(arg);
}

void bus_blob_add(struct bus_blob *b, struct evbuffer *out)
{
    bus_blob_ref(b);
    if (evbuffer_add_reference(out, b->data, b->len, blob_cleanup, b) != 0) {
        log_error("bus: evbuffer_add_reference failed");
        abort();
    }
}

struct bus_event *bus_event_new(struct chat_event *ev)
{
    struct bus_event *e = xcalloc(1, sizeof(*e));
    size_t len;
    char *json;

    e->refs = 1;
    e->ev = *ev;
    memset(ev, 0, sizeof(*ev));
    json = event_to_json(&e->ev, &len);
    e->json = bus_blob_new(len);
    memcpy(e->json->data, json, len);
    free(json);
    return e;
}

struct bus_event *bus_event_ref(struct bus_event *e)
{
    e->refs++;
    return e;
}

void bus_event_unref(struct bus_event *e)
{
    if (e == NULL || --e->refs > 0)
        return;
    event_clear(&e->ev);
    bus_blob_unref(e->json);
    for (int i = 0; i < BUS_SLOT_COUNT; i++)
        bus_blob_unref(e->enc[i]);
    free(e);
}

struct bus_blob *bus_event_encoded(struct bus_event *e, enum bus_slot slot,
                                   bus_encoder enc)
{
    if (e->enc[slot] == NULL)
        e->enc[slot] = enc(e);
    return e->enc[slot];
}

static void pending_push(struct bus_pending_list *l, struct bus_event *e)
{
    struct bus_pending *p = xmalloc(sizeof(*p));

    p->e = bus_event_ref(e);
    TAILQ_INSERT_TAIL(l, p, link);
}

/* Holds e in id order among the held stored messages, ephemeral events
 * keeping their place: a fill's messages are held after the live ones the
 * new subscription brought first, and may be older than those. Returns
 * false, holding nothing, when a message with e's id is held already. */
static bool pending_insert(struct bus_pending_list *l, struct bus_event *e)
{
    struct bus_pending *p, *before = NULL;

    if (e->ev.type == EVENT_MESSAGE) {
        for (p = TAILQ_LAST(l, bus_pending_list); p != NULL;
             p = TAILQ_PREV(p, bus_pending_list, link)) {
            int c;

            if (p->e->ev.type != EVENT_MESSAGE)
                continue;
            c = streamid_cmp(&p->e->ev.sid, &e->ev.sid);
            if (c == 0)
                return false;
            if (c < 0)
                break;
            before = p;
        }
    }
    p = xmalloc(sizeof(*p));
    p->e = bus_event_ref(e);
    if (before != NULL)
        TAILQ_INSERT_BEFORE(before, p, link);
    else
        TAILQ_INSERT_TAIL(l, p, link);
    return true;
}

static struct bus_event *pending_pop(struct bus_pending_list *l)
{
    struct bus_pending *p = TAILQ_FIRST(l);
    struct bus_event *e;

    if (p == NULL)
        return NULL;
    TAILQ_REMOVE(l, p, link);
    e = p->e;
    free(p);
    return e;
}

static void pending_clear(struct bus_pending_list *l)
{
    struct bus_event *e;

    while ((e = pending_pop(l)) != NULL)
        bus_event_unref(e);
}

static int room_cmp(const void *a, const void *b)
{
    return strcmp(((const struct bus_room *)a)->name,
                  ((const struct bus_room *)b)->name);
}

static struct bus_room *room_find(struct bus *b, const char *name)
{
    struct bus_room key;
    void *node;

    if (strlen(name) > NAME_ROOM_MAX)
        return NULL;
    strcpy(key.name, name);
    node = tfind(&key, &b->rooms, room_cmp);
    return node ? *(struct bus_room **)node : NULL;
}

struct bus *bus_new(size_t buffer_limit)
{
    struct bus *b = xcalloc(1, sizeof(struct bus));

    b->limit = buffer_limit;
    return b;
}

static void room_free(void *p)
{
    struct bus_room *r = p;

    pending_clear(&r->held);
    window_free(r->window);
    tdestroy(r->typists, free);
    free(r);
}

void bus_free(struct bus *b)
{
    if (b == NULL)
        return;
    if (b->nactive > 0)
        log_warn("bus: freed with %zu rooms still subscribed", b->nactive);
    tdestroy(b->rooms, room_free);
    free(b);
}

/* The room, made when missing. */
static struct bus_room *room_get(struct bus *b, const char *name)
{
    struct bus_room *r = room_find(b, name);

    if (r == NULL) {
        r = xcalloc(1, sizeof(*r));
        r->bus = b;
        r->live = b->hooks.first == NULL; /* see bus_room_live */
        if (r->live)
            r->epoch = ++b->epochs;
        strcpy(r->name, name);
        TAILQ_INIT(&r->subs);
        TAILQ_INIT(&r->held);
        r->empty_since_ms = event_now_ms();
        if (tsearch(r, &b->rooms, room_cmp) == NULL) {
            log_error("bus: out of memory");
            abort();
        }
        b->nrooms++;
    }
    return r;
}

void bus_room_follow(struct bus *b, const char *room)
{
    struct bus_room *r = room_find(b, room);

    /* each followed room holds a Redis subscription and a window until
     * it is swept: past BUS_FOLLOW_MAX, the polls of a room the bus does
     * not know are answered from Redis, as without the window */
    if (r == NULL && b->nfollowed >= BUS_FOLLOW_MAX)
        return;
    if (r == NULL)
        r = room_get(b, room);
    if (r->nsubs == 0)
        r->empty_since_ms = event_now_ms();
    if (r->followed)
        return;
    if (r->nsubs == 0 && b->hooks.first != NULL)
        b->hooks.first(r->name, b->hooks.arg);
    r->followed = true;
    b->nfollowed++;
}

size_t bus_followed(const struct bus *b)
{
    return b->nfollowed;
}

void bus_set_room_hooks(struct bus *b, const struct bus_room_hooks *h)
{
    b->hooks = *h;
}

/* Moves *at to id when id is newer, or when *at is not known yet. */
static void advance(struct streamid *at, bool *known, const struct streamid *id)
{
    if (!*known || streamid_cmp(id, at) > 0) {
        *at = *id;
        *known = true;
    }
}

/* Neither the room's newest nor what the bus delivered is known any more. */
static void forget_newest(struct bus_room *r)
{
    r->latest_known = false;
    r->seen_known = false;
}

void bus_room_live(struct bus *b, const char *room, bool live)
{
    struct bus_room *r = room_find(b, room);
    struct subscriber *s;

    if (r == NULL)
        return;
    if (live && !r->live) {
        /* what it saw before may be behind */
        forget_newest(r);
        r->epoch = ++b->epochs;
    }
    /* a window spans only what one unbroken subscription delivered */
    if (live != r->live && r->window != NULL)
        window_reset(r->window);
    r->live = live;
    if (live)
        return;
    forget_newest(r);
    TAILQ_FOREACH(s, &r->subs, link) {
        if (s->resuming)
            s->stale = true;
    }
}

void bus_subscribe(struct bus *b, struct subscriber *s, bool resuming)
{
    struct bus_room *r = room_get(b, s->room);

    if (r->nsubs == 0)
        b->nactive++;
    TAILQ_INIT(&s->held);
    s->held_bytes = 0;
    s->resuming = resuming;
    s->stale = !r->live;
    s->waiting = false;
    s->br = r;
    TAILQ_INSERT_TAIL(&r->subs, s, link);
    if (r->nsubs++ == 0 && !r->followed && b->hooks.first != NULL)
        b->hooks.first(r->name, b->hooks.arg);
}

void bus_unsubscribe(struct bus *b, struct subscriber *s)
{
    struct bus_room *r = s->br;

    if (r == NULL)
        return;
    TAILQ_REMOVE(&r->subs, s, link);
    s->br = NULL;
    pending_clear(&s->held);
    s->held_bytes = 0;
    s->resuming = false;
    s->waiting = false;
    if (--r->nsubs == 0) {
        b->nactive--;
        r->empty_since_ms = event_now_ms();
        if (!r->followed && b->hooks.last != NULL)
            b->hooks.last(r->name, b->hooks.arg);
    }
}

void bus_deliver_one(struct subscriber *s, struct bus_event *e)
{
    if (e->ev.type == EVENT_MESSAGE) {
        if (streamid_cmp(&e->ev.sid, &s->last) <= 0)
            return;
        s->last = e->ev.sid;
    }
    s->ops->deliver(s, e);
}

static void resume_release(struct subscriber *s)
{
    struct bus_event *e;

    s->resuming = false;
    s->waiting = false;
    /* deliver may unsubscribe s, which empties the list */
    while (s->br != NULL && (e = pending_pop(&s->held)) != NULL) {
        s->held_bytes -= e->json->len;
        bus_deliver_one(s, e);
        bus_event_unref(e);
    }
}

void bus_resume_done(struct subscriber *s)
{
    struct bus *b;

    if (s->br == NULL || !s->stale) {
        resume_release(s);
        return;
    }
    /* what it read may predate the room's subscription: a fill read after
     * it covers the rest (bus_fill_end releases it) */
    s->waiting = true;
    b = s->br->bus;
    if (b->hooks.catch_up != NULL)
        b->hooks.catch_up(s->room, b->hooks.arg);
}

void bus_signal(struct subscriber *s, const struct streamid_signal *sig)
{
    s->last = sig->from;
    if (s->ops->signal != NULL)
        s->ops->signal(s, sig);
}

void bus_room_judge(struct bus *b, const char *room,
                    const struct streamid_log *log)
{
    struct bus_room *r = room_find(b, room);
    struct subscriber *s, *next;
    struct streamid_signal sig;

    if (r == NULL)
        return;
    /* next is read before signal, which may unsubscribe s (only s) */
    for (s = TAILQ_FIRST(&r->subs); s != NULL; s = next) {
        next = TAILQ_NEXT(s, link);
        if (s->resuming)
            continue;
        streamid_judge(&s->last, log, &sig);
        if (sig.verdict != STREAMID_FINE)
            bus_signal(s, &sig);
    }
}

/* Holds an event for a resuming subscriber; one that lets more than
 * the limit pile up (held here and queued to its client) is dropped: it
 * resumes later by id, and nothing stored is lost to it. */
static void hold(struct bus *b, struct subscriber *s, struct bus_event *e)
{
    size_t queued;

    if (!pending_insert(&s->held, e))
        return;
    s->held_bytes += e->json->len;
    if (b->limit == 0 || s->ops->drop == NULL)
        return;
    queued = s->ops->queued != NULL ? s->ops->queued(s) : 0;
    if (s->held_bytes + queued > b->limit)
        s->ops->drop(s);
}

static void room_deliver(struct bus *b, struct bus_room *r, struct bus_event *e)
{
    struct subscriber *s, *next;

    if (e->ev.type == EVENT_MESSAGE && r->live) {
        advance(&r->latest, &r->latest_known, &e->ev.sid);
        advance(&r->seen, &r->seen_known, &e->ev.sid);
    }

    /* next is read before deliver, which may unsubscribe s (only s) */
    for (s = TAILQ_FIRST(&r->subs); s != NULL; s = next) {
        next = TAILQ_NEXT(s, link);
        if (s->resuming)
            hold(b, s, e);
        else
            bus_deliver_one(s, e);
    }
}

/* A stored message the feed delivered live (not a fill's): it goes on from
 * the newest the room's window has seen. */
static void window_live(struct bus_room *r, struct bus_event *e)
{
    if (e->ev.type != EVENT_MESSAGE || !r->live)
        return;
    if (r->window == NULL)
        r->window = window_new();
    window_add(r->window, e);
}

static int typist_cmp(const void *a, const void *b)
{
    return strcmp(((const struct typist *)a)->user,
                  ((const struct typist *)b)->user);
}

/* True when the user's last typing event in r went out less than
 * BUS_TYPING_GAP_MS ago: this one adds nothing a client would show. */
static bool typing_coalesced(struct bus_room *r, const char *user)
{
    struct typist key, *t;
    void *node;
    int64_t now = event_now_ms();

    snprintf(key.user, sizeof(key.user), "%s", user);
    if ((node = tfind(&key, &r->typists, typist_cmp)) != NULL) {
        t = *(struct typist **)node;
        if (now - t->at_ms < BUS_TYPING_GAP_MS)
            return true;
    } else {
        t = xmalloc(sizeof(*t));
        *t = key;
        if (tsearch(t, &r->typists, typist_cmp) == NULL) {
            log_error("bus: out of memory");
            abort();
        }
        r->ntypists++;
    }
    t->at_ms = now;
    return false;
}

/* twalk has no argument: these carry the one walk in progress. */
static struct typist **walk_typists;
static size_t walk_ntypists;
static int64_t walk_before;

static void collect_stale_typist(const void *node, VISIT which, int depth)
{
    struct typist *t = *(struct typist *const *)node;

    if ((which == postorder || which == leaf) && t->at_ms <= walk_before)
        walk_typists[walk_ntypists++] = t;
}

/* Forgets the typists whose gap is over: they would not be coalesced. */
static void typists_sweep(struct bus_room *r, int64_t now)
{
    if (r->ntypists == 0)
        return;
    walk_typists = xcalloc(r->ntypists, sizeof(*walk_typists));
    walk_ntypists = 0;
    walk_before = now - BUS_TYPING_GAP_MS;
    twalk(r->typists, collect_stale_typist);
    for (size_t i = 0; i < walk_ntypists; i++) {
        tdelete(walk_typists[i], &r->typists, typist_cmp);
        free(walk_typists[i]);
    }
    r->ntypists -= walk_ntypists;
    free(walk_typists);
}

void bus_publish(struct bus *b, struct bus_event *e)
{
    struct bus_room *r = room_find(b, e->ev.room);

    if (r == NULL)
        return;
    if (e->ev.type == EVENT_TYPING && typing_coalesced(r, e->ev.from))
        return;
    if (r->filling && e->ev.type == EVENT_MESSAGE) {
        pending_push(&r->held, e);
        return;
    }
    window_live(r, e);
    room_deliver(b, r, e);
}

void bus_fill_begin(struct bus *b, const char *room)
{
    struct bus_room *r = room_find(b, room);
    struct subscriber *s;

    if (r == NULL)
        return;
    r->filling = true;
    /* a fill follows a break in the feed: what the window saw before it
     * may lack messages */
    if (r->window != NULL)
        window_reset(r->window);
    TAILQ_FOREACH(s, &r->subs, link) {
        if (s->waiting)
            s->stale = false; /* this fill covers it */
    }
}

/* Ends the resume of the waiting subscribers a fill covered; asks for
 * another fill when stale ones wait. */
static void release_covered(struct bus *b, const char *room)
{
    struct bus_room *r = room_find(b, room);
    struct subscriber *s, **subs;
    size_t n = 0;
    bool more = false;

    if (r == NULL)
        return;
    subs = xcalloc(r->nsubs + 1, sizeof(*subs));
    TAILQ_FOREACH(s, &r->subs, link) {
        if (s->waiting && !s->stale)
            subs[n++] = s;
        more = more || (s->waiting && s->stale);
    }
    /* each may unsubscribe itself while it is given what it held */
    for (size_t i = 0; i < n; i++)
        if (subs[i]->br != NULL)
            resume_release(subs[i]);
    free(subs);
    if (more && b->hooks.catch_up != NULL)
        b->hooks.catch_up(room, b->hooks.arg);
}

void bus_fill_end(struct bus *b, const char *room)
{
    struct bus_room *r = room_find(b, room);
    struct bus_pending_list held;
    struct bus_event *e;

    if (r == NULL)
        return;
    r->filling = false;
    /* The room may vanish while we deliver; take its list first. */
    TAILQ_INIT(&held);
    TAILQ_CONCAT(&held, &r->held, link);
    while ((e = pending_pop(&held)) != NULL) {
        if ((r = room_find(b, room)) != NULL) {
            window_live(r, e);
            room_deliver(b, r, e);
        }
        bus_event_unref(e);
    }
    release_covered(b, room);
}

void bus_fill_publish(struct bus *b, struct bus_event *e)
{
    struct bus_room *r = room_find(b, e->ev.room);

    if (r != NULL)
        room_deliver(b, r, e);
}

bool bus_room_oldest(struct bus *b, const char *room, struct streamid *out)
{
    struct bus_room *r = room_find(b, room);
    struct subscriber *s;
    bool any = false;

    if (r == NULL)
        return false;
    TAILQ_FOREACH(s, &r->subs, link) {
        if (s->resuming && !s->waiting)
            continue; /* its own read is not over */
        if (!any || streamid_cmp(&s->last, out) < 0)
            *out = s->last;
        any = true;
    }
    return any;
}

/* twalk has no argument: these carry the one walk in progress. */
static struct bus_room **walk_rooms;
static size_t walk_n;

static void collect_room(const void *node, VISIT which, int depth)
{
    if (which == postorder || which == leaf)
        walk_rooms[walk_n++] = *(struct bus_room *const *)node;
}

/* Snapshot of the rooms, so callbacks may change the tree. */
static struct bus_room **rooms_snapshot(struct bus *b, size_t *n)
{
    walk_rooms = xcalloc(b->nrooms + 1, sizeof(*walk_rooms));
    walk_n = 0;
    twalk(b->rooms, collect_room);
    *n = walk_n;
    return walk_rooms;
}

void bus_foreach_room(struct bus *b, void (*fn)(const char *room, void *arg),
                      void *arg)
{
    size_t n, k = 0;
    struct bus_room **rooms = rooms_snapshot(b, &n);
    char(*names)[NAME_ROOM_MAX + 1] = xcalloc(n + 1, sizeof(*names));

    for (size_t i = 0; i < n; i++)
        if (rooms[i]->nsubs > 0)
            strcpy(names[k++], rooms[i]->name);
    free(rooms);
    for (size_t i = 0; i < k; i++)
        fn(names[i], arg);
    free(names);
}

void bus_room_stored(struct bus *b, const char *room, const struct streamid *id)
{
    struct bus_room *r = room_find(b, room);

    if (r != NULL && streamid_cmp(id, &r->stored) > 0)
        r->stored = *id;
}

/* A message stored through this daemon has not gone by on the bus yet. */
static bool own_unseen(const struct bus_room *r)
{
    return !streamid_is_zero(&r->stored) &&
           (!r->latest_known || streamid_cmp(&r->stored, &r->latest) > 0);
}

uint64_t bus_room_epoch(struct bus *b, const char *room)
{
    struct bus_room *r = room_find(b, room);

    return r != NULL && r->live ? r->epoch : 0;
}

bool bus_room_knows_latest(struct bus *b, const char *room)
{
    struct bus_room *r = room_find(b, room);

    return r != NULL && r->live && r->latest_known;
}

void bus_room_learn(struct bus *b, const char *room, uint64_t epoch,
                    const struct streamid_log *log)
{
    static const struct streamid none = {0, 0};
    struct bus_room *r = room_find(b, room);
    const struct streamid *last = log->exists ? &log->last : &none;

    if (r == NULL || !r->live || r->epoch != epoch)
        return;
    /* when newer than anything the bus delivered, the window answers again
     * once the bus has caught up with it (learnt_ahead) */
    advance(&r->latest, &r->latest_known, last);
}

void bus_room_forget(struct bus *b, const char *room)
{
    struct bus_room *r = room_find(b, room);

    if (r == NULL)
        return;
    forget_newest(r);
    if (r->window != NULL)
        window_reset(r->window);
    /* a read of the stream from before this is not believed */
    if (r->live)
        r->epoch = ++b->epochs;
}

/* Redis told of a newer message than the bus has delivered yet. */
static bool learnt_ahead(const struct bus_room *r)
{
    return r->latest_known &&
           (!r->seen_known || streamid_cmp(&r->latest, &r->seen) > 0);
}

bool bus_room_latest(struct bus *b, const char *room, struct streamid *out)
{
    struct bus_room *r = room_find(b, room);

    if (r == NULL || !r->live || !r->latest_known || r->filling ||
        own_unseen(r))
        return false;
    *out = r->latest;
    return true;
}

int bus_room_recent(struct bus *b, const char *room,
                    const struct streamid *since, size_t max,
                    struct bus_event **out)
{
    struct bus_room *r = room_find(b, room);

    if (r == NULL || !r->live || r->filling || r->window == NULL ||
        own_unseen(r) || learnt_ahead(r))
        return -1;
    return window_after(r->window, since, max, out);
}

void bus_forget_latest(struct bus *b)
{
    size_t n;
    struct bus_room **rooms = rooms_snapshot(b, &n);

    for (size_t i = 0; i < n; i++) {
        forget_newest(rooms[i]);
        if (rooms[i]->window != NULL)
            window_reset(rooms[i]->window);
    }
    free(rooms);
}

void bus_trimmed(struct bus *b, const char *room)
{
    struct bus_room *r = room_find(b, room);

    if (r != NULL && r->window != NULL)
        window_reset(r->window);
}

void bus_sweep(struct bus *b, int64_t idle_ms)
{
    size_t n;
    struct bus_room **rooms = rooms_snapshot(b, &n);
    int64_t now = event_now_ms(), before = now - idle_ms;

    for (size_t i = 0; i < n; i++) {
        struct bus_room *r = rooms[i];
        typists_sweep(r, now);
        if (r->nsubs == 0 && !r->filling && r->empty_since_ms <= before) {
            if (r->followed && b->hooks.last != NULL)
                b->hooks.last(r->name, b->hooks.arg);
            if (r->followed)
                b->nfollowed--;
            tdelete(r, &b->rooms, room_cmp);
            b->nrooms--;
            room_free(r);
        }
    }
    free(rooms);
}

void bus_foreach_subscriber(struct bus *b,
                            void (*fn)(struct subscriber *s, void *arg),
                            void *arg)
{
    size_t n, nsubs = 0, k = 0;
    struct bus_room **rooms = rooms_snapshot(b, &n);
    struct subscriber **subs, *s;

    for (size_t i = 0; i < n; i++)
        nsubs += rooms[i]->nsubs;
    subs = xcalloc(nsubs + 1, sizeof(*subs));
    for (size_t i = 0; i < n; i++)
        TAILQ_FOREACH(s, &rooms[i]->subs, link)
            subs[k++] = s;
    free(rooms);
    /* fn may unsubscribe and free its subscriber, no other */
    for (size_t i = 0; i < k; i++)
        fn(subs[i], arg);
    free(subs);
}

size_t bus_room_count(struct bus *b)
{
    return b->nactive;
}
