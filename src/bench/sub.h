/* sub.h - the benchmark's subscribers: one per connection, following the
 * room by short poll, long poll, SSE or WebSocket, on crosstalk or nchan,
 * and accounting for every message (lost, duplicated, late) */
#ifndef CT_BENCH_SUB_H
#define CT_BENCH_SUB_H

#include <stdbool.h>
#include <stdint.h>

struct sub;

/* Creates subscriber number idx (not connected yet). */
struct sub *sub_new(int idx);
/* Closes its connection and frees it. Accepts NULL. */
void sub_free(struct sub *s);
/* Connects and subscribes; `ready` is called once when the subscription
 * is in place (response head of a stream, first request written for a
 * poll) or has failed (ok false). */
void sub_start(struct sub *s, void (*ready)(struct sub *s, bool ok));
bool sub_warm(const struct sub *s);

/* Unique measured messages it holds and duplicates it was sent. */
uint64_t sub_unique(const struct sub *s);
uint64_t sub_dups(const struct sub *s);
/* Marks the end of the measured phase: what arrives later is ignored. */
void sub_stop_all(void);

#endif
