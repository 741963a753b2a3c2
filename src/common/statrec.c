/* statrec.c - one process's counters as a record in Redis, and their sum */
#include "statrec.h"

#include <hiredis/hiredis.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "event.h"
#include "jsonobj.h"
#include "log.h"
#include "redisurl.h"
#include "xmalloc.h"

const char STATREC_READ_SCRIPT[] =
    "local out = {}\n"
    "for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
    "  local v = redis.call('GET', ARGV[1] .. id)\n"
    "  if v then out[#out + 1] = v else redis.call('SREM', KEYS[1], id) end\n"
    "end\n"
    "return out\n";

const char *const statrec_transport_names[STATREC_TRANSPORTS] = {
    "rest", "short_poll", "long_poll", "sse", "websocket",
};

const char *const statrec_field_names[STATREC_FIELDS] = {
    "open", "requests", "delivered", "bytes_out", "empty", "dropped",
};

static void self_host(char *buf, size_t size)
{
    memset(buf, 0, size);
    if (gethostname(buf, size - 1) != 0 || buf[0] == '\0')
        snprintf(buf, size, "localhost");
}

void statrec_self_id(char *buf, size_t size)
{
    char host[sizeof(((struct statrec *)0)->host)];

    self_host(host, sizeof(host));
    snprintf(buf, size, "%s:%ld", host, (long)getpid());
}

void statrec_init(struct statrec *r, const char *program, int port,
                  int interval_ms)
{
    memset(r, 0, sizeof(*r));
    self_host(r->host, sizeof(r->host));
    snprintf(r->program, sizeof(r->program), "%s", program);
    r->pid = (long)getpid();
    r->port = port;
    r->interval_ms = interval_ms;
    r->started_ms = event_now_ms();
    statrec_self_id(r->id, sizeof(r->id));
}

int statrec_ttl_ms(int interval_ms)
{
    return 3 * interval_ms;
}

char *statrec_key(char *buf, const char *id)
{
    snprintf(buf, STATREC_KEY_MAX, STATREC_PREFIX "%s", id);
    return buf;
}

static uint64_t streams(const uint64_t c[STATREC_TRANSPORTS][STATREC_FIELDS])
{
    return c[2][STATREC_OPEN] + c[3][STATREC_OPEN] + c[4][STATREC_OPEN];
}

static json_object *
transports_json(const uint64_t c[STATREC_TRANSPORTS][STATREC_FIELDS])
{
    json_object *o = json_object_new_object();

    for (int t = 0; t < STATREC_TRANSPORTS; t++) {
        json_object *tr = json_object_new_object();

        for (int f = 0; f < STATREC_FIELDS; f++)
            json_object_object_add(tr, statrec_field_names[f],
                                   json_object_new_int64((int64_t)c[t][f]));
        json_object_object_add(o, statrec_transport_names[t], tr);
    }
    return o;
}

static json_object *record_json(const struct statrec *r)
{
    json_object *o = json_object_new_object();

    json_object_object_add(o, "id", json_object_new_string(r->id));
    json_object_object_add(o, "program", json_object_new_string(r->program));
    json_object_object_add(o, "host", json_object_new_string(r->host));
    json_object_object_add(o, "pid", json_object_new_int64(r->pid));
    if (r->port > 0)
        json_object_object_add(o, "port", json_object_new_int(r->port));
    json_object_object_add(o, "started", json_object_new_int64(r->started_ms));
    json_object_object_add(o, "updated", json_object_new_int64(r->updated_ms));
    json_object_object_add(o, "interval_ms",
                           json_object_new_int(r->interval_ms));
    json_object_object_add(o, "streams",
                           json_object_new_int64((int64_t)streams(r->c)));
    json_object_object_add(o, "transports", transports_json(r->c));
    return o;
}

char *statrec_encode(const struct statrec *r, size_t *len)
{
    return jsonobj_finish(record_json(r), len);
}

static int get_string(json_object *o, const char *key, char *buf, size_t size)
{
    json_object *v;

    if (!json_object_object_get_ex(o, key, &v) ||
        !json_object_is_type(v, json_type_string))
        return -1;
    snprintf(buf, size, "%s", json_object_get_string(v));
    return 0;
}

static int64_t get_int(json_object *o, const char *key)
{
    json_object *v;

    if (!json_object_object_get_ex(o, key, &v) ||
        !json_object_is_type(v, json_type_int))
        return 0;
    return json_object_get_int64(v);
}

int statrec_decode(const char *json, size_t len, struct statrec *r)
{
    json_object *o = jsonobj_parse(json, len, NULL), *trs, *tr;
    int rc = -1;

    memset(r, 0, sizeof(*r));
    if (o == NULL)
        return -1;
    if (get_string(o, "id", r->id, sizeof(r->id)) != 0 ||
        get_string(o, "program", r->program, sizeof(r->program)) != 0 ||
        !json_object_object_get_ex(o, "transports", &trs))
        goto done;
    get_string(o, "host", r->host, sizeof(r->host));
    r->pid = (long)get_int(o, "pid");
    r->port = (int)get_int(o, "port");
    r->interval_ms = (int)get_int(o, "interval_ms");
    r->started_ms = get_int(o, "started");
    r->updated_ms = get_int(o, "updated");
    for (int t = 0; t < STATREC_TRANSPORTS; t++) {
        if (!json_object_object_get_ex(trs, statrec_transport_names[t], &tr))
            continue;
        for (int f = 0; f < STATREC_FIELDS; f++) {
            int64_t v = get_int(tr, statrec_field_names[f]);
            r->c[t][f] = v > 0 ? (uint64_t)v : 0;
        }
    }
    rc = 0;
done:
    json_object_put(o);
    return rc;
}

char *statrec_sum_json(const struct statrec *recs, size_t n, const char *scope,
                       const char *self, int interval_ms, size_t *len)
{
    uint64_t sum[STATREC_TRANSPORTS][STATREC_FIELDS] = {{0}};
    json_object *o = json_object_new_object();
    json_object *procs = json_object_new_array();

    for (size_t i = 0; i < n; i++) {
        for (int t = 0; t < STATREC_TRANSPORTS; t++)
            for (int f = 0; f < STATREC_FIELDS; f++)
                sum[t][f] += recs[i].c[t][f];
        json_object_array_add(procs, record_json(&recs[i]));
    }
    json_object_object_add(o, "streams",
                           json_object_new_int64((int64_t)streams(sum)));
    json_object_object_add(o, "transports", transports_json(sum));
    json_object_object_add(o, "scope", json_object_new_string(scope));
    json_object_object_add(o, "self", json_object_new_string(self));
    json_object_object_add(o, "interval_ms", json_object_new_int(interval_ms));
    json_object_object_add(o, "processes", procs);
    return jsonobj_finish(o, len);
}

int statrec_count_events(const char *body, size_t len)
{
    json_object *o = jsonobj_parse(body, len, NULL), *evs;
    int n = -1;

    if (o == NULL)
        return -1;
    if (json_object_object_get_ex(o, "events", &evs) &&
        json_object_is_type(evs, json_type_array))
        n = (int)json_object_array_length(evs);
    json_object_put(o);
    return n;
}

/* --- the synchronous writer --- */

struct statrec_sink {
    struct redisurl url;
    int timeout_ms;
    redisContext *c;
    int failing; /* the last write failed and was logged */
};

struct statrec_sink *statrec_sink_new(const char *redis_url, int timeout_ms,
                                      char *err, size_t errlen)
{
    struct statrec_sink *s = xcalloc(1, sizeof(*s));
    /* several URLs shard the rooms; the records go to the first */
    size_t n = strcspn(redis_url, ", ");
    char *first = xstrndup(redis_url, n);

    s->timeout_ms = timeout_ms;
    if (redisurl_parse(first, &s->url, err, errlen) != 0) {
        statrec_sink_free(s);
        s = NULL;
    }
    free(first);
    return s;
}

int statrec_sink_write(struct statrec_sink *s, const struct statrec *r)
{
    char key[STATREC_KEY_MAX], px[24], err[512];
    const char *set[5], *sadd[3];
    size_t setlen[5];
    redisReply *rep = NULL;
    char *json;
    size_t len;
    int rc = -1;

    if (s->c == NULL) {
        s->c = redisurl_connect(&s->url, s->timeout_ms, err, sizeof(err));
        if (s->c == NULL) {
            if (!s->failing)
                log_warn("stats: %s", err);
            s->failing = 1;
            return -1;
        }
    }
    json = statrec_encode(r, &len);
    snprintf(px, sizeof(px), "%d", statrec_ttl_ms(r->interval_ms));
    set[0] = "SET";
    set[1] = statrec_key(key, r->id);
    set[2] = json;
    set[3] = "PX";
    set[4] = px;
    for (int i = 0; i < 5; i++)
        setlen[i] = strlen(set[i]);
    setlen[2] = len;
    sadd[0] = "SADD";
    sadd[1] = STATREC_INDEX;
    sadd[2] = r->id;
    redisAppendCommandArgv(s->c, 5, set, setlen);
    redisAppendCommandArgv(s->c, 3, sadd, NULL);
    for (int i = 0; i < 2; i++) {
        if (redisGetReply(s->c, (void **)&rep) != REDIS_OK || rep == NULL ||
            rep->type == REDIS_REPLY_ERROR) {
            if (!s->failing)
                log_warn("stats: cannot write the record to redis: %s",
                         rep != NULL && rep->type == REDIS_REPLY_ERROR
                             ? rep->str
                             : s->c->errstr);
            goto done;
        }
        freeReplyObject(rep);
        rep = NULL;
    }
    rc = 0;
done:
    if (rep != NULL)
        freeReplyObject(rep);
    if (rc != 0) {
        redisFree(s->c);
        s->c = NULL;
        s->failing = 1;
    } else {
        s->failing = 0;
    }
    free(json);
    return rc;
}

void statrec_sink_free(struct statrec_sink *s)
{
    if (s == NULL)
        return;
    if (s->c != NULL)
        redisFree(s->c);
    redisurl_free(&s->url);
    free(s);
}
