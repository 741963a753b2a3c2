/* keys.h - the Redis key names of DESIGN.md and the Lua scripts every writer
 * runs, so crosstalkd, crosstalk-fcgi and crosstalk-backup agree */
#ifndef CT_KEYS_H
#define CT_KEYS_H

#include <stddef.h>

#include "names.h"
#include "streamid.h"

#define KEYS_MAX 128

/* Each writes the key into buf (KEYS_MAX bytes) and returns buf. */
/*
 * The braces are literal: every key of a room carries the room's name as a
 * Redis Cluster hash tag ({room}), so one room's stream, presence,
 * checkpoint, idempotency keys and bus channel share one hash slot and a
 * later move to Redis Cluster (sharded pub/sub) changes the client, not the
 * data. Users and tokens keep their names without a tag: a token is looked
 * up from its digest alone, before the user's name is known, so it cannot
 * carry the user's tag, and a user key alone gains nothing from one.
 * Deployments older than the tags are upgraded by
 * `crosstalk-backup --migrate-keys` (docs/operations.md).
 */
char *keys_room_log(char *buf, const char *room); /* ct:room:{room}:log */
/* ct:user:NAME, the name in lower case: one user per name whatever its
 * case */
char *keys_user(char *buf, const char *name);

char *keys_token(char *buf, const char *hash);    /* ct:token:SHA256 */
char *keys_presence(char *buf, const char *room); /* ct:presence:{room} */
char *keys_bus(char *buf, const char *room);      /* ct:bus:{room} */
char *keys_backup(char *buf, const char *room);   /* ct:backup:{room} */
/* ct:idem:{room}:user:key, which no ':' in a name makes unambiguous;
 * buf holds KEYS_IDEM_MAX bytes. */
#define KEYS_IDEM_MAX 192
char *keys_idem(char *buf, const char *room, const char *user, const char *key);
#define KEYS_ROOMS "ct:rooms"
#define KEYS_BUS_PATTERN "ct:bus:{*}"
#define KEYS_BUS_PREFIX "ct:bus:{"
/* The room of bus channel `channel` (ct:bus:{room}) written into room, or
 * NULL when it is not a bus channel of a valid room name. */
const char *keys_bus_room(const char *channel, char room[NAME_ROOM_MAX + 1]);
/* Published on a room's bus channel when entries were removed from the
 * oldest end of its stream (crosstalk-backup --retain, or an operator's
 * XTRIM): daemons then stop answering polls from what they hold in memory
 * for that room, and Redis tells each reader of its gap. Not an event. */
#define KEYS_BUS_TRIMMED "{\"notice\":\"trimmed\"}"
/* Published on a room's bus channel when messages were appended to its
 * stream without an event each (crosstalk-backup --restore): daemons then
 * forget the room's newest message and read it again. Not an event. */
#define KEYS_BUS_RESTORED "{\"notice\":\"restored\"}"
#define KEYS_BACKUP_LOCK "ct:backup:lock"
/* What /healthz writes (SET PX) to learn whether Redis takes writes. */
#define KEYS_HEALTH "ct:health"
/* How long a send's idempotency key is remembered, in seconds. */
#define KEYS_IDEM_TTL 86400

/* A Lua script and its SHA-1 (hex), run with EVALSHA and, on NOSCRIPT,
 * with EVAL. */
struct keys_script {
    const char *name;
    const char *body;
    char sha[41];
};

/* The append script: KEYS = {room log, ct:rooms[, idempotency key]}, ARGV =
 * {room, from, text, bus channel}. XADDs the message with its ts, bumps
 * ct:rooms, PUBLISHes the event JSON with its new id, all atomically, and
 * returns {id, ts}. With the third key it first looks the key up: when it
 * holds an id (the same user sent the same key within KEYS_IDEM_TTL), it
 * writes and publishes nothing and returns {id, ts, text} of that first
 * message (ts from the id and the text of this call when the stream no
 * longer holds it); otherwise it stores the new id there after the XADD. */
extern struct keys_script keys_append_script;
/* The register script: KEYS = {ct:user:{name in lower case},
 * ct:token:{hash}}, ARGV = {hash, created ms, name}. Returns 1 when
 * created (the hash keeps the name as given in its field `name`), 0 when
 * the name is taken in any case (and then writes nothing). The first run
 * on a database also moves users registered before names were folded to
 * their lower-case key (see register_body). */
extern struct keys_script keys_register_script;

/* Computes the scripts' SHA-1s; call once at start-up. */
void keys_init(void);

/* Argument vectors for the append script: fills argv/lens (at most
 * KEYS_APPEND_ARGC entries: EVALSHA sha numkeys log ct:rooms [idem] room
 * from text channel) and returns the count. `key` is the idempotency key,
 * NULL or "" for none. `bufs` must hold KEYS_APPEND_BUFS bytes and outlive
 * use; the text entry is `text` itself, with length text_len. `evalsha`
 * picks EVALSHA+sha or EVAL+body. */
#define KEYS_APPEND_ARGC 10
#define KEYS_APPEND_BUFS (2 * KEYS_MAX + KEYS_IDEM_MAX)
int keys_append_argv(const char **argv, size_t *lens, char *bufs, int evalsha,
                     const char *room, const char *from, const char *text,
                     size_t text_len, const char *key);

/* The commands a resume sends in one round trip, so the replay and what
 * Redis says of the room's stream agree: MULTI, XINFO STREAM, XRANGE after
 * `after` (exclusive) COUNT limit, EXEC. reply_resume reads EXEC's reply.
 * Redis over maxmemory refuses whatever is queued in a MULTI (EXECABORT),
 * reads too; `script` is the same read as one script, run with EVAL,
 * which it does not refuse, with the same reply (about 4 times the cost in
 * Redis, so only then). */
#define KEYS_RESUME_SCRIPT_ARGC 6
struct keys_resume {
    char key[KEYS_MAX];
    char start[STREAMID_STRLEN + 1];
    char count[16];
    const char *xinfo[3];
    const char *xrange[6];
    const char *script[KEYS_RESUME_SCRIPT_ARGC];
};
void keys_resume_init(struct keys_resume *k, const char *room,
                      const struct streamid *after, int limit);

/* A page of GET /api/rooms: the rooms script, run with EVAL (listing rooms
 * is not hot, and EVAL needs no NOSCRIPT fallback). KEYS = {ct:rooms},
 * ARGV = {n, score, name}: the first n rooms after the cursor (score,
 * name) in ct:rooms' order (newest first, ties in reverse name order, as
 * ZREVRANGE), every room when score is empty; a flat [name, score, ...]. A
 * room active since the cursor was made has moved ahead of it: a page never
 * repeats a room nor skips one whose activity is older than the cursor. */
#define KEYS_ROOMS_ARGC 7
struct keys_rooms {
    char n[16];
    char score[24];
    const char *argv[KEYS_ROOMS_ARGC];
};
/* after_name NULL: from the top. The strings must outlive k's use. */
void keys_rooms_init(struct keys_rooms *k, int n, long long after_ts,
                     const char *after_name);

#endif
