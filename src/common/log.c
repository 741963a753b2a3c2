/* log.c - levelled logging to stderr or a file */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "xmalloc.h"

static enum log_level cur_level = LOGL_INFO;
static FILE *log_fp;   /* NULL: stderr */
static char *log_path; /* NULL: stderr */
static const char *log_prog = "crosstalk";

static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* Lines above debug are rate-limited, so that a fault repeating in a
 * loop cannot fill the disk: a bucket of LOG_BURST lines refilled at
 * LOG_RATE a second; what it drops is counted and said. */
#define LOG_RATE 100
#define LOG_BURST 1000

static double log_tokens = LOG_BURST;
static int64_t log_refilled_ms;
static unsigned long long log_dropped;

static FILE *log_out(void)
{
    return log_fp != NULL ? log_fp : stderr;
}

static int parse_level(const char *s, enum log_level *out)
{
    size_t i;

    for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

static FILE *open_file(const char *path)
{
    FILE *fp = fopen(path, "a");

    if (fp != NULL)
        setvbuf(fp, NULL, _IOLBF, 0);
    return fp;
}

int log_open(const char *level, const char *file)
{
    enum log_level lv;
    FILE *fp;

    if (level == NULL || parse_level(level, &lv) < 0)
        return -1;
    cur_level = lv;
    log_close();
    if (file == NULL || *file == '\0')
        return 0;
    fp = open_file(file);
    if (fp == NULL)
        return -1;
    log_fp = fp;
    log_path = xstrdup(file);
    return 0;
}

int log_reopen(void)
{
    FILE *fp;

    if (log_path == NULL)
        return 0;
    fp = open_file(log_path);
    if (fp == NULL) {
        log_write(LOGL_ERROR, "cannot reopen log file %s: %s", log_path,
                  strerror(errno));
        return -1;
    }
    fclose(log_fp);
    log_fp = fp;
    return 0;
}

void log_close(void)
{
    if (log_fp != NULL)
        fclose(log_fp);
    log_fp = NULL;
    free(log_path);
    log_path = NULL;
}

void log_set_program(const char *prog)
{
    log_prog = prog;
}

enum log_level log_get_level(void)
{
    return cur_level;
}

void log_write(enum log_level level, const char *fmt, ...)
{
    char stamp[32], msg[2048];
    struct timeval tv;
    struct tm tm;
    va_list ap;

    if (level < cur_level)
        return;
    gettimeofday(&tv, NULL);
    if (level > LOGL_DEBUG) {
        int64_t now = (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
        if (now > log_refilled_ms) {
            log_tokens += (double)(now - log_refilled_ms) * LOG_RATE / 1000;
            if (log_tokens > LOG_BURST)
                log_tokens = LOG_BURST;
            log_refilled_ms = now;
        }
        if (log_tokens < 1) {
            log_dropped++;
            return;
        }
        log_tokens--;
    }
    gmtime_r(&tv.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (log_dropped > 0) {
        fprintf(log_out(),
                "%s.%03dZ %s[%ld] warn: %llu log lines dropped "
                "(over %d a second)\n",
                stamp, (int)(tv.tv_usec / 1000), log_prog, (long)getpid(),
                log_dropped, LOG_RATE);
        log_dropped = 0;
    }
    /* One fprintf per line so concurrent writers to one file interleave
     * whole lines. */
    fprintf(log_out(), "%s.%03dZ %s[%ld] %s: %s\n", stamp,
            (int)(tv.tv_usec / 1000), log_prog, (long)getpid(),
            level_names[level], msg);
}
