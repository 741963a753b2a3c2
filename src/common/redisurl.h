/* redisurl.h - where Redis is (redis_url) and how to open a synchronous
 * connection there; one parser for the daemon, the FastCGI responder and
 * the backup */
#ifndef CT_REDISURL_H
#define CT_REDISURL_H

#include <stddef.h>

struct redisContext;

/* redis://[[user]:password@]host[:port][/db] or unix:///path[?db=N];
 * host may be [v6]. Strings are owned. */
struct redisurl {
    char *host; /* NULL for a unix socket */
    int port;
    char *path;     /* the unix socket, or NULL */
    char *user;     /* NULL: the default user */
    char *password; /* NULL: no AUTH */
    int db;
};

/* Parses `url` into *u (free it with redisurl_free, success or not). On a
 * malformed URL returns -1 and writes why into err (never the password). */
int redisurl_parse(const char *url, struct redisurl *u, char *err,
                   size_t errlen);
void redisurl_free(struct redisurl *u);

/* The most Redis URLs (shards) one redis_url may list. */
#define REDISURL_LIST_MAX 64

/* Parses the comma-separated list of Redis URLs `list` (blanks around each
 * item are ignored): each item as redisurl_parse does, and the list has no
 * empty item, no two items naming the same server (same host and port, or
 * same socket path, whatever the database: pub/sub channels are shared by
 * a server's databases) and at most REDISURL_LIST_MAX items. On success
 * returns the count (at least 1) and sets *urls to a new array of it, in
 * the list's order (free it with redisurl_free_list). On error returns -1,
 * sets *urls to NULL and writes into err which item is bad and why, its
 * password shown as "***". */
int redisurl_parse_list(const char *list, struct redisurl **urls, char *err,
                        size_t errlen);
/* Frees the n URLs of `urls` and the array. Accepts NULL. */
void redisurl_free_list(struct redisurl *urls, int n);
/* "host:port" or the socket path, for log lines. Returns buf. */
char *redisurl_where(const struct redisurl *u, char *buf, size_t len);

/* The commands every new connection sends first, as the URL asks: AUTH
 * and SELECT. Fills up to two argument vectors (3 entries each; `dbbuf`
 * of 16 bytes holds the number) and returns how many. */
int redisurl_setup(const struct redisurl *u, const char *argv[2][3],
                   int argc[2], char dbbuf[16]);

/* Connects synchronously, with `timeout_ms` for the connect and every
 * command, and runs the setup commands. On failure returns NULL and writes
 * the reason into err. */
struct redisContext *redisurl_connect(const struct redisurl *u, int timeout_ms,
                                      char *err, size_t errlen);

#endif
