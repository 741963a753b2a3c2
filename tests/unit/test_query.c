/* test_query.c - query string decoding and history parameters */
#include <stdlib.h>
#include <string.h>

#include "query.h"
#include "tap.h"

static void get_is(const char *qs, const char *key, const char *want)
{
    char *v = query_get(qs, key);

    is_str(v, want, "query_get(\"%s\", %s)", qs ? qs : "NULL", key);
    free(v);
}

static void bad(const char *qs, int max_timeout)
{
    struct query_history h;
    struct api_error err = {0, NULL, ""};

    ok(query_parse_history(qs, max_timeout, &h, &err) == -1 &&
           err.status == 400 && err.code &&
           strcmp(err.code, API_BAD_REQUEST) == 0,
       "400 bad_request for \"%s\" (%s)", qs, err.message);
}

int main(void)
{
    struct query_history h;
    struct api_error err;

    get_is("a=1&b=2", "b", "2");
    get_is("a=1&b=2", "a", "1");
    get_is("a=1&b=2", "c", NULL);
    get_is(NULL, "a", NULL);
    get_is("", "a", NULL);
    get_is("ab=1&a=2", "a", "2");
    get_is("a=1&a=2", "a", "1");
    get_is("a", "a", "");
    get_is("a=", "a", "");
    get_is("t=a%20b+c%2Bd%2fe", "t", "a b c+d/e");
    get_is("t=%C3%A9", "t", "\xc3\xa9");
    get_is("%74oken=x", "token", "x");
    get_is("t=%", "t", NULL);
    get_is("t=%4", "t", NULL);
    get_is("t=%zz", "t", NULL);
    get_is("t=%00", "t", NULL);
    get_is("t=a%2", "t", NULL);
    get_is("x=%zz&t=1", "t", "1");
    get_is("t=a=b", "t", "a=b");
    get_is("a=1;t=2", "t", "2");

    is_int(query_parse_history(NULL, 60, &h, &err), 0, "no query");
    ok(!h.has_since && !h.has_before && !h.has_timeout, "  nothing set");
    is_int(h.limit, 50, "  limit defaults to 50");
    is_str(h.since_str, "0-0", "  since_str 0-0");

    is_int(query_parse_history("since=1732230000000-5&limit=10&timeout=30", 60,
                               &h, &err),
           0, "since, limit, timeout");
    ok(h.has_since && h.since.ms == 1732230000000ULL && h.since.seq == 5,
       "  since");
    is_str(h.since_str, "1732230000000-5", "  since_str");
    is_int(h.limit, 10, "  limit");
    ok(h.has_timeout && h.timeout == 30, "  timeout");

    is_int(query_parse_history("since=7", 60, &h, &err), 0, "since=MS");
    is_str(h.since_str, "7-0", "  normalised");
    is_int(query_parse_history("before=9-1&limit=500", 60, &h, &err), 0,
           "before and limit 500");
    ok(h.has_before && h.before.ms == 9 && h.before.seq == 1, "  before");
    is_int(h.limit, 500, "  limit");
    is_int(query_parse_history("limit=1&timeout=0", 60, &h, &err), 0,
           "limit 1, timeout 0");
    ok(h.has_timeout && h.timeout == 0, "  timeout 0 is given");
    is_int(query_parse_history("timeout=60", 60, &h, &err), 0,
           "timeout at max");
    is_int(query_parse_history("since=&token=abc", 60, &h, &err), 0,
           "empty since is absent");
    ok(!h.has_since, "  no since");
    is_int(query_parse_history("since=1%2D2", 60, &h, &err), 0,
           "since percent-encoded");
    ok(h.since.ms == 1 && h.since.seq == 2, "  decoded");

    bad("since=1-0&before=2-0", 60);
    bad("since=abc", 60);
    bad("since=-1", 60);
    bad("since=1-2-3", 60);
    bad("since=18446744073709551616-0", 60);
    bad("since=%zz", 60);
    bad("before=x", 60);
    bad("before=1+", 60);
    bad("limit=0", 60);
    bad("limit=501", 60);
    bad("limit=-5", 60);
    bad("limit=abc", 60);
    bad("limit=10x", 60);
    bad("limit=99999999999999999999", 60);
    bad("limit=1.5", 60);
    bad("timeout=61", 60);
    bad("timeout=-1", 60);
    bad("timeout=ten", 60);
    bad("timeout=5", 2);
    bad("before=0-0", 60);
    bad("before=0", 60);
    is_int(query_parse_history("before=0-1", 60, &h, &err), 0,
           "before=0-1 is a bound");

    {
        struct query_rooms q;

        is_int(query_parse_rooms(NULL, &q, &err), 0, "rooms: no query");
        is_int(q.limit, QUERY_ROOMS_DEFAULT, "  limit 100");
        ok(!q.has_after, "  from the top");
        is_int(query_parse_rooms("limit=1000&after=1732230000000:lo-b_y", &q,
                                 &err),
               0, "rooms: limit and after");
        is_int(q.limit, 1000, "  limit 1000");
        ok(q.has_after && q.after_ts == 1732230000000LL, "  after ts");
        is_str(q.after_name, "lo-b_y", "  after name");
        is_int(query_parse_rooms("after=5%3Alobby&limit=", &q, &err), 0,
               "rooms: after percent-encoded, empty limit");
        ok(q.after_ts == 5 && strcmp(q.after_name, "lobby") == 0, "  decoded");
        {
            const char *bads[] = {
                "limit=0",
                "limit=1001",
                "limit=x",
                "after=lobby",
                "after=:lobby",
                "after=12:",
                "after=1-2:lobby",
                "after=x1:lobby",
                "after=1:Lobby",
                "after=1:a/b",
                "after=1234567890123456:lobby",
            };
            for (size_t i = 0; i < sizeof(bads) / sizeof(*bads); i++) {
                memset(&err, 0, sizeof(err));
                is_int(query_parse_rooms(bads[i], &q, &err), -1, "rooms: %s",
                       bads[i]);
                ok(err.status == 400 && strcmp(err.code, "bad_request") == 0,
                   "  400 bad_request");
            }
        }
    }
    return tap_done();
}
