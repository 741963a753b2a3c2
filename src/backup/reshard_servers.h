/* reshard_servers.h - the Redis servers of an old and a new redis_url list,
 * connected and locked, for --reshard and --migrate-keys */
#ifndef CT_RESHARD_SERVERS_H
#define CT_RESHARD_SERVERS_H

#include <stdbool.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "lock.h"
#include "redisurl.h"

struct server {
    const struct redisurl *url; /* in servers' lists */
    char where[300];            /* "host:port/db" or "path/db", for messages */
    redisContext *c;
    struct lock lock;
};

/* The servers of both lists, each once (the same host and port, or socket
 * path, and database is one server), the old list's first. */
struct servers {
    struct redisurl *old_urls, *new_urls;
    int old_n, new_n;
    int old_at[REDISURL_LIST_MAX], new_at[REDISURL_LIST_MAX]; /* index in s */
    struct server s[2 * REDISURL_LIST_MAX];
    int n;
};

/* Parses the lists (old_list NULL: the new one only), connects to every
 * server and takes ct:backup:lock (for lock_ttl_ms) on each, so neither a
 * backup nor another such run overlaps this one. Returns 0 (then
 * servers_close when done), 1 when a server cannot be reached or a lock is
 * held, 2 when a list is malformed (said on stdout, stderr or in the log;
 * nothing is left open or taken). */
int servers_open(struct servers *sv, const char *old_list, const char *new_list,
                 int timeout_ms, int lock_ttl_ms);
/* Renews the locks (lock_refresh). Returns 0 or -1 (a lock was lost). */
int servers_refresh(struct servers *sv);
/* Releases the locks, closes the connections, frees the lists. */
void servers_close(struct servers *sv);
/* Writes the progress line (printf-style) on stderr: rewritten in place 4
 * times a second on a terminal (`tty`), a line every 2 s otherwise, and
 * always when `final` (which ends a rewritten line). *shown_ms keeps when
 * it last wrote (lock_now_ms). */
void servers_progress(bool tty, bool final, int64_t *shown_ms, const char *fmt,
                      ...) __attribute__((format(printf, 4, 5)));
/* Logs a failed command `what` on server `at` (reply may be NULL). */
void servers_error(const struct servers *sv, int at, const redisReply *reply,
                   const char *what);

#endif
