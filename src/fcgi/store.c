/* store.c - crosstalk-fcgi's synchronous Redis commands, on the connection
 * of rexec_sync.c (the only hiredis user of the responder) */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "keys.h"
#include "log.h"
#include "reply.h"
#include "rexec_sync.h"
#include "store.h"
#include "xmalloc.h"

struct store {
    struct rexec_sync *conn; /* rexec_sync_context: NULL while down */
    enum api_fault fault;    /* why the last STORE_DOWN */
};

struct store *store_new(const char *url, int timeout_ms, char *err,
                        size_t errlen)
{
    struct rexec_sync *conn = rexec_sync_new(url, timeout_ms, err, errlen);
    struct store *st;

    if (conn == NULL)
        return NULL;
    st = xcalloc(1, sizeof(*st));
    st->conn = conn;
    return st;
}

void store_free(struct store *st)
{
    if (st == NULL)
        return;
    rexec_sync_free(st->conn);
    free(st);
}

enum api_fault store_fault(const struct store *st)
{
    return st->fault;
}

/* Sends one command. Returns the reply (the caller frees it), which may be
 * an error reply, or NULL when the connection failed (then dropped) with
 * st->fault saying whether the command went out. */
static redisReply *call(struct store *st, int argc, const char **argv,
                        const size_t *lens)
{
    redisContext *c = rexec_sync_context(st->conn);
    redisReply *r;

    st->fault = API_FAULT_DOWN;
    if (c == NULL)
        return NULL;
    r = redisCommandArgv(c, argc, argv, lens);
    if (r == NULL) {
        /* What hiredis could not write stays in its output buffer; a
         * command written whole may have run (a timeout, a lost reply). */
        if (c->obuf == NULL || c->obuf[0] == '\0')
            st->fault = API_FAULT_UNKNOWN;
        log_error("redis %s failed: %s", argv[0],
                  c->errstr[0] != '\0' ? c->errstr : "no reply");
        rexec_sync_drop(st->conn);
    }
    return r;
}

/* call() for commands whose error reply is a failure like any other. */
static redisReply *call_ok(struct store *st, int argc, const char **argv,
                           const size_t *lens)
{
    redisReply *r = call(st, argc, argv, lens);

    if (r != NULL && r->type == REDIS_REPLY_ERROR) {
        log_error("redis %s: %s", argv[0], r->str);
        st->fault = api_fault_of(r->str);
        freeReplyObject(r);
        r = NULL;
    }
    return r;
}

static int is_noscript(const redisReply *r)
{
    return r != NULL && r->type == REDIS_REPLY_ERROR &&
           strncmp(r->str, "NOSCRIPT", 8) == 0;
}

int store_health(struct store *st)
{
    const char *argv[] = {"SET", KEYS_HEALTH, "1", "PX", "10000"};
    redisReply *r = call_ok(st, 5, argv, NULL);

    if (r == NULL)
        return STORE_DOWN;
    freeReplyObject(r);
    return STORE_OK;
}

int store_token_user(struct store *st, const char *hash,
                     char name[NAME_USER_MAX + 1])
{
    char key[KEYS_MAX];
    const char *argv[] = {"GET", keys_token(key, hash)};
    const char *hget[] = {"HGET", key, "token_sha256"};
    redisReply *r = call_ok(st, 2, argv, NULL);
    int rc = STORE_NONE;

    if (r == NULL)
        return STORE_DOWN;
    if (r->type == REDIS_REPLY_STRING && r->len >= 1 &&
        r->len <= NAME_USER_MAX) {
        memcpy(name, r->str, r->len);
        name[r->len] = '\0';
        rc = STORE_OK;
    } else if (r->type != REDIS_REPLY_NIL) {
        log_error("redis GET %s: unexpected reply type %d", key, r->type);
        st->fault = API_FAULT_ERROR;
        rc = STORE_DOWN;
    }
    freeReplyObject(r);
    if (rc != STORE_OK)
        return rc;
    /* A user deleted, or deleted and registered again, leaves the old
     * token's key naming it: the token must still be the user's. */
    keys_user(key, name);
    if ((r = call_ok(st, 3, hget, NULL)) == NULL)
        return STORE_DOWN;
    if (r->type != REDIS_REPLY_STRING || strcmp(r->str, hash) != 0)
        rc = STORE_NONE;
    freeReplyObject(r);
    return rc;
}

int store_register(struct store *st, const char *name, const char *hash,
                   int64_t created_ms)
{
    char ukey[KEYS_MAX], tkey[KEYS_MAX], created[24];
    const char *argv[8];
    redisReply *r;
    int rc = STORE_DOWN;

    snprintf(created, sizeof(created), "%" PRId64, created_ms);
    argv[0] = "EVALSHA";
    argv[1] = keys_register_script.sha;
    argv[2] = "2";
    argv[3] = keys_user(ukey, name);
    argv[4] = keys_token(tkey, hash);
    argv[5] = hash;
    argv[6] = created;
    argv[7] = name;
    r = call(st, 8, argv, NULL);
    if (is_noscript(r)) {
        freeReplyObject(r);
        argv[0] = "EVAL";
        argv[1] = keys_register_script.body;
        r = call(st, 8, argv, NULL);
    }
    if (r == NULL)
        return STORE_DOWN;
    if (r->type == REDIS_REPLY_INTEGER && (r->integer == 0 || r->integer == 1))
        rc = r->integer == 1 ? STORE_OK : STORE_NONE;
    else
        log_error("redis register script: %s",
                  r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    freeReplyObject(r);
    return rc;
}

int store_append(struct store *st, const char *room, const char *from,
                 const char *text, size_t text_len, const char *key,
                 struct store_appended *out)
{
    const char *argv[KEYS_APPEND_ARGC];
    size_t lens[KEYS_APPEND_ARGC];
    char bufs[KEYS_APPEND_BUFS];
    struct reply_appended a;
    redisReply *r;
    int argc, rc = STORE_DOWN;

    memset(out, 0, sizeof(*out));
    argc =
        keys_append_argv(argv, lens, bufs, 1, room, from, text, text_len, key);
    r = call(st, argc, argv, lens);
    if (is_noscript(r)) {
        freeReplyObject(r);
        argc = keys_append_argv(argv, lens, bufs, 0, room, from, text, text_len,
                                key);
        r = call(st, argc, argv, lens);
    }
    if (r == NULL)
        return STORE_DOWN;
    if (r->type == REDIS_REPLY_ERROR) {
        log_error("redis append script in room %s: %s", room, r->str);
        st->fault = api_fault_of(r->str);
    } else if (reply_appended(r, &a) != 0) {
        st->fault = API_FAULT_ERROR;
    } else {
        memcpy(out->id, a.id, sizeof(out->id));
        out->ts = a.ts;
        if (a.repeat) {
            out->repeat = 1;
            out->text = xstrndup(a.text, a.text_len);
            out->text_len = a.text_len;
        }
        rc = STORE_OK;
    }
    freeReplyObject(r);
    return rc;
}

static int range(struct store *st, const char *cmd, const char *room,
                 const char *start, const char *end, int limit,
                 struct chat_event **evs, size_t *n)
{
    char key[KEYS_MAX], count[16];
    const char *argv[] = {cmd,  keys_room_log(key, room), start, end, "COUNT",
                          count};
    redisReply *r;
    int rc;

    snprintf(count, sizeof(count), "%d", limit);
    r = call_ok(st, 6, argv, NULL);
    if (r == NULL)
        return STORE_DOWN;
    rc = reply_events(r, room, evs, n) == 0 ? STORE_OK : STORE_DOWN;
    if (rc != STORE_OK)
        log_error("redis %s %s: not an array", cmd, key);
    freeReplyObject(r);
    return rc;
}

int store_after(struct store *st, const char *room,
                const struct streamid *since, int limit,
                struct chat_event **evs, size_t *n)
{
    char start[STREAMID_STRLEN + 1] = "-";

    if (since != NULL) {
        start[0] = '(';
        streamid_format(since, start + 1);
    }
    return range(st, "XRANGE", room, start, "+", limit, evs, n);
}

int store_before(struct store *st, const char *room,
                 const struct streamid *before, int limit,
                 struct chat_event **evs, size_t *n)
{
    char end[STREAMID_STRLEN + 1] = "+";
    struct chat_event tmp;
    size_t i;
    int rc;

    if (before != NULL) {
        end[0] = '(';
        streamid_format(before, end + 1);
    }
    rc = range(st, "XREVRANGE", room, end, "-", limit, evs, n);
    if (rc != STORE_OK)
        return rc;
    for (i = 0; i < *n / 2; i++) {
        tmp = (*evs)[i];
        (*evs)[i] = (*evs)[*n - 1 - i];
        (*evs)[*n - 1 - i] = tmp;
    }
    return STORE_OK;
}

int store_resume(struct store *st, const char *room,
                 const struct streamid *since, int limit,
                 struct streamid_log *log, struct chat_event **evs, size_t *n)
{
    static const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"};
    struct keys_resume k;
    redisContext *c = rexec_sync_context(st->conn);
    redisReply *r = NULL;
    int rc = STORE_DOWN;

    *evs = NULL;
    *n = 0;
    if (c == NULL)
        return STORE_DOWN;
    keys_resume_init(&k, room, since, limit);
    /* one round trip; only EXEC's reply, the last, says anything */
    redisAppendCommandArgv(c, 1, multi, NULL);
    redisAppendCommandArgv(c, 3, k.xinfo, NULL);
    redisAppendCommandArgv(c, 6, k.xrange, NULL);
    redisAppendCommandArgv(c, 1, exec, NULL);
    for (int i = 0; i < 4; i++) {
        if (r != NULL)
            freeReplyObject(r);
        r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK || r == NULL) {
            log_error("redis history of %s: %s", room, c->errstr);
            rexec_sync_drop(st->conn);
            return STORE_DOWN;
        }
    }
    if (r->type == REDIS_REPLY_ERROR)
        log_error("redis history of %s: %s", room, r->str);
    else if (reply_resume(r, room, log, evs, n) == 0)
        rc = STORE_OK;
    freeReplyObject(r);
    return rc;
}

int store_rooms(struct store *st, int limit, long long after_ts,
                const char *after_name, char ***names, long long **last_ts,
                size_t *n)
{
    struct keys_rooms k;
    redisReply *r;
    size_t i, j = 0;

    keys_rooms_init(&k, limit, after_ts, after_name);
    *names = NULL;
    *last_ts = NULL;
    *n = 0;
    r = call_ok(st, KEYS_ROOMS_ARGC, k.argv, NULL);
    if (r == NULL)
        return STORE_DOWN;
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0) {
        log_error("redis rooms script: unexpected reply");
        freeReplyObject(r);
        return STORE_DOWN;
    }
    *names = xcalloc(r->elements / 2 + 1, sizeof(**names));
    *last_ts = xcalloc(r->elements / 2 + 1, sizeof(**last_ts));
    for (i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *name = r->element[i], *score = r->element[i + 1];

        if (name->type != REDIS_REPLY_STRING ||
            score->type != REDIS_REPLY_STRING)
            continue;
        (*names)[j] = xstrndup(name->str, name->len);
        /* scores are doubles in Redis' text; ms fit a double exactly */
        (*last_ts)[j] = (long long)strtod(score->str, NULL);
        j++;
    }
    *n = j;
    freeReplyObject(r);
    return STORE_OK;
}

void store_free_rooms(char **names, long long *last_ts, size_t n)
{
    xfree_strings(names, n);
    free(last_ts);
}

int store_presence_touch(struct store *st, const char *room, const char *user,
                         int64_t now_ms, int64_t expiry_ms, int *joined)
{
    char key[KEYS_MAX], expiry[24], stale_below[24];
    const char *zscore[] = {"ZSCORE", key, user};
    const char *zadd[] = {"ZADD", key, expiry, user};
    const char *zrem[] = {"ZREMRANGEBYSCORE", key, "-inf", stale_below};
    redisContext *c;
    redisReply *r = NULL;
    int rc = STORE_DOWN, i;

    keys_presence(key, room);
    snprintf(expiry, sizeof(expiry), "%" PRId64, expiry_ms);
    snprintf(stale_below, sizeof(stale_below), "(%" PRId64, now_ms);
    *joined = 0;
    if ((c = rexec_sync_context(st->conn)) == NULL)
        return STORE_DOWN;
    /* one round trip: the old score, the new one, and forget the expired */
    redisAppendCommandArgv(c, 3, zscore, NULL);
    redisAppendCommandArgv(c, 4, zadd, NULL);
    redisAppendCommandArgv(c, 4, zrem, NULL);
    for (i = 0; i < 3; i++) {
        if (redisGetReply(c, (void **)&r) != REDIS_OK || r == NULL) {
            log_error("redis presence of %s in %s: %s", user, room, c->errstr);
            rexec_sync_drop(st->conn);
            return STORE_DOWN;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            log_error("redis presence of %s in %s: %s", user, room, r->str);
            rc = STORE_DOWN;
        } else if (i == 0) {
            *joined = r->type == REDIS_REPLY_NIL ||
                      (r->type == REDIS_REPLY_STRING &&
                       strtod(r->str, NULL) < (double)now_ms);
            rc = STORE_OK;
        }
        freeReplyObject(r);
        r = NULL;
    }
    return rc;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int store_presence_online(struct store *st, const char *room, int64_t now_ms,
                          char ***names, size_t *n)
{
    char key[KEYS_MAX], min[24];
    const char *argv[] = {"ZRANGEBYSCORE", keys_presence(key, room), min,
                          "+inf"};
    redisReply *r;
    size_t i, k = 0;

    snprintf(min, sizeof(min), "%" PRId64, now_ms);
    *names = NULL;
    *n = 0;
    r = call_ok(st, 4, argv, NULL);
    if (r == NULL)
        return STORE_DOWN;
    if (r->type != REDIS_REPLY_ARRAY) {
        log_error("redis ZRANGEBYSCORE %s: unexpected reply", key);
        freeReplyObject(r);
        return STORE_DOWN;
    }
    *names = xcalloc(r->elements + 1, sizeof(**names));
    for (i = 0; i < r->elements; i++) {
        if (r->element[i]->type == REDIS_REPLY_STRING)
            (*names)[k++] = xstrndup(r->element[i]->str, r->element[i]->len);
    }
    qsort(*names, k, sizeof(**names), cmp_names);
    *n = k;
    freeReplyObject(r);
    return STORE_OK;
}

int store_publish(struct store *st, const char *room, const char *json,
                  size_t len)
{
    char key[KEYS_MAX];
    const char *argv[] = {"PUBLISH", keys_bus(key, room), json};
    size_t lens[] = {7, 0, len};
    redisReply *r;

    lens[1] = strlen(key);
    r = call_ok(st, 3, argv, lens);
    if (r == NULL)
        return STORE_DOWN;
    freeReplyObject(r);
    return STORE_OK;
}
