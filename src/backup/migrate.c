/* migrate.c - --migrate-keys: the keys of a deployment older than the hash
 * tags (ct:room:R:log, ct:presence:R, ct:backup:R, ct:idem:R:u:k) renamed
 * to today's (ct:room:{R}:log, ...) */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "keys.h"
#include "log.h"
#include "names.h"
#include "reshard.h"
#include "reshard_servers.h"

/* Renames KEYS[1] to KEYS[2] when the first exists and the second does
 * not: 1 renamed, 0 nothing to do (already renamed), -1 both exist. */
static const char rename_body[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end\n"
    "if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end\n"
    "redis.call('RENAME', KEYS[1], KEYS[2])\n"
    "return 1\n";

struct migrate {
    const struct reshard_opts *o;
    struct servers sv;
    uint64_t renamed, conflicts, rooms, rooms_total;
    int64_t started_ms, shown_ms;
};

static void progress(struct migrate *m, bool final)
{
    if (m->o->progress)
        servers_progress(m->o->tty, final, &m->shown_ms,
                         "migrate-keys: %" PRIu64 "/%" PRIu64 " rooms, %" PRIu64
                         " keys renamed, %.1f s",
                         m->rooms, m->rooms_total, m->renamed,
                         (double)(lock_now_ms() - m->started_ms) / 1000.0);
}

/* Returns 0 or -1 (a Redis failure, logged). */
static int rename_key(struct migrate *m, int at, const char *from,
                      const char *to)
{
    redisReply *r =
        redisCommand(m->sv.s[at].c, "EVAL %s 2 %s %s", rename_body, from, to);

    if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
        servers_error(&m->sv, at, r, "EVAL rename");
        freeReplyObject(r);
        return -1;
    }
    if (r->integer == 1) {
        m->renamed++;
    } else if (r->integer < 0) {
        log_error("migrate-keys: both %s and %s exist on %s (were writers of "
                  "the new version running?): left as they are",
                  from, to, m->sv.s[at].where);
        m->conflicts++;
    }
    freeReplyObject(r);
    return 0;
}

static int migrate_room(struct migrate *m, int at, const char *room)
{
    char from[KEYS_MAX], to[KEYS_MAX];

    snprintf(from, sizeof(from), "ct:room:%s:log", room);
    if (rename_key(m, at, from, keys_room_log(to, room)) < 0)
        return -1;
    snprintf(from, sizeof(from), "ct:presence:%s", room);
    if (rename_key(m, at, from, keys_presence(to, room)) < 0)
        return -1;
    /* A room called "lock" had ct:backup:lock, the backup lock's own name,
     * as its checkpoint: that key is the lock, held by this run. */
    snprintf(from, sizeof(from), "ct:backup:%s", room);
    if (strcmp(from, KEYS_BACKUP_LOCK) != 0 &&
        rename_key(m, at, from, keys_backup(to, room)) < 0)
        return -1;
    return 0;
}

/* The idempotency keys: ct:idem:R:u:k, found by SCAN (they expire within a
 * day and are not listed anywhere). */
static int migrate_idem(struct migrate *m, int at)
{
    char cursor[32] = "0", room[NAME_ROOM_MAX + 1], to[KEYS_IDEM_MAX];
    redisReply *s;
    const char *key, *name, *colon;
    size_t i;

    do {
        s = redisCommand(m->sv.s[at].c, "SCAN %s MATCH ct:idem:* COUNT 1000",
                         cursor);
        if (s == NULL || s->type != REDIS_REPLY_ARRAY || s->elements != 2) {
            servers_error(&m->sv, at, s, "SCAN");
            freeReplyObject(s);
            return -1;
        }
        snprintf(cursor, sizeof(cursor), "%s", s->element[0]->str);
        for (i = 0; i < s->element[1]->elements; i++) {
            key = s->element[1]->element[i]->str;
            name = key + strlen("ct:idem:");
            colon = strchr(name, ':');
            if (colon == NULL ||
                !names_room_valid(name, (size_t)(colon - name)))
                continue; /* today's name ({room}) or not ours */
            memcpy(room, name, (size_t)(colon - name));
            room[colon - name] = '\0';
            snprintf(to, sizeof(to), "ct:idem:{%s}%s", room, colon);
            if (rename_key(m, at, key, to) < 0) {
                freeReplyObject(s);
                return -1;
            }
        }
        freeReplyObject(s);
    } while (strcmp(cursor, "0") != 0);
    return 0;
}

static int migrate_server(struct migrate *m, int at)
{
    redisReply *z = redisCommand(m->sv.s[at].c, "ZRANGE %s 0 -1", KEYS_ROOMS);
    size_t i;
    int rc = 0;

    if (z == NULL || z->type != REDIS_REPLY_ARRAY) {
        servers_error(&m->sv, at, z, "ZRANGE");
        freeReplyObject(z);
        return -1;
    }
    m->rooms_total += z->elements;
    for (i = 0; i < z->elements && rc == 0; i++) {
        const char *room = z->element[i]->str;

        if (names_room_valid(room, strlen(room)))
            rc = migrate_room(m, at, room);
        m->rooms++;
        if (rc == 0 && (i + 1) % 100 == 0)
            rc = servers_refresh(&m->sv);
        progress(m, false);
        if (*m->o->stop) {
            log_error("migrate-keys: stopped by a signal; run it again to "
                      "finish");
            rc = -1;
        }
    }
    freeReplyObject(z);
    return rc == 0 ? migrate_idem(m, at) : -1;
}

int migrate_keys(const struct reshard_opts *o)
{
    struct migrate m;
    int status, i;
    bool ok = true;

    memset(&m, 0, sizeof(m));
    m.o = o;
    m.started_ms = lock_now_ms();
    status =
        servers_open(&m.sv, NULL, o->new_urls, o->timeout_ms, o->lock_ttl_ms);
    if (status != 0)
        return status;
    for (i = 0; i < m.sv.n && ok; i++)
        ok = migrate_server(&m, i) == 0;
    progress(&m, true);
    printf("crosstalk-backup: migrate-keys %s: %d servers, %" PRIu64
           " rooms, %" PRIu64 " keys renamed, %" PRIu64 " conflicts, %" PRId64
           " ms\n",
           ok && m.conflicts == 0 ? "ok" : "FAILED", m.sv.n, m.rooms, m.renamed,
           m.conflicts, lock_now_ms() - m.started_ms);
    fflush(stdout);
    servers_close(&m.sv);
    return ok && m.conflicts == 0 ? 0 : 1;
}
