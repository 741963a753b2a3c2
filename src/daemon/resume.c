/* resume.c - bringing a new subscriber up to date: the stored messages
 * after its `since`, then the live ones, none lost and none twice */
#include "resume.h"

#include <stdlib.h>

#include "app.h"
#include "store.h"
#include "xmalloc.h"

#define RESUME_PAGE 500

struct resume {
    struct subscriber *s;  /* NULL once cancelled */
    int left;              /* messages still wanted; <0: all */
    bool tail;             /* asking for the newest id only */
    resume_done_cb done;
};

static void page(struct resume *rs);

static void finish(struct resume *rs, int status)
{
    struct subscriber *s = rs->s;
    resume_done_cb done = rs->done;

    free(rs);
    if (s != NULL) {
        s->resume = NULL;
        done(s, status);
    }
}

static void page_done(int status, struct event *evs, size_t n, void *arg)
{
    struct resume *rs = arg;

    if (rs->s == NULL || status != 0) {
        finish(rs, status);
        return;
    }
    if (rs->tail) {
        /* the newest message marks where the live stream starts */
        if (n > 0)
            rs->s->last = evs[n - 1].sid;
        finish(rs, 0);
        return;
    }
    for (size_t i = 0; i < n && rs->s != NULL; i++) {
        struct bus_event *e = bus_event_new(&evs[i]);
        bus_deliver_one(rs->s, e);
        bus_event_unref(e);
    }
    if (rs->left > 0)
        rs->left -= (int)n;
    /* deliver may have ended the subscriber (slow consumer): it cancels */
    if (rs->s == NULL || n < RESUME_PAGE || rs->left == 0)
        finish(rs, 0);
    else
        page(rs);
}

static void page(struct resume *rs)
{
    int limit = rs->left > 0 && rs->left < RESUME_PAGE ? rs->left : RESUME_PAGE;
    int rc;

    if (rs->tail)
        rc = store_before(app.store, rs->s->room, NULL, 1, page_done, rs);
    else
        rc = store_after(app.store, rs->s->room, &rs->s->last, limit,
                         page_done, rs);
    if (rc != 0)
        finish(rs, -1);
}

void resume_start(struct subscriber *s, const struct streamid *since, int max,
                  resume_done_cb done)
{
    struct resume *rs = xcalloc(1, sizeof(*rs));

    rs->s = s;
    rs->done = done;
    rs->left = max > 0 ? max : -1;
    rs->tail = since == NULL;
    s->last = since ? *since : (struct streamid){0, 0};
    s->resume = rs;
    bus_subscribe(app.bus, s, true);
    page(rs);
}

void resume_cancel(struct subscriber *s)
{
    if (s->resume != NULL) {
        s->resume->s = NULL;
        s->resume = NULL;
    }
}
