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
