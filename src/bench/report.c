/* report.c - the benchmark's output: a human table and JSON lines */
#include "report.h"

#include <stdio.h>
#include <string.h>

#include "bench.h"

static const char *const transport_names[] = {"shortpoll", "longpoll", "sse",
                                              "ws"};

static FILE *human(void)
{
    return R.o.json ? stderr : stdout;
}

static double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

static void json_str(FILE *f, const char *s)
{
    if (s == NULL) {
        fputs("null", f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static const char *label(void)
{
    static char buf[96];

    if (R.o.label[0])
        return R.o.label;
    snprintf(buf, sizeof(buf), "%s%s%s",
             R.o.target == TARGET_CROSSTALK ? "crosstalk" : "nchan",
             R.o.prefix[0] ? "@" : "", R.o.prefix);
    return buf;
}

/* Deliveries per second of a step. One that passed delivered everything it
 * offered: its deliveries over its duration. One that failed: over the
 * time from its start to its last delivery (or its end, if later). */
static double step_dps(const struct step *st)
{
    uint64_t end = st->t_last > st->t1 && !st->pass ? st->t_last : st->t1;
    double secs = (double)(end - st->t0) / 1e9;

    return secs > 0 ? (double)st->snap_delivered / secs : 0;
}

static void common_fields(FILE *f)
{
    fprintf(f, "\"target\":\"%s\",\"label\":",
            R.o.target == TARGET_CROSSTALK ? "crosstalk" : "nchan");
    json_str(f, label());
    fprintf(f,
            ",\"transport\":\"%s\",\"n\":%d,\"size\":%d,\"users\":%d,"
            "\"mode\":\"%s\",\"slo_ms\":%g,\"interval_ms\":%d",
            transport_names[R.o.transport], R.o.subscribers, R.o.size,
            R.o.target == TARGET_CROSSTALK ? R.o.users : 0,
            R.o.closed_loop ? "closed"
            : R.o.ramp      ? "ramp"
                            : "fixed",
            R.o.slo_ms, R.o.transport == BT_SHORT_POLL ? R.o.interval_ms : 0);
}

void report_step(const struct step *st, int k)
{
    FILE *h = human();
    uint64_t d = st->snap_delivered;
    uint64_t reqs = st->req1 - st->req0, bytes = st->bytes1 - st->bytes0;

    if (!R.o.quiet) {
        if (k == 0)
            fprintf(h,
                    "%-4s %9s %12s %8s %8s %8s %8s %9s %5s %5s %9s %8s  %s\n",
                    "step", "msgs/s", "deliveries/s", "p50 ms", "p99 ms",
                    "p99.9 ms", "max ms", "all-of-N", "dup", "req/d", "cpu c/s",
                    "srv us/d", "result");
        fprintf(h,
                "%-4d %9.1f %12.0f %8.2f %8.2f %8.2f %8.2f %9.2f %5llu "
                "%5.2f %4.0f/%-4.0f %8.2f  %s%s%s\n",
                k, st->rate, step_dps(st), ms(st->p50), ms(st->p99),
                ms(st->p999), ms(st->max), ms(st->f99),
                (unsigned long long)st->dups, d ? (double)reqs / (double)d : 0,
                st->cpu_client * 100, st->cpu_server * 100,
                d && st->cpu_server >= 0
                    ? st->cpu_server * st->elapsed * 1e6 / (double)d
                    : -1.0,
                st->pass ? "pass" : "FAIL", st->pass ? "" : ": ",
                st->pass ? (st->retry ? " (run again)" : "") : st->why);
        fflush(h);
    }
    if (!R.o.json)
        return;
    printf("{\"type\":\"step\",");
    common_fields(stdout);
    printf(",\"step\":%d,\"rate\":%.3f,\"duration_s\":%.3f,"
           "\"published\":%llu,\"acked\":%llu,\"pub_errors\":%llu,"
           "\"deliveries\":%llu,\"expected\":%llu,\"deliveries_per_s\":%.1f,"
           "\"lat_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f,"
           "\"mean\":%.3f},\"fanout_ms\":{\"p50\":%.3f,\"p99\":%.3f,"
           "\"max\":%.3f},\"complete\":%llu,\"dups\":%llu,"
           "\"requests_per_delivery\":%.4f,\"bytes_per_delivery\":%.1f,"
           "\"cpu_client\":%.3f,\"cpu_server\":%.3f,"
           "\"server_us_per_delivery\":%.3f,\"pass\":%s,\"why\":",
           k, st->rate, (double)(st->t1 - st->t0) / 1e9,
           (unsigned long long)(st->seq1 - st->seq0),
           (unsigned long long)st->acked, (unsigned long long)st->pub_errors,
           (unsigned long long)d,
           (unsigned long long)(st->acked * (uint64_t)R.o.subscribers),
           step_dps(st), ms(st->p50), ms(st->p99), ms(st->p999), ms(st->max),
           hist_mean(st->lat) / 1e6, ms(st->f50), ms(st->f99), ms(st->fmax),
           (unsigned long long)st->complete, (unsigned long long)st->dups,
           d ? (double)reqs / (double)d : 0, d ? (double)bytes / (double)d : 0,
           st->cpu_client, st->cpu_server,
           d && st->cpu_server >= 0
               ? st->cpu_server * st->elapsed * 1e6 / (double)d
               : -1.0,
           st->pass ? "true" : "false");
    json_str(stdout, st->pass ? NULL : st->why);
    printf(",\"retry\":%s}\n", st->retry ? "true" : "false");
    fflush(stdout);
}

static const struct step *best_step(void)
{
    const struct step *best = NULL;

    for (int i = 0; i < R.nsteps; i++) {
        const struct step *st = &R.steps[i];
        if (st->done && st->pass &&
            (best == NULL || step_dps(st) > step_dps(best)))
            best = st;
    }
    return best;
}

void report_summary(void)
{
    FILE *h = human();
    const struct step *b = best_step();
    long per_conn = -1;
    uint64_t d = 0, reqs = 0, bytes = 0;

    for (int i = 0; i < R.nsteps; i++) {
        if (!R.steps[i].done)
            continue;
        d += R.steps[i].snap_delivered;
        reqs += R.steps[i].req1 - R.steps[i].req0;
        bytes += R.steps[i].bytes1 - R.steps[i].bytes0;
    }
    if (R.rss_before >= 0 && R.rss_idle >= 0 && R.connected > 0)
        per_conn = (R.rss_idle - R.rss_before) * 1024L / R.connected;

    if (!R.o.quiet) {
        fprintf(h, "\n%s, %s, %d subscribers, %d-byte messages", label(),
                transport_names[R.o.transport], R.o.subscribers, R.o.size);
        if (R.o.target == TARGET_CROSSTALK)
            fprintf(h, ", %d user%s", R.o.users, R.o.users == 1 ? "" : "s");
        fprintf(h, "\n");
        fprintf(h,
                "  connect      %d in %.2f s; per subscriber p50 %.2f ms, "
                "p99 %.2f ms, max %.2f ms; %llu bytes received by then\n",
                R.connected, R.connect_seconds,
                ms(hist_percentile(R.connect, 50)),
                ms(hist_percentile(R.connect, 99)), ms(hist_max(R.connect)),
                (unsigned long long)R.connect_bytes);
        if (R.rss_before >= 0)
            fprintf(h,
                    "  server RSS   %ld kB before, %ld kB with every "
                    "subscriber idle, %ld kB at the end: %ld bytes per "
                    "connection\n",
                    R.rss_before, R.rss_idle, R.rss_end, per_conn);
        if (R.o.closed_loop) {
            fprintf(h,
                    "  closed loop  %.0f requests/s; round trip p50 %.3f "
                    "ms, p99 %.3f ms, max %.3f ms; cpu client %.0f%%, "
                    "server %.0f%%\n",
                    R.closed_rps, ms(hist_percentile(R.rtt, 50)),
                    ms(hist_percentile(R.rtt, 99)), ms(hist_max(R.rtt)),
                    R.closed_cpu_client * 100, R.closed_cpu_server * 100);
        } else if (b != NULL) {
            fprintf(h,
                    "  sustained    %.0f deliveries/s (%.1f msgs/s), p50 "
                    "%.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms; "
                    "all %d had a message after p99 %.2f ms\n",
                    step_dps(b), b->rate, ms(b->p50), ms(b->p99), ms(b->p999),
                    ms(b->max), R.o.subscribers, ms(b->f99));
        } else {
            fprintf(h, "  sustained    no step passed\n");
        }
        if (!R.o.closed_loop)
            fprintf(
                h,
                "  messages     %llu published, %llu acknowledged, "
                "%llu publish errors; lost %llu, duplicated %llu, "
                "reordered %llu, reconnects %llu\n",
                (unsigned long long)R.pub_sent, (unsigned long long)R.pub_acked,
                (unsigned long long)R.pub_errors, (unsigned long long)R.lost,
                (unsigned long long)R.dups, (unsigned long long)R.reordered,
                (unsigned long long)R.reconnects);
        if (R.undelivered > 0)
            fprintf(h,
                    "  NOTE         the final drain ended with %llu deliveries "
                    "owed: the 'lost' ones may still have been on their "
                    "way (raise --drain)\n",
                    (unsigned long long)R.undelivered);
        if (d > 0)
            fprintf(h, "  per delivery %.3f HTTP requests, %.0f bytes\n",
                    (double)reqs / (double)d, (double)bytes / (double)d);
        fprintf(h,
                "  machine      load average %.2f at the start, %.2f at the "
                "end\n",
                R.load0, R.load1);
        if (R.fatal)
            fprintf(h, "  STOPPED      %s\n", R.fatal);
        fflush(h);
    }
    if (!R.o.json)
        return;
    printf("{\"type\":\"summary\",");
    common_fields(stdout);
    printf(",\"connected\":%d,\"connect_s\":%.3f,\"connect_ms\":{\"p50\":%.3f,"
           "\"p99\":%.3f,\"max\":%.3f},\"rss_kb\":{\"before\":%ld,\"idle\":%ld,"
           "\"end\":%ld},\"rss_per_conn_bytes\":%ld,\"connect_bytes_in\":%llu,",
           R.connected, R.connect_seconds, ms(hist_percentile(R.connect, 50)),
           ms(hist_percentile(R.connect, 99)), ms(hist_max(R.connect)),
           R.rss_before, R.rss_idle, R.rss_end, per_conn,
           (unsigned long long)R.connect_bytes);
    if (b != NULL)
        printf("\"best\":{\"rate\":%.3f,\"deliveries_per_s\":%.1f,"
               "\"lat_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"p999\":%.3f,"
               "\"max\":%.3f},\"fanout_ms\":{\"p50\":%.3f,\"p99\":%.3f,"
               "\"max\":%.3f},\"cpu_client\":%.3f,\"cpu_server\":%.3f},",
               b->rate, step_dps(b), ms(b->p50), ms(b->p99), ms(b->p999),
               ms(b->max), ms(b->f50), ms(b->f99), ms(b->fmax), b->cpu_client,
               b->cpu_server);
    else
        printf("\"best\":null,");
    if (R.o.closed_loop)
        printf("\"closed_loop\":{\"requests_per_s\":%.1f,\"rtt_ms\":{"
               "\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f},\"cpu_client\":%.3f,"
               "\"cpu_server\":%.3f,\"server_us_per_request\":%.3f},",
               R.closed_rps, ms(hist_percentile(R.rtt, 50)),
               ms(hist_percentile(R.rtt, 99)), ms(hist_max(R.rtt)),
               R.closed_cpu_client, R.closed_cpu_server,
               R.closed_rps > 0 && R.closed_cpu_server >= 0
                   ? R.closed_cpu_server * 1e6 / R.closed_rps
                   : -1.0);
    printf("\"steps\":%d,\"published\":%llu,\"acked\":%llu,\"pub_errors\":%llu,"
           "\"deliveries\":%llu,\"lost\":%llu,\"dups\":%llu,\"reordered\":%llu,"
           "\"unknown\":%llu,\"undelivered_at_end\":%llu,"
           "\"reconnects\":%llu,\"sub_errors\":%llu,"
           "\"requests_per_delivery\":%.4f,\"bytes_per_delivery\":%.1f,"
           "\"pub_rtt_ms\":{\"p50\":%.3f,\"p99\":%.3f},"
           "\"loadavg\":[%.2f,%.2f],\"ok\":%s,\"fatal\":",
           R.nsteps, (unsigned long long)R.pub_sent,
           (unsigned long long)R.pub_acked, (unsigned long long)R.pub_errors,
           (unsigned long long)R.deliveries, (unsigned long long)R.lost,
           (unsigned long long)R.dups, (unsigned long long)R.reordered,
           (unsigned long long)R.unknown, (unsigned long long)R.undelivered,
           (unsigned long long)R.reconnects, (unsigned long long)R.sub_errors,
           d ? (double)reqs / (double)d : 0, d ? (double)bytes / (double)d : 0,
           ms(hist_percentile(R.pub_rtt, 50)),
           ms(hist_percentile(R.pub_rtt, 99)), R.load0, R.load1,
           (R.fatal == NULL && R.lost == 0 && R.dups == 0 && R.unknown == 0)
               ? "true"
               : "false");
    json_str(stdout, R.fatal);
    printf("}\n");
    fflush(stdout);
}
