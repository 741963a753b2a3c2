/* presence.h - who is online: the connections this daemon holds, kept
 * fresh in Redis, and the room's presence announced on the bus */
#ifndef CT_PRESENCE_H
#define CT_PRESENCE_H

/* A connection of `user` to `room` opened (a stream, or a long poll
 * waiting): the user stays online while any is open, however long. */
void presence_join(const char *room, const char *user);
/* A stream closed: the last one marks the user gone and announces it. */
void presence_leave(const char *room, const char *user);
/* A long poll ended: no longer held by it, the user is still online until
 * the expiry last written (its client polls again at once). */
void presence_release(const char *room, const char *user);
/* Activity of a user without a stream (a poll, a send): online until
 * presence_ttl from now. Written to Redis at most every presence_ttl / 3
 * per room and user. */
void presence_touch(const char *room, const char *user);
/* Starts the timer that refreshes every held user's expiry. */
void presence_start(void);
/* Stops it and forgets everyone (shutdown). */
void presence_stop(void);

#endif
