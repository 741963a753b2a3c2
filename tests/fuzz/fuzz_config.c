/* fuzz_config.c - the crosstalk.conf parser: any text either fails with a
 * message naming where, or gives a config whose every value is in range
 * and survives being written out and read back */
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "fuzz.h"

#define ORIGIN "fuzz.conf"

/* The fields of struct config by key name. Keys the table in config.c has
 * and this one lacks are found at start-up (from config_usage) and only
 * skipped, so a new key does not break the fuzzer; it just goes unchecked. */
struct field {
    const char *name;
    size_t offset;
    bool is_int;
};

#define S(n)                                                                   \
    {                                                                          \
#n, offsetof(struct config, n), false                                  \
    }
#define I(n)                                                                   \
    {                                                                          \
#n, offsetof(struct config, n), true                                   \
    }
static const struct field fields[] = {
    S(bind),
    I(port),
    S(redis_url),
    S(mongo_uri),
    S(mongo_write_concern),
    S(www_root),
    S(log_level),
    S(log_file),
    I(max_connections),
    I(max_message_bytes),
    I(max_body_bytes),
    I(max_header_bytes),
    I(header_timeout),
    I(longpoll_timeout),
    I(longpoll_max_timeout),
    I(sse_heartbeat),
    I(sse_retry_ms),
    I(ws_ping_interval),
    I(ws_pong_timeout),
    I(client_buffer_limit),
    I(presence_ttl),
    S(allowed_origins),
    I(rate_register_per_min),
    I(rate_send_per_sec),
    I(longpolls_per_token),
    I(redis_timeout_ms),
    I(backup_batch),
    I(token_cache_ttl),
    I(streams_per_token),
    S(trusted_proxies),
    I(rate_typing_per_sec),
    I(stats_interval_ms),
};
#undef S
#undef I
#define N_FIELDS (sizeof(fields) / sizeof(fields[0]))

static char *str_of(const struct config *c, const struct field *f)
{
    return *(char *const *)(const void *)((const char *)c + f->offset);
}

static int int_of(const struct config *c, const struct field *f)
{
    return *(const int *)(const void *)((const char *)c + f->offset);
}

/* Says once which keys config_usage lists that `fields` does not. */
static void note_unchecked_keys(void)
{
    char *text = NULL, *p;
    size_t len = 0, i;
    FILE *fp = open_memstream(&text, &len);

    if (fp == NULL)
        abort();
    config_usage(fp, NULL);
    fclose(fp);
    for (p = text; (p = strstr(p, "\n  --")) != NULL;) {
        char name[64];
        size_t n = strcspn(p + 5, " \n");
        bool found = false;

        p += 5;
        if (n == 0 || n >= sizeof(name))
            continue;
        memcpy(name, p, n);
        name[n] = '\0';
        for (i = 0; i < n; i++)
            if (name[i] == '-')
                name[i] = '_';
        if (strcmp(name, "config") == 0)
            continue;
        for (i = 0; i < N_FIELDS; i++)
            if (strcmp(fields[i].name, name) == 0)
                found = true;
        if (!found)
            fprintf(stderr,
                    "fuzz_config: key %s is not checked; add it to "
                    "fields[] in %s\n",
                    name, __FILE__);
    }
    free(text);
}

/* `key = "value"` lines for every field: quotes and backslashes escaped,
 * which the parser must read back as they were. */
static char *write_config(const struct config *c)
{
    char *text = NULL;
    size_t len = 0, i;
    FILE *fp = open_memstream(&text, &len);

    if (fp == NULL)
        abort();
    fputs("# written back by fuzz_config\n", fp);
    for (i = 0; i < N_FIELDS; i++) {
        const struct field *f = &fields[i];
        const char *s;

        if (f->is_int) {
            fprintf(fp, "%s = %d\n", f->name, int_of(c, f));
            continue;
        }
        fprintf(fp, "%s = \"", f->name);
        for (s = str_of(c, f); *s != '\0'; s++) {
            if (*s == '"' || *s == '\\')
                fputc('\\', fp);
            fputc(*s, fp);
        }
        fputs("\"\n", fp);
    }
    fclose(fp);
    return text;
}

static bool configs_equal(const struct config *a, const struct config *b,
                          size_t *which)
{
    size_t i;

    for (i = 0; i < N_FIELDS; i++) {
        const struct field *f = &fields[i];

        *which = i;
        if (f->is_int ? int_of(a, f) != int_of(b, f)
                      : strcmp(str_of(a, f), str_of(b, f)) != 0)
            return false;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool noted;
    /* load_file refuses a NUL byte; what it hands on is a C string */
    char *text = fuzz_cstr(data, size), *written, *small;
    char err[512];
    struct config c, back;
    size_t which, small_len;
    int rc, rc2, i;

    if (!noted) {
        note_unchecked_keys();
        noted = true;
    }

    config_defaults(&c);
    err[0] = '\0';
    rc = config_parse_text(&c, text, ORIGIN, err, sizeof(err));
    FUZZ_CHECK(rc == 0 || rc == -1, "rc %d", rc);
    /* (a long value may push the origin past the end of the buffer) */
    if (rc < 0 && strlen(err) < sizeof(err) - 1)
        FUZZ_CHECK(strstr(err, ORIGIN ":") != NULL,
                   "the error does not say where: \"%s\"", err);

    /* A short error buffer is truncated, not overrun (ASan sees the end). */
    small_len = size > 0 ? data[0] % 8 + 1 : 1;
    small = malloc(small_len);
    config_defaults(&back);
    rc2 = config_parse_text(&back, text, ORIGIN, small, small_len);
    FUZZ_CHECK(rc2 == rc, "the error buffer's size changed the result");
    FUZZ_CHECK(rc2 == 0 || memchr(small, '\0', small_len) != NULL,
               "short error buffer not terminated");
    free(small);
    config_free(&back);

    /* Whatever was applied, failure or not, is in range: setting each value
     * again through the parser must succeed and change nothing. */
    written = write_config(&c);
    config_defaults(&back);
    rc2 = config_parse_text(&back, written, "written", err, sizeof(err));
    FUZZ_CHECK(rc2 == 0, "own output refused: %s\n%s", err, written);
    FUZZ_CHECK(configs_equal(&c, &back, &which),
               "key %s changed on the way back:\n%s", fields[which].name,
               written);
    free(written);

    /* Each int key holds a value config_set takes. */
    for (i = 0; i < (int)N_FIELDS; i++) {
        char num[16];

        if (!fields[i].is_int)
            continue;
        snprintf(num, sizeof(num), "%d", int_of(&c, &fields[i]));
        FUZZ_CHECK(config_set(&back, fields[i].name, num, "fuzz", err,
                              sizeof(err)) == 0,
                   "%s = %s out of its own range: %s", fields[i].name, num,
                   err);
    }

    config_free(&back);
    config_free(&c);
    free(text);
    return 0;
}
