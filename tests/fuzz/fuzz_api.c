/* fuzz_api.c - the request body parsers (register, message, WebSocket
 * client frame) on the same bytes: each answer well formed, and the three
 * agreeing with each other and with the size limit */
#include <json-c/json.h>
#include <stdbool.h>

#include "api.h"
#include "fuzz.h"
#include "names.h"
#include "utf8.h"

static const char *const known_codes[] = {
    API_BAD_JSON,   API_BAD_REQUEST, API_BAD_NAME,
    API_EMPTY_TEXT, API_BAD_UTF8,    API_TOO_LARGE,
};

/* A failed parse left a usable error: a known code with its status, a
 * terminated message, and an error body that is the JSON it claims. */
static void check_error(const struct api_error *err)
{
    json_object *o, *v;
    size_t i, len;
    char *body;
    bool known = false;

    FUZZ_CHECK(err->code != NULL, "no error code");
    for (i = 0; i < sizeof(known_codes) / sizeof(known_codes[0]); i++)
        if (strcmp(err->code, known_codes[i]) == 0)
            known = true;
    FUZZ_CHECK(known, "unknown code \"%s\"", err->code);
    FUZZ_CHECK(err->status ==
                   (strcmp(err->code, API_TOO_LARGE) == 0 ? 413 : 400),
               "code %s with status %d", err->code, err->status);
    FUZZ_CHECK(memchr(err->message, '\0', sizeof(err->message)) != NULL &&
                   err->message[0] != '\0',
               "message empty or unterminated");

    body = api_error_json(err, &len);
    FUZZ_CHECK(strlen(body) == len, "error body length");
    o = json_tokener_parse(body);
    FUZZ_CHECK(o != NULL && json_object_is_type(o, json_type_object),
               "error body is not a JSON object: %s", body);
    FUZZ_CHECK(json_object_object_get_ex(o, "error", &v) &&
                   strcmp(json_object_get_string(v), err->code) == 0,
               "error body has the wrong code: %s", body);
    FUZZ_CHECK(json_object_object_get_ex(o, "message", &v) &&
                   strcmp(json_object_get_string(v), err->message) == 0,
               "error body has the wrong message: %s", body);
    json_object_put(o);
    free(body);
}

static void check_text(const char *text, size_t len, size_t max_bytes)
{
    FUZZ_CHECK(text != NULL, "success without text");
    FUZZ_CHECK(len >= 1 && len <= max_bytes, "text of %zu bytes, max %zu", len,
               max_bytes);
    FUZZ_CHECK(text[len] == '\0' && strlen(text) == len,
               "text not terminated or holds a NUL");
    FUZZ_CHECK(utf8_valid(text, len), "text is not UTF-8");
}

/* A frame taken as a message or typing has exactly that "type", not the
 * name with more after a NUL ("typing\u0000x"): json-c as a second reader. */
static void check_frame_type(const char *body, size_t size, int frc)
{
    json_tokener *tok = json_tokener_new();
    json_object *o = json_tokener_parse_ex(tok, body, (int)size);
    json_object *t;
    const char *want = frc == EVENT_MESSAGE ? "message" : "typing";

    FUZZ_CHECK(o != NULL && json_object_object_get_ex(o, "type", &t) &&
                   json_object_is_type(t, json_type_string) &&
                   (size_t)json_object_get_string_len(t) == strlen(want) &&
                   strcmp(json_object_get_string(t), want) == 0,
               "a frame taken as %s has another type", want);
    json_object_put(o);
    json_tokener_free(tok);
}

/* The result of one api_parse_message call. */
struct msg_result {
    int rc;
    char *text;
    size_t len;
    struct api_error err;
};

static void parse_message(const char *body, size_t size, size_t max_bytes,
                          struct msg_result *r)
{
    memset(&r->err, 0, sizeof(r->err));
    r->rc =
        api_parse_message(body, size, max_bytes, &r->text, &r->len, &r->err);
    if (r->rc == 0) {
        check_text(r->text, r->len, max_bytes);
    } else {
        FUZZ_CHECK(r->rc == -1, "api_parse_message returned %d", r->rc);
        FUZZ_CHECK(r->text == NULL && r->len == 0, "text left on failure");
        check_error(&r->err);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    char name[NAME_USER_MAX + 1], name2[NAME_USER_MAX + 1];
    struct api_error rerr, ferr, err2;
    struct msg_result big, small;
    char *ftext = NULL, *json;
    size_t flen = 0, jlen, max_small;
    int rrc, frc;

    /* A small limit picked by the input, so 413 is reachable. */
    max_small = size > 0 ? (size_t)data[size - 1] % 64 + 1 : 1;

    memset(&rerr, 0, sizeof(rerr));
    rrc = api_parse_register(body, size, name, &rerr);
    if (rrc == 0) {
        FUZZ_CHECK(names_user_valid(name, strlen(name)), "name \"%s\"", name);
        /* what we answer with parses back to the same name */
        json = api_register_json(name, "t0ken", &jlen);
        FUZZ_CHECK(api_parse_register(json, jlen, name2, &err2) == 0 &&
                       strcmp(name, name2) == 0,
                   "register round trip: %s", json);
        free(json);
    } else {
        FUZZ_CHECK(rrc == -1, "api_parse_register returned %d", rrc);
        check_error(&rerr);
        FUZZ_CHECK(strcmp(rerr.code, API_BAD_JSON) == 0 ||
                       strcmp(rerr.code, API_BAD_REQUEST) == 0 ||
                       strcmp(rerr.code, API_BAD_NAME) == 0,
                   "register failed with %s", rerr.code);
    }

    parse_message(body, size, SIZE_MAX, &big);
    parse_message(body, size, max_small, &small);
    if (big.rc == 0) {
        /* the limit alone decides between the two */
        if (big.len <= max_small)
            FUZZ_CHECK(small.rc == 0 && small.len == big.len &&
                           memcmp(small.text, big.text, big.len) == 0,
                       "text within %zu bytes refused or changed", max_small);
        else
            FUZZ_CHECK(small.rc == -1 &&
                           strcmp(small.err.code, API_TOO_LARGE) == 0,
                       "text of %zu bytes over %zu accepted (or not 413)",
                       big.len, max_small);
    } else {
        FUZZ_CHECK(small.rc == -1, "a smaller limit accepted what a larger "
                                   "one refused");
        /* the size is checked before the content (UTF-8, NUL, white
         * space only): a text too large under the smaller limit is 413
         * there, whatever is wrong with its content under the larger */
        FUZZ_CHECK(strcmp(small.err.code, big.err.code) == 0 ||
                       ((strcmp(big.err.code, API_BAD_UTF8) == 0 ||
                         strcmp(big.err.code, API_EMPTY_TEXT) == 0) &&
                        strcmp(small.err.code, API_TOO_LARGE) == 0),
                   "limit changed the error from %s to %s", big.err.code,
                   small.err.code);
    }

    memset(&ferr, 0, sizeof(ferr));
    frc = api_parse_client_frame(body, size, SIZE_MAX, &ftext, &flen, &ferr);
    if (frc == EVENT_MESSAGE || frc == EVENT_TYPING)
        check_frame_type(body, size, frc);
    if (frc == EVENT_MESSAGE) {
        check_text(ftext, flen, SIZE_MAX);
        FUZZ_CHECK(big.rc == 0 && big.len == flen &&
                       memcmp(big.text, ftext, flen) == 0,
                   "a frame's text differs from the same body's message text");
    } else if (frc == EVENT_TYPING) {
        FUZZ_CHECK(ftext == NULL && flen == 0, "typing frame with text");
    } else {
        FUZZ_CHECK(frc == -1, "api_parse_client_frame returned %d", frc);
        FUZZ_CHECK(ftext == NULL && flen == 0, "text left on failure");
        check_error(&ferr);
    }

    /* One JSON reader: the three calls agree on what is not a JSON object. */
    {
        bool r_bad = rrc != 0 && strcmp(rerr.code, API_BAD_JSON) == 0;
        bool m_bad = big.rc != 0 && strcmp(big.err.code, API_BAD_JSON) == 0;
        bool f_bad = frc == -1 && strcmp(ferr.code, API_BAD_JSON) == 0;

        FUZZ_CHECK(r_bad == m_bad && m_bad == f_bad,
                   "bad_json disagreement: register %d message %d frame %d",
                   r_bad, m_bad, f_bad);
    }

    free(big.text);
    free(small.text);
    free(ftext);
    return 0;
}
