/* mongo_archive.h - the MongoDB archive of chat messages: what crosstalk-backup
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
 * $(COMMON_LIBS); compiling: $(ARCHIVE_CPPFLAGS), then
 * #include "mongo_archive.h" (see src/backup/local.mk).
 *
 * A struct mongo_archive holds one mongoc client: use it from one thread at a
 * time (a FastCGI responder opens one at start-up and keeps it; the driver
 * reconnects by itself after MongoDB comes back). */
#ifndef CT_MONGO_ARCHIVE_H
#define CT_MONGO_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "event.h"
#include "streamid.h"

struct mongo_archive;

/* Parses the MongoDB URI (mongodb://host:port/db?options) and creates a
 * client; it does not connect yet, so a MongoDB that is down shows as an
 * error of the first call that needs it. Unless the URI says otherwise,
 * server selection and connecting each give up after 3 s, so a caller
 * fails fast instead of hanging. On a malformed URI, NULL is returned and
 * the reason is logged. */
struct mongo_archive *mongo_archive_open(const char *uri);
/* Frees the client; accepts NULL. */
void mongo_archive_close(struct mongo_archive *a);

/* Sets the write concern of mongo_archive_put: "majority" (the default) or a
 * number N >= 1 of nodes that must acknowledge. Returns 0, or -1 for any
 * other value (w:0 is refused: a backup must know its writes landed). */
int mongo_archive_set_write_concern(struct mongo_archive *a, const char *wc);

/* Creates the collection's two indexes if they do not exist (idempotent).
 * Returns 0, or -1 with the reason logged. */
int mongo_archive_prepare(struct mongo_archive *a);

/* Inserts the n message events (ids set; any rooms) as one unordered bulk
 * write with the write concern. The unique {room, id} index makes it
 * idempotent: a message refused as a duplicate key is already archived,
 * which counts as success for it (*dups, may be NULL, gets how many).
 * Returns 0 only once MongoDB accounted for every one of them (inserted or
 * already there) with no other error, else -1 with the reason logged (then
 * any subset may have been written). */
int mongo_archive_put(struct mongo_archive *a, const struct chat_event *evs,
                      size_t n, size_t *dups);

/* The archive read path (the FastCGI responder's ?before= pages). Fills
 * *evs with the newest `limit` messages of `room` whose id is older than
 * `before` (NULL: the newest of all), in ascending id order - the order of
 * every event list in the API - as message events like those of
 * reply_events(). A caller holding k < limit older messages from Redis asks
 * for `limit - k` before the oldest id it has and puts them in front.
 * Returns 0 with *evs newly allocated (free with
 * event_free_array; NULL when *n is 0), or -1 with
 * *evs NULL and *n 0 when MongoDB cannot be read (logged). */
int mongo_archive_before(struct mongo_archive *a, const char *room,
                         const struct streamid *before, size_t limit,
                         struct chat_event **evs, size_t *n);
/* The same the other way: the oldest `limit` messages newer than `after`
 * (NULL: from the first), ascending. */
int mongo_archive_after(struct mongo_archive *a, const char *room,
                        const struct streamid *after, size_t limit,
                        struct chat_event **evs, size_t *n);

/* A cursor over the messages of `room` with after < id <= upto (NULL: no
 * bound), in ascending id order, fetched `batch` documents at a time: one
 * query however many messages there are. With `room` NULL (and no bounds),
 * every message of every room, by room name and then id: one pass over the
 * archive (a MongoDB-wire server that filters by scanning, as FerretDB
 * does, costs as much for one room as for all). Never NULL (a bad bound gives
 * an empty scan; MongoDB errors show in mongo_archive_scan_next). */
struct mongo_archive_scan;
struct mongo_archive_scan *mongo_archive_scan_open(struct mongo_archive *a,
                                                   const char *room,
                                                   const struct streamid *after,
                                                   const struct streamid *upto,
                                                   size_t batch);
/* The next at most `max` messages. Returns 0 with *evs newly allocated
 * (free with event_free_array; NULL and *n 0 at the end), or -1 (logged)
 * when MongoDB cannot be read. */
int mongo_archive_scan_next(struct mongo_archive_scan *s, size_t max,
                            struct chat_event **evs, size_t *n);
/* Frees the cursor; accepts NULL. */
void mongo_archive_scan_close(struct mongo_archive_scan *s);

/* About how many messages the archive holds, from the collection's
 * metadata (no pass over it), for a progress line. Returns the number, or
 * -1 when MongoDB cannot tell (logged at debug level only). */
int64_t mongo_archive_estimate(struct mongo_archive *a);

/* Writes every document (of `room`, or all when NULL) as one line of
 * relaxed extended JSON without _id, ordered by room then id, to out; for
 * tests and debugging. Returns the number written, or -1 (logged). */
long mongo_archive_dump(struct mongo_archive *a, const char *room, FILE *out);

#endif
