/* fuzz_query.c - the query string (since, before, limit, timeout), the
 * percent decoding under it, and stream ids as a Last-Event-ID header
 * carries them; each checked against a second, plainer reading */
#include <stdbool.h>

#include "fuzz.h"
#include "query.h"
#include "streamid.h"

#define MAX_TIMEOUT 60

/* --- stream ids --- */

/* The plain reading of "MS" / "MS-SEQ": digits, one optional dash, each
 * part at most UINT64_MAX, compared as decimal strings. */
static bool ref_u64_ok(const char *s, size_t len)
{
    static const char max[] = "18446744073709551615";
    size_t i;

    if (len == 0)
        return false;
    for (i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    while (len > 1 && *s == '0') {
        s++;
        len--;
    }
    if (len != sizeof(max) - 1)
        return len < sizeof(max) - 1;
    return memcmp(s, max, len) <= 0;
}

static bool ref_streamid_ok(const char *s, size_t len)
{
    const char *dash = memchr(s, '-', len);

    if (dash == NULL)
        return ref_u64_ok(s, len);
    return ref_u64_ok(s, (size_t)(dash - s)) &&
           ref_u64_ok(dash + 1, len - (size_t)(dash - s) - 1);
}

static void check_streamid(const char *s, size_t len)
{
    struct streamid id, again;
    char buf[STREAMID_STRLEN], buf2[STREAMID_STRLEN];
    bool ok = streamid_parse(s, len, &id) == 0;

    FUZZ_CHECK(ok == ref_streamid_ok(s, len), "streamid_parse(\"%.*s\") %s",
               (int)len, s, ok ? "accepted" : "refused");
    if (!ok)
        return;
    streamid_format(&id, buf);
    FUZZ_CHECK(strlen(buf) < STREAMID_STRLEN, "formatted id too long");
    FUZZ_CHECK(streamid_parse(buf, strlen(buf), &again) == 0 &&
                   streamid_cmp(&id, &again) == 0,
               "format -> parse changed %s", buf);
    FUZZ_CHECK(strcmp(streamid_format(&again, buf2), buf) == 0,
               "format not stable: %s %s", buf, buf2);
    FUZZ_CHECK(streamid_is_zero(&id) == (id.ms == 0 && id.seq == 0), "is_zero");
}

/* Two ids from one input: cmp is a total order consistent with (ms, seq). */
static void check_cmp(const char *s, size_t len)
{
    const char *sp = memchr(s, ' ', len);
    struct streamid a, b;
    int ab, ba, want;

    if (sp == NULL || streamid_parse(s, (size_t)(sp - s), &a) != 0 ||
        streamid_parse(sp + 1, len - (size_t)(sp - s) - 1, &b) != 0)
        return;
    ab = streamid_cmp(&a, &b);
    ba = streamid_cmp(&b, &a);
    want = a.ms != b.ms     ? (a.ms < b.ms ? -1 : 1)
           : a.seq != b.seq ? (a.seq < b.seq ? -1 : 1)
                            : 0;
    FUZZ_CHECK(ab == want && ba == -want, "cmp %d/%d, want %d", ab, ba, want);
}

/* --- percent decoding --- */

static int ref_hex(char c)
{
    const char *digits = "0123456789abcdef0123456789ABCDEF";
    const char *p = c != '\0' ? strchr(digits, c) : NULL;

    return p == NULL ? -1 : (int)((p - digits) % 16);
}

/* '+' is a space, %XX a byte (never %00); NULL when malformed. */
static char *ref_decode(const char *s, size_t len)
{
    char *out = malloc(len + 1);
    size_t i = 0, o = 0;

    while (i < len) {
        if (s[i] == '%') {
            int hi = i + 1 < len ? ref_hex(s[i + 1]) : -1;
            int lo = i + 2 < len ? ref_hex(s[i + 2]) : -1;

            if (hi < 0 || lo < 0 || hi * 16 + lo == 0) {
                free(out);
                return NULL;
            }
            out[o++] = (char)(hi * 16 + lo);
            i += 3;
        } else {
            out[o++] = s[i] == '+' ? ' ' : s[i];
            i++;
        }
    }
    out[o] = '\0';
    return out;
}

/* The first pair whose decoded name is `key`: 1 with *value, 0 when there
 * is none, -1 when that pair's value is malformed. */
static int ref_find(const char *qs, const char *key, char **value)
{
    size_t start = 0, end, len = strlen(qs);

    *value = NULL;
    while (start < len) {
        size_t eq;
        char *k;

        for (end = start; end < len && qs[end] != '&' && qs[end] != ';'; end++)
            ;
        for (eq = start; eq < end && qs[eq] != '='; eq++)
            ;
        k = ref_decode(qs + start, eq - start);
        if (k != NULL && strcmp(k, key) == 0) {
            free(k);
            *value =
                eq < end ? ref_decode(qs + eq + 1, end - eq - 1) : strdup("");
            return *value != NULL ? 1 : -1;
        }
        free(k);
        start = end + 1;
    }
    return 0;
}

/* query_get against the plain reading, then its value back through a
 * percent-encoded query. */
static void check_get(const char *qs, const char *key)
{
    char *got = query_get(qs, key), *want = NULL, *enc, *again;
    int found = ref_find(qs, key, &want);
    size_t i, n;

    FUZZ_CHECK((got != NULL) == (found == 1), "query_get(\"%s\", \"%s\") %s",
               qs, key, got != NULL ? "found it" : "did not");
    if (got == NULL) {
        free(want);
        return;
    }
    FUZZ_CHECK(strcmp(got, want) == 0,
               "query_get(\"%s\", \"%s\") = \"%s\", "
               "want \"%s\"",
               qs, key, got, want);
    n = strlen(got);
    enc = malloc(2 + 3 * n + 1);
    strcpy(enc, "k=");
    for (i = 0; i < n; i++)
        sprintf(enc + 2 + 3 * i, "%%%02X", (unsigned char)got[i]);
    again = query_get(enc, "k");
    FUZZ_CHECK(again != NULL && strcmp(again, got) == 0,
               "escaped value did not come back: %s", enc);
    free(again);
    free(enc);
    free(got);
    free(want);
}

/* --- history parameters --- */

static void check_history(const char *qs)
{
    struct query_history h, h2;
    struct api_error err;
    char buf[STREAMID_STRLEN], canon[200], *v;
    int rc;

    memset(&err, 0, sizeof(err));
    rc = query_parse_history(qs, MAX_TIMEOUT, &h, &err);
    if (rc != 0) {
        FUZZ_CHECK(rc == -1 && err.status == 400 &&
                       strcmp(err.code, API_BAD_REQUEST) == 0 &&
                       err.message[0] != '\0',
                   "rc %d status %d", rc, err.status);
        return;
    }
    FUZZ_CHECK(!(h.has_since && h.has_before), "both since and before");
    FUZZ_CHECK(h.limit >= 1 && h.limit <= QUERY_LIMIT_MAX, "limit %d", h.limit);
    FUZZ_CHECK(h.timeout >= 0 && h.timeout <= MAX_TIMEOUT, "timeout %d",
               h.timeout);
    FUZZ_CHECK(h.has_timeout || h.timeout == 0, "timeout without has_timeout");
    FUZZ_CHECK(strcmp(h.since_str, h.has_since ? streamid_format(&h.since, buf)
                                               : "0-0") == 0,
               "since_str \"%s\"", h.since_str);

    /* what was found is what query_get finds */
    v = query_get(qs, "limit");
    FUZZ_CHECK(v == NULL || *v == '\0' ? h.limit == QUERY_LIMIT_DEFAULT
                                       : h.limit == atoi(v),
               "limit %d from \"%s\"", h.limit, v != NULL ? v : "(none)");
    free(v);
    v = query_get(qs, "since");
    FUZZ_CHECK(h.has_since == (v != NULL && *v != '\0'), "has_since %d",
               h.has_since);
    free(v);

    /* the normal form of the same request parses to the same thing */
    snprintf(canon, sizeof(canon), "limit=%d", h.limit);
    if (h.has_since)
        snprintf(canon + strlen(canon), sizeof(canon) - strlen(canon),
                 "&since=%s", h.since_str);
    if (h.has_before)
        snprintf(canon + strlen(canon), sizeof(canon) - strlen(canon),
                 "&before=%s", streamid_format(&h.before, buf));
    if (h.has_timeout)
        snprintf(canon + strlen(canon), sizeof(canon) - strlen(canon),
                 "&timeout=%d", h.timeout);
    FUZZ_CHECK(query_parse_history(canon, MAX_TIMEOUT, &h2, &err) == 0,
               "normal form refused: %s", canon);
    FUZZ_CHECK(h2.has_since == h.has_since && h2.has_before == h.has_before &&
                   h2.has_timeout == h.has_timeout && h2.limit == h.limit &&
                   h2.timeout == h.timeout &&
                   streamid_cmp(&h2.since, &h.since) == 0 &&
                   streamid_cmp(&h2.before, &h.before) == 0 &&
                   strcmp(h2.since_str, h.since_str) == 0,
               "normal form parsed differently: %s", canon);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *qs = fuzz_cstr(data, size);
    const char *keys[] = {"since", "before", "limit", "timeout", "token", ""};
    size_t i, klen;
    char *first;

    /* Last-Event-ID: the raw bytes, and as the C string sse.c hands over */
    check_streamid((const char *)data, size);
    check_streamid(qs, strlen(qs));
    check_cmp(qs, strlen(qs));

    check_history(qs);
    FUZZ_CHECK(query_parse_history(NULL, MAX_TIMEOUT,
                                   &(struct query_history){0},
                                   &(struct api_error){0}) == 0,
               "no query string refused");
    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        check_get(qs, keys[i]);
    /* and whatever name the input starts with */
    klen = strcspn(qs, "=&;");
    if ((first = ref_decode(qs, klen)) != NULL) {
        check_get(qs, first);
        free(first);
    }
    free(qs);
    return 0;
}
