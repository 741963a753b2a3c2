/* redis.c - crosstalkd's command connection to Redis: the asynchronous
 * executor, reconnection with backoff and the watchdog of redis_timeout_ms */
#include "redis.h"

#include <stdlib.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "config.h"
#include "log.h"
#include "redisurl.h"
#include "rexec.h"
#include "xmalloc.h"

#define BACKOFF_MAX_MS 5000
/* How often the watchdog looks at the commands in flight, at most. */
#define WATCH_MAX_MS 250

/* A command in flight on the command connection. Redis answers in order,
 * so the head of the list is the oldest; hiredis 0.14 has no command
 * timeout of its own. */
struct pending {
    TAILQ_ENTRY(pending) link;
    struct redis *r;
    int64_t sent_ms; /* monotonic */
    rexec_cb fn;
    void *arg;
};
TAILQ_HEAD(pending_list, pending);

struct redis {
    struct rexec x; /* first: the executor is the connection */
    struct event_base *base;
    const struct config *cfg;
    struct redisurl url; /* where Redis is */
    char where[160];     /* host:port or the socket, for the log */
    redisAsyncContext *cmd;
    bool cmd_up;
    int cmd_backoff;
    struct event *cmd_timer;
    bool closing;
    /* Every command is bounded by redis_timeout_ms: the watchdog drops a
     * connection whose oldest command (or whose connect) has waited
     * longer, and reconnects. */
    struct pending_list pending;
    struct event *watchdog;
    int64_t cmd_since; /* when the connect started; 0 when none is */
    /* the watcher (redis_watch) */
    void (*up)(void *arg);
    void (*tick)(void *arg);
    void *watch_arg;
};

int64_t redis_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

redisAsyncContext *redis_connect(struct redis *r, const char *what, void *data)
{
    const struct redisurl *u = &r->url;
    redisAsyncContext *ac = u->path ? redisAsyncConnectUnix(u->path)
                                    : redisAsyncConnect(u->host, u->port);
    const char *argv[2][3];
    int argc[2], n;
    char dbbuf[16];

    if (ac == NULL)
        return NULL;
    if (ac->err) {
        log_warn("redis %s: %s connection: %s", r->where, what, ac->errstr);
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = data;
    redisLibeventAttach(ac, r->base);
    /* AUTH and SELECT go first, so every later command runs after them */
    n = redisurl_setup(u, argv, argc, dbbuf);
    for (int i = 0; i < n; i++)
        redisAsyncCommandArgv(ac, NULL, NULL, argc[i], argv[i], NULL);
    return ac;
}

void redis_retry(struct event *timer, int *backoff)
{
    struct timeval tv;

    tv.tv_sec = *backoff / 1000;
    tv.tv_usec = (*backoff % 1000) * 1000;
    evtimer_add(timer, &tv);
    *backoff = *backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : *backoff * 2;
}

static void schedule(struct redis *r)
{
    if (!r->closing)
        redis_retry(r->cmd_timer, &r->cmd_backoff);
}

static void cmd_connected(const redisAsyncContext *ac, int status)
{
    struct redis *r = ac->data;

    if (ac != r->cmd)
        return;
    r->cmd_since = 0;
    if (status != REDIS_OK) {
        log_warn("redis %s: cannot connect: %s", r->where, ac->errstr);
        r->cmd = NULL;
        schedule(r);
        return;
    }
    log_info("redis %s: connected", r->where);
    r->cmd_up = true;
    r->cmd_backoff = REDIS_BACKOFF_MIN_MS;
    if (r->up != NULL)
        r->up(r->watch_arg);
}

static void cmd_disconnected(const redisAsyncContext *ac, int status)
{
    struct redis *r = ac->data;

    if (ac != r->cmd) /* dropped by the watchdog, which reconnects */
        return;
    r->cmd = NULL;
    r->cmd_up = false;
    if (r->closing)
        return;
    log_warn("redis %s: connection lost%s%s", r->where,
             ac->errstr[0] ? ": " : "", ac->errstr);
    schedule(r);
}

static void cmd_connect(struct redis *r)
{
    if (r->closing || r->cmd != NULL)
        return;
    r->cmd = redis_connect(r, "command", r);
    if (r->cmd == NULL) {
        schedule(r);
        return;
    }
    r->cmd_since = redis_mono_ms();
    redisAsyncSetConnectCallback(r->cmd, cmd_connected);
    redisAsyncSetDisconnectCallback(r->cmd, cmd_disconnected);
}

static void cmd_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    cmd_connect(arg);
}

/* Drops the command connection: every command in flight on it is answered
 * with no reply (its outcome unknown), then we reconnect with backoff. */
static void cmd_reset(struct redis *r)
{
    redisAsyncContext *ac = r->cmd;

    r->cmd = NULL;
    r->cmd_up = false;
    r->cmd_since = 0;
    redisAsyncFree(ac);
    schedule(r);
}

static void on_pending(redisAsyncContext *ac, void *reply, void *priv)
{
    struct pending *p = priv;

    TAILQ_REMOVE(&p->r->pending, p, link);
    if (p->fn != NULL)
        p->fn(reply, p->arg);
    free(p);
}

static int x_send(struct rexec *x, rexec_cb fn, void *arg, int argc,
                  const char **argv, const size_t *lens)
{
    struct redis *r = (struct redis *)x;
    struct pending *p;

    if (!r->cmd_up || r->cmd == NULL)
        return -1;
    p = xmalloc(sizeof(*p));
    p->r = r;
    p->sent_ms = redis_mono_ms();
    p->fn = fn;
    p->arg = arg;
    if (redisAsyncCommandArgv(r->cmd, on_pending, p, argc, argv, lens) !=
        REDIS_OK) {
        free(p);
        return -1;
    }
    TAILQ_INSERT_TAIL(&r->pending, p, link);
    return 0;
}

/* Written with whatever follows on the same connection; the watchdog
 * bounds the command sent after it. */
static int x_queue(struct rexec *x, int argc, const char **argv,
                   const size_t *lens)
{
    struct redis *r = (struct redis *)x;

    if (!r->cmd_up || r->cmd == NULL ||
        redisAsyncCommandArgv(r->cmd, NULL, NULL, argc, argv, lens) != REDIS_OK)
        return -1;
    return 0;
}

static bool x_ready(const struct rexec *x)
{
    return redis_up((const struct redis *)x);
}

static void watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
    struct redis *r = arg;
    int64_t now = redis_mono_ms(), limit = r->cfg->redis_timeout_ms;
    struct pending *oldest = TAILQ_FIRST(&r->pending);

    if (r->cmd != NULL &&
        ((oldest != NULL && now - oldest->sent_ms >= limit) ||
         (r->cmd_since != 0 && now - r->cmd_since >= limit))) {
        log_warn("redis %s: no answer in %lld ms; dropping the connection and "
                 "failing what was sent on it as unknown",
                 r->where, (long long)limit);
        cmd_reset(r);
    }
    if (r->tick != NULL)
        r->tick(r->watch_arg);
}

struct redis *redis_new(struct event_base *base, const char *url,
                        const struct config *cfg)
{
    struct redis *r = xcalloc(1, sizeof(*r));
    char err[256];
    int ms = cfg->redis_timeout_ms / 4;
    struct timeval tv;

    r->x.send = x_send;
    r->x.queue = x_queue;
    r->x.ready = x_ready;
    r->base = base;
    r->cfg = cfg;
    if (redisurl_parse(url, &r->url, err, sizeof(err)) != 0) {
        log_error("%s", err);
        redis_free(r);
        return NULL;
    }
    redisurl_where(&r->url, r->where, sizeof(r->where));
    r->cmd_backoff = REDIS_BACKOFF_MIN_MS;
    r->cmd_timer = evtimer_new(base, cmd_timer_cb, r);
    TAILQ_INIT(&r->pending);
    ms = ms < 10 ? 10 : ms > WATCH_MAX_MS ? WATCH_MAX_MS : ms;
    tv.tv_sec = 0;
    tv.tv_usec = ms * 1000;
    r->watchdog = event_new(base, -1, EV_PERSIST, watchdog_cb, r);
    event_add(r->watchdog, &tv);
    cmd_connect(r);
    return r;
}

void redis_watch(struct redis *r, void (*up)(void *arg),
                 void (*tick)(void *arg), void *arg)
{
    r->up = up;
    r->tick = tick;
    r->watch_arg = arg;
}

struct rexec *redis_rexec(struct redis *r)
{
    return &r->x;
}

bool redis_up(const struct redis *r)
{
    return r->cmd_up;
}

void redis_drain(struct redis *r)
{
    int64_t until = redis_mono_ms() + r->cfg->redis_timeout_ms;

    /* every reply hiredis still waits for, fire-and-forget ones too; the
     * watchdog wakes the loop at least every WATCH_MAX_MS */
    while (r->cmd_up && r->cmd != NULL && r->cmd->replies.head != NULL &&
           redis_mono_ms() < until)
        event_base_loop(r->base, EVLOOP_ONCE);
}

void redis_free(struct redis *r)
{
    if (r == NULL)
        return;
    r->closing = true;
    if (r->cmd)
        redisAsyncDisconnect(r->cmd);
    if (r->cmd_timer)
        event_free(r->cmd_timer);
    if (r->watchdog)
        event_free(r->watchdog);
    redisurl_free(&r->url);
    free(r);
}
