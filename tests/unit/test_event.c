/* test_event.c - the event JSON codec */
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "tap.h"

static int decode(const char *json, struct chat_event *ev)
{
    return event_from_json(json, strlen(json), ev);
}

/* Asserts that json is rejected and leaves a zeroed event. */
static void rejects(const char *json, const char *why)
{
    struct chat_event ev;
    int rc = decode(json, &ev);

    ok(rc == -1 && ev.text == NULL && ev.online == NULL && ev.room[0] == 0,
       "rejects %s", why);
    event_clear(&ev);
}

int main(void)
{
    struct chat_event ev, back;
    const char *names[] = {"bob", "alice"};
    char *json;
    size_t len;

    event_init_message(&ev, "lobby", "1732230000000-0", "alice", "hi", 2,
                       1732230000000LL);
    json = event_to_json(&ev, &len);
    is_str(json,
           "{\"id\":\"1732230000000-0\",\"room\":\"lobby\",\"type\":"
           "\"message\",\"from\":\"alice\",\"text\":\"hi\",\"ts\":"
           "1732230000000}",
           "message encodes in DESIGN.md's order");
    is_int(len, strlen(json), "length is reported");
    is_int(event_from_json(json, len, &back), 0, "message decodes");
    is_int(back.type, EVENT_MESSAGE, "  type");
    is_str(back.id, "1732230000000-0", "  id");
    ok(back.sid.ms == 1732230000000ULL && back.sid.seq == 0, "  parsed id");
    is_str(back.room, "lobby", "  room");
    is_str(back.from, "alice", "  from");
    is_str(back.text, "hi", "  text");
    is_int(back.text_len, 2, "  text_len");
    is_int(back.ts, 1732230000000LL, "  ts");
    free(json);
    event_clear(&back);
    event_clear(&ev);
    ok(ev.text == NULL && ev.room[0] == 0, "event_clear zeroes");
    event_clear(&ev);
    ok(ev.text == NULL && ev.room[0] == 0 && ev.text_len == 0,
       "event_clear twice leaves it cleared");

    event_init_message(&ev, "r", "1-1", "u", "a/\"b\"\\\n\xc3\xa9</script>",
                       strlen("a/\"b\"\\\n\xc3\xa9</script>"), 5);
    json = event_to_json(&ev, &len);
    ok(strstr(json, "\"a/\\\"b\\\"\\\\\\n\xc3\xa9</script>\"") != NULL,
       "text escapes quotes, backslash, newline; keeps '/' and UTF-8: %s",
       json);
    is_int(event_from_json(json, len, &back), 0, "escaped text decodes");
    is_str(back.text, ev.text, "  round trip");
    free(json);
    event_clear(&back);
    event_clear(&ev);

    event_init_typing(&ev, "lobby", "bob", 1732230000100LL);
    json = event_to_json(&ev, NULL);
    is_str(json,
           "{\"room\":\"lobby\",\"type\":\"typing\",\"from\":\"bob\",\"ts\":"
           "1732230000100}",
           "typing encodes without id");
    is_int(decode(json, &back), 0, "typing decodes");
    is_int(back.type, EVENT_TYPING, "  type");
    is_str(back.id, "", "  no id");
    is_str(back.from, "bob", "  from");
    free(json);
    event_clear(&back);
    event_clear(&ev);

    event_init_presence(&ev, "lobby", names, 2, 1732230000200LL);
    json = event_to_json(&ev, NULL);
    is_str(json,
           "{\"room\":\"lobby\",\"type\":\"presence\",\"online\":[\"alice\","
           "\"bob\"],\"ts\":1732230000200}",
           "presence encodes, names sorted");
    is_int(decode(json, &back), 0, "presence decodes");
    is_int(back.n_online, 2, "  two online");
    if (back.n_online == 2) {
        is_str(back.online[0], "alice", "  first");
        is_str(back.online[1], "bob", "  second");
    }
    free(json);
    event_clear(&back);
    event_clear(&ev);
    event_init_presence(&ev, "lobby", NULL, 0, 1);
    json = event_to_json(&ev, NULL);
    is_str(json,
           "{\"room\":\"lobby\",\"type\":\"presence\",\"online\":[],"
           "\"ts\":1}",
           "empty presence");
    free(json);
    event_clear(&ev);

    /* What the append script's cjson.encode gives: any key order, '/'
     * escaped, ts as a number. */
    is_int(decode("{\"ts\":1732230000000,\"text\":\"a\\/b\",\"type\":"
                  "\"message\",\"from\":\"alice\",\"room\":\"lobby\","
                  "\"id\":\"1732230000000-3\"}",
                  &ev),
           0, "cjson-style message decodes");
    is_str(ev.text, "a/b", "  \\/ is /");
    is_str(ev.id, "1732230000000-3", "  id");
    is_int(ev.ts, 1732230000000LL, "  ts");
    event_clear(&ev);
    is_int(decode("{\"room\":\"lobby\",\"type\":\"message\",\"from\":\"a\","
                  "\"text\":\"x\",\"ts\":1.73223e+12,\"id\":\"1-0\"}",
                  &ev),
           0, "integral ts in exponent form decodes");
    is_int(ev.ts, 1732230000000LL, "  its value");
    event_clear(&ev);
    is_int(decode(" {\"room\":\"r\",\"type\":\"presence\",\"online\":{},"
                  "\"ts\":1}\n",
                  &ev),
           0, "cjson's {} for an empty list, blanks around");
    is_int(ev.n_online, 0, "  nobody online");
    event_clear(&ev);
    is_int(decode("{\"room\":\"r\",\"type\":\"message\",\"from\":\"a\","
                  "\"text\":\"\\u00e9\\ud83d\\ude00\",\"ts\":1,"
                  "\"id\":\"1\"}",
                  &ev),
           0, "\\u escapes with a surrogate pair");
    is_str(ev.text, "\xc3\xa9\xf0\x9f\x98\x80", "  decoded to UTF-8");
    is_str(ev.id, "1-0", "  id normalised");
    event_clear(&ev);

    rejects("", "empty input");
    rejects("[]", "an array");
    rejects("\"message\"", "a string");
    rejects("{\"room\":\"r\",\"type\":\"typing\",\"from\":\"a\",\"ts\":1}x",
            "trailing garbage");
    rejects("{\"room\":\"r\",\"type\":\"typing\",\"from\":\"a\",\"ts\":1,}",
            "trailing comma");
    rejects("{'room':'r','type':'typing','from':'a','ts':1}", "single quotes");
    rejects("{\"room\":\"r\",\"type\":\"shout\",\"from\":\"a\",\"ts\":1}",
            "unknown type");
    rejects("{\"room\":\"r\",\"from\":\"a\",\"ts\":1}", "missing type");
    rejects("{\"room\":\"r\",\"type\":7,\"from\":\"a\",\"ts\":1}",
            "numeric type");
    rejects("{\"type\":\"typing\",\"from\":\"a\",\"ts\":1}", "missing room");
    rejects("{\"room\":\"Lobby\",\"type\":\"typing\",\"from\":\"a\",\"ts\":1}",
            "invalid room");
    rejects("{\"room\":\"r\",\"type\":\"typing\",\"ts\":1}", "typing no from");
    rejects("{\"room\":\"r\",\"type\":\"typing\",\"from\":\"a b\",\"ts\":1}",
            "invalid from");
    rejects("{\"room\":\"r\",\"type\":\"typing\",\"from\":\"a\"}", "no ts");
    rejects("{\"room\":\"r\",\"type\":\"typing\",\"from\":\"a\",\"ts\":\"1\"}",
            "string ts");
    rejects("{\"room\":\"r\",\"type\":\"typing\",\"from\":\"a\",\"ts\":-1}",
            "negative ts");
    rejects("{\"room\":\"r\",\"type\":\"typing\",\"from\":\"a\",\"ts\":1.5}",
            "fractional ts");
    rejects("{\"room\":\"r\",\"type\":\"message\",\"from\":\"a\","
            "\"text\":\"x\",\"ts\":1}",
            "message without id");
    rejects("{\"room\":\"r\",\"type\":\"message\",\"from\":\"a\","
            "\"text\":\"x\",\"ts\":1,\"id\":\"abc\"}",
            "message with bad id");
    rejects("{\"room\":\"r\",\"type\":\"message\",\"from\":\"a\","
            "\"text\":\"x\",\"ts\":1,\"id\":5}",
            "numeric id");
    rejects("{\"room\":\"r\",\"type\":\"message\",\"from\":\"a\","
            "\"ts\":1,\"id\":\"1-0\"}",
            "message without text");
    rejects("{\"room\":\"r\",\"type\":\"message\",\"from\":\"a\","
            "\"text\":3,\"ts\":1,\"id\":\"1-0\"}",
            "numeric text");
    rejects("{\"room\":\"r\",\"type\":\"message\",\"from\":\"a\","
            "\"text\":\"\xc0\xaf\",\"ts\":1,\"id\":\"1-0\"}",
            "invalid UTF-8 text");
    rejects("{\"room\":\"r\",\"type\":\"message\",\"text\":\"x\",\"ts\":1,"
            "\"id\":\"1-0\"}",
            "message without from");
    rejects("{\"room\":\"r\",\"type\":\"presence\",\"ts\":1}",
            "presence without online");
    rejects("{\"room\":\"r\",\"type\":\"presence\",\"online\":\"a\","
            "\"ts\":1}",
            "online not an array");
    rejects("{\"room\":\"r\",\"type\":\"presence\",\"online\":[\"a\",1],"
            "\"ts\":1}",
            "online with a number");
    rejects("{\"room\":\"r\",\"type\":\"presence\",\"online\":[\"a b\"],"
            "\"ts\":1}",
            "online with a bad name");
    ok(event_from_json(NULL, 0, &ev) == -1, "rejects NULL");

    is_str(event_type_name(EVENT_MESSAGE), "message", "type name message");
    is_str(event_type_name(EVENT_PRESENCE), "presence", "type name presence");
    ok(event_now_ms() > 1700000000000LL, "event_now_ms is in ms");
    return tap_done();
}
