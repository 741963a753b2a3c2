/* reply.c - hiredis replies turned into our types */
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "reply.h"
#include "xmalloc.h"

static bool is_string(const redisReply *r)
{
    return r != NULL &&
           (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

/* Parses the ts field: digits only, as the append script writes it. */
static int parse_ts(const char *s, size_t len, int64_t *out)
{
    int64_t v = 0;
    size_t i;

    if (len == 0 || len > 18)
        return -1;
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Turns one [id, [field, value, ...]] entry into a message event. */
static int entry_event(const redisReply *e, const char *room,
                       struct chat_event *ev)
{
    const redisReply *id, *fields, *from = NULL, *text = NULL, *ts = NULL;
    struct streamid sid;
    int64_t tsv;
    size_t i;

    if (e == NULL || e->type != REDIS_REPLY_ARRAY || e->elements != 2)
        return -1;
    id = e->element[0];
    fields = e->element[1];
    if (!is_string(id) || streamid_parse(id->str, id->len, &sid) < 0 ||
        fields == NULL || fields->type != REDIS_REPLY_ARRAY)
        return -1;
    for (i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *f = fields->element[i], *v = fields->element[i + 1];

        if (!is_string(f) || !is_string(v))
            continue;
        if (f->len == 4 && memcmp(f->str, "from", 4) == 0)
            from = v;
        else if (f->len == 4 && memcmp(f->str, "text", 4) == 0)
            text = v;
        else if (f->len == 2 && memcmp(f->str, "ts", 2) == 0)
            ts = v;
    }
    if (from == NULL || text == NULL || ts == NULL ||
        !names_user_valid(from->str, from->len) ||
        parse_ts(ts->str, ts->len, &tsv) < 0)
        return -1;
    event_init_message(ev, room, id->str, from->str, text->str, text->len, tsv);
    return 0;
}

int reply_events(const struct redisReply *r, const char *room,
                 struct chat_event **evs, size_t *n)
{
    size_t i;

    *evs = NULL;
    *n = 0;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return -1;
    *evs = xcalloc(r->elements, sizeof(**evs));
    for (i = 0; i < r->elements; i++) {
        if (entry_event(r->element[i], room, &(*evs)[*n]) < 0) {
            log_warn("room %s: skipping a malformed stream entry", room);
            continue;
        }
        (*n)++;
    }
    return 0;
}

int reply_first_id(const struct redisReply *r, char *buf)
{
    const redisReply *e, *id;
    struct streamid sid;

    buf[0] = '\0';
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements == 0)
        return -1;
    e = r->element[0];
    if (e == NULL || e->type != REDIS_REPLY_ARRAY || e->elements < 1)
        return -1;
    id = e->element[0];
    if (!is_string(id) || streamid_parse(id->str, id->len, &sid) < 0)
        return -1;
    streamid_format(&sid, buf);
    return 0;
}

int reply_appended(const redisReply *r, struct reply_appended *a)
{
    struct streamid sid;

    memset(a, 0, sizeof(*a));
    if (r == NULL || r->type != REDIS_REPLY_ARRAY ||
        (r->elements != 2 && r->elements != 3) || !is_string(r->element[0]) ||
        !is_string(r->element[1]) ||
        streamid_parse(r->element[0]->str, r->element[0]->len, &sid) != 0 ||
        parse_ts(r->element[1]->str, r->element[1]->len, &a->ts) != 0 ||
        (r->elements == 3 && !is_string(r->element[2]))) {
        log_warn("redis: the append script answered no {id, ts[, text]}");
        return -1;
    }
    streamid_format(&sid, a->id);
    if (r->elements == 3) {
        a->repeat = true;
        a->text = r->element[2]->str;
        a->text_len = r->element[2]->len;
    }
    return 0;
}

enum api_fault reply_fault(const redisReply *r)
{
    if (r == NULL)
        return API_FAULT_UNKNOWN;
    if (r->type == REDIS_REPLY_ERROR)
        return api_fault_of(r->str);
    return API_FAULT_NONE;
}

/* An integer field, which RESP2 gives as an integer. */
static int field_u64(const redisReply *v, uint64_t *out)
{
    if (v == NULL || v->type != REDIS_REPLY_INTEGER || v->integer < 0)
        return -1;
    *out = (uint64_t)v->integer;
    return 0;
}

static int field_id(const redisReply *v, struct streamid *out)
{
    if (!is_string(v))
        return -1;
    return streamid_parse(v->str, v->len, out);
}

int reply_stream_log(const redisReply *r, struct streamid_log *out)
{
    bool has_length = false, has_last = false, has_added = false;
    uint64_t added = 0;

    memset(out, 0, sizeof(*out));
    if (r != NULL && r->type == REDIS_REPLY_ERROR)
        return strstr(r->str, "no such key") != NULL ? 0 : -1;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return -1;
    out->exists = true;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];

        if (!is_string(k))
            continue;
        if (strcmp(k->str, "length") == 0) {
            if (field_u64(v, &out->length) < 0)
                return -1;
            has_length = true;
        } else if (strcmp(k->str, "last-generated-id") == 0) {
            if (field_id(v, &out->last) < 0)
                return -1;
            has_last = true;
        } else if (strcmp(k->str, "entries-added") == 0) {
            if (field_u64(v, &added) < 0)
                return -1;
            has_added = true;
        } else if (strcmp(k->str, "first-entry") == 0 &&
                   v->type == REDIS_REPLY_ARRAY) {
            /* [id, [field, value, ...]]; nil when the stream is empty */
            if (v->elements < 1 || field_id(v->element[0], &out->first) < 0)
                return -1;
        }
    }
    if (!has_length || !has_last)
        return -1;
    if (!has_added)
        out->removed = UINT64_MAX; /* before Redis 7: unknown */
    else
        out->removed = added > out->length ? added - out->length : 0;
    return 0;
}

int reply_resume(const redisReply *r, const char *room,
                 struct streamid_log *log, struct chat_event **evs, size_t *n)
{
    const redisReply *info, *range;

    *evs = NULL;
    *n = 0;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2)
        return -1;
    info = r->element[0];
    range = r->element[1];
    if (reply_stream_log(info, log) < 0) {
        log_warn("room %s: XINFO STREAM: %s", room,
                 info->type == REDIS_REPLY_ERROR ? info->str
                                                 : "unexpected reply");
        return -1;
    }
    if (range->type == REDIS_REPLY_ERROR) {
        log_warn("room %s: XRANGE: %s", room, range->str);
        return -1;
    }
    return reply_events(range, room, evs, n);
}
