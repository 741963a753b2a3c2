/* main.c - crosstalk-bench: options, limits, and the run */
#include <arpa/inet.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "bench.h"
#include "names.h"
#include "run.h"

static void usage(FILE *out)
{
    fprintf(
        out,
        "Usage: crosstalk-bench [OPTIONS]\n"
        "\n"
        "Load and latency client for crosstalk (and for nginx+nchan, the peer "
        "it is\n"
        "measured against). Opens N subscribers of one transport to one room,\n"
        "publishes at a fixed rate (open loop: each message has a scheduled "
        "send\n"
        "time and its latency is measured from that time, so a stall is not\n"
        "hidden), and reports deliveries/s, end-to-end latency percentiles, "
        "lost\n"
        "and duplicated messages per subscriber (both must be 0), connect "
        "time,\n"
        "HTTP requests and bytes per delivered message, and the server's RSS "
        "per\n"
        "connection. Loopback only: the server must be on 127.0.0.0/8.\n"
        "\n"
        "Target\n"
        "  --target crosstalk|nchan   the API spoken (default crosstalk). "
        "crosstalk:\n"
        "                             registers users, publishes with POST\n"
        "                             /api/rooms/R/messages. nchan: POST "
        "/pub?id=R,\n"
        "                             subscribes at /sub/sse, /sub/ws "
        "(ws+meta.nchan),\n"
        "                             /sub/lp, /sub/ip "
        "(scripts/bench/nchan.conf.in)\n"
        "  --url http://127.0.0.1:PORT[/PREFIX]\n"
        "                             the server; a PREFIX goes before every "
        "path\n"
        "                             (e.g. /d for crosstalkd behind our "
        "nginx)\n"
        "  --label NAME               names the target in the output\n"
        "  --room NAME                the room (default bench-<random>)\n"
        "  --server-pid PID           the server's process: RSS before and "
        "after\n"
        "                             connecting (VmRSS), CPU per step. "
        "Repeatable\n"
        "                             (up to 4): all count for CPU, the first "
        "for RSS\n"
        "\n"
        "Load\n"
        "  --transport sse|ws|longpoll|shortpoll   (default sse)\n"
        "  -n, --subscribers N        subscribers, one connection each "
        "(default 100)\n"
        "  --users K                  crosstalk: distinct users among them, "
        "each\n"
        "                             registered first (default 1)\n"
        "  --per-user K               crosstalk: at most K subscribers per "
        "user token\n"
        "                             (users = N / K rounded up, at least "
        "--users);\n"
        "                             against shipped defaults: 8 for "
        "longpoll\n"
        "                             (longpolls_per_token), 16 for sse and "
        "ws\n"
        "                             (streams_per_token). Every user is "
        "registered,\n"
        "                             within rate_register_per_min (30 by "
        "default)\n"
        "  --size BYTES               message text length (default 100; min "
        "24)\n"
        "  --rate R                   messages/s (default 10); the first step "
        "of a ramp\n"
        "  --duration S               seconds of publishing at --rate (default "
        "10)\n"
        "  --ramp                     steps of --ramp-step seconds, doubling "
        "the rate\n"
        "                             while a step passes, then --bisect steps "
        "between\n"
        "                             the last pass and the first failure. A "
        "step\n"
        "                             passes when every publish is "
        "acknowledged, every\n"
        "                             subscriber has every message within "
        "--grace s\n"
        "                             of the step's end, and p99 <= --slo-ms\n"
        "  --ramp-step S              (default 3)\n"
        "  --max-rate R               messages/s the ramp stops at (default "
        "100000)\n"
        "  --max-deliveries D         deliveries/s the ramp stops at (default "
        "5e6)\n"
        "  --bisect K                 (default 3)\n"
        "  --retries K                a failed step is run again K times at "
        "the same\n"
        "                             rate before it counts (default 1): one "
        "stall on\n"
        "                             a busy machine does not end a ramp\n"
        "  --slo-ms MS                (default 100; short poll adds "
        "--interval-ms)\n"
        "  --grace S                  (default 2)\n"
        "  --drain S                  seconds a backlog may take to clear "
        "(default 10)\n"
        "  --interval-ms MS           short poll period (default 1000)\n"
        "  --closed-loop              short poll: no publishing; every "
        "subscriber polls\n"
        "                             again as soon as it has an answer, for\n"
        "                             --duration s: requests/s of polls with "
        "nothing new\n"
        "  --poll-timeout S           long poll timeout asked of crosstalk "
        "(default 25)\n"
        "  --pub-conns K              publisher connections (default 4)\n"
        "\n"
        "Limits\n"
        "  --connect-concurrency C    connections being set up at once "
        "(default 64)\n"
        "  --connect-timeout S        (default 120)\n"
        "  --warmup-timeout S         (default 60)\n"
        "  --max-time S               hard limit of the whole run (default "
        "900)\n"
        "\n"
        "Output\n"
        "  --json                     JSON lines on stdout "
        "({\"type\":\"step\"} per step,\n"
        "                             one {\"type\":\"summary\"}); the table "
        "goes to stderr\n"
        "  --quiet                    no table\n"
        "  -h, --help, --version\n"
        "\n"
        "Exit status: 0; 1 when a message was lost or duplicated; 2 bad usage; "
        "3 when\n"
        "the run could not be carried out (the reason is printed); 4 when the "
        "server\n"
        "refused the load: the first 429 (a limit of its configuration), or a "
        "503\n"
        "before the first step, ends the run at once with the server's JSON "
        "error.\n");
}

enum {
    OPT_TARGET = 256,
    OPT_URL,
    OPT_LABEL,
    OPT_ROOM,
    OPT_PID,
    OPT_TRANSPORT,
    OPT_USERS,
    OPT_PER_USER,
    OPT_SIZE,
    OPT_RATE,
    OPT_DURATION,
    OPT_RAMP,
    OPT_RAMP_STEP,
    OPT_MAX_RATE,
    OPT_MAX_DELIV,
    OPT_BISECT,
    OPT_RETRIES,
    OPT_SLO,
    OPT_GRACE,
    OPT_DRAIN,
    OPT_INTERVAL,
    OPT_CLOSED,
    OPT_POLL_TIMEOUT,
    OPT_PUB_CONNS,
    OPT_CONC,
    OPT_CONN_TIMEOUT,
    OPT_WARM_TIMEOUT,
    OPT_MAX_TIME,
    OPT_JSON,
    OPT_QUIET,
    OPT_VERSION,
};

static const struct option longopts[] = {
    {"target", required_argument, NULL, OPT_TARGET},
    {"url", required_argument, NULL, OPT_URL},
    {"label", required_argument, NULL, OPT_LABEL},
    {"room", required_argument, NULL, OPT_ROOM},
    {"server-pid", required_argument, NULL, OPT_PID},
    {"transport", required_argument, NULL, OPT_TRANSPORT},
    {"subscribers", required_argument, NULL, 'n'},
    {"users", required_argument, NULL, OPT_USERS},
    {"per-user", required_argument, NULL, OPT_PER_USER},
    {"size", required_argument, NULL, OPT_SIZE},
    {"rate", required_argument, NULL, OPT_RATE},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"ramp", no_argument, NULL, OPT_RAMP},
    {"ramp-step", required_argument, NULL, OPT_RAMP_STEP},
    {"max-rate", required_argument, NULL, OPT_MAX_RATE},
    {"max-deliveries", required_argument, NULL, OPT_MAX_DELIV},
    {"bisect", required_argument, NULL, OPT_BISECT},
    {"retries", required_argument, NULL, OPT_RETRIES},
    {"slo-ms", required_argument, NULL, OPT_SLO},
    {"grace", required_argument, NULL, OPT_GRACE},
    {"drain", required_argument, NULL, OPT_DRAIN},
    {"interval-ms", required_argument, NULL, OPT_INTERVAL},
    {"closed-loop", no_argument, NULL, OPT_CLOSED},
    {"poll-timeout", required_argument, NULL, OPT_POLL_TIMEOUT},
    {"pub-conns", required_argument, NULL, OPT_PUB_CONNS},
    {"connect-concurrency", required_argument, NULL, OPT_CONC},
    {"connect-timeout", required_argument, NULL, OPT_CONN_TIMEOUT},
    {"warmup-timeout", required_argument, NULL, OPT_WARM_TIMEOUT},
    {"max-time", required_argument, NULL, OPT_MAX_TIME},
    {"json", no_argument, NULL, OPT_JSON},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

static int bad(const char *opt, const char *val, const char *range)
{
    fprintf(stderr, "crosstalk-bench: %s %s: %s (see --help)\n", opt, val,
            range);
    return -1;
}

/* A number within [lo, hi]; -1 with a message otherwise. */
static int number(const char *opt, const char *val, double lo, double hi,
                  double *out)
{
    char *end;
    double v = strtod(val, &end);
    char range[96];

    if (end == val || *end != '\0' || v < lo || v > hi) {
        snprintf(range, sizeof(range), "must be a number from %g to %g", lo,
                 hi);
        return bad(opt, val, range);
    }
    *out = v;
    return 0;
}

static int integer(const char *opt, const char *val, int lo, int hi, int *out)
{
    double v;

    if (number(opt, val, lo, hi, &v) != 0)
        return -1;
    if (v != (int)v)
        return bad(opt, val, "must be a whole number");
    *out = (int)v;
    return 0;
}

/* http://127.x.y.z:PORT[/prefix]; only loopback addresses. */
static int parse_url(const char *url, struct bench_opts *o)
{
    const char *p = url, *colon, *slash;
    struct in_addr a;
    size_t hl;
    int port;

    if (strncmp(p, "http://", 7) != 0)
        return bad("--url", url, "must start with http://");
    p += 7;
    colon = strchr(p, ':');
    slash = strchr(p, '/');
    if (colon == NULL || (slash != NULL && slash < colon))
        return bad("--url", url, "must name a port: http://127.0.0.1:PORT");
    hl = (size_t)(colon - p);
    if (hl == 0 || hl >= sizeof(o->host))
        return bad("--url", url, "has no host");
    memcpy(o->host, p, hl);
    o->host[hl] = '\0';
    if (strcmp(o->host, "localhost") == 0)
        strcpy(o->host, "127.0.0.1");
    if (inet_pton(AF_INET, o->host, &a) != 1 || (ntohl(a.s_addr) >> 24) != 127)
        return bad("--url", url,
                   "the host must be a loopback address (127.0.0.0/8): this "
                   "client only loads the local machine");
    port = atoi(colon + 1);
    if (port < 1 || port > 65535)
        return bad("--url", url, "has no valid port");
    o->port = port;
    if (slash != NULL) {
        size_t pl = strlen(slash);
        while (pl > 0 && slash[pl - 1] == '/')
            pl--;
        if (pl >= sizeof(o->prefix))
            return bad("--url", url, "has too long a path prefix");
        memcpy(o->prefix, slash, pl);
        o->prefix[pl] = '\0';
    }
    return 0;
}

static void defaults(struct bench_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->target = TARGET_CROSSTALK;
    o->transport = BT_SSE;
    strcpy(o->host, "127.0.0.1");
    o->port = 8081;
    o->subscribers = 100;
    o->users = 1;
    o->size = 100;
    o->rate = 10;
    o->duration = 10;
    o->ramp_step = 3;
    o->max_rate = 100000;
    o->max_deliveries = 5e6;
    o->bisect = 3;
    o->retries = 1;
    o->slo_ms = 100;
    o->grace = 2;
    o->drain = 10;
    o->interval_ms = 1000;
    o->poll_timeout = 25;
    o->pub_conns = 4;
    o->connect_concurrency = 64;
    o->connect_timeout = 120;
    o->warmup_timeout = 60;
    o->max_time = 900;
}

static int parse_args(int argc, char **argv, struct bench_opts *o)
{
    int c, rc = 0;
    double d;

    while ((c = getopt_long(argc, argv, "hn:", longopts, NULL)) != -1) {
        const char *v = optarg;
        switch (c) {
        case 'h':
            usage(stdout);
            exit(0);
        case OPT_VERSION:
            printf("crosstalk-bench %s\n", PACKAGE_VERSION);
            exit(0);
        case OPT_TARGET:
            if (strcmp(v, "crosstalk") == 0)
                o->target = TARGET_CROSSTALK;
            else if (strcmp(v, "nchan") == 0)
                o->target = TARGET_NCHAN;
            else
                rc = bad("--target", v, "is crosstalk or nchan");
            break;
        case OPT_URL:
            rc = parse_url(v, o);
            break;
        case OPT_LABEL:
            snprintf(o->label, sizeof(o->label), "%s", v);
            break;
        case OPT_ROOM:
            if (!names_room_valid(v, strlen(v)))
                rc = bad("--room", v, "a room name is 1 to 64 of a-z 0-9 _ -");
            else
                snprintf(o->room, sizeof(o->room), "%s", v);
            break;
        case OPT_PID:
            if (o->npids == BENCH_MAX_PIDS)
                rc = bad("--server-pid", v, "at most 4 of them");
            else
                rc = integer("--server-pid", v, 1, 1 << 30,
                             &o->pids[o->npids++]);
            break;
        case OPT_TRANSPORT:
            if (strcmp(v, "sse") == 0)
                o->transport = BT_SSE;
            else if (strcmp(v, "ws") == 0 || strcmp(v, "websocket") == 0)
                o->transport = BT_WS;
            else if (strcmp(v, "longpoll") == 0 || strcmp(v, "lp") == 0)
                o->transport = BT_LONG_POLL;
            else if (strcmp(v, "shortpoll") == 0 || strcmp(v, "sp") == 0)
                o->transport = BT_SHORT_POLL;
            else
                rc = bad("--transport", v, "is sse, ws, longpoll or shortpoll");
            break;
        case 'n':
            rc = integer("--subscribers", v, 1, 1000000, &o->subscribers);
            break;
        case OPT_USERS:
            rc = integer("--users", v, 1, 1000000, &o->users);
            break;
        case OPT_PER_USER:
            rc = integer("--per-user", v, 1, 1000000, &o->per_user);
            break;
        case OPT_SIZE:
            rc = integer("--size", v, 24, 1048576, &o->size);
            break;
        case OPT_RATE:
            rc = number("--rate", v, 0.01, 1e6, &o->rate);
            break;
        case OPT_DURATION:
            rc = number("--duration", v, 0.1, 3600, &o->duration);
            break;
        case OPT_RAMP:
            o->ramp = true;
            break;
        case OPT_RAMP_STEP:
            rc = number("--ramp-step", v, 0.1, 600, &o->ramp_step);
            break;
        case OPT_MAX_RATE:
            rc = number("--max-rate", v, 0.01, 1e6, &o->max_rate);
            break;
        case OPT_MAX_DELIV:
            rc = number("--max-deliveries", v, 1, 1e9, &o->max_deliveries);
            break;
        case OPT_BISECT:
            rc = integer("--bisect", v, 0, 10, &o->bisect);
            break;
        case OPT_RETRIES:
            rc = integer("--retries", v, 0, 5, &o->retries);
            break;
        case OPT_SLO:
            rc = number("--slo-ms", v, 0.001, 1e6, &o->slo_ms);
            break;
        case OPT_GRACE:
            rc = number("--grace", v, 0.01, 600, &o->grace);
            break;
        case OPT_DRAIN:
            rc = number("--drain", v, 0, 600, &o->drain);
            break;
        case OPT_INTERVAL:
            rc = integer("--interval-ms", v, 1, 3600000, &o->interval_ms);
            break;
        case OPT_CLOSED:
            o->closed_loop = true;
            break;
        case OPT_POLL_TIMEOUT:
            rc = integer("--poll-timeout", v, 1, 600, &o->poll_timeout);
            break;
        case OPT_PUB_CONNS:
            rc = integer("--pub-conns", v, 1, 256, &o->pub_conns);
            break;
        case OPT_CONC:
            rc = integer("--connect-concurrency", v, 1, 100000,
                         &o->connect_concurrency);
            break;
        case OPT_CONN_TIMEOUT:
            rc = number("--connect-timeout", v, 0.1, 3600, &d);
            o->connect_timeout = d;
            break;
        case OPT_WARM_TIMEOUT:
            rc = number("--warmup-timeout", v, 0.1, 3600, &d);
            o->warmup_timeout = d;
            break;
        case OPT_MAX_TIME:
            rc = number("--max-time", v, 1, 86400, &o->max_time);
            break;
        case OPT_JSON:
            o->json = true;
            break;
        case OPT_QUIET:
            o->quiet = true;
            break;
        default:
            return -1;
        }
        if (rc != 0)
            return -1;
    }
    if (optind < argc) {
        fprintf(stderr,
                "crosstalk-bench: unexpected argument %s (see --help)\n",
                argv[optind]);
        return -1;
    }
    if (o->closed_loop && o->transport != BT_SHORT_POLL) {
        fprintf(stderr, "crosstalk-bench: --closed-loop is for --transport "
                        "shortpoll\n");
        return -1;
    }
    if (o->per_user > 0 &&
        o->users < (o->subscribers + o->per_user - 1) / o->per_user)
        o->users = (o->subscribers + o->per_user - 1) / o->per_user;
    if (o->users > o->subscribers)
        o->users = o->subscribers;
    return 0;
}

/* Raises the soft limit of open files to what N connections need. */
static int raise_nofile(int need)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            return -1;
    }
    if ((rlim_t)need > rl.rlim_cur) {
        fprintf(stderr,
                "crosstalk-bench: %d connections need %d open files; the "
                "limit is %llu (ulimit -Hn)\n",
                need - 64, need, (unsigned long long)rl.rlim_cur);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct event_config *cfg;

    defaults(&R.o);
    if (parse_args(argc, argv, &R.o) != 0)
        return 2;
    srandom((unsigned)time(NULL) ^ ((unsigned)getpid() << 16));
    if (R.o.room[0] == '\0')
        snprintf(R.o.room, sizeof(R.o.room), "bench-%08lx",
                 (unsigned long)(random() & 0xffffffffUL));
    if (raise_nofile(R.o.subscribers + R.o.pub_conns + 64) != 0)
        return 3;
    signal(SIGPIPE, SIG_IGN);

    R.addr.sin_family = AF_INET;
    R.addr.sin_port = htons((uint16_t)R.o.port);
    inet_pton(AF_INET, R.o.host, &R.addr.sin_addr);
    snprintf(R.hosthdr, sizeof(R.hosthdr), "%s:%d", R.o.host, R.o.port);

    cfg = event_config_new();
    event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
    R.base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (R.base == NULL) {
        fprintf(stderr, "crosstalk-bench: cannot create an event base\n");
        return 3;
    }
    {
        int rc = run_main();
        event_base_free(R.base);
        return rc;
    }
}
