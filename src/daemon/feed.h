/* feed.h - the Redis bus into crosstalkd's bus: a subscription to the
 * channel of each room listened to here, on a connection per shard, kept
 * up, and the gap filled from the room's stream whenever it (re)starts */
#ifndef CT_FEED_H
#define CT_FEED_H

struct bus;
struct config;
struct event_base;
struct feed;
struct redis;
struct store;

/* How long a room's subscription outlives its last local listener, so that
 * one leaving and coming back does not subscribe again. */
#define FEED_LINGER_MS 5000

/* Keeps a subscription connection (resubscribing with backoff) to each of
 * the `n` shards r[0..n-1], and on it SUBSCRIBEs the bus channel
 * (keys_bus) of each room of that shard (shard_of_room) from the moment the
 * room has its first subscriber on `bus` until FEED_LINGER_MS after its
 * last left, publishing each event on `bus`. Once a room's SUBSCRIBE is
 * confirmed (first time, or again after its shard's subscription was lost)
 * and its shard's command connection is up, the room is filled from its
 * stream (store_resume, store_after) with what its subscribers may have
 * missed. Its timers go on `base`; r[], `st`, `bus` and `cfg` must outlive
 * it. */
struct feed *feed_new(struct event_base *base, struct redis **r, int n,
                      struct store *st, struct bus *bus,
                      const struct config *cfg);
/* Unsubscribes; accepts NULL. */
void feed_free(struct feed *f);

#endif
