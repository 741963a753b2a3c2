/* presence.c - who is online: the connections this daemon holds, kept
 * fresh in Redis, and the room's presence announced on the bus */
#include "presence.h"

#include <search.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "app.h"
#include "bus.h"
#include "config.h"
#include "event.h"
#include "names.h"
#include "statrec.h"
#include "store.h"
#include "xmalloc.h"

/* Announcements of one room are gathered for this long: N users joining
 * at once cost one presence event, not N (each listing up to N names). */
#define ANNOUNCE_DELAY_MS 250

/* A (room, user) this daemon knows of: held by open streams, or touched by
 * a poll or a send lately. */
struct seen {
    char room[NAME_ROOM_MAX + 1];
    char user[NAME_USER_MAX + 1];
    unsigned held;      /* open streams */
    int64_t written_ms; /* when its expiry was last written to Redis */
};

/* A room whose presence will be announced shortly. */
struct pending {
    char room[NAME_ROOM_MAX + 1];
    struct event *timer;
};

static void *entries; /* tsearch of struct seen, by room then user */
static size_t n_entries;
static void *pendings; /* tsearch of struct pending, by room */
static struct event *refresher;
/* this process in the room's presence set ("host:pid") */
static char holder[STATREC_ID_MAX];

static int seen_cmp(const void *a, const void *b)
{
    const struct seen *x = a, *y = b;
    int c = strcmp(x->room, y->room);

    return c ? c : strcmp(x->user, y->user);
}

static int pending_cmp(const void *a, const void *b)
{
    return strcmp(((const struct pending *)a)->room,
                  ((const struct pending *)b)->room);
}

static struct seen *find(const char *room, const char *user, bool create)
{
    struct seen key, *e;
    void *node;

    snprintf(key.room, sizeof(key.room), "%s", room);
    snprintf(key.user, sizeof(key.user), "%s", user);
    if ((node = tfind(&key, &entries, seen_cmp)) != NULL)
        return *(struct seen **)node;
    if (!create)
        return NULL;
    e = xmalloc(sizeof(*e));
    *e = key;
    e->held = 0;
    e->written_ms = 0;
    tsearch(e, &entries, seen_cmp);
    n_entries++;
    return e;
}

static void forget(struct seen *e)
{
    tdelete(e, &entries, seen_cmp);
    n_entries--;
    free(e);
}

/* --- announcing --- */

static void announce_online(int status, const char *const *names, size_t n,
                            void *arg)
{
    char *room = arg;
    struct chat_event ev;

    if (status == 0) {
        event_init_presence(&ev, room, names, n, event_now_ms());
        store_publish(app.store, &ev, NULL, NULL);
        event_clear(&ev);
    }
    free(room);
}

static void announce_now(evutil_socket_t fd, short what, void *arg)
{
    struct pending *p = arg;
    char *room = xstrdup(p->room);

    tdelete(p, &pendings, pending_cmp);
    event_free(p->timer);
    free(p);
    if (store_online(app.store, room, announce_online, room) != 0)
        free(room);
}

/* Publishes the room's presence soon, once for everything until then. */
static void announce(const char *room)
{
    struct pending key, *p;
    struct timeval tv = {0, ANNOUNCE_DELAY_MS * 1000};

    snprintf(key.room, sizeof(key.room), "%s", room);
    if (tfind(&key, &pendings, pending_cmp) != NULL)
        return;
    p = xmalloc(sizeof(*p));
    *p = key;
    p->timer = evtimer_new(app.base, announce_now, p);
    tsearch(p, &pendings, pending_cmp);
    evtimer_add(p->timer, &tv);
}

/* --- writing expiries --- */

struct write {
    char room[NAME_ROOM_MAX + 1];
};

static void written(int status, bool changed, void *arg)
{
    struct write *w = arg;

    /* a user new to the list (a join, or back after expiring), or expired
     * users dropped on the way */
    if (status == 0 && changed)
        announce(w->room);
    free(w);
}

static void write_expiry(struct seen *e, int64_t now)
{
    struct write *w = xmalloc(sizeof(*w));

    strcpy(w->room, e->room);
    e->written_ms = now;
    if (store_presence_add(app.store, e->room, e->user, holder,
                           now + app.cfg->presence_ttl * 1000LL, written,
                           w) != 0)
        free(w);
}

static int64_t refresh_ms(void)
{
    int64_t every = app.cfg->presence_ttl * 1000LL / 3;

    return every > 0 ? every : 1;
}

/* Writes e's expiry unless it was written less than refresh_ms ago: a
 * poller asking many times a second costs Redis one write per period. A
 * held one is rewritten by refresh() in time. */
static void keep(struct seen *e)
{
    int64_t now = event_now_ms();

    if (e->written_ms == 0 || now - e->written_ms >= refresh_ms())
        write_expiry(e, now);
}

void presence_touch(const char *room, const char *user)
{
    keep(find(room, user, true));
}

void presence_join(const char *room, const char *user)
{
    struct seen *e = find(room, user, true);

    e->held++;
    keep(e);
}

void presence_release(const char *room, const char *user)
{
    struct seen *e = find(room, user, false);

    if (e != NULL && e->held > 0)
        e->held--;
}

void presence_leave(const char *room, const char *user)
{
    struct seen *e = find(room, user, false);

    if (e == NULL || e->held == 0 || --e->held > 0)
        return;
    if (!app.draining) {
        store_presence_remove(app.store, room, user, holder);
        announce(room);
    }
    forget(e);
}

/* Drops the room's expired users from Redis, and announces the room when
 * there were any. */
static void expire_room(const char *room, void *arg)
{
    struct write *w = xmalloc(sizeof(*w));

    (void)arg;
    snprintf(w->room, sizeof(w->room), "%s", room);
    if (store_presence_expire(app.store, room, written, w) != 0)
        free(w);
}

/* twalk has no argument: the sweep in progress keeps its own. */
static struct seen **sweep_list;
static size_t sweep_n;

static void collect(const void *node, VISIT which, int depth)
{
    if (which == postorder || which == leaf)
        sweep_list[sweep_n++] = *(struct seen *const *)node;
}

/* Rewrites the expiry of every held user, and forgets touched users whose
 * expiry has passed. Expired users are dropped from the rooms this daemon
 * has subscribers in, and from those of the users it forgets: they are
 * offline by now, and the streams would otherwise list them until the
 * room's next presence event. Whoever drops a user announces the room
 * (expire_room, or a touch that drops it first), so an expiry is announced
 * once, whether a daemon or the pool last saw the user; a room nobody here
 * listens to is left to the next touch or to the key's own expiry. */
static void refresh(evutil_socket_t fd, short what, void *arg)
{
    int64_t now = event_now_ms();

    if (!app.draining)
        bus_foreach_room(app.bus, expire_room, NULL);
    if (n_entries == 0)
        return;
    sweep_list = xcalloc(n_entries, sizeof(*sweep_list));
    sweep_n = 0;
    twalk(entries, collect);
    for (size_t i = 0; i < sweep_n; i++) {
        struct seen *e = sweep_list[i];
        if (e->held > 0)
            write_expiry(e, now);
        else if (now - e->written_ms > app.cfg->presence_ttl * 1000LL) {
            if (!app.draining)
                expire_room(e->room, NULL);
            forget(e);
        }
    }
    free(sweep_list);
    sweep_list = NULL;
}

void presence_start(void)
{
    int64_t every = refresh_ms();
    struct timeval tv = {every / 1000, (every % 1000) * 1000};

    statrec_self_id(holder, sizeof(holder));

    refresher = event_new(app.base, -1, EV_PERSIST, refresh, NULL);
    event_add(refresher, &tv);
}

static void free_pending(void *arg)
{
    struct pending *p = arg;

    event_free(p->timer);
    free(p);
}

void presence_stop(void)
{
    if (refresher != NULL)
        event_free(refresher);
    refresher = NULL;
    tdestroy(entries, free);
    entries = NULL;
    n_entries = 0;
    tdestroy(pendings, free_pending);
    pendings = NULL;
}
