/* test_api.c - request body parsers and response bodies */
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "tap.h"

/* Asserts that a message body fails with status and code. */
static void msg_fails(const char *body, size_t max, int status,
                      const char *code)
{
    struct api_error err = {0, NULL, ""};
    char *text = (char *)"sentinel";
    size_t len = 99;
    int rc = api_parse_message(body, strlen(body), max, &text, &len, &err);

    ok(rc == -1 && err.status == status && err.code != NULL &&
           strcmp(err.code, code) == 0 && text == NULL && err.message[0],
       "message %s -> %d %s (got %d %s: %s)", body, status, code, err.status,
       err.code ? err.code : "-", err.message);
}

static void reg_fails(const char *body, int status, const char *code)
{
    struct api_error err = {0, NULL, ""};
    char name[NAME_USER_MAX + 1];

    ok(api_parse_register(body, strlen(body), name, &err) == -1 &&
           err.status == status && err.code && strcmp(err.code, code) == 0,
       "register %s -> %d %s (got %d %s)", body, status, code, err.status,
       err.code ? err.code : "-");
}

static void frame_fails(const char *body, int status, const char *code)
{
    struct api_error err = {0, NULL, ""};
    char *text = NULL;
    size_t len;

    ok(api_parse_client_frame(body, strlen(body), 10, &text, &len, &err) ==
               -1 &&
           err.status == status && err.code && strcmp(err.code, code) == 0 &&
           text == NULL,
       "frame %s -> %d %s (got %d %s)", body, status, code, err.status,
       err.code ? err.code : "-");
}

int main(void)
{
    struct api_error err;
    char name[NAME_USER_MAX + 1];
    char *text, *json;
    const char *msg;
    size_t len;

    is_int(api_fail(&err, 413, API_TOO_LARGE, "over %d", 5), -1,
           "api_fail returns -1");
    is_int(err.status, 413, "  status");
    is_str(err.code, "too_large", "  code");
    is_str(err.message, "over 5", "  message");
    api_fail(&err, 400, API_BAD_JSON, "bad \"quote\"");
    json = api_error_json(&err, &len);
    is_str(json, "{\"error\":\"bad_json\",\"message\":\"bad \\\"quote\\\"\"}",
           "error JSON, message escaped");
    is_int(len, strlen(json), "  length");
    free(json);

    is_int(api_parse_register("{\"name\":\"alice\"}", 16, name, &err), 0,
           "register body");
    is_str(name, "alice", "  name");
    is_int(api_parse_register(" {\"name\":\"a.b-c_1\",\"x\":[1]} ",
                              strlen(" {\"name\":\"a.b-c_1\",\"x\":[1]} "),
                              name, &err),
           0, "register with blanks and an extra field");
    is_str(name, "a.b-c_1", "  name");
    reg_fails("", 400, API_BAD_JSON);
    reg_fails("name=alice", 400, API_BAD_JSON);
    reg_fails("[\"alice\"]", 400, API_BAD_JSON);
    reg_fails("\"alice\"", 400, API_BAD_JSON);
    reg_fails("{\"name\":\"alice\"", 400, API_BAD_JSON);
    reg_fails("{\"name\":\"alice\"}{}", 400, API_BAD_JSON);
    reg_fails("{\"name\":\"alice\"} x", 400, API_BAD_JSON);
    reg_fails("{}", 400, API_BAD_REQUEST);
    reg_fails("{\"name\":42}", 400, API_BAD_REQUEST);
    reg_fails("{\"name\":null}", 400, API_BAD_REQUEST);
    reg_fails("{\"name\":\"\"}", 400, API_BAD_NAME);
    reg_fails("{\"name\":\"al ice\"}", 400, API_BAD_NAME);
    reg_fails("{\"name\":\"abcdefghijklmnopqrstuvwxyz0123456\"}", 400,
              API_BAD_NAME);
    reg_fails("{\"name\":\"a\\u0000b\"}", 400, API_BAD_NAME);

    is_int(api_parse_message("{\"text\":\"hi \\u00e9\"}", 20, 100, &text, &len,
                             &err),
           0, "message body");
    is_str(text, "hi \xc3\xa9", "  text decoded");
    is_int(len, 5, "  length in bytes");
    free(text);
    is_int(api_parse_message("{\"text\":\"12345\"}", 16, 5, &text, &len, &err),
           0, "text of exactly max bytes");
    free(text);
    msg_fails("{\"text\":\"123456\"}", 5, 413, API_TOO_LARGE);
    /* an escaped surrogate pair is one character; a lone half is none, and
     * json-c would store U+FFFD in its place */
    msg = "{\"text\":\"a\\ud83d\\ude00b\"}";
    is_int(api_parse_message(msg, strlen(msg), 100, &text, &len, &err), 0,
           "an escaped surrogate pair");
    is_str(text,
           "a\xf0\x9f\x98\x80"
           "b",
           "  is U+1F600 in UTF-8");
    free(text);
    msg = "{\"text\":\"\\\\ud800\"}";
    is_int(api_parse_message(msg, strlen(msg), 100, &text, &len, &err), 0,
           "an escaped backslash before ud800 is text, not an escape");
    is_str(text, "\\ud800", "  kept as typed");
    free(text);
    msg_fails("{\"text\":\"a\\ud800b\"}", 100, 400, API_BAD_JSON);
    msg_fails("{\"text\":\"a\\udc00b\"}", 100, 400, API_BAD_JSON);
    msg_fails("{\"text\":\"a\\ud800\"}", 100, 400, API_BAD_JSON);
    msg_fails("{\"text\":\"a\\uD800\\u0041\"}", 100, 400, API_BAD_JSON);
    msg_fails("{\"text\":\"a\\ude00\\ud83d\"}", 100, 400, API_BAD_JSON);
    msg_fails("{\"text\":\"ok\",\"x\":\"\\udbff\"}", 100, 400, API_BAD_JSON);
    reg_fails("{\"name\":\"a\\ud800\"}", 400, API_BAD_JSON);

    msg_fails("{\"text\":\"\xc3\xa9\xc3\xa9\xc3\xa9\"}", 5, 413, API_TOO_LARGE);
    msg_fails("", 100, 400, API_BAD_JSON);
    msg_fails("hello", 100, 400, API_BAD_JSON);
    msg_fails("{\"text\":\"hi\"", 100, 400, API_BAD_JSON);
    msg_fails("{\"text\":\"hi\"}]", 100, 400, API_BAD_JSON);
    msg_fails("{\"text\":\"hi\",}", 100, 400, API_BAD_JSON);
    msg_fails("[{\"text\":\"hi\"}]", 100, 400, API_BAD_JSON);
    msg_fails("null", 100, 400, API_BAD_JSON);
    msg_fails("{}", 100, 400, API_BAD_REQUEST);
    msg_fails("{\"txt\":\"hi\"}", 100, 400, API_BAD_REQUEST);
    msg_fails("{\"text\":5}", 100, 400, API_BAD_REQUEST);
    msg_fails("{\"text\":[\"hi\"]}", 100, 400, API_BAD_REQUEST);
    msg_fails("{\"text\":null}", 100, 400, API_BAD_REQUEST);
    msg_fails("{\"text\":\"\"}", 100, 400, API_EMPTY_TEXT);
    msg_fails("{\"text\":\" \"}", 100, 400, API_EMPTY_TEXT);
    msg_fails("{\"text\":\" \\t\\n\\r \\f\\u000b\"}", 100, 400, API_EMPTY_TEXT);
    msg_fails("{\"text\":\"\\u00a0\\u2003\\u3000\\u200b\\ufeff\\u2028\"}", 100,
              400, API_EMPTY_TEXT);
    msg_fails("{\"text\":\"\xe3\x80\x80\xc2\x85 \"}", 100, 400, API_EMPTY_TEXT);
    {
        static const char *const seen[] = {"{\"text\":\" a \"}",
                                           "{\"text\":\"\\n.\\n\"}",
                                           "{\"text\":\"\\u3000\xe3\x81\x82\"}",
                                           "{\"text\":\" \xf0\x9f\x98\x80\"}"};
        for (size_t i = 0; i < sizeof(seen) / sizeof(*seen); i++) {
            struct api_error e2;
            char *t2 = NULL;
            size_t l2 = 0;
            ok(api_parse_message(seen[i], strlen(seen[i]), 100, &t2, &l2,
                                 &e2) == 0,
               "text with something visible is taken: %s", seen[i]);
            free(t2);
        }
    }
    msg_fails("{\"text\":\"\xc0\xaf\"}", 100, 400, API_BAD_UTF8);
    msg_fails("{\"text\":\"\xed\xa0\x80\"}", 100, 400, API_BAD_UTF8);
    msg_fails("{\"text\":\"ab\xff\"}", 100, 400, API_BAD_UTF8);
    msg_fails("{\"text\":\"a\\u0000b\"}", 100, 400, API_BAD_UTF8);
    {
        struct api_error e2;
        char *t2 = NULL;
        size_t l2;
        const char body[] = "{\"text\":\"hi\"}\0garbage";

        ok(api_parse_message(body, sizeof(body) - 1, 100, &t2, &l2, &e2) == -1,
           "a NUL after the object is trailing garbage");
        free(t2);
    }

    is_int(api_parse_client_frame("{\"type\":\"message\",\"text\":\"yo\"}",
                                  strlen("{\"type\":\"message\",\"text\":"
                                         "\"yo\"}"),
                                  10, &text, &len, &err),
           EVENT_MESSAGE, "message frame");
    is_str(text, "yo", "  text");
    free(text);
    text = NULL;
    is_int(api_parse_client_frame("{\"type\":\"typing\"}", 17, 10, &text, &len,
                                  &err),
           EVENT_TYPING, "typing frame");
    ok(text == NULL, "  no text");
    frame_fails("{\"text\":\"yo\"}", 400, API_BAD_REQUEST);
    frame_fails("{\"type\":\"shout\"}", 400, API_BAD_REQUEST);
    frame_fails("{\"type\":1}", 400, API_BAD_REQUEST);
    frame_fails("{\"type\":\"message\"}", 400, API_BAD_REQUEST);
    frame_fails("{\"type\":\"message\",\"text\":\"\"}", 400, API_EMPTY_TEXT);
    frame_fails("{\"type\":\"message\",\"text\":\" \\t\\n\"}", 400,
                API_EMPTY_TEXT);
    frame_fails("{\"type\":\"message\",\"text\":\"01234567890\"}", 413,
                API_TOO_LARGE);
    frame_fails("{\"type\":\"message\",\"text\":\"\xe2\x82\"}", 400,
                API_BAD_UTF8);
    frame_fails("not json", 400, API_BAD_JSON);

    json = api_register_json("alice", "tok-_", &len);
    is_str(json, "{\"name\":\"alice\",\"token\":\"tok-_\"}", "register JSON");
    free(json);

    {
        const char *evs[] = {"{\"a\":1}", "{\"b\":2}"};
        size_t lens[] = {7, 7};

        struct streamid_signal gap = {STREAMID_TRUNCATED, {10, 0}, {0, 0}};
        struct streamid_signal reset = {STREAMID_RESET, {20, 3}, {20, 3}};
        struct streamid_signal fine = {STREAMID_FINE};

        json = api_events_json(evs, lens, 2, "5-1", NULL, &len);
        is_str(json, "{\"events\":[{\"a\":1},{\"b\":2}],\"last_id\":\"5-1\"}",
               "events JSON joins");
        is_int(len, strlen(json), "  length");
        free(json);
        json = api_events_json(NULL, NULL, 0, "0-0", &fine, &len);
        is_str(json, "{\"events\":[],\"last_id\":\"0-0\"}", "no events");
        free(json);
        json = api_events_json(evs, lens, 1, "10-0", &gap, &len);
        is_str(json,
               "{\"events\":[{\"a\":1}],\"last_id\":\"10-0\","
               "\"truncated\":true,\"first_id\":\"10-0\"}",
               "events with a gap");
        is_int(len, strlen(json), "  length");
        free(json);
        json = api_events_json(NULL, NULL, 0, "20-3", &reset, &len);
        is_str(json, "{\"events\":[],\"last_id\":\"20-3\",\"reset\":true}",
               "events with a reset");
        free(json);

        is_str(api_signal_type(&gap), "truncated", "signal type truncated");
        is_str(api_signal_type(&reset), "reset", "signal type reset");
        ok(api_signal_type(&fine) == NULL, "no type when fine");
        json = api_signal_json(&gap, true, &len);
        is_str(json, "{\"type\":\"truncated\",\"first_id\":\"10-0\"}",
               "WebSocket truncated frame");
        is_int(len, strlen(json), "  length");
        free(json);
        json = api_signal_json(&reset, true, &len);
        is_str(json, "{\"type\":\"reset\",\"last_id\":\"20-3\"}",
               "WebSocket reset frame");
        free(json);
        json = api_signal_json(&gap, false, NULL);
        is_str(json, "{\"first_id\":\"10-0\"}", "SSE truncated data");
        free(json);
        json = api_signal_json(&reset, false, NULL);
        is_str(json, "{\"last_id\":\"20-3\"}", "SSE reset data");
        free(json);
        ok(api_signal_json(&fine, true, NULL) == NULL, "no JSON when fine");
    }
    {
        const char *who[] = {"alice", "bob"};
        const char *rooms[] = {"lobby", "dev"};
        const long long ts[] = {1732230000000LL, 5};

        json = api_online_json(who, 2, &len);
        is_str(json, "{\"online\":[\"alice\",\"bob\"]}", "online JSON");
        free(json);
        json = api_online_json(NULL, 0, &len);
        is_str(json, "{\"online\":[]}", "nobody online");
        free(json);
        json = api_rooms_json(rooms, ts, 2, 2, &len);
        is_str(json,
               "{\"rooms\":[{\"name\":\"lobby\",\"last_ts\":1732230000000},"
               "{\"name\":\"dev\",\"last_ts\":5}],\"more\":false}",
               "rooms JSON");
        free(json);
        json = api_rooms_json(rooms, ts, 2, 1, &len);
        is_str(json,
               "{\"rooms\":[{\"name\":\"lobby\",\"last_ts\":1732230000000}],"
               "\"more\":true,\"next\":\"1732230000000:lobby\"}",
               "rooms JSON, a page of one of two: more, next");
        free(json);
        json = api_rooms_json(NULL, NULL, 0, 100, &len);
        is_str(json, "{\"rooms\":[],\"more\":false}", "no rooms");
        free(json);
    }
    {
        char key[API_KEY_MAX + 1], k64[API_KEY_MAX + 2];
        static const char *const bad[] = {"",  "a b", "a:b", "\"\"", "\"a",
                                          "é", "a,b", "a\"", "a.b"};

        is_int(api_parse_key(NULL, 0, key, &err), 0, "no key: 0");
        is_str(key, "", "  and key \"\"");
        is_int(api_parse_key("Ab_9-z", 6, key, &err), 0, "key Ab_9-z");
        is_str(key, "Ab_9-z", "  copied");
        is_int(api_parse_key("\"q-1\"", 5, key, &err), 0,
               "a quoted key (the IETF draft's sf-string)");
        is_str(key, "q-1", "  without its quotes");
        memset(k64, 'k', 65);
        k64[65] = '\0';
        ok(api_parse_key(k64, 64, key, &err) == 0 && strlen(key) == 64,
           "64 characters");
        ok(api_parse_key(k64, 65, key, &err) == -1 && err.status == 400 &&
               strcmp(err.code, API_BAD_REQUEST) == 0,
           "65 characters: 400 bad_request");
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
            ok(api_parse_key(bad[i], strlen(bad[i]), key, &err) == -1 &&
                   err.status == 400 && key[0] == '\0',
               "key \"%s\": 400", bad[i]);
        ok(api_parse_key("a\0b", 3, key, &err) == -1, "a NUL in a key: 400");

        is_int(api_parse_client_frame_key(
                   "{\"type\":\"message\",\"text\":\"yo\",\"key\":\"m-1\"}", 42,
                   10, &text, &len, key, &err),
               EVENT_MESSAGE, "frame with a key");
        is_str(key, "m-1", "  the key");
        free(text);
        is_int(
            api_parse_client_frame_key("{\"type\":\"message\",\"text\":\"yo\"}",
                                       30, 10, &text, &len, key, &err),
            EVENT_MESSAGE, "frame without a key");
        is_str(key, "", "  key \"\"");
        free(text);
        frame_fails("{\"type\":\"message\",\"text\":\"yo\",\"key\":\"a b\"}",
                    400, API_BAD_REQUEST);
        frame_fails("{\"type\":\"message\",\"text\":\"yo\",\"key\":7}", 400,
                    API_BAD_REQUEST);
        frame_fails("{\"type\":\"message\",\"text\":\"yo\",\"key\":\"\"}", 400,
                    API_BAD_REQUEST);
    }
    is_int(api_fault_of("OOM command not allowed when used memory > "
                        "'maxmemory'. script: 1, on @user_script:5."),
           API_FAULT_OOM, "an OOM error is out of memory");
    is_int(api_fault_of("READONLY You can't write against a read only "
                        "replica."),
           API_FAULT_READONLY, "READONLY is read-only");
    is_int(api_fault_of("ERR unknown command"), API_FAULT_ERROR,
           "another error");
    api_unavailable(&err, API_FAULT_UNKNOWN, API_DOING_SEND);
    ok(err.status == 503 && strcmp(err.code, API_UNAVAILABLE) == 0 &&
           strstr(err.message, "unknown") != NULL &&
           strstr(err.message, "Idempotency-Key") != NULL &&
           strstr(err.message, "nothing was stored") == NULL,
       "unknown outcome: 503, retry with the same key (%s)", err.message);
    api_unavailable(&err, API_FAULT_OOM, API_DOING_SEND);
    ok(strstr(err.message, "out of memory") != NULL &&
           strstr(err.message, "nothing was stored") != NULL,
       "out of memory: nothing was stored (%s)", err.message);
    api_unavailable(&err, API_FAULT_READONLY, API_DOING_HEALTH);
    ok(strstr(err.message, "read-only") != NULL, "health: read-only (%s)",
       err.message);
    return tap_done();
}
