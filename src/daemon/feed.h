/* feed.h - the Redis bus into crosstalkd's bus: the subscription to every
 * room's channel, kept up, and the gap filled from the streams after it
 * was lost */
#ifndef CT_FEED_H
#define CT_FEED_H

struct bus;
struct config;
struct event_base;
struct feed;
struct redis;
struct store;

/* Subscribes (and keeps resubscribing with backoff) to KEYS_BUS_PATTERN on
 * a connection of its own to where `r` connects, publishing each event on
 * `bus`. Once subscribed again, and the command connection up, every room
 * of the bus is filled from its stream (store_resume, store_after) with what
 * it missed. Its timers go on `base`; `r`, `st`, `bus` and `cfg` must outlive
 * it. */
struct feed *feed_new(struct event_base *base, struct redis *r,
                      struct store *st, struct bus *bus,
                      const struct config *cfg);
/* Unsubscribes; accepts NULL. */
void feed_free(struct feed *f);

#endif
