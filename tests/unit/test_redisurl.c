/* test_redisurl.c - redis_url parsing, and the setup commands it implies */
#include <string.h>

#include "redisurl.h"
#include "tap.h"

static void good(const char *url, const char *host, int port, const char *path,
                 const char *user, const char *pw, int db)
{
    struct redisurl u;
    char err[256] = "";
    int rc = redisurl_parse(url, &u, err, sizeof(err));

    ok(rc == 0, "%s parses (%s)", url, err);
    is_str(u.host, host, "%s: host", url);
    is_int(u.port, port, "%s: port", url);
    is_str(u.path, path, "%s: path", url);
    is_str(u.user, user, "%s: user", url);
    is_str(u.password, pw, "%s: password", url);
    is_int(u.db, db, "%s: db", url);
    redisurl_free(&u);
}

static void bad(const char *url, const char *why)
{
    struct redisurl u;
    char err[256] = "";

    ok(redisurl_parse(url, &u, err, sizeof(err)) == -1 && err[0] != '\0',
       "%s is refused (%s): %s", url, why, err);
    ok(strstr(err, "s3cret") == NULL, "the message does not show a password");
    redisurl_free(&u);
}

/* A list that parses into n URLs; `where` is their redisurl_where, joined
 * by spaces. */
static void good_list(const char *list, int n, const char *where)
{
    struct redisurl *u = NULL;
    char err[256] = "", got[1024] = "", one[300];
    int rc = redisurl_parse_list(list, &u, err, sizeof(err));

    is_int(rc, n, "list %s: %d URLs (%s)", list, n, err);
    for (int i = 0; i < rc; i++) {
        if (i > 0)
            strcat(got, " ");
        strcat(got, redisurl_where(&u[i], one, sizeof(one)));
    }
    is_str(got, where, "list %s: the servers in order", list);
    redisurl_free_list(u, rc);
}

/* A list refused with a message that holds `want` and no password. */
static void bad_list(const char *list, const char *why, const char *want)
{
    struct redisurl *u = (struct redisurl *)&u;
    char err[256] = "";
    int rc = redisurl_parse_list(list, &u, err, sizeof(err));

    ok(rc == -1 && u == NULL, "list %.60s is refused (%s)", list, why);
    ok(strstr(err, want) != NULL, "its message says \"%s\": %s", want, err);
    ok(strstr(err, "s3cret") == NULL, "the message does not show a password");
}

static void lists(void)
{
    char many[64 * 32 + 64], *p = many;
    struct redisurl *u;
    int rc;

    good_list("redis://a:6379", 1, "a:6379");
    good_list("redis://a:6379,redis://b:6380", 2, "a:6379 b:6380");
    good_list(" redis://a , redis://:pw@b:7000/2 ,\tunix:///run/r.sock ", 3,
              "a:6379 b:7000 /run/r.sock");
    good_list("redis://h:1,redis://h:2,redis://[::1]:3", 3, "h:1 h:2 ::1:3");
    for (int i = 0; i < REDISURL_LIST_MAX; i++)
        p += sprintf(p, "%sredis://h:%d", i > 0 ? "," : "", 7000 + i);
    rc = redisurl_parse_list(many, &u, NULL, 0);
    is_int(rc, REDISURL_LIST_MAX, "%d URLs are taken", REDISURL_LIST_MAX);
    ok(rc == REDISURL_LIST_MAX && u[rc - 1].port == 7000 + rc - 1,
       "the last one is the last");
    redisurl_free_list(u, rc);
    strcat(many, ",redis://h:9999");

    bad_list("", "empty", "redis_url: empty");
    bad_list("  ", "blank", "redis_url: empty");
    bad_list("redis://a,,redis://b", "empty item", "item 2 is empty");
    bad_list("redis://a, ,redis://b", "blank item", "item 2 is empty");
    bad_list(",redis://a", "comma first", "item 1 is empty");
    bad_list("redis://a,redis://b,", "comma last", "item 3 is empty");
    bad_list("redis://a,redis://b, ", "comma last, then a blank",
             "item 3 is empty");
    bad_list("redis://a:6379,redis://h:x", "bad port",
             "item 2 (redis://h:x): the port must be 1..65535");
    bad_list("redis://a,http://b", "not redis://",
             "item 2 (http://b): expected redis://");
    bad_list("redis://h:x", "one bad URL: the single parser's message",
             "redis_url: the port must be 1..65535");
    bad_list("redis://a,redis://:s3cret@h:99999", "bad port, with a password",
             "item 2 (redis://:***@h:99999)");
    bad_list("redis://a,redis://app:s3cret@h/x", "bad db, user and password",
             "item 2 (redis://app:***@h/x)");
    bad_list("redis://a,redis://s3cret@h", "password without ':'",
             "item 2 (redis://***@h)");
    /* a ',' inside a password cuts the URL in two: the first half, which
     * holds part of the password, is not shown */
    bad_list("redis://u:s3cret,more@h:6379/0", "a ',' in a password",
             "item 1 is not a Redis URL, and a later item holds an '@'");
    bad_list("redis://a:1,redis://u:s3cret,x@h:2", "the same, in item 2",
             "item 2 is not a Redis URL, and a later item holds an '@'");
    bad_list("redis://u:1,s3cret@h:2", "the first half parses",
             "item 2 (***@h:2): expected redis://");
    bad_list("redis://a:6379,redis://b,redis://a", "the same server twice",
             "item 3 (redis://a) is the same Redis server as item 1");
    bad_list("redis://Host:7000/1,redis://host:7000/2",
             "the same server, another case and database",
             "item 2 (redis://host:7000/2) is the same Redis server as item 1");
    bad_list("unix:///r.sock,unix:///r.sock?db=3", "the same socket",
             "item 2 (unix:///r.sock?db=3) is the same Redis server");
    bad_list(many, "one URL too many",
             "more than 64 Redis URLs (item 65 is redis://h:9999)");
    redisurl_free_list(NULL, 0);
}

int main(void)
{
    struct redisurl u;
    const char *argv[2][3];
    int argc[2];
    char dbbuf[16], where[64];

    good("redis://127.0.0.1:6379/0", "127.0.0.1", 6379, NULL, NULL, NULL, 0);
    good("redis://localhost", "localhost", 6379, NULL, NULL, NULL, 0);
    good("redis://h:7000/3", "h", 7000, NULL, NULL, NULL, 3);
    good("redis://:pw@h/2", "h", 6379, NULL, NULL, "pw", 2);
    good("redis://app:p@ss@h:1", "h", 1, NULL, "app", "p@ss", 0);
    good("redis://[::1]:6380/1", "::1", 6380, NULL, NULL, NULL, 1);
    good("unix:///run/redis.sock", NULL, 0, "/run/redis.sock", NULL, NULL, 0);
    good("unix:///run/redis.sock?db=5", NULL, 0, "/run/redis.sock", NULL, NULL,
         5);
    bad("http://h", "not redis://");
    bad("redis://", "no host");
    bad("redis://h:0", "port 0");
    bad("redis://h:70000", "port too big");
    bad("redis://h:x", "port not a number");
    bad("redis://h/x", "db not a number");
    bad("redis://user@h", "user without :password");
    bad("redis://[::1", "unterminated [");
    bad("unix://relative.sock", "relative path");
    bad("unix:///s?database=1", "not ?db=");
    bad("redis://:s3cret@h:99999", "port too big, with a password");

    redisurl_parse("redis://app:pw@h/7", &u, NULL, 0);
    is_int(redisurl_setup(&u, argv, argc, dbbuf), 2, "AUTH and SELECT");
    ok(argc[0] == 3 && strcmp(argv[0][1], "app") == 0 &&
           strcmp(argv[0][2], "pw") == 0,
       "AUTH user password");
    ok(argc[1] == 2 && strcmp(argv[1][0], "SELECT") == 0 &&
           strcmp(argv[1][1], "7") == 0,
       "SELECT 7");
    is_str(redisurl_where(&u, where, sizeof(where)), "h:6379", "where");
    redisurl_free(&u);
    redisurl_parse("redis://:pw@h", &u, NULL, 0);
    is_int(redisurl_setup(&u, argv, argc, dbbuf), 1, "AUTH only");
    ok(argc[0] == 2 && strcmp(argv[0][1], "pw") == 0, "AUTH password");
    redisurl_free(&u);
    redisurl_parse("redis://h", &u, NULL, 0);
    is_int(redisurl_setup(&u, argv, argc, dbbuf), 0, "nothing to set up");
    redisurl_free(&u);
    redisurl_free(NULL);
    lists();
    return tap_done();
}
