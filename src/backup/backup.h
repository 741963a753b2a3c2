/* backup.h - what crosstalk-backup does: copy new messages from the Redis
 * streams into the MongoDB archive, trim what is safely archived, restore
 * streams from the archive, and compare the two */
#ifndef CT_BACKUP_H
#define CT_BACKUP_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "mongo_archive.h"
#include "lock.h"

/* Messages are copied in batches: every PROGRESS_BATCHES batches a progress
 * line goes to the log. */
#define BACKUP_PROGRESS_BATCHES 10

/* One run. The caller connects both stores and takes the lock; every
 * function below writes only while the lock is still ours. */
struct backup {
    redisContext *redis;
    struct mongo_archive *archive;
    struct lock *lock;
    size_t batch; /* messages per XRANGE and per bulk write */
    int delay_ms; /* test hook: sleep after each acknowledged batch */
    volatile sig_atomic_t *stop; /* set by a signal: stop after this batch */

    /* What the run did, for its summary line. */
    size_t rooms;
    uint64_t copied; /* messages written to MongoDB */
    uint64_t batches;
    uint64_t trimmed;     /* entries removed from streams by --retain */
    uint64_t restored;    /* messages added to streams by --restore */
    uint64_t skipped;     /* archived messages --restore could not add */
    uint64_t differences; /* rooms --verify found different */
};

/* For each room of ct:rooms, copies the messages after its checkpoint
 * ct:backup:{room} to MongoDB in batches and moves the checkpoint to the
 * last id of each batch once MongoDB acknowledged it (and only while the
 * lock is ours). A crash anywhere leaves the checkpoint at or before what
 * MongoDB holds, and the upserts make the next run's copy of the same
 * messages harmless. Returns 0, or -1 at the first failure (logged): the
 * checkpoints then cover exactly the batches already acknowledged. */
int backup_copy(struct backup *b);

/* Trims each room's stream to its newest `keep` messages, but never past
 * its checkpoint: XTRIM MINID keeps ids >= MINID, so MINID is the smaller
 * of the id right after the checkpoint and the id of the keep-th newest
 * entry; a stream with fewer than `keep` entries is left as it is, and so
 * is a room without a checkpoint. Run it after a successful backup_copy.
 * Returns 0 or -1 (logged). */
int backup_retain(struct backup *b, long long keep);

/* Rebuilds the stream of `room` (every archived room when NULL) from
 * MongoDB with the original ids. XADD only accepts ids above a stream's
 * last id, so only archived messages newer than that are added: into a
 * missing or empty stream that is all of them; older ones missing from a
 * stream (trimmed by --retain) stay in MongoDB, counted as skipped. Also
 * puts the room into ct:rooms (score: ts of its last message, never
 * lowered) and moves the checkpoint to the last restored id when nothing
 * in the stream was waiting for a backup. Writers must be stopped: a
 * message appended meanwhile makes the following XADDs fail, and then -1
 * is returned (logged). */
int backup_restore(struct backup *b, const char *room);

/* Compares, for every room in Redis or MongoDB, what both must hold: the
 * stream's entries from its first one (older ones may have been trimmed by
 * --retain) up to the checkpoint (newer ones are pending the next backup)
 * against MongoDB's messages in the same id range: their counts and their
 * last ids must be equal. A room MongoDB holds messages of but Redis has
 * no stream for is a difference too. Prints one line per room to stdout.
 * Returns 0 when all agree, 1 when some room differs (b->differences), -1
 * when a store could not be read (logged). */
int backup_verify(struct backup *b);

#endif
