/* streamid.h - Redis stream ids: parse, compare, format */
#ifndef CT_STREAMID_H
#define CT_STREAMID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "18446744073709551615-18446744073709551615" plus NUL */
#define STREAMID_STRLEN 42

struct streamid {
    uint64_t ms;
    uint64_t seq;
};

/* Parses "MS-SEQ" or "MS" (seq 0), digits only, no sign or space, each part
 * fitting 64 bits. Returns 0, or -1 for anything else. */
int streamid_parse(const char *s, size_t len, struct streamid *out);
/* -1, 0, 1 as a is before, equal to, after b. */
int streamid_cmp(const struct streamid *a, const struct streamid *b);
/* Writes "MS-SEQ" into buf (at least STREAMID_STRLEN bytes); returns buf. */
char *streamid_format(const struct streamid *id, char *buf);
/* Writes v in decimal at p, without a NUL (at most 20 bytes); returns the
 * end. For the hot paths that printf would cost more than their work. */
char *decimal_put(char *p, uint64_t v);
bool streamid_is_zero(const struct streamid *id);
/* The smallest id after `id` (the largest id has none: it is returned). */
struct streamid streamid_next(const struct streamid *id);
/* Writes the exclusive start of an XRANGE after `id`, "(MS-SEQ", into buf
 * (at least STREAMID_STRLEN + 1 bytes); "+" when `id` is the largest id,
 * whose exclusive form Redis refuses (nothing can follow it). Returns buf. */
char *streamid_format_after(const struct streamid *id, char *buf);

/* What Redis says of a room's stream (XINFO STREAM): enough to tell a client
 * that resumes after an id whether history it lacks is gone, or whether its
 * id is from the future. */
struct streamid_log {
    bool exists;           /* the stream exists */
    uint64_t length;       /* entries held */
    struct streamid first; /* the oldest held; zero when none */
    struct streamid last;  /* last-generated-id: the newest ever added */
    /* entries-added (Redis 7) minus length: how many were ever removed
     * (XTRIM, --retain, XDEL); UINT64_MAX when Redis does not say. */
    uint64_t removed;
};

/* What a client resuming after an id is told before anything else. */
enum streamid_verdict {
    STREAMID_FINE,      /* the replay is all it lacks */
    STREAMID_TRUNCATED, /* messages it lacks are gone: "truncated" */
    STREAMID_RESET,     /* its id is newer than anything stored: "reset" */
};

struct streamid_signal {
    enum streamid_verdict verdict;
    /* TRUNCATED: first_id, the oldest message held (the replay starts with
     * it) or, when none is held, the id right after the newest ever added:
     * every message below it that the client lacks is gone, and
     * `before=first_id` pages exactly the gap. RESET: last_id, the room's
     * newest id ("0-0" when the room has no stream). */
    struct streamid id;
    /* Where the replay goes on from (exclusive): `since`, or the room's
     * newest id after a reset and after a gap with nothing held. */
    struct streamid from;
};

/* Judges a resume after `since` against the room's stream. A gap is told
 * when messages were ever removed from the stream and `since` is older
 * than the oldest held (or none is held and `since` is older than the
 * newest ever added): since=0-0 on a room never trimmed is no gap. A reset
 * is told when `since` is newer than the newest id ever added, or when the
 * stream does not exist and `since` is not 0-0. */
void streamid_judge(const struct streamid *since,
                    const struct streamid_log *log,
                    struct streamid_signal *out);

#endif
