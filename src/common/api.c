/* api.c - request bodies, errors and response bodies of the HTTP API, shared
 * by crosstalkd and crosstalk-fcgi */
#include <json-c/json.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "jsonobj.h"
#include "utf8.h"
#include "xmalloc.h"

int api_fail(struct api_error *err, int status, const char *code,
             const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return -1;
    err->status = status;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return -1;
}

char *api_error_json(const struct api_error *err, size_t *len)
{
    json_object *o = json_object_new_object();

    json_object_object_add(o, "error", json_object_new_string(err->code));
    json_object_object_add(o, "message", json_object_new_string(err->message));
    return jsonobj_finish(o, len);
}

/* Parses body as exactly one JSON object, blanks around it allowed; on
 * anything else returns NULL with a 400 bad_json in err. */
static json_object *parse_object(const char *body, size_t len,
                                 struct api_error *err)
{
    const char *why;
    json_object *o = jsonobj_parse(body, len, &why);

    if (o == NULL)
        api_fail(err, 400, API_BAD_JSON, "the body %s", why);
    return o;
}

/* The string member `key` of o, or NULL with a 400 bad_request in err when
 * it is missing or not a string. */
static json_object *get_string(json_object *o, const char *key,
                               struct api_error *err)
{
    json_object *v;

    if (!json_object_object_get_ex(o, key, &v)) {
        api_fail(err, 400, API_BAD_REQUEST, "\"%s\" is missing", key);
        return NULL;
    }
    if (!json_object_is_type(v, json_type_string)) {
        api_fail(err, 400, API_BAD_REQUEST, "\"%s\" must be a string", key);
        return NULL;
    }
    return v;
}

int api_parse_register(const char *body, size_t len,
                       char name[NAME_USER_MAX + 1], struct api_error *err)
{
    json_object *o, *v;
    const char *s;
    size_t n;
    int rc = -1;

    if ((o = parse_object(body, len, err)) == NULL)
        return -1;
    if ((v = get_string(o, "name", err)) == NULL)
        goto done;
    s = json_object_get_string(v);
    n = (size_t)json_object_get_string_len(v);
    if (!names_user_valid(s, n)) {
        api_fail(err, 400, API_BAD_NAME,
                 "a name is 1 to %d of A-Z a-z 0-9 _ . -", NAME_USER_MAX);
        goto done;
    }
    memcpy(name, s, n);
    name[n] = '\0';
    rc = 0;
done:
    json_object_put(o);
    return rc;
}

/* True when the code point shows nothing: Unicode's White_Space, and the
 * zero-width characters (U+180E, U+200B, U+2060, U+FEFF) that render as
 * nothing either. */
static bool invisible(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0d) || cp == 0x20 || cp == 0x85 ||
           cp == 0xa0 || cp == 0x1680 || cp == 0x180e ||
           (cp >= 0x2000 && cp <= 0x200b) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202f || cp == 0x205f || cp == 0x2060 || cp == 0x3000 ||
           cp == 0xfeff;
}

/* True when valid UTF-8 text s holds nothing a reader would see. */
static bool blank(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;

    while (p < end) {
        uint32_t cp;
        if (*p < 0x80) {
            cp = *p++;
        } else if (*p < 0xe0) {
            cp = (uint32_t)(p[0] & 0x1f) << 6 | (p[1] & 0x3f);
            p += 2;
        } else if (*p < 0xf0) {
            cp = (uint32_t)(p[0] & 0x0f) << 12 | (uint32_t)(p[1] & 0x3f) << 6 |
                 (p[2] & 0x3f);
            p += 3;
        } else {
            return false; /* no invisible character lies above U+FFFF */
        }
        if (!invisible(cp))
            return false;
    }
    return true;
}

/* Checks and copies the "text" member of o. */
static int take_text(json_object *o, size_t max_bytes, char **text,
                     size_t *text_len, struct api_error *err)
{
    json_object *v;
    const char *s;
    size_t n;

    if ((v = get_string(o, "text", err)) == NULL)
        return -1;
    s = json_object_get_string(v);
    n = (size_t)json_object_get_string_len(v);
    if (n == 0)
        return api_fail(err, 400, API_EMPTY_TEXT, "the text is empty");
    if (n > max_bytes)
        return api_fail(err, 413, API_TOO_LARGE,
                        "the text is %zu bytes, more than %zu", n, max_bytes);
    if (!utf8_valid(s, n))
        return api_fail(err, 400, API_BAD_UTF8, "the text is not valid UTF-8");
    /* Readers of stored text are C code: a NUL would cut it short. */
    if (memchr(s, '\0', n) != NULL)
        return api_fail(err, 400, API_BAD_UTF8,
                        "the text contains a NUL character");
    if (blank(s, n))
        return api_fail(err, 400, API_EMPTY_TEXT,
                        "the text is only white space");
    *text = xmalloc(n + 1);
    memcpy(*text, s, n);
    (*text)[n] = '\0';
    *text_len = n;
    return 0;
}

int api_parse_message(const char *body, size_t len, size_t max_bytes,
                      char **text, size_t *text_len, struct api_error *err)
{
    json_object *o;
    int rc;

    *text = NULL;
    *text_len = 0;
    if ((o = parse_object(body, len, err)) == NULL)
        return -1;
    rc = take_text(o, max_bytes, text, text_len, err);
    json_object_put(o);
    return rc;
}

int api_parse_key(const char *s, size_t len, char key[API_KEY_MAX + 1],
                  struct api_error *err)
{
    size_t i;

    key[0] = '\0';
    if (s == NULL)
        return 0;
    if (len >= 2 && s[0] == '"' && s[len - 1] == '"') {
        s++;
        len -= 2;
    }
    if (len == 0 || len > API_KEY_MAX)
        goto bad;
    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
              (ch >= '0' && ch <= '9') || ch == '_' || ch == '-'))
            goto bad;
    }
    memcpy(key, s, len);
    key[len] = '\0';
    return 0;
bad:
    return api_fail(err, 400, API_BAD_REQUEST,
                    "an idempotency key is 1 to %d of A-Z a-z 0-9 _ -",
                    API_KEY_MAX);
}

/* The optional "key" member of a message frame. */
static int take_key(json_object *o, char key[API_KEY_MAX + 1],
                    struct api_error *err)
{
    json_object *v;

    key[0] = '\0';
    if (!json_object_object_get_ex(o, "key", &v))
        return 0;
    if (!json_object_is_type(v, json_type_string))
        return api_fail(err, 400, API_BAD_REQUEST, "\"key\" must be a string");
    return api_parse_key(json_object_get_string(v),
                         (size_t)json_object_get_string_len(v), key, err);
}

int api_parse_client_frame_key(const char *body, size_t len, size_t max_bytes,
                               char **text, size_t *text_len,
                               char key[API_KEY_MAX + 1], struct api_error *err)
{
    json_object *o, *v;
    const char *type;
    int rc = -1;

    *text = NULL;
    *text_len = 0;
    key[0] = '\0';
    if ((o = parse_object(body, len, err)) == NULL)
        return -1;
    if ((v = get_string(o, "type", err)) == NULL)
        goto done;
    type = json_object_get_string(v);
    /* "typing\u0000x" is no type of ours: compare all of it */
    if (strlen(type) != (size_t)json_object_get_string_len(v))
        type = "";
    if (strcmp(type, "message") == 0) {
        if (take_key(o, key, err) == 0 &&
            take_text(o, max_bytes, text, text_len, err) == 0)
            rc = EVENT_MESSAGE;
    } else if (strcmp(type, "typing") == 0) {
        rc = EVENT_TYPING;
    } else {
        api_fail(err, 400, API_BAD_REQUEST,
                 "\"type\" must be \"message\" or \"typing\"");
    }
done:
    json_object_put(o);
    return rc;
}

int api_parse_client_frame(const char *body, size_t len, size_t max_bytes,
                           char **text, size_t *text_len, struct api_error *err)
{
    char key[API_KEY_MAX + 1];

    return api_parse_client_frame_key(body, len, max_bytes, text, text_len, key,
                                      err);
}

enum api_fault api_fault_of(const char *redis_error)
{
    /* Redis 7 keeps the error code when a script's call fails */
    if (strncmp(redis_error, "OOM ", 4) == 0)
        return API_FAULT_OOM;
    if (strncmp(redis_error, "READONLY ", 9) == 0)
        return API_FAULT_READONLY;
    return API_FAULT_ERROR;
}

int api_unavailable(struct api_error *err, enum api_fault fault,
                    enum api_doing doing)
{
    static const char *const cause[] = {
        [API_FAULT_NONE] = "the message store failed",
        [API_FAULT_DOWN] = "the message store is unreachable",
        [API_FAULT_UNKNOWN] = "the message store did not answer in time or "
                              "the connection to it was lost",
        [API_FAULT_OOM] = "Redis is out of memory (maxmemory reached) and "
                          "refuses writes",
        [API_FAULT_READONLY] = "Redis is a read-only replica and refuses "
                               "writes",
        [API_FAULT_ERROR] = "Redis answered an error",
    };
    const char *why = fault <= API_FAULT_ERROR ? cause[fault] : cause[0];

    if (doing == API_DOING_HEALTH)
        return api_fail(err, 503, API_UNAVAILABLE, "%s", why);
    if (fault != API_FAULT_UNKNOWN)
        return api_fail(err, 503, API_UNAVAILABLE, "%s; nothing was stored",
                        why);
    if (doing == API_DOING_REGISTER)
        return api_fail(err, 503, API_UNAVAILABLE,
                        "%s after the registration was sent: whether the "
                        "name is now registered is unknown (its token is "
                        "lost if it is); register again, under another name "
                        "if this one is taken",
                        why);
    return api_fail(err, 503, API_UNAVAILABLE,
                    "%s after the message was sent: the outcome is unknown; "
                    "retry with the same %s",
                    why,
                    doing == API_DOING_SEND ? "Idempotency-Key" : "\"key\"");
}

char *api_register_json(const char *name, const char *token, size_t *len)
{
    json_object *o = json_object_new_object();

    json_object_object_add(o, "name", json_object_new_string(name));
    json_object_object_add(o, "token", json_object_new_string(token));
    return jsonobj_finish(o, len);
}

char *api_events_json(const char *const *jsons, const size_t *lens, size_t n,
                      const char *last_id, const struct streamid_signal *sig,
                      size_t *len)
{
    json_object *id = json_object_new_string(last_id != NULL ? last_id : "");
    const char *idjson;
    char members[API_SIGNAL_MEMBERS_MAX];
    size_t idlen, mlen, total, i, off;
    char *out;

    idjson = json_object_to_json_string_length(
        id, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &idlen);
    mlen = api_signal_members(sig, members);
    total = strlen("{\"events\":[],\"last_id\":}") + idlen + mlen;
    for (i = 0; i < n; i++)
        total += lens[i] + 1;
    out = xmalloc(total + 1);
    off = 0;
    memcpy(out + off, "{\"events\":[", 11);
    off += 11;
    for (i = 0; i < n; i++) {
        if (i > 0)
            out[off++] = ',';
        memcpy(out + off, jsons[i], lens[i]);
        off += lens[i];
    }
    memcpy(out + off, "],\"last_id\":", 12);
    off += 12;
    memcpy(out + off, idjson, idlen);
    off += idlen;
    memcpy(out + off, members, mlen);
    off += mlen;
    out[off++] = '}';
    out[off] = '\0';
    json_object_put(id);
    if (len != NULL)
        *len = off;
    return out;
}

char *api_online_json(const char *const *names, size_t n, size_t *len)
{
    json_object *o = json_object_new_object();
    json_object *arr = json_object_new_array();
    size_t i;

    for (i = 0; i < n; i++)
        json_object_array_add(arr, json_object_new_string(names[i]));
    json_object_object_add(o, "online", arr);
    return jsonobj_finish(o, len);
}

char *api_rooms_json(const char *const *names, const long long *last_ts,
                     size_t n, size_t limit, size_t *len)
{
    json_object *o = json_object_new_object();
    json_object *arr = json_object_new_array();
    bool more = n > limit;
    size_t i;

    if (more)
        n = limit;
    for (i = 0; i < n; i++) {
        json_object *r = json_object_new_object();

        json_object_object_add(r, "name", json_object_new_string(names[i]));
        json_object_object_add(r, "last_ts", json_object_new_int64(last_ts[i]));
        json_object_array_add(arr, r);
    }
    json_object_object_add(o, "rooms", arr);
    json_object_object_add(o, "more", json_object_new_boolean(more));
    if (more && n > 0) {
        char next[32 + NAME_ROOM_MAX];

        snprintf(next, sizeof(next), "%lld:%s", last_ts[n - 1], names[n - 1]);
        json_object_object_add(o, "next", json_object_new_string(next));
    }
    return jsonobj_finish(o, len);
}

const char *api_signal_type(const struct streamid_signal *sig)
{
    switch (sig != NULL ? sig->verdict : STREAMID_FINE) {
    case STREAMID_TRUNCATED:
        return "truncated";
    case STREAMID_RESET:
        return "reset";
    default:
        return NULL;
    }
}

/* The member naming the signal's id. */
static const char *signal_id_name(const struct streamid_signal *sig)
{
    return sig->verdict == STREAMID_TRUNCATED ? "first_id" : "last_id";
}

char *api_signal_json(const struct streamid_signal *sig, bool with_type,
                      size_t *len)
{
    const char *type = api_signal_type(sig);
    char id[STREAMID_STRLEN];
    char *out;

    if (type == NULL)
        return NULL;
    streamid_format(&sig->id, id);
    if (with_type)
        out = xasprintf("{\"type\":\"%s\",\"%s\":\"%s\"}", type,
                        signal_id_name(sig), id);
    else
        out = xasprintf("{\"%s\":\"%s\"}", signal_id_name(sig), id);
    if (len != NULL)
        *len = strlen(out);
    return out;
}

size_t api_signal_members(const struct streamid_signal *sig, char *buf)
{
    const char *type = api_signal_type(sig);
    char id[STREAMID_STRLEN];
    int n;

    buf[0] = '\0';
    if (type == NULL)
        return 0;
    if (sig->verdict == STREAMID_RESET)
        return (size_t)snprintf(buf, API_SIGNAL_MEMBERS_MAX, ",\"reset\":true");
    n = snprintf(buf, API_SIGNAL_MEMBERS_MAX,
                 ",\"%s\":true,\"first_id\":\"%s\"", type,
                 streamid_format(&sig->id, id));
    return (size_t)n;
}
