/* api.h - what crosstalkd and crosstalk-fcgi share of the HTTP API: request
 * bodies, errors, and response bodies, so both answer byte for byte alike */
#ifndef CT_API_H
#define CT_API_H

#include <stdbool.h>
#include <stddef.h>

#include "event.h"
#include "names.h"

/* The stable error codes clients see, with their HTTP status. */
#define API_BAD_JSON "bad_json" /* 400 body not JSON / not an object */
#define API_BAD_REQUEST                                                        \
    "bad_request"                       /* 400 wrong types, missing fields,    \
                                         * bad query parameters */
#define API_BAD_NAME "bad_name"         /* 400 */
#define API_EMPTY_TEXT "empty_text"     /* 400 */
#define API_BAD_UTF8 "bad_utf8"         /* 400 */
#define API_UNAUTHORIZED "unauthorized" /* 401 */
#define API_NOT_FOUND "not_found"       /* 404 */
#define API_METHOD_NOT_ALLOWED "method_not_allowed" /* 405 */
#define API_NAME_TAKEN "name_taken"                 /* 409 */
#define API_TOO_LARGE "too_large"                   /* 413 */
#define API_RATE_LIMITED "rate_limited"             /* 429 */
#define API_TOO_MANY_STREAMS "too_many_streams"     /* 429 */
#define API_UNAVAILABLE "unavailable"               /* 503 */
/* The message of a 503 to a read (history, a poll, a stream's start, a
 * token's lookup): nothing was written, whether Redis was down or slow. */
#define API_READ_FAILED                                                        \
    "the message store did not answer (unreachable, or slower than "           \
    "redis_timeout_ms)"

/* The longest idempotency key (Idempotency-Key, a WebSocket "key"). */
#define API_KEY_MAX 64

/* An error answer: HTTP status, a stable code, and a human message. */
struct api_error {
    int status;
    const char *code; /* static string, e.g. "bad_name" */
    char message[320];
};

/* Fills err; `fmt` is the human message. Returns -1 so callers can write
 * `return api_fail(err, 400, "bad_json", "...")`. */
int api_fail(struct api_error *err, int status, const char *code,
             const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* The JSON body {"error":code,"message":...}; newly allocated. */
char *api_error_json(const struct api_error *err, size_t *len);

/* POST /api/register body {"name":"alice"}. On success returns 0 and copies
 * the name into `name`; otherwise -1 with err set (400 bad JSON, wrong type,
 * missing or bad name). */
int api_parse_register(const char *body, size_t len,
                       char name[NAME_USER_MAX + 1], struct api_error *err);

/* POST .../messages body {"text":"hi"} (other fields are ignored). On success
 * returns 0 and *text gets a newly allocated copy, *text_len its length.
 * Errors: 400 bad JSON / not an object / text missing or not a string /
 * empty / invalid UTF-8; 413 text over max_bytes. */
int api_parse_message(const char *body, size_t len, size_t max_bytes,
                      char **text, size_t *text_len, struct api_error *err);

/* A WebSocket client frame: {"type":"message","text":...} or
 * {"type":"typing"}. Returns EVENT_MESSAGE (with *text set as above),
 * EVENT_TYPING, or -1 with err set. A message's optional "key" must be an
 * idempotency key (api_parse_key), else 400 bad_request. */
int api_parse_client_frame(const char *body, size_t len, size_t max_bytes,
                           char **text, size_t *text_len,
                           struct api_error *err);
/* The same, copying the message's "key" into `key` ("" when it has none). */
int api_parse_client_frame_key(const char *body, size_t len, size_t max_bytes,
                               char **text, size_t *text_len,
                               char key[API_KEY_MAX + 1],
                               struct api_error *err);

/* An idempotency key: 1 to API_KEY_MAX of A-Z a-z 0-9 _ -. The header
 * Idempotency-Key may also carry it as a quoted string ("abc", the IETF
 * draft's form). `s` NULL means none: 0 with key "". Otherwise returns 0
 * with the key copied, or -1 with a 400 bad_request in err. */
int api_parse_key(const char *s, size_t len, char key[API_KEY_MAX + 1],
                  struct api_error *err);

/* Why a call to Redis did not succeed. */
enum api_fault {
    API_FAULT_NONE = 0,
    API_FAULT_DOWN,     /* not sent: Redis unreachable; nothing was done */
    API_FAULT_UNKNOWN,  /* sent, then no answer (connection lost or timed
                         * out): whether it ran is unknown */
    API_FAULT_OOM,      /* refused: Redis is out of memory (maxmemory) */
    API_FAULT_READONLY, /* refused: Redis is a read-only replica */
    API_FAULT_ERROR     /* refused with another error */
};
/* The fault a Redis error reply's text names (OOM, READONLY, else ERROR). */
enum api_fault api_fault_of(const char *redis_error);

/* What the caller was doing when the fault struck, for the message. */
enum api_doing {
    API_DOING_SEND,    /* POST .../messages (retry with Idempotency-Key) */
    API_DOING_WS_SEND, /* a WebSocket message frame (retry with "key") */
    API_DOING_HEALTH,  /* /healthz: can Redis take writes? */
    API_DOING_REGISTER /* POST /api/register */
};
/* Fills err with the 503 unavailable answer for `fault`: the cause, and
 * whether anything was stored ("nothing was stored" only when certain).
 * Returns -1. */
int api_unavailable(struct api_error *err, enum api_fault fault,
                    enum api_doing doing);

/* {"name":...,"token":...} */
char *api_register_json(const char *name, const char *token, size_t *len);

/* {"events":[<json>,...],"last_id":"..."}: joins already encoded events.
 * last_id is the id of the newest stored event in the list or, when none
 * is, where the client goes on from: its `since` ("0-0" when there was
 * none), or sig->from after a signal. The members of `sig` (NULL or
 * STREAMID_FINE: none) follow, as api_signal_members writes them. Newly
 * allocated. */
char *api_events_json(const char *const *jsons, const size_t *lens, size_t n,
                      const char *last_id, const struct streamid_signal *sig,
                      size_t *len);

/* The signals a resume may give before its replay (streamid_judge), written
 * once here for every transport. */

/* "truncated" or "reset": the SSE event's name, the WebSocket frame's
 * type, and the poll answer's flag. NULL for STREAMID_FINE. */
const char *api_signal_type(const struct streamid_signal *sig);

/* {"first_id":"..."} or {"last_id":"..."}, the data of the SSE event; with
 * `with_type`, {"type":"truncated","first_id":"..."} or
 * {"type":"reset","last_id":"..."}, a WebSocket frame. Newly allocated;
 * NULL for STREAMID_FINE. */
char *api_signal_json(const struct streamid_signal *sig, bool with_type,
                      size_t *len);

/* What a poll answer carries beside "events" and "last_id", each member
 * after a comma: ,"truncated":true,"first_id":"..." or ,"reset":true (the
 * answer's last_id being then the room's newest). Writes it into buf
 * (API_SIGNAL_MEMBERS_MAX bytes, "" when fine) and returns its length. */
#define API_SIGNAL_MEMBERS_MAX (48 + STREAMID_STRLEN)
size_t api_signal_members(const struct streamid_signal *sig, char *buf);

/* {"online":[...]} */
char *api_online_json(const char *const *names, size_t n, size_t *len);

/* {"rooms":[{"name":...,"last_ts":...},...],"more":false} for a page of
 * at most `limit` rooms, given up to limit + 1 of them: when there are
 * more, the first `limit` with "more":true,"next":"<last_ts>:<name>", the
 * cursor of the last one, for ?after= (query_parse_rooms). */
char *api_rooms_json(const char *const *names, const long long *last_ts,
                     size_t n, size_t limit, size_t *len);

#endif
