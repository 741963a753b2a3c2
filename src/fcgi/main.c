/* main.c - crosstalk-fcgi: start-up, signals and the FastCGI accept loop */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "archive.h"
#include "config.h"
#include "event.h"
#include "keys.h"
#include "log.h"
#include "rexec_sync.h"
#include "serve.h"
#include "statrec.h"
#include "store.h"
#include "xmalloc.h"

#define PROGRAM "crosstalk-fcgi"
#define LISTEN_BACKLOG 128
/* This process's counters, written to Redis every stats_interval_ms by a
 * thread of their own, so an idle process (blocked in accept) stays in
 * crosstalkd's /api/stats sum. A timer signal would do it without a thread,
 * but it interrupts libfcgi's reads of a request it has just accepted. */
static struct statrec counters; /* the identity; written before the thread */
static uint64_t counts[STATREC_TRANSPORTS][STATREC_FIELDS]; /* atomically */
static struct statrec_sink *counters_sink;
static pthread_t counters_thread;
static bool counters_running;
static pthread_mutex_t counters_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t counters_wake = PTHREAD_COND_INITIALIZER;
static bool counters_stop; /* under counters_lock */

static volatile sig_atomic_t stopping;
static volatile sig_atomic_t reopen_log;

/*
 * SIGTERM (and SIGINT) while waiting for a request ends the wait: the
 * handler runs without SA_RESTART, so accept() fails with EINTR and
 * FCGX_Accept_r returns. While a request is handled these signals are
 * blocked, so the request in hand is finished first. The alarm covers the
 * one gap left: a signal that lands between our check of `stopping` and
 * libfcgi's accept() interrupts the next second of waiting instead.
 */
static void on_stop(int sig)
{
    (void)sig;
    stopping = 1;
    FCGX_ShutdownPending();
    alarm(1);
}

static void on_hup(int sig)
{
    (void)sig;
    reopen_log = 1;
}

static void on_alarm(int sig)
{
    (void)sig;
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: " PROGRAM " [--config FILE] [--KEY=VALUE ...] "
            "[--socket PATH]\n"
            "\n"
            "The FastCGI responder of crosstalk: the stateless REST calls\n"
            "(register, rooms, messages, typing, presence, healthz), one\n"
            "request at a time per process. Run a pool of it under\n"
            "spawn-fcgi, which hands it the listening socket on stdin:\n"
            "\n"
            "  spawn-fcgi -s /run/crosstalk/fcgi.sock -F 4 -- " PROGRAM "\n"
            "\n"
            "or give --socket PATH to listen on a Unix socket itself.\n"
            "SIGTERM finishes the request in hand, then exits 0; SIGHUP\n"
            "reopens the log file.\n"
            "\n"
            "Options:\n"
            "  --config FILE   read FILE instead of the default "
            "configuration\n"
            "                  (default %s)\n"
            "  --socket PATH   listen on the Unix socket PATH\n"
            "  -h, --help      this text\n"
            "\n"
            "Configuration keys (file, then CROSSTALK_<KEY>, then flags):\n",
            config_default_file);
    /* what the REST core, the store and the archive read */
    config_usage(out, "redis_url,redis_timeout_ms,mongo_uri,log_level,"
                      "log_file,max_message_bytes,max_body_bytes,"
                      "max_header_bytes,longpoll_max_timeout,presence_ttl,"
                      "allowed_origins,rate_register_per_min,"
                      "rate_send_per_sec,rate_typing_per_sec,"
                      "token_cache_ttl,stats_interval_ms");
}

static int install_signals(sigset_t *handled)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: the wait must end */
    sa.sa_handler = on_stop;
    if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0)
        return -1;
    sa.sa_handler = on_hup;
    if (sigaction(SIGHUP, &sa, NULL) < 0)
        return -1;
    sa.sa_handler = on_alarm;
    if (sigaction(SIGALRM, &sa, NULL) < 0)
        return -1;
    sa.sa_handler = SIG_IGN;
    if (sigaction(SIGPIPE, &sa, NULL) < 0)
        return -1;
    sigemptyset(handled);
    sigaddset(handled, SIGTERM);
    sigaddset(handled, SIGINT);
    sigaddset(handled, SIGHUP);
    sigaddset(handled, SIGALRM);
    return 0;
}

/* Picks --socket PATH / --socket=PATH out of what config_load left; any
 * other argument is an error. Returns 0, or -1 with a message printed. */
static int parse_args(int argc, char **argv, const char **socket_path)
{
    int i;

    *socket_path = NULL;
    for (i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--socket=", 9) == 0) {
            *socket_path = argv[i] + 9;
        } else if (strcmp(argv[i], "--socket") == 0) {
            if (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0) {
                fprintf(stderr, PROGRAM ": --socket needs a value\n");
                return -1;
            }
            *socket_path = argv[++i];
        } else {
            fprintf(stderr, PROGRAM ": unknown argument '%s' (see --help)\n",
                    argv[i]);
            return -1;
        }
    }
    if (*socket_path != NULL && (*socket_path)[0] == '\0') {
        fprintf(stderr, PROGRAM ": --socket needs a path\n");
        return -1;
    }
    return 0;
}

/* Counted as crosstalkd counts them: a GET of a room's messages is a
 * short poll (or a page of history), the rest are REST calls. */
static void count(const struct serve_outcome *o)
{
    uint64_t *c = counts[o->kind == TRANSPORT_SHORT_POLL ? STATREC_SHORT_POLL
                                                         : STATREC_REST];

    __atomic_add_fetch(&c[STATREC_REQUESTS], 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&c[STATREC_BYTES_OUT], o->bytes_out, __ATOMIC_RELAXED);
    if (o->delivered > 0)
        __atomic_add_fetch(&c[STATREC_DELIVERED], (uint64_t)o->delivered,
                           __ATOMIC_RELAXED);
    else if (o->delivered == 0)
        __atomic_add_fetch(&c[STATREC_EMPTY], 1, __ATOMIC_RELAXED);
}

/* The writer thread: a copy of the counters every interval, until
 * stop_counters(). It takes no signal (they are for the accept loop). */
static void *write_counters(void *arg)
{
    struct statrec copy;
    struct timespec until;

    (void)arg;
    pthread_mutex_lock(&counters_lock);
    while (!counters_stop) {
        pthread_mutex_unlock(&counters_lock);
        copy = counters;
        for (int t = 0; t < STATREC_TRANSPORTS; t++)
            for (int f = 0; f < STATREC_FIELDS; f++)
                copy.c[t][f] = __atomic_load_n(&counts[t][f], __ATOMIC_RELAXED);
        copy.updated_ms = event_now_ms();
        statrec_sink_write(counters_sink, &copy);
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += counters.interval_ms / 1000;
        until.tv_nsec += counters.interval_ms % 1000 * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&counters_lock);
        while (!counters_stop &&
               pthread_cond_timedwait(&counters_wake, &counters_lock, &until) !=
                   ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&counters_lock);
    return NULL;
}

/* Ends the writer (its record then expires after its TTL) and frees the
 * sink. */
static void stop_counters(void)
{
    if (counters_running) {
        pthread_mutex_lock(&counters_lock);
        counters_stop = true;
        pthread_cond_signal(&counters_wake);
        pthread_mutex_unlock(&counters_lock);
        pthread_join(counters_thread, NULL);
        counters_running = false;
    }
    statrec_sink_free(counters_sink);
    counters_sink = NULL;
}

static void start_counters(void)
{
    sigset_t all, old;

    if (counters_sink == NULL)
        return;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    counters_running =
        pthread_create(&counters_thread, NULL, write_counters, NULL) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!counters_running)
        log_error("cannot start the thread that writes the counters");
}

int main(int argc, char **argv)
{
    struct config cfg;
    struct rexec_sync **redis = NULL; /* one per shard */
    struct rexec **rx = NULL;
    int shards = 0;
    struct store *st = NULL;
    struct rest_ctx ctx;
    struct serve_outcome outcome;
    FCGX_Request req;
    const char *socket_path;
    char err[512];
    sigset_t handled;
    int i, fd = 0, rc, status = 1;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            config_defaults(&cfg);
            usage(stdout);
            config_free(&cfg);
            return 0;
        }
    }
    log_set_program(PROGRAM);
    /* config_load starts from the defaults itself */
    argc = config_load(&cfg, argc, argv, err, sizeof(err));
    if (argc < 0) {
        fprintf(stderr, PROGRAM ": %s\n", err);
        config_free(&cfg);
        return 2;
    }
    if (parse_args(argc, argv, &socket_path) < 0) {
        config_free(&cfg);
        return 2;
    }
    if (log_open(cfg.log_level, cfg.log_file) < 0)
        fprintf(stderr,
                PROGRAM ": cannot open the log %s; logging to "
                        "stderr\n",
                cfg.log_file);
    keys_init();
    shards = rexec_sync_new_list(cfg.redis_url, cfg.redis_timeout_ms, &redis,
                                 &rx, err, sizeof(err));
    if (shards < 0) {
        log_error("%s", err);
        goto done;
    }
    st = store_new(rx, shards, &cfg);
    if (archive_mongo_use(cfg.mongo_uri) < 0)
        goto done;
    serve_init(&ctx, &cfg, st);
    statrec_init(&counters, PROGRAM, 0, cfg.stats_interval_ms);
    counters_sink =
        statrec_sink_new(cfg.redis_url, cfg.redis_timeout_ms, err, sizeof(err));
    if (FCGX_Init() != 0) {
        log_error("FCGX_Init failed");
        goto done;
    }
    if (socket_path != NULL) {
        fd = FCGX_OpenSocket(socket_path, LISTEN_BACKLOG);
        if (fd < 0) {
            log_error("cannot listen on %s: %s", socket_path, strerror(errno));
            goto done;
        }
    } else if (FCGX_IsCGI()) {
        log_error("stdin is not a FastCGI listening socket: run under "
                  "spawn-fcgi, or give --socket PATH");
        goto done;
    }
    if (install_signals(&handled) < 0 ||
        FCGX_InitRequest(&req, fd, FCGI_FAIL_ACCEPT_ON_INTR) != 0) {
        log_error("cannot set up signals or the request: %s", strerror(errno));
        goto done;
    }
    start_counters();
    log_info("ready (pid %ld, redis %s)", (long)getpid(), cfg.redis_url);
    for (;;) {
        sigprocmask(SIG_UNBLOCK, &handled, NULL);
        if (reopen_log) {
            reopen_log = 0;
            log_reopen();
        }
        if (stopping)
            break;
        rc = FCGX_Accept_r(&req);
        sigprocmask(SIG_BLOCK, &handled, NULL);
        if (rc < 0) {
            if (stopping)
                break;
            if (rc == -EINTR)
                continue;
            log_error("FCGX_Accept_r failed: %d", rc);
            goto done;
        }
        serve_request(&ctx, &req, &outcome);
        FCGX_Finish_r(&req);
        count(&outcome);
    }
    log_info("stopping on signal");
    status = 0;
done:
    stop_counters();
    if (st != NULL)
        rest_shutdown(&ctx);
    archive_close();
    store_free(st);
    rexec_sync_free_list(redis, shards);
    free(rx);
    log_close();
    config_free(&cfg);
    return status;
}
