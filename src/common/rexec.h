/* rexec.h - how the store reaches Redis: an executor that sends one
 * command and calls back with its reply. crosstalkd drives it on its event
 * loop (src/daemon/redis.c); the pool and the backup drive it synchronously
 * (rexec_sync.c), the callback then running before send returns. */
#ifndef CT_REXEC_H
#define CT_REXEC_H

#include <stdbool.h>
#include <stddef.h>

struct redisReply;

/* Called once with the reply, or with NULL when the command was sent but
 * no answer came (the connection was lost, or redis_timeout_ms passed):
 * whether it ran is unknown. The reply is valid only during the call, and
 * the callback may send again. */
typedef void (*rexec_cb)(struct redisReply *reply, void *arg);

struct rexec {
    /* Sends a command (`lens` NULL: the arguments are C strings). `cb` NULL
     * is fire and forget. Returns 0 when it was sent, or -1 when nothing
     * could be sent (Redis down), then cb is not called. */
    int (*send)(struct rexec *x, rexec_cb cb, void *arg, int argc,
                const char **argv, const size_t *lens);
    /* Queues a command whose reply nobody reads, to go with the next send
     * in the same write (MULTI ... EXEC in one round trip). Returns 0, or
     * -1 when Redis is down. */
    int (*queue)(struct rexec *x, int argc, const char **argv,
                 const size_t *lens);
    /* True when commands can be sent now. */
    bool (*ready)(const struct rexec *x);
};

#endif
