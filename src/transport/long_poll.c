/* long_poll.c - GET /api/rooms/{room}/poll: held open until anything after
 * `since` exists, then answered with it; 204 after the timeout */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "bus.h"
#include "config.h"
#include "query.h"
#include "session.h"
#include "transport.h"
#include "xmalloc.h"

struct long_poll {
    struct session sess; /* first: the bus sees its subscriber */
    struct request *r;
    struct http_watch *watch;
    struct event timer; /* its timeout, once it waits */
    struct query_history q;
    struct bus_event **got; /* what the answer will carry */
    size_t ngot, cap;
    /* and the gap or the reset it tells */
    struct streamid_signal sig;
    bool waiting; /* counted in stats as open */
};

static void free_poll(void *arg)
{
    struct long_poll *p = arg;

    session_leave(&p->sess);
    for (size_t i = 0; i < p->ngot; i++)
        bus_event_unref(p->got[i]);
    free(p->got);
    http_request_free(p->r);
    free(p);
}

/* Leaves the bus and stops the timer and the watch; the request stays. */
static void detach(struct long_poll *p)
{
    session_stop(&p->sess);
    http_watch_free(p->watch);
    p->watch = NULL;
    if (p->waiting) {
        event_del(&p->timer);
        stats[TRANSPORT_LONG_POLL].open--;
    }
    p->waiting = false;
}

/* Answers with what was gathered, or 204 with nothing, and frees p on the
 * next loop turn (we may be inside its deliver callback). */
static void answer(struct long_poll *p)
{
    struct http_req *req = p->r->req;
    struct evbuffer *out = http_output(req);
    size_t bytes = 0;

    detach(p);
    if (p->ngot == 0 && p->sig.verdict == STREAMID_FINE) {
        stats[TRANSPORT_LONG_POLL].empty++;
        http_api_headers(req, "application/json");
        http_send_reply(req, 204, "No Content");
    } else {
        static const char head[] = "],\"last_id\":\"";
        char tail[sizeof(head) + STREAMID_STRLEN + API_SIGNAL_MEMBERS_MAX + 3];
        char *id = tail + sizeof(head) - 1, *end;

        /* ],"last_id":"ID"MEMBERS}\n by hand: printf was one of the
         * larger costs in a poll's profile */
        memcpy(tail, head, sizeof(head) - 1);
        end = id + strlen(streamid_format(&p->sess.sub.last, id));
        *end++ = '"';
        end += api_signal_members(&p->sig, end);
        *end++ = '}';
        *end++ = '\n';
        evbuffer_add(out, "{\"events\":[", 11);
        for (size_t i = 0; i < p->ngot; i++) {
            if (i > 0)
                evbuffer_add(out, ",", 1);
            bus_blob_add(p->got[i]->json, out);
        }
        evbuffer_add(out, tail, (size_t)(end - tail));
        bytes = evbuffer_get_length(out);
        stats[TRANSPORT_LONG_POLL].delivered += p->ngot;
        stats[TRANSPORT_LONG_POLL].bytes_out += bytes;
        http_api_headers(req, "application/json");
        http_send_reply(req, 200, "OK");
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

/* A gap or a reset is news: the poll answers with it at once (after the
 * replay, when it comes with one). */
static void signal_poll(struct subscriber *s, const struct streamid_signal *sig)
{
    struct long_poll *p = (struct long_poll *)s;

    p->sig = *sig;
    if (!s->resuming)
        answer(p);
}

static const struct subscriber_ops ops = {
    .deliver = deliver, .close = close_poll, .signal = signal_poll};

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
        p->q.has_timeout ? p->q.timeout : p->sess.cfg->longpoll_timeout, 0};
    const struct timeval *wait = &tv;

    if (status != 0) {
        detach(p);
        http_reply_error(p->r->req, p->r->kind, 503, "unavailable",
                         API_READ_FAILED "; try again");
        http_defer(free_poll, p);
        return;
    }
    if (p->ngot > 0 || p->sig.verdict != STREAMID_FINE || tv.tv_sec == 0 ||
        session_draining(&p->sess)) {
        answer(p);
        return;
    }
    /* Polls on the configured timeout share one of libevent's common
     * timeouts: a queue in the order they were added, where thousands of
     * waiting polls would otherwise each take a place in the timer heap. */
    if (!p->q.has_timeout)
        wait = event_base_init_common_timeout(p->sess.base, &tv);
    if (wait == NULL)
        wait = &tv;
    p->waiting = true;
    stats[TRANSPORT_LONG_POLL].open++;
    evtimer_assign(&p->timer, p->sess.base, timed_out, p);
    evtimer_add(&p->timer, wait);
    p->watch = http_watch_new(p->r->req, gone, p);
    /* held live events may answer (and so free) p here */
    bus_resume_done(s);
}

void long_poll_handle(struct request *r)
{
    struct long_poll *p = xcalloc(1, sizeof(*p));
    struct api_error err;

    p->r = r;
    session_open(&p->sess, r, &ops);
    if (query_parse_history(r->query, p->sess.cfg->longpoll_max_timeout, &p->q,
                            &err) != 0 ||
        (p->q.has_before &&
         api_fail(&err, 400, "bad_request",
                  "a long poll takes since, not before") != 0)) {
        http_reply_api_error(r->req, r->kind, &err);
        free_poll(p);
        return;
    }
    if (session_take(&p->sess, &err) != 0) {
        http_add_header(r->req, "Retry-After", "1");
        http_reply_api_error(r->req, r->kind, &err);
        free_poll(p);
        return;
    }
    session_join(&p->sess, p->q.has_since ? &p->q.since : NULL, p->q.limit,
                 resumed);
}
