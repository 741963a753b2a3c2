/* reply.h - hiredis replies turned into our types; shared by the daemon's
 * async store, the FastCGI responder and the backup */
#ifndef CT_REPLY_H
#define CT_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api.h"
#include "event.h"
#include "streamid.h"

struct redisReply;

/* An XRANGE/XREVRANGE reply ([[id, [field, value, ...]], ...]) as message
 * events of `room`, in the reply's order. Entries missing fields are
 * skipped (and logged). Returns 0 with *evs newly allocated (free with
 * event_free_array), or -1 when the reply is not an array (an error). */
int reply_events(const struct redisReply *r, const char *room,
                 struct chat_event **evs, size_t *n);

/* Copies the id of an XRANGE/XREVRANGE reply's first entry into buf
 * (STREAMID_STRLEN bytes) and returns 0; returns -1 with buf "" when the
 * reply is empty or not an array. */
int reply_first_id(const struct redisReply *r, char *buf);

/* What the append script (keys.h) answered. */
struct reply_appended {
    char id[STREAMID_STRLEN];
    int64_t ts;
    bool repeat;      /* the idempotency key was known: the first message */
    const char *text; /* repeat: its text, pointing into the reply */
    size_t text_len;
};
/* Reads an append script reply into *a. Returns 0, or -1 when the reply
 * is not what the script returns (logged). */
int reply_appended(const struct redisReply *r, struct reply_appended *a);

/* API_FAULT_NONE for an answer, API_FAULT_UNKNOWN for none (NULL: the
 * connection was lost or timed out after the command was sent), or the
 * fault an error reply names. */
enum api_fault reply_fault(const struct redisReply *r);

/* An XINFO STREAM reply as a struct streamid_log; the error "no such key"
 * is a stream that does not exist. Returns 0, or -1 when the reply is
 * another error or lacks a field it must have. */
int reply_stream_log(const struct redisReply *r, struct streamid_log *out);

/* The EXEC reply of the commands keys_resume_argv builds: [XINFO STREAM,
 * XRANGE]. Fills *log and, as reply_events does, *evs and *n. Returns 0, or
 * -1 (nothing to free) when either reply is an error or malformed. */
int reply_resume(const struct redisReply *r, const char *room,
                 struct streamid_log *log, struct chat_event **evs, size_t *n);

#endif
