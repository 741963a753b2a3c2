/* test_tally.c - per-user counts against a limit: take, refuse, give back,
 * forget */
#include "tally.h"
#include "tap.h"

int main(void)
{
    struct tally *t = tally_new(3);
    int taken = 0;

    for (int i = 0; i < 5; i++)
        taken += tally_take(t, "alice");
    is_int(taken, 3, "a user holds at most the limit");
    is_int(tally_count(t, "alice"), 3, "and the count says so");
    ok(tally_take(t, "bob"), "another user has its own count");
    is_int(tally_count(t, "bob"), 1, "bob holds one");
    tally_give(t, "alice");
    is_int(tally_count(t, "alice"), 2, "giving one back frees a slot");
    ok(tally_take(t, "alice"), "which can be taken again");
    ok(!tally_take(t, "alice"), "but no more than the limit");
    for (int i = 0; i < 3; i++)
        tally_give(t, "alice");
    is_int(tally_count(t, "alice"), 0, "all given back: none held");
    tally_give(t, "alice"); /* logged, not counted below zero */
    is_int(tally_count(t, "alice"), 0, "a give without a take changes nothing");
    is_int(tally_count(t, "nobody"), 0, "an unknown user holds none");
    is_int(tally_limit(t), 3, "the limit it was made with");
    for (int i = 0; i < 1000; i++) {
        char user[16];
        snprintf(user, sizeof(user), "u%d", i);
        tally_take(t, user);
        tally_give(t, user);
    }
    taken = 0;
    for (int i = 0; i < 3; i++)
        taken += tally_take(t, "alice");
    is_int(taken, 3, "after many users came and went, counts start afresh");
    tally_free(t); /* frees what is still held (bob, alice) */
    tally_free(NULL);
    return tap_done();
}
