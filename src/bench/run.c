/* run.c - the phases of a benchmark run: register, connect, warm up, the
 * publishing steps (fixed rate, or a ramp that doubles until a step fails
 * and then bisects), drain; and the accounting of every delivery */
#include "run.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/event.h>

#include "bench.h"
#include "conn.h"
#include "pub.h"
#include "report.h"
#include "sub.h"
#include "xmalloc.h"

#define REG_CONNS 8
#define TICK_US 1000   /* publishing timer */
#define CHECK_US 10000 /* grace, drain and warm-up checks */
#define WARM_EVERY_MS 100
#define WARM_SETTLE_NS 200000000
#define STEP_LEAD_NS 20000000 /* a step starts this long after it is set */

struct run R;

enum phase {
    PH_REGISTER,
    PH_CONNECT,
    PH_SETTLE,
    PH_WARMUP,
    PH_STEP,   /* publishing */
    PH_GRACE,  /* waiting for the step's deliveries */
    PH_DRAIN,  /* waiting for a backlog to clear */
    PH_CLOSED, /* closed-loop polling */
    PH_DONE,
};

static enum phase phase;
static struct sub **subs;
static int started, pending_ready, failed_ready;
static struct event *tick, *check, *deadline;
static uint64_t phase_t0;
static uint64_t warm_next, warm_done;
static double bis_lo, bis_hi, drain_next;
static int bisect_left, retries_left;
static bool bisecting;
static struct rusage ru0;
static double srv0;
static uint64_t closed_req0, closed_t0;

/* registration */
struct reg {
    struct conn *c;
    int next;
};
static struct reg regs[REG_CONNS];
static int reg_issued, reg_done;
static char run_tag[12];

static void phase_connect(void);
static void phase_settle(void);
static void phase_warmup(void);
static void step_begin(double rate, double seconds);
static void finish(void);

/* --- helpers --- */

static void set_timer(struct event *ev, uint64_t us)
{
    struct timeval tv = {(time_t)(us / 1000000), (suseconds_t)(us % 1000000)};
    evtimer_add(ev, &tv);
}

long run_rss_kb(int pid)
{
    char path[64], line[256];
    long kb = -1;
    FILE *f;

    if (pid <= 0)
        return -1;
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = atol(line + 6);
    fclose(f);
    return kb;
}

/* The 1-minute load average: the machine may be shared. */
static double loadavg(void)
{
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");

    if (f != NULL) {
        if (fscanf(f, "%lf", &l) != 1)
            l = -1;
        fclose(f);
    }
    return l;
}

/* CPU seconds of one process from /proc/PID/stat: utime + stime, in clock
 * ticks (10 ms here), too coarse for a short run of a frugal server. */
static double stat_cpu(int pid)
{
    char path[64], buf[1024], *p;
    unsigned long ut = 0, st = 0;
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    if ((f = fopen(path, "r")) == NULL)
        return 0;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    if ((p = strrchr(buf, ')')) == NULL)
        return 0;
    /* after ") ": state is field 3; utime and stime are 14 and 15 */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
               &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* CPU seconds of one process, to the nanosecond: the first field of each
 * of its threads' /proc/PID/task/TID/schedstat is the time it has run.
 * -1 when the kernel keeps no schedstat. */
static double schedstat_cpu(int pid)
{
    char path[64];
    struct dirent *d;
    double sum = 0;
    bool any = false;
    DIR *dir;

    snprintf(path, sizeof(path), "/proc/%d/task", pid);
    if ((dir = opendir(path)) == NULL)
        return -1;
    while ((d = readdir(dir)) != NULL) {
        char tpath[400];
        unsigned long long ns;
        FILE *f;

        if (d->d_name[0] == '.')
            continue;
        snprintf(tpath, sizeof(tpath), "%s/%s/schedstat", path, d->d_name);
        if ((f = fopen(tpath, "r")) == NULL)
            continue;
        if (fscanf(f, "%llu", &ns) == 1) {
            sum += (double)ns / 1e9;
            any = true;
        }
        fclose(f);
    }
    closedir(dir);
    return any ? sum : -1;
}

/* CPU seconds (user + system) of every --server-pid. */
static double server_cpu(void)
{
    double sum = 0;

    for (int i = 0; i < R.o.npids; i++) {
        double s = schedstat_cpu(R.o.pids[i]);

        sum += s >= 0 ? s : stat_cpu(R.o.pids[i]);
    }
    return sum;
}

static double client_cpu(const struct rusage *a, const struct rusage *b)
{
    double ua = a->ru_utime.tv_sec + a->ru_utime.tv_usec / 1e6 +
                a->ru_stime.tv_sec + a->ru_stime.tv_usec / 1e6;
    double ub = b->ru_utime.tv_sec + b->ru_utime.tv_usec / 1e6 +
                b->ru_stime.tv_sec + b->ru_stime.tv_usec / 1e6;
    return ub - ua;
}

void run_fail(const char *why)
{
    if (R.fatal == NULL) {
        R.fatal = why;
        fprintf(stderr, "crosstalk-bench: %s\n", why);
    }
    finish();
}

bool run_refused(const char *what, int status, const char *body, size_t blen,
                 const char *hint)
{
    static char why[640];
    size_t n = blen;

    if (status != 429 && !(status == 503 && R.cur < 0))
        return false;
    while (n > 0 && (body[n - 1] == '\n' || body[n - 1] == '\r'))
        n--;
    if (R.fatal == NULL) {
        snprintf(why, sizeof(why), "%s was answered %d %.*s%s%s", what, status,
                 (int)(n > 400 ? 400 : n), n ? body : "(no body)",
                 hint ? " " : "", hint ? hint : "");
        R.refused = true;
    }
    run_fail(why);
    return true;
}

size_t bench_text(char *buf, int size, bool warm, uint64_t seq)
{
    int n = snprintf(buf, (size_t)size + 1, "#ct%c:%llu;", warm ? 'w' : 'b',
                     (unsigned long long)seq);

    if (n < size)
        memset(buf + n, 'x', (size_t)(size - n));
    buf[size > n ? size : n] = '\0';
    return (size_t)(size > n ? size : n);
}

size_t bench_scan(const char *data, size_t len,
                  void (*fn)(void *arg, bool warm, uint64_t seq), void *arg)
{
    const char *p = data, *end = data + len;
    size_t found = 0;

    while (p + 5 < end) {
        const char *m = memmem(p, (size_t)(end - p), "#ct", 3);
        uint64_t seq = 0;
        const char *d;

        if (m == NULL || m + 5 >= end)
            break;
        p = m + 3;
        if ((m[3] != 'b' && m[3] != 'w') || m[4] != ':')
            continue;
        for (d = m + 5; d < end && *d >= '0' && *d <= '9'; d++)
            seq = seq * 10 + (uint64_t)(*d - '0');
        if (d == m + 5 || d >= end || *d != ';')
            continue;
        fn(arg, m[3] == 'w', seq);
        found++;
        p = d + 1;
    }
    return found;
}

/* --- accounting --- */

void run_delivered(uint64_t seq, uint64_t t, bool first)
{
    struct step *st = &R.steps[R.step_of[seq]];
    uint64_t lat = t > R.sched[seq] ? t - R.sched[seq] : 0;

    R.deliveries++;
    st->delivered++;
    st->t_last = t;
    hist_record(st->lat, lat);
    if (++R.got[seq] == (uint32_t)R.o.subscribers) {
        st->complete++;
        hist_record(st->fanout, lat);
    }
}

static uint64_t new_seq(uint64_t sched, int step)
{
    if (R.nseq == R.seq_cap) {
        R.seq_cap = R.seq_cap ? R.seq_cap * 2 : 4096;
        R.sched = xrealloc(R.sched, R.seq_cap * sizeof(*R.sched));
        R.got = xrealloc(R.got, R.seq_cap * sizeof(*R.got));
        R.step_of = xrealloc(R.step_of, R.seq_cap * sizeof(*R.step_of));
    }
    R.sched[R.nseq] = sched;
    R.got[R.nseq] = 0;
    R.step_of[R.nseq] = (uint8_t)step;
    return R.nseq++;
}

/* Deliveries still owed for every message acknowledged so far. */
static uint64_t owed(void)
{
    uint64_t want = R.pub_acked * (uint64_t)R.o.subscribers;
    uint64_t have = 0;

    for (int i = 0; i <= R.cur && i < R.nsteps; i++)
        have += R.steps[i].delivered;
    return want > have ? want - have : 0;
}

/* --- registration (crosstalk) --- */

static void reg_send(struct reg *g);

static void reg_response(struct conn *c, int status, const char *head,
                         size_t hlen, const char *body, size_t blen)
{
    struct reg *g = conn_arg(c);
    const char *k = blen ? memmem(body, blen, "\"token\":\"", 9) : NULL;
    const char *q =
        k ? memchr(k + 9, '"', (size_t)(body + blen - k - 9)) : NULL;
    char *token;

    if (status != 201 || q == NULL) {
        static char why[256];
        if (run_refused("registering a user", status, body, blen,
                        "(the server's limit per IP, rate_register_per_min: "
                        "fewer users, or a higher --rate-register-per-min)"))
            return;
        snprintf(why, sizeof(why), "registering a user was answered %d %.*s",
                 status, (int)(blen > 150 ? 150 : blen), body ? body : "");
        run_fail(why);
        return;
    }
    token = xstrndup(k + 9, (size_t)(q - k - 9));
    if (g->next == R.o.users)
        R.pub_token = token;
    else
        R.tokens[g->next] = token;
    reg_done++;
    if (reg_done == R.o.users + 1) {
        for (int i = 0; i < REG_CONNS; i++) {
            conn_close(regs[i].c);
            regs[i].c = NULL;
        }
        phase_connect();
        return;
    }
    reg_send(g);
}

static void reg_closed(struct conn *c, const char *why)
{
    static char msg[256];

    snprintf(msg, sizeof(msg), "registering users: %s", why);
    ((struct reg *)conn_arg(c))->c = NULL;
    run_fail(msg);
}

static const struct conn_ops reg_ops = {
    .response = reg_response,
    .closed = reg_closed,
};

static void reg_send(struct reg *g)
{
    char req[512], body[96];
    int n, bl;

    if (reg_issued > R.o.users)
        return;
    g->next = reg_issued++;
    bl = g->next == R.o.users
             ? snprintf(body, sizeof(body), "{\"name\":\"b%s_pub\"}", run_tag)
             : snprintf(body, sizeof(body), "{\"name\":\"b%s_%d\"}", run_tag,
                        g->next);
    n = snprintf(req, sizeof(req),
                 "POST %s/api/register HTTP/1.1\r\nHost: %s\r\n"
                 "Content-Type: application/json\r\nContent-Length: %d\r\n"
                 "\r\n%s",
                 R.o.prefix, R.hosthdr, bl, body);
    conn_request(g->c, req, (size_t)n, CONN_WHOLE);
}

static void phase_register(void)
{
    phase = PH_REGISTER;
    snprintf(run_tag, sizeof(run_tag), "%08lx",
             (unsigned long)(random() & 0xffffffffUL));
    R.tokens = xcalloc((size_t)R.o.users, sizeof(*R.tokens));
    for (int i = 0; i < REG_CONNS; i++) {
        regs[i].c = conn_new(R.base, &R.addr, &reg_ops, &regs[i], &R.reg_io);
        reg_send(&regs[i]);
    }
}

/* --- connecting the subscribers --- */

static void start_more(void);

static void sub_ready(struct sub *s, bool ok)
{
    pending_ready--;
    if (!ok)
        failed_ready++;
    else
        R.connected++;
    if (phase != PH_CONNECT)
        return;
    if (failed_ready > 0) {
        run_fail("a subscriber could not subscribe (see above)");
        return;
    }
    start_more();
}

static void start_more(void)
{
    while (started < R.o.subscribers &&
           pending_ready < R.o.connect_concurrency) {
        pending_ready++;
        sub_start(subs[started++], sub_ready);
    }
    if (R.connected == R.o.subscribers) {
        R.connect_seconds = (double)(now_ns() - phase_t0) / 1e9;
        phase_settle();
    }
}

static void phase_connect(void)
{
    phase = PH_CONNECT;
    R.rss_before = run_rss_kb(R.o.npids ? R.o.pids[0] : 0);
    subs = xcalloc((size_t)R.o.subscribers, sizeof(*subs));
    for (int i = 0; i < R.o.subscribers; i++)
        subs[i] = sub_new(i);
    R.warm_needed = (uint64_t)R.o.subscribers;
    phase_t0 = now_ns();
    set_timer(check, CHECK_US);
    start_more();
}

static void phase_settle(void)
{
    phase = PH_SETTLE;
    phase_t0 = now_ns();
    if (!R.o.quiet)
        fprintf(stderr, "crosstalk-bench: %d subscribers connected in %.2f s\n",
                R.connected, R.connect_seconds);
}

/* --- the steps --- */

static void step_snapshot(struct step *st, bool end)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    if (!end) {
        ru0 = ru;
        srv0 = server_cpu();
        st->bytes0 = R.sub_io.bytes_in;
        st->req0 = R.sub_io.requests;
    } else {
        double secs = (double)(now_ns() - st->t0) / 1e9;
        st->bytes1 = R.sub_io.bytes_in;
        st->req1 = R.sub_io.requests;
        st->elapsed = secs;
        st->cpu_client = secs > 0 ? client_cpu(&ru0, &ru) / secs : 0;
        st->cpu_server =
            secs > 0 && R.o.npids ? (server_cpu() - srv0) / secs : -1;
    }
}

static void step_begin(double rate, double seconds)
{
    struct step *st;

    if (R.nsteps == BENCH_MAX_STEPS) {
        finish();
        return;
    }
    R.cur = R.nsteps++;
    st = &R.steps[R.cur];
    memset(st, 0, sizeof(*st));
    st->rate = rate;
    st->retry = R.cur > 0 && R.steps[R.cur - 1].done &&
                !R.steps[R.cur - 1].pass && R.steps[R.cur - 1].rate == rate;
    st->t0 = now_ns() + STEP_LEAD_NS;
    st->t1 = st->t0 + (uint64_t)(seconds * 1e9);
    st->seq0 = st->seq1 = R.nseq;
    st->lat = hist_new();
    st->fanout = hist_new();
    step_snapshot(st, false);
    phase = PH_STEP;
    set_timer(tick, TICK_US);
}

/* Sends every message of the step that is due. */
static void publish_due(void)
{
    struct step *st = &R.steps[R.cur];
    uint64_t now = now_ns();

    for (;;) {
        uint64_t i = R.nseq - st->seq0;
        uint64_t at = st->t0 + (uint64_t)((double)i * 1e9 / st->rate);
        if (at >= st->t1 || at > now)
            break;
        pub_send(false, new_seq(at, R.cur));
    }
    st->seq1 = R.nseq;
}

/* After a failed step: clear the backlog, then run `rate`. */
static void drain_then(double rate)
{
    drain_next = rate;
    phase = PH_DRAIN;
    phase_t0 = now_ns();
}

static void next_step(void)
{
    struct step *st = &R.steps[R.cur];

    if (!R.o.ramp) {
        finish();
        return;
    }
    /* one stall on a busy machine should not end a ramp: a failed step is
     * run again, and only a second failure at that rate counts */
    if (!st->pass && retries_left > 0) {
        retries_left--;
        drain_then(st->rate);
        return;
    }
    retries_left = R.o.retries;
    if (!bisecting) {
        if (st->pass) {
            double next = st->rate * 2;
            if (next > R.o.max_rate ||
                next * R.o.subscribers > R.o.max_deliveries) {
                finish();
                return;
            }
            step_begin(next, R.o.ramp_step);
            return;
        }
        if (R.o.bisect == 0) {
            finish();
            return;
        }
        bisecting = true;
        bisect_left = R.o.bisect;
        /* the first step failing: look below it */
        bis_lo = R.cur == 0 ? st->rate / 16 : st->rate / 2;
        bis_hi = st->rate;
    } else {
        if (st->pass)
            bis_lo = st->rate;
        else
            bis_hi = st->rate;
        if (--bisect_left == 0) {
            finish();
            return;
        }
    }
    if (st->pass)
        step_begin(sqrt(bis_lo * bis_hi), R.o.ramp_step);
    else
        drain_then(sqrt(bis_lo * bis_hi));
}

static void evaluate(void)
{
    struct step *st = &R.steps[R.cur];
    uint64_t count = st->seq1 - st->seq0;
    uint64_t want = st->acked * (uint64_t)R.o.subscribers;
    double slo =
        R.o.slo_ms + (R.o.transport == BT_SHORT_POLL ? R.o.interval_ms : 0);

    step_snapshot(st, true);
    st->done = true;
    st->pass = true;
    st->snap_delivered = st->delivered;
    st->p50 = hist_percentile(st->lat, 50);
    st->p99 = hist_percentile(st->lat, 99);
    st->p999 = hist_percentile(st->lat, 99.9);
    st->max = hist_max(st->lat);
    st->f50 = hist_percentile(st->fanout, 50);
    st->f99 = hist_percentile(st->fanout, 99);
    st->fmax = hist_max(st->fanout);
    if (st->pub_errors > 0) {
        st->pass = false;
        st->why = "publish errors";
    } else if (st->acked < count) {
        st->pass = false;
        st->why = "publishes not answered in time";
    } else if (st->delivered < want) {
        st->pass = false;
        st->why = "deliveries not complete in time";
    } else if ((double)st->p99 / 1e6 > slo) {
        st->pass = false;
        st->why = "p99 above the SLO";
    }
    report_step(st, R.cur);
    next_step();
}

/* --- timers --- */

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct step *st;

    if (phase != PH_STEP)
        return;
    st = &R.steps[R.cur];
    publish_due();
    if (now_ns() >= st->t1) {
        st->seq1 = R.nseq;
        phase = PH_GRACE;
        phase_t0 = now_ns();
        return;
    }
    set_timer(tick, TICK_US);
}

static void phase_warmup(void)
{
    phase = PH_WARMUP;
    phase_t0 = now_ns();
    warm_next = 0;
    pub_start();
}

static void closed_begin(void)
{
    phase = PH_CLOSED;
    phase_t0 = now_ns();
    closed_req0 = R.closed_responses;
    closed_t0 = phase_t0;
    getrusage(RUSAGE_SELF, &ru0);
    srv0 = server_cpu();
}

static void on_check(evutil_socket_t fd, short what, void *arg)
{
    uint64_t now = now_ns();
    double in_phase = (double)(now - phase_t0) / 1e9;

    switch (phase) {
    case PH_REGISTER:
    case PH_DONE:
        return;
    case PH_CONNECT:
        if (in_phase > R.o.connect_timeout) {
            static char why[160];
            snprintf(why, sizeof(why),
                     "only %d of %d subscribers connected within %.0f s",
                     R.connected, R.o.subscribers, R.o.connect_timeout);
            run_fail(why);
            return;
        }
        break;
    case PH_SETTLE:
        if (in_phase >= 1.0) {
            R.rss_idle = run_rss_kb(R.o.npids ? R.o.pids[0] : 0);
            R.connect_bytes = R.sub_io.bytes_in;
            if (R.o.closed_loop)
                closed_begin();
            else
                phase_warmup();
        }
        break;
    case PH_WARMUP:
        if (R.warm_needed == 0) {
            /* long polls answered by the warm-up must be back in place */
            if (warm_done == 0)
                warm_done = now;
            if (now - warm_done >= WARM_SETTLE_NS && pub_inflight() == 0 &&
                pub_backlog() == 0) {
                step_begin(R.o.rate, R.o.ramp ? R.o.ramp_step : R.o.duration);
            }
        } else if (in_phase > R.o.warmup_timeout) {
            static char why[160];
            snprintf(why, sizeof(why),
                     "%llu of %d subscribers got no warm-up message within "
                     "%.0f s",
                     (unsigned long long)R.warm_needed, R.o.subscribers,
                     R.o.warmup_timeout);
            run_fail(why);
            return;
        } else if ((now - phase_t0) / 1000000 >= warm_next * WARM_EVERY_MS) {
            pub_send(true, warm_next++);
        }
        break;
    case PH_STEP:
        break;
    case PH_GRACE: {
        struct step *st = &R.steps[R.cur];
        uint64_t count = st->seq1 - st->seq0;
        bool all = st->acked + st->pub_errors == count &&
                   st->delivered >= st->acked * (uint64_t)R.o.subscribers;
        if (all || in_phase >= R.o.grace)
            evaluate();
        break;
    }
    case PH_DRAIN:
        if ((owed() == 0 && pub_backlog() == 0 && pub_inflight() == 0) ||
            in_phase >= R.o.drain) {
            if (owed() > 0 && !R.o.quiet)
                fprintf(stderr,
                        "crosstalk-bench: %llu deliveries still owed "
                        "after %.0f s of drain\n",
                        (unsigned long long)owed(), in_phase);
            if (owed() > 0) {
                finish();
                return;
            }
            step_begin(drain_next, R.o.ramp_step);
        }
        break;
    case PH_CLOSED:
        if (in_phase >= R.o.duration) {
            struct rusage ru;
            getrusage(RUSAGE_SELF, &ru);
            R.closed_rps =
                (double)(R.closed_responses - closed_req0) / in_phase;
            R.closed_cpu_client = client_cpu(&ru0, &ru) / in_phase;
            R.closed_cpu_server =
                R.o.npids ? (server_cpu() - srv0) / in_phase : -1;
            (void)closed_t0;
            finish();
            return;
        }
        break;
    }
    if (phase != PH_DONE)
        set_timer(check, CHECK_US);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    run_fail("the run's time limit (--max-time) was reached");
}

/* --- the end --- */

static void final_drain(void);

static void finish(void)
{
    if (phase == PH_DONE)
        return;
    phase = PH_DONE;
    final_drain();
}

static struct event *drain_ev;
static uint64_t drain_t0, drain_progress_t, drain_seen;

#define DRAIN_STALL_NS 5000000000ull /* no delivery for this long: give up */

static void on_final_drain(evutil_socket_t fd, short what, void *arg)
{
    uint64_t now = now_ns();
    double waited = (double)(now - drain_t0) / 1e9;

    if (R.deliveries != drain_seen) {
        drain_seen = R.deliveries;
        drain_progress_t = now;
    }
    if (R.fatal == NULL && (owed() > 0 || pub_inflight() > 0) &&
        waited < R.o.drain && now - drain_progress_t < DRAIN_STALL_NS) {
        set_timer(drain_ev, CHECK_US);
        return;
    }
    R.undelivered = owed();
    sub_stop_all();
    R.rss_end = run_rss_kb(R.o.npids ? R.o.pids[0] : 0);
    event_base_loopbreak(R.base);
}

static void final_drain(void)
{
    if (phase_t0 == 0 && R.fatal != NULL) {
        event_base_loopbreak(R.base);
        return;
    }
    drain_t0 = drain_progress_t = now_ns();
    drain_seen = R.deliveries;
    drain_ev = evtimer_new(R.base, on_final_drain, NULL);
    set_timer(drain_ev, CHECK_US);
}

int run_main(void)
{
    struct timeval limit = {(time_t)R.o.max_time, 0};
    uint64_t lost = 0;

    R.cur = -1;
    retries_left = R.o.retries;
    R.connect = hist_new();
    R.rtt = hist_new();
    R.pub_rtt = hist_new();
    R.rss_before = R.rss_idle = R.rss_end = -1;
    R.t_start = now_ns();
    R.load0 = loadavg();
    tick = evtimer_new(R.base, on_tick, NULL);
    check = evtimer_new(R.base, on_check, NULL);
    deadline = evtimer_new(R.base, on_deadline, NULL);
    evtimer_add(deadline, &limit);
    phase_t0 = 0;

    if (R.o.target == TARGET_CROSSTALK)
        phase_register();
    else
        phase_connect();
    event_base_dispatch(R.base);

    if (subs != NULL) {
        for (int i = 0; i < R.o.subscribers; i++) {
            uint64_t u = subs[i] ? sub_unique(subs[i]) : 0;
            if (R.pub_acked > u)
                lost += R.pub_acked - u;
        }
    }
    if (R.o.closed_loop)
        lost = 0;
    R.lost = lost;
    R.load1 = loadavg();
    report_summary();

    for (int i = 0; subs != NULL && i < R.o.subscribers; i++)
        sub_free(subs[i]);
    free(subs);
    pub_stop();
    for (int i = 0; i < REG_CONNS; i++)
        conn_close(regs[i].c);
    if (drain_ev)
        event_free(drain_ev);
    event_free(tick);
    event_free(check);
    event_free(deadline);
    if (R.refused)
        return 4;
    if (R.fatal != NULL)
        return 3;
    return (R.lost > 0 || R.dups > 0 || R.unknown > 0) ? 1 : 0;
}
