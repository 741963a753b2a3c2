/* test_ratelimit.c - token buckets: burst, refill, retry hint, forgetting */
#include "ratelimit.h"
#include "tap.h"

int main(void)
{
    struct ratelimit *rl = ratelimit_new(2, 1000, 4); /* 2/s, burst 4 */
    int retry = -1, taken = 0;

    for (int i = 0; i < 10; i++)
        taken += ratelimit_take(rl, "alice", 1000, &retry);
    is_int(taken, 4, "a full bucket gives its burst at once");
    is_int(retry, 1, "and then asks to retry in a second");
    ok(ratelimit_take(rl, "bob", 1000, &retry),
       "another key has its own bucket");
    ok(!ratelimit_take(rl, "alice", 1400, &retry),
       "0.4 s later: no whole token yet");
    ok(ratelimit_take(rl, "alice", 1500, &retry),
       "0.5 s later: one token (2/s)");
    ok(!ratelimit_take(rl, "alice", 1500, &retry), "and only one");
    taken = 0;
    for (int i = 0; i < 10; i++)
        taken += ratelimit_take(rl, "alice", 100000, &retry);
    is_int(taken, 4, "refill stops at the burst however long the wait");
    ratelimit_free(rl);

    rl = ratelimit_new(30, 60000, 30); /* 30 a minute */
    taken = 0;
    for (int i = 0; i < 40; i++)
        taken += ratelimit_take(rl, "10.0.0.1", 0, &retry);
    is_int(taken, 30, "30 a minute: 30 at once");
    is_int(retry, 2, "then one more in 2 s");
    /* many keys, then long idle: they are forgotten, and a new one works */
    for (int i = 0; i < 1000; i++) {
        char key[32];
        snprintf(key, sizeof(key), "k%d", i);
        ratelimit_take(rl, key, 1000, &retry);
    }
    ok(ratelimit_take(rl, "late", 10 * 60000, &retry),
       "after a long idle the sweep runs and a new key still gets a token");
    ok(ratelimit_take(rl, "10.0.0.1", 10 * 60000, &retry),
       "an old key starts full again");
    ratelimit_free(rl);
    ratelimit_free(NULL);
    return tap_done();
}
