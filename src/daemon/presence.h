/* presence.h - who this daemon holds connections of, kept fresh in Redis */
#ifndef CT_PRESENCE_H
#define CT_PRESENCE_H

/* A connection of `user` to `room` opened: the first one marks the user
 * online and announces the room's presence. */
void presence_join(const char *room, const char *user);
/* One closed: the last one marks the user gone and announces it. */
void presence_leave(const char *room, const char *user);
/* Starts the timer that refreshes every held user's expiry. */
void presence_start(void);
/* Stops it and forgets everyone (shutdown). */
void presence_stop(void);

#endif
