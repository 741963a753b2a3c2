/* stats.h - per transport counters for /api/stats and /metrics */
#ifndef CT_STATS_H
#define CT_STATS_H

#include <stddef.h>
#include <stdint.h>

enum transport {
    TRANSPORT_REST,
    TRANSPORT_SHORT_POLL,
    TRANSPORT_LONG_POLL,
    TRANSPORT_SSE,
    TRANSPORT_WEBSOCKET,
    TRANSPORT_COUNT
};

struct stats_counters {
    uint64_t open;      /* connections (streams, waiting polls) now */
    uint64_t requests;  /* HTTP requests, or WebSocket frames received */
    uint64_t delivered; /* events handed to clients */
    uint64_t bytes_out; /* bytes queued to clients */
    uint64_t empty;     /* responses that carried no event */
    uint64_t dropped;   /* subscribers dropped as slow consumers */
};

extern struct stats_counters stats[TRANSPORT_COUNT];

const char *stats_transport_name(enum transport t);
/* Streams and waiting polls open now, over every transport. */
uint64_t stats_streams(void);
/* JSON for /api/stats; newly allocated. */
char *stats_json(size_t *len);
/* Prometheus text for /metrics; newly allocated. */
char *stats_prometheus(size_t *len);

#endif
