/* event.h - the chat's events and their JSON (the only json-c user for events)
 */
#ifndef CT_EVENT_H
#define CT_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "names.h"
#include "streamid.h"

enum event_type { EVENT_MESSAGE, EVENT_TYPING, EVENT_PRESENCE };

/* One event. Only messages carry an id (they are stored); typing and
 * presence are ephemeral. Strings are owned by the event. */
struct chat_event {
    enum event_type type;
    char id[STREAMID_STRLEN]; /* "" when not stored */
    struct streamid sid;      /* parsed id, zero when none */
    char room[NAME_ROOM_MAX + 1];
    char from[NAME_USER_MAX + 1]; /* message, typing */
    char *text;                   /* message */
    size_t text_len;
    int64_t ts;    /* ms since the epoch */
    char **online; /* presence: sorted user names */
    size_t n_online;
};

const char *event_type_name(enum event_type t);
/* Frees what the event owns and zeroes it; accepts an already cleared one. */
void event_clear(struct chat_event *ev);

/* Clears each of the n events and frees the array. Accepts NULL. */
void event_free_array(struct chat_event *evs, size_t n);

/* Encodes the event as one line of JSON (the DESIGN.md shapes). Returns a
 * newly allocated NUL-terminated string; *len gets its length. */
char *event_to_json(const struct chat_event *ev, size_t *len);

/* Decodes JSON as produced by event_to_json or by the append script. On
 * success returns 0 and fills *out (clear it with event_clear). On any
 * malformed, missing or out-of-range field returns -1 and *out is zeroed. */
int event_from_json(const char *buf, size_t len, struct chat_event *out);

/* Builders that set every field; strings are copied. */
void event_init_message(struct chat_event *ev, const char *room, const char *id,
                        const char *from, const char *text, size_t text_len,
                        int64_t ts);
void event_init_typing(struct chat_event *ev, const char *room,
                       const char *from, int64_t ts);
/* Copies the n names. */
void event_init_presence(struct chat_event *ev, const char *room,
                         const char *const *online, size_t n, int64_t ts);

/* Milliseconds since the epoch, from the real-time clock. */
int64_t event_now_ms(void);

#endif
