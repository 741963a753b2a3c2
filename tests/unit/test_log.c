/* test_log.c - line format, level filter, reopening after rotation and the
 * rate limit */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "tap.h"

/* Reads the whole file into a new string ("" when missing). */
static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "r");
    char *buf = calloc(1, 8192);
    size_t n;

    if (fp != NULL) {
        n = fread(buf, 1, 8191, fp);
        buf[n] = '\0';
        fclose(fp);
    }
    return buf;
}

/* Lines in the file, and whether one of them holds `needle`. */
static long count_lines(const char *path, const char *needle, int *found)
{
    FILE *fp = fopen(path, "r");
    char line[4096];
    long n = 0;

    *found = 0;
    if (fp == NULL)
        return -1;
    while (fgets(line, sizeof(line), fp) != NULL) {
        n++;
        if (strstr(line, needle) != NULL)
            *found = 1;
    }
    fclose(fp);
    return n;
}

int main(void)
{
    char dir[] = "/tmp/crosstalk-test-log.XXXXXX", path[128], rotated[160];
    char pat[256], *text;
    regex_t re;

    if (mkdtemp(dir) == NULL)
        return 1;
    snprintf(path, sizeof(path), "%s/ct.log", dir);
    snprintf(rotated, sizeof(rotated), "%s/ct.log.1", dir);

    is_int(log_open("loud", NULL), -1, "unknown level rejected");
    is_int(log_open("warn", path), 0, "log_open to a file");
    is_int(log_get_level(), LOGL_WARN, "  level warn");
    log_set_program("crosstalkd");
    log_info("not shown");
    log_debug("not shown either");
    log_warn("disk %d%% full", 93);
    log_error("boom");
    text = slurp(path);
    snprintf(pat, sizeof(pat),
             "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\."
             "[0-9]{3}Z crosstalkd\\[%ld\\] warn: disk 93%% full\n"
             "[0-9T:.Z-]+ crosstalkd\\[%ld\\] error: boom\n$",
             (long)getpid(), (long)getpid());
    if (regcomp(&re, pat, REG_EXTENDED) != 0)
        return 1;
    ok(regexec(&re, text, 0, NULL, 0) == 0,
       "lines are 'ISO-time prog[pid] level: message', below warn dropped");
    if (regexec(&re, text, 0, NULL, 0) != 0)
        diag("file holds:\n%s", text);
    regfree(&re);
    free(text);

    ok(rename(path, rotated) == 0, "rotate the file away");
    log_error("after rotation, before reopen");
    is_int(log_reopen(), 0, "log_reopen");
    log_error("after reopen");
    text = slurp(rotated);
    ok(strstr(text, "before reopen") != NULL &&
           strstr(text, "after reopen") == NULL,
       "the old file got the line written before reopening");
    free(text);
    text = slurp(path);
    ok(strstr(text, "error: after reopen") != NULL &&
           strstr(text, "before reopen") == NULL,
       "the new file gets what follows");
    free(text);

    /* A fault logging in a loop: bursts of 1000, then 100 lines a second,
     * and the number dropped is said. */
    {
        long n;
        int found;

        is_int(log_open("info", path), 0, "log_open for the rate limit");
        for (int i = 0; i < 20000; i++)
            log_error("flood %d", i);
        n = count_lines(path, "log lines dropped", &found);
        ok(n >= 900 && n < 1500, "20000 lines in a loop: %ld written", n);
        usleep(50000);
        log_error("after the flood");
        n = count_lines(path, "log lines dropped", &found);
        ok(found, "the number dropped is said (%ld lines)", n);
        log_debug("debug is not limited");
    }

    is_int(log_open("debug", NULL), 0, "back to stderr");
    is_int(log_get_level(), LOGL_DEBUG, "  level debug");
    is_int(log_reopen(), 0, "log_reopen on stderr is a no-op");
    is_int(log_open("info", "/nonexistent-dir/x.log"), -1,
           "unwritable file is an error");
    log_close();
    unlink(path);
    unlink(rotated);
    rmdir(dir);
    return tap_done();
}
