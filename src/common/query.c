/* query.c - URL query strings: decoding and the history/poll parameters */
#include <stdlib.h>
#include <string.h>

#include "query.h"
#include "xmalloc.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..len) ('+' is a space) into a new string. NULL on a
 * malformed escape or an escaped NUL, which no caller could hold. */
static char *decode(const char *s, size_t len)
{
    char *out = xmalloc(len + 1), *o = out;
    size_t i;

    for (i = 0; i < len; i++) {
        if (s[i] == '%') {
            int hi, lo;

            if (i + 2 >= len)
                goto err;
            hi = hexval(s[i + 1]);
            lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                goto err;
            *o++ = (char)(hi << 4 | lo);
            i += 2;
        } else if (s[i] == '+') {
            *o++ = ' ';
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
err:
    free(out);
    return NULL;
}

/* Looks `key` up in qs: 1 with *value newly allocated when found, 0 when
 * absent, -1 when its first occurrence is malformed. */
static int find(const char *qs, const char *key, char **value)
{
    const char *p = qs;

    *value = NULL;
    if (qs == NULL)
        return 0;
    while (*p != '\0') {
        size_t plen = strcspn(p, "&;");
        const char *eq = memchr(p, '=', plen);
        size_t klen = eq != NULL ? (size_t)(eq - p) : plen;
        char *k = decode(p, klen);

        if (k != NULL && strcmp(k, key) == 0) {
            free(k);
            if (eq == NULL)
                *value = xstrdup("");
            else
                *value = decode(eq + 1, plen - klen - 1);
            return *value != NULL ? 1 : -1;
        }
        free(k);
        p += plen;
        if (*p != '\0')
            p++;
    }
    return 0;
}

char *query_get(const char *qs, const char *key)
{
    char *v;

    if (find(qs, key, &v) <= 0)
        return NULL;
    return v;
}

/* Parses a run of digits into 0..max; -1 for anything else. */
static int parse_int(const char *s, int max, int *out)
{
    long v = 0;

    if (*s == '\0')
        return -1;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (*s - '0');
        if (v > max)
            return -1;
    }
    *out = (int)v;
    return 0;
}

/* Fetches one parameter; an empty value counts as absent, so a client may
 * send "since=" before it has seen anything. */
static int param(const char *qs, const char *key, char **value,
                 struct api_error *err)
{
    int rc = find(qs, key, value);

    if (rc < 0)
        return api_fail(err, 400, API_BAD_REQUEST,
                        "\"%s\" is not properly percent-encoded", key);
    if (rc == 1 && **value == '\0') {
        free(*value);
        *value = NULL;
        rc = 0;
    }
    return rc;
}

int query_parse_history(const char *qs, int max_timeout,
                        struct query_history *out, struct api_error *err)
{
    char *since = NULL, *before = NULL, *limit = NULL, *timeout = NULL;
    int rc = -1, r;

    memset(out, 0, sizeof(*out));
    out->limit = QUERY_LIMIT_DEFAULT;
    strcpy(out->since_str, "0-0");
    if (param(qs, "since", &since, err) < 0 ||
        param(qs, "before", &before, err) < 0 ||
        param(qs, "limit", &limit, err) < 0 ||
        param(qs, "timeout", &timeout, err) < 0)
        goto done;
    if (since != NULL && before != NULL) {
        api_fail(err, 400, API_BAD_REQUEST,
                 "give \"since\" or \"before\", not both");
        goto done;
    }
    if (since != NULL) {
        if (streamid_parse(since, strlen(since), &out->since) < 0) {
            api_fail(err, 400, API_BAD_REQUEST,
                     "\"since\" is not a message id");
            goto done;
        }
        out->has_since = true;
        streamid_format(&out->since, out->since_str);
    }
    if (before != NULL) {
        if (streamid_parse(before, strlen(before), &out->before) < 0) {
            api_fail(err, 400, API_BAD_REQUEST,
                     "\"before\" is not a message id");
            goto done;
        }
        if (streamid_is_zero(&out->before)) {
            api_fail(err, 400, API_BAD_REQUEST,
                     "nothing is before 0-0: give a message id");
            goto done;
        }
        out->has_before = true;
    }
    if (limit != NULL) {
        r = parse_int(limit, QUERY_LIMIT_MAX, &out->limit);
        if (r < 0 || out->limit < 1) {
            api_fail(err, 400, API_BAD_REQUEST, "\"limit\" must be 1..%d",
                     QUERY_LIMIT_MAX);
            goto done;
        }
    }
    if (timeout != NULL) {
        if (max_timeout < 0 ||
            parse_int(timeout, max_timeout, &out->timeout) < 0) {
            api_fail(err, 400, API_BAD_REQUEST,
                     "\"timeout\" must be 0..%d seconds", max_timeout);
            goto done;
        }
        out->has_timeout = true;
    }
    rc = 0;
done:
    free(since);
    free(before);
    free(limit);
    free(timeout);
    return rc;
}

int query_parse_rooms(const char *qs, struct query_rooms *out,
                      struct api_error *err)
{
    char *limit = NULL, *after = NULL, *colon;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    out->limit = QUERY_ROOMS_DEFAULT;
    if (param(qs, "limit", &limit, err) < 0 ||
        param(qs, "after", &after, err) < 0)
        goto done;
    if (limit != NULL && (parse_int(limit, QUERY_ROOMS_MAX, &out->limit) < 0 ||
                          out->limit < 1)) {
        api_fail(err, 400, API_BAD_REQUEST, "\"limit\" must be 1..%d",
                 QUERY_ROOMS_MAX);
        goto done;
    }
    if (after != NULL) {
        /* "<last_ts>:<room>", with at most 15 digits: a score of ct:rooms
         * is a double, exact up to there */
        colon = strchr(after, ':');
        if (colon == NULL || colon == after || colon - after > 15 ||
            strspn(after, "0123456789") != (size_t)(colon - after) ||
            !names_room_valid(colon + 1, strlen(colon + 1))) {
            api_fail(err, 400, API_BAD_REQUEST,
                     "\"after\" must be the \"next\" of the page before");
            goto done;
        }
        out->has_after = true;
        out->after_ts = strtoll(after, NULL, 10);
        strcpy(out->after_name, colon + 1);
    }
    rc = 0;
done:
    free(limit);
    free(after);
    return rc;
}
