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
#include "streamid.h"
#include "xmalloc.h"

/* Moves a room's checkpoint, but only for the holder of the lock, and
 * renews the lock on the way. KEYS = {lock, checkpoint}, ARGV = {token,
 * id, ttl ms}. Returns 1, or 0 when the lock is not ours. */
static const char backup_checkpoint_lua[] =
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end "
    "redis.call('SET', KEYS[2], ARGV[2]) "
    "redis.call('PEXPIRE', KEYS[1], ARGV[3]) return 1";

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

/* Logs a failed command: NULL (connection) or an error reply. */
static void backup_redis_error(const struct backup *b, const redisReply *r,
                               const char *what, const char *room)
{
    if (r == NULL)
        log_error("redis %s (room %s): %s", what, room, b->redis->errstr);
    else if (r->type == REDIS_REPLY_ERROR)
        log_error("redis %s (room %s): %s", what, room, r->str);
    else
        log_error("redis %s (room %s): unexpected reply type %d", what, room,
                  r->type);
}

/* The names of ct:rooms, validated. Returns 0 or -1 (logged). */
static int backup_redis_rooms(struct backup *b, char ***rooms, size_t *n)
{
    redisReply *r;
    size_t i;

    *rooms = NULL;
    *n = 0;
    r = redisCommand(b->redis, "ZRANGE %s 0 -1", KEYS_ROOMS);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        backup_redis_error(b, r, "ZRANGE", KEYS_ROOMS);
        if (r != NULL)
            freeReplyObject(r);
        return -1;
    }
    *rooms = xcalloc(r->elements + 1, sizeof(**rooms));
    for (i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];

        if (e->type != REDIS_REPLY_STRING ||
            !names_room_valid(e->str, e->len)) {
            log_warn("%s holds an invalid room name; skipped", KEYS_ROOMS);
            continue;
        }
        (*rooms)[(*n)++] = xstrndup(e->str, e->len);
    }
    freeReplyObject(r);
    return 0;
}

/* Reads ct:backup:{room} into id. Returns 1 when set, 0 when not, -1 on
 * error (logged; a value that is not a stream id is one). */
static int backup_get_checkpoint(struct backup *b, const char *room, char *id)
{
    char key[KEYS_MAX];
    struct streamid sid;
    redisReply *r;
    int rc = -1;

    id[0] = '\0';
    r = redisCommand(b->redis, "GET %s", keys_backup(key, room));
    if (r != NULL && r->type == REDIS_REPLY_NIL) {
        rc = 0;
    } else if (r != NULL && r->type == REDIS_REPLY_STRING) {
        if (streamid_parse(r->str, r->len, &sid) < 0) {
            log_error("%s holds '%.*s', not a stream id; fix or delete it", key,
                      (int)(r->len > 64 ? 64 : r->len), r->str);
        } else {
            streamid_format(&sid, id);
            rc = 1;
        }
    } else {
        backup_redis_error(b, r, "GET checkpoint", room);
    }
    if (r != NULL)
        freeReplyObject(r);
    return rc;
}

/* Sets ct:backup:{room} to id if the lock is ours. Returns 0, or -1 when
 * the lock was lost or Redis failed (logged). */
static int backup_set_checkpoint(struct backup *b, const char *room,
                                 const char *id)
{
    char key[KEYS_MAX];
    redisReply *r;
    int rc = -1;

    r = redisCommand(b->redis, "EVAL %s 2 %s %s %s %s %d",
                     backup_checkpoint_lua, b->lock->key,
                     keys_backup(key, room), b->lock->token, id,
                     b->lock->ttl_ms);
    if (r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
        lock_renewed(b->lock);
        rc = 0;
    } else if (r != NULL && r->type == REDIS_REPLY_INTEGER) {
        log_error("room %s: lost the lock %s before moving the checkpoint to "
                  "%s (it expired: a batch took longer than %d ms); stopping",
                  room, b->lock->key, id, b->lock->ttl_ms);
        b->lock->held = false;
    } else {
        backup_redis_error(b, r, "EVAL checkpoint", room);
    }
    if (r != NULL)
        freeReplyObject(r);
    return rc;
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
    r = redisCommand(b->redis, "EXISTS %s", key);
    if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
        backup_redis_error(b, r, "EXISTS", room);
        goto done;
    }
    if (r->integer == 0) {
        rc = 0;
        goto done;
    }
    freeReplyObject(r);
    r = redisCommand(b->redis, "XINFO STREAM %s", key);
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

static void backup_progress(struct backup *b, const char *room,
                            uint64_t room_copied)
{
    b->batches++;
    if (b->batches % BACKUP_PROGRESS_BATCHES == 0)
        log_info("progress: room %s: %" PRIu64 " copied so far (%" PRIu64
                 " in this run, %" PRIu64 " batches)",
                 room, room_copied, b->copied, b->batches);
}

static int backup_copy_room(struct backup *b, const char *room)
{
    char key[KEYS_MAX], start[STREAMID_STRLEN + 1], last[STREAMID_STRLEN];
    char end[STREAMID_STRLEN], count[24];
    struct event *evs = NULL;
    uint64_t room_copied = 0;
    size_t n = 0, got;
    redisReply *r = NULL;
    int rc = -1, has;

    keys_room_log(key, room);
    has = backup_get_checkpoint(b, room, last);
    if (has < 0)
        return -1;
    if (has)
        snprintf(start, sizeof(start), "(%s", last);
    else
        snprintf(start, sizeof(start), "-");
    snprintf(count, sizeof(count), "%zu", b->batch);
    /* A run copies what the stream held when it came to the room: under a
     * steady stream of new messages it still ends, and the next run (a
     * minute later, from cron) takes the rest. */
    r = redisCommand(b->redis, "XREVRANGE %s + - COUNT 1", key);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        backup_redis_error(b, r, "XREVRANGE", room);
        goto done;
    }
    if (r->elements == 0 || reply_first_id(r, end) != 0) {
        rc = 0; /* an empty or missing stream: nothing to copy */
        goto done;
    }
    freeReplyObject(r);
    r = NULL;
    for (;;) {
        const redisReply *tail;

        r = redisCommand(b->redis, "XRANGE %s %s %s COUNT %s", key, start, end,
                         count);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
            backup_redis_error(b, r, "XRANGE", room);
            goto done;
        }
        got = r->elements;
        if (got == 0)
            break;
        /* Progress goes by the stream's ids, not the events: an entry
         * reply_events skips as malformed must not be read forever. */
        tail = r->element[got - 1];
        if (tail->type != REDIS_REPLY_ARRAY || tail->elements < 1 ||
            tail->element[0]->type != REDIS_REPLY_STRING) {
            log_error("room %s: XRANGE returned an entry without an id", room);
            goto done;
        }
        snprintf(last, sizeof(last), "%s", tail->element[0]->str);
        if (reply_events(r, room, &evs, &n) < 0) {
            log_error("room %s: cannot read the XRANGE reply", room);
            goto done;
        }
        freeReplyObject(r);
        r = NULL;
        if (mongo_archive_put(b->archive, evs, n) < 0)
            goto done;
        event_free_array(evs, n);
        evs = NULL;
        if (b->delay_ms > 0)
            backup_sleep_ms(b->delay_ms);
        if (backup_set_checkpoint(b, room, last) < 0)
            goto done;
        b->copied += n;
        room_copied += n;
        backup_progress(b, room, room_copied);
        if (got < b->batch)
            break;
        if (backup_stopping(b)) {
            log_warn("room %s: stopping on a signal after %s", room, last);
            goto done;
        }
        snprintf(start, sizeof(start), "(%s", last);
    }
    if (room_copied > 0)
        log_debug("room %s: %" PRIu64 " message(s) copied, checkpoint %s", room,
                  room_copied, last);
    rc = 0;

done:
    event_free_array(evs, n);
    if (r != NULL)
        freeReplyObject(r);
    return rc;
}

int backup_copy(struct backup *b)
{
    char **rooms = NULL;
    size_t n = 0, i;
    int rc = -1;

    if (backup_redis_rooms(b, &rooms, &n) < 0)
        return -1;
    for (i = 0; i < n; i++) {
        if (backup_copy_room(b, rooms[i]) < 0)
            goto done;
        b->rooms++;
        if (backup_stopping(b)) {
            log_warn("stopping on a signal after room %s", rooms[i]);
            goto done;
        }
    }
    rc = 0;

done:
    xfree_strings(rooms, n);
    return rc;
}

/* The smallest id greater than id. */
static void backup_next_id(struct streamid *id)
{
    if (id->seq < UINT64_MAX) {
        id->seq++;
    } else if (id->ms < UINT64_MAX) {
        id->ms++;
        id->seq = 0;
    }
}

static int backup_retain_room(struct backup *b, const char *room,
                              long long keep)
{
    char key[KEYS_MAX], ck[STREAMID_STRLEN], minid[STREAMID_STRLEN];
    struct streamid limit, nth;
    redisReply *r = NULL;
    int rc = -1, has;

    keys_room_log(key, room);
    has = backup_get_checkpoint(b, room, ck);
    if (has <= 0)
        return has; /* nothing archived yet: nothing may go */
    streamid_parse(ck, strlen(ck), &limit);
    backup_next_id(&limit);
    if (keep > 0) {
        const redisReply *e;

        r = redisCommand(b->redis, "XREVRANGE %s + - COUNT %lld", key, keep);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
            backup_redis_error(b, r, "XREVRANGE", room);
            goto done;
        }
        if ((long long)r->elements < keep) {
            rc = 0;
            goto done;
        }
        e = r->element[r->elements - 1];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 1 ||
            e->element[0]->type != REDIS_REPLY_STRING ||
            streamid_parse(e->element[0]->str, e->element[0]->len, &nth) < 0) {
            log_error("room %s: XREVRANGE returned an entry without an id",
                      room);
            goto done;
        }
        if (streamid_cmp(&nth, &limit) < 0)
            limit = nth;
        freeReplyObject(r);
    }
    streamid_format(&limit, minid);
    r = redisCommand(b->redis, "XTRIM %s MINID %s", key, minid);
    if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
        backup_redis_error(b, r, "XTRIM", room);
        goto done;
    }
    if (r->integer > 0)
        log_debug("room %s: trimmed %lld entries older than %s (checkpoint %s)",
                  room, r->integer, minid, ck);
    b->trimmed += (uint64_t)r->integer;
    rc = 0;

done:
    if (r != NULL)
        freeReplyObject(r);
    return rc;
}

int backup_retain(struct backup *b, long long keep)
{
    char **rooms = NULL;
    size_t n = 0, i;
    int rc = -1;

    if (backup_redis_rooms(b, &rooms, &n) < 0)
        return -1;
    for (i = 0; i < n; i++) {
        if (lock_refresh(b->redis, b->lock, false) < 0 ||
            backup_retain_room(b, rooms[i], keep) < 0)
            goto done;
    }
    rc = 0;

done:
    xfree_strings(rooms, n);
    return rc;
}

/* Appends the events to the room's stream with their own ids, pipelined.
 * Returns 0, or -1 when any XADD failed (logged). */
static int backup_xadd(struct backup *b, const char *key, const char *room,
                       const struct event *evs, size_t n)
{
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
        redisAppendCommandArgv(b->redis, 9, argv, lens);
    }
    for (i = 0; i < n; i++) {
        if (redisGetReply(b->redis, (void **)&r) != REDIS_OK) {
            log_error("redis XADD (room %s): %s", room, b->redis->errstr);
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

static int backup_restore_room(struct backup *b, const char *room)
{
    char key[KEYS_MAX], ck[STREAMID_STRLEN], last_id[STREAMID_STRLEN];
    char m_last[STREAMID_STRLEN], tsbuf[24];
    struct streamid after, first;
    bool has_after = false;
    struct backup_stream s;
    struct event *evs = NULL, *newest = NULL;
    uint64_t older = 0, room_restored = 0;
    size_t n = 0, nn = 0;
    redisReply *r = NULL;
    int rc = -1, has;

    keys_room_log(key, room);
    if (backup_stream_info(b, room, &s) < 0)
        return -1;
    has = backup_get_checkpoint(b, room, ck);
    if (has < 0)
        return -1;
    if (s.last[0] != '\0') {
        /* Archived messages up to the stream's last id that the stream
         * lacks (those older than its first entry: trimmed) cannot be
         * added back; they stay readable through the archive. */
        uint64_t held = 0;

        if (backup_sid(s.last, &after) < 0 ||
            (s.first[0] != '\0' && backup_sid(s.first, &first) < 0))
            return -1;
        has_after = true;
        if (mongo_archive_range(b->archive, room, NULL, &after, &older,
                                m_last) < 0)
            return -1;
        if (s.first[0] != '\0' &&
            mongo_archive_range(b->archive, room, &first, &after, &held,
                                m_last) < 0)
            return -1;
        if (older > held) {
            b->skipped += older - held;
            log_info("room %s: %" PRIu64 " archived message(s) older than the "
                     "stream's %s are not restored (XADD only appends)",
                     room, older - held,
                     s.first[0] != '\0' ? "first entry" : "last id");
        }
    }
    for (;;) {
        if (mongo_archive_after(b->archive, room, has_after ? &after : NULL,
                                b->batch, &evs, &n) < 0)
            goto done;
        if (n == 0)
            break;
        if (backup_xadd(b, key, room, evs, n) < 0)
            goto done;
        after = evs[n - 1].sid;
        has_after = true;
        room_restored += n;
        b->restored += n;
        event_free_array(evs, n);
        evs = NULL;
        n = 0;
        if (lock_refresh(b->redis, b->lock, false) < 0)
            goto done;
        if (backup_stopping(b)) {
            log_warn("room %s: stopping on a signal after %s", room,
                     streamid_format(&after, last_id));
            goto done;
        }
    }

    /* The room's entry in ct:rooms, at its last message's time. */
    if (mongo_archive_before(b->archive, room, NULL, 1, &newest, &nn) < 0)
        goto done;
    if (nn == 1) {
        snprintf(tsbuf, sizeof(tsbuf), "%" PRId64, newest[0].ts);
        r = redisCommand(b->redis, "ZADD %s GT %s %s", KEYS_ROOMS, tsbuf, room);
        if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
            backup_redis_error(b, r, "ZADD", room);
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
    log_info("room %s: restored %" PRIu64 " message(s)%s%s", room,
             room_restored,
             s.last[0] != '\0' ? " after the stream's last id " : "", s.last);
    rc = 0;

done:
    event_free_array(evs, n);
    event_free_array(newest, nn);
    if (r != NULL)
        freeReplyObject(r);
    return rc;
}

int backup_restore(struct backup *b, const char *room)
{
    char **rooms = NULL;
    size_t n = 0, i;
    int rc = -1;

    if (room != NULL) {
        rooms = xcalloc(1, sizeof(*rooms));
        rooms[0] = xstrdup(room);
        n = 1;
    } else if (mongo_archive_rooms(b->archive, &rooms, &n) < 0) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        if (backup_restore_room(b, rooms[i]) < 0)
            goto done;
        b->rooms++;
    }
    rc = 0;

done:
    mongo_archive_free_rooms(rooms, n);
    return rc;
}

/* Counts the stream's entries from lo to hi (inclusive) and copies the
 * last one's id into last. Returns 0 or -1 (logged). */
static int backup_count_range(struct backup *b, const char *room,
                              const char *lo, const char *hi, uint64_t *count,
                              char *last)
{
    char key[KEYS_MAX], start[STREAMID_STRLEN + 1];
    redisReply *r = NULL;
    size_t got;

    *count = 0;
    last[0] = '\0';
    keys_room_log(key, room);
    snprintf(start, sizeof(start), "%s", lo);
    for (;;) {
        const redisReply *tail;

        r = redisCommand(b->redis, "XRANGE %s %s %s COUNT %llu", key, start, hi,
                         (unsigned long long)b->batch);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
            backup_redis_error(b, r, "XRANGE", room);
            if (r != NULL)
                freeReplyObject(r);
            return -1;
        }
        got = r->elements;
        if (got > 0) {
            tail = r->element[got - 1];
            if (tail->type == REDIS_REPLY_ARRAY && tail->elements >= 1 &&
                tail->element[0]->type == REDIS_REPLY_STRING)
                snprintf(last, STREAMID_STRLEN, "%s", tail->element[0]->str);
        }
        *count += got;
        freeReplyObject(r);
        if (got < b->batch || last[0] == '\0')
            return 0;
        snprintf(start, sizeof(start), "(%s", last);
    }
}

/* Merges two sorted lists of names into one without duplicates. */
static char **backup_union(char **a, size_t na, char **b, size_t nb, size_t *n)
{
    char **out = xcalloc(na + nb + 1, sizeof(*out));
    size_t i = 0, j = 0;
    int c;

    *n = 0;
    while (i < na || j < nb) {
        if (i == na)
            c = 1;
        else if (j == nb)
            c = -1;
        else
            c = strcmp(a[i], b[j]);
        if (c <= 0) {
            out[(*n)++] = xstrdup(a[i]);
            if (c == 0)
                j++;
            i++;
        } else {
            out[(*n)++] = xstrdup(b[j++]);
        }
    }
    return out;
}

static int backup_cmp_str(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

static int backup_verify_room(struct backup *b, const char *room)
{
    char ck[STREAMID_STRLEN], r_last[STREAMID_STRLEN], m_last[STREAMID_STRLEN];
    struct backup_stream s;
    struct streamid lo, hi;
    uint64_t r_count = 0, m_count = 0, pending;
    int has;

    if (backup_stream_info(b, room, &s) < 0)
        return -1;
    has = backup_get_checkpoint(b, room, ck);
    if (has < 0)
        return -1;
    if (!s.exists) {
        if (mongo_archive_range(b->archive, room, NULL, NULL, &m_count,
                                m_last) < 0)
            return -1;
        if (m_count == 0) {
            printf("verify: room %s: no messages on either side: ok\n", room);
            return 0;
        }
        printf("verify: room %s: MongoDB holds %" PRIu64 " message(s) up to %s"
               " but Redis has no stream (run --restore --room %s): "
               "DIFFERENT\n",
               room, m_count, m_last, room);
        return 1;
    }
    if (!has || s.first[0] == '\0') {
        /* Nothing both must hold: never backed up, or trimmed empty. */
        printf("verify: room %s: redis holds %lld, none of them both must "
               "hold (checkpoint %s): ok\n",
               room, s.length, has ? ck : "none");
        return 0;
    }
    if (backup_sid(s.first, &lo) < 0 || backup_sid(ck, &hi) < 0 ||
        backup_count_range(b, room, s.first, ck, &r_count, r_last) < 0 ||
        mongo_archive_range(b->archive, room, &lo, &hi, &m_count, m_last) < 0)
        return -1;
    pending = (uint64_t)s.length > r_count ? (uint64_t)s.length - r_count : 0;
    if (r_count == m_count && strcmp(r_last, m_last) == 0) {
        printf("verify: room %s: %s..%s: redis %" PRIu64 ", mongodb %" PRIu64
               ", last %s; %" PRIu64 " pending: ok\n",
               room, s.first, ck, r_count, m_count,
               r_last[0] != '\0' ? r_last : "none", pending);
        return 0;
    }
    printf("verify: room %s: %s..%s: redis %" PRIu64
           " (last %s), mongodb %" PRIu64 " (last %s); %" PRIu64
           " pending: DIFFERENT\n",
           room, s.first, ck, r_count, r_last[0] != '\0' ? r_last : "none",
           m_count, m_last[0] != '\0' ? m_last : "none", pending);
    return 1;
}

int backup_verify(struct backup *b)
{
    char **rr = NULL, **mr = NULL, **all = NULL;
    size_t nr = 0, nm = 0, n = 0, i;
    int rc = -1, d;

    if (backup_redis_rooms(b, &rr, &nr) < 0 ||
        mongo_archive_rooms(b->archive, &mr, &nm) < 0)
        goto done;
    if (nr > 1)
        qsort(rr, nr, sizeof(*rr), backup_cmp_str);
    all = backup_union(rr, nr, mr, nm, &n);
    for (i = 0; i < n; i++) {
        if (lock_refresh(b->redis, b->lock, false) < 0)
            goto done;
        d = backup_verify_room(b, all[i]);
        if (d < 0)
            goto done;
        b->rooms++;
        if (d > 0)
            b->differences++;
    }
    fflush(stdout);
    rc = b->differences > 0 ? 1 : 0;

done:
    xfree_strings(rr, nr);
    mongo_archive_free_rooms(mr, nm);
    xfree_strings(all, n);
    return rc;
}
