/* window.h - the newest stored messages of a room the bus follows, with
 * their encodings, so a poll after an id inside it is answered from memory
 * (neither Redis nor the JSON encoder) */
#ifndef CT_WINDOW_H
#define CT_WINDOW_H

#include <stddef.h>

#include "bus.h"
#include "streamid.h"

/* At most this many messages per room, and at most WINDOW_BYTES of their
 * JSON: the oldest go first. */
#define WINDOW_EVENTS 256
#define WINDOW_BYTES (64 * 1024)

struct window;

/* An empty window, which answers nothing until it has seen a message. */
struct window *window_new(void);
/* Drops the window's references and frees it. Accepts NULL. */
void window_free(struct window *w);

/* Adds a stored message as the feed delivered it live; the window takes a
 * reference. The window answers for the span it has seen without a break:
 * after a reset the first message starts it (what came before that message
 * is unknown), and each message must follow the newest one. A message at
 * the newest id is a repeat and ignored; one older than the newest breaks
 * the order and resets the window (it starts again from that message). */
void window_add(struct window *w, struct bus_event *e);
/* The room's feed was interrupted (subscription lost, a fill): messages may
 * have gone by unseen, so the window forgets everything. */
void window_reset(struct window *w);

/* The messages after `since`, oldest first, at most `max` of them, put
 * into `out` as borrowed pointers (valid until the next window_add or
 * window_reset; take a reference to keep one). Returns their count (0: up
 * to date), or -1 when the window cannot tell: `since` is older than the
 * span it has seen without a break, or newer than its newest message. */
int window_after(const struct window *w, const struct streamid *since,
                 size_t max, struct bus_event **out);

/* Messages held (for tests and stats). */
size_t window_count(const struct window *w);

#endif
