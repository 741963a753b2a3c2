/* keys.h - the Redis key names of DESIGN.md and the Lua scripts every writer
 * runs, so crosstalkd, crosstalk-fcgi and crosstalk-backup agree */
#ifndef CT_KEYS_H
#define CT_KEYS_H

#include <stddef.h>

#define KEYS_MAX 128

/* Each writes the key into buf (KEYS_MAX bytes) and returns buf. */
char *keys_room_log(char *buf, const char *room); /* ct:room:{room}:log */
/* ct:user:{name in lower case}: one user per name whatever its case */
char *keys_user(char *buf, const char *name);

char *keys_token(char *buf, const char *hash);    /* ct:token:{sha256} */
char *keys_presence(char *buf, const char *room); /* ct:presence:{room} */
char *keys_bus(char *buf, const char *room);      /* ct:bus:{room} */
char *keys_backup(char *buf, const char *room);   /* ct:backup:{room} */
#define KEYS_ROOMS "ct:rooms"
#define KEYS_BUS_PATTERN "ct:bus:*"
#define KEYS_BUS_PREFIX "ct:bus:"
#define KEYS_BACKUP_LOCK "ct:backup:lock"

/* A Lua script and its SHA-1 (hex), run with EVALSHA and, on NOSCRIPT,
 * with EVAL. */
struct keys_script {
    const char *name;
    const char *body;
    char sha[41];
};

/* The append script: KEYS = {room log, ct:rooms}, ARGV = {room, from, text,
 * bus channel}. XADDs the message with its ts, bumps ct:rooms, PUBLISHes the
 * event JSON with its new id, all atomically; returns {id, ts}. */
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

/* Argument vectors for the append script: fills argv/lens
 * (KEYS_APPEND_ARGC = 9 entries: EVALSHA sha 2 log ct:rooms room from text
 * channel) and returns the count. `bufs` must hold 2 * KEYS_MAX bytes and
 * outlive use; argv[7] is `text` itself, lens[7] is text_len. `evalsha`
 * picks EVALSHA+sha or EVAL+body. */
#define KEYS_APPEND_ARGC 9
int keys_append_argv(const char **argv, size_t *lens, char *bufs, int evalsha,
                     const char *room, const char *from, const char *text,
                     size_t text_len);

#endif
