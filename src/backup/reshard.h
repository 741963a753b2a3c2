/* reshard.h - crosstalk-backup's key tools: --migrate-keys renames the keys
 * of deployments older than the hash-tagged names, --reshard moves rooms and
 * users to the shard the placement (shard.h) gives them in a new redis_url
 * list, and --reshard --verify checks that every key is where it belongs */
#ifndef CT_RESHARD_H
#define CT_RESHARD_H

#include <signal.h>
#include <stdbool.h>

struct reshard_opts {
    const char *old_urls; /* --reshard OLD_URLS */
    const char *new_urls; /* redis_url */
    int timeout_ms;       /* redis_timeout_ms */
    int lock_ttl_ms;
    bool dry_run;  /* list what moves, write nothing */
    bool verify;   /* check the placement, write nothing */
    bool progress; /* a progress line on stderr */
    bool tty;      /* ... rewritten in place */
    volatile sig_atomic_t *stop;
};

/* Each returns an exit status: 0 done, 1 failure (logged; for --verify:
 * a misplaced key, printed), 2 a malformed URL list. */
int reshard_run(const struct reshard_opts *o);
/* Renames the old-named keys of every room of ct:rooms on every server of
 * o->new_urls (o->old_urls unused). */
int migrate_keys(const struct reshard_opts *o);

#endif
