/* rconn.c - a synchronous Redis connection opened from a redis_url */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "log.h"
#include "rconn.h"
#include "xmalloc.h"

/* The parts of a redis_url. Strings point into a copy the caller frees. */
struct rconn_url {
    const char *host; /* NULL for a unix socket */
    int port;
    const char *path;     /* unix socket */
    const char *user;     /* NULL: AUTH with the password only */
    const char *password; /* NULL: no AUTH */
    int db;
};

/* Parses a non-negative decimal number ending at `end` (or at the NUL). */
static int
rconn_number(const char *s, const char *end, int max, int *out)
{
    long v = 0;

    if (s == end || *s == '\0')
        return -1;
    for (; s != end && *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (*s - '0');
        if (v > max)
            return -1;
    }
    *out = (int)v;
    return 0;
}

/* Splits `s` (a writable copy of the URL) into *u. Returns 0 or -1. */
static int
rconn_parse(char *s, struct rconn_url *u)
{
    char *at, *slash, *colon, *q;

    memset(u, 0, sizeof(*u));
    u->port = 6379;
    if (strncmp(s, "unix://", 7) == 0) {
        u->path = s + 7;
        q = strchr(s + 7, '?');
        if (q != NULL) {
            *q++ = '\0';
            if (strncmp(q, "db=", 3) != 0 ||
                rconn_number(q + 3, NULL, 1 << 20, &u->db) < 0)
                return -1;
        }
        return *u->path == '/' ? 0 : -1;
    }
    if (strncmp(s, "redis://", 8) != 0)
        return -1;
    s += 8;
    slash = strchr(s, '/');
    if (slash != NULL) {
        *slash = '\0';
        if (slash[1] != '\0' &&
            rconn_number(slash + 1, NULL, 1 << 20, &u->db) < 0)
            return -1;
    }
    at = strrchr(s, '@');
    if (at != NULL) {
        *at = '\0';
        colon = strchr(s, ':');
        if (colon == NULL)
            return -1;
        *colon = '\0';
        u->user = *s != '\0' ? s : NULL;
        u->password = colon + 1;
        s = at + 1;
    }
    if (*s == '[') { /* [::1]:6379 */
        char *close = strchr(s, ']');

        if (close == NULL)
            return -1;
        *close = '\0';
        u->host = s + 1;
        colon = close[1] == ':' ? close + 1 : NULL;
        if (close[1] != '\0' && colon == NULL)
            return -1;
    } else {
        colon = strrchr(s, ':');
        if (colon != NULL)
            *colon = '\0';
        u->host = s;
    }
    if (colon != NULL && rconn_number(colon + 1, NULL, 65535, &u->port) < 0)
        return -1;
    if (*u->host == '\0')
        u->host = "127.0.0.1";
    return 0;
}

/* Runs one command; returns 0 unless it failed or Redis answered an
 * error. */
static int
rconn_simple(redisContext *c, int argc, const char **argv, const char *what)
{
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    int rc = 0;

    if (r == NULL) {
        log_error("redis %s: %s", what, c->errstr);
        return -1;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        log_error("redis %s: %s", what, r->str);
        rc = -1;
    }
    freeReplyObject(r);
    return rc;
}

redisContext *
rconn_open(const char *url, int timeout_ms)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *c = NULL;
    struct rconn_url u;
    char *copy = xstrdup(url);
    char dbbuf[16];

    if (rconn_parse(copy, &u) < 0) {
        log_error("redis_url is not redis://[[user]:password@]host[:port][/db] "
                  "or unix:///path[?db=N]");
        goto err;
    }
    if (u.host != NULL)
        c = redisConnectWithTimeout(u.host, u.port, tv);
    else
        c = redisConnectUnixWithTimeout(u.path, tv);
    if (c == NULL || c->err) {
        if (u.host != NULL)
            log_error("cannot connect to Redis at %s:%d: %s", u.host, u.port,
                      c != NULL ? c->errstr : "out of memory");
        else
            log_error("cannot connect to Redis at %s: %s", u.path,
                      c != NULL ? c->errstr : "out of memory");
        goto err;
    }
    if (redisSetTimeout(c, tv) != REDIS_OK) {
        log_error("cannot set the Redis timeout: %s", c->errstr);
        goto err;
    }
    if (u.password != NULL) {
        const char *argv[3] = {"AUTH", u.user, u.password};

        if (u.user == NULL) {
            argv[1] = u.password;
            if (rconn_simple(c, 2, argv, "AUTH") < 0)
                goto err;
        } else if (rconn_simple(c, 3, argv, "AUTH") < 0) {
            goto err;
        }
    }
    if (u.db != 0) {
        const char *argv[2] = {"SELECT", dbbuf};

        snprintf(dbbuf, sizeof(dbbuf), "%d", u.db);
        if (rconn_simple(c, 2, argv, "SELECT") < 0)
            goto err;
    }
    free(copy);
    return c;

err:
    if (c != NULL)
        redisFree(c);
    free(copy);
    return NULL;
}
