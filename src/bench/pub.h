/* pub.h - the benchmark's publisher: a few keep-alive connections that
 * send the scheduled messages, each on the first free one */
#ifndef CT_BENCH_PUB_H
#define CT_BENCH_PUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Opens the connections (R.o.pub_conns). */
void pub_start(void);
/* Queues message seq (or warm-up message n) for sending. */
void pub_send(bool warm, uint64_t seq);
/* Messages queued and not yet written, and written but not answered. */
size_t pub_backlog(void);
size_t pub_inflight(void);
/* Closes the connections; queued messages are dropped. */
void pub_stop(void);

#endif
