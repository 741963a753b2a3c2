/* bus.h - rooms, subscribers and fan-out of events; the bus does no I/O */
#ifndef CT_BUS_H
#define CT_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>

#include "event.h"
#include "stats.h"

struct evbuffer;

/* Bytes encoded once and shared by every subscriber that sends them. */
struct bus_blob {
    unsigned refs;
    size_t len;
    char data[];
};

/* Returns a blob of `len` bytes (uninitialised) with one reference. */
struct bus_blob *bus_blob_new(size_t len);
struct bus_blob *bus_blob_ref(struct bus_blob *b);
/* Drops a reference; the last one frees the blob. Accepts NULL. */
void bus_blob_unref(struct bus_blob *b);
/* Appends the blob to `out` by reference (no copy); the buffer holds a
 * reference until it has sent the bytes. */
void bus_blob_add(struct bus_blob *b, struct evbuffer *out);

/* The encodings a transport may ask for; each is made at most once per
 * event, by the first subscriber that needs it. */
enum bus_slot {
    BUS_SLOT_SSE,         /* an SSE block */
    BUS_SLOT_SSE_CHUNKED, /* the same in an HTTP/1.1 chunk */
    BUS_SLOT_WS,          /* a WebSocket text frame */
    BUS_SLOT_COUNT
};

/* One event on its way through the bus, refcounted. */
struct bus_event {
    unsigned refs;
    struct chat_event ev;
    struct bus_blob *json;                /* event_to_json, always there */
    struct bus_blob *enc[BUS_SLOT_COUNT]; /* lazily made */
};

typedef struct bus_blob *(*bus_encoder)(const struct bus_event *e);

/* Takes ownership of *ev's contents (ev is cleared). One reference. */
struct bus_event *bus_event_new(struct chat_event *ev);
struct bus_event *bus_event_ref(struct bus_event *e);
void bus_event_unref(struct bus_event *e);
/* The event in the encoding of `slot`, made by `enc` on first use and kept
 * for every later subscriber. The event keeps its reference. */
struct bus_blob *bus_event_encoded(struct bus_event *e, enum bus_slot slot,
                                   bus_encoder enc);

struct subscriber;

struct subscriber_ops {
    /* Hands one event to the subscriber. It may unsubscribe itself (and
     * schedule its own freeing) but no other subscriber. */
    void (*deliver)(struct subscriber *s, struct bus_event *e);
    /* Ends the subscriber's stream cleanly (shutdown): it unsubscribes and
     * frees itself, now or once its last bytes are written. */
    void (*close)(struct subscriber *s);
    /* Bytes written to the client but not yet taken by it, so a resume
     * can pace history to the client; NULL when nothing queues. */
    size_t (*queued)(const struct subscriber *s);
    /* The subscriber let more than the bus's limit pile up: the bytes
     * queued to its client and the live events held for it while it
     * resumes. It ends its stream at once as a slow consumer (WebSocket
     * close 1008, SSE end), unsubscribing itself, and its client resumes by
     * id. NULL: never dropped by the bus (what it holds is bounded). */
    void (*drop)(struct subscriber *s);

    /* Tells the subscriber of a gap or a reset (streamid_judge) before
     * anything that follows it; its last id is already sig->from. It may
     * unsubscribe itself, as deliver may, but only when not resuming. */
    void (*signal)(struct subscriber *s, const struct streamid_signal *sig);
};

struct bus_pending;
TAILQ_HEAD(bus_pending_list, bus_pending);

/* A subscriber is embedded in a transport's connection state. */
struct subscriber {
    const struct subscriber_ops *ops;
    enum transport kind;
    char room[NAME_ROOM_MAX + 1];
    char user[NAME_USER_MAX + 1];
    /* The newest stored message it has been given: stored events at or
     * before it are not delivered again (resume, gap fill). */
    struct streamid last;
    bool resuming;                /* holding live events back */
    struct bus_pending_list held; /* live events held while resuming */
    size_t held_bytes;            /* their JSON, counted against the limit */
    struct bus_room *br;          /* NULL when not subscribed */
    struct resume *resume;        /* history being read (resume.c) */
    /* Joined, or was resuming, while the room's Redis subscription was not
     * confirmed: its history reads may have missed what was published
     * before it was. At bus_resume_done it waits (still resuming) for a
     * fill of the room read after the confirmation. */
    bool stale;
    bool waiting; /* resumed, waiting for that fill */
    TAILQ_ENTRY(subscriber) link;
};

struct bus;

/* A bus whose subscribers may each have up to `buffer_limit` bytes queued
 * or held (client_buffer_limit; 0: no limit) before they are dropped. */
struct bus *bus_new(size_t buffer_limit);
/* Frees the bus; all subscribers must be gone. Accepts NULL. */
void bus_free(struct bus *b);

/* Joins s to its room (s->room must be set). Starts in the resuming state
 * when `resuming` is true: live events are held until bus_resume_done, and
 * when what is held and what is queued to its client (ops->queued) pass
 * the bus's limit, s is dropped (ops->drop). */
void bus_subscribe(struct bus *b, struct subscriber *s, bool resuming);
/* Leaves the room and drops held events. Safe on a subscriber that is not
 * subscribed, and from inside its own deliver callback. */
void bus_unsubscribe(struct bus *b, struct subscriber *s);
/* Delivers `e` to one subscriber, skipping stored events at or before its
 * last id, and advancing its last id. Used for history during resume. */
void bus_deliver_one(struct subscriber *s, struct bus_event *e);
/* Ends the resuming state: held live events are delivered in order, less
 * those already given. */
void bus_resume_done(struct subscriber *s);
/* Gives a subscriber a signal that is not STREAMID_FINE: it goes on from
 * sig->from (a reset moves it to the room's newest id) and is told. */
void bus_signal(struct subscriber *s, const struct streamid_signal *sig);
/* Judges every subscriber of the room that is not resuming (a resume
 * judges its own) against the room's stream, and signals those that lack
 * history now gone or hold an id from the future (a gap fill). */
void bus_room_judge(struct bus *b, const char *room,
                    const struct streamid_log *log);

/* A user's typing events in one room go out at most once per this many
 * ms: typing may come from any process through Redis, and each REST or
 * WebSocket client is rate-limited only where it is connected. */
#define BUS_TYPING_GAP_MS 500

/* Fans an event out to every local subscriber of its room. Takes no
 * ownership: the caller keeps its reference. A typing event of a user
 * whose last one went out less than BUS_TYPING_GAP_MS ago is dropped
 * (one check per event and room, whatever the number of subscribers). */
void bus_publish(struct bus *b, struct bus_event *e);

/* Gap filling after the bus lost Redis: while a room fills, live stored
 * events are held; bus_fill_end delivers them after the fill. */
void bus_fill_begin(struct bus *b, const char *room);
void bus_fill_end(struct bus *b, const char *room);
/* Delivers a stored event read by the fill, past the hold. */
void bus_fill_publish(struct bus *b, struct bus_event *e);
/* The oldest "last id" among the room's subscribers that are not resuming
 * or wait for a fill: a fill reads after it. bus_fill_begin takes the
 * waiting ones as covered; bus_fill_end ends their resume, and asks for
 * another fill (catch_up) when stale ones wait. Returns false when no
 * subscriber needs a fill. */
bool bus_room_oldest(struct bus *b, const char *room, struct streamid *out);
/* Calls fn for every room with subscribers. fn must not subscribe or
 * unsubscribe. */
void bus_foreach_room(struct bus *b, void (*fn)(const char *room, void *arg),
                      void *arg);
/* Calls fn for every subscriber (at shutdown: fn may unsubscribe it). */
void bus_foreach_subscriber(struct bus *b,
                            void (*fn)(struct subscriber *s, void *arg),
                            void *arg);
/* Rooms with subscribers. */
size_t bus_room_count(struct bus *b);

/* What the bus tells of its rooms (the feed subscribes to what is
 * listened to). `first`: the room has its first subscriber, or is followed
 * (bus_room_follow); `last`: its last subscriber left and it is not
 * followed, or a followed room without subscribers is swept; `catch_up`: a
 * stale subscriber waits for a fill of the room (bus_fill_begin ..
 * bus_fill_end) read after the room's subscription was confirmed. Each may be
 * NULL; none may subscribe or unsubscribe. */
struct bus_room_hooks {
    void (*first)(const char *room, void *arg);
    void (*last)(const char *room, void *arg);
    void (*catch_up)(const char *room, void *arg);
    void *arg;
};
void bus_set_room_hooks(struct bus *b, const struct bus_room_hooks *h);
/* Whether the room's Redis subscription is confirmed. When it is not,
 * the room's newest message is not known and its resuming subscribers are
 * stale; subscribers joining a room that is not are stale. A room starts
 * not live, or live on a bus without a `first` hook (everything followed). */
void bus_room_live(struct bus *b, const char *room, bool live);

/* The newest stored message of the room seen on the bus, when the room's
 * subscription is live since before it and the room is not filling: nothing
 * stored after it has gone by unseen, so a client at that id is up to date
 * without asking Redis. False when that is not known. */
bool bus_room_latest(struct bus *b, const char *room, struct streamid *out);
/* The room's subscription: a value of its own while live (changing with
 * every break and renewal), 0 when not live. */
uint64_t bus_room_epoch(struct bus *b, const char *room);
/* Whether bus_room_latest has an answer but for a fill or an own message
 * on its way: false asks for bus_room_learn. */
bool bus_room_knows_latest(struct bus *b, const char *room);
/* What Redis said of the room's stream, read after the subscription of
 * `epoch` was confirmed (a fill's first page, a probe): its newest id (0-0
 * with no stream) is the room's newest until the bus delivers a newer one,
 * since everything stored later comes by on the bus. Ignored when the
 * subscription is no longer that one. Until the bus itself has delivered
 * that id, the window does not answer (it lacks what lies before it). */
void bus_room_learn(struct bus *b, const char *room, uint64_t epoch,
                    const struct streamid_log *log);
/* The room's stream changed under the bus (crosstalk-backup --restore
 * appended to it without publishing): its newest is no longer known, its
 * window starts again, and reads of the stream sent before are not
 * believed. */
void bus_room_forget(struct bus *b, const char *room);
/* A message this daemon stored in the room, told as Redis acknowledged it
 * (store_on_stored): until the bus has delivered it, bus_room_latest and
 * bus_room_recent cannot tell, so a client that polls right after its own
 * send is answered by Redis and sees its message. A room the bus does not
 * hold is ignored. */
void bus_room_stored(struct bus *b, const char *room,
                     const struct streamid *id);
/* The stored messages after `since` that the room's window holds
 * (window.h: the newest live messages, kept while the bus follows the
 * room), oldest first, at most `max` (at most WINDOW_EVENTS are held),
 * borrowed into `out` until the next event or sweep. Returns their count (0:
 * `since` is the newest), or -1 when the bus cannot tell without Redis: no
 * such room, the room fills, or `since` is outside the span the bus has
 * seen without a break. */
int bus_room_recent(struct bus *b, const char *room,
                    const struct streamid *since, size_t max,
                    struct bus_event **out);
/* Keeps the room as if it had just lost its last subscriber (a short poll
 * came): the bus follows its newest message for the next poll, until the
 * room has been idle for bus_sweep's time. */
void bus_room_follow(struct bus *b, const char *room);
/* At most this many rooms are followed at once; a poll of another room the
 * bus does not know then leaves no trace (it is answered from Redis). */
#define BUS_FOLLOW_MAX 1024
/* Rooms followed now (for tests and stats). */
size_t bus_followed(const struct bus *b);
/* The subscription was lost: no room's newest message is known any more,
 * and every room's window starts again. */
void bus_forget_latest(struct bus *b);
/* The room's stream lost its oldest entries: its window starts again, so
 * that a poll from before what Redis holds is told of its gap. */
void bus_trimmed(struct bus *b, const char *room);
/* Frees rooms without subscribers for idle_ms or more. */
void bus_sweep(struct bus *b, int64_t idle_ms);

#endif
