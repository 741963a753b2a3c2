/* redisurl.c - where Redis is (redis_url) and how to open a synchronous
 * connection there */
#include "redisurl.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hiredis/hiredis.h>

#include "strlist.h"
#include "xmalloc.h"

#define DB_MAX 1000000

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err != NULL && errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* A decimal number of s[0..len), at most max. */
static int number(const char *s, size_t len, long max, int *out)
{
    long v = 0;

    if (len == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
        if (v > max)
            return -1;
    }
    *out = (int)v;
    return 0;
}

static int parse_unix(const char *rest, struct redisurl *u, char *err,
                      size_t errlen)
{
    const char *q = strchr(rest, '?');
    size_t plen = q != NULL ? (size_t)(q - rest) : strlen(rest);

    if (plen == 0 || rest[0] != '/')
        return fail(err, errlen,
                    "redis_url: the unix socket path must be "
                    "absolute (unix:///path)");
    u->path = xstrndup(rest, plen);
    if (q != NULL && (strncmp(q, "?db=", 4) != 0 ||
                      number(q + 4, strlen(q + 4), DB_MAX, &u->db) != 0))
        return fail(err, errlen, "redis_url: expected ?db=N after the path");
    return 0;
}

static int parse_tcp(const char *rest, struct redisurl *u, char *err,
                     size_t errlen)
{
    const char *slash = strchr(rest, '/');
    const char *hend = slash != NULL ? slash : rest + strlen(rest);
    const char *at = NULL, *host = rest, *colon;

    for (const char *p = rest; p < hend; p++)
        if (*p == '@')
            at = p;
    if (at != NULL) {
        const char *pw = memchr(rest, ':', (size_t)(at - rest));
        if (pw == NULL)
            return fail(err, errlen,
                        "redis_url: expected [user]:password@ "
                        "before the host");
        if (pw > rest)
            u->user = xstrndup(rest, (size_t)(pw - rest));
        u->password = xstrndup(pw + 1, (size_t)(at - pw - 1));
        host = at + 1;
    }
    if (*host == '[') {
        const char *rb = memchr(host, ']', (size_t)(hend - host));
        if (rb == NULL)
            return fail(err, errlen, "redis_url: unterminated [address]");
        u->host = xstrndup(host + 1, (size_t)(rb - host - 1));
        colon = rb + 1;
        if (colon < hend && *colon != ':')
            return fail(err, errlen, "redis_url: junk after ]");
        if (colon == hend)
            colon = NULL;
    } else {
        colon = memchr(host, ':', (size_t)(hend - host));
        u->host = xstrndup(host, (size_t)((colon ? colon : hend) - host));
    }
    if (u->host[0] == '\0')
        return fail(err, errlen, "redis_url: the host is missing");
    u->port = 6379;
    if (colon != NULL &&
        (number(colon + 1, (size_t)(hend - colon - 1), 65535, &u->port) != 0 ||
         u->port == 0))
        return fail(err, errlen, "redis_url: the port must be 1..65535");
    if (slash != NULL && slash[1] != '\0' &&
        number(slash + 1, strlen(slash + 1), DB_MAX, &u->db) != 0)
        return fail(err, errlen,
                    "redis_url: the database must be a number "
                    "0..%d",
                    DB_MAX);
    return 0;
}

int redisurl_parse(const char *url, struct redisurl *u, char *err,
                   size_t errlen)
{
    memset(u, 0, sizeof(*u));
    if (strncmp(url, "unix://", 7) == 0)
        return parse_unix(url + 7, u, err, errlen);
    if (strncmp(url, "redis://", 8) == 0)
        return parse_tcp(url + 8, u, err, errlen);
    return fail(err, errlen,
                "redis_url: expected redis://[[user]:password@]"
                "host[:port][/db] or unix:///path[?db=N]");
}

void redisurl_free(struct redisurl *u)
{
    if (u == NULL)
        return;
    free(u->host);
    free(u->path);
    free(u->user);
    free(u->password);
    memset(u, 0, sizeof(*u));
}

/* Writes the URL item[0..len) into out for a message: at most 160 bytes
 * of it, and what stands between "://" and the last '@' shown as
 * "user:***" or "***", as a password may hold any byte. A unix socket URL
 * holds no password. */
static void item_shown(const char *item, size_t len, char *out, size_t outlen)
{
    char *one = xstrndup(item, len);
    const char *auth = strstr(one, "://"), *at = NULL, *colon;

    if (auth != NULL && strncmp(one, "unix://", 7) != 0)
        at = strrchr(auth + 3, '@');
    if (auth == NULL && (at = strrchr(one, '@')) != NULL) {
        /* no scheme: perhaps the tail of a password a ',' cut */
        snprintf(out, outlen, "***%.160s", at);
    } else if (at == NULL) {
        snprintf(out, outlen, "%.160s", one);
    } else {
        auth += 3;
        colon = memchr(auth, ':', (size_t)(at - auth));
        snprintf(out, outlen, "%.*s***%.160s",
                 (int)((colon != NULL ? colon + 1 : auth) - one), one, at);
    }
    free(one);
}

/* Whether a and b are one Redis server, as far as the URLs tell
 * ("localhost" and "127.0.0.1" are not resolved). */
static bool same_server(const struct redisurl *a, const struct redisurl *b)
{
    if (a->path != NULL || b->path != NULL)
        return a->path != NULL && b->path != NULL &&
               strcmp(a->path, b->path) == 0;
    return a->port == b->port && strcasecmp(a->host, b->host) == 0;
}

/* Parses the n-th item (counting from 1) into *u; `several` says whether
 * the message must say which item, `after` is the list after it. */
static int parse_item(const char *item, size_t len, int n, bool several,
                      const char *after, struct redisurl *u, char *err,
                      size_t errlen)
{
    char *one = xstrndup(item, len), why[256], shown[200];
    int rc = redisurl_parse(one, u, why, sizeof(why));

    if (rc != 0 && !several)
        fail(err, errlen, "%s", why);
    else if (rc != 0 && memchr(item, '@', len) == NULL &&
             strchr(after, '@') != NULL)
        /* most likely a ',' inside a password cut the URL in two: the
         * item may be half a password, so it is not shown */
        fail(err, errlen,
             "redis_url: item %d is not a Redis URL, and a later item holds "
             "an '@': a ',' inside a password splits the list (a password "
             "may not contain ','); the item is not shown, as it may hold "
             "part of a password",
             n);
    else if (rc != 0) {
        item_shown(item, len, shown, sizeof(shown));
        fail(err, errlen, "redis_url: item %d (%s): %s", n, shown,
             strncmp(why, "redis_url: ", 11) == 0 ? why + 11 : why);
    }
    free(one);
    return rc;
}

int redisurl_parse_list(const char *list, struct redisurl **urls, char *err,
                        size_t errlen)
{
    const char *rest = list, *item, *end = list + strlen(list);
    struct redisurl *u = xcalloc(REDISURL_LIST_MAX, sizeof(*u));
    bool several = strchr(list, ',') != NULL;
    char shown[200];
    size_t len;
    int n = 0;

    *urls = NULL;
    while (end > list && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (end == list) {
        fail(err, errlen,
             "redis_url: empty; expected one or more comma-separated "
             "Redis URLs");
        goto err;
    }
    while ((item = strlist_next(&rest, &len)) != NULL) {
        if (n == REDISURL_LIST_MAX) {
            item_shown(item, len, shown, sizeof(shown));
            fail(err, errlen,
                 "redis_url: more than %d Redis URLs (item %d is %s)",
                 REDISURL_LIST_MAX, n + 1, shown);
            goto err;
        }
        if (len == 0) {
            fail(err, errlen, "redis_url: item %d is empty (a comma too many)",
                 n + 1);
            goto err;
        }
        /* Counted before parsing: a URL that fails may hold parts. */
        n++;
        if (parse_item(item, len, n, several, item + len, &u[n - 1], err,
                       errlen) != 0)
            goto err;
        for (int i = 0; i < n - 1; i++)
            if (same_server(&u[i], &u[n - 1])) {
                item_shown(item, len, shown, sizeof(shown));
                fail(err, errlen,
                     "redis_url: item %d (%s) is the same Redis server as "
                     "item %d: each shard needs a server of its own",
                     n, shown, i + 1);
                goto err;
            }
    }
    if (end[-1] == ',') {
        fail(err, errlen, "redis_url: item %d is empty (a comma too many)",
             n + 1);
        goto err;
    }
    *urls = xrealloc(u, (size_t)n * sizeof(*u));
    return n;
err:
    redisurl_free_list(u, n);
    return -1;
}

void redisurl_free_list(struct redisurl *urls, int n)
{
    if (urls == NULL)
        return;
    for (int i = 0; i < n; i++)
        redisurl_free(&urls[i]);
    free(urls);
}

char *redisurl_where(const struct redisurl *u, char *buf, size_t len)
{
    if (u->path != NULL)
        snprintf(buf, len, "%s", u->path);
    else
        snprintf(buf, len, "%s:%d", u->host, u->port);
    return buf;
}

int redisurl_setup(const struct redisurl *u, const char *argv[2][3],
                   int argc[2], char dbbuf[16])
{
    int n = 0;

    if (u->password != NULL) {
        argv[n][0] = "AUTH";
        argv[n][1] = u->user != NULL ? u->user : u->password;
        argv[n][2] = u->password;
        argc[n++] = u->user != NULL ? 3 : 2;
    }
    if (u->db != 0) {
        snprintf(dbbuf, 16, "%d", u->db);
        argv[n][0] = "SELECT";
        argv[n][1] = dbbuf;
        argc[n++] = 2;
    }
    return n;
}

struct redisContext *redisurl_connect(const struct redisurl *u, int timeout_ms,
                                      char *err, size_t errlen)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    const char *argv[2][3];
    int argc[2], n;
    char dbbuf[16], where[300];
    redisContext *c;

    c = u->path != NULL ? redisConnectUnixWithTimeout(u->path, tv)
                        : redisConnectWithTimeout(u->host, u->port, tv);
    if (c == NULL || c->err) {
        fail(err, errlen, "cannot connect to Redis at %s: %s",
             redisurl_where(u, where, sizeof(where)),
             c != NULL ? c->errstr : "out of memory");
        goto err;
    }
    if (redisSetTimeout(c, tv) != REDIS_OK) {
        fail(err, errlen, "cannot set the Redis timeout: %s", c->errstr);
        goto err;
    }
    n = redisurl_setup(u, argv, argc, dbbuf);
    for (int i = 0; i < n; i++) {
        redisReply *r = redisCommandArgv(c, argc[i], argv[i], NULL);
        bool bad = r == NULL || r->type == REDIS_REPLY_ERROR;
        if (bad)
            fail(err, errlen, "Redis %s failed: %s", argv[i][0],
                 r != NULL ? r->str : c->errstr);
        if (r != NULL)
            freeReplyObject(r);
        if (bad)
            goto err;
    }
    return c;
err:
    if (c != NULL)
        redisFree(c);
    return NULL;
}
