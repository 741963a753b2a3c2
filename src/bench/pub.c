/* pub.c - the benchmark's publisher (see pub.h) */
#include "pub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "bench.h"
#include "conn.h"
#include "xmalloc.h"

struct item {
    uint64_t seq;
    bool warm;
};

struct pubconn {
    int idx;
    struct conn *c;
    bool busy;
    struct item it;
    uint64_t sent;
};

static struct pubconn *conns;
static int nconns;
static struct item *queue; /* a ring */
static size_t qcap, qhead, qlen;
static size_t inflight;
static char *text, *req;
static size_t req_cap;
static bool stopping;
static unsigned told;

static void dispatch(void);
static void open_conn(struct pubconn *p);

static void tell(const char *fmt, const char *what)
{
    if (told++ < 5) {
        fprintf(stderr, "crosstalk-bench: publisher: ");
        fprintf(stderr, fmt, what);
        fputc('\n', stderr);
    }
}

static void answered(struct pubconn *p, bool ok)
{
    p->busy = false;
    inflight--;
    if (p->it.warm)
        return;
    if (ok) {
        R.pub_acked++;
        R.steps[R.step_of[p->it.seq]].acked++;
        hist_record(R.pub_rtt, now_ns() - p->sent);
    } else {
        R.pub_errors++;
        R.steps[R.step_of[p->it.seq]].pub_errors++;
    }
}

static void on_response(struct conn *c, int status, const char *head,
                        size_t hlen, const char *body, size_t blen)
{
    struct pubconn *p = conn_arg(c);

    if (status / 100 != 2 &&
        run_refused(p->it.warm ? "a warm-up publish" : "a publish", status,
                    body, blen,
                    status == 429 ? "(the server's rate_send_per_sec per "
                                    "token: a lower --rate)"
                                  : NULL)) {
        answered(p, false);
        return;
    }
    if (status / 100 != 2) {
        char what[200];
        snprintf(what, sizeof(what), "%d %.*s", status,
                 (int)(blen > 120 ? 120 : blen), body ? body : "");
        tell("a publish was answered %s", what);
    }
    answered(p, status / 100 == 2);
    if (conn_ending(c)) {
        /* the server reads nothing more on it (nginx after its
         * keepalive_requests): the next publish goes on a new one */
        conn_close(c);
        open_conn(p);
    }
    dispatch();
}

static void on_closed(struct conn *c, const char *why)
{
    struct pubconn *p = conn_arg(c);

    p->c = NULL;
    if (stopping)
        return;
    /* an idle keep-alive connection may be closed by the server at any
     * time; only one that had a publish in flight is a problem */
    if (p->busy) {
        tell("lost a connection with a publish in flight (%s)", why);
        answered(p, false);
    }
    open_conn(p);
    dispatch();
}

static const struct conn_ops ops = {
    .response = on_response,
    .closed = on_closed,
};

static void open_conn(struct pubconn *p)
{
    p->c = conn_new(R.base, &R.addr, &ops, p, &R.pub_io);
}

void pub_start(void)
{
    nconns = R.o.pub_conns;
    conns = xcalloc((size_t)nconns, sizeof(*conns));
    for (int i = 0; i < nconns; i++) {
        conns[i].idx = i;
        open_conn(&conns[i]);
    }
    text = xmalloc((size_t)R.o.size + 1);
    req_cap = (size_t)R.o.size + 1024;
    req = xmalloc(req_cap);
}

static void write_one(struct pubconn *p, struct item it)
{
    size_t tlen = bench_text(text, R.o.size, it.warm, it.seq);
    int n;

    if (R.o.target == TARGET_CROSSTALK)
        n = snprintf(req, req_cap,
                     "POST %s/api/rooms/%s/messages HTTP/1.1\r\nHost: %s\r\n"
                     "Authorization: Bearer %s\r\n"
                     "Content-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n{\"text\":\"%s\"}",
                     R.o.prefix, R.o.room, R.hosthdr, R.pub_token, tlen + 11,
                     text);
    else
        n = snprintf(req, req_cap,
                     "POST %s/pub?id=%s HTTP/1.1\r\nHost: %s\r\n"
                     "Content-Type: text/plain\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     R.o.prefix, R.o.room, R.hosthdr, tlen, text);
    p->busy = true;
    p->it = it;
    p->sent = now_ns();
    inflight++;
    if (it.warm)
        R.warm_sent++;
    else
        R.pub_sent++;
    conn_request(p->c, req, (size_t)n, CONN_WHOLE);
}

static void dispatch(void)
{
    for (int i = 0; i < nconns && qlen > 0; i++) {
        struct pubconn *p = &conns[i];
        if (p->busy || p->c == NULL)
            continue;
        write_one(p, queue[qhead]);
        qhead = (qhead + 1) % qcap;
        qlen--;
    }
}

void pub_send(bool warm, uint64_t seq)
{
    if (qlen == qcap) {
        size_t ncap = qcap ? qcap * 2 : 1024;
        struct item *nq = xmalloc(ncap * sizeof(*nq));
        for (size_t i = 0; i < qlen; i++)
            nq[i] = queue[(qhead + i) % qcap];
        free(queue);
        queue = nq;
        qcap = ncap;
        qhead = 0;
    }
    queue[(qhead + qlen) % qcap] = (struct item){seq, warm};
    qlen++;
    dispatch();
}

size_t pub_backlog(void)
{
    return qlen;
}

size_t pub_inflight(void)
{
    return inflight;
}

void pub_stop(void)
{
    stopping = true;
    for (int i = 0; i < nconns; i++)
        conn_close(conns[i].c);
    free(conns);
    conns = NULL;
    nconns = 0;
    free(queue);
    queue = NULL;
    qlen = qcap = qhead = 0;
    free(text);
    free(req);
}
