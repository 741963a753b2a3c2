/* config.h - the configuration every crosstalk program shares: a table of
 * {name, type, default, min, max}, read from crosstalk.conf, then CROSSTALK_*
 * environment variables, then --key=value flags */
#ifndef CT_CONFIG_H
#define CT_CONFIG_H

#include <stdio.h>

/* Every key of DESIGN.md's table, and a few more. Sizes in bytes, times in
 * seconds unless the name says _ms. Strings are owned by the config. */
struct config {
    char *bind;                /* address crosstalkd listens on */
    int port;                  /* crosstalkd's port */
    char *unix_socket;         /* also listened on; "" = none */
    char *redis_url;           /* redis://host:port/db or unix:///path */
    char *mongo_uri;           /* backup and archive */
    char *mongo_write_concern; /* "majority" or a number of nodes */
    char *www_root;            /* static files */
    char *log_level;           /* debug, info, warn, error */
    char *log_file;            /* "" = stderr */
    int max_connections;       /* beyond it new connections are refused */
    int max_message_bytes;     /* text of one message */
    int max_body_bytes;        /* request body; above it 413 */
    int max_header_bytes;      /* request head; above it 431 */
    int header_timeout;        /* seconds to receive a whole request head */
    int longpoll_timeout;      /* default timeout of a long poll */
    int longpoll_max_timeout;  /* the most a client may ask for */
    int sse_heartbeat;         /* seconds between ':' comments */
    int sse_retry_ms;          /* the retry: hint sent to EventSource */
    int ws_ping_interval;
    int ws_pong_timeout;
    int client_buffer_limit;   /* bytes queued to one subscriber */
    int presence_ttl;          /* seconds online without activity */
    char *allowed_origins;     /* comma separated; "" = same host */
    int rate_register_per_min; /* per IP */
    int rate_send_per_sec;     /* per token, burst 2x */
    int longpolls_per_token;   /* concurrent long polls of one token */
    int redis_timeout_ms;      /* connect/command timeout, every client */
    int backup_batch;          /* messages per MongoDB bulk write */
    int token_cache_ttl;       /* seconds a cached token is believed */
    int streams_per_token;     /* concurrent SSE + WebSocket of one token */
    char *trusted_proxies;     /* X-Real-IP believed from; "unix" too */
    int rate_typing_per_sec;   /* typing calls per token, burst 2x */
    int stats_interval_ms;     /* how often counters go to Redis */
};

/* Fills *c with the defaults. */
void config_defaults(struct config *c);
void config_free(struct config *c);

/* The items of redis_url, one per shard in its order, blanks trimmed:
 * returns how many (at least 1 for a loaded configuration, which
 * config_load checked) and sets *urls to a new array of new strings
 * (free it with config_redis_urls_free). */
int config_redis_urls(const struct config *c, char ***urls);
void config_redis_urls_free(char **urls, int n);

/* Loads the configuration for a program: defaults, then the file (the
 * --config FILE flag, else $CROSSTALK_CONFIG, else SYSCONFDIR/crosstalk.conf
 * when it exists), then CROSSTALK_<KEY> variables, then --key-with-dashes=V
 * or --key-with-dashes V flags. Flags that are not config keys (and
 * positional arguments) are left in argv, which is compacted; the new argc
 * is returned. On an unknown key in the file, a malformed line, or a value
 * that is not a number or out of its range, returns -1 and writes a message
 * naming the key, its value and its range into err (errlen bytes). *c is
 * filled from scratch (not freed first) and, success or not, is released
 * with config_free. */
int config_load(struct config *c, int argc, char **argv, char *err,
                size_t errlen);

/* Parses `key = value` lines; for tests and the fuzzer. `origin` names the
 * source in messages. Same failure contract as config_load. */
int config_parse_text(struct config *c, const char *text, const char *origin,
                      char *err, size_t errlen);
/* Sets one key by name (underscores or dashes). -1 with err on failure. */
int config_set(struct config *c, const char *key, const char *value,
               const char *origin, char *err, size_t errlen);

/* SYSCONFDIR/crosstalk.conf: read when neither --config nor
 * $CROSSTALK_CONFIG names a file. */
extern const char config_default_file[];

/* Prints the keys a program reads, with their defaults, ranges and
 * meanings, for --help: those of `keys` (comma-separated names), or every
 * one if it is NULL. */
void config_usage(FILE *out, const char *keys);

#endif
