/* ratelimit.c - token buckets by key (an IP, a user), in process memory */
#include "ratelimit.h"

#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xmalloc.h"

#define KEY_MAX 64

struct bucket {
    char key[KEY_MAX];
    double tokens;
    int64_t at_ms; /* when tokens was last brought up to date */
};

struct ratelimit {
    double rate; /* tokens per ms */
    double burst;
    void *tree; /* tsearch of struct bucket, by key */
    size_t n;
    int64_t swept_ms;
};

static int bucket_cmp(const void *a, const void *b)
{
    return strcmp(((const struct bucket *)a)->key,
                  ((const struct bucket *)b)->key);
}

struct ratelimit *ratelimit_new(double rate, int64_t per_ms, double burst)
{
    struct ratelimit *rl = xcalloc(1, sizeof(*rl));

    rl->rate = rate / (double)per_ms;
    rl->burst = burst;
    return rl;
}

void ratelimit_free(struct ratelimit *rl)
{
    if (rl == NULL)
        return;
    tdestroy(rl->tree, free);
    free(rl);
}

static void refill(const struct ratelimit *rl, struct bucket *b, int64_t now)
{
    if (now > b->at_ms) {
        b->tokens += (double)(now - b->at_ms) * rl->rate;
        if (b->tokens > rl->burst)
            b->tokens = rl->burst;
        b->at_ms = now;
    }
}

/* twalk has no argument; the sweep in progress keeps its own. */
static const struct ratelimit *sweep_rl;
static int64_t sweep_now;
static struct bucket **sweep_full;
static size_t sweep_nfull;

static void collect_full(const void *node, VISIT which, int depth)
{
    struct bucket *b = *(struct bucket *const *)node;

    if (which != postorder && which != leaf)
        return;
    refill(sweep_rl, b, sweep_now);
    if (b->tokens >= sweep_rl->burst)
        sweep_full[sweep_nfull++] = b;
}

/* Forgets the buckets that are full again: they hold no information. */
static void sweep(struct ratelimit *rl, int64_t now)
{
    sweep_rl = rl;
    sweep_now = now;
    sweep_full = xcalloc(rl->n + 1, sizeof(*sweep_full));
    sweep_nfull = 0;
    twalk(rl->tree, collect_full);
    for (size_t i = 0; i < sweep_nfull; i++) {
        tdelete(sweep_full[i], &rl->tree, bucket_cmp);
        free(sweep_full[i]);
        rl->n--;
    }
    free(sweep_full);
    rl->swept_ms = now;
}

bool ratelimit_take(struct ratelimit *rl, const char *key, int64_t now_ms,
                    int *retry_s)
{
    struct bucket probe, *b;
    void *node;

    /* a full refill period after the last sweep, idle keys are full */
    if (rl->n > 0 && (double)(now_ms - rl->swept_ms) * rl->rate > rl->burst)
        sweep(rl, now_ms);
    snprintf(probe.key, sizeof(probe.key), "%s", key);
    if ((node = tfind(&probe, &rl->tree, bucket_cmp)) != NULL) {
        b = *(struct bucket **)node;
        refill(rl, b, now_ms);
    } else {
        b = xmalloc(sizeof(*b));
        *b = probe;
        b->tokens = rl->burst;
        b->at_ms = now_ms;
        tsearch(b, &rl->tree, bucket_cmp);
        rl->n++;
    }
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
        return true;
    }
    {
        double wait_s = (1.0 - b->tokens) / rl->rate / 1000.0;
        *retry_s = (int)wait_s;
        if (*retry_s < wait_s)
            (*retry_s)++;
    }
    if (*retry_s < 1)
        *retry_s = 1;
    return false;
}
