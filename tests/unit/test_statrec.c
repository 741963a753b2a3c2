/* test_statrec.c - the counters record of one process and the cluster sum */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "statrec.h"
#include "tap.h"

static int64_t path_int(json_object *o, const char *a, const char *b,
                        const char *c)
{
    json_object *v = o;

    if (!json_object_object_get_ex(v, a, &v) ||
        (b != NULL && !json_object_object_get_ex(v, b, &v)) ||
        (c != NULL && !json_object_object_get_ex(v, c, &v)))
        return -1;
    return json_object_get_int64(v);
}

#define TWO "{\"events\":[{},{}],\"last_id\":\"1-0\"}"

int main(void)
{
    struct statrec a, b, back, two[2];
    char key[STATREC_KEY_MAX];
    size_t len;
    char *json;
    json_object *o, *procs;

    statrec_init(&a, "crosstalkd", 8081, 1000);
    statrec_init(&b, "crosstalk-fcgi", 0, 1000);
    ok(strchr(a.id, ':') != NULL, "the id is host:pid (%s)", a.id);
    is_int(statrec_ttl_ms(1000), 3000, "the TTL is three intervals");
    is_str(statrec_key(key, "h:1"), "ct:stats:proc:h:1", "the record's key");

    a.c[STATREC_SHORT_POLL][STATREC_REQUESTS] = 7;
    a.c[3][STATREC_OPEN] = 2; /* SSE */
    a.updated_ms = a.started_ms + 5;
    b.c[STATREC_SHORT_POLL][STATREC_REQUESTS] = 5;
    b.c[STATREC_SHORT_POLL][STATREC_EMPTY] = 1;
    b.c[STATREC_REST][STATREC_BYTES_OUT] = 1ULL << 40;

    json = statrec_encode(&a, &len);
    ok(statrec_decode(json, len, &back) == 0, "a record decodes");
    ok(memcmp(&a, &back, sizeof(a)) == 0, "and comes back whole");
    free(json);
    ok(statrec_decode("{\"id\":1}", 8, &back) != 0,
       "a wrong record is refused");
    ok(statrec_decode("nope", 4, &back) != 0, "so is what is not JSON");

    two[0] = a;
    two[1] = b;
    json = statrec_sum_json(two, 2, "cluster", a.id, 1000, &len);
    o = json_tokener_parse(json);
    ok(o != NULL, "the sum is JSON");
    is_int(path_int(o, "transports", "short_poll", "requests"), 12,
           "short-poll requests are summed");
    is_int(path_int(o, "transports", "short_poll", "empty"), 1,
           "empty answers are summed");
    is_int(path_int(o, "transports", "rest", "bytes_out"), 1LL << 40,
           "64-bit counters survive");
    is_int(path_int(o, "streams", NULL, NULL), 2, "streams: the open streams");
    ok(json_object_object_get_ex(o, "processes", &procs) &&
           json_object_array_length(procs) == 2,
       "both processes are listed");
    is_int(path_int(json_object_array_get_idx(procs, 1), "pid", NULL, NULL),
           b.pid, "with their pid");
    ok(path_int(json_object_array_get_idx(procs, 1), "port", NULL, NULL) < 0,
       "a FastCGI process has no port");
    json_object_put(o);
    free(json);

    is_int(statrec_count_events(TWO, strlen(TWO)), 2,
           "events of an answer counted");
    is_int(statrec_count_events("{\"events\":[]}", 13), 0, "none");
    is_int(statrec_count_events("{\"error\":\"x\"}", 13), -1, "an error");
    return tap_done();
}
