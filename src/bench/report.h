/* report.h - the benchmark's output: a human table and JSON lines */
#ifndef CT_BENCH_REPORT_H
#define CT_BENCH_REPORT_H

#include "bench.h"

/* One evaluated step: a table row (stdout, or stderr with --json) and a
 * {"type":"step"} line with --json. */
void report_step(const struct step *st, int k);
/* The whole run: a summary, and a {"type":"summary"} line with --json. */
void report_summary(void);

#endif
