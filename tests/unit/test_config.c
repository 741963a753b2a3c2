/* test_config.c - defaults, file syntax, environment, flags and errors */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* By path: a config.h left at the top of a build tree by an older
 * configure (autoconf's header) would shadow ours on -I. */
#include "../../src/common/config.h"
#include "tap.h"

static char err[256];

/* Runs config_load on a NULL-terminated argument list; returns its result
 * and leaves the compacted argv in out. */
static int load(struct config *c, char **out, const char *const *args)
{
    int argc = 0;

    while (args[argc] != NULL) {
        out[argc] = (char *)args[argc];
        argc++;
    }
    out[argc] = NULL;
    err[0] = '\0';
    return config_load(c, argc, out, err, sizeof(err));
}

static char *write_temp(const char *text)
{
    char *path = strdup("/tmp/crosstalk-test-conf.XXXXXX");
    int fd = mkstemp(path);

    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
        abort();
    close(fd);
    return path;
}

static void parse_fails(const char *text, const char *want_err)
{
    struct config c;

    config_defaults(&c);
    err[0] = '\0';
    ok(config_parse_text(&c, text, "t.conf", err, sizeof(err)) == -1 &&
           strcmp(err, want_err) == 0,
       "rejects %s", text);
    if (strcmp(err, want_err) != 0)
        diag("got \"%s\", expected \"%s\"", err, want_err);
    config_free(&c);
}

int main(void)
{
    struct config c;
    char *argv[16];
    char *path, *path2;
    FILE *devnull;

    unsetenv("CROSSTALK_PORT");
    unsetenv("CROSSTALK_BIND");
    setenv("CROSSTALK_CONFIG", "/nonexistent/crosstalk.conf", 1);

    config_defaults(&c);
    is_str(c.bind, "127.0.0.1", "default bind");
    is_int(c.port, 8081, "default port");
    is_str(c.redis_url, "redis://127.0.0.1:6379/0", "default redis_url");
    is_str(c.mongo_uri, "mongodb://127.0.0.1:27017/crosstalk",
           "default mongo_uri");
    is_str(c.mongo_write_concern, "majority", "default write concern");
    ok(c.www_root != NULL && strstr(c.www_root, "www") != NULL,
       "default www_root (%s)", c.www_root);
    is_str(c.log_level, "info", "default log_level");
    is_str(c.log_file, "", "default log_file");
    is_int(c.max_connections, 10000, "default max_connections");
    is_int(c.max_message_bytes, 4096, "default max_message_bytes");
    is_int(c.max_body_bytes, 65536, "default max_body_bytes");
    is_int(c.max_header_bytes, 8192, "default max_header_bytes");
    is_int(c.header_timeout, 10, "default header_timeout");
    is_int(c.longpoll_timeout, 25, "default longpoll_timeout");
    is_int(c.longpoll_max_timeout, 60, "default longpoll_max_timeout");
    is_int(c.sse_heartbeat, 15, "default sse_heartbeat");
    is_int(c.sse_retry_ms, 2000, "default sse_retry_ms");
    is_int(c.ws_ping_interval, 30, "default ws_ping_interval");
    is_int(c.ws_pong_timeout, 10, "default ws_pong_timeout");
    is_int(c.client_buffer_limit, 1048576, "default client_buffer_limit");
    is_int(c.presence_ttl, 30, "default presence_ttl");
    is_str(c.allowed_origins, "", "default allowed_origins");
    is_int(c.rate_register_per_min, 30, "default rate_register_per_min");
    is_int(c.rate_send_per_sec, 20, "default rate_send_per_sec");
    is_int(c.longpolls_per_token, 8, "default longpolls_per_token");
    is_int(c.redis_timeout_ms, 2000, "default redis_timeout_ms");
    is_int(c.backup_batch, 500, "default backup_batch");
    is_int(c.token_cache_ttl, 5, "default token_cache_ttl");
    is_int(c.streams_per_token, 16, "default streams_per_token");
    is_str(c.trusted_proxies, "", "default trusted_proxies");
    is_str(c.unix_socket, "", "default unix_socket");
    is_int(c.rate_typing_per_sec, 2, "default rate_typing_per_sec");
    is_int(c.stats_interval_ms, 1000, "default stats_interval_ms");

    is_int(config_parse_text(&c,
                             "# a comment\n"
                             "\n"
                             "port = 9000\n"
                             "  bind=0.0.0.0   \n"
                             "redis_url = \"unix:///tmp/r.sock\"  # quoted\n"
                             "allowed_origins = 'http://a#b, http://c'\n"
                             "log_file = /var/log/ct.log # trailing comment\n"
                             "mongo_uri = \"a \\\"q\\\" \\\\ b\"\r\n"
                             "max_message_bytes = 1\n"
                             "presence_ttl = 86400",
                             "t.conf", err, sizeof(err)),
           0, "file text parses");
    is_int(c.port, 9000, "  port");
    is_str(c.bind, "0.0.0.0", "  bare value, blanks trimmed");
    is_str(c.redis_url, "unix:///tmp/r.sock", "  double-quoted value");
    is_str(c.allowed_origins, "http://a#b, http://c",
           "  single-quoted value keeps #");
    is_str(c.log_file, "/var/log/ct.log", "  comment after a bare value");
    is_str(c.mongo_uri, "a \"q\" \\ b", "  escapes in double quotes, CRLF");
    is_int(c.max_message_bytes, 1, "  minimum accepted");
    is_int(c.presence_ttl, 86400, "  last line without newline");
    config_free(&c);

    parse_fails("port = 70000\n",
                "port = 70000 (from t.conf:1): out of range 1..65535");
    parse_fails("\n\nport = 0\n",
                "port = 0 (from t.conf:3): out of range 1..65535");
    parse_fails("port = 80a\n",
                "port = 80a (from t.conf:1): not a number (1..65535)");
    parse_fails("port = \n", "port =  (from t.conf:1): not a number "
                             "(1..65535)");
    parse_fails("port = 99999999999999999999\n",
                "port = 99999999999999999999 (from t.conf:1): not a number "
                "(1..65535)");
    parse_fails("longpoll_timeout = 61\n",
                "longpoll_timeout = 61 (from t.conf:1): out of range 1..60");
    parse_fails("max_message_bytes = 1048577\n",
                "max_message_bytes = 1048577 (from t.conf:1): out of range "
                "1..1048576");
    parse_fails("max_connections = 0\n",
                "max_connections = 0 (from t.conf:1): out of range "
                "1..1000000");
    parse_fails("colour = blue\n", "unknown key \"colour\" (from t.conf:1)");
    parse_fails("just words\n", "t.conf:1: expected \"key = value\"");
    parse_fails("= 5\n", "t.conf:1: expected \"key = value\"");
    parse_fails("bind = \"127.0.0.1\n", "t.conf:1: bind: malformed quoted "
                                        "value");
    parse_fails("bind = \"a\" b\n", "t.conf:1: bind: malformed quoted value");
    parse_fails("log_level = loud\n", "log_level = loud (from t.conf:1): "
                                      "not one of debug|info|warn|error");

    config_defaults(&c);
    is_int(config_set(&c, "max-body-bytes", "1024", "test", err, sizeof(err)),
           0, "config_set with dashes");
    is_int(c.max_body_bytes, 1024, "  set");
    is_int(config_set(&c, "nope", "1", "test", err, sizeof(err)), -1,
           "config_set unknown key");
    is_str(err, "unknown key \"nope\" (from test)", "  message");
    config_free(&c);

    /* file, then environment, then flags */
    path = write_temp("port = 9001\nbind = 10.0.0.1\nbackup_batch = 7\n");
    setenv("CROSSTALK_CONFIG", path, 1);
    setenv("CROSSTALK_PORT", "9002", 1);
    {
        const char *args[] = {"prog", "pos1",      "--bind",
                              "::1",  "--restore", "--log-level=debug",
                              "pos2", NULL};

        is_int(load(&c, argv, args), 4, "load returns the remaining argc");
        is_str(err, "", "  no error");
        is_int(c.backup_batch, 7, "  file value");
        is_int(c.port, 9002, "  environment beats the file");
        is_str(c.bind, "::1", "  flag beats the file");
        is_str(c.log_level, "debug", "  --key=value flag");
        is_str(argv[0], "prog", "  argv[0] kept");
        is_str(argv[1], "pos1", "  positional kept");
        is_str(argv[2], "--restore", "  unknown flag kept");
        is_str(argv[3], "pos2", "  order kept");
        ok(argv[4] == NULL, "  argv NULL-terminated");
        config_free(&c);
    }
    {
        const char *args[] = {"prog", "--port=9003", NULL};

        is_int(load(&c, argv, args), 1, "flag beats the environment");
        is_int(c.port, 9003, "  port from the flag");
        config_free(&c);
    }
    {
        const char *args[] = {"prog", "--port", "70000", NULL};

        is_int(load(&c, argv, args), -1, "out-of-range flag");
        is_str(err, "port = 70000 (from --port): out of range 1..65535",
               "  message names key, value, origin and range");
        config_free(&c);
    }
    setenv("CROSSTALK_PORT", "-3", 1);
    {
        const char *args[] = {"prog", NULL};

        is_int(load(&c, argv, args), -1, "out-of-range environment");
        is_str(err, "port = -3 (from CROSSTALK_PORT): out of range 1..65535",
               "  message names the variable");
        config_free(&c);
    }
    unsetenv("CROSSTALK_PORT");
    {
        const char *args[] = {"prog", "--port", NULL};

        is_int(load(&c, argv, args), -1, "flag without its value");
        is_str(err, "--port needs a value", "  message");
        config_free(&c);
    }
    {
        const char *args[] = {"prog", "--log-file", "--port=9000", NULL};

        is_int(load(&c, argv, args), -1, "a flag where the value belongs");
        is_str(err, "--log-file needs a value", "  message");
        config_free(&c);
    }
    {
        const char *args[] = {"prog", "--longpoll-timeout=50",
                              "--longpoll-max-timeout=40", NULL};

        is_int(load(&c, argv, args), -1,
               "longpoll_timeout above longpoll_max_timeout");
        ok(strstr(err, "longpoll_timeout = 50") != NULL, "  message: %s", err);
        config_free(&c);
    }
    {
        const char *args[] = {"prog",
                              "--redis-url=redis://127.0.0.1:6379, "
                              "redis://:secret@127.0.0.1:99999",
                              NULL};
        char **urls;
        int n;

        is_int(load(&c, argv, args), -1, "redis_url: a bad shard refused");
        ok(strstr(err, "item 2") != NULL && strstr(err, "secret") == NULL,
           "  names the item, not its password: %s", err);
        config_free(&c);
        args[1] = "--redis-url=redis://127.0.0.1:6379 , redis://127.0.0.1:6380";
        is_int(load(&c, argv, args), 1, "redis_url: a list of two shards");
        n = config_redis_urls(&c, &urls);
        ok(n == 2 && strcmp(urls[0], "redis://127.0.0.1:6379") == 0 &&
               strcmp(urls[1], "redis://127.0.0.1:6380") == 0,
           "  config_redis_urls: both, trimmed");
        config_redis_urls_free(urls, n);
        config_free(&c);
    }

    path2 = write_temp("port = 9100\n");
    {
        const char *args[] = {"prog", "--config", path2, "x", NULL};

        is_int(load(&c, argv, args), 2, "--config FILE beats CROSSTALK_CONFIG");
        is_int(c.port, 9100, "  its value");
        is_str(argv[1], "x", "  --config and its file removed from argv");
        config_free(&c);
    }
    {
        char flag[64];
        const char *args[] = {"prog", flag, NULL};

        snprintf(flag, sizeof(flag), "--config=%s", path2);
        is_int(load(&c, argv, args), 1, "--config=FILE");
        is_int(c.port, 9100, "  its value");
        config_free(&c);
    }
    {
        const char *args[] = {"prog", "--config", "/nonexistent/ct.conf", NULL};

        is_int(load(&c, argv, args), -1, "a missing --config file is an error");
        ok(strstr(err, "/nonexistent/ct.conf") != NULL, "  names it: %s", err);
        config_free(&c);
    }
    {
        const char *args[] = {"prog", "--", "--port=1", NULL};

        is_int(load(&c, argv, args), 3, "flags after -- are left alone");
        is_int(c.port, 9001, "  port from the file");
        is_str(argv[2], "--port=1", "  kept");
        config_free(&c);
    }
    unlink(path2);
    free(path2);

    path2 = write_temp("port = 1\nbogus = 2\n");
    setenv("CROSSTALK_CONFIG", path2, 1);
    {
        const char *args[] = {"prog", NULL};

        is_int(load(&c, argv, args), -1, "unknown key in the file");
        ok(strstr(err, "bogus") != NULL && strstr(err, ":2") != NULL,
           "  message names key and line: %s", err);
        config_free(&c);
    }
    unlink(path2);
    free(path2);
    unlink(path);
    free(path);

    devnull = fopen("/dev/null", "w");
    config_usage(devnull, NULL);
    fclose(devnull);
    {
        char *buf = NULL;
        size_t blen = 0;
        FILE *mem = open_memstream(&buf, &blen);

        config_usage(mem, NULL);
        fclose(mem);
        ok(strstr(buf, "--max-message-bytes") != NULL &&
               strstr(buf, "4096") != NULL && strstr(buf, "1..1048576"),
           "usage lists keys with default and range");
        ok(strstr(buf, "--backup-batch") != NULL, "usage lists the last key");
        ok(strstr(buf, "ignored") == NULL, "usage of every key: none ignored");
        free(buf);
    }
    {
        char *buf = NULL;
        size_t blen = 0;
        FILE *mem = open_memstream(&buf, &blen);

        config_usage(mem, "port,redis_url");
        fclose(mem);
        ok(strstr(buf, "--port ") != NULL && strstr(buf, "--redis-url") != NULL,
           "usage of some keys lists them");
        ok(strstr(buf, "--bind") == NULL &&
               strstr(buf, "--redis-timeout-ms") == NULL,
           "  and no other (not one whose name starts with a listed one)");
        ok(strstr(buf, "accepted and\nignored") != NULL,
           "  and says the others are ignored");
        free(buf);
    }
    return tap_done();
}
