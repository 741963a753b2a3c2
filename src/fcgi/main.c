/* main.c - crosstalk-fcgi: start-up, signals and the FastCGI accept loop */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "archive.h"
#include "config.h"
#include "keys.h"
#include "log.h"
#include "rest.h"
#include "store.h"
#include "xmalloc.h"

#define PROGRAM "crosstalk-fcgi"
#define LISTEN_BACKLOG 128
/* What is drained of a body too large to handle, so the web server is not
 * cut off mid-send; beyond it the connection is simply closed. */
#define DRAIN_MAX (64L << 20)

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
            "  --socket PATH   listen on the Unix socket PATH\n"
            "  --help          show this help\n"
            "\n"
            "Configuration keys (file, then CROSSTALK_<KEY>, then flags):\n");
    config_usage(out);
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
        } else if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
            *socket_path = argv[++i];
        } else {
            fprintf(stderr, PROGRAM ": unknown argument \"%s\" (try --help)\n",
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

/* Reads the body: at most max_body bytes, or notes that it is larger and
 * drains it. Returns the body (NUL-terminated, newly allocated) or NULL. */
static char *read_body(FCGX_Request *req, long max_body, size_t *len,
                       bool *too_large)
{
    const char *cl = FCGX_GetParam("CONTENT_LENGTH", req->envp);
    char *end, *body, sink[8192];
    long want = -1, got = 0;
    int n;

    *len = 0;
    *too_large = false;
    if (cl != NULL && *cl != '\0') {
        errno = 0;
        want = strtol(cl, &end, 10);
        if (errno != 0 || *end != '\0' || want < 0)
            want = -1;
    }
    if (want == 0)
        return NULL;
    if (want > max_body) {
        *too_large = true;
        while (got < DRAIN_MAX &&
               (n = FCGX_GetStr(sink, sizeof(sink), req->in)) > 0)
            got += n;
        return NULL;
    }
    /* without a length, read to the end, one byte past the limit at most */
    body = xmalloc((size_t)(want >= 0 ? want : max_body + 1) + 1);
    for (;;) {
        long room = (want >= 0 ? want : max_body + 1) - got;

        if (room <= 0)
            break;
        n = FCGX_GetStr(body + got, room > 65536 ? 65536 : (int)room, req->in);
        if (n <= 0)
            break;
        got += n;
    }
    if (got > max_body) {
        *too_large = true;
        free(body);
        while ((n = FCGX_GetStr(sink, sizeof(sink), req->in)) > 0)
            ;
        return NULL;
    }
    body[got] = '\0';
    *len = (size_t)got;
    return body;
}

/* libfcgi's own printf knows no %zu: the head is formatted here. A JSON
 * body ends with a newline, as crosstalkd's do. */
static void write_response(FCGX_Request *req, const struct rest_response *rs)
{
    char head[512];
    int n;

    n = snprintf(
        head, sizeof(head),
        "Status: %d %s\r\n"
        "Content-Type: application/json\r\n"
        "Cache-Control: no-store\r\n"
        "Content-Length: %zu\r\n"
        "%s%s%s",
        rs->status, rest_reason(rs->status), rs->len > 0 ? rs->len + 1 : 0,
        rs->allow != NULL ? "Allow: " : "", rs->allow != NULL ? rs->allow : "",
        rs->allow != NULL ? "\r\n" : "");
    if (rs->retry_after > 0)
        n += snprintf(head + n, sizeof(head) - (size_t)n, "Retry-After: %d\r\n",
                      rs->retry_after);
    if (rs->www_authenticate)
        n += snprintf(head + n, sizeof(head) - (size_t)n,
                      "WWW-Authenticate: Bearer\r\n");
    n += snprintf(head + n, sizeof(head) - (size_t)n, "\r\n");
    FCGX_PutStr(head, n, req->out);
    if (rs->body != NULL && rs->len > 0) {
        FCGX_PutStr(rs->body, (int)rs->len, req->out);
        FCGX_PutChar('\n', req->out);
    }
}

/* A request header's value; several of them (nginx before 1.23 passes
 * each as its own parameter) are joined with ", " as one header, into a
 * newly allocated *joined. NULL when there is none. */
static const char *header_param(FCGX_Request *req, const char *name,
                                char **joined)
{
    size_t n = strlen(name);
    const char *first = NULL;
    char **e, *all;

    *joined = NULL;
    for (e = req->envp; e != NULL && *e != NULL; e++) {
        if (strncmp(*e, name, n) != 0 || (*e)[n] != '=')
            continue;
        if (first == NULL) {
            first = *e + n + 1;
            continue;
        }
        all =
            xasprintf("%s, %s", *joined != NULL ? *joined : first, *e + n + 1);
        free(*joined);
        *joined = all;
    }
    return *joined != NULL ? *joined : first;
}

static long elapsed_us(const struct timeval *t0)
{
    struct timeval t1;

    gettimeofday(&t1, NULL);
    return (t1.tv_sec - t0->tv_sec) * 1000000L + (t1.tv_usec - t0->tv_usec);
}

/* Turns the FastCGI parameters into a rest_request and answers it. The path
 * is the raw one of REQUEST_URI, as crosstalkd sees it; SCRIPT_NAME and
 * PATH_INFO serve for web servers that send no REQUEST_URI. */
static void serve(FCGX_Request *req, const struct config *cfg)
{
    const char *method = FCGX_GetParam("REQUEST_METHOD", req->envp);
    const char *uri = FCGX_GetParam("REQUEST_URI", req->envp);
    struct rest_request rq;
    struct rest_response rs;
    struct timeval t0;
    char *path = NULL, *body, *ikey;
    const char *q;

    gettimeofday(&t0, NULL);
    memset(&rq, 0, sizeof(rq));
    rq.method = method != NULL ? method : "GET";
    if (uri != NULL && *uri != '\0') {
        q = strchr(uri, '?');
        path = q != NULL ? xstrndup(uri, (size_t)(q - uri)) : xstrdup(uri);
        rq.query = q != NULL ? q + 1 : NULL;
    } else {
        const char *sn = FCGX_GetParam("SCRIPT_NAME", req->envp);
        const char *pi = FCGX_GetParam("PATH_INFO", req->envp);

        path = xasprintf("%s%s", sn != NULL ? sn : "", pi != NULL ? pi : "");
        rq.query = FCGX_GetParam("QUERY_STRING", req->envp);
    }
    if (rq.query != NULL && *rq.query == '\0')
        rq.query = NULL;
    rq.path = path;
    rq.authorization = FCGX_GetParam("HTTP_AUTHORIZATION", req->envp);
    rq.idempotency_key = header_param(req, "HTTP_IDEMPOTENCY_KEY", &ikey);
    rq.remote_addr = FCGX_GetParam("REMOTE_ADDR", req->envp);
    body =
        read_body(req, cfg->max_body_bytes, &rq.body_len, &rq.body_too_large);
    rq.body = body;
    rest_handle(&rq, &rs);
    write_response(req, &rs);
    log_debug("%s %s %d %zu bytes %ld us", rq.method, path, rs.status, rs.len,
              elapsed_us(&t0));
    rest_response_clear(&rs);
    free(ikey);
    free(body);
    free(path);
}

int main(int argc, char **argv)
{
    struct config cfg;
    struct store *st = NULL;
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
    st = store_new(cfg.redis_url, cfg.redis_timeout_ms, err, sizeof(err));
    if (st == NULL) {
        log_error("%s", err);
        goto done;
    }
    if (archive_mongo_use(cfg.mongo_uri) < 0)
        goto done;
    rest_init(&cfg, st);
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
        serve(&req, &cfg);
        FCGX_Finish_r(&req);
    }
    log_info("stopping on signal");
    status = 0;
done:
    rest_shutdown();
    archive_close();
    store_free(st);
    log_close();
    config_free(&cfg);
    return status;
}
