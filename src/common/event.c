/* event.c - the chat's events and their JSON (json-c) */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "event.h"
#include "jsonobj.h"
#include "utf8.h"
#include "xmalloc.h"

static const char *const type_names[] = {"message", "typing", "presence"};

const char *event_type_name(enum event_type t)
{
    if ((unsigned)t >= sizeof(type_names) / sizeof(type_names[0]))
        return "unknown";
    return type_names[t];
}

void event_clear(struct chat_event *ev)
{
    size_t i;

    if (ev == NULL)
        return;
    free(ev->text);
    for (i = 0; i < ev->n_online; i++)
        free(ev->online[i]);
    free(ev->online);
    memset(ev, 0, sizeof(*ev));
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void copy_name(char *dst, size_t dstlen, const char *src)
{
    snprintf(dst, dstlen, "%s", src != NULL ? src : "");
}

void event_init_message(struct chat_event *ev, const char *room, const char *id,
                        const char *from, const char *text, size_t text_len,
                        int64_t ts)
{
    memset(ev, 0, sizeof(*ev));
    ev->type = EVENT_MESSAGE;
    copy_name(ev->room, sizeof(ev->room), room);
    copy_name(ev->from, sizeof(ev->from), from);
    if (id != NULL && streamid_parse(id, strlen(id), &ev->sid) == 0)
        streamid_format(&ev->sid, ev->id);
    ev->text = xmalloc(text_len + 1);
    memcpy(ev->text, text, text_len);
    ev->text[text_len] = '\0';
    ev->text_len = text_len;
    ev->ts = ts;
}

void event_init_typing(struct chat_event *ev, const char *room,
                       const char *from, int64_t ts)
{
    memset(ev, 0, sizeof(*ev));
    ev->type = EVENT_TYPING;
    copy_name(ev->room, sizeof(ev->room), room);
    copy_name(ev->from, sizeof(ev->from), from);
    ev->ts = ts;
}

void event_init_presence(struct chat_event *ev, const char *room,
                         const char *const *online, size_t n, int64_t ts)
{
    size_t i;

    memset(ev, 0, sizeof(*ev));
    ev->type = EVENT_PRESENCE;
    copy_name(ev->room, sizeof(ev->room), room);
    ev->online = xcalloc(n, sizeof(*ev->online));
    for (i = 0; i < n; i++)
        ev->online[i] = xstrdup(online[i]);
    ev->n_online = n;
    qsort(ev->online, n, sizeof(*ev->online), cmp_names);
    ev->ts = ts;
}

int64_t event_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *event_to_json(const struct chat_event *ev, size_t *len)
{
    json_object *o = json_object_new_object();
    size_t i;

    /* json-c keeps insertion order, which gives DESIGN.md's field order. */
    if (ev->type == EVENT_MESSAGE)
        json_object_object_add(o, "id", json_object_new_string(ev->id));
    json_object_object_add(o, "room", json_object_new_string(ev->room));
    json_object_object_add(o, "type",
                           json_object_new_string(event_type_name(ev->type)));
    if (ev->type == EVENT_MESSAGE || ev->type == EVENT_TYPING)
        json_object_object_add(o, "from", json_object_new_string(ev->from));
    if (ev->type == EVENT_MESSAGE)
        json_object_object_add(
            o, "text",
            json_object_new_string_len(ev->text != NULL ? ev->text : "",
                                       (int)ev->text_len));
    if (ev->type == EVENT_PRESENCE) {
        json_object *arr = json_object_new_array();

        for (i = 0; i < ev->n_online; i++)
            json_object_array_add(arr, json_object_new_string(ev->online[i]));
        json_object_object_add(o, "online", arr);
    }
    json_object_object_add(o, "ts", json_object_new_int64(ev->ts));
    return jsonobj_finish(o, len);
}

char *jsonobj_finish(struct json_object *o, size_t *len)
{
    const char *s;
    size_t n;
    char *out;

    s = json_object_to_json_string_length(
        o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
    out = xstrndup(s, n);
    json_object_put(o);
    if (len != NULL)
        *len = n;
    return out;
}

void event_free_array(struct chat_event *evs, size_t n)
{
    size_t i;

    if (evs == NULL)
        return;
    for (i = 0; i < n; i++)
        event_clear(&evs[i]);
    free(evs);
}

/* The value of the 4 hex digits of a \u escape at p (json-c checked them). */
static long hex4(const char *p)
{
    char digits[5];

    memcpy(digits, p, 4);
    digits[4] = '\0';
    return strtol(digits, NULL, 16);
}

/* True when every \u escape in the strings of buf (valid JSON) is a
 * character: a high surrogate followed at once by an escaped low one, or
 * no surrogate. json-c turns a lone one into U+FFFD, so what was stored
 * would not be what was sent. */
static bool escapes_are_characters(const char *buf, size_t len)
{
    bool in_string = false;

    for (size_t i = 0; i < len; i++) {
        long v;

        if (buf[i] == '"') {
            in_string = !in_string;
            continue;
        }
        if (!in_string || buf[i] != '\\')
            continue;
        if (i + 1 < len && buf[i + 1] != 'u') {
            i++; /* \n, \", \\ ... */
            continue;
        }
        if (i + 6 > len)
            return false; /* json-c accepted it: not reached */
        v = hex4(buf + i + 2);
        i += 5;
        if (v >= 0xDC00 && v <= 0xDFFF)
            return false;
        if (v >= 0xD800 && v <= 0xDBFF) {
            long lo;
            if (i + 7 > len || buf[i + 1] != '\\' || buf[i + 2] != 'u' ||
                (lo = hex4(buf + i + 3)) < 0xDC00 || lo > 0xDFFF)
                return false;
            i += 6;
        }
    }
    return true;
}

struct json_object *jsonobj_parse(const char *buf, size_t len, const char **why)
{
    json_tokener *tok = NULL;
    json_object *o = NULL;
    const char *dummy;
    size_t end;

    if (why == NULL)
        why = &dummy;
    *why = "is not JSON";
    if (buf == NULL || len > INT32_MAX)
        return NULL;
    tok = json_tokener_new();
    if (tok == NULL)
        return NULL;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    o = json_tokener_parse_ex(tok, buf, (int)len);
    if (o == NULL || json_tokener_get_error(tok) != json_tokener_success)
        goto err;
    *why = "has data after its JSON value";
    for (end = json_tokener_get_parse_end(tok); end < len; end++)
        if (strchr(" \t\r\n", buf[end]) == NULL || buf[end] == '\0')
            goto err;
    *why = "is not a JSON object";
    if (!json_object_is_type(o, json_type_object))
        goto err;
    *why = "has an escaped lone surrogate (\\uD800 to \\uDFFF without its "
           "pair), which is no character";
    if (!escapes_are_characters(buf, len))
        goto err;
    json_tokener_free(tok);
    return o;
err:
    json_object_put(o);
    json_tokener_free(tok);
    return NULL;
}

/* Copies a string field that passes `valid` into dst (dstlen bytes). */
static int get_name(json_object *o, const char *key, char *dst, size_t dstlen,
                    bool (*valid)(const char *, size_t))
{
    json_object *v;
    const char *s;
    size_t n;

    if (!json_object_object_get_ex(o, key, &v) ||
        !json_object_is_type(v, json_type_string))
        return -1;
    s = json_object_get_string(v);
    n = (size_t)json_object_get_string_len(v);
    if (!valid(s, n) || n >= dstlen)
        return -1;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return 0;
}

/* A whole, non-negative number of ms. The append script's cjson writes
 * numbers with "%.14g", so an integral double is as good as an integer. */
static int get_ts(json_object *o, int64_t *ts)
{
    json_object *v;

    if (!json_object_object_get_ex(o, "ts", &v))
        return -1;
    if (json_object_is_type(v, json_type_int)) {
        errno = 0;
        *ts = json_object_get_int64(v);
        if (errno != 0 || *ts < 0)
            return -1;
        /* json-c clamps values beyond int64; reject those too */
        return *ts == INT64_MAX ? -1 : 0;
    }
    if (json_object_is_type(v, json_type_double)) {
        double d = json_object_get_double(v);

        if (!(d >= 0 && d < 9007199254740992.0) || floor(d) != d)
            return -1;
        *ts = (int64_t)d;
        return 0;
    }
    return -1;
}

static bool valid_text(const char *s, size_t n)
{
    return utf8_valid(s, n) && memchr(s, '\0', n) == NULL;
}

static int get_online(json_object *o, struct chat_event *ev)
{
    json_object *v;
    size_t i, n;

    if (!json_object_object_get_ex(o, "online", &v))
        return -1;
    /* cjson encodes an empty Lua table as {}: take it as an empty list. */
    if (json_object_is_type(v, json_type_object) &&
        json_object_object_length(v) == 0)
        return 0;
    if (!json_object_is_type(v, json_type_array))
        return -1;
    n = json_object_array_length(v);
    ev->online = xcalloc(n, sizeof(*ev->online));
    for (i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(v, i);
        const char *s;
        size_t sl;

        if (!json_object_is_type(e, json_type_string))
            return -1;
        s = json_object_get_string(e);
        sl = (size_t)json_object_get_string_len(e);
        if (!names_user_valid(s, sl))
            return -1;
        ev->online[i] = xstrndup(s, sl);
        ev->n_online++;
    }
    qsort(ev->online, ev->n_online, sizeof(*ev->online), cmp_names);
    return 0;
}

int event_from_json(const char *buf, size_t len, struct chat_event *out)
{
    json_object *o = NULL, *v;
    const char *type;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    if (buf == NULL || (o = jsonobj_parse(buf, len, NULL)) == NULL)
        goto done;
    if (!json_object_object_get_ex(o, "type", &v) ||
        !json_object_is_type(v, json_type_string))
        goto done;
    type = json_object_get_string(v);
    /* "typing\u0000x" is no type of ours: compare all of it */
    if (strlen(type) != (size_t)json_object_get_string_len(v))
        goto done;
    if (get_name(o, "room", out->room, sizeof(out->room), names_room_valid) <
            0 ||
        get_ts(o, &out->ts) < 0)
        goto done;
    if (strcmp(type, "message") == 0) {
        const char *s;
        size_t n;

        out->type = EVENT_MESSAGE;
        if (!json_object_object_get_ex(o, "id", &v) ||
            !json_object_is_type(v, json_type_string))
            goto done;
        s = json_object_get_string(v);
        if (streamid_parse(s, (size_t)json_object_get_string_len(v),
                           &out->sid) < 0)
            goto done;
        streamid_format(&out->sid, out->id);
        if (get_name(o, "from", out->from, sizeof(out->from),
                     names_user_valid) < 0)
            goto done;
        if (!json_object_object_get_ex(o, "text", &v) ||
            !json_object_is_type(v, json_type_string))
            goto done;
        s = json_object_get_string(v);
        n = (size_t)json_object_get_string_len(v);
        if (!valid_text(s, n))
            goto done;
        out->text = xstrndup(s, n);
        out->text_len = n;
    } else if (strcmp(type, "typing") == 0) {
        out->type = EVENT_TYPING;
        if (get_name(o, "from", out->from, sizeof(out->from),
                     names_user_valid) < 0)
            goto done;
    } else if (strcmp(type, "presence") == 0) {
        out->type = EVENT_PRESENCE;
        if (get_online(o, out) < 0)
            goto done;
    } else {
        goto done;
    }
    rc = 0;
done:
    json_object_put(o);
    if (rc < 0)
        event_clear(out);
    return rc;
}
