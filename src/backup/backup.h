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

/* Rooms whose checkpoints and newest ids are asked for in one pipeline. */
#define BACKUP_SCAN_ROOMS 512

/* One run. The caller connects both stores and takes the lock on every
 * shard; every function below writes only while the lock is still ours.
 * Each room is read and written on its shard (shard_of_room), the rooms
 * listed from every shard's ct:rooms. */
struct backup {
    redisContext **redis; /* one per shard, in redis_url's order */
    int shards;
    struct mongo_archive *archive;
    struct lock *lock; /* one per shard: KEYS_BACKUP_LOCK on each */
    size_t batch;      /* messages per XRANGE and per bulk write */
    int delay_ms;      /* test hook: sleep after each acknowledged batch */
    volatile sig_atomic_t *stop; /* set by a signal: stop after this batch */
    bool progress;               /* a progress line on stderr */
    bool progress_tty;           /* ... rewritten in place (a terminal) */
    bool quiet;                  /* --verify prints only rooms that differ */

    /* What the run did, for its summary line and the progress line. */
    const char *what;        /* "backup", "restore", "verify" */
    size_t rooms;            /* rooms done */
    size_t rooms_total;      /* rooms the run looks at (0: not known yet) */
    uint64_t messages_total; /* messages --restore expects (0: not known) */
    uint64_t copied;         /* messages written to MongoDB (or found there) */
    uint64_t already;        /* ... of which MongoDB already held */
    uint64_t batches;
    uint64_t trimmed;     /* entries removed from streams by --retain */
    uint64_t restored;    /* messages added to streams by --restore */
    uint64_t skipped;     /* archived messages --restore could not add */
    uint64_t compared;    /* messages --verify read on both sides */
    uint64_t differences; /* rooms --verify found different */
    int64_t started_ms;   /* lock_now_ms() at the start */
    int64_t shown_ms;     /* when the progress line was last written */
};

/* For each room of ct:rooms, copies the messages after its checkpoint
 * ct:backup:{room}, up to the newest id the stream had when the run looked
 * at it, into MongoDB. Messages of several rooms share a bulk insert of up
 * to `batch` messages; once MongoDB acknowledged one, the checkpoint of
 * every room in it moves to the last id it held (in one script, only while
 * the lock is ours). A crash anywhere leaves each checkpoint at or before
 * what MongoDB holds, and the next run's insert of the same messages is
 * refused as duplicates, which counts as done. Returns 0, or -1 at the
 * first failure (logged): the checkpoints then cover exactly the batches
 * already acknowledged. */
int backup_copy(struct backup *b);

/* Trims each room's stream to its newest `keep` messages, but never an
 * entry after its checkpoint (not yet in MongoDB); a room without a
 * checkpoint is left as it is. One script per room, pipelined. Run it
 * after a successful backup_copy. Returns 0 or -1 (logged). */
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

/* Compares, for every room in ct:rooms or in MongoDB, what both must hold:
 * the stream's entries from its first one (older ones may have been
 * trimmed by --retain) up to the checkpoint (newer ones are pending the
 * next backup) against MongoDB's messages in the same id range, message
 * by message: id, sender, text and time. A room MongoDB holds messages of
 * but Redis has no stream for, or whose stream ct:rooms lacks, is a
 * difference too. Prints one line per room to stdout. Returns 0 when all
 * agree, 1 when some room differs (b->differences), -1 when a store could
 * not be read (logged). */
int backup_verify(struct backup *b);

/* Writes the progress line now (when b->progress), and ends it with a
 * newline when `final`. */
void backup_progress(struct backup *b, bool final);

#endif
