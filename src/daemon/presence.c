/* presence.c - who this daemon holds connections of, kept fresh in Redis */
#include "presence.h"

#include <search.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "app.h"
#include "config.h"
#include "names.h"
#include "store.h"
#include "xmalloc.h"

struct held {
    char room[NAME_ROOM_MAX + 1];
    char user[NAME_USER_MAX + 1];
    unsigned count;
};

static void *tree;
static struct event *timer;

static int held_cmp(const void *a, const void *b)
{
    const struct held *x = a, *y = b;
    int c = strcmp(x->room, y->room);

    return c ? c : strcmp(x->user, y->user);
}

static struct held *find(const char *room, const char *user, bool create)
{
    struct held key, *h;
    void *node;

    snprintf(key.room, sizeof(key.room), "%s", room);
    snprintf(key.user, sizeof(key.user), "%s", user);
    if ((node = tfind(&key, &tree, held_cmp)) != NULL)
        return *(struct held **)node;
    if (!create)
        return NULL;
    h = xmalloc(sizeof(*h));
    *h = key;
    h->count = 0;
    tsearch(h, &tree, held_cmp);
    return h;
}

void presence_join(const char *room, const char *user)
{
    struct held *h = find(room, user, true);

    if (h->count++ == 0)
        store_presence_touch(app.store, room, user, false);
}

void presence_leave(const char *room, const char *user)
{
    struct held *h = find(room, user, false);

    if (h == NULL || --h->count > 0)
        return;
    if (!app.draining)
        store_presence_leave(app.store, room, user);
    tdelete(h, &tree, held_cmp);
    free(h);
}

static void refresh_one(const void *node, VISIT which, int depth)
{
    const struct held *h = *(struct held *const *)node;

    if (which == postorder || which == leaf)
        store_presence_touch(app.store, h->room, h->user, false);
}

static void refresh(evutil_socket_t fd, short what, void *arg)
{
    twalk(tree, refresh_one);
}

void presence_start(void)
{
    int every = app.cfg->presence_ttl / 3;
    struct timeval tv = {every > 0 ? every : 1, 0};

    timer = event_new(app.base, -1, EV_PERSIST, refresh, NULL);
    event_add(timer, &tv);
}

void presence_stop(void)
{
    if (timer != NULL)
        event_free(timer);
    timer = NULL;
    tdestroy(tree, free);
    tree = NULL;
}
