/* reshard_servers.c - the servers of an old and a new redis_url list */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "keys.h"
#include "log.h"
#include "reshard_servers.h"

static int add(struct servers *sv, const struct redisurl *u)
{
    char where[280];
    int i;

    redisurl_where(u, where, sizeof(where));
    snprintf(sv->s[sv->n].where, sizeof(sv->s[sv->n].where), "%s/%d", where,
             u->db);
    for (i = 0; i < sv->n; i++)
        if (strcmp(sv->s[i].where, sv->s[sv->n].where) == 0)
            return i;
    sv->s[sv->n].url = u;
    return sv->n++;
}

static int servers_lock(struct servers *sv, int ttl_ms);

/* Parses and connects; servers_open closes what it opened on failure. */
static int open_all(struct servers *sv, const char *old_list,
                    const char *new_list, int timeout_ms)
{
    char err[512];
    int i;

    memset(sv, 0, sizeof(*sv));
    if (old_list != NULL) {
        sv->old_n =
            redisurl_parse_list(old_list, &sv->old_urls, err, sizeof(err));
        if (sv->old_n < 0) {
            fprintf(stderr, "crosstalk-backup: the old list: %s\n", err);
            sv->old_n = 0;
            return 2;
        }
    }
    sv->new_n = redisurl_parse_list(new_list, &sv->new_urls, err, sizeof(err));
    if (sv->new_n < 0) {
        fprintf(stderr, "crosstalk-backup: redis_url: %s\n", err);
        sv->new_n = 0;
        return 2;
    }
    for (i = 0; i < sv->old_n; i++)
        sv->old_at[i] = add(sv, &sv->old_urls[i]);
    for (i = 0; i < sv->new_n; i++)
        sv->new_at[i] = add(sv, &sv->new_urls[i]);
    for (i = 0; i < sv->n; i++) {
        sv->s[i].c =
            redisurl_connect(sv->s[i].url, timeout_ms, err, sizeof(err));
        if (sv->s[i].c == NULL) {
            log_error("%s: %s", sv->s[i].where, err);
            return 1;
        }
    }
    return 0;
}

int servers_open(struct servers *sv, const char *old_list, const char *new_list,
                 int timeout_ms, int lock_ttl_ms)
{
    int status = open_all(sv, old_list, new_list, timeout_ms);

    if (status == 0 && servers_lock(sv, lock_ttl_ms) < 0)
        status = 1;
    if (status != 0)
        servers_close(sv);
    return status;
}

static int servers_lock(struct servers *sv, int ttl_ms)
{
    long long left = 0;
    int i, r;

    for (i = 0; i < sv->n; i++) {
        r = lock_acquire(sv->s[i].c, &sv->s[i].lock, KEYS_BACKUP_LOCK, ttl_ms,
                         &left);
        if (r == 1)
            continue;
        if (r == 0)
            printf("crosstalk-backup: another run is in progress (%s on %s "
                   "is held for %lld ms more); try again later\n",
                   KEYS_BACKUP_LOCK, sv->s[i].where, left);
        fflush(stdout);
        while (--i >= 0)
            lock_release(sv->s[i].c, &sv->s[i].lock);
        return -1;
    }
    return 0;
}

int servers_refresh(struct servers *sv)
{
    int i;

    for (i = 0; i < sv->n; i++)
        if (lock_refresh(sv->s[i].c, &sv->s[i].lock, false) < 0)
            return -1;
    return 0;
}

void servers_close(struct servers *sv)
{
    int i;

    for (i = 0; i < sv->n; i++) {
        if (sv->s[i].c == NULL)
            continue;
        lock_release(sv->s[i].c, &sv->s[i].lock);
        redisFree(sv->s[i].c);
    }
    redisurl_free_list(sv->old_urls, sv->old_n);
    redisurl_free_list(sv->new_urls, sv->new_n);
    sv->n = 0;
}

void servers_progress(bool tty, bool final, int64_t *shown_ms, const char *fmt,
                      ...)
{
    int64_t now = lock_now_ms();
    va_list ap;

    if (!final && now - *shown_ms < (tty ? 250 : 2000))
        return;
    *shown_ms = now;
    if (tty)
        fputc('\r', stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(tty ? (final ? "\033[K\n" : "\033[K") : "\n", stderr);
    fflush(stderr);
}

void servers_error(const struct servers *sv, int at, const redisReply *reply,
                   const char *what)
{
    const redisContext *c = sv->s[at].c;

    log_error("%s on %s failed: %s", what, sv->s[at].where,
              reply != NULL && reply->type == REDIS_REPLY_ERROR ? reply->str
              : reply != NULL        ? "unexpected reply"
              : c->errstr[0] != '\0' ? c->errstr
                                     : "no reply");
}
