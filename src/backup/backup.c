/* backup.c - copy, trim, restore and verify between Redis and MongoDB */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backup.h"
#include "keys.h"
#include "log.h"
#include "names.h"
#include "reply.h"
#include "shard.h"
#include "streamid.h"
#include "xmalloc.h"

/* Moves checkpoints, but only for the holder of the lock, and renews the
 * lock on the way. KEYS = {lock, checkpoint...}, ARGV = {token, ttl ms,
 * id...}: the i-th checkpoint gets the i-th id. Returns 1, or 0 when the
 * lock is not ours (then nothing moved). */
static const char backup_checkpoint_lua[] =
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end "
    "for i = 2, #KEYS do redis.call('SET', KEYS[i], ARGV[i + 1]) end "
    "redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1";

/* Trims a stream's oldest entries that are archived (at or before the
 * checkpoint) and beyond the newest `keep`, at most `cap` per call, so
 * Redis is never blocked long. KEYS = {stream, checkpoint}, ARGV = {keep,
 * cap}. The entries XRANGE finds are the stream's oldest, so trimming the
 * stream to its length less their number removes exactly them, and the
 * room's bus channel (ARGV[3]) hears that the stream lost entries (the
 * notice ARGV[4]), so daemons stop answering from memory what Redis no
 * longer holds. Returns how many were removed. */
static const char backup_retain_lua[] =
    "local ck = redis.call('GET', KEYS[2]) "
    "if not ck then return 0 end "
    "local len = redis.call('XLEN', KEYS[1]) "
    "local over = math.min(len - tonumber(ARGV[1]), tonumber(ARGV[2])) "
    "if over <= 0 then return 0 end "
    "local old = redis.call('XRANGE', KEYS[1], '-', ck, 'COUNT', over) "
    "if #old == 0 then return 0 end "
    "local n = redis.call('XTRIM', KEYS[1], 'MAXLEN', len - #old) "
    "if n > 0 then redis.call('PUBLISH', ARGV[3], ARGV[4]) end "
    "return n";
#define BACKUP_RETAIN_CAP 10000

/* What XINFO STREAM says about a room's stream. */
struct backup_stream {
    bool exists;
    long long length;
    char first[STREAMID_STRLEN]; /* "" when empty */
    char last[STREAMID_STRLEN];  /* last-generated-id: survives trimming */
};

/* Parses an id Redis gave us. Returns 0, or -1 (logged). */
static int backup_sid(const char *s, struct streamid *out)
{
    if (streamid_parse(s, strlen(s), out) < 0) {
        log_error("'%s' from Redis is not a stream id", s);
        return -1;
    }
    return 0;
}

static bool backup_stopping(const struct backup *b)
{
    return b->stop != NULL && *b->stop;
}

static void backup_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* The connection to the shard of `room`. */
static redisContext *backup_redis(const struct backup *b, const char *room)
{
    return b->redis[shard_of_room(room, b->shards)];
}

/* Renews the lock on every shard (as lock_refresh). Returns 0 or -1. */
static int backup_lock_refresh(struct backup *b)
{
    for (int i = 0; i < b->shards; i++)
        if (lock_refresh(b->redis[i], &b->lock[i], false) < 0)
            return -1;
    return 0;
}

/* Logs a failed command: NULL (connection) or an error reply. */
static void backup_redis_error(const struct backup *b, const redisReply *r,
                               const char *what, const char *room)
{
    if (r == NULL)
        log_error("redis %s (room %s): %s", what, room,
                  backup_redis(b, room)->errstr);
    else if (r->type == REDIS_REPLY_ERROR)
        log_error("redis %s (room %s): %s", what, room, r->str);
    else
        log_error("redis %s (room %s): unexpected reply type %d", what, room,
                  r->type);
}

/* The names of ct:rooms, validated: every shard's, together (each lists
 * the rooms it holds). Returns 0 or -1 (logged). */
static int backup_redis_rooms(struct backup *b, char ***rooms, size_t *n)
{
    redisReply *r;
    size_t i;

    *rooms = xcalloc(1, sizeof(**rooms));
    *n = 0;
    for (int s = 0; s < b->shards; s++) {
        r = redisCommand(b->redis[s], "ZRANGE %s 0 -1", KEYS_ROOMS);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
            log_error("redis ZRANGE %s (shard %d): %s", KEYS_ROOMS, s,
                      r == NULL                      ? b->redis[s]->errstr
                      : r->type == REDIS_REPLY_ERROR ? r->str
                                                     : "unexpected reply");
            if (r != NULL)
                freeReplyObject(r);
            return -1;
        }
        *rooms = xrealloc(*rooms, (*n + r->elements + 1) * sizeof(**rooms));
        for (i = 0; i < r->elements; i++) {
            const redisReply *e = r->element[i];

            if (e->type != REDIS_REPLY_STRING ||
                !names_room_valid(e->str, e->len)) {
                log_warn("%s holds an invalid room name; skipped", KEYS_ROOMS);
                continue;
            }
            (*rooms)[(*n)++] = xstrndup(e->str, e->len);
        }
        (*rooms)[*n] = NULL;
        freeReplyObject(r);
    }
    return 0;
}

/* Reads a GET reply of the checkpoint `key` into id. Returns 1 when set,
 * 0 when not, -1 on error (logged; a value that is not a stream id is
 * one). */
static int backup_checkpoint_reply(struct backup *b, const redisReply *r,
                                   const char *key, const char *room, char *id)
{
    struct streamid sid;

    id[0] = '\0';
    if (r != NULL && r->type == REDIS_REPLY_NIL)
        return 0;
    if (r != NULL && r->type == REDIS_REPLY_STRING) {
        if (streamid_parse(r->str, r->len, &sid) < 0) {
            log_error("%s holds '%.*s', not a stream id; fix or delete it", key,
                      (int)(r->len > 64 ? 64 : r->len), r->str);
            return -1;
        }
        streamid_format(&sid, id);
        return 1;
    }
    backup_redis_error(b, r, "GET checkpoint", room);
    return -1;
}

/* Reads ct:backup:{room} into id: as backup_checkpoint_reply. */
static int backup_get_checkpoint(struct backup *b, const char *room, char *id)
{
    char key[KEYS_MAX];
    redisReply *r;
    int rc;

    r = redisCommand(backup_redis(b, room), "GET %s", keys_backup(key, room));
    rc = backup_checkpoint_reply(b, r, key, room, id);
    if (r != NULL)
        freeReplyObject(r);
    return rc;
}

/* A checkpoint to move once MongoDB acknowledged the batch holding the
 * room's messages up to `last`. */
struct backup_mark {
    const char *room; /* not owned */
    char last[STREAMID_STRLEN];
};

/* Sets the checkpoint of each mark to its id, all at once, if the lock is
 * ours on `shard`, where the rooms of every mark are. Returns 0, or -1 when
 * the lock was lost or Redis failed (logged). */
static int backup_set_shard_checkpoints(struct backup *b, int shard,
                                        const struct backup_mark *marks,
                                        size_t n)
{
    struct lock *lock = &b->lock[shard];
    /* EVAL, script, numkeys, lock, n checkpoints, token, ttl, n ids */
    size_t argc = 6 + 2 * n, i;
    const char **argv = xcalloc(argc, sizeof(*argv));
    size_t *lens = xcalloc(argc, sizeof(*lens));
    char(*keys)[KEYS_MAX] = xcalloc(n, sizeof(*keys));
    char nkeys[24], ttl[24];
    redisReply *r;
    int rc = -1;

    snprintf(nkeys, sizeof(nkeys), "%zu", n + 1);
    snprintf(ttl, sizeof(ttl), "%d", lock->ttl_ms);
    argv[0] = "EVAL";
    argv[1] = backup_checkpoint_lua;
    argv[2] = nkeys;
    argv[3] = lock->key;
    for (i = 0; i < n; i++) {
        argv[4 + i] = keys_backup(keys[i], marks[i].room);
        argv[6 + n + i] = marks[i].last;
    }
    argv[4 + n] = lock->token;
    argv[5 + n] = ttl;
    for (i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    r = redisCommandArgv(b->redis[shard], (int)argc, argv, lens);
    if (r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
        lock_renewed(lock);
        rc = 0;
    } else if (r != NULL && r->type == REDIS_REPLY_INTEGER) {
        log_error("lost the lock %s before moving the checkpoint of room %s "
                  "to %s (it expired: a batch took longer than %d ms); "
                  "stopping",
                  lock->key, marks[0].room, marks[0].last, lock->ttl_ms);
        lock->held = false;
    } else {
        backup_redis_error(b, r, "EVAL checkpoint", marks[0].room);
    }
    if (r != NULL)
        freeReplyObject(r);
    free(keys);
    free(lens);
    free(argv);
    return rc;
}

/* Sets the checkpoint of each mark, each on its room's shard, one script
 * per shard (each shard's checkpoints at once; a failure between two
 * shards leaves some checkpoints behind, which only costs copying their
 * messages again). Returns 0 or -1 (logged). */
static int backup_set_checkpoints(struct backup *b,
                                  const struct backup_mark *marks, size_t n)
{
    struct backup_mark *mine;
    size_t k;
    int rc = 0;

    if (b->shards == 1)
        return backup_set_shard_checkpoints(b, 0, marks, n);
    mine = xcalloc(n, sizeof(*mine));
    for (int s = 0; s < b->shards && rc == 0; s++) {
        k = 0;
        for (size_t i = 0; i < n; i++)
            if (shard_of_room(marks[i].room, b->shards) == s)
                mine[k++] = marks[i];
        if (k > 0)
            rc = backup_set_shard_checkpoints(b, s, mine, k);
    }
    free(mine);
    return rc;
}

/* Sets ct:backup:{room} to id if the lock is ours: as
 * backup_set_checkpoints. */
static int backup_set_checkpoint(struct backup *b, const char *room,
                                 const char *id)
{
    struct backup_mark m;

    m.room = room;
    snprintf(m.last, sizeof(m.last), "%s", id);
    return backup_set_checkpoints(b, &m, 1);
}

/* Fills *s from XINFO STREAM. Returns 0 or -1 (logged). */
static int backup_stream_info(struct backup *b, const char *room,
                              struct backup_stream *s)
{
    char key[KEYS_MAX];
    redisReply *r;
    size_t i;
    int rc = -1;

    memset(s, 0, sizeof(*s));
    keys_room_log(key, room);
    r = redisCommand(backup_redis(b, room), "EXISTS %s", key);
    if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
        backup_redis_error(b, r, "EXISTS", room);
        goto done;
    }
    if (r->integer == 0) {
        rc = 0;
        goto done;
    }
    freeReplyObject(r);
    r = redisCommand(backup_redis(b, room), "XINFO STREAM %s", key);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        backup_redis_error(b, r, "XINFO STREAM", room);
        goto done;
    }
    s->exists = true;
    for (i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];

        if (k->type != REDIS_REPLY_STRING && k->type != REDIS_REPLY_STATUS)
            continue;
        if (strcmp(k->str, "length") == 0 && v->type == REDIS_REPLY_INTEGER)
            s->length = v->integer;
        else if (strcmp(k->str, "last-generated-id") == 0 &&
                 v->type == REDIS_REPLY_STRING)
            snprintf(s->last, sizeof(s->last), "%s", v->str);
        else if (strcmp(k->str, "first-entry") == 0 &&
                 v->type == REDIS_REPLY_ARRAY && v->elements >= 1 &&
                 v->element[0]->type == REDIS_REPLY_STRING)
            snprintf(s->first, sizeof(s->first), "%s", v->element[0]->str);
    }
    /* A stream emptied by XTRIM still reports its last id; 0-0 means none
     * was ever added. */
    if (strcmp(s->last, "0-0") == 0)
        s->last[0] = '\0';
    rc = 0;

done:
    if (r != NULL)
        freeReplyObject(r);
    return rc;
}

void backup_progress(struct backup *b, bool final)
{
    int64_t now = lock_now_ms(), ms = now - b->started_ms;
    uint64_t done;
    double rate;
    char total[32] = "", msgs[32] = "";

    if (!b->progress)
        return;
    /* A terminal gets the line rewritten 4 times a second; a file or pipe
     * (--progress) a line every 2 s. */
    if (!final && now - b->shown_ms < (b->progress_tty ? 250 : 2000))
        return;
    b->shown_ms = now;
    done = b->copied + b->restored + b->compared;
    rate = ms > 0 ? (double)done * 1000.0 / (double)ms : 0.0;
    if (b->rooms_total > 0)
        snprintf(total, sizeof(total), "/%zu", b->rooms_total);
    if (b->messages_total > 0)
        snprintf(msgs, sizeof(msgs), "/%" PRIu64, b->messages_total);
    fprintf(stderr,
            "%s%s: %zu%s rooms, %" PRIu64 "%s messages %s, %.0f msg/s, %.1f "
            "s%s",
            b->progress_tty ? "\r" : "", b->what, b->rooms, total, done, msgs,
            strcmp(b->what, "restore") == 0  ? "restored"
            : strcmp(b->what, "verify") == 0 ? "compared"
                                             : "copied",
            rate, (double)ms / 1000.0,
            b->progress_tty ? (final ? "\033[K\n" : "\033[K") : "\n");
    fflush(stderr);
}

/* ------------------------------------------------------------ copy */

/* A room to copy: its checkpoint and the newest id its stream held when
 * the run looked. */
struct backup_room {
    const char *name;          /* not owned */
    char ck[STREAMID_STRLEN];  /* "" when none */
    char end[STREAMID_STRLEN]; /* "" when the stream is empty or missing */
};

/* Reads, in one pipeline, the checkpoint and the newest id of each room.
 * Returns 0 or -1 (logged). */
static int backup_scan(struct backup *b, struct backup_room *rs, size_t n)
{
    char key[KEYS_MAX];
    redisReply *r = NULL;
    size_t i;
    int rc = -1;

    /* one pipeline per shard: each room's replies come in its shard's
     * order */
    for (i = 0; i < n; i++) {
        redisContext *c = backup_redis(b, rs[i].name);

        redisAppendCommand(c, "GET %s", keys_backup(key, rs[i].name));
        redisAppendCommand(c, "XREVRANGE %s + - COUNT 1",
                           keys_room_log(key, rs[i].name));
    }
    for (i = 0; i < n; i++) {
        redisContext *c = backup_redis(b, rs[i].name);

        if (redisGetReply(c, (void **)&r) != REDIS_OK) {
            r = NULL;
            backup_redis_error(b, r, "GET checkpoint", rs[i].name);
            return -1; /* the connection is gone: no replies to drain */
        }
        if (backup_checkpoint_reply(b, r, keys_backup(key, rs[i].name),
                                    rs[i].name, rs[i].ck) < 0)
            rc = -2;
        freeReplyObject(r);
        if (redisGetReply(c, (void **)&r) != REDIS_OK) {
            r = NULL;
            backup_redis_error(b, r, "XREVRANGE", rs[i].name);
            return -1;
        }
        if (r->type != REDIS_REPLY_ARRAY) {
            backup_redis_error(b, r, "XREVRANGE", rs[i].name);
            rc = -2;
        } else if (r->elements > 0) {
            reply_first_id(r, rs[i].end);
        }
        freeReplyObject(r);
    }
    return rc == -2 ? -1 : 0;
}

/* Whether the stream holds messages after the checkpoint. */
static bool backup_room_behind(const struct backup_room *r)
{
    struct streamid c, e;

    if (r->end[0] == '\0')
        return false;
    if (r->ck[0] == '\0')
        return true;
    if (streamid_parse(r->ck, strlen(r->ck), &c) < 0 ||
        streamid_parse(r->end, strlen(r->end), &e) < 0)
        return true; /* cannot happen: both were parsed; let XRANGE tell */
    return streamid_cmp(&e, &c) > 0;
}

/* Messages read from Redis and not yet in MongoDB: a bulk insert in the
 * making, and the checkpoints it will move. */
struct backup_batch {
    struct chat_event *evs;
    size_t n, cap;
    size_t entries; /* stream entries read (malformed ones have no event) */
    struct backup_mark *marks;
    size_t nmarks, capmarks;
};

static void backup_batch_clear(struct backup_batch *q)
{
    event_free_array(q->evs, q->n);
    q->evs = NULL;
    q->n = q->cap = q->entries = 0;
    q->nmarks = 0;
}

/* Moves the events (taking ownership of their contents; `evs` itself is
 * freed) into the batch, and records that `room` is read up to `last`. */
static void backup_batch_add(struct backup_batch *q, const char *room,
                             const char *last, struct chat_event *evs, size_t n,
                             size_t entries)
{
    struct backup_mark *m;

    if (q->n + n > q->cap) {
        q->cap = q->n + n > 2 * q->cap ? q->n + n : 2 * q->cap;
        q->evs = xrealloc(q->evs, q->cap * sizeof(*q->evs));
    }
    if (n > 0)
        memcpy(q->evs + q->n, evs, n * sizeof(*evs));
    free(evs);
    q->n += n;
    q->entries += entries;
    if (q->nmarks > 0 && q->marks[q->nmarks - 1].room == room) {
        m = &q->marks[q->nmarks - 1];
    } else {
        if (q->nmarks == q->capmarks) {
            q->capmarks = q->capmarks != 0 ? 2 * q->capmarks : 16;
            q->marks = xrealloc(q->marks, q->capmarks * sizeof(*q->marks));
        }
        m = &q->marks[q->nmarks++];
        m->room = room;
    }
    snprintf(m->last, sizeof(m->last), "%s", last);
}

/* Writes the batch to MongoDB and, once acknowledged, moves its
 * checkpoints. Returns 0 or -1 (logged); the batch is empty afterwards. */
static int backup_flush(struct backup *b, struct backup_batch *q)
{
    size_t dups = 0;
    int rc = -1;

    if (q->nmarks == 0)
        return 0;
    if (mongo_archive_put(b->archive, q->evs, q->n, &dups) < 0)
        goto done;
    if (b->delay_ms > 0)
        backup_sleep_ms(b->delay_ms);
    if (backup_set_checkpoints(b, q->marks, q->nmarks) < 0)
        goto done;
    b->copied += q->n;
    b->already += dups;
    b->batches++;
    rc = 0;

done:
    backup_batch_clear(q);
    backup_progress(b, false);
    return rc;
}

/* Reads the room's messages after its checkpoint up to r->end into the
 * batch, flushing it whenever it is full. Returns 0 or -1 (logged). */
static int backup_copy_room(struct backup *b, struct backup_batch *q,
                            const struct backup_room *rm)
{
    char key[KEYS_MAX], start[STREAMID_STRLEN + 1], last[STREAMID_STRLEN];
    char count[24];
    struct chat_event *evs = NULL;
    size_t n = 0, got, want;
    redisReply *r = NULL;
    const redisReply *tail;

    keys_room_log(key, rm->name);
    if (rm->ck[0] != '\0')
        snprintf(start, sizeof(start), "(%s", rm->ck);
    else
        snprintf(start, sizeof(start), "-");
    /* A run copies what the stream held when it came to the room: under a
     * steady stream of new messages it still ends, and the next run (a
     * minute later, from cron) takes the rest. */
    for (;;) {
        want = b->batch > q->entries ? b->batch - q->entries : 1;
        snprintf(count, sizeof(count), "%zu", want);
        r = redisCommand(backup_redis(b, rm->name), "XRANGE %s %s %s COUNT %s",
                         key, start, rm->end, count);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
            backup_redis_error(b, r, "XRANGE", rm->name);
            goto err;
        }
        got = r->elements;
        if (got == 0)
            break;
        /* Progress goes by the stream's ids, not the events: an entry
         * reply_events skips as malformed must not be read forever. */
        tail = r->element[got - 1];
        if (tail->type != REDIS_REPLY_ARRAY || tail->elements < 1 ||
            tail->element[0]->type != REDIS_REPLY_STRING) {
            log_error("room %s: XRANGE returned an entry without an id",
                      rm->name);
            goto err;
        }
        snprintf(last, sizeof(last), "%s", tail->element[0]->str);
        if (reply_events(r, rm->name, &evs, &n) < 0) {
            log_error("room %s: cannot read the XRANGE reply", rm->name);
            goto err;
        }
        freeReplyObject(r);
        r = NULL;
        backup_batch_add(q, rm->name, last, evs, n, got);
        evs = NULL;
        n = 0;
        if (q->entries >= b->batch) {
            if (backup_flush(b, q) < 0)
                return -1;
            if (backup_stopping(b)) {
                log_warn("room %s: stopping on a signal after %s", rm->name,
                         last);
                return -1;
            }
        }
        if (got < want)
            break;
        snprintf(start, sizeof(start), "(%s", last);
    }
    if (r != NULL)
        freeReplyObject(r);
    return 0;

err:
    event_free_array(evs, n);
    if (r != NULL)
        freeReplyObject(r);
    return -1;
}

int backup_copy(struct backup *b)
{
    struct backup_batch q;
    struct backup_room *rs = NULL;
    char **rooms = NULL;
    size_t n = 0, i, j, k;
    int rc = -1;

    memset(&q, 0, sizeof(q));
    if (backup_redis_rooms(b, &rooms, &n) < 0)
        return -1;
    b->rooms_total = n;
    rs = xcalloc(BACKUP_SCAN_ROOMS, sizeof(*rs));
    for (i = 0; i < n; i += BACKUP_SCAN_ROOMS) {
        k = n - i < BACKUP_SCAN_ROOMS ? n - i : BACKUP_SCAN_ROOMS;
        for (j = 0; j < k; j++)
            rs[j].name = rooms[i + j];
        if (backup_scan(b, rs, k) < 0)
            goto done;
        for (j = 0; j < k; j++) {
            if (backup_room_behind(&rs[j]) &&
                backup_copy_room(b, &q, &rs[j]) < 0)
                goto done;
            b->rooms++;
            backup_progress(b, false);
            if (backup_stopping(b)) {
                /* What is read is written first: it costs one insert. */
                if (backup_flush(b, &q) == 0)
                    log_warn("stopping on a signal after room %s", rs[j].name);
                goto done;
            }
        }
        if (backup_lock_refresh(b) < 0)
            goto done;
    }
    if (backup_flush(b, &q) < 0)
        goto done;
    if (b->already > 0)
        log_info("%" PRIu64 " of the %" PRIu64 " messages copied were already "
                 "in MongoDB (a run that died after writing them and before "
                 "moving the checkpoint)",
                 b->already, b->copied);
    rc = 0;

done:
    backup_batch_clear(&q);
    free(q.marks);
    free(rs);
    xfree_strings(rooms, n);
    return rc;
}

/* ------------------------------------------------------------ retain */

int backup_retain(struct backup *b, long long keep)
{
    char **rooms = NULL, key[KEYS_MAX], ck[KEYS_MAX], bus[KEYS_MAX], cap[24];
    bool *again = NULL;
    size_t n = 0, i, left;
    redisReply *r;
    int rc = -1;

    if (backup_redis_rooms(b, &rooms, &n) < 0)
        return -1;
    again = xcalloc(n + 1, sizeof(*again));
    for (i = 0; i < n; i++)
        again[i] = true;
    snprintf(cap, sizeof(cap), "%d", BACKUP_RETAIN_CAP);
    left = n;
    /* Every room at once, pipelined; a room with more to trim than the
     * script takes per call goes round again. */
    while (left > 0) {
        if (backup_lock_refresh(b) < 0)
            goto done;
        for (i = 0; i < n; i++) {
            if (again[i])
                redisAppendCommand(
                    backup_redis(b, rooms[i]), "EVAL %s 2 %s %s %lld %s %s %s",
                    backup_retain_lua, keys_room_log(key, rooms[i]),
                    keys_backup(ck, rooms[i]), keep, cap,
                    keys_bus(bus, rooms[i]), KEYS_BUS_TRIMMED);
        }
        left = 0;
        for (i = 0; i < n; i++) {
            if (!again[i])
                continue;
            if (redisGetReply(backup_redis(b, rooms[i]), (void **)&r) !=
                REDIS_OK) {
                backup_redis_error(b, NULL, "EVAL retain", rooms[i]);
                goto done;
            }
            again[i] = false;
            if (r->type != REDIS_REPLY_INTEGER) {
                backup_redis_error(b, r, "EVAL retain", rooms[i]);
                rc = -2;
            } else {
                b->trimmed += (uint64_t)r->integer;
                if (r->integer >= BACKUP_RETAIN_CAP) {
                    again[i] = true;
                    left++;
                }
            }
            freeReplyObject(r);
        }
        if (rc == -2) {
            rc = -1;
            goto done;
        }
    }
    rc = 0;

done:
    free(again);
    xfree_strings(rooms, n);
    return rc;
}

/* ------------------------------------------------------------ restore */

/* Appends the events to the room's stream with their own ids, pipelined.
 * Returns 0, or -1 when any XADD failed (logged). */
static int backup_xadd(struct backup *b, const char *key, const char *room,
                       const struct chat_event *evs, size_t n)
{
    redisContext *c = backup_redis(b, room);
    char tsbuf[24];
    redisReply *r;
    size_t i;
    int rc = 0;

    for (i = 0; i < n; i++) {
        const char *argv[9] = {"XADD",      key,         evs[i].id,
                               "from",      evs[i].from, "text",
                               evs[i].text, "ts",        tsbuf};
        size_t lens[9];
        int j;

        snprintf(tsbuf, sizeof(tsbuf), "%" PRId64, evs[i].ts);
        for (j = 0; j < 9; j++)
            lens[j] = strlen(argv[j]);
        lens[6] = evs[i].text_len;
        redisAppendCommandArgv(c, 9, argv, lens);
    }
    for (i = 0; i < n; i++) {
        if (redisGetReply(c, (void **)&r) != REDIS_OK) {
            log_error("redis XADD (room %s): %s", room, c->errstr);
            return -1;
        }
        if (r->type == REDIS_REPLY_ERROR && rc == 0) {
            log_error("room %s: XADD %s refused: %s (did a writer append "
                      "meanwhile? stop crosstalkd and crosstalk-fcgi during "
                      "a restore)",
                      room, evs[i].id, r->str);
            rc = -1;
        }
        freeReplyObject(r);
    }
    return rc;
}

/* The archive read in one pass, by room and id, one message at a time. */
struct backup_reader {
    struct mongo_archive_scan *scan;
    size_t batch;
    struct chat_event *evs; /* the current chunk; taken slots are zeroed */
    size_t n, i;
    bool end;
};

static void backup_reader_open(struct backup *b, struct backup_reader *rd,
                               const char *room)
{
    memset(rd, 0, sizeof(*rd));
    rd->batch = b->batch;
    rd->scan = mongo_archive_scan_open(b->archive, room, NULL, NULL, b->batch);
}

static void backup_reader_close(struct backup_reader *rd)
{
    event_free_array(rd->evs, rd->n);
    mongo_archive_scan_close(rd->scan);
    memset(rd, 0, sizeof(*rd));
}

/* Points *ev at the next message, or NULL at the end, without taking it.
 * Returns 0, or -1 when MongoDB cannot be read (logged). */
static int backup_peek(struct backup_reader *rd, struct chat_event **ev)
{
    *ev = NULL;
    while (rd->i == rd->n && !rd->end) {
        event_free_array(rd->evs, rd->n);
        rd->evs = NULL;
        rd->n = rd->i = 0;
        if (mongo_archive_scan_next(rd->scan, rd->batch, &rd->evs, &rd->n) < 0)
            return -1;
        if (rd->n == 0)
            rd->end = true;
    }
    if (rd->i < rd->n)
        *ev = &rd->evs[rd->i];
    return 0;
}

/* The next message if it belongs to `room`, else NULL: as backup_peek. */
static int backup_peek_room(struct backup_reader *rd, const char *room,
                            struct chat_event **ev)
{
    if (backup_peek(rd, ev) < 0)
        return -1;
    if (*ev != NULL && strcmp((*ev)->room, room) != 0)
        *ev = NULL;
    return 0;
}

/* Moves the peeked message out of the reader into *out (or drops it when
 * out is NULL). */
static void backup_take(struct backup_reader *rd, struct chat_event *out)
{
    if (out != NULL) {
        *out = rd->evs[rd->i];
        memset(&rd->evs[rd->i], 0, sizeof(rd->evs[rd->i]));
    }
    rd->i++;
}

static int backup_restore_room(struct backup *b, struct backup_reader *rd,
                               const char *room)
{
    char key[KEYS_MAX], ck[STREAMID_STRLEN], last_id[STREAMID_STRLEN];
    char tsbuf[24];
    struct streamid after, first;
    bool has_after = false, has_first = false, seen = false;
    struct backup_stream s;
    struct chat_event *ev, *evs;
    uint64_t room_restored = 0, older = 0;
    int64_t last_ts = 0;
    size_t n = 0;
    redisReply *r = NULL;
    int rc = -1, has;

    keys_room_log(key, room);
    if (backup_stream_info(b, room, &s) < 0)
        return -1;
    has = backup_get_checkpoint(b, room, ck);
    if (has < 0)
        return -1;
    if (s.last[0] != '\0') {
        if (backup_sid(s.last, &after) < 0)
            return -1;
        has_after = true;
    }
    if (s.first[0] != '\0') {
        if (backup_sid(s.first, &first) < 0)
            return -1;
        has_first = true;
    }
    evs = xcalloc(b->batch, sizeof(*evs));
    for (;;) {
        if (backup_peek_room(rd, room, &ev) < 0)
            goto done;
        if (ev != NULL) {
            seen = true;
            last_ts = ev->ts;
            /* XADD only appends: archived messages up to the stream's last
             * id cannot be added; those older than its first entry were
             * trimmed and stay readable through the archive. */
            if (has_after && streamid_cmp(&ev->sid, &after) <= 0) {
                if (!has_first || streamid_cmp(&ev->sid, &first) < 0)
                    older++;
                backup_take(rd, NULL);
                continue;
            }
            backup_take(rd, &evs[n++]);
            if (n < b->batch)
                continue;
        }
        if (n > 0) {
            if (backup_xadd(b, key, room, evs, n) < 0)
                goto done;
            after = evs[n - 1].sid;
            has_after = true;
            room_restored += n;
            b->restored += n;
            event_free_array(evs, n);
            evs = xcalloc(b->batch, sizeof(*evs));
            n = 0;
            backup_progress(b, false);
            if (backup_lock_refresh(b) < 0)
                goto done;
            if (backup_stopping(b)) {
                log_warn("room %s: stopping on a signal after %s", room,
                         streamid_format(&after, last_id));
                goto done;
            }
        }
        if (ev == NULL)
            break;
    }
    b->skipped += older;
    if (older > 0)
        log_debug("room %s: %" PRIu64 " archived message(s) older than the "
                  "stream's %s are not restored (XADD only appends)",
                  room, older, has_first ? "first entry" : "last id");

    /* The room's entry in ct:rooms, at its last message's time. */
    if (seen) {
        snprintf(tsbuf, sizeof(tsbuf), "%" PRId64, last_ts);
        r = redisCommand(backup_redis(b, room), "ZADD %s GT %s %s", KEYS_ROOMS,
                         tsbuf, room);
        if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
            backup_redis_error(b, r, "ZADD", room);
            goto done;
        }
        freeReplyObject(r);
        r = NULL;
    }
    /* Daemons following the room learnt its newest from the bus, which
     * carried none of these: they read it again. */
    if (room_restored > 0) {
        char bus[KEYS_MAX];
        r = redisCommand(backup_redis(b, room), "PUBLISH %s %s",
                         keys_bus(bus, room), KEYS_BUS_RESTORED);
        if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
            backup_redis_error(b, r, "PUBLISH", room);
            goto done;
        }
    }

    /* Everything up to the last restored id is in MongoDB; the checkpoint
     * may say so unless the stream held messages after the old checkpoint
     * (they were never copied, and moving past them would lose them). */
    if (room_restored > 0) {
        struct streamid c, l;
        bool covered = s.last[0] == '\0' ||
                       (has && streamid_parse(ck, strlen(ck), &c) == 0 &&
                        streamid_parse(s.last, strlen(s.last), &l) == 0 &&
                        streamid_cmp(&c, &l) >= 0);

        if (covered) {
            if (backup_set_checkpoint(b, room,
                                      streamid_format(&after, last_id)) < 0)
                goto done;
        } else {
            log_warn("room %s: checkpoint left at %s: the stream held messages "
                     "up to %s not yet in MongoDB; the next backup copies them",
                     room, has ? ck : "(none)", s.last);
        }
    }
    log_debug("room %s: restored %" PRIu64 " message(s)%s%s", room,
              room_restored,
              s.last[0] != '\0' ? " after the stream's last id " : "", s.last);
    rc = 0;

done:
    event_free_array(evs, n);
    if (r != NULL)
        freeReplyObject(r);
    return rc;
}

int backup_restore(struct backup *b, const char *room)
{
    struct backup_reader rd;
    char name[NAME_ROOM_MAX + 1];
    struct chat_event *ev;
    int rc = -1;

    /* One pass over the archive, by room: a server that cannot use the
     * indexes (FerretDB) reads every document once, not once per room. */
    if (room == NULL && b->progress) {
        int64_t est = mongo_archive_estimate(b->archive);

        b->messages_total = est > 0 ? (uint64_t)est : 0;
    }
    backup_reader_open(b, &rd, room);
    for (;;) {
        if (backup_peek(&rd, &ev) < 0)
            goto done;
        if (ev == NULL && (room == NULL || b->rooms > 0))
            break;
        snprintf(name, sizeof(name), "%s", ev != NULL ? ev->room : room);
        if (backup_restore_room(b, &rd, name) < 0)
            goto done;
        b->rooms++;
        backup_progress(b, false);
        if (backup_stopping(b)) {
            log_warn("stopping on a signal after room %s", name);
            goto done;
        }
        if (room != NULL)
            break;
    }
    rc = 0;

done:
    backup_reader_close(&rd);
    return rc;
}

/* ------------------------------------------------------------ verify */

/* One chunk of the stream at a time, for the comparison. */
struct backup_side {
    struct chat_event *evs;
    size_t n, i;
    bool end;
};

/* Refills the Redis side from the stream: entries after `from` (from
 * itself too when `first`) up to hi. Returns 0 or -1 (logged). */
static int backup_side_redis(struct backup *b, const char *room,
                             struct backup_side *sd, const char *from,
                             bool first, const char *hi)
{
    char key[KEYS_MAX], start[STREAMID_STRLEN + 1], count[24];
    redisReply *r;
    int rc = -1;

    event_free_array(sd->evs, sd->n);
    sd->evs = NULL;
    sd->n = sd->i = 0;
    snprintf(start, sizeof(start), "%s%s", first ? "" : "(", from);
    snprintf(count, sizeof(count), "%zu", b->batch);
    r = redisCommand(backup_redis(b, room), "XRANGE %s %s %s COUNT %s",
                     keys_room_log(key, room), start, hi, count);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        backup_redis_error(b, r, "XRANGE", room);
        goto done;
    }
    if (r->elements < b->batch)
        sd->end = true;
    if (reply_events(r, room, &sd->evs, &sd->n) < 0)
        goto done;
    if (r->elements > 0 && sd->n == 0 && !sd->end) {
        log_error("room %s: %zu malformed stream entries in a row", room,
                  r->elements);
        goto done;
    }
    rc = 0;

done:
    if (r != NULL)
        freeReplyObject(r);
    return rc;
}

static bool backup_same(const struct chat_event *x, const struct chat_event *y)
{
    return strcmp(x->from, y->from) == 0 && x->ts == y->ts &&
           x->text_len == y->text_len &&
           memcmp(x->text, y->text, x->text_len) == 0;
}

/* What a message-by-message comparison of one room found. */
struct backup_diff {
    uint64_t redis, mongo;       /* messages read on each side */
    uint64_t only_redis;         /* missing from MongoDB */
    uint64_t only_mongo;         /* missing from the stream */
    uint64_t changed;            /* same id, other sender, text or time */
    char first[STREAMID_STRLEN]; /* id of the first difference */
    char r_last[STREAMID_STRLEN], m_last[STREAMID_STRLEN];
};

static void backup_diff_note(struct backup_diff *d, const char *id)
{
    if (d->first[0] == '\0')
        snprintf(d->first, sizeof(d->first), "%s", id);
}

/* Walks the stream from lo to hi (inclusive) and the reader's messages of
 * the room side by side, in id order; the reader's messages of the room
 * outside [lo, hi] are passed over (trimmed from Redis, or written by a
 * run that died before its checkpoint). Returns 0 or -1 (logged). */
static int backup_compare(struct backup *b, struct backup_reader *mr,
                          const char *room, const char *lo, const char *hi,
                          struct backup_diff *d)
{
    struct backup_side rd;
    struct streamid l, h;
    struct chat_event *m;
    char from[STREAMID_STRLEN];
    int rc = -1, c;

    memset(&rd, 0, sizeof(rd));
    memset(d, 0, sizeof(*d));
    if (backup_sid(lo, &l) < 0 || backup_sid(hi, &h) < 0)
        return -1;
    snprintf(from, sizeof(from), "%s", lo);
    if (backup_side_redis(b, room, &rd, from, true, hi) < 0)
        goto done;
    for (;;) {
        if (rd.i == rd.n && !rd.end) {
            if (rd.n > 0)
                snprintf(from, sizeof(from), "%s", rd.evs[rd.n - 1].id);
            if (backup_side_redis(b, room, &rd, from, false, hi) < 0)
                goto done;
            continue;
        }
        if (backup_peek_room(mr, room, &m) < 0)
            goto done;
        if (m != NULL &&
            (streamid_cmp(&m->sid, &l) < 0 || streamid_cmp(&m->sid, &h) > 0)) {
            backup_take(mr, NULL);
            continue;
        }
        if (rd.i == rd.n && m == NULL)
            break;
        if (rd.i == rd.n)
            c = 1;
        else if (m == NULL)
            c = -1;
        else
            c = streamid_cmp(&rd.evs[rd.i].sid, &m->sid);
        if (c <= 0) {
            d->redis++;
            snprintf(d->r_last, sizeof(d->r_last), "%s", rd.evs[rd.i].id);
        }
        if (c >= 0) {
            d->mongo++;
            snprintf(d->m_last, sizeof(d->m_last), "%s", m->id);
        }
        if (c < 0) {
            d->only_redis++;
            backup_diff_note(d, rd.evs[rd.i].id);
        } else if (c > 0) {
            d->only_mongo++;
            backup_diff_note(d, m->id);
        } else if (!backup_same(&rd.evs[rd.i], m)) {
            d->changed++;
            backup_diff_note(d, m->id);
        }
        if (c <= 0)
            rd.i++;
        if (c >= 0)
            backup_take(mr, NULL);
        b->compared++;
        backup_progress(b, false);
    }
    rc = 0;

done:
    event_free_array(rd.evs, rd.n);
    return rc;
}

/* Passes over the reader's messages of `room`, counting them and keeping
 * the last id. Returns 0 or -1 (logged). */
static int backup_skip_room(struct backup_reader *mr, const char *room,
                            uint64_t *count, char *last)
{
    struct chat_event *m;

    *count = 0;
    last[0] = '\0';
    for (;;) {
        if (backup_peek_room(mr, room, &m) < 0)
            return -1;
        if (m == NULL)
            return 0;
        (*count)++;
        snprintf(last, STREAMID_STRLEN, "%s", m->id);
        backup_take(mr, NULL);
    }
}

static int backup_verify_room(struct backup *b, struct backup_reader *mr,
                              const char *room, bool indexed)
{
    char ck[STREAMID_STRLEN], m_last[STREAMID_STRLEN];
    struct backup_stream s;
    struct backup_diff d;
    uint64_t m_count = 0, pending;
    int has;

    if (backup_stream_info(b, room, &s) < 0)
        return -1;
    has = backup_get_checkpoint(b, room, ck);
    if (has < 0)
        return -1;
    if (!s.exists || !indexed || !has || s.first[0] == '\0') {
        if (backup_skip_room(mr, room, &m_count, m_last) < 0)
            return -1;
    }
    if (!s.exists) {
        if (m_count == 0) {
            if (!b->quiet)
                printf("verify: room %s: no messages on either side: ok\n",
                       room);
            return 0;
        }
        printf("verify: room %s: MongoDB holds %" PRIu64 " message(s) up to %s"
               " but Redis has no stream (run --restore --room %s): "
               "DIFFERENT\n",
               room, m_count, m_last, room);
        return 1;
    }
    if (!indexed) {
        printf("verify: room %s: the stream exists but %s does not list the "
               "room (run --restore --room %s): DIFFERENT\n",
               room, KEYS_ROOMS, room);
        return 1;
    }
    if (!has || s.first[0] == '\0') {
        /* Nothing both must hold: never backed up, or trimmed empty. */
        if (!b->quiet)
            printf("verify: room %s: redis holds %lld, none of them both must "
                   "hold (checkpoint %s): ok\n",
                   room, s.length, has ? ck : "none");
        return 0;
    }
    if (backup_compare(b, mr, room, s.first, ck, &d) < 0 ||
        backup_skip_room(mr, room, &m_count, m_last) < 0)
        return -1;
    pending = (uint64_t)s.length > d.redis ? (uint64_t)s.length - d.redis : 0;
    if (d.only_redis == 0 && d.only_mongo == 0 && d.changed == 0) {
        if (!b->quiet)
            printf("verify: room %s: %s..%s: redis %" PRIu64
                   ", mongodb %" PRIu64 ", last %s; %" PRIu64 " pending: ok\n",
                   room, s.first, ck, d.redis, d.mongo,
                   d.r_last[0] != '\0' ? d.r_last : "none", pending);
        return 0;
    }
    printf("verify: room %s: %s..%s: redis %" PRIu64
           " (last %s), mongodb %" PRIu64 " (last %s); %" PRIu64
           " missing from MongoDB, %" PRIu64 " missing from Redis, %" PRIu64
           " with other content, the first at %s; %" PRIu64
           " pending: DIFFERENT\n",
           room, s.first, ck, d.redis, d.r_last[0] != '\0' ? d.r_last : "none",
           d.mongo, d.m_last[0] != '\0' ? d.m_last : "none", d.only_redis,
           d.only_mongo, d.changed, d.first, pending);
    return 1;
}

static int backup_cmp_str(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

int backup_verify(struct backup *b)
{
    struct backup_reader mr;
    char **rr = NULL, name[NAME_ROOM_MAX + 1];
    struct chat_event *m;
    size_t nr = 0, i = 0;
    int rc = -1, d, c;

    backup_reader_open(b, &mr, NULL);
    if (backup_redis_rooms(b, &rr, &nr) < 0)
        goto done;
    if (nr > 1)
        qsort(rr, nr, sizeof(*rr), backup_cmp_str);
    b->rooms_total = nr;
    /* The rooms of ct:rooms and of the archive, merged in name order: the
     * archive is read once, by room. */
    for (;;) {
        if (backup_peek(&mr, &m) < 0)
            goto done;
        if (i == nr && m == NULL)
            break;
        if (i == nr)
            c = 1;
        else if (m == NULL)
            c = -1;
        else
            c = strcmp(rr[i], m->room);
        snprintf(name, sizeof(name), "%s", c <= 0 ? rr[i] : m->room);
        if (backup_lock_refresh(b) < 0)
            goto done;
        d = backup_verify_room(b, &mr, name, c <= 0);
        if (d < 0)
            goto done;
        if (c <= 0)
            i++;
        else
            b->rooms_total++;
        b->rooms++;
        if (d > 0)
            b->differences++;
        backup_progress(b, false);
    }
    fflush(stdout);
    rc = b->differences > 0 ? 1 : 0;

done:
    backup_reader_close(&mr);
    xfree_strings(rr, nr);
    return rc;
}
