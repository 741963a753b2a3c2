/* reply.h - hiredis replies turned into our types; shared by the daemon's
 * async store, the FastCGI responder and the backup */
#ifndef CT_REPLY_H
#define CT_REPLY_H

#include <stddef.h>

#include "event.h"

struct redisReply;

/* An XRANGE/XREVRANGE reply ([[id, [field, value, ...]], ...]) as message
 * events of `room`, in the reply's order. Entries missing fields are
 * skipped (and logged). Returns 0 with *evs newly allocated (free with
 * event_free_array), or -1 when the reply is not an array (an error). */
int reply_events(const struct redisReply *r, const char *room,
                 struct event **evs, size_t *n);

/* Copies the id of an XRANGE/XREVRANGE reply's first entry into buf
 * (STREAMID_STRLEN bytes) and returns 0; returns -1 with buf "" when the
 * reply is empty or not an array. */
int reply_first_id(const struct redisReply *r, char *buf);

#endif
