/* window.c - the newest stored messages of a room the bus follows */
#include "window.h"

#include <stdbool.h>
#include <stdlib.h>

#include "xmalloc.h"

struct window {
    struct bus_event *ring[WINDOW_EVENTS]; /* oldest at head, ids rising */
    size_t head, n;
    size_t bytes; /* the JSON of what is held */
    /* Every stored message after `since` up to `newest` has been seen and
     * is held: the span the window answers for. Evicting a message moves
     * `since` up to it. */
    bool known;
    struct streamid since, newest;
};

struct window *window_new(void)
{
    return xcalloc(1, sizeof(struct window));
}

static struct bus_event *at(const struct window *w, size_t i)
{
    return w->ring[(w->head + i) % WINDOW_EVENTS];
}

static void evict_oldest(struct window *w)
{
    struct bus_event *e = w->ring[w->head];

    w->since = e->ev.sid;
    w->bytes -= e->json->len;
    bus_event_unref(e);
    w->ring[w->head] = NULL;
    w->head = (w->head + 1) % WINDOW_EVENTS;
    w->n--;
}

void window_reset(struct window *w)
{
    while (w->n > 0)
        evict_oldest(w);
    w->head = 0;
    w->known = false;
}

void window_free(struct window *w)
{
    if (w == NULL)
        return;
    window_reset(w);
    free(w);
}

void window_add(struct window *w, struct bus_event *e)
{
    size_t len = e->json->len;

    if (e->ev.type != EVENT_MESSAGE)
        return;
    if (w->known) {
        int cmp = streamid_cmp(&e->ev.sid, &w->newest);
        if (cmp == 0)
            return;
        if (cmp < 0)
            window_reset(w);
    }
    if (!w->known) {
        /* what came before this message is unknown: it only starts the
         * span, and a poll at its id is up to date */
        w->known = true;
        w->since = w->newest = e->ev.sid;
        return;
    }
    while (w->n > 0 && (w->n == WINDOW_EVENTS || w->bytes + len > WINDOW_BYTES))
        evict_oldest(w);
    w->ring[(w->head + w->n) % WINDOW_EVENTS] = bus_event_ref(e);
    w->n++;
    w->bytes += len;
    w->newest = e->ev.sid;
}

int window_after(const struct window *w, const struct streamid *since,
                 size_t max, struct bus_event **out)
{
    size_t lo = 0, hi, k = 0;

    if (!w->known || streamid_cmp(since, &w->since) < 0 ||
        streamid_cmp(since, &w->newest) > 0)
        return -1;
    /* the first message after `since` */
    hi = w->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (streamid_cmp(&at(w, mid)->ev.sid, since) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    while (lo + k < w->n && k < max) {
        out[k] = at(w, lo + k);
        k++;
    }
    return (int)k;
}

size_t window_count(const struct window *w)
{
    return w->n;
}
