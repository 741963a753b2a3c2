/* long_poll.c - GET /api/rooms/{room}/poll: held open until anything after
 * `since` exists, then answered with it; 204 after the timeout */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "app.h"
#include "bus.h"
#include "config.h"
#include "query.h"
#include "presence.h"
#include "resume.h"
#include "store.h"
#include "tally.h"
#include "transport.h"
#include "xmalloc.h"

struct long_poll {
    struct subscriber sub;
    struct request *r;
    struct http_watch *watch;
    struct event *timer;
    struct query_history q;
    struct bus_event **got; /* what the answer will carry */
    size_t ngot, cap;
    bool waiting; /* counted in stats as open */
    bool counted; /* counted in app.polls */
};

static void free_poll(void *arg)
{
    struct long_poll *p = arg;

    if (p->counted)
        tally_give(app.polls, p->sub.user);
    for (size_t i = 0; i < p->ngot; i++)
        bus_event_unref(p->got[i]);
    free(p->got);
    http_request_free(p->r);
    free(p);
}

/* Leaves the bus and stops the timer and the watch; the request stays. */
static void detach(struct long_poll *p)
{
    resume_cancel(&p->sub);
    bus_unsubscribe(app.bus, &p->sub);
    if (p->timer != NULL)
        event_free(p->timer);
    p->timer = NULL;
    http_watch_free(p->watch);
    p->watch = NULL;
    if (p->waiting)
        stats[TRANSPORT_LONG_POLL].open--;
    p->waiting = false;
}

/* Answers with what was gathered, or 204 with nothing, and frees p on the
 * next loop turn (we may be inside its deliver callback). */
static void answer(struct long_poll *p)
{
    struct evhttp_request *req = p->r->req;
    struct evbuffer *out = evhttp_request_get_output_buffer(req);
    char last[STREAMID_STRLEN];
    size_t bytes = 0;

    detach(p);
    if (p->ngot == 0) {
        stats[TRANSPORT_LONG_POLL].empty++;
        http_api_headers(req, "application/json");
        evhttp_send_reply(req, 204, "No Content", NULL);
    } else {
        streamid_format(&p->sub.last, last);
        evbuffer_add(out, "{\"events\":[", 11);
        for (size_t i = 0; i < p->ngot; i++) {
            if (i > 0)
                evbuffer_add(out, ",", 1);
            bus_blob_add(p->got[i]->json, out);
        }
        evbuffer_add_printf(out, "],\"last_id\":\"%s\"}\n", last);
        bytes = evbuffer_get_length(out);
        stats[TRANSPORT_LONG_POLL].delivered += p->ngot;
        stats[TRANSPORT_LONG_POLL].bytes_out += bytes;
        http_api_headers(req, "application/json");
        evhttp_send_reply(req, 200, "OK", NULL);
    }
    http_defer(free_poll, p);
}

static void deliver(struct subscriber *s, struct bus_event *e)
{
    struct long_poll *p = (struct long_poll *)s;

    /* a poll waits for what exists after `since`: stored messages only;
     * typing and presence are for the streams (and GET .../presence) */
    if (e->ev.type != EVENT_MESSAGE)
        return;
    if (p->ngot == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 4;
        p->got = xrealloc(p->got, p->cap * sizeof(*p->got));
    }
    p->got[p->ngot++] = bus_event_ref(e);
    if (!s->resuming)
        answer(p);
}

static void close_poll(struct subscriber *s)
{
    answer((struct long_poll *)s);
}

static const struct subscriber_ops ops = {deliver, close_poll, NULL, NULL};

static void timed_out(evutil_socket_t fd, short what, void *arg)
{
    answer(arg);
}

static void gone(void *arg)
{
    struct long_poll *p = arg;

    p->watch = NULL; /* freed by http.c */
    detach(p);
    free_poll(p);
}

static void resumed(struct subscriber *s, int status)
{
    struct long_poll *p = (struct long_poll *)s;
    struct timeval tv = {
        p->q.has_timeout ? p->q.timeout : app.cfg->longpoll_timeout, 0};

    if (status != 0) {
        detach(p);
        http_reply_error(p->r->req, p->r->kind, 503, "unavailable",
                         "the message store is unreachable; try again");
        http_defer(free_poll, p);
        return;
    }
    if (p->ngot > 0 || tv.tv_sec == 0 || app.draining) {
        answer(p);
        return;
    }
    p->waiting = true;
    stats[TRANSPORT_LONG_POLL].open++;
    p->timer = evtimer_new(app.base, timed_out, p);
    evtimer_add(p->timer, &tv);
    p->watch = http_watch_new(p->r->req, gone, p);
    /* held live events may answer (and so free) p here */
    bus_resume_done(s);
}

void long_poll_handle(struct request *r)
{
    struct long_poll *p = xcalloc(1, sizeof(*p));
    struct api_error err;

    p->r = r;
    p->sub.ops = &ops;
    p->sub.kind = TRANSPORT_LONG_POLL;
    strcpy(p->sub.room, r->room);
    strcpy(p->sub.user, r->user);
    if (query_parse_history(r->query, app.cfg->longpoll_max_timeout, &p->q,
                            &err) != 0 ||
        (p->q.has_before &&
         api_fail(&err, 400, "bad_request",
                  "a long poll takes since, not before") != 0)) {
        http_reply_api_error(r->req, r->kind, &err);
        free_poll(p);
        return;
    }
    if (!tally_take(app.polls, r->user)) {
        evhttp_add_header(evhttp_request_get_output_headers(r->req),
                          "Retry-After", "1");
        http_reply_error(r->req, r->kind, 429, "rate_limited",
                         "at most %d long polls at once per user",
                         app.cfg->longpolls_per_token);
        free_poll(p);
        return;
    }
    p->counted = true;
    presence_touch(r->room, r->user);
    resume_start(&p->sub, p->q.has_since ? &p->q.since : NULL, p->q.limit,
                 resumed);
}
