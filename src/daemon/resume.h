/* resume.h - bringing a new subscriber up to date: the stored messages
 * after its `since`, then the live ones, none lost and none twice */
#ifndef CT_RESUME_H
#define CT_RESUME_H

#include <stdbool.h>

#include "bus.h"
#include "streamid.h"

struct resume;

/* Called once the history is delivered (status 0) or could not be read
 * (status -1; the subscriber is still subscribed and resuming). */
typedef void (*resume_done_cb)(struct subscriber *s, int status);

/* Subscribes s (resuming) and delivers, through its deliver callback, the
 * stored messages after `since`, at most `max` of them (0: all, in pages);
 * with since NULL, none: s starts at the room's newest message. When
 * `since` is inside the room's window (bus_room_recent), they come from
 * memory, already encoded, before this returns; else from Redis. Live events
 * are held meanwhile. History is paced to the client: while more than half
 * of client_buffer_limit waits to be taken (ops->queued), the next page
 * waits; history is never a reason to drop a subscriber. `done` is called
 * at the end and then the caller
 * calls bus_resume_done. `done` may run before this returns (Redis down),
 * so the caller must not touch s after the call. */
void resume_start(struct subscriber *s, const struct streamid *since, int max,
                  resume_done_cb done);
/* Forgets the resume in flight of a subscriber going away; `done` will not
 * be called. Safe when none is in flight. */
void resume_cancel(struct subscriber *s);

#endif
