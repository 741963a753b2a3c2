/* rexec_sync.h - the synchronous executor (rexec.h) of the pool and the
 * backup: one blocking connection, bounded by a timeout, made again after
 * any failure */
#ifndef CT_REXEC_SYNC_H
#define CT_REXEC_SYNC_H

#include <stddef.h>

struct redisContext;
struct rexec;
struct rexec_sync;

/* Parses `url` (redisurl.h) and remembers `timeout_ms`, the bound of the
 * connect and of every command; connects lazily. Returns NULL, with a
 * message in err, when the URL is malformed. */
struct rexec_sync *rexec_sync_new(const char *url, int timeout_ms, char *err,
                                  size_t errlen);
/* One executor per shard of the comma-separated redis_url `list`
 * (redisurl_parse_list): returns how many and sets *shards to them and *x
 * to their executors (in the list's order, for store_new; free *x with
 * free), or -1 with a message in err. */
int rexec_sync_new_list(const char *list, int timeout_ms,
                        struct rexec_sync ***shards, struct rexec ***x,
                        char *err, size_t errlen);
void rexec_sync_free_list(struct rexec_sync **shards, int n);
/* Closes the connection; accepts NULL. */
void rexec_sync_free(struct rexec_sync *s);
/* After a command or a connect fails by timing out (a Redis that hangs),
 * the executor rests this long: a new connection must first answer a PING
 * within REXEC_SYNC_PROBE_MS (or the timeout, if shorter), and its
 * commands fail at once (DOWN) when it does not, and the rest goes on,
 * rather than each waiting the whole timeout for a Redis that does not
 * answer. One that answers ends the rest (a reply lost on its way costs
 * nothing more). A refusal (a Redis that is down) costs no wait, and
 * causes no rest. */
#define REXEC_SYNC_REST_MS 1000
#define REXEC_SYNC_PROBE_MS 100

/* The executor, as long as `s` lives. Its send runs the command and calls
 * back before it returns. A command that fails (no connection, a write or
 * read error, the timeout) has the connection dropped, so that the next
 * one connects again (after a timeout, once REXEC_SYNC_REST_MS has
 * passed). Send returns -1 (DOWN) when the command did not leave whole (or
 * was not sent: resting), and calls back with NULL (UNKNOWN) when it left
 * and no answer came. */
struct rexec *rexec_sync_rexec(struct rexec_sync *s);

/* For code that speaks hiredis itself: the connection, made now if need be
 * (a connection Redis closed while idle is noticed and made again), or
 * NULL when Redis cannot be reached (logged once until it can). */
struct redisContext *rexec_sync_context(struct rexec_sync *s);
/* Drops the connection after a failure on it: the next use reconnects. */
void rexec_sync_drop(struct rexec_sync *s);

#endif
