/* tally.h - how many of one kind of thing (streams, long polls) each user
 * holds open in this process, against a per-user limit */
#ifndef CT_TALLY_H
#define CT_TALLY_H

#include <stdbool.h>

struct tally;

/* A tally that lets each user hold at most `limit` at once. */
struct tally *tally_new(unsigned limit);
/* Frees the tally and what it counts. Accepts NULL. */
void tally_free(struct tally *t);

/* Counts one more for `user`. Returns false, counting nothing, when the
 * user already holds the limit. */
bool tally_take(struct tally *t, const char *user);
/* Counts one fewer for `user`; a user that holds none is forgotten, so
 * memory follows the users holding something. Every successful
 * tally_take is given back exactly once. */
void tally_give(struct tally *t, const char *user);
/* How many `user` holds now. */
unsigned tally_count(const struct tally *t, const char *user);
unsigned tally_limit(const struct tally *t);

#endif
