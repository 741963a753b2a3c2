/* tally.c - how many of one kind of thing (streams, long polls) each user
 * holds open in this process, against a per-user limit */
#include "tally.h"

#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "names.h"
#include "xmalloc.h"

struct holder {
    char user[NAME_USER_MAX + 1];
    unsigned n;
};

struct tally {
    unsigned limit;
    void *tree; /* tsearch of struct holder, by user */
};

static int holder_cmp(const void *a, const void *b)
{
    return strcmp(((const struct holder *)a)->user,
                  ((const struct holder *)b)->user);
}

struct tally *tally_new(unsigned limit)
{
    struct tally *t = xcalloc(1, sizeof(*t));

    t->limit = limit;
    return t;
}

void tally_free(struct tally *t)
{
    if (t == NULL)
        return;
    tdestroy(t->tree, free);
    free(t);
}

static struct holder *find(const struct tally *t, const char *user)
{
    struct holder key;
    void *node;

    snprintf(key.user, sizeof(key.user), "%s", user);
    node = tfind(&key, (void *const *)&t->tree, holder_cmp);
    return node ? *(struct holder **)node : NULL;
}

bool tally_take(struct tally *t, const char *user)
{
    struct holder *h = find(t, user);

    if (h == NULL) {
        if (t->limit == 0)
            return false;
        h = xcalloc(1, sizeof(*h));
        snprintf(h->user, sizeof(h->user), "%s", user);
        if (tsearch(h, &t->tree, holder_cmp) == NULL) {
            log_error("tally: out of memory");
            abort();
        }
    }
    if (h->n >= t->limit)
        return false;
    h->n++;
    return true;
}

void tally_give(struct tally *t, const char *user)
{
    struct holder *h = find(t, user);

    if (h == NULL || h->n == 0) {
        log_error("tally: %s gave back what it did not hold", user);
        return;
    }
    if (--h->n == 0) {
        tdelete(h, &t->tree, holder_cmp);
        free(h);
    }
}

unsigned tally_count(const struct tally *t, const char *user)
{
    const struct holder *h = find(t, user);

    return h ? h->n : 0;
}

unsigned tally_limit(const struct tally *t)
{
    return t->limit;
}
