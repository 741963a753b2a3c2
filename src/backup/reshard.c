/* reshard.c - moving rooms and users to the shard the placement gives them
 * in a new redis_url list (--reshard), and checking it (--verify) */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "keys.h"
#include "lock.h"
#include "log.h"
#include "names.h"
#include "redisurl.h"
#include "reshard.h"
#include "reshard_servers.h"
#include "shard.h"

/* Keys asked for per SCAN step. */
#define SCAN_COUNT "1000"

/*
 * Every key a room or a user owns names its owner: a room's keys carry the
 * room as their hash tag ({room}), a user's key its folded name, a token
 * the name it maps to (its value). Resharding is then one walk over each
 * server's keys: a key whose owner the new list places on another server
 * is moved there, whatever list put it where it is; a room's ct:rooms
 * entry likewise. A key is moved by DUMP, RESTORE on the new server (its
 * expiry kept), then DEL on the old one, so a run killed at any moment
 * leaves the key on the old server, on both (the next run finds the copy
 * identical and deletes the old one) or on the new one: never lost, never
 * doubled. Stream ids are the DUMP's, kept whole.
 */

struct reshard {
    const struct reshard_opts *o;
    struct servers sv;
    /* What the run did or, with --dry-run, would do. */
    uint64_t keys_moved, keys_checked, misplaced, conflicts;
    uint64_t rooms, rooms_moved, users_moved;
    int64_t started_ms, shown_ms;
    int delay_ms; /* CT_RESHARD_DELAY_MS */
};

static void progress(struct reshard *r, bool final)
{
    if (r->o->progress)
        servers_progress(r->o->tty, final, &r->shown_ms,
                         "reshard: %" PRIu64 " keys looked at, %" PRIu64
                         " moved, %" PRIu64 " rooms moved, %.1f s",
                         r->keys_checked, r->keys_moved, r->rooms_moved,
                         (double)(lock_now_ms() - r->started_ms) / 1000.0);
}

/* The room whose hash tag `key` carries, into room; NULL when `key` is not
 * a room's key. */
static const char *key_room(const char *key, char room[NAME_ROOM_MAX + 1])
{
    static const char *const prefixes[] = {"ct:room:{", "ct:presence:{",
                                           "ct:backup:{", "ct:idem:{"};
    const char *tag = NULL, *end;
    size_t i;

    for (i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
        if (strncmp(key, prefixes[i], strlen(prefixes[i])) == 0)
            tag = key + strlen(prefixes[i]);
    if (tag == NULL || (end = strchr(tag, '}')) == NULL ||
        !names_room_valid(tag, (size_t)(end - tag)))
        return NULL;
    memcpy(room, tag, (size_t)(end - tag));
    room[end - tag] = '\0';
    return room;
}

/* The server (index in r->sv) the new list places `key` of server `at` on,
 * or -1 when the key is no room's or user's (it stays) or could not be
 * read (then *err is set). */
static int key_owner(struct reshard *r, int at, const char *key, bool *err)
{
    char room[NAME_ROOM_MAX + 1];
    redisReply *v;
    int owner = -1;

    if (key_room(key, room) != NULL)
        return r->sv.new_at[shard_of_room(room, r->sv.new_n)];
    if (strncmp(key, "ct:user:", 8) == 0 &&
        names_user_valid(key + 8, strlen(key + 8)))
        return r->sv.new_at[shard_of_user(key + 8, r->sv.new_n)];
    if (strncmp(key, "ct:token:", 9) != 0)
        return -1;
    /* A token lives with its user: its value is the user's name. */
    v = redisCommand(r->sv.s[at].c, "GET %s", key);
    if (v == NULL || v->type == REDIS_REPLY_ERROR) {
        servers_error(&r->sv, at, v, "GET");
        *err = true;
    } else if (v->type == REDIS_REPLY_STRING &&
               names_user_valid(v->str, v->len)) {
        owner = r->sv.new_at[shard_of_user(v->str, r->sv.new_n)];
    }
    freeReplyObject(v);
    return owner;
}

/* Moves `key` from server `from` to server `to`. Returns 1 moved, 0 gone
 * meanwhile or left on both (a conflict: counted and logged), -1 failure
 * (logged). */
static int move_key(struct reshard *r, int from, int to, const char *key)
{
    redisContext *src = r->sv.s[from].c, *dst = r->sv.s[to].c;
    redisReply *dump = NULL, *ttl = NULL, *res = NULL, *other = NULL;
    long long pttl;
    int rc = -1;

    dump = redisCommand(src, "DUMP %s", key);
    ttl = redisCommand(src, "PTTL %s", key);
    if (dump == NULL || dump->type == REDIS_REPLY_ERROR) {
        servers_error(&r->sv, from, dump, "DUMP");
        goto out;
    }
    if (ttl == NULL || ttl->type != REDIS_REPLY_INTEGER) {
        servers_error(&r->sv, from, ttl, "PTTL");
        goto out;
    }
    if (dump->type == REDIS_REPLY_NIL || ttl->integer == -2) {
        rc = 0; /* expired or moved meanwhile */
        goto out;
    }
    pttl = ttl->integer > 0 ? ttl->integer : 0;
    res = redisCommand(dst, "RESTORE %s %lld %b", key, pttl, dump->str,
                       dump->len);
    if (res != NULL && res->type == REDIS_REPLY_ERROR &&
        strncmp(res->str, "BUSYKEY", 7) == 0) {
        /* A run killed between RESTORE and DEL: the copy is there. */
        other = redisCommand(dst, "DUMP %s", key);
        if (other == NULL || other->type != REDIS_REPLY_STRING ||
            other->len != dump->len ||
            memcmp(other->str, dump->str, dump->len) != 0) {
            log_error("reshard: %s is on %s and, different, on %s: left on "
                      "both (were writers running?)",
                      key, r->sv.s[from].where, r->sv.s[to].where);
            r->conflicts++; /* the run goes on, and fails at its end */
            rc = 0;
            goto out;
        }
    } else if (res == NULL || res->type == REDIS_REPLY_ERROR) {
        servers_error(&r->sv, to, res, "RESTORE");
        goto out;
    }
    freeReplyObject(res);
    if (r->delay_ms > 0) /* test hook: a kill here leaves the key on both */
        usleep((useconds_t)r->delay_ms * 1000);
    res = redisCommand(src, "DEL %s", key);
    if (res == NULL || res->type != REDIS_REPLY_INTEGER) {
        servers_error(&r->sv, from, res, "DEL");
        goto out;
    }
    rc = 1;
out:
    freeReplyObject(dump);
    freeReplyObject(ttl);
    freeReplyObject(res);
    freeReplyObject(other);
    return rc;
}

/* One key of server `at`: checked, and moved unless --dry-run or
 * --verify. Returns 0 or -1. */
static int one_key(struct reshard *r, int at, const char *key)
{
    bool err = false;
    int owner = key_owner(r, at, key, &err), m;

    r->keys_checked++;
    if (err)
        return -1;
    if (owner < 0 || owner == at)
        return 0;
    r->misplaced++;
    if (strncmp(key, "ct:user:", 8) == 0 && !r->o->verify)
        r->users_moved++;
    if (r->o->verify) {
        printf("verify: %s is on %s, its shard is %s\n", key, r->sv.s[at].where,
               r->sv.s[owner].where);
        return 0;
    }
    if (r->o->dry_run)
        return 0;
    m = move_key(r, at, owner, key);
    if (m < 0)
        return -1;
    r->keys_moved += (uint64_t)m;
    return 0;
}

/* Walks the keys of server `at`. Returns 0 or -1. */
static int walk_keys(struct reshard *r, int at)
{
    redisContext *c = r->sv.s[at].c;
    char cursor[32] = "0";
    redisReply *s;
    size_t i;
    int rc = 0;

    do {
        s = redisCommand(c, "SCAN %s MATCH ct:* COUNT " SCAN_COUNT, cursor);
        if (s == NULL || s->type != REDIS_REPLY_ARRAY || s->elements != 2) {
            servers_error(&r->sv, at, s, "SCAN");
            freeReplyObject(s);
            return -1;
        }
        snprintf(cursor, sizeof(cursor), "%s", s->element[0]->str);
        for (i = 0; i < s->element[1]->elements && rc == 0; i++)
            rc = one_key(r, at, s->element[1]->element[i]->str);
        freeReplyObject(s);
        if (rc < 0 || servers_refresh(&r->sv) < 0)
            return -1;
        progress(r, false);
        if (*r->o->stop) {
            log_error("reshard: stopped by a signal; run it again to finish");
            return -1;
        }
    } while (strcmp(cursor, "0") != 0);
    return 0;
}

/* Moves the ct:rooms entries of server `at` that belong elsewhere, after
 * their keys: ZADD there (never lowering a score), then ZREM here. */
static int walk_rooms(struct reshard *r, int at)
{
    redisContext *c = r->sv.s[at].c;
    redisReply *z, *w;
    size_t i;
    int owner, rc = 0;

    z = redisCommand(c, "ZRANGE %s 0 -1 WITHSCORES", KEYS_ROOMS);
    if (z == NULL || z->type != REDIS_REPLY_ARRAY) {
        servers_error(&r->sv, at, z, "ZRANGE");
        freeReplyObject(z);
        return -1;
    }
    for (i = 0; i + 1 < z->elements && rc == 0; i += 2) {
        const char *room = z->element[i]->str, *score = z->element[i + 1]->str;

        if (!names_room_valid(room, strlen(room)))
            continue;
        owner = r->sv.new_at[shard_of_room(room, r->sv.new_n)];
        if (owner == at)
            continue;
        r->rooms_moved++;
        if (r->o->verify) {
            r->misplaced++;
            printf("verify: room %s is listed in %s on %s, its shard is %s\n",
                   room, KEYS_ROOMS, r->sv.s[at].where, r->sv.s[owner].where);
            continue;
        }
        if (r->o->dry_run) {
            printf("reshard: room %s moves from %s to %s\n", room,
                   r->sv.s[at].where, r->sv.s[owner].where);
            continue;
        }
        w = redisCommand(r->sv.s[owner].c, "ZADD %s GT %s %s", KEYS_ROOMS,
                         score, room);
        if (w == NULL || w->type == REDIS_REPLY_ERROR) {
            servers_error(&r->sv, owner, w, "ZADD");
            rc = -1;
        }
        freeReplyObject(w);
        if (rc == 0) {
            w = redisCommand(c, "ZREM %s %s", KEYS_ROOMS, room);
            if (w == NULL || w->type == REDIS_REPLY_ERROR) {
                servers_error(&r->sv, at, w, "ZREM");
                rc = -1;
            }
            freeReplyObject(w);
        }
    }
    freeReplyObject(z);
    return rc;
}

/* Adds the size of server `at`'s ct:rooms to r->rooms, before any entry
 * moves. Returns 0 or -1. */
static int count_rooms(struct reshard *r, int at)
{
    redisReply *z = redisCommand(r->sv.s[at].c, "ZCARD %s", KEYS_ROOMS);
    int rc = 0;

    if (z == NULL || z->type != REDIS_REPLY_INTEGER) {
        servers_error(&r->sv, at, z, "ZCARD");
        rc = -1;
    } else {
        r->rooms += (uint64_t)z->integer;
    }
    freeReplyObject(z);
    return rc;
}

int reshard_run(const struct reshard_opts *o)
{
    struct reshard r;
    int status, i;
    const char *what = o->verify ? "reshard verify" : "reshard";
    bool ok = true;

    memset(&r, 0, sizeof(r));
    r.o = o;
    r.started_ms = lock_now_ms();
    if (getenv("CT_RESHARD_DELAY_MS") != NULL)
        r.delay_ms = atoi(getenv("CT_RESHARD_DELAY_MS"));
    status = servers_open(&r.sv, o->old_urls, o->new_urls, o->timeout_ms,
                          o->lock_ttl_ms);
    if (status != 0)
        return status;
    /* Keys first, then the rooms index: a room listed where it was has not
     * been moved whole yet. */
    for (i = 0; i < r.sv.n && ok; i++)
        ok = walk_keys(&r, i) == 0;
    for (i = 0; i < r.sv.n && ok; i++)
        ok = count_rooms(&r, i) == 0;
    for (i = 0; i < r.sv.n && ok; i++)
        ok = walk_rooms(&r, i) == 0;
    progress(&r, true);
    if (ok && r.conflicts > 0)
        ok = false;
    if (o->verify) {
        printf("crosstalk-backup: %s %s: %d shards, %" PRIu64 " keys, %" PRIu64
               " rooms, %" PRIu64 " misplaced, %" PRId64 " ms\n",
               what,
               !ok               ? "FAILED"
               : r.misplaced > 0 ? "MISPLACED"
                                 : "ok",
               r.sv.new_n, r.keys_checked, r.rooms, r.misplaced,
               lock_now_ms() - r.started_ms);
    } else {
        printf("crosstalk-backup: %s%s %s: %d -> %d shards, %" PRIu64
               " of %" PRIu64 " rooms %s (%.1f%%), %" PRIu64 " users, %" PRIu64
               " keys, %" PRId64 " ms\n",
               what, o->dry_run ? " --dry-run" : "", ok ? "ok" : "FAILED",
               r.sv.old_n, r.sv.new_n, r.rooms_moved, r.rooms,
               o->dry_run ? "would move" : "moved",
               r.rooms > 0 ? 100.0 * (double)r.rooms_moved / (double)r.rooms
                           : 0.0,
               r.users_moved, o->dry_run ? r.misplaced : r.keys_moved,
               lock_now_ms() - r.started_ms);
    }
    fflush(stdout);
    servers_close(&r.sv);
    if (!ok)
        return 1;
    return o->verify && r.misplaced > 0 ? 3 : 0;
}
