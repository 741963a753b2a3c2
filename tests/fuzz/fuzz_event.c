/* fuzz_event.c - the event JSON decoder: what it accepts is well formed,
 * and decode -> encode -> decode gives the same event and the same bytes;
 * and the encoder: any text a message may hold comes back unchanged */
#include <json-c/json.h>
#include <stdbool.h>

#include "event.h"
#include "fuzz.h"
#include "names.h"
#include "utf8.h"

static const struct chat_event zero_event;

/* Everything event_from_json promises about an event it accepted. */
static void check_event(const struct chat_event *ev)
{
    struct streamid sid;
    char id[STREAMID_STRLEN];
    size_t i;

    FUZZ_CHECK(names_room_valid(ev->room, strlen(ev->room)), "room \"%s\"",
               ev->room);
    FUZZ_CHECK(ev->ts >= 0, "ts %lld", (long long)ev->ts);
    switch (ev->type) {
    case EVENT_MESSAGE:
        FUZZ_CHECK(names_user_valid(ev->from, strlen(ev->from)), "from \"%s\"",
                   ev->from);
        FUZZ_CHECK(streamid_parse(ev->id, strlen(ev->id), &sid) == 0 &&
                       streamid_cmp(&sid, &ev->sid) == 0,
                   "id \"%s\" does not match sid", ev->id);
        FUZZ_CHECK(strcmp(streamid_format(&ev->sid, id), ev->id) == 0,
                   "id \"%s\" is not in normal form", ev->id);
        FUZZ_CHECK(ev->text != NULL && strlen(ev->text) == ev->text_len,
                   "text of %zu bytes has a NUL or is missing", ev->text_len);
        FUZZ_CHECK(utf8_valid(ev->text, ev->text_len), "text not UTF-8");
        FUZZ_CHECK(ev->online == NULL && ev->n_online == 0, "online set");
        break;
    case EVENT_TYPING:
        FUZZ_CHECK(names_user_valid(ev->from, strlen(ev->from)), "from \"%s\"",
                   ev->from);
        FUZZ_CHECK(ev->id[0] == '\0' && ev->text == NULL && ev->online == NULL,
                   "typing event with id, text or online");
        break;
    case EVENT_PRESENCE:
        FUZZ_CHECK(ev->id[0] == '\0' && ev->text == NULL && ev->from[0] == '\0',
                   "presence event with id, text or from");
        FUZZ_CHECK(ev->n_online == 0 || ev->online != NULL, "online NULL");
        for (i = 0; i < ev->n_online; i++) {
            FUZZ_CHECK(names_user_valid(ev->online[i], strlen(ev->online[i])),
                       "online[%zu] \"%s\"", i, ev->online[i]);
            FUZZ_CHECK(i == 0 || strcmp(ev->online[i - 1], ev->online[i]) <= 0,
                       "online not sorted at %zu", i);
        }
        break;
    default:
        FUZZ_CHECK(0, "type %d", (int)ev->type);
    }
}

static bool events_equal(const struct chat_event *a, const struct chat_event *b)
{
    size_t i;

    if (a->type != b->type || strcmp(a->id, b->id) != 0 ||
        streamid_cmp(&a->sid, &b->sid) != 0 || strcmp(a->room, b->room) != 0 ||
        strcmp(a->from, b->from) != 0 || a->ts != b->ts ||
        a->text_len != b->text_len || a->n_online != b->n_online)
        return false;
    if ((a->text == NULL) != (b->text == NULL) ||
        (a->text != NULL && memcmp(a->text, b->text, a->text_len) != 0))
        return false;
    for (i = 0; i < a->n_online; i++)
        if (strcmp(a->online[i], b->online[i]) != 0)
            return false;
    return true;
}

/* The "type" of an accepted event is exactly one of the names, not a name
 * with more after a NUL ("message\u0000x"): json-c as a second reader. */
static void check_type_exact(const uint8_t *data, size_t size,
                             const struct chat_event *ev)
{
    json_tokener *tok = json_tokener_new();
    json_object *o = json_tokener_parse_ex(tok, (const char *)data, (int)size);
    json_object *t;

    if (o != NULL && json_object_object_get_ex(o, "type", &t) &&
        json_object_is_type(t, json_type_string))
        FUZZ_CHECK((size_t)json_object_get_string_len(t) ==
                       strlen(event_type_name(ev->type)),
                   "type of %d bytes taken as \"%s\"",
                   json_object_get_string_len(t), event_type_name(ev->type));
    json_object_put(o);
    json_tokener_free(tok);
}

/* The input as a message's text (when it could be one): encoded, then
 * decoded, it is the same text. */
static void check_text_round_trip(const uint8_t *data, size_t size)
{
    struct chat_event ev, back;
    char *json;
    size_t n;

    if (!utf8_valid((const char *)data, size) || memchr(data, '\0', size))
        return;
    event_init_message(&ev, "lobby", "1732230000000-0", "alice",
                       (const char *)data, size, 1732230000000);
    json = event_to_json(&ev, &n);
    FUZZ_CHECK(memchr(json, '\n', n) == NULL, "encoded event spans lines");
    FUZZ_CHECK(event_from_json(json, n, &back) == 0,
               "a message with this text does not decode: %s", json);
    FUZZ_CHECK(events_equal(&ev, &back), "text changed on the way: %s", json);
    free(json);
    event_clear(&ev);
    event_clear(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct chat_event a, b;
    char *j1 = NULL, *j2 = NULL;
    size_t n1, n2;

    check_text_round_trip(data, size);

    /* libFuzzer's buffer is exactly `size` bytes: ASan sees any overread. */
    if (event_from_json((const char *)data, size, &a) != 0) {
        FUZZ_CHECK(memcmp(&a, &zero_event, sizeof(a)) == 0,
                   "a refused event is not zeroed");
        return 0;
    }
    check_event(&a);
    check_type_exact(data, size, &a);

    j1 = event_to_json(&a, &n1);
    FUZZ_CHECK(strlen(j1) == n1, "encoded length %zu, strlen %zu", n1,
               strlen(j1));
    /* One line: SSE sends it as a single data: field, Redis as one value. */
    FUZZ_CHECK(memchr(j1, '\n', n1) == NULL && memchr(j1, '\r', n1) == NULL,
               "encoded event spans lines: %s", j1);
    FUZZ_CHECK(utf8_valid(j1, n1), "encoded event is not UTF-8");

    FUZZ_CHECK(event_from_json(j1, n1, &b) == 0, "own encoding refused: %s",
               j1);
    check_event(&b);
    FUZZ_CHECK(events_equal(&a, &b), "decode(encode(e)) != e: %s", j1);

    j2 = event_to_json(&b, &n2);
    FUZZ_CHECK(n1 == n2 && memcmp(j1, j2, n1) == 0,
               "encoding not stable:\n  %s\n  %s", j1, j2);

    free(j1);
    free(j2);
    event_clear(&a);
    event_clear(&b);
    return 0;
}
