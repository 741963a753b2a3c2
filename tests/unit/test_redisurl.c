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
    return tap_done();
}
