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

static void on_status(int status, void *arg)
{
    got.calls++;
    got.status = status;
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
    store_presence_add(st, "lobby", "alice", event_now_ms() + 60000,
                       on_register, NULL);
    ok(got.status == 0 && got.flag, "presence: alice joins");
    reset();
    store_presence_add(st, "lobby", "alice", event_now_ms() + 60000,
                       on_register, NULL);
    ok(got.status == 0 && !got.flag, "presence: alice was there already");
    reset();
    store_online(st, "lobby", on_online, NULL);
    ok(got.status == 0 && got.n == 1 && strcmp(got.user, "alice") == 0,
       "online: alice");
    store_presence_remove(st, "lobby", "alice");
    reset();
    store_online(st, "lobby", on_online, NULL);
    ok(got.status == 0 && got.n == 0, "online after the removal: nobody");

    store_stats_write(st, "test-1", "{}", 2, 60000);
    reset();
    store_stats_read(st, on_strings, NULL);
    ok(got.status == 0 && got.n == 1, "stats: the record written is read");
    reset();
    store_health(st, on_status, NULL);
    ok(got.calls == 1 && got.status == API_FAULT_NONE, "health: writable");
}

/* Redis refuses: the fault its error names. */
static void test_refused(struct store *st, redisContext *c)
{
    command(c, "CONFIG SET maxmemory 1");
    reset();
    store_health(st, on_status, NULL);
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
    store_health(st, on_status, NULL);
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
    is_int(store_health(st, on_status, NULL), -1, "health: -1");
    ok(!store_ready(st), "not ready");
}

int main(void)
{
    struct config cfg;
    struct rexec_sync *x = NULL;
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
    st = store_new(rexec_sync_rexec(x), &cfg);
    ok(store_ready(st), "ready before the first call");
    test_calls(st, c, token);
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
