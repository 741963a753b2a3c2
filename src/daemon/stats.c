/* stats.c - per transport counters for /api/stats and /metrics */
#include "stats.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "app.h"
#include "config.h"
#include "event.h"
#include "log.h"
#include "statrec.h"
#include "store.h"
#include "xmalloc.h"

_Static_assert(TRANSPORT_COUNT == STATREC_TRANSPORTS &&
                   sizeof(struct stats_counters) ==
                       STATREC_FIELDS * sizeof(uint64_t),
               "stats.h and statrec.h list the same counters");

struct stats_counters stats[TRANSPORT_COUNT];

static const char *const names[TRANSPORT_COUNT] = {
    "rest", "short_poll", "long_poll", "sse", "websocket",
};

const char *stats_transport_name(enum transport t)
{
    return names[t];
}

/* A growing string; the two formats are small. */
struct out {
    char *buf;
    size_t len, cap;
};

static void out_printf(struct out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void out_printf(struct out *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if ((size_t)n < o->cap - o->len)
            break;
        o->cap = o->cap * 2 + n + 64;
        o->buf = xrealloc(o->buf, o->cap);
    }
    o->len += n;
}

uint64_t stats_streams(void)
{
    return stats[TRANSPORT_LONG_POLL].open + stats[TRANSPORT_SSE].open +
           stats[TRANSPORT_WEBSOCKET].open;
}

char *stats_prometheus(size_t *len)
{
    static const struct {
        const char *name, *help, *type;
        size_t off;
    } metrics[] = {
        {"open", "Open connections (streams and waiting polls)", "gauge",
         offsetof(struct stats_counters, open)},
        {"requests_total", "HTTP requests or WebSocket frames received",
         "counter", offsetof(struct stats_counters, requests)},
        {"events_delivered_total", "Events handed to clients", "counter",
         offsetof(struct stats_counters, delivered)},
        {"bytes_out_total", "Bytes queued to clients", "counter",
         offsetof(struct stats_counters, bytes_out)},
        {"empty_responses_total", "Responses that carried no event", "counter",
         offsetof(struct stats_counters, empty)},
        {"dropped_total", "Subscribers dropped as slow consumers", "counter",
         offsetof(struct stats_counters, dropped)},
    };
    struct out o = {xmalloc(2048), 0, 2048};

    for (size_t m = 0; m < sizeof(metrics) / sizeof(metrics[0]); m++) {
        out_printf(&o, "# HELP crosstalk_%s %s.\n# TYPE crosstalk_%s %s\n",
                   metrics[m].name, metrics[m].help, metrics[m].name,
                   metrics[m].type);
        for (int t = 0; t < TRANSPORT_COUNT; t++) {
            const uint64_t *v =
                (const uint64_t *)((const char *)&stats[t] + metrics[m].off);
            out_printf(&o, "crosstalk_%s{transport=\"%s\"} %llu\n",
                       metrics[m].name, names[t], (unsigned long long)*v);
        }
    }
    out_printf(&o,
               "# HELP crosstalk_streams Open streams and waiting polls.\n"
               "# TYPE crosstalk_streams gauge\ncrosstalk_streams %llu\n",
               (unsigned long long)stats_streams());
    *len = o.len;
    return o.buf;
}

/* --- the cluster: every process's record in Redis --- */

static struct statrec self;
static struct event *stats_timer;

static void fill_self(void)
{
    memcpy(self.c, stats, sizeof(self.c));
    self.updated_ms = event_now_ms();
}

static void stats_tick(evutil_socket_t fd, short what, void *arg)
{
    size_t len;
    char *json;

    fill_self();
    json = statrec_encode(&self, &len);
    store_stats_write(app.store, self.id, json, len,
                      statrec_ttl_ms(self.interval_ms));
    free(json);
}

void stats_start(void)
{
    struct timeval tv = {app.cfg->stats_interval_ms / 1000,
                         (app.cfg->stats_interval_ms % 1000) * 1000};

    statrec_init(&self, "crosstalkd", app.cfg->port,
                 app.cfg->stats_interval_ms);
    stats_timer = event_new(app.base, -1, EV_PERSIST, stats_tick, NULL);
    evtimer_add(stats_timer, &tv);
}

void stats_stop(void)
{
    if (stats_timer != NULL)
        event_free(stats_timer);
    stats_timer = NULL;
}

char *stats_cluster_json(bool cluster, const char *const *recs,
                         const size_t *lens, size_t n, size_t *len)
{
    struct statrec *all = xcalloc(n + 1, sizeof(*all));
    size_t m = 0;
    char *json;

    /* this process first, with its counters of this moment */
    if (self.id[0] == '\0')
        statrec_init(&self, "crosstalkd", app.cfg->port,
                     app.cfg->stats_interval_ms);
    fill_self();
    all[m++] = self;
    for (size_t i = 0; i < n; i++) {
        if (statrec_decode(recs[i], lens[i], &all[m]) != 0) {
            log_warn("stats: a record in redis is not one: %.*s",
                     (int)(lens[i] > 200 ? 200 : lens[i]), recs[i]);
            continue;
        }
        if (strcmp(all[m].id, self.id) != 0)
            m++;
    }
    json = statrec_sum_json(all, m, cluster ? "cluster" : "process", self.id,
                            self.interval_ms, len);
    free(all);
    return json;
}
