/* resume.c - bringing a new subscriber up to date: the stored messages
 * after its `since`, then the live ones, none lost and none twice */
#include "resume.h"

#include <stdlib.h>

#include <event2/event.h>

#include "app.h"
#include "config.h"
#include "store.h"
#include "window.h"
#include "xmalloc.h"

/* Messages read per round trip. Small enough that one page of the largest
 * messages stays within a subscriber's buffer limit. */
#define RESUME_PAGE 100
/* How often a paced resume looks whether the client took its bytes. */
#define RESUME_WAIT_MS 10

struct resume {
    struct subscriber *s; /* NULL once cancelled */
    int left;             /* messages still wanted; <0: all */
    bool tail;            /* asking for the newest id only */
    bool judged;          /* the first page from `since` has been read */
    bool complete;        /* all read: only the final drain is left */
    bool reading;         /* a page is being read from Redis */
    struct event *wait;   /* for the client to take its bytes */
    resume_done_cb done;
};

static void page(struct resume *rs);

static void resume_free(struct resume *rs)
{
    if (rs->wait != NULL)
        event_free(rs->wait);
    free(rs);
}

static void finish(struct resume *rs, int status)
{
    struct subscriber *s = rs->s;
    resume_done_cb done = rs->done;

    resume_free(rs);
    if (s != NULL) {
        s->resume = NULL;
        done(s, status);
    }
}

/* Holds history back while the client is behind: it is paced, never
 * dropped for the client_buffer_limit that applies to live events. */
static bool behind(const struct subscriber *s)
{
    return s->ops->queued != NULL &&
           s->ops->queued(s) > (size_t)app.cfg->client_buffer_limit / 2;
}

static void next(struct resume *rs);

static void waited(evutil_socket_t fd, short what, void *arg)
{
    next(arg);
}

static void next(struct resume *rs)
{
    if (behind(rs->s)) {
        struct timeval tv = {0, RESUME_WAIT_MS * 1000};
        if (rs->wait == NULL)
            rs->wait = evtimer_new(app.base, waited, rs);
        evtimer_add(rs->wait, &tv);
    } else if (rs->complete) {
        finish(rs, 0);
    } else {
        page(rs);
    }
}

/* Delivers a page read after the subscriber's last id and goes on. The
 * resume stays `reading` meanwhile, so a subscriber that ends itself only
 * cancels it (rs->s NULL) and rs stays ours to finish. */
static void page_done(int status, struct chat_event *evs, size_t n, void *arg)
{
    struct resume *rs = arg;

    if (rs->s == NULL || status != 0) {
        rs->reading = false;
        finish(rs, status);
        return;
    }
    if (rs->tail) {
        /* the newest message marks where the live stream starts */
        if (n > 0)
            rs->s->last = evs[n - 1].sid;
        rs->reading = false;
        finish(rs, 0);
        return;
    }
    for (size_t i = 0; i < n && rs->s != NULL; i++) {
        struct bus_event *e = bus_event_new(&evs[i]);
        bus_deliver_one(rs->s, e);
        bus_event_unref(e);
    }
    rs->reading = false;
    if (rs->left > 0)
        rs->left -= (int)n;
    if (rs->s == NULL) {
        finish(rs, 0);
        return;
    }
    rs->complete = rs->complete || n < RESUME_PAGE || rs->left == 0;
    next(rs);
}

/* The first page, with what Redis says of the stream: a gap or a reset is
 * signalled before the replay. After a reset there is nothing to replay:
 * the live stream goes on from the room's newest id. */
static void first_page_done(int status, struct chat_event *evs, size_t n,
                            const struct streamid_log *log, void *arg)
{
    struct resume *rs = arg;
    struct streamid_signal sig;

    if (rs->s != NULL && status == 0) {
        streamid_judge(&rs->s->last, log, &sig);
        if (sig.verdict != STREAMID_FINE)
            bus_signal(rs->s, &sig);
        rs->complete = sig.verdict == STREAMID_RESET;
    }
    page_done(status, evs, n, rs);
}

static void page(struct resume *rs)
{
    int limit = rs->left > 0 && rs->left < RESUME_PAGE ? rs->left : RESUME_PAGE;
    int rc;

    rs->reading = true;
    if (rs->tail) {
        rc = store_before(app.store, rs->s->room, NULL, 1, page_done, rs);
    } else if (!rs->judged) {
        rs->judged = true;
        rc = store_resume(app.store, rs->s->room, &rs->s->last, limit,
                          first_page_done, rs);
    } else {
        rc = store_after(app.store, rs->s->room, &rs->s->last, limit, page_done,
                         rs);
    }
    if (rc != 0) {
        rs->reading = false;
        finish(rs, -1);
    }
}

/* Brings s up to date from the room's window when `since` is inside the
 * span the bus has seen without a break: the messages after it, already
 * encoded, and no round trip. Nothing in that span is missing, so there is
 * no gap to tell; an id the window cannot place goes to Redis. */
static bool from_window(struct subscriber *s, const struct streamid *since,
                        int max, resume_done_cb done)
{
    struct bus_event *evs[WINDOW_EVENTS];
    size_t want = max > 0 && max < WINDOW_EVENTS ? (size_t)max : WINDOW_EVENTS;
    int n = bus_room_recent(app.bus, s->room, since, want, evs);

    if (n < 0)
        return false;
    /* our own references: a delivery must not see the window change */
    for (int i = 0; i < n; i++)
        bus_event_ref(evs[i]);
    bus_subscribe(app.bus, s, true);
    for (int i = 0; i < n; i++) {
        bus_deliver_one(s, evs[i]);
        bus_event_unref(evs[i]);
    }
    done(s, 0);
    return true;
}

void resume_start(struct subscriber *s, const struct streamid *since, int max,
                  resume_done_cb done)
{
    struct resume *rs;
    struct streamid latest;

    s->last = since ? *since : (struct streamid){0, 0};
    if (since != NULL && from_window(s, since, max, done))
        return;
    if (bus_room_latest(app.bus, s->room, &latest) &&
        (since == NULL || streamid_cmp(since, &latest) == 0)) {
        /* Nothing stored after `since` has gone by on the bus: up to date
         * without a round trip (a poll that comes back, a reconnect). An
         * id past the newest seen goes to Redis, which says whether it is
         * from the future (a reset) or only not yet seen here. */
        if (since == NULL)
            s->last = latest;
        bus_subscribe(app.bus, s, true);
        done(s, 0);
        return;
    }
    rs = xcalloc(1, sizeof(*rs));
    rs->s = s;
    rs->done = done;
    rs->left = max > 0 ? max : -1;
    rs->tail = since == NULL;
    s->resume = rs;
    bus_subscribe(app.bus, s, true);
    page(rs);
}

void resume_cancel(struct subscriber *s)
{
    struct resume *rs = s->resume;

    if (rs == NULL)
        return;
    s->resume = NULL;
    if (rs->reading)
        rs->s = NULL; /* the page in flight frees it */
    else
        resume_free(rs); /* only its timer was pending */
}
