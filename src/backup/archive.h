/* archive.h - the MongoDB archive of chat messages: what crosstalk-backup
 * writes and what the FastCGI responder pages back through once Redis no
 * longer holds a room's older messages.
 *
 * One document per stored message in the collection `messages` of the
 * database named by the URI (default "crosstalk"):
 *
 *   {room, id, ms, seq, from, text, ts}
 *
 * `id` is the Redis stream id ("MS-SEQ") and the message id clients see;
 * `ms` and `seq` are its two parts as int64, so the archive can be paged in
 * id order; `ts` is the sender's time in ms. {room: 1, id: 1} is unique,
 * {room: 1, ms: 1, seq: 1} serves the pages. Linking: $(ARCHIVE_LIBS) before
 * $(COMMON_LIBS), compiling: $(ARCHIVE_CPPFLAGS) (see src/backup/local.mk).
 *
 * A struct archive holds one mongoc client: use it from one thread at a
 * time (a FastCGI responder opens one at start-up and keeps it; the driver
 * reconnects by itself after MongoDB comes back). */
#ifndef CT_ARCHIVE_H
#define CT_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "event.h"

struct archive;

/* Parses the MongoDB URI (mongodb://host:port/db?options) and creates a
 * client; it does not connect yet, so a MongoDB that is down shows as an
 * error of the first call that needs it. Unless the URI says otherwise,
 * server selection and connecting each give up after 3 s, so a caller
 * fails fast instead of hanging. On a malformed URI, NULL is returned and
 * the reason is logged. */
struct archive *archive_open(const char *uri);
/* Frees the client; accepts NULL. */
void archive_close(struct archive *a);

/* Sets the write concern of archive_put: "majority" (the default) or a
 * number N >= 1 of nodes that must acknowledge. Returns 0, or -1 for any
 * other value (w:0 is refused: a backup must know its writes landed). */
int archive_set_write_concern(struct archive *a, const char *wc);

/* Creates the collection's two indexes if they do not exist (idempotent).
 * Returns 0, or -1 with the reason logged. */
int archive_prepare(struct archive *a);

/* Upserts the n message events (ids must be set) as one ordered bulk write
 * with the write concern: running it again with the same events changes
 * nothing. Returns 0 only once MongoDB acknowledged every one of them, else
 * -1 with the reason logged (then any subset may have been written). */
int archive_put(struct archive *a, const struct event *evs, size_t n);

/* The archive read path. Fills *evs with the newest `limit` messages of
 * `room` whose id is older than `before_id`, in ascending id order (the
 * order of every event list in the API), as message events like those of
 * reply_events(). `before_id` is a stream id ("MS-SEQ" or "MS"); NULL or
 * "" means "the newest". A caller holding n < limit older messages from
 * Redis asks for `limit - n` before the oldest id it has and puts them in
 * front. Returns 0 with *evs newly allocated (free with
 * archive_free_events; NULL when *n is 0), or -1 with *evs NULL and *n 0
 * when MongoDB cannot be read (logged) or before_id is not a stream id
 * (validate it first to answer 400). */
int archive_before(struct archive *a, const char *room, const char *before_id,
                   size_t limit, struct event **evs, size_t *n);
/* The same the other way: the oldest `limit` messages newer than
 * `after_id` (NULL or "": from the first), ascending. */
int archive_after(struct archive *a, const char *room, const char *after_id,
                  size_t limit, struct event **evs, size_t *n);
void archive_free_events(struct event *evs, size_t n);

/* The distinct room names in the archive, sorted. Returns 0 with *rooms
 * newly allocated (free with archive_free_rooms), or -1 (logged). */
int archive_rooms(struct archive *a, char ***rooms, size_t *n);
void archive_free_rooms(char **rooms, size_t n);

/* Counts the messages of `room` with lo_id <= id <= hi_id (NULL or "" for
 * no bound) and copies the greatest such id into last_id
 * (STREAMID_STRLEN bytes; "" when there is none). Returns 0, or -1
 * (logged). */
int archive_range(struct archive *a, const char *room, const char *lo_id,
                  const char *hi_id, uint64_t *count, char *last_id);

/* Writes every document (of `room`, or all when NULL) as one line of
 * relaxed extended JSON without _id, ordered by room then id, to out; for
 * tests and debugging. Returns the number written, or -1 (logged). */
long archive_dump(struct archive *a, const char *room, FILE *out);

#endif
