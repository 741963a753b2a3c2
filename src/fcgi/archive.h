/* archive.h - the seam between crosstalk-fcgi's history pages and the
 * MongoDB archive: older messages than Redis still holds */
#ifndef CT_FCGI_ARCHIVE_H
#define CT_FCGI_ARCHIVE_H

#include <stddef.h>

#include "event.h"
#include "streamid.h"

/*
 * An archive reader. crosstalk-fcgi knows no MongoDB: a backend (the backup
 * part's read path) fills one of these and hands it to archive_use().
 *
 * `before` answers the newest `limit` archived messages of `room` strictly
 * older than `before`, in ascending id order, as message events (*evs newly
 * allocated, freed by the caller with event_free_array). It returns 0, also
 * with *n = 0 when there are none, or -1 when the archive cannot be read
 * (the caller then serves what Redis had). `close` frees `ctx`.
 */
struct archive_backend {
    const char *name;
    void *ctx;
    int (*before)(void *ctx, const char *room, const struct streamid *before,
                  int limit, struct chat_event **evs, size_t *n);
    void (*close)(void *ctx);
};

/* Makes `b` (copied) the archive for archive_before(); NULL for none.
 * Closes the backend used before. */
void archive_use(const struct archive_backend *b);
/* True when a backend is in use. */
int archive_enabled(void);

/* The newest `limit` archived messages older than `before`, ascending.
 * Without a backend, returns 0 with no events. On a backend error, returns
 * -1 (logged) and *evs is NULL. */
int archive_before(const char *room, const struct streamid *before, int limit,
                   struct chat_event **evs, size_t *n);

/* Closes the backend in use; accepts being called with none. */
void archive_close(void);

/* Uses the MongoDB archive at `uri` (archive_mongo.c); an empty uri means
 * no archive. The client connects lazily, so a MongoDB that is down shows
 * as failed archive reads, not here. Returns 0, or -1 when the URI is
 * malformed (logged). */
int archive_mongo_use(const char *uri);

#endif
