/* shard.h - which of N Redis shards holds a room or a user */
#ifndef CT_SHARD_H
#define CT_SHARD_H

#include <stdint.h>

/* Jump consistent hash (Lamping and Veach, "A Fast, Minimal Memory,
 * Consistent Hash Algorithm", 2014): the bucket 0..buckets-1 of `key`.
 * Going from n to n+1 buckets moves a key only to the new bucket n, and
 * about 1/(n+1) of the keys move. Returns -1 when buckets < 1. The values
 * are fixed by tests/unit/test_shard.c and must never change: a deployed
 * cluster keeps its data where this function put it. */
int32_t jump_consistent_hash(uint64_t key, int32_t buckets);

/* FNV-1a, 64 bits, of the bytes of the NUL-terminated `s`. */
uint64_t shard_hash(const char *s);

/* The shard 0..n-1 of a room, from its name (room names have one case).
 * Everything of the room lives there: its stream, presence, backup
 * checkpoint, bus channel and idempotency keys. n <= 1 gives 0. */
int shard_of_room(const char *room, int n);

/* The shard 0..n-1 of a user, from its name folded to lower case
 * (names_user_fold), so "Alice" and "alice" are placed together. `name` is
 * a valid user name. n <= 1 gives 0. */
int shard_of_user(const char *name, int n);

#endif
