/* short_poll.c - GET /api/rooms/{room}/messages: what is new after `since`
 * (short polling), or a page of history before `before`; answered at once */
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "bus.h"
#include "config.h"
#include "query.h"
#include "presence.h"
#include "store.h"
#include "transport.h"
#include "xmalloc.h"

struct short_poll {
    struct request *r;
    struct query_history q;
};

/* Answers {"events":[...],"last_id":...} and the signal's members:
 * encodes each event once. */
static void reply_events(struct request *r, const struct chat_event *evs,
                         size_t n, const char *since,
                         const struct streamid_signal *sig)
{
    const char **jsons = xcalloc(n + 1, sizeof(*jsons));
    size_t *lens = xcalloc(n + 1, sizeof(*lens));
    const char *last = n > 0 ? evs[n - 1].id : since;
    size_t len;
    char *body;

    for (size_t i = 0; i < n; i++)
        jsons[i] = event_to_json(&evs[i], &lens[i]);
    body = api_events_json(jsons, lens, n, last, sig, &len);
    stats[r->kind].delivered += n;
    if (n == 0)
        stats[r->kind].empty++;
    http_reply_json(r->req, r->kind, 200, body, len);
    free(body);
    for (size_t i = 0; i < n; i++)
        free((char *)jsons[i]);
    free(jsons);
    free(lens);
}

static void got_events(int status, struct chat_event *evs, size_t n, void *arg)
{
    struct short_poll *p = arg;
    struct request *r = p->r;

    if (status != 0)
        http_reply_error(r->req, r->kind, 503, "unavailable",
                         "the message store is unreachable; try again");
    else
        reply_events(r, evs, n, "0-0", NULL);
    http_request_free(r);
    free(p);
}

/* After `since`: with a gap or a reset told, "last_id" is where the
 * client goes on from. */
static void got_resume(int status, struct chat_event *evs, size_t n,
                       const struct streamid_log *log, void *arg)
{
    struct short_poll *p = arg;
    struct streamid_signal sig;
    char from[STREAMID_STRLEN];

    if (status != 0) {
        got_events(status, NULL, 0, p);
        return;
    }
    streamid_judge(&p->q.since, log, &sig);
    reply_events(p->r, evs, n, streamid_format(&sig.from, from), &sig);
    http_request_free(p->r);
    free(p);
}

/* A poll whose since is the newest message the bus has seen in the room is
 * answered without Redis, as a long poll is: nothing stored after it has
 * gone by unseen. The room is followed from now on for the next poll. */
static bool up_to_date(const char *room, const struct streamid *since)
{
    struct streamid latest;
    bool known = bus_room_latest(app.bus, room, &latest);

    bus_room_follow(app.bus, room);
    return known && streamid_cmp(since, &latest) == 0;
}

void short_poll_handle(struct request *r)
{
    struct short_poll *p = xcalloc(1, sizeof(*p));
    struct api_error err;
    int rc;

    p->r = r;
    if (query_parse_history(r->query, app.cfg->longpoll_max_timeout, &p->q,
                            &err) != 0) {
        http_reply_api_error(r->req, r->kind, &err);
        http_request_free(r);
        free(p);
        return;
    }
    presence_touch(r->room, r->user);
    if (p->q.has_since && up_to_date(r->room, &p->q.since)) {
        reply_events(r, NULL, 0, p->q.since_str, NULL);
        http_request_free(r);
        free(p);
        return;
    }
    if (p->q.has_since)
        rc = store_resume(app.store, r->room, &p->q.since, p->q.limit,
                          got_resume, p);
    else
        rc = store_before(app.store, r->room,
                          p->q.has_before ? &p->q.before : NULL, p->q.limit,
                          got_events, p);
    if (rc != 0)
        got_events(-1, NULL, 0, p);
}
