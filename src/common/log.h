/* log.h - levelled logging to stderr or a file */
#ifndef CT_LOG_H
#define CT_LOG_H

enum log_level { LOGL_DEBUG, LOGL_INFO, LOGL_WARN, LOGL_ERROR };

/* Opens the log: `level` is "debug", "info", "warn" or "error"; `file` is a
 * path or NULL/"" for stderr. Returns 0, or -1 when the level is unknown or
 * the file cannot be opened (then logging stays on stderr). */
int log_open(const char *level, const char *file);
/* Reopens the log file (after rotation, on SIGHUP). Returns 0 or -1. */
int log_reopen(void);
void log_close(void);
/* `prog` prefixes every line; it is not copied. */
void log_set_program(const char *prog);
enum log_level log_get_level(void);
/* Writes one line when `level` is at least the log's. Lines above debug
 * are rate-limited (100 a second, bursts of 1000); the number dropped is
 * said on the next line written. */
void log_write(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_write(LOGL_DEBUG, __VA_ARGS__)
#define log_info(...) log_write(LOGL_INFO, __VA_ARGS__)
#define log_warn(...) log_write(LOGL_WARN, __VA_ARGS__)
#define log_error(...) log_write(LOGL_ERROR, __VA_ARGS__)

#endif
