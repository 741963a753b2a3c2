/* test_reply.c - XRANGE replies into message events */
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "reply.h"
#include "tap.h"

static redisReply *str(const char *s)
{
    redisReply *r = calloc(1, sizeof(*r));

    r->type = REDIS_REPLY_STRING;
    r->str = (char *)s;
    r->len = strlen(s);
    return r;
}

static redisReply *arr(size_t n, ...)
{
    redisReply *r = calloc(1, sizeof(*r));
    va_list ap;
    size_t i;

    r->type = REDIS_REPLY_ARRAY;
    r->elements = n;
    r->element = calloc(n ? n : 1, sizeof(*r->element));
    va_start(ap, n);
    for (i = 0; i < n; i++)
        r->element[i] = va_arg(ap, redisReply *);
    va_end(ap);
    return r;
}

static redisReply *num(long long v)
{
    redisReply *r = calloc(1, sizeof(*r));

    r->type = REDIS_REPLY_INTEGER;
    r->integer = v;
    return r;
}

/* Frees what str/arr built (strings are not owned). */
static void drop(redisReply *r)
{
    size_t i;

    if (r == NULL)
        return;
    if (r->type == REDIS_REPLY_ARRAY) {
        for (i = 0; i < r->elements; i++)
            drop(r->element[i]);
        free(r->element);
    }
    free(r);
}

static redisReply *entry(const char *id, const char *from, const char *text,
                         const char *ts)
{
    return arr(2, str(id),
               arr(6, str("from"), str(from), str("text"), str(text), str("ts"),
                   str(ts)));
}

int main(void)
{
    struct chat_event *evs;
    size_t n;
    redisReply *r, nil = {0};
    char id[STREAMID_STRLEN];

    log_open("error", NULL); /* the skipped entries below log warnings */

    r = arr(3, entry("1-0", "alice", "hi", "1732230000000"),
            arr(2, str("2-0"),
                arr(4, str("ts"), str("5"), str("from"), str("bob"))),
            arr(2, str("3-1"),
                arr(6, str("ts"), str("7"), str("text"), str("yo"), str("from"),
                    str("bob"))));
    is_int(reply_events(r, "lobby", &evs, &n), 0, "XRANGE reply");
    is_int(n, 2, "  the entry without text is skipped");
    if (n == 2) {
        is_int(evs[0].type, EVENT_MESSAGE, "  message");
        is_str(evs[0].id, "1-0", "  id");
        is_str(evs[0].room, "lobby", "  room");
        is_str(evs[0].from, "alice", "  from");
        is_str(evs[0].text, "hi", "  text");
        is_int(evs[0].ts, 1732230000000LL, "  ts");
        is_str(evs[1].id, "3-1", "  fields in any order");
        is_str(evs[1].text, "yo", "  text");
        is_int(evs[1].ts, 7, "  ts");
    }
    is_int(reply_first_id(r, id), 0, "first id");
    is_str(id, "1-0", "  value");
    event_free_array(evs, n);
    drop(r);

    r = arr(3, entry("bad", "alice", "hi", "1"),
            entry("4-0", "no one!", "hi", "1"),
            entry("5-0", "alice", "hi", "12x"));
    is_int(reply_events(r, "lobby", &evs, &n), 0, "malformed entries");
    is_int(n, 0, "  all skipped: bad id, bad from, bad ts");
    event_free_array(evs, n);
    is_int(reply_first_id(r, id), -1, "first id of a malformed entry");
    drop(r);

    r = arr(0);
    is_int(reply_events(r, "lobby", &evs, &n), 0, "empty reply");
    is_int(n, 0, "  no events");
    event_free_array(evs, n);
    is_int(reply_first_id(r, id), -1, "first id of an empty reply");
    is_str(id, "", "  buf emptied");
    drop(r);

    nil.type = REDIS_REPLY_NIL;
    is_int(reply_events(&nil, "lobby", &evs, &n), -1, "nil reply rejected");
    ok(evs == NULL && n == 0, "  nothing returned");
    r = str("ERR x");
    r->type = REDIS_REPLY_ERROR;
    is_int(reply_events(r, "lobby", &evs, &n), -1, "error reply rejected");
    is_int(reply_first_id(r, id), -1, "  first id too");
    drop(r);
    is_int(reply_events(NULL, "lobby", &evs, &n), -1, "NULL rejected");
    /* NULL is accepted like free(NULL); a crash here ends the plan short */
    event_free_array(NULL, 0);
    {
        struct streamid_log log;
        redisReply err = {0}, *info;

        err.type = REDIS_REPLY_ERROR;
        err.str = "ERR no such key";
        err.len = strlen(err.str);
        is_int(reply_stream_log(&err, &log), 0, "XINFO: no such key");
        ok(!log.exists, "  is no stream");
        err.str = "WRONGTYPE Operation against a key";
        err.len = strlen(err.str);
        is_int(reply_stream_log(&err, &log), -1, "XINFO: another error fails");
        is_int(reply_stream_log(NULL, &log), -1, "XINFO: no reply fails");

        info = arr(10, str("length"), num(2), str("last-generated-id"),
                   str("9-1"), str("entries-added"), num(5), str("first-entry"),
                   entry("7-0", "a", "x", "1"), str("last-entry"),
                   entry("9-1", "a", "y", "2"));
        is_int(reply_stream_log(info, &log), 0, "XINFO STREAM reply");
        ok(log.exists && log.length == 2 && log.removed == 3,
           "  2 held, 3 gone");
        ok(log.first.ms == 7 && log.last.ms == 9 && log.last.seq == 1,
           "  first 7-0, last 9-1");
        drop(info);
        info = arr(6, str("length"), num(0), str("last-generated-id"),
                   str("9-1"), str("first-entry"), &nil);
        is_int(reply_stream_log(info, &log), 0, "XINFO of Redis 6, empty");
        ok(log.removed == UINT64_MAX, "  removals unknown");
        ok(streamid_is_zero(&log.first), "  no first entry");
        info->element[5] = NULL;
        drop(info);
        info = arr(2, str("length"), num(0));
        is_int(reply_stream_log(info, &log), -1,
               "XINFO without last-generated-id fails");
        drop(info);
        info =
            arr(4, str("length"), num(1), str("last-generated-id"), str("x"));
        is_int(reply_stream_log(info, &log), -1, "XINFO with a bad id fails");
        drop(info);
    }
    return tap_done();
}
