/* statrec.h - one process's counters as a record in Redis, so /api/stats
 * can add up every crosstalkd and crosstalk-fcgi process of a cluster */
#ifndef CT_STATREC_H
#define CT_STATREC_H

#include <stddef.h>
#include <stdint.h>

/*
 * Every process writes its record every stats_interval_ms:
 *   SET  ct:stats:proc:{id} <record JSON> PX <statrec_ttl_ms>
 *   SADD ct:stats:procs {id}
 * and a reader runs STATREC_READ_SCRIPT, which answers the records still
 * alive and forgets the ids whose record expired. A process that stops
 * drops out of the sum after its TTL.
 */
#define STATREC_INDEX "ct:stats:procs"
#define STATREC_PREFIX "ct:stats:proc:"
#define STATREC_ID_MAX 200
#define STATREC_KEY_MAX (sizeof(STATREC_PREFIX) + STATREC_ID_MAX)
/* KEYS = {STATREC_INDEX}, ARGV = {STATREC_PREFIX}: the live records. */
extern const char STATREC_READ_SCRIPT[];

/* The transports and the counters of each, in the order of the daemon's
 * enum transport and struct stats_counters. */
#define STATREC_TRANSPORTS 5
#define STATREC_FIELDS 6
extern const char *const statrec_transport_names[STATREC_TRANSPORTS];
extern const char *const statrec_field_names[STATREC_FIELDS];
enum { STATREC_REST, STATREC_SHORT_POLL };
enum {
    STATREC_OPEN,
    STATREC_REQUESTS,
    STATREC_DELIVERED,
    STATREC_BYTES_OUT,
    STATREC_EMPTY,
    STATREC_DROPPED
};

struct statrec {
    char id[STATREC_ID_MAX]; /* "host:pid" */
    char program[32];
    char host[128];
    long pid;
    int port; /* crosstalkd's port; 0 for a FastCGI process */
    int interval_ms;
    int64_t started_ms, updated_ms;
    uint64_t c[STATREC_TRANSPORTS][STATREC_FIELDS];
};

/* This process as its counters and its presence entries name it:
 * "host:pid" (at most STATREC_ID_MAX bytes). */
void statrec_self_id(char *buf, size_t size);
/* Fills in this process's identity (host, pid, start time now) and zero
 * counters. */
void statrec_init(struct statrec *r, const char *program, int port,
                  int interval_ms);
/* How long a record outlives its last write: a few intervals. */
int statrec_ttl_ms(int interval_ms);
/* Writes STATREC_PREFIX id into buf (STATREC_KEY_MAX bytes); returns buf. */
char *statrec_key(char *buf, const char *id);

/* The record as JSON; newly allocated, length in *len. */
char *statrec_encode(const struct statrec *r, size_t *len);
/* Parses a record. Returns 0, or -1 (r undefined) when it is not one. */
int statrec_decode(const char *json, size_t len, struct statrec *r);

/* The /api/stats answer: the sum of `recs` at the top level ("streams",
 * "transports", as one process answered before), "scope" (e.g. "cluster"),
 * "self" (the answering process's id), "interval_ms" and "processes" (each
 * record). Newly allocated. */
char *statrec_sum_json(const struct statrec *recs, size_t n, const char *scope,
                       const char *self, int interval_ms, size_t *len);

/* The number of events in an API answer {"events":[...]}, or -1. */
int statrec_count_events(const char *body, size_t len);

/* A synchronous writer of one process's record (the FastCGI responder's;
 * crosstalkd writes through its async store). */
struct statrec_sink;
/* The first URL of redis_url; connects lazily. NULL, with a message in
 * err, when the URL is malformed. */
struct statrec_sink *statrec_sink_new(const char *redis_url, int timeout_ms,
                                      char *err, size_t errlen);
/* Writes the record with its TTL. Returns 0, or -1 when Redis could not
 * take it (logged once per outage; the next call connects again). */
int statrec_sink_write(struct statrec_sink *s, const struct statrec *r);
/* Accepts NULL. */
void statrec_sink_free(struct statrec_sink *s);

#endif
