/* rexec_sync.c - the synchronous executor: a blocking hiredis connection
 * with timeouts, dropped after a failure and made again on the next use */
#include "rexec_sync.h"

#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "log.h"
#include "redisurl.h"
#include "strlist.h"
#include "rexec.h"
#include "xmalloc.h"

struct rexec_sync {
    struct rexec x;  /* first: the executor is the connection */
    redisContext *c; /* NULL while disconnected */
    struct redisurl url;
    int timeout_ms;
    bool down_logged; /* the last connect failed and was logged */
    int queued;       /* commands appended whose replies nobody reads */
    /* After a failure that waited (a Redis that hangs), until then
     * (monotonic ms) a connection must first answer a PING within
     * REXEC_SYNC_PROBE_MS: a Redis that hangs costs one request one
     * timeout, and the next ones a probe each, not a timeout per command;
     * one that only lost a reply is used again at once. */
    int64_t rest_until_ms;
};

static int64_t mono_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The connection failed after we had waited since `since_ms`: drop it,
 * and rest when the wait was a timeout's rather than a refusal's (a Redis
 * that is down refuses at once, and is tried again at once). */
static void fail(struct rexec_sync *s, int64_t since_ms)
{
    int64_t now = mono_now_ms();

    rexec_sync_drop(s);
    if (now - since_ms >= s->timeout_ms / 2)
        s->rest_until_ms = now + REXEC_SYNC_REST_MS;
}

void rexec_sync_drop(struct rexec_sync *s)
{
    if (s->c != NULL) {
        redisFree(s->c);
        s->c = NULL;
    }
    s->queued = 0;
}

/* A connection Redis closed while we were idle (a restart) is readable with
 * EOF: notice it before sending, so a write is never sent into a dead
 * socket and then left in doubt. */
static bool stale(const struct rexec_sync *s)
{
    struct pollfd p = {.fd = s->c->fd, .events = POLLIN};

    return poll(&p, 1, 0) != 0;
}

/* While resting: a connection made and PINGed within REXEC_SYNC_PROBE_MS,
 * then given the full timeout; the rest ends. Returns 0, or -1 (s->c NULL)
 * and the rest goes on from now. */
static int probe(struct rexec_sync *s)
{
    int ms = s->timeout_ms < REXEC_SYNC_PROBE_MS ? s->timeout_ms
                                                 : REXEC_SYNC_PROBE_MS;
    struct timeval tv = {s->timeout_ms / 1000, (s->timeout_ms % 1000) * 1000};
    char err[512];
    redisReply *r;

    s->c = redisurl_connect(&s->url, ms, err, sizeof(err));
    r = s->c != NULL ? redisCommand(s->c, "PING") : NULL;
    if (r == NULL || r->type == REDIS_REPLY_ERROR ||
        redisSetTimeout(s->c, tv) != REDIS_OK) {
        if (r != NULL)
            freeReplyObject(r);
        rexec_sync_drop(s);
        s->rest_until_ms = mono_now_ms() + REXEC_SYNC_REST_MS;
        return -1;
    }
    freeReplyObject(r);
    s->rest_until_ms = 0;
    return 0;
}

redisContext *rexec_sync_context(struct rexec_sync *s)
{
    char err[512], where[300];
    int64_t t0;

    if (s->c != NULL && (s->queued > 0 || !stale(s)))
        return s->c;
    rexec_sync_drop(s);
    t0 = mono_now_ms();
    if (t0 < s->rest_until_ms)
        return probe(s) == 0 ? s->c : NULL;
    s->c = redisurl_connect(&s->url, s->timeout_ms, err, sizeof(err));
    if (s->c == NULL) {
        if (!s->down_logged)
            log_error("%s", err);
        s->down_logged = true;
        fail(s, t0);
        return NULL;
    }
    if (s->down_logged)
        log_info("connected to redis at %s",
                 redisurl_where(&s->url, where, sizeof(where)));
    s->down_logged = false;
    return s->c;
}

static int x_queue(struct rexec *x, int argc, const char **argv,
                   const size_t *lens)
{
    struct rexec_sync *s = (struct rexec_sync *)x;

    if (rexec_sync_context(s) == NULL ||
        redisAppendCommandArgv(s->c, argc, argv, lens) != REDIS_OK)
        return -1;
    s->queued++;
    return 0;
}

/* Writes what is queued and this command, reads every reply and hands the
 * last to cb. */
static int x_send(struct rexec *x, rexec_cb cb, void *arg, int argc,
                  const char **argv, const size_t *lens)
{
    struct rexec_sync *s = (struct rexec_sync *)x;
    redisReply *r = NULL;
    int64_t t0;
    int n;

    if (x_queue(x, argc, argv, lens) != 0)
        return -1;
    t0 = mono_now_ms();
    n = s->queued;
    s->queued = 0;
    for (int i = 0; i < n; i++) {
        if (r != NULL)
            freeReplyObject(r);
        r = NULL;
        if (redisGetReply(s->c, (void **)&r) == REDIS_OK && r != NULL)
            continue;
        log_error("redis %s failed: %s", argv[0],
                  s->c->errstr[0] != '\0' ? s->c->errstr : "no reply");
        /* What hiredis could not write stays in its output buffer: then
         * this command, the last, did not leave whole and cannot have
         * run. Written whole, it may have (a timeout, a lost reply). */
        if (s->c->obuf != NULL && s->c->obuf[0] != '\0') {
            fail(s, t0);
            return -1;
        }
        fail(s, t0);
        if (cb != NULL)
            cb(NULL, arg);
        return 0;
    }
    if (cb != NULL)
        cb(r, arg);
    freeReplyObject(r);
    return 0;
}

static bool x_ready(const struct rexec *x)
{
    const struct rexec_sync *s = (const struct rexec_sync *)x;

    return s->c != NULL || !s->down_logged;
}

struct rexec_sync *rexec_sync_new(const char *url, int timeout_ms, char *err,
                                  size_t errlen)
{
    struct rexec_sync *s = xcalloc(1, sizeof(*s));

    s->x.send = x_send;
    s->x.queue = x_queue;
    s->x.ready = x_ready;
    s->timeout_ms = timeout_ms;
    if (redisurl_parse(url, &s->url, err, errlen) != 0) {
        rexec_sync_free(s);
        return NULL;
    }
    return s;
}

void rexec_sync_free(struct rexec_sync *s)
{
    if (s == NULL)
        return;
    rexec_sync_drop(s);
    redisurl_free(&s->url);
    free(s);
}

struct rexec *rexec_sync_rexec(struct rexec_sync *s)
{
    return &s->x;
}

int rexec_sync_new_list(const char *list, int timeout_ms,
                        struct rexec_sync ***shards, struct rexec ***x,
                        char *err, size_t errlen)
{
    struct redisurl *urls;
    char one[1024];
    const char *rest = list, *item;
    size_t len;
    int n = redisurl_parse_list(list, &urls, err, errlen), i = 0;

    *shards = NULL;
    *x = NULL;
    if (n < 0)
        return -1;
    redisurl_free_list(urls, n);
    *shards = xcalloc((size_t)n, sizeof(**shards));
    *x = xcalloc((size_t)n, sizeof(**x));
    while (i < n && (item = strlist_next(&rest, &len)) != NULL) {
        snprintf(one, sizeof(one), "%.*s", (int)len, item);
        if (((*shards)[i] = rexec_sync_new(one, timeout_ms, err, errlen)) ==
            NULL) {
            rexec_sync_free_list(*shards, i);
            free(*x);
            *shards = NULL;
            *x = NULL;
            return -1;
        }
        (*x)[i] = rexec_sync_rexec((*shards)[i]);
        i++;
    }
    return n;
}

void rexec_sync_free_list(struct rexec_sync **shards, int n)
{
    if (shards == NULL)
        return;
    for (int i = 0; i < n; i++)
        rexec_sync_free(shards[i]);
    free(shards);
}
