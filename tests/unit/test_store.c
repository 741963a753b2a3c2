/* test_store.c - the common store (store.c) over the synchronous executor
 * (rexec_sync.c) against a real redis-server: every command answers, the
 * NOSCRIPT fallback resends the script once, and the faults are told
 * apart (refused, sent without an answer, not sent) */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "auth.h"
#include "config.h"
#include "keys.h"
#include "redisd.h"
#include "reply.h"
#include "rexec.h"
#include "rexec_sync.h"
#include "shard.h"
#include "store.h"
#include "tap.h"

/* What the last callback was told; calls counts them. */
static struct {
    int calls, status;
    bool flag;
    char id[STREAMID_STRLEN], user[64], text[64];
    size_t n;
    bool log;
} got;

static void reset(void)
{
    memset(&got, 0, sizeof(got));
    got.status = -99;
}

static void on_append(int status, const struct reply_appended *a, void *arg)
{
    got.calls++;
    got.status = status;
    if (a != NULL)
        memcpy(got.id, a->id, sizeof(got.id));
}

static void on_events(int status, struct chat_event *evs, size_t n, void *arg)
{
    got.calls++;
    got.status = status;
    got.n = n;
    if (n > 0)
        snprintf(got.text, sizeof(got.text), "%s", evs[n - 1].text);
}

static void on_resume(int status, struct chat_event *evs, size_t n,
                      const struct streamid_log *log, void *arg)
{
    on_events(status, evs, n, arg);
    got.log = log != NULL;
}

static void on_user(int status, const char *user, void *arg)
{
    got.calls++;
    got.status = status;
    snprintf(got.user, sizeof(got.user), "%s", user ? user : "(none)");
}

static void on_register(int status, bool created, void *arg)
{
    got.calls++;
    got.status = status;
    got.flag = created;
}

static void on_online(int status, const char *const *names, size_t n, void *arg)
{
    got.calls++;
    got.status = status;
    got.n = n;
    if (n > 0)
        snprintf(got.user, sizeof(got.user), "%s", names[0]);
}

static void on_strings(int status, const char *const *v, const size_t *lens,
                       size_t n, void *arg)
{
    got.calls++;
    got.status = status;
    got.n = n;
}

static int health_faults[REDISD_MAX];

static void on_health(const int *faults, int n, void *arg)
{
    got.calls++;
    got.status = 0;
    got.n = (size_t)n;
    for (int i = 0; i < n && i < REDISD_MAX; i++) {
        health_faults[i] = faults[i];
        if (faults[i] != 0 && got.status == 0)
            got.status = faults[i];
    }
}

/* The rooms of the last store_rooms. */
static struct store_room page[64];

static void on_rooms(int status, const char *const *names,
                     const long long *last_ts, size_t n, void *arg)
{
    got.calls++;
    got.status = status;
    got.n = n;
    for (size_t i = 0; i < n && i < 64; i++) {
        snprintf(page[i].name, sizeof(page[i].name), "%s", names[i]);
        page[i].last_ts = last_ts[i];
    }
}

static long long integer(redisContext *c, const char *cmd)
{
    redisReply *r = redisCommand(c, cmd);
    long long n = r != NULL && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;

    freeReplyObject(r);
    return n;
}

static void command(redisContext *c, const char *cmd)
{
    freeReplyObject(redisCommand(c, cmd));
}

/* Every call answers, through the cache where it should. */
static void test_calls(struct store *st, redisContext *c, const char *token)
{
    command(c, "SCRIPT FLUSH");
    reset();
    is_int(store_register(st, "alice", token, on_register, NULL), 0,
           "register: sent");
    ok(got.calls == 1 && got.status == 0 && got.flag,
       "register after SCRIPT FLUSH: EVAL after NOSCRIPT creates alice");
    reset();
    store_register(st, "alice", token, on_register, NULL);
    ok(got.calls == 1 && got.status == 0 && !got.flag,
       "register again: the name is taken");

    command(c, "SCRIPT FLUSH");
    reset();
    is_int(
        store_append(st, "lobby", "alice", "hello", 5, NULL, on_append, NULL),
        0, "append: sent");
    ok(got.calls == 1 && got.status == 0 && got.id[0] != '\0',
       "append after SCRIPT FLUSH answers an id (status %d)", got.status);
    is_int(integer(c, "XLEN ct:room:{lobby}:log"), 1,
           "the message is stored once");
    reset();
    store_append(st, "lobby", "alice", "again", 5, "k1", on_append, NULL);
    ok(got.calls == 1 && got.status == 0, "append by EVALSHA once loaded");

    reset();
    store_after(st, "lobby", NULL, 10, on_events, NULL);
    ok(got.calls == 1 && got.status == 0 && got.n == 2 &&
           strcmp(got.text, "again") == 0,
       "after NULL: both messages, oldest first");
    reset();
    store_before(st, "lobby", NULL, 1, on_events, NULL);
    ok(got.status == 0 && got.n == 1 && strcmp(got.text, "again") == 0,
       "before NULL, limit 1: the newest");
    reset();
    store_resume(st, "lobby", &(struct streamid){0, 0}, 10, on_resume, NULL);
    ok(got.calls == 1 && got.status == 0 && got.n == 2 && got.log,
       "resume: the messages and the stream's log in one round trip");

    reset();
    store_auth(st, token, on_user, NULL);
    ok(got.calls == 1 && got.status == 0 && strcmp(got.user, "alice") == 0,
       "auth: the token is alice's");
    reset();
    store_auth(st, "not-a-token", on_user, NULL);
    ok(got.calls == 1 && got.status == 0 && strcmp(got.user, "(none)") == 0,
       "auth: a malformed token is nobody's");

    reset();
    store_presence_add(st, "lobby", "alice", "d1", event_now_ms() + 60000,
                       on_register, NULL);
    ok(got.status == 0 && got.flag, "presence: alice joins");
    reset();
    store_presence_add(st, "lobby", "alice", "d1", event_now_ms() + 60000,
                       on_register, NULL);
    ok(got.status == 0 && !got.flag, "presence: alice was there already");
    reset();
    store_online(st, "lobby", on_online, NULL);
    ok(got.status == 0 && got.n == 1 && strcmp(got.user, "alice") == 0,
       "online: alice");
    store_presence_remove(st, "lobby", "alice", "d1");
    reset();
    store_online(st, "lobby", on_online, NULL);
    ok(got.status == 0 && got.n == 0, "online after the removal: nobody");

    /* held by two processes: online while either holds */
    store_presence_add(st, "den", "alice", "d1", event_now_ms() + 60000,
                       on_register, NULL);
    reset();
    store_presence_add(st, "den", "alice", "d2", event_now_ms() + 60000,
                       on_register, NULL);
    ok(got.status == 0, "presence: alice held by a second process");
    reset();
    store_online(st, "den", on_online, NULL);
    ok(got.status == 0 && got.n == 1 && strcmp(got.user, "alice") == 0,
       "online: alice, once for her two holders");
    store_presence_remove(st, "den", "alice", "d1");
    reset();
    store_online(st, "den", on_online, NULL);
    ok(got.status == 0 && got.n == 1 && strcmp(got.user, "alice") == 0,
       "online: alice, while the other process holds her");
    store_presence_remove(st, "den", "alice", "d2");
    reset();
    store_online(st, "den", on_online, NULL);
    ok(got.status == 0 && got.n == 0, "online after both let go: nobody");

    /* an expiry is news to whoever drops it, once */
    store_presence_add(st, "hall", "carol", "d1", event_now_ms() + 60000,
                       on_register, NULL);
    store_presence_add(st, "hall", "bob", "d1", event_now_ms() - 1000,
                       on_register, NULL);
    reset();
    store_presence_add(st, "hall", "carol", "d1", event_now_ms() + 60000,
                       on_register, NULL);
    ok(got.status == 0 && got.flag,
       "presence: a write that drops an expired user changes the list");
    reset();
    store_presence_expire(st, "hall", on_register, NULL);
    ok(got.calls == 1 && got.status == 0 && !got.flag,
       "presence: nothing more to drop");
    store_presence_add(st, "hall", "bob", "d1", event_now_ms() - 1000,
                       on_register, NULL);
    reset();
    store_presence_expire(st, "hall", on_register, NULL);
    ok(got.calls == 1 && got.status == 0 && got.flag,
       "presence: the sweep drops the expired user");
    reset();
    store_presence_expire(st, "hall", on_register, NULL);
    ok(got.status == 0 && !got.flag, "presence: dropped once");
    reset();
    store_online(st, "hall", on_online, NULL);
    ok(got.status == 0 && got.n == 1 && strcmp(got.user, "carol") == 0,
       "online: carol, not the expired bob");

    store_stats_write(st, "test-1", "{}", 2, 60000);
    reset();
    store_stats_read(st, on_strings, NULL);
    ok(got.status == 0 && got.n == 1, "stats: the record written is read");
    reset();
    store_health(st, on_health, NULL);
    ok(got.calls == 1 && got.status == API_FAULT_NONE, "health: writable");
}

/* Redis refuses: the fault its error names. */
static void test_refused(struct store *st, redisContext *c)
{
    command(c, "CONFIG SET maxmemory 1");
    reset();
    store_health(st, on_health, NULL);
    is_int(got.status, API_FAULT_OOM, "health at maxmemory: OOM");
    reset();
    store_append(st, "lobby", "alice", "full", 4, NULL, on_append, NULL);
    is_int(got.status, API_FAULT_OOM, "append at maxmemory: OOM");
    command(c, "CONFIG SET maxmemory 0");
}

/* Sent, then no answer within redis_timeout_ms: UNKNOWN, and the next
 * call connects again. */
static void test_unknown(struct store *st, redisContext *c, const char *token,
                         int timeout_ms)
{
    char cmd[64];
    struct timespec pause = {(timeout_ms + 1000) / 1000, 0};

    snprintf(cmd, sizeof(cmd), "CLIENT PAUSE %d ALL", timeout_ms + 700);
    command(c, cmd);
    reset();
    is_int(store_append(st, "lobby", "alice", "late", 4, NULL, on_append, NULL),
           0, "append while Redis is paused: sent");
    is_int(got.status, API_FAULT_UNKNOWN,
           "no answer in %d ms: UNKNOWN (whether it was stored)", timeout_ms);
    reset();
    store_auth(st, token, on_user, NULL);
    ok(got.status == 0 && strcmp(got.user, "alice") == 0,
       "a token confirmed just now is answered from the cache");
    nanosleep(&pause, NULL);
    reset();
    store_health(st, on_health, NULL);
    ok(got.calls == 1 && got.status == API_FAULT_NONE,
       "after the pause the next call connects again and works");
}

/* Nothing can be sent: -1 and no callback. */
static void test_down(struct store *st)
{
    stop_redis();
    reset();
    is_int(store_append(st, "lobby", "alice", "lost", 4, NULL, on_append, NULL),
           -1, "append with Redis stopped: -1 (DOWN, nothing sent)");
    is_int(got.calls, 0, "and no callback");
    reset();
    store_health(st, on_health, NULL);
    ok(got.calls == 1 && got.status == API_FAULT_DOWN,
       "health: answered at once, DOWN");
    ok(!store_ready(st), "not ready");
}

/* The merge alone: rooms of several shards into one index's order. */
static void test_merge(void)
{
    struct store_room r[] = {{"b", 5}, {"a", 9}, {"c", 5}, {"d", 1}, {"a2", 9}};
    size_t n = store_rooms_merge(r, 5, 4);

    is_int((int)n, 4, "merge: the page holds `want` rooms");
    ok(strcmp(r[0].name, "a2") == 0 && strcmp(r[1].name, "a") == 0 &&
           strcmp(r[2].name, "c") == 0 && strcmp(r[3].name, "b") == 0 &&
           strcmp(r[4].name, "d") == 0,
       "merge: ts descending, then name descending (%s %s %s %s %s)", r[0].name,
       r[1].name, r[2].name, r[3].name, r[4].name);
    is_int((int)store_rooms_merge(r, 2, 4), 2, "merge: fewer than want");
}

static bool has_key(redisContext *c, const char *key)
{
    redisReply *r = redisCommand(c, "EXISTS %s", key);
    bool yes = r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 1;

    freeReplyObject(r);
    return yes;
}

static int room_order(const void *a, const void *b)
{
    const struct store_room *x = a, *y = b;

    if (x->last_ts != y->last_ts)
        return x->last_ts > y->last_ts ? -1 : 1;
    return -strcmp(x->name, y->name);
}

#define SHARD_ROOMS 24

/* Three shards: shard 0 is the server of the other tests (its rooms are
 * named apart), 1 and 2 are started here. */
static void test_shards(const struct config *cfg, redisContext *c0, int port0)
{
    redisContext *c[REDISD_MAX] = {c0, NULL, NULL};
    struct rexec_sync *xs[REDISD_MAX] = {NULL};
    struct rexec *rx[REDISD_MAX];
    struct store *st = NULL, *fresh = NULL;
    struct store_room all[SHARD_ROOMS], seen[SHARD_ROOMS];
    char url[64], err[256], key[KEYS_MAX], hash[AUTH_HASH_LEN + 1];
    char tokens[REDISD_MAX][AUTH_TOKEN_LEN + 1], users[REDISD_MAX][16];
    int port[REDISD_MAX] = {port0, -1, -1}, per[REDISD_MAX] = {0};
    int wrong = 0, nseen = 0, pages = 0, live = -1, dead = 2;
    long long after_ts = 0;
    const char *after = NULL;

    for (int i = 1; i < REDISD_MAX; i++) {
        c[i] = start_redis_i(i, &port[i]);
        ok(c[i] != NULL, "shard %d: redis-server on port %d", i, port[i]);
        if (c[i] == NULL)
            goto done;
    }
    for (int i = 0; i < REDISD_MAX; i++) {
        snprintf(url, sizeof(url), "redis://127.0.0.1:%d", port[i]);
        xs[i] = rexec_sync_new(url, cfg->redis_timeout_ms, err, sizeof(err));
        rx[i] = rexec_sync_rexec(xs[i]);
    }
    st = store_new(rx, REDISD_MAX, cfg);
    is_int(store_shards(st), 3, "three shards");
    command(c0, "DEL " KEYS_ROOMS); /* the rooms of the other tests */

    /* every room's stream, and its entry in ct:rooms, on its shard only */
    for (int r = 0; r < SHARD_ROOMS; r++) {
        char room[16];
        int home;

        snprintf(room, sizeof(room), "shard-%02d", r);
        home = shard_of_room(room, REDISD_MAX);
        per[home]++;
        reset();
        store_append(st, room, "alice", "x", 1, NULL, on_append, NULL);
        if (got.status != 0)
            wrong++;
        keys_room_log(key, room);
        for (int i = 0; i < REDISD_MAX; i++)
            if (has_key(c[i], key) != (i == home))
                wrong++;
        reset();
        store_after(st, room, NULL, 10, on_events, NULL);
        if (got.status != 0 || got.n != 1)
            wrong++;
    }
    is_int(wrong, 0,
           "%d rooms: each stored, read back, and only on "
           "shard_of_room (per shard %d %d %d)",
           SHARD_ROOMS, per[0], per[1], per[2]);
    ok(per[0] > 0 && per[1] > 0 && per[2] > 0, "rooms on every shard");

    /* a user of each shard: its hash and token digest on its shard */
    wrong = 0;
    for (int i = 0, k = 0; i < REDISD_MAX && k < 1000; k++) {
        snprintf(users[i], sizeof(users[i]), "user%d", k);
        if (shard_of_user(users[i], REDISD_MAX) != i)
            continue;
        auth_new_token(tokens[i]);
        reset();
        store_register(st, users[i], tokens[i], on_register, NULL);
        if (got.status != 0 || !got.flag)
            wrong++;
        auth_hash(tokens[i], strlen(tokens[i]), hash);
        for (int j = 0; j < REDISD_MAX; j++) {
            if (has_key(c[j], keys_user(key, users[i])) != (i == j) ||
                has_key(c[j], keys_token(key, hash)) != (i == j))
                wrong++;
        }
        reset();
        store_auth(st, tokens[i], on_user, NULL);
        if (got.status != 0 || strcmp(got.user, users[i]) != 0)
            wrong++;
        i++;
    }
    is_int(wrong, 0,
           "a user on each shard: registered, its keys only on "
           "shard_of_user, its token found");
    {
        char nobody[AUTH_TOKEN_LEN + 1];

        auth_new_token(nobody);
        reset();
        store_auth(st, nobody, on_user, NULL);
        ok(got.calls == 1 && got.status == 0 && strcmp(got.user, "(none)") == 0,
           "auth: a token no shard holds is nobody's (one answer)");
    }

    /* the rooms index merged: pages of 5 equal one index's order, ties of
     * ts broken by name across shards */
    for (int r = 0; r < SHARD_ROOMS; r++) {
        char room[16];
        redisReply *rep;

        snprintf(room, sizeof(room), "shard-%02d", r);
        snprintf(all[r].name, sizeof(all[r].name), "%s", room);
        all[r].last_ts = 1000 + r / 3; /* three rooms per ts */
        rep = redisCommand(c[shard_of_room(room, REDISD_MAX)],
                           "ZADD %s %lld %s", KEYS_ROOMS, all[r].last_ts, room);
        freeReplyObject(rep);
    }
    qsort(all, SHARD_ROOMS, sizeof(all[0]), room_order);
    do {
        reset();
        store_rooms(st, 6, after_ts, after, on_rooms, NULL);
        if (got.status != 0)
            break;
        for (size_t i = 0; i < got.n && i < 5 && nseen < SHARD_ROOMS; i++)
            seen[nseen++] = page[i];
        if (got.n > 0) {
            size_t last = got.n > 5 ? 4 : got.n - 1;
            after_ts = page[last].last_ts;
            after = page[last].name;
        }
        pages++;
    } while (got.n == 6 && pages < 20);
    wrong = nseen != SHARD_ROOMS;
    for (int i = 0; i < nseen && i < SHARD_ROOMS; i++)
        wrong += strcmp(seen[i].name, all[i].name) != 0 ||
                 seen[i].last_ts != all[i].last_ts;
    ok(wrong == 0 && pages == 5,
       "rooms: %d pages of 5 over 3 shards list all %d rooms in order, "
       "each once (%d seen)",
       pages, SHARD_ROOMS, nseen);

    /* one shard down: the others work, its rooms fail, health names it */
    stop_redis_i(dead);
    redisFree(c[dead]);
    c[dead] = NULL;
    fresh = store_new(rx, REDISD_MAX, cfg); /* no cached tokens */
    wrong = 0;
    for (int r = 0; r < SHARD_ROOMS; r++) {
        char room[16];
        int rc;

        snprintf(room, sizeof(room), "shard-%02d", r);
        reset();
        rc = store_append(fresh, room, "alice", "y", 1, NULL, on_append, NULL);
        if (shard_of_room(room, REDISD_MAX) == dead) {
            if (rc == 0 && got.status == 0)
                wrong++;
        } else if (rc != 0 || got.status != 0) {
            wrong++;
        }
    }
    is_int(wrong, 0,
           "shard %d down: rooms of the others take sends, its "
           "own fail",
           dead);
    reset();
    store_health(fresh, on_health, NULL);
    ok(got.calls == 1 && got.n == 3 && health_faults[0] == 0 &&
           health_faults[1] == 0 && health_faults[dead] == API_FAULT_DOWN,
       "health: shard %d DOWN, the others healthy (%d %d %d)", dead,
       health_faults[0], health_faults[1], health_faults[2]);
    for (int i = 0; i < REDISD_MAX; i++)
        if (i != dead)
            live = i;
    reset();
    store_auth(fresh, tokens[live], on_user, NULL);
    ok(got.status == 0 && strcmp(got.user, users[live]) == 0,
       "auth: a token of a live shard's user is found");
    reset();
    store_auth(fresh, tokens[dead], on_user, NULL);
    ok(got.calls == 1 && got.status != 0,
       "auth: a token only the dead shard could hold fails (503), it is "
       "not unknown (401)");
    reset();
    store_rooms(fresh, 6, 0, NULL, on_rooms, NULL);
    ok(got.calls == 1 && got.status != 0,
       "rooms: a page cannot be right without a shard: it fails");
done:
    store_free(fresh);
    store_free(st);
    for (int i = 0; i < REDISD_MAX; i++)
        rexec_sync_free(xs[i]);
    for (int i = 1; i < REDISD_MAX; i++) {
        redisFree(c[i]);
        stop_redis_i(i);
    }
}

int main(void)
{
    struct config cfg;
    struct rexec_sync *x = NULL;
    struct rexec *rx[1];
    struct store *st = NULL;
    redisContext *c = NULL;
    char url[64], err[256], token[AUTH_TOKEN_LEN + 1];
    int port = -1;

    if (redis_missing())
        return redis_missing_status();
    config_defaults(&cfg);
    c = start_redis(&port);
    ok(c != NULL, "redis-server started on port %d", port);
    if (c == NULL)
        goto done;
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", port);
    x = rexec_sync_new(url, cfg.redis_timeout_ms, err, sizeof(err));
    ok(x != NULL, "rexec_sync_new(%s)", url);
    ok(rexec_sync_new("http://x", 100, err, sizeof(err)) == NULL,
       "a malformed URL is refused: %s", err);
    if (x == NULL || auth_new_token(token) != 0)
        goto done;
    rx[0] = rexec_sync_rexec(x);
    st = store_new(rx, 1, &cfg);
    ok(store_ready(st), "ready before the first call");
    test_calls(st, c, token);
    test_merge();
    test_shards(&cfg, c, port);
    test_refused(st, c);
    test_unknown(st, c, token, cfg.redis_timeout_ms);
    test_down(st);
done:
    store_free(st);
    rexec_sync_free(x);
    redisFree(c);
    stop_redis();
    config_free(&cfg);
    return tap_done();
}
