/* stats.c - per transport counters for /api/stats and /metrics */
#include "stats.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

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

char *stats_json(size_t *len)
{
    struct out o = {xmalloc(512), 0, 512};

    out_printf(&o, "{\"streams\":%llu,\"transports\":{",
               (unsigned long long)stats_streams());
    for (int t = 0; t < TRANSPORT_COUNT; t++) {
        const struct stats_counters *c = &stats[t];
        out_printf(
            &o,
            "%s\"%s\":{\"open\":%llu,\"requests\":%llu,"
            "\"delivered\":%llu,\"bytes_out\":%llu,\"empty\":%llu,"
            "\"dropped\":%llu}",
            t ? "," : "", names[t], (unsigned long long)c->open,
            (unsigned long long)c->requests, (unsigned long long)c->delivered,
            (unsigned long long)c->bytes_out, (unsigned long long)c->empty,
            (unsigned long long)c->dropped);
    }
    out_printf(&o, "}}");
    *len = o.len;
    return o.buf;
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
