/* test_bus.c - the bus alone: fan-out, one encoding per event, dedupe by
 * id, held events while resuming or filling, unsubscribing in delivery */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "bus.h"
#include "tap.h"

struct probe {
    struct subscriber sub;
    char got[16][64];
    int n;
    bool leave_on_deliver;
    struct bus *bus;
};

static int encodes;

static struct bus_blob *encode(const struct bus_event *e)
{
    struct bus_blob *b = bus_blob_new(e->json->len + 2);

    encodes++;
    memcpy(b->data, "<", 1);
    memcpy(b->data + 1, e->json->data, e->json->len);
    memcpy(b->data + 1 + e->json->len, ">", 1);
    return b;
}

static void deliver(struct subscriber *s, struct bus_event *e)
{
    struct probe *p = (struct probe *)s;

    bus_event_encoded(e, BUS_SLOT_SSE, encode);
    snprintf(p->got[p->n++], 64, "%s", e->ev.id[0] ? e->ev.id : "typing");
    if (p->leave_on_deliver)
        bus_unsubscribe(p->bus, s);
}

static void closed(struct subscriber *s)
{
}

/* A signal is recorded as "truncated:ID" or "reset:ID". */
static void signalled(struct subscriber *s, const struct streamid_signal *sig)
{
    struct probe *p = (struct probe *)s;
    char id[STREAMID_STRLEN];

    snprintf(p->got[p->n++], 64, "%s:%s",
             sig->verdict == STREAMID_RESET ? "reset" : "truncated",
             streamid_format(&sig->id, id));
}

static const struct subscriber_ops ops = {
    .deliver = deliver, .close = closed, .signal = signalled};

static void probe_init(struct probe *p, struct bus *b, const char *room)
{
    memset(p, 0, sizeof(*p));
    p->sub.ops = &ops;
    p->bus = b;
    strcpy(p->sub.room, room);
    strcpy(p->sub.user, "u");
}

static struct bus_event *message(const char *room, const char *id)
{
    struct chat_event ev;

    event_init_message(&ev, room, id, "alice", "hi", 2, 1);
    return bus_event_new(&ev);
}

static void publish(struct bus *b, const char *room, const char *id)
{
    struct bus_event *e = message(room, id);

    bus_publish(b, e);
    bus_event_unref(e);
}

static void typing(struct bus *b, const char *room, const char *user)
{
    struct chat_event ev;
    struct bus_event *e;

    event_init_typing(&ev, room, user, 1);
    e = bus_event_new(&ev);
    bus_publish(b, e);
    bus_event_unref(e);
}

/* Typing events of one user in one room go out at most once per
 * BUS_TYPING_GAP_MS, whatever their number; other users and rooms are not
 * held back. */
static void test_typing(void)
{
    struct bus *b = bus_new(0);
    struct probe p, q;
    struct timespec gap = {0, (BUS_TYPING_GAP_MS + 50) * 1000000L};

    probe_init(&p, b, "lobby");
    probe_init(&q, b, "other");
    bus_subscribe(b, &p.sub, false);
    bus_subscribe(b, &q.sub, false);
    for (int i = 0; i < 1000; i++)
        typing(b, "lobby", "bob");
    is_int(p.n, 1, "1000 typing events of one user at once: one goes out");
    typing(b, "lobby", "carol");
    is_int(p.n, 2, "another user's typing is not held back");
    typing(b, "other", "bob");
    is_int(q.n, 1, "nor the same user's in another room");
    nanosleep(&gap, NULL);
    bus_sweep(b, 60000); /* forgets bob and carol: their gap is over */
    typing(b, "lobby", "bob");
    typing(b, "lobby", "bob");
    is_int(p.n, 3, "after the gap, one more goes out");
    publish(b, "lobby", "1-0");
    publish(b, "lobby", "2-0");
    is_int(p.n, 5, "messages are never coalesced");
    bus_unsubscribe(b, &p.sub);
    bus_unsubscribe(b, &q.sub);
    bus_free(b); /* frees the typists it still knows */
}

/* A resuming subscriber with bytes queued to its client. */
struct backlog {
    struct subscriber sub;
    struct bus *bus;
    size_t queued;
    int delivered, dropped;
};

static void backlog_deliver(struct subscriber *s, struct bus_event *e)
{
    ((struct backlog *)s)->delivered++;
}

static size_t backlog_queued(const struct subscriber *s)
{
    return ((const struct backlog *)s)->queued;
}

static void backlog_drop(struct subscriber *s)
{
    struct backlog *k = (struct backlog *)s;

    k->dropped++;
    bus_unsubscribe(k->bus, s);
}

static const struct subscriber_ops backlog_ops = {.deliver = backlog_deliver,
                                                  .close = closed,
                                                  .queued = backlog_queued,
                                                  .drop = backlog_drop};

/* What the bus holds for a resuming subscriber counts with what is queued
 * to its client against the limit; past it the subscriber is dropped. */
static void test_backlog(void)
{
    struct bus *b = bus_new(1000);
    struct backlog k, fast;
    struct bus_event *e = message("lobby", "1-0");
    size_t len = e->json->len;
    int n = 0;

    bus_event_unref(e);
    memset(&k, 0, sizeof(k));
    k.sub.ops = &backlog_ops;
    k.bus = b;
    strcpy(k.sub.room, "lobby");
    fast = k;
    k.queued = 500;
    bus_subscribe(b, &k.sub, true);
    bus_subscribe(b, &fast.sub, true);
    while (k.sub.br != NULL && n < 100) {
        char id[32];
        snprintf(id, sizeof(id), "%d-0", ++n);
        publish(b, "lobby", id);
    }
    is_int(k.dropped, 1, "a resuming subscriber is dropped past the limit");
    is_int(n, (int)((1000 - 500) / len + 1),
           "  when held events and queued bytes pass 1000");
    is_int(k.sub.held_bytes, 0, "  and holds nothing after");
    is_int(k.delivered, 0, "  having been given nothing live");
    is_int(fast.dropped, 0, "one with nothing queued holds on");
    is_int(fast.sub.held_bytes, n * len, "  counting what it holds");
    bus_resume_done(&fast.sub);
    is_int(fast.delivered, n, "  and gets it all when its resume is done");
    is_int(fast.sub.held_bytes, 0, "  after which it holds nothing");
    publish(b, "lobby", "1000-0");
    is_int(fast.dropped, 0, "live events past the resume are the transport's");
    bus_unsubscribe(b, &fast.sub);
    bus_free(b);
}

static int hook_calls[3]; /* first, last, catch_up */

static void on_first(const char *room, void *arg)
{
    hook_calls[0]++;
}

static void on_last(const char *room, void *arg)
{
    hook_calls[1]++;
}

static void on_catch_up(const char *room, void *arg)
{
    hook_calls[2]++;
}

/* With room hooks (the feed's per-room subscriptions): a room is told of
 * its first and last subscriber; one that joins before the room's
 * subscription is confirmed waits after its resume for a fill read after
 * the confirmation, and gets what it held, in order, once. */
static void test_room_hooks(void)
{
    struct bus *b = bus_new(0);
    struct bus_room_hooks h = {on_first, on_last, on_catch_up, NULL};
    struct probe p1, p2;
    struct streamid latest, oldest;
    struct bus_event *e;

    bus_set_room_hooks(b, &h);
    probe_init(&p1, b, "hooked");
    probe_init(&p2, b, "hooked");
    bus_subscribe(b, &p1.sub, true);
    p1.sub.last = (struct streamid){3, 0}; /* what its history read ended at */
    bus_subscribe(b, &p2.sub, true);
    is_int(hook_calls[0], 1, "first: once for the room");
    ok(p1.sub.stale && p2.sub.stale, "joined before the subscription: stale");
    publish(b, "hooked", "4-0");
    ok(!bus_room_latest(b, "hooked", &latest),
       "no newest message known before the subscription is confirmed");
    ok(!bus_room_oldest(b, "hooked", &oldest),
       "nobody to fill for while all still read their history");
    bus_resume_done(&p1.sub);
    ok(p1.sub.resuming && p1.sub.waiting, "a stale resume waits for a fill");
    is_int(hook_calls[2], 1, "  and asks for it (catch_up)");
    is_int(p1.n, 0, "  given nothing meanwhile");

    bus_room_live(b, "hooked", true);
    ok(bus_room_oldest(b, "hooked", &oldest) && oldest.ms == 3,
       "the fill reads after the waiting one's last id");
    bus_fill_begin(b, "hooked");
    e = message("hooked", "4-0");
    bus_fill_publish(b, e);
    bus_event_unref(e);
    publish(b, "hooked", "5-0"); /* live, during the fill */
    bus_fill_end(b, "hooked");
    ok(!p1.sub.resuming && !p1.sub.waiting, "the fill's end ends its resume");
    is_int(p1.n, 2, "  it got the fill and the live message");
    is_str(p1.got[0], "4-0", "  4-0 once");
    is_str(p1.got[1], "5-0", "  then 5-0");
    ok(p2.sub.resuming && p2.sub.stale, "one still reading stays stale");
    is_int(hook_calls[2], 1, "  and asks for nothing until it is done");
    bus_resume_done(&p2.sub);
    is_int(hook_calls[2], 2, "  then asks for its own fill");
    bus_fill_begin(b, "hooked");
    bus_fill_end(b, "hooked");
    ok(!p2.sub.resuming, "  and goes live after it");

    bus_unsubscribe(b, &p2.sub);
    bus_subscribe(b, &p2.sub, true);
    ok(!p2.sub.stale, "joining a confirmed room: not stale");
    bus_resume_done(&p2.sub);
    ok(!p2.sub.resuming, "  its resume ends at once");
    bus_unsubscribe(b, &p2.sub);
    bus_subscribe(b, &p2.sub, true);
    bus_room_live(b, "hooked", false);
    ok(p2.sub.stale && !p1.sub.stale,
       "the subscription lost: resuming ones are stale, live ones filled");
    ok(!bus_room_latest(b, "hooked", &latest), "  newest message forgotten");
    is_int(hook_calls[1], 0, "last: not yet");
    bus_unsubscribe(b, &p1.sub);
    bus_unsubscribe(b, &p2.sub);
    is_int(hook_calls[1], 1, "last: when the room empties");
    is_int(hook_calls[0], 1, "first: still once");
    {
        /* what Redis says of a live room's stream tells its newest */
        struct streamid_log quiet = {true, 2, {1, 0}, {7, 0}, 0};
        struct streamid_log none = {false, 0, {0, 0}, {0, 0}, 0};
        uint64_t epoch;

        bus_room_follow(b, "learnt");
        is_int((int)bus_room_epoch(b, "learnt"), 0,
               "learn: not live, no epoch");
        bus_room_live(b, "learnt", true);
        epoch = bus_room_epoch(b, "learnt");
        ok(epoch != 0 && !bus_room_knows_latest(b, "learnt"),
           "  live: an epoch, the newest unknown");
        bus_room_learn(b, "learnt", epoch + 1, &quiet);
        ok(!bus_room_knows_latest(b, "learnt"),
           "  another epoch's read: ignored");
        bus_room_learn(b, "learnt", epoch, &quiet);
        ok(bus_room_latest(b, "learnt", &latest) && latest.ms == 7,
           "  this epoch's: the stream's newest is the room's");
        publish(b, "learnt", "8-0");
        bus_room_learn(b, "learnt", epoch, &quiet);
        ok(bus_room_latest(b, "learnt", &latest) && latest.ms == 8,
           "  an older read does not undo what the bus saw");
        bus_room_live(b, "learnt", false);
        bus_room_learn(b, "learnt", epoch, &quiet);
        ok(!bus_room_knows_latest(b, "learnt"),
           "  a read from before a break: ignored");
        bus_room_live(b, "learnt", true);
        ok(bus_room_epoch(b, "learnt") != epoch,
           "  a renewed subscription: a new epoch");
        bus_room_learn(b, "learnt", bus_room_epoch(b, "learnt"), &none);
        ok(bus_room_latest(b, "learnt", &latest) && streamid_is_zero(&latest),
           "  no stream: the newest is 0-0");
        {
            /* Redis told of 9-0; the bus, behind, delivers 8-5 first */
            struct streamid_log ahead = {true, 1, {9, 0}, {9, 0}, 0};
            struct streamid at = {8, 5};
            struct bus_event *evs[4];

            bus_room_learn(b, "learnt", bus_room_epoch(b, "learnt"), &ahead);
            publish(b, "learnt", "8-5");
            ok(bus_room_latest(b, "learnt", &latest) && latest.ms == 9,
               "  learnt ahead of the bus: the newest is what Redis said");
            ok(bus_room_recent(b, "learnt", &at, 4, evs) < 0,
               "  and the window, which lacks 9-0, does not answer");
            publish(b, "learnt", "9-0");
            ok(bus_room_recent(b, "learnt", &at, 4, evs) == 1 &&
                   evs[0]->ev.sid.ms == 9,
               "  once the bus delivered it, the window answers");
            epoch = bus_room_epoch(b, "learnt");
            bus_room_forget(b, "learnt");
            ok(!bus_room_knows_latest(b, "learnt") &&
                   bus_room_recent(b, "learnt", &at, 4, evs) < 0,
               "forget: the newest and the window are gone");
            ok(bus_room_epoch(b, "learnt") != epoch,
               "  and reads sent before are not believed");
        }
        bus_sweep(b, -1);
        hook_calls[1]--; /* its sweep's `last` */
    }
    bus_room_follow(b, "polled");
    is_int(hook_calls[0], 3, "first: a room followed by short polls");
    bus_room_follow(b, "polled");
    strcpy(p1.sub.room, "polled");
    bus_subscribe(b, &p1.sub, false);
    bus_unsubscribe(b, &p1.sub);
    is_int(hook_calls[0] * 10 + hook_calls[1], 31,
           "  once; its subscribers come and go without first or last");
    bus_sweep(b, -1);
    is_int(hook_calls[1], 2, "last: when it is swept");
    bus_free(b);
}

/* A subscriber that joined before the room's subscription was confirmed
 * holds the live messages that came after it; the fill then brings what
 * was published before it, older than some of those. It gets each once,
 * in order (a message held before an older one used to hide it). */
static void test_fill_after_live(void)
{
    struct bus *b = bus_new(0);
    struct bus_room_hooks h = {on_first, on_last, on_catch_up, NULL};
    struct probe p;
    struct bus_event *e;
    const char *fill[] = {"4-0", "5-0", "6-0"};

    bus_set_room_hooks(b, &h);
    probe_init(&p, b, "raced");
    bus_subscribe(b, &p.sub, true);
    p.sub.last = (struct streamid){3, 0}; /* its history read: nothing new */
    bus_room_live(b, "raced", true);      /* 4-0 was published before this */
    publish(b, "raced", "5-0");
    typing(b, "raced", "bob");
    publish(b, "raced", "6-0");
    bus_resume_done(&p.sub);
    is_int(p.n, 0, "fill after live: nothing before the fill");
    bus_fill_begin(b, "raced");
    for (size_t i = 0; i < 3; i++) {
        e = message("raced", fill[i]);
        bus_fill_publish(b, e);
        bus_event_unref(e);
    }
    bus_fill_end(b, "raced");
    is_int(p.n, 4, "  three messages and the typing event");
    is_str(p.got[0], "4-0", "  4-0, published before the subscription, first");
    is_str(p.got[1], "5-0", "  then 5-0 once");
    is_str(p.got[2], "typing", "  the typing event where it came");
    is_str(p.got[3], "6-0", "  then 6-0 once");
    bus_unsubscribe(b, &p.sub);
    bus_free(b);
}

/* Short polls of made-up rooms cannot make the bus follow (subscribe)
 * without bound: past BUS_FOLLOW_MAX a room it does not know is left alone,
 * a room it knows is still followed, and a sweep makes room again. */
static void test_follow_cap(void)
{
    struct bus *b = bus_new(0);
    struct bus_room_hooks h = {on_first, on_last, on_catch_up, NULL};
    struct streamid latest;
    char room[32];
    struct probe p;

    hook_calls[0] = hook_calls[1] = 0;
    bus_set_room_hooks(b, &h);
    for (int i = 0; i < BUS_FOLLOW_MAX + 10; i++) {
        snprintf(room, sizeof(room), "made-up-%d", i);
        bus_room_follow(b, room);
    }
    is_int((long)bus_followed(b), BUS_FOLLOW_MAX,
           "followed rooms stop at the cap");
    is_int(hook_calls[0], BUS_FOLLOW_MAX,
           "  one subscription (first) each, no more");
    bus_room_follow(b, "made-up-1030");
    ok(!bus_room_latest(b, "made-up-1030", &latest) &&
           bus_room_recent(b, "made-up-1030", &latest, 1, NULL) < 0,
       "  a room past the cap is not kept");
    probe_init(&p, b, "listened");
    bus_subscribe(b, &p.sub, false);
    bus_room_follow(b, "listened");
    is_int((long)bus_followed(b), BUS_FOLLOW_MAX + 1,
           "  a room with a listener is followed whatever the cap");
    bus_unsubscribe(b, &p.sub);
    bus_sweep(b, -1);
    is_int((long)bus_followed(b), 0, "a sweep forgets them");
    bus_room_follow(b, "made-up-1030");
    is_int((long)bus_followed(b), 1, "  and the next poll is followed again");
    bus_free(b);
}

int main(void)
{
    struct bus *b = bus_new(0);
    struct probe p1, p2, p3;
    struct bus_event *e;
    struct chat_event ev;
    struct evbuffer *out;

    probe_init(&p1, b, "lobby");
    probe_init(&p2, b, "lobby");
    probe_init(&p3, b, "other");
    bus_subscribe(b, &p1.sub, false);
    bus_subscribe(b, &p2.sub, false);
    bus_subscribe(b, &p3.sub, false);
    is_int(bus_room_count(b), 2, "two rooms");

    publish(b, "lobby", "5-0");
    is_int(p1.n, 1, "first subscriber got it");
    is_int(p2.n, 1, "second subscriber got it");
    is_int(p3.n, 0, "another room's did not");
    is_int(encodes, 1, "encoded once for both");

    publish(b, "lobby", "5-0");
    publish(b, "lobby", "4-9");
    is_int(p1.n, 1, "an id at or before the last one is not delivered again");

    event_init_typing(&ev, "lobby", "bob", 2);
    e = bus_event_new(&ev);
    bus_publish(b, e);
    bus_event_unref(e);
    is_str(p1.got[1], "typing", "ephemeral events pass (they have no id)");

    /* resuming: live events wait; history goes first; no duplicates */
    bus_unsubscribe(b, &p1.sub);
    p1.n = 0;
    p1.sub.last = (struct streamid){0, 0};
    bus_subscribe(b, &p1.sub, true);
    publish(b, "lobby", "7-0");
    publish(b, "lobby", "8-0");
    is_int(p1.n, 0, "held while resuming");
    e = message("lobby", "6-0");
    bus_deliver_one(&p1.sub, e);
    bus_event_unref(e);
    e = message("lobby", "7-0");
    bus_deliver_one(&p1.sub, e);
    bus_event_unref(e);
    bus_resume_done(&p1.sub);
    is_int(p1.n, 3, "history 6, 7 then live 8: 7 not twice");
    is_str(p1.got[2], "8-0", "in order");

    /* filling: live stored events wait for the fill */
    bus_fill_begin(b, "lobby");
    publish(b, "lobby", "10-0");
    is_int(p2.n, 4, "held during the fill");
    e = message("lobby", "9-0");
    bus_fill_publish(b, e);
    bus_event_unref(e);
    bus_fill_end(b, "lobby");
    is_str(p2.got[4], "9-0", "the fill first");
    is_str(p2.got[5], "10-0", "then what was held");
    {
        struct streamid oldest;
        ok(bus_room_oldest(b, "lobby", &oldest) && oldest.ms == 10,
           "oldest last id of the room");
        ok(!bus_room_oldest(b, "nowhere", &oldest), "no such room");
    }

    /* a subscriber may leave from inside its own delivery */
    p1.leave_on_deliver = true;
    publish(b, "lobby", "11-0");
    publish(b, "lobby", "12-0");
    is_str(p1.got[p1.n - 1], "11-0", "left after 11");
    is_str(p2.got[p2.n - 1], "12-0", "the other one goes on");

    /* shared bytes: the buffer holds a reference until drained */
    e = message("lobby", "13-0");
    out = evbuffer_new();
    bus_blob_add(e->json, out);
    bus_event_unref(e);
    ok(evbuffer_get_length(out) > 10, "bytes by reference outlive the event");
    evbuffer_free(out);

    {
        struct streamid latest;
        ok(bus_room_latest(b, "lobby", &latest) && latest.ms == 12,
           "the newest message seen on the bus is known");
        ok(!bus_room_latest(b, "other", &latest),
           "not in a room that saw no message");
        bus_fill_begin(b, "lobby");
        ok(!bus_room_latest(b, "lobby", &latest), "nor while it fills");
        bus_fill_end(b, "lobby");
        bus_forget_latest(b);
        ok(!bus_room_latest(b, "lobby", &latest),
           "nor after the subscription was lost");
        publish(b, "lobby", "14-0");
        ok(bus_room_latest(b, "lobby", &latest) && latest.ms == 14,
           "until the next message");

        /* a message this daemon stored, its bus copy not yet here */
        struct bus_event *evs[4];
        ok(bus_room_recent(b, "lobby", &latest, 4, evs) == 0,
           "at the newest, the window answers: nothing new");
        bus_room_stored(b, "lobby", &(struct streamid){14, 1});
        ok(!bus_room_latest(b, "lobby", &latest) &&
               bus_room_recent(b, "lobby", &latest, 4, evs) < 0,
           "stored here, not yet seen: neither the newest nor the window "
           "tells");
        bus_room_stored(b, "lobby", &(struct streamid){14, 0});
        ok(bus_room_recent(b, "lobby", &latest, 4, evs) < 0,
           "  an older stored id (a repeat) does not undo it");
        publish(b, "lobby", "14-1");
        ok(bus_room_latest(b, "lobby", &latest) && latest.ms == 14 &&
               latest.seq == 1 &&
               bus_room_recent(b, "lobby", &latest, 4, evs) == 0,
           "  once it goes by, both answer again");
        bus_room_stored(b, "nowhere", &(struct streamid){1, 0});
        ok(!bus_room_latest(b, "nowhere", &latest),
           "a room the bus does not hold is ignored");
    }

    {
        /* a gap fill judges the room's subscribers that are not resuming */
        struct probe q1, q2, q3, q4;
        struct streamid_log log = {true, 3, {20, 0}, {30, 0}, 7};

        probe_init(&q1, b, "judged");
        probe_init(&q2, b, "judged");
        probe_init(&q3, b, "judged");
        probe_init(&q4, b, "judged");
        q1.sub.last = (struct streamid){25, 0};
        q2.sub.last = (struct streamid){99, 0};
        q3.sub.last = (struct streamid){5, 0};
        q4.sub.last = (struct streamid){99, 0};
        bus_subscribe(b, &q1.sub, false);
        bus_subscribe(b, &q2.sub, false);
        bus_subscribe(b, &q3.sub, false);
        bus_subscribe(b, &q4.sub, true);
        bus_room_judge(b, "judged", &log);
        is_int(q1.n, 0, "judge: a subscriber with all it lacks held: nothing");
        is_int(q2.n, 1, "judge: one with an id from the future");
        is_str(q2.got[0], "reset:30-0", "  is reset to the newest");
        ok(q2.sub.last.ms == 30, "  and goes on from it");
        is_int(q3.n, 1, "judge: one older than the oldest held");
        is_str(q3.got[0], "truncated:20-0", "  learns of the gap");
        ok(q3.sub.last.ms == 5, "  and is replayed from its id");
        is_int(q4.n, 0, "judge: a resuming one is left to its resume");
        ok(q4.sub.last.ms == 99, "  untouched");
        bus_unsubscribe(b, &q1.sub);
        bus_unsubscribe(b, &q2.sub);
        bus_unsubscribe(b, &q3.sub);
        bus_unsubscribe(b, &q4.sub);
    }

    bus_unsubscribe(b, &p2.sub);
    bus_unsubscribe(b, &p3.sub);
    bus_unsubscribe(b, &p3.sub);
    is_int(bus_room_count(b), 0, "no room has subscribers");
    {
        struct streamid latest;
        publish(b, "lobby", "15-0");
        ok(bus_room_latest(b, "lobby", &latest) && latest.ms == 15,
           "an empty room still follows its newest message");
        bus_sweep(b, 60000);
        ok(bus_room_latest(b, "lobby", &latest), "and is kept while recent");
        bus_sweep(b, -1);
        ok(!bus_room_latest(b, "lobby", &latest), "until swept");

        bus_room_follow(b, "polled");
        is_int(bus_room_count(b), 0, "a followed room has no subscribers");
        publish(b, "polled", "16-0");
        ok(bus_room_latest(b, "polled", &latest) && latest.ms == 16,
           "a room followed (short polls) knows its newest message");
        bus_sweep(b, 60000);
        bus_room_follow(b, "polled");
        ok(bus_room_latest(b, "polled", &latest), "  following keeps it");
        bus_sweep(b, -1);
        ok(!bus_room_latest(b, "polled", &latest), "  until swept");
    }
    bus_free(b);
    test_typing();
    test_backlog();
    test_room_hooks();
    test_fill_after_live();
    test_follow_cap();
    return tap_done();
}
