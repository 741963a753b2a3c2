/* shard.c - which of N Redis shards holds a room or a user */
#include "shard.h"

#include "names.h"

/*
 * Jump consistent hash, after the paper's reasoning. Follow one key as the
 * number of buckets grows 1, 2, 3, ...: with n+1 buckets it must move to
 * the new bucket n with probability 1/(n+1), or stay. Its last move, to
 * bucket b, happened when b+1 buckets came; the chance that it has not
 * moved again by i buckets (i > b) is the product of the stays,
 * (b+1)/(b+2) * ... * (i-1)/i = (b+1)/i. So draw r uniform in (0, 1]: the
 * key's next move is to j = floor((b+1)/r), and we jump from move to move
 * until j passes the bucket count. About ln(buckets) steps.
 *
 * r comes from the key itself, through the paper's 64-bit linear
 * congruential generator (multiplier 2862933555777941757, increment 1),
 * whose 31 top bits give r = (top + 1) / 2^31. j is computed as the paper
 * does, (b+1) * (2^31 / (top + 1)) in IEEE doubles, in that order: another
 * implementation of it (a tool in another language) rounds the same way
 * and so places every key the same way.
 */
int32_t jump_consistent_hash(uint64_t key, int32_t buckets)
{
    int64_t b = -1, j = 0;

    while (j < buckets) {
        b = j;
        key = key * 2862933555777941757ULL + 1;
        j = (int64_t)((double)(b + 1) *
                      ((double)(1ULL << 31) / (double)((key >> 33) + 1)));
    }
    return (int32_t)b;
}

/* FNV-1a as its authors specify it for 64 bits: offset basis
 * 14695981039346656037, prime 2^40 + 2^8 + 0xb3. Public, fixed, a few
 * lines in any language, and the hash Centrifugo's Redis shards use with
 * jump hash. No key: a fixed public key (SipHash) would not keep anyone
 * from choosing names that crowd one shard either. */
uint64_t shard_hash(const char *s)
{
    uint64_t h = 14695981039346656037ULL;

    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

int shard_of_room(const char *room, int n)
{
    if (n <= 1)
        return 0;
    return jump_consistent_hash(shard_hash(room), n);
}

int shard_of_user(const char *name, int n)
{
    char folded[NAME_USER_MAX + 1];

    if (n <= 1)
        return 0;
    names_user_fold(name, folded);
    return jump_consistent_hash(shard_hash(folded), n);
}
