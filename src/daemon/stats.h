/* stats.h - per transport counters for /api/stats and /metrics */
#ifndef CT_STATS_H
#define CT_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "transport_kind.h"

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
/* Prometheus text for /metrics (this process only); newly allocated. */
char *stats_prometheus(size_t *len);

/* Starts writing this process's counters to Redis every stats_interval_ms
 * (statrec.h), through app.store. */
void stats_start(void);
/* Stops the writes; the record expires after its TTL. */
void stats_stop(void);
/* JSON for /api/stats: the sum of the records `recs` read from Redis (the
 * live counters stand in for this process's own record), with each
 * process; `cluster` false means Redis could not be read, and the answer
 * covers this process only. Newly allocated. */
char *stats_cluster_json(bool cluster, const char *const *recs,
                         const size_t *lens, size_t n, size_t *len);

#endif
