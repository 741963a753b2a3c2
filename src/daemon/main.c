/* main.c - crosstalkd: start-up, signals, draining shutdown */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <event2/event.h>

#include "app.h"
#include "bus.h"
#include "config.h"
#include "feed.h"
#include "http.h"
#include "log.h"
#include "paths.h"
#include "presence.h"
#include "redis.h"
#include "serve.h"
#include "session.h"
#include "stats.h"
#include "store.h"
#include "tally.h"
#include "transport.h"
#include "xmalloc.h"

#define DRAIN_MAX_MS 5000
#define DRAIN_TICK_MS 50

struct app app;

static struct event *drain_timer;
static int drain_waited_ms;

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: crosstalkd [--config FILE] [--KEY=VALUE ...]\n"
            "\n"
            "The crosstalk chat server: REST, short polling, long polling,\n"
            "Server-Sent Events and WebSocket on one port (and on a Unix\n"
            "socket for nginx, with --unix-socket), one Redis-backed bus.\n"
            "\n"
            "Settings come from the config file (--config FILE, else\n"
            "$CROSSTALK_CONFIG, else %s/crosstalk.conf if it exists), then\n"
            "CROSSTALK_<KEY> environment variables, then --key=value flags.\n"
            "\n"
            "Signals: SIGTERM/SIGINT drain (pending writes to Redis finish:\n"
            "up to 5 s, then up to redis_timeout_ms for answers still due)\n"
            "and exit 0; a second one exits at once; SIGHUP reopens the\n"
            "log file.\n"
            "\n"
            "Options:\n"
            "  --config FILE   read FILE instead of the default "
            "configuration\n"
            "                  (default %s/crosstalk.conf)\n"
            "  -h, --help      this text\n"
            "\n"
            "Configuration keys (file, then CROSSTALK_<KEY>, then flags):\n",
            SYSCONFDIR, SYSCONFDIR);
    config_usage(out, NULL);
}

static void close_subscriber(struct subscriber *s, void *arg)
{
    s->ops->close(s);
}

static void drain_tick(evutil_socket_t fd, short what, void *arg)
{
    struct timeval tv = {0, DRAIN_TICK_MS * 1000};

    drain_waited_ms += DRAIN_TICK_MS;
    if ((app.inflight == 0 && drain_waited_ms >= 2 * DRAIN_TICK_MS) ||
        drain_waited_ms >= DRAIN_MAX_MS) {
        if (app.inflight > 0)
            log_warn("shutdown: %u writes to Redis still unanswered",
                     app.inflight);
        event_base_loopexit(app.base, NULL);
        return;
    }
    evtimer_add(drain_timer, &tv);
}

static void on_term(evutil_socket_t sig, short what, void *arg)
{
    struct timeval tv = {0, DRAIN_TICK_MS * 1000};

    if (app.draining) {
        log_warn("second signal: exiting now");
        event_base_loopexit(app.base, NULL);
        return;
    }
    log_info("signal %d: draining", (int)sig);
    app.draining = true;
    http_stop_accepting();
    bus_foreach_subscriber(app.bus, close_subscriber, NULL);
    drain_timer = evtimer_new(app.base, drain_tick, NULL);
    evtimer_add(drain_timer, &tv);
}

/* Rooms nobody follows are kept this long, for the polls that come back. */
#define ROOM_IDLE_MS 60000

static void sweep_rooms(evutil_socket_t fd, short what, void *arg)
{
    bus_sweep(app.bus, ROOM_IDLE_MS);
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
    if (log_reopen() != 0)
        log_error("SIGHUP: cannot reopen the log file");
    else
        log_info("SIGHUP: log reopened");
}

/* Descriptors crosstalkd holds beside one per connection: the listener,
 * the event base, Redis connections, the log, static files being sent. */
#define FD_RESERVE 32
/* Where an unlimited hard limit leaves us (Linux's default fs.nr_open). */
#define FD_CEILING 1048576

/* Raises the soft RLIMIT_NOFILE to the hard limit and says what it got.
 * Returns 0, or -1 (with a message naming both numbers) when that is not
 * enough for max_connections. */
static int raise_fd_limit(const struct config *cfg)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)cfg->max_connections + FD_RESERVE;
    rlim_t want;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        log_error("getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
        return -1;
    }
    want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > FD_CEILING
               ? FD_CEILING
               : rl.rlim_max;
    if (want < need && rl.rlim_max == RLIM_INFINITY)
        want = need;
    while (want > rl.rlim_cur) {
        struct rlimit to = {want, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &to) == 0) {
            rl.rlim_cur = want;
            break;
        }
        want = want / 2 > rl.rlim_cur ? want / 2 : rl.rlim_cur;
    }
    if (rl.rlim_cur < need) {
        log_error("max_connections %d needs %llu file descriptors, but only "
                  "%llu are allowed (RLIMIT_NOFILE, hard limit %llu): raise "
                  "the limit (ulimit -n, LimitNOFILE=) or lower "
                  "max_connections",
                  cfg->max_connections, (unsigned long long)need,
                  (unsigned long long)rl.rlim_cur,
                  (unsigned long long)rl.rlim_max);
        return -1;
    }
    log_info("file descriptors: %llu allowed, %llu needed for "
             "max_connections %d",
             (unsigned long long)rl.rlim_cur, (unsigned long long)need,
             cfg->max_connections);
    return 0;
}

/* libevent's own messages (a failed accept, a bad epoll_ctl), through our
 * log so that log_level, log_file and its rate limit apply to them. */
static void libevent_log(int severity, const char *msg)
{
    enum log_level level = severity == EVENT_LOG_DEBUG  ? LOGL_DEBUG
                           : severity == EVENT_LOG_MSG  ? LOGL_INFO
                           : severity == EVENT_LOG_WARN ? LOGL_WARN
                                                        : LOGL_ERROR;

    log_write(level, "libevent: %s", msg);
}

int main(int argc, char **argv)
{
    static struct config cfg;
    char err[512];
    struct event *sigterm = NULL, *sigint = NULL, *sighup = NULL;
    struct event *sweeper = NULL;
    struct redis **redis = NULL; /* one per shard */
    struct rexec **rx = NULL;
    char **urls = NULL;
    int shards = 0;
    struct feed *feed = NULL;
    int rc = 1;

    log_set_program("crosstalkd");
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("crosstalkd %s\n", PACKAGE_VERSION);
            return 0;
        }
    }
    argc = config_load(&cfg, argc, argv, err, sizeof(err));
    if (argc < 0) {
        fprintf(stderr, "crosstalkd: %s\n", err);
        config_free(&cfg);
        return 2;
    }
    if (argc > 1) {
        fprintf(stderr, "crosstalkd: unknown argument '%s' (see --help)\n",
                argv[1]);
        config_free(&cfg);
        return 2;
    }
    if (log_open(cfg.log_level, cfg.log_file) != 0) {
        fprintf(stderr, "crosstalkd: cannot open log (level %s, file %s)\n",
                cfg.log_level, cfg.log_file);
        config_free(&cfg);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    event_set_log_callback(libevent_log);
    if (raise_fd_limit(&cfg) != 0) {
        config_free(&cfg);
        log_close();
        return 2;
    }

    app.cfg = &cfg;
    {
        /* The changelist folds the add and delete of a write event within
         * one loop turn (every delivery) into no epoll_ctl at all. */
        struct event_config *ec = event_config_new();
        event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
        app.base = event_base_new_with_config(ec);
        event_config_free(ec);
        if (app.base == NULL) {
            log_error("cannot create the event base");
            config_free(&cfg);
            return 1;
        }
    }
    app.bus = bus_new((size_t)cfg.client_buffer_limit);
    app.streams = tally_new((unsigned)cfg.streams_per_token);
    app.polls = tally_new((unsigned)cfg.longpolls_per_token);
    shards = config_redis_urls(&cfg, &urls);
    redis = xcalloc((size_t)shards, sizeof(*redis));
    rx = xcalloc((size_t)shards, sizeof(*rx));
    for (int i = 0; i < shards; i++) {
        if ((redis[i] = redis_new(app.base, urls[i], &cfg)) == NULL)
            goto done;
        rx[i] = redis_rexec(redis[i]);
    }
    app.store = store_new(rx, shards, &cfg);
    feed = feed_new(app.base, redis, shards, app.store, app.bus, &cfg);
    serve_init(&app.rest);
    app.send_limit = app.rest.send_limit;
    app.typing_limit = app.rest.typing_limit;
    session_init(&app);
    if (http_start(serve_request) != 0)
        goto done;
    presence_start();
    stats_start();
    {
        struct timeval tv = {ROOM_IDLE_MS / 1000 / 4, 0};
        sweeper = event_new(app.base, -1, EV_PERSIST, sweep_rooms, NULL);
        event_add(sweeper, &tv);
    }
    sigterm = evsignal_new(app.base, SIGTERM, on_term, NULL);
    sigint = evsignal_new(app.base, SIGINT, on_term, NULL);
    sighup = evsignal_new(app.base, SIGHUP, on_hup, NULL);
    evsignal_add(sigterm, NULL);
    evsignal_add(sigint, NULL);
    evsignal_add(sighup, NULL);

    event_base_dispatch(app.base);
    log_info("stopped");
    rc = 0;
done:
    stats_stop();
    presence_stop();
    sse_shutdown();
    for (int i = 0; i < shards && redis != NULL; i++)
        if (redis[i] != NULL)
            redis_drain(redis[i]);
    http_free();
    feed_free(feed);
    for (int i = 0; i < shards && redis != NULL; i++)
        redis_free(redis[i]);
    free(redis);
    free(rx);
    config_redis_urls_free(urls, shards);
    store_free(app.store);
    bus_free(app.bus);
    rest_shutdown(&app.rest);
    tally_free(app.streams);
    tally_free(app.polls);
    if (drain_timer)
        event_free(drain_timer);
    if (sigterm)
        event_free(sigterm);
    if (sigint)
        event_free(sigint);
    if (sighup)
        event_free(sighup);
    if (sweeper)
        event_free(sweeper);
    event_base_free(app.base);
    config_free(&cfg);
    log_close();
    return rc;
}
