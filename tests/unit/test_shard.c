/* test_shard.c - the placement of rooms and users on Redis shards, fixed:
 * a deployed cluster keeps its data where these values put it */
#include <stdio.h>
#include <string.h>

#include "names.h"
#include "shard.h"
#include "tap.h"

#define NAMES 10000

/* Computed once (and checked against an independent implementation, Go's
 * hash/fnv with the paper's jump loop); never edit a value. */
static const struct {
    const char *room;
    int shard[5]; /* for n = 1..5 */
} placement[] = {
    {"general", {0, 1, 1, 1, 1}},
    {"random", {0, 0, 2, 2, 2}},
    {"lobby", {0, 1, 2, 2, 2}},
    {"dev", {0, 1, 2, 2, 2}},
    {"ops", {0, 0, 2, 2, 2}},
    {"a", {0, 1, 2, 2, 2}},
    {"0", {0, 0, 0, 0, 0}},
    {"-", {0, 1, 2, 2, 2}},
    {"_", {0, 1, 1, 3, 4}},
    {"room-1", {0, 1, 2, 2, 2}},
    {"room-2", {0, 0, 2, 2, 2}},
    {"x_y", {0, 1, 1, 3, 3}},
    {"z-9", {0, 1, 1, 1, 1}},
    {"support", {0, 0, 2, 2, 2}},
    {"team-00042", {0, 0, 0, 0, 4}},
    {"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
     {0, 0, 0, 0, 0}},
};

static char names[NAMES][16];

static void hash_vectors(void)
{
    /* FNV-1a 64 test vectors of its authors. */
    ok(shard_hash("") == 0xcbf29ce484222325ULL, "FNV-1a 64 of \"\"");
    ok(shard_hash("a") == 0xaf63dc4c8601ec8cULL, "FNV-1a 64 of \"a\"");
    ok(shard_hash("foobar") == 0x85944171f73967e8ULL,
       "FNV-1a 64 of \"foobar\"");
}

static void jump_vectors(void)
{
    /* Values other implementations of the paper's function publish. */
    is_int(jump_consistent_hash(1, 1), 0, "jump(1, 1)");
    is_int(jump_consistent_hash(42, 57), 43, "jump(42, 57)");
    is_int(jump_consistent_hash(256, 1024), 520, "jump(256, 1024)");
    is_int(jump_consistent_hash(3735883980ULL, 1), 0, "jump(3735883980, 1)");
    is_int(jump_consistent_hash(3735883980ULL, 666), 361,
           "jump(3735883980, 666)");
    is_int(jump_consistent_hash(16045690984833335023ULL, 255), 237,
           "jump(16045690984833335023, 255)");
    is_int(jump_consistent_hash(42, 0), -1, "no bucket: -1");
    is_int(jump_consistent_hash(42, -3), -1, "negative buckets: -1");
}

static void fixed_table(void)
{
    size_t i;
    int n, bad = 0;

    for (i = 0; i < sizeof(placement) / sizeof(placement[0]); i++)
        for (n = 1; n <= 5; n++) {
            int got = shard_of_room(placement[i].room, n);
            if (got != placement[i].shard[n - 1]) {
                diag("room %s, n %d: shard %d, expected %d", placement[i].room,
                     n, got, placement[i].shard[n - 1]);
                bad++;
            }
        }
    is_int(bad, 0, "the %zu rooms of the table keep their shards, n = 1..5",
           sizeof(placement) / sizeof(placement[0]));
    is_int(shard_of_room("general", 64), 6, "general of 64 shards");
    is_int(shard_of_room("general", 1000), 961, "general of 1000 shards");
}

static void one_shard(void)
{
    int bad = 0;

    for (int i = 0; i < NAMES; i++)
        bad += shard_of_room(names[i], 1) != 0 ||
               shard_of_user(names[i], 1) != 0 ||
               shard_of_room(names[i], 0) != 0;
    is_int(bad, 0, "n = 1 (and n = 0) places every name on shard 0");
}

static void users(void)
{
    int bad = 0;

    /* Users are placed by their name in lower case. */
    is_int(shard_of_user("alice", 5), 4, "alice of 5 shards");
    is_int(shard_of_user("Alice", 5), 4, "Alice is alice");
    is_int(shard_of_user("ALICE", 5), 4, "ALICE is alice");
    is_int(shard_of_user("bob", 3), 2, "bob of 3 shards");
    is_int(shard_of_user("Carol", 5), 3, "Carol of 5 shards");
    is_int(shard_of_user("dave", 5), 0, "dave of 5 shards");
    is_int(shard_of_user("Mallory", 2), 0, "Mallory of 2 shards");
    for (int n = 2; n <= 64; n++) {
        bad += shard_of_user("Alice.Smith_1", n) !=
               shard_of_user("alice.smith_1", n);
        bad += shard_of_user("ALICE.SMITH_1", n) !=
               shard_of_room("alice.smith_1", n);
    }
    is_int(bad, 0,
           "every case of a name lands where its lower case does, "
           "n = 2..64");
}

/* From n to n+1 shards a room stays or goes to the new shard n, and about
 * 1/(n+1) of them go. */
static void growth(void)
{
    int wrong = 0, off = 0;

    for (int n = 1; n < 64; n++) {
        int moved = 0;
        double want = (double)NAMES / (n + 1);

        for (int i = 0; i < NAMES; i++) {
            int a = shard_of_room(names[i], n),
                b = shard_of_room(names[i], n + 1);
            if (a != b && b != n) {
                if (wrong++ < 5)
                    diag("%s moved from %d to %d going from %d to %d shards",
                         names[i], a, b, n, n + 1);
            }
            moved += a != b;
        }
        if (moved < want * 0.8 || moved > want * 1.2) {
            diag("from %d to %d shards %d of %d rooms moved, expected "
                 "%.0f +-20%%",
                 n, n + 1, moved, NAMES, want);
            off++;
        }
        if (n == 1 || n == 2 || n == 4 || n == 63)
            diag("%d -> %d shards: %d of %d rooms moved (1/%d is %.0f)", n,
                 n + 1, moved, NAMES, n + 1, want);
    }
    is_int(wrong, 0,
           "growing n to n+1 moves rooms only to the new shard, "
           "n = 1..63");
    is_int(off, 0, "growing n to n+1 moves 1/(n+1) of the rooms +-20%%");
}

/* Each of n shards holds about 1/n of the rooms. */
static void balance(void)
{
    int off = 0;

    for (int n = 2; n <= 8; n++) {
        int count[8] = {0};
        double want = (double)NAMES / n;

        for (int i = 0; i < NAMES; i++)
            count[shard_of_room(names[i], n)]++;
        for (int s = 0; s < n; s++)
            if (count[s] < want * 0.9 || count[s] > want * 1.1) {
                diag("%d shards: shard %d holds %d rooms, expected %.0f "
                     "+-10%%",
                     n, s, count[s], want);
                off++;
            }
    }
    is_int(off, 0, "2..8 shards each hold 1/n of the rooms +-10%%");
}

int main(void)
{
    int invalid = 0;

    for (int i = 0; i < NAMES; i++) {
        snprintf(names[i], sizeof(names[i]), "room-%05d", i);
        invalid += !names_room_valid(names[i], strlen(names[i]));
    }
    is_int(invalid, 0, "the %d generated names are room names", NAMES);
    hash_vectors();
    jump_vectors();
    fixed_table();
    one_shard();
    users();
    growth();
    balance();
    return tap_done();
}
