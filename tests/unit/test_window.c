/* test_window.c - the window of recent messages at its edges: the oldest
 * and newest it holds, eviction, limits, and the breaks in the feed that
 * make it start again (a lost subscription, a fill) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "tap.h"
#include "window.h"

static struct bus_event *message(const char *room, unsigned long long ms,
                                 size_t text_len)
{
    struct chat_event ev;
    char id[STREAMID_STRLEN];
    char *text = malloc(text_len + 1);

    memset(text, 'x', text_len);
    text[text_len] = '\0';
    snprintf(id, sizeof(id), "%llu-0", ms);
    event_init_message(&ev, room, id, "alice", text, text_len, 1);
    free(text);
    return bus_event_new(&ev);
}

static void add(struct window *w, unsigned long long ms)
{
    struct bus_event *e = message("lobby", ms, 2);

    window_add(w, e);
    bus_event_unref(e);
}

static struct streamid id(unsigned long long ms, unsigned long long seq)
{
    return (struct streamid){ms, seq};
}

/* The count window_after answers after ms-seq, and the ids it gives as
 * "ms,ms,..." in `got`. */
static int after(const struct window *w, unsigned long long ms,
                 unsigned long long seq, size_t max, char *got, size_t size)
{
    struct bus_event *evs[WINDOW_EVENTS];
    struct streamid since = id(ms, seq);
    int n = window_after(w, &since, max, evs);

    got[0] = '\0';
    for (int i = 0; i < n; i++) {
        size_t used = strlen(got);
        snprintf(got + used, size - used, "%s%llu", i ? "," : "",
                 (unsigned long long)evs[i]->ev.sid.ms);
    }
    return n;
}

static void test_edges(void)
{
    struct window *w = window_new();
    char got[4096];

    is_int(after(w, 0, 0, 10, got, sizeof(got)), -1,
           "an empty window cannot tell");
    add(w, 10);
    is_int(window_count(w), 0, "the first message only starts the span");
    is_int(after(w, 10, 0, 10, got, sizeof(got)), 0,
           "since = that message: up to date");
    is_int(after(w, 9, 0, 10, got, sizeof(got)), -1,
           "since before it: unknown (messages may precede it)");
    for (unsigned long long ms = 11; ms <= 15; ms++)
        add(w, ms);
    is_int(after(w, 10, 0, 10, got, sizeof(got)), 5,
           "since = the start of the span (oldest - 1): all five");
    is_str(got, "11,12,13,14,15", "  in id order");
    is_int(after(w, 11, 0, 10, got, sizeof(got)), 4, "since = oldest held");
    is_str(got, "12,13,14,15", "  the oldest is not given again");
    is_int(after(w, 12, 7, 10, got, sizeof(got)), 3,
           "since between two held ids");
    is_str(got, "13,14,15", "  what follows it");
    is_int(after(w, 15, 0, 10, got, sizeof(got)), 0,
           "since = the newest: up to date");
    is_int(after(w, 15, 1, 10, got, sizeof(got)), -1,
           "since beyond the newest: unknown (Redis judges it)");
    is_int(after(w, 9, 99, 10, got, sizeof(got)), -1,
           "since before the span: unknown");
    is_int(after(w, 10, 0, 2, got, sizeof(got)), 2,
           "a limit smaller than what is held");
    is_str(got, "11,12", "  the oldest first");
    is_int(after(w, 12, 0, 2, got, sizeof(got)), 2, "  and the next page");
    is_str(got, "13,14", "  goes on where it stopped");

    add(w, 15);
    is_int(window_count(w), 5, "a repeat of the newest is ignored");
    add(w, 14);
    is_int(after(w, 10, 0, 10, got, sizeof(got)), -1,
           "a message older than the newest breaks the order: reset");
    is_int(after(w, 14, 0, 10, got, sizeof(got)), 0,
           "  and starts the span again from it");
    window_reset(w);
    is_int(after(w, 14, 0, 10, got, sizeof(got)), -1,
           "after an interruption nothing is answered");
    add(w, 20);
    add(w, 21);
    is_int(after(w, 20, 0, 10, got, sizeof(got)), 1,
           "  until the next message starts a span");
    is_int(after(w, 15, 0, 10, got, sizeof(got)), -1,
           "  which does not reach back past the break");
    window_free(w);
}

static void test_eviction(void)
{
    struct window *w = window_new();
    unsigned long long first = 1000, last = first + WINDOW_EVENTS + 10;
    char got[8192];
    char want[64];
    struct bus_event *big;

    for (unsigned long long ms = first; ms <= last; ms++)
        add(w, ms);
    is_int(window_count(w), WINDOW_EVENTS, "at most WINDOW_EVENTS held");
    /* held: last - WINDOW_EVENTS + 1 .. last; the newest evicted is
     * last - WINDOW_EVENTS, which bounds the span now */
    is_int(after(w, last - WINDOW_EVENTS, 0, WINDOW_EVENTS, got, sizeof(got)),
           WINDOW_EVENTS, "since = the newest evicted: all held");
    snprintf(want, sizeof(want), "%llu,", last - WINDOW_EVENTS + 1);
    ok(strncmp(got, want, strlen(want)) == 0, "  from the oldest held (%s)",
       want);
    is_int(after(w, last - WINDOW_EVENTS - 1, 0, 10, got, sizeof(got)), -1,
           "since = an evicted message: unknown (Redis)");
    is_int(after(w, last - WINDOW_EVENTS, 5, 1, got, sizeof(got)), 1,
           "since just after the newest evicted");
    snprintf(want, sizeof(want), "%llu", last - WINDOW_EVENTS + 1);
    is_str(got, want, "  the oldest held");

    /* bytes bound it too: one large message pushes out small ones */
    big = message("lobby", last + 1, WINDOW_BYTES * 3 / 4);
    window_add(w, big);
    bus_event_unref(big);
    ok(window_count(w) < WINDOW_EVENTS, "a large message evicts by bytes (%zu)",
       window_count(w));
    is_int(after(w, last, 0, 10, got, sizeof(got)), 1,
           "  and is answered after the newest before it");
    window_free(w);
}

/* Through the bus: live messages go in, fills and lost subscriptions
 * start it again, and the sweep drops it with its room. */
struct probe {
    struct subscriber sub;
    int n;
};

static void deliver(struct subscriber *s, struct bus_event *e)
{
    ((struct probe *)s)->n++;
}

static void closed(struct subscriber *s)
{
}

static const struct subscriber_ops ops = {.deliver = deliver, .close = closed};

static void publish(struct bus *b, unsigned long long ms,
                    struct bus_event **keep)
{
    struct bus_event *e = message("lobby", ms, 2);

    bus_publish(b, e);
    if (keep != NULL)
        *keep = e;
    else
        bus_event_unref(e);
}

static int recent(struct bus *b, const char *room, unsigned long long ms,
                  struct bus_event **evs)
{
    struct streamid since = id(ms, 0);

    return bus_room_recent(b, room, &since, WINDOW_EVENTS, evs);
}

static void test_bus(void)
{
    struct bus *b = bus_new(0);
    struct probe p;
    struct bus_event *evs[WINDOW_EVENTS], *sent;

    memset(&p, 0, sizeof(p));
    p.sub.ops = &ops;
    strcpy(p.sub.room, "lobby");
    publish(b, 1, NULL);
    is_int(recent(b, "lobby", 1, evs), -1, "no room: nothing kept");
    bus_subscribe(b, &p.sub, false);
    publish(b, 2, NULL);
    publish(b, 3, &sent);
    publish(b, 4, NULL);
    is_int(recent(b, "lobby", 2, evs), 2,
           "a subscribed room keeps its live "
           "messages");
    ok(evs[0] == sent, "  the very event the bus delivered (its encodings)");
    bus_event_unref(sent);
    is_int(recent(b, "lobby", 1, evs), -1,
           "  from the first it saw, not before");
    is_int(recent(b, "nowhere", 2, evs), -1, "another room: unknown");

    bus_fill_begin(b, "lobby");
    is_int(recent(b, "lobby", 4, evs), -1, "a fill: unknown while it runs");
    publish(b, 7, NULL); /* live, held by the fill */
    sent = message("lobby", 5, 2);
    bus_fill_publish(b, sent);
    bus_event_unref(sent);
    sent = message("lobby", 6, 2);
    bus_fill_publish(b, sent);
    bus_event_unref(sent);
    bus_fill_end(b, "lobby");
    is_int(p.n, 6, "the subscriber got 2..7");
    is_int(recent(b, "lobby", 4, evs), -1,
           "after a fill the window does not reach back past it");
    is_int(recent(b, "lobby", 6, evs), -1,
           "  nor to what the fill read (it was not seen live)");
    is_int(recent(b, "lobby", 7, evs), 0,
           "  it starts again at the first live message");
    publish(b, 8, NULL);
    is_int(recent(b, "lobby", 7, evs), 1, "  and goes on from there");

    bus_forget_latest(b);
    is_int(recent(b, "lobby", 8, evs), -1,
           "a lost subscription: unknown again");
    publish(b, 9, NULL);
    publish(b, 10, NULL);
    is_int(recent(b, "lobby", 9, evs), 1, "  until the next messages");

    bus_unsubscribe(b, &p.sub);
    bus_sweep(b, 60000);
    is_int(recent(b, "lobby", 9, evs), 1,
           "a room kept after its last "
           "subscriber keeps its window");
    bus_sweep(b, -1);
    is_int(recent(b, "lobby", 9, evs), -1, "  until the sweep drops the room");
    bus_free(b);
}

int main(void)
{
    test_edges();
    test_eviction();
    test_bus();
    return tap_done();
}
