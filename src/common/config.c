/* config.c - the shared configuration: one table of keys, read from the
 * file, then the environment, then flags */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "paths.h"
#include "redisurl.h"
#include "strlist.h"
#include "xmalloc.h"

const char config_default_file[] = SYSCONFDIR "/crosstalk.conf";

#define CONFIG_ENV_PREFIX "CROSSTALK_"
#define CONFIG_FILE_MAX (1 << 20)

enum config_type { CONFIG_STRING, CONFIG_INT };

struct config_key {
    const char *name;
    enum config_type type;
    size_t offset;
    const char *def_str; /* CONFIG_STRING */
    int def_int;         /* CONFIG_INT */
    int min, max;        /* CONFIG_INT */
    const char *choices; /* CONFIG_STRING: "a|b|c", NULL for any */
    const char *help;
};

#define STR(n, d, ch, h)                                                       \
    {                                                                          \
#n, CONFIG_STRING, offsetof(struct config, n), d, 0, 0, 0, ch, h       \
    }
#define INT(n, d, lo, hi, h)                                                   \
    {                                                                          \
#n, CONFIG_INT, offsetof(struct config, n), NULL, d, lo, hi, NULL, h   \
    }

static const struct config_key config_keys[] = {
    STR(bind, "127.0.0.1", NULL, "address crosstalkd listens on"),
    INT(port, 8081, 1, 65535, "crosstalkd's port"),
    STR(unix_socket, "", NULL,
        "also listen on this Unix socket path (for an nginx on the same "
        "host); empty for none"),
    STR(redis_url, "redis://127.0.0.1:6379/0", NULL,
        "redis://host:port/db or unix:///path/to/redis.sock; "
        "or a comma-separated list of them (shards)"),
    STR(mongo_uri, "mongodb://127.0.0.1:27017/crosstalk", NULL,
        "MongoDB for backup and archive"),
    STR(mongo_write_concern, "majority", NULL,
        "\"majority\" or a number of nodes"),
    STR(www_root, WWWDIR, NULL, "static files"),
    STR(log_level, "info", "debug|info|warn|error", "least level logged"),
    STR(log_file, "", NULL, "log file; empty for stderr"),
    INT(max_connections, 10000, 1, 1000000,
        "beyond it new connections are refused"),
    INT(max_message_bytes, 4096, 1, 1048576, "text of one message"),
    INT(max_body_bytes, 65536, 256, 67108864, "request body; above it 413"),
    INT(max_header_bytes, 8192, 1024, 1048576, "request head; above it 431"),
    INT(header_timeout, 10, 1, 3600,
        "seconds to receive a whole request head and its body"),
    INT(longpoll_timeout, 25, 1, 60, "default timeout of a long poll"),
    INT(longpoll_max_timeout, 60, 1, 600,
        "the longest timeout a client may ask for"),
    INT(sse_heartbeat, 15, 1, 3600, "seconds between SSE ':' comments"),
    INT(sse_retry_ms, 2000, 0, 3600000, "the retry: hint sent to EventSource"),
    INT(ws_ping_interval, 30, 1, 3600, "seconds between WebSocket pings"),
    INT(ws_pong_timeout, 10, 1, 3600,
        "seconds to wait for a pong before closing"),
    INT(client_buffer_limit, 1048576, 4096, 1073741824,
        "bytes queued to one subscriber before it is dropped"),
    INT(presence_ttl, 30, 1, 86400, "seconds online without activity"),
    STR(allowed_origins, "", NULL,
        "WebSocket/CORS origins, comma separated; empty for same host"),
    INT(rate_register_per_min, 30, 1, 1000000, "registrations per IP"),
    INT(rate_send_per_sec, 20, 1, 1000000, "messages per token, burst 2x"),
    INT(longpolls_per_token, 8, 1, 10000, "concurrent long polls of one token"),
    INT(redis_timeout_ms, 2000, 1, 600000,
        "connect/command timeout of every Redis client; past it 503"),
    INT(backup_batch, 500, 1, 100000, "messages per MongoDB bulk write"),
    INT(token_cache_ttl, 5, 0, 3600,
        "seconds a cached token is believed before Redis is asked again"),
    INT(streams_per_token, 16, 1, 100000,
        "concurrent SSE and WebSocket streams of one token"),
    STR(trusted_proxies, "", NULL,
        "peers (comma separated addresses, and \"unix\" for unix_socket) "
        "whose X-Real-IP is believed"),
    INT(rate_typing_per_sec, 2, 1, 1000000,
        "typing notices per token, burst 2x"),
    INT(stats_interval_ms, 1000, 100, 3600000,
        "how often each process adds its counters to Redis"),
};

#undef STR
#undef INT

#define N_KEYS (sizeof(config_keys) / sizeof(config_keys[0]))

static void __attribute__((format(printf, 3, 4)))
set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static char **str_field(struct config *c, const struct config_key *k)
{
    return (char **)(void *)((char *)c + k->offset);
}

static int *int_field(struct config *c, const struct config_key *k)
{
    return (int *)(void *)((char *)c + k->offset);
}

/* Finds a key by the first len bytes of name, '-' matching '_'. */
static const struct config_key *find_key(const char *name, size_t len)
{
    size_t i, j;

    for (i = 0; i < N_KEYS; i++) {
        const char *k = config_keys[i].name;

        if (strlen(k) != len)
            continue;
        for (j = 0; j < len; j++) {
            char ch = name[j] == '-' ? '_' : name[j];

            if (ch != k[j])
                break;
        }
        if (j == len)
            return &config_keys[i];
    }
    return NULL;
}

static bool in_choices(const char *choices, const char *value)
{
    size_t vlen = strlen(value);
    const char *p = choices;

    while (*p != '\0') {
        size_t n = strcspn(p, "|");

        if (n == vlen && strncmp(p, value, n) == 0)
            return true;
        p += n;
        if (*p == '|')
            p++;
    }
    return false;
}

static int set_key(struct config *c, const struct config_key *k,
                   const char *value, const char *origin, char *err,
                   size_t errlen)
{
    if (k->type == CONFIG_STRING) {
        char **f = str_field(c, k);

        if (k->choices != NULL && !in_choices(k->choices, value)) {
            set_err(err, errlen, "%s = %s (from %s): not one of %s", k->name,
                    value, origin, k->choices);
            return -1;
        }
        free(*f);
        *f = xstrdup(value);
    } else {
        char *end;
        long long v;

        errno = 0;
        v = strtoll(value, &end, 10);
        if (*value == '\0' || isspace((unsigned char)*value) || *end != '\0' ||
            errno == ERANGE) {
            set_err(err, errlen, "%s = %s (from %s): not a number (%d..%d)",
                    k->name, value, origin, k->min, k->max);
            return -1;
        }
        if (v < k->min || v > k->max) {
            set_err(err, errlen, "%s = %s (from %s): out of range %d..%d",
                    k->name, value, origin, k->min, k->max);
            return -1;
        }
        *int_field(c, k) = (int)v;
    }
    return 0;
}

void config_defaults(struct config *c)
{
    size_t i;

    memset(c, 0, sizeof(*c));
    for (i = 0; i < N_KEYS; i++) {
        const struct config_key *k = &config_keys[i];

        if (k->type == CONFIG_STRING)
            *str_field(c, k) = xstrdup(k->def_str);
        else
            *int_field(c, k) = k->def_int;
    }
}

void config_free(struct config *c)
{
    size_t i;

    if (c == NULL)
        return;
    for (i = 0; i < N_KEYS; i++) {
        if (config_keys[i].type == CONFIG_STRING) {
            char **f = str_field(c, &config_keys[i]);

            free(*f);
            *f = NULL;
        }
    }
}

int config_set(struct config *c, const char *key, const char *value,
               const char *origin, char *err, size_t errlen)
{
    const struct config_key *k = find_key(key, strlen(key));

    if (k == NULL) {
        set_err(err, errlen, "unknown key \"%s\" (from %s)", key, origin);
        return -1;
    }
    return set_key(c, k, value, origin, err, errlen);
}

/* Reads the value that starts at p (after '=' and blanks) into a new
 * string: a double-quoted value with \" and \\ escapes, a single-quoted one
 * taken as is, or a bare word up to a " #" comment or the end, trailing
 * blanks dropped. Returns NULL for an unterminated quote or garbage after
 * the closing one. */
static char *parse_value(const char *p)
{
    char *out = xmalloc(strlen(p) + 1), *o = out;

    if (*p == '"' || *p == '\'') {
        char q = *p++;

        for (; *p != q; p++) {
            if (*p == '\0')
                goto err;
            if (q == '"' && *p == '\\' && (p[1] == '"' || p[1] == '\\'))
                p++;
            *o++ = *p;
        }
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p != '\0' && *p != '#')
            goto err;
        *o = '\0';
        return out;
    }
    for (; *p != '\0'; p++) {
        if (*p == '#' && o > out && (o[-1] == ' ' || o[-1] == '\t'))
            break;
        *o++ = *p;
    }
    while (o > out && (o[-1] == ' ' || o[-1] == '\t'))
        o--;
    *o = '\0';
    return out;
err:
    free(out);
    return NULL;
}

static int parse_line(struct config *c, char *line, const char *where,
                      char *err, size_t errlen)
{
    char *p = line, *key, *value = NULL;
    size_t klen;
    int rc = -1;

    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '\0' || *p == '#')
        return 0;
    key = p;
    while (*p != '\0' && *p != '=' && *p != ' ' && *p != '\t')
        p++;
    klen = (size_t)(p - key);
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p != '=' || klen == 0) {
        set_err(err, errlen, "%s: expected \"key = value\"", where);
        goto done;
    }
    key[klen] = '\0';
    p++;
    while (*p == ' ' || *p == '\t')
        p++;
    value = parse_value(p);
    if (value == NULL) {
        set_err(err, errlen, "%s: %s: malformed quoted value", where, key);
        goto done;
    }
    rc = config_set(c, key, value, where, err, errlen);
done:
    free(value);
    return rc;
}

int config_parse_text(struct config *c, const char *text, const char *origin,
                      char *err, size_t errlen)
{
    char *copy = xstrdup(text), *line = copy, *where = NULL;
    unsigned lineno = 0;
    int rc = 0;

    while (line != NULL) {
        char *nl = strchr(line, '\n');

        if (nl != NULL)
            *nl = '\0';
        if (nl != NULL && nl > line && nl[-1] == '\r')
            nl[-1] = '\0';
        lineno++;
        where = xasprintf("%s:%u", origin, lineno);
        rc = parse_line(c, line, where, err, errlen);
        free(where);
        if (rc < 0)
            break;
        line = nl != NULL ? nl + 1 : NULL;
    }
    free(copy);
    return rc;
}

/* Reads the file at path into c. A missing file is an error only when
 * `must_exist`. */
static int load_file(struct config *c, const char *path, bool must_exist,
                     char *err, size_t errlen)
{
    FILE *fp = fopen(path, "r");
    char *text = NULL;
    size_t n;
    int rc = -1;

    if (fp == NULL) {
        if (errno == ENOENT && !must_exist)
            return 0;
        set_err(err, errlen, "cannot read config file %s: %s", path,
                strerror(errno));
        return -1;
    }
    text = xmalloc(CONFIG_FILE_MAX + 1);
    n = fread(text, 1, CONFIG_FILE_MAX + 1, fp);
    if (ferror(fp)) {
        set_err(err, errlen, "cannot read config file %s: %s", path,
                strerror(errno));
        goto done;
    }
    if (n > CONFIG_FILE_MAX) {
        set_err(err, errlen, "config file %s: larger than %d bytes", path,
                CONFIG_FILE_MAX);
        goto done;
    }
    if (memchr(text, '\0', n) != NULL) {
        set_err(err, errlen, "config file %s: contains a NUL byte", path);
        goto done;
    }
    text[n] = '\0';
    rc = config_parse_text(c, text, path, err, errlen);
done:
    free(text);
    fclose(fp);
    return rc;
}

static int load_env(struct config *c, char *err, size_t errlen)
{
    char var[64];
    size_t i, j;

    for (i = 0; i < N_KEYS; i++) {
        const struct config_key *k = &config_keys[i];
        const char *v;

        snprintf(var, sizeof(var), "%s%s", CONFIG_ENV_PREFIX, k->name);
        for (j = strlen(CONFIG_ENV_PREFIX); var[j] != '\0'; j++)
            var[j] = (char)toupper((unsigned char)var[j]);
        v = getenv(var);
        if (v != NULL && set_key(c, k, v, var, err, errlen) < 0)
            return -1;
    }
    return 0;
}

/* Finds --config FILE or --config=FILE in argv: *path gets the file (NULL
 * when absent). -1 when the flag has no value. */
static int find_config_flag(int argc, char **argv, const char **path, char *err,
                            size_t errlen)
{
    int i;

    *path = NULL;
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strncmp(argv[i], "--config=", 9) == 0) {
            *path = argv[i] + 9;
        } else if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc) {
                set_err(err, errlen, "--config needs a file");
                return -1;
            }
            *path = argv[++i];
        }
    }
    return 0;
}

/* Applies the config flags of argv and compacts the rest; returns the new
 * argc or -1. */
static int load_flags(struct config *c, int argc, char **argv, char *err,
                      size_t errlen)
{
    int i, out = 1;
    char *origin = NULL;
    int rc = -1;

    for (i = 1; i < argc; i++) {
        const char *arg = argv[i], *name, *eq, *value;
        const struct config_key *k;
        size_t nlen;

        if (strcmp(arg, "--") == 0) {
            while (i < argc)
                argv[out++] = argv[i++];
            break;
        }
        if (strncmp(arg, "--", 2) != 0) {
            argv[out++] = argv[i];
            continue;
        }
        name = arg + 2;
        eq = strchr(name, '=');
        nlen = eq != NULL ? (size_t)(eq - name) : strlen(name);
        if (nlen == 6 && strncmp(name, "config", 6) == 0) {
            if (eq == NULL)
                i++; /* its value; already read by find_config_flag */
            continue;
        }
        k = find_key(name, nlen);
        if (k == NULL) {
            argv[out++] = argv[i];
            continue;
        }
        /* "--port --log-level=debug": the next flag is not the value */
        if (eq != NULL) {
            value = eq + 1;
        } else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
            value = argv[++i];
        } else {
            set_err(err, errlen, "--%.*s needs a value", (int)nlen, name);
            goto done;
        }
        free(origin);
        origin = xasprintf("--%.*s", (int)nlen, name);
        if (set_key(c, k, value, origin, err, errlen) < 0)
            goto done;
    }
    if (out < argc)
        argv[out] = NULL;
    rc = out;
done:
    free(origin);
    return rc;
}

static int check_consistency(const struct config *c, char *err, size_t errlen)
{
    struct redisurl *urls;
    int n = redisurl_parse_list(c->redis_url, &urls, err, errlen);

    /* one URL or a comma-separated list of shards; the message names the
     * bad item */
    if (n < 0)
        return -1;
    redisurl_free_list(urls, n);
    if (c->longpoll_timeout > c->longpoll_max_timeout) {
        set_err(err, errlen,
                "longpoll_timeout = %d: out of range 1..%d "
                "(longpoll_max_timeout)",
                c->longpoll_timeout, c->longpoll_max_timeout);
        return -1;
    }
    return 0;
}

int config_load(struct config *c, int argc, char **argv, char *err,
                size_t errlen)
{
    const char *path;
    int rc;

    config_defaults(c);
    if (find_config_flag(argc, argv, &path, err, errlen) < 0)
        return -1;
    if (path == NULL)
        path = getenv(CONFIG_ENV_PREFIX "CONFIG");
    if (path != NULL && *path != '\0')
        rc = load_file(c, path, true, err, errlen);
    else
        rc = load_file(c, config_default_file, false, err, errlen);
    if (rc < 0 || load_env(c, err, errlen) < 0)
        return -1;
    rc = load_flags(c, argc, argv, err, errlen);
    if (rc < 0 || check_consistency(c, err, errlen) < 0)
        return -1;
    return rc;
}

int config_redis_urls(const struct config *c, char ***urls)
{
    const char *rest = c->redis_url, *item;
    size_t len;
    int n = 0;

    *urls = xcalloc(REDISURL_LIST_MAX + 1, sizeof(**urls));
    while (n < REDISURL_LIST_MAX && (item = strlist_next(&rest, &len)) != NULL)
        if (len > 0)
            (*urls)[n++] = xstrndup(item, len);
    return n;
}

void config_redis_urls_free(char **urls, int n)
{
    if (urls == NULL)
        return;
    for (int i = 0; i < n; i++)
        free(urls[i]);
    free(urls);
}

/* Whether `name` is one of the comma-separated `names`. */
static bool listed(const char *names, const char *name)
{
    const char *item;
    size_t len;

    while ((item = strlist_next(&names, &len)) != NULL)
        if (len == strlen(name) && strncmp(item, name, len) == 0)
            return true;
    return false;
}

void config_usage(FILE *out, const char *keys)
{
    size_t i;

    for (i = 0; i < N_KEYS; i++) {
        const struct config_key *k = &config_keys[i];
        char flag[64], def[96];
        size_t j;

        if (keys != NULL && !listed(keys, k->name))
            continue;
        snprintf(flag, sizeof(flag), "--%s", k->name);
        for (j = 2; flag[j] != '\0'; j++)
            if (flag[j] == '_')
                flag[j] = '-';
        if (k->type == CONFIG_STRING)
            snprintf(def, sizeof(def), "default \"%s\"%s%s", k->def_str,
                     k->choices != NULL ? ", one of " : "",
                     k->choices != NULL ? k->choices : "");
        else
            snprintf(def, sizeof(def), "default %d, %d..%d", k->def_int, k->min,
                     k->max);
        fprintf(out, "  %-30s %s (%s)\n", flag, k->help, def);
    }
    if (keys != NULL)
        fprintf(out, "The other keys of a shared crosstalk.conf (crosstalkd's) "
                     "are accepted and\nignored.\n");
}
