/* run.h - the phases of a benchmark run and the accounting of deliveries */
#ifndef CT_BENCH_RUN_H
#define CT_BENCH_RUN_H

/* Runs the benchmark R.o describes on R.base to the end and reports it.
 * Returns the exit status: 0, 1 when anything was lost or duplicated, 3
 * when the run could not be carried out (R.fatal says why), 4 when the
 * server refused the load (run_refused). */
int run_main(void);
/* VmRSS of a process in kB, or -1. */
long run_rss_kb(int pid);

#endif
