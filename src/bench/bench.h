/* bench.h - crosstalk-bench: what the modules of the load and latency
 * client share (options, the run's tables, step results) */
#ifndef CT_BENCH_BENCH_H
#define CT_BENCH_BENCH_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "hist.h"

#define BENCH_MAX_STEPS 32
#define BENCH_MAX_PIDS 4

enum target { TARGET_CROSSTALK, TARGET_NCHAN };
enum bench_transport { BT_SHORT_POLL, BT_LONG_POLL, BT_SSE, BT_WS };

struct bench_opts {
    enum target target;
    enum bench_transport transport;
    char host[64]; /* numeric, in 127.0.0.0/8 */
    int port;
    char prefix[64]; /* path prefix, e.g. "/d" through nginx */
    char room[65];
    char label[64];  /* names the target in the output */
    int subscribers; /* N */
    int users;       /* distinct crosstalk users among them */
    int per_user;    /* at most this many subscribers per user token */
    int size;        /* bytes of message text */
    double rate;     /* messages/s (first step when ramping) */
    double duration; /* seconds of the one step (fixed rate) */
    bool ramp;
    double ramp_step;      /* seconds per ramp step */
    double max_rate;       /* messages/s the ramp stops at */
    double max_deliveries; /* deliveries/s the ramp stops at */
    int bisect;            /* bisection steps after the first failure */
    int retries;           /* runs of a failed step at the same rate */
    double slo_ms;         /* p99 a step must stay under to pass */
    double grace;          /* seconds after a step for its deliveries */
    double drain;          /* seconds to wait for a backlog to clear */
    int interval_ms;       /* short poll period */
    bool closed_loop;      /* short poll: back to back, no publishing */
    int poll_timeout;      /* long poll timeout asked for, seconds */
    int connect_concurrency;
    double connect_timeout;
    double warmup_timeout;
    int pub_conns;
    double max_time;          /* hard limit of the whole run, seconds */
    int pids[BENCH_MAX_PIDS]; /* --server-pid: the first is measured for
                                 RSS, all for CPU */
    int npids;
    bool json;
    bool quiet;
};

/* One step of the run: a fixed publishing rate for a while. */
struct step {
    double rate;
    uint64_t t0, t1;     /* scheduled window, monotonic ns */
    uint64_t seq0, seq1; /* its messages: [seq0, seq1) */
    uint64_t acked, pub_errors;
    uint64_t delivered; /* first deliveries of its messages */
    uint64_t dups;
    uint64_t complete;             /* messages every subscriber got */
    struct hist *lat;              /* latency of every delivery */
    struct hist *fanout;           /* per message: until the last got it */
    uint64_t bytes0, bytes1;       /* subscriber bytes in, at start and end */
    uint64_t req0, req1;           /* subscriber requests */
    double cpu_client, cpu_server; /* fraction of one core over the step */
    double elapsed;                /* seconds from start to evaluation */
    uint64_t t_last;               /* the last delivery of its messages */
    /* at evaluation (later arrivals are not in these) */
    uint64_t snap_delivered;
    uint64_t p50, p99, p999, max, f50, f99, fmax; /* ns */
    bool done, pass;
    bool retry;      /* the same rate again, after a failure */
    const char *why; /* why it failed */
};

struct run {
    struct bench_opts o;
    struct event_base *base;
    struct sockaddr_in addr;
    char hosthdr[80];
    char **tokens; /* crosstalk: one per user */
    char *pub_token;
    uint64_t t_start;

    /* per message (measured ones), indexed by sequence number */
    uint64_t *sched; /* scheduled send time */
    uint32_t *got;   /* subscribers that have it */
    uint8_t *step_of;
    size_t nseq, seq_cap;

    struct step steps[BENCH_MAX_STEPS];
    int nsteps;
    int cur; /* step being published or evaluated; -1 */

    struct conn_totals sub_io, pub_io, reg_io;

    /* subscriber-wide */
    uint64_t deliveries, dups, reordered, late, unknown;
    uint64_t warm_needed; /* subscribers without a warm-up message */
    uint64_t sub_requests, sub_errors, reconnects;
    struct hist *connect; /* connect time per subscriber */
    struct hist *rtt;     /* closed loop: request round trips */
    uint64_t closed_responses;
    struct hist *pub_rtt;
    uint64_t pub_acked, pub_errors, pub_sent, warm_sent;
    long rss_before, rss_idle, rss_end; /* kB, -1 unknown */
    double connect_seconds;
    uint64_t connect_bytes; /* received by subscribers until idle */
    int connected;
    uint64_t lost;        /* measured messages a subscriber never got */
    uint64_t undelivered; /* deliveries owed when the final drain
                             ended: when not 0, `lost` may still have
                             been on its way */
    double closed_rps, closed_cpu_client, closed_cpu_server;
    double load0, load1; /* 1-minute load average at start and end */
    const char *fatal;   /* why the run stopped early */
    bool refused;        /* ... because the server refused the load */
};

extern struct run R;

/* A measured message (seq) or a warm-up one reached a subscriber at t. */
void run_delivered(uint64_t seq, uint64_t t, bool first);
/* main.c's loop bound: stops everything with a message. */
void run_fail(const char *why);
/* The server's answer `status` to `what` (e.g. "subscriber 3's poll"):
 * a 429 (a limit of its configuration, whenever it comes) or a 503 before
 * the first step (it cannot take the load being set up) stops the run at
 * once, exit status 4, with the server's JSON error and `hint` (may be
 * NULL). Returns true when it did; false for any other answer. */
bool run_refused(const char *what, int status, const char *body, size_t blen,
                 const char *hint);

/* The text of message seq (or warm-up message n) into buf (size+1
 * bytes): the marker, then padding to exactly `size` bytes. */
size_t bench_text(char *buf, int size, bool warm, uint64_t seq);

/* Scans data for markers and calls fn for each: warm is true for warm-up
 * messages. Returns how many it found. */
size_t bench_scan(const char *data, size_t len,
                  void (*fn)(void *arg, bool warm, uint64_t seq), void *arg);

#endif
