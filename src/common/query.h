/* query.h - URL query strings: decoding and the history/poll parameters */
#ifndef CT_QUERY_H
#define CT_QUERY_H

#include <stdbool.h>
#include <stddef.h>

#include "api.h"
#include "streamid.h"

/* Finds `key` in the query string `qs` (without the '?', may be NULL) and
 * percent-decodes its value ('+' is a space) into a newly allocated string.
 * Returns NULL when the key is absent or its encoding is malformed. */
char *query_get(const char *qs, const char *key);

#define QUERY_LIMIT_DEFAULT 50
#define QUERY_LIMIT_MAX 500

/* The parameters of the messages, poll and events calls. */
struct query_history {
    bool has_since, has_before;
    struct streamid since, before;
    char since_str[STREAMID_STRLEN]; /* as given, normalised "MS-SEQ" */
    int limit;                       /* 1..500, default 50 */
    int timeout;                     /* long poll seconds, 0 when absent */
    bool has_timeout;
};

/* Parses since, before, limit and timeout out of `qs`. Both since and
 * before, a malformed id, a limit outside 1..500 or a timeout outside
 * 0..max_timeout are 400 errors: returns -1 with err set. */
int query_parse_history(const char *qs, int max_timeout,
                        struct query_history *out, struct api_error *err);

#define QUERY_ROOMS_DEFAULT 100
#define QUERY_ROOMS_MAX 1000

/* The parameters of GET /api/rooms. */
struct query_rooms {
    int limit; /* 1..1000, default 100 */
    bool has_after;
    long long after_ts; /* the cursor "<last_ts>:<room>", the "next" */
    char after_name[NAME_ROOM_MAX + 1]; /* of the page before */
};

/* Parses limit and after out of `qs`. A limit outside 1..1000 or an after
 * that is not a cursor are 400 errors: returns -1 with err set. */
int query_parse_rooms(const char *qs, struct query_rooms *out,
                      struct api_error *err);

#endif
