/* test_scripts.c - the Lua scripts of keys.c run in a real redis-server,
 * and what they store and publish read back through event.c and reply.c */
#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "event.h"
#include "keys.h"
#include "reply.h"
#include "redisd.h"
#include "tap.h"

static redisReply *cmd_argv(redisContext *c, int argc, const char **argv,
                            const size_t *lens)
{
    return redisCommandArgv(c, argc, argv, lens);
}

/* Runs the register script by EVALSHA for `name` with a throwaway token
 * key; returns its integer answer, or -1. */
static long long register_again(redisContext *c, const char *name)
{
    char ukey[KEYS_MAX];
    redisReply *r = redisCommand(
        c, "EVALSHA %s 2 %s %s %s %s %s", keys_register_script.sha,
        keys_user(ukey, name), "ct:token:other", "other", "1", name);
    long long n = r != NULL && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;

    freeReplyObject(r);
    return n;
}

/* Runs the append script (EVALSHA, loaded by now) as `from` in room idem. */
static redisReply *append(redisContext *c, const char *from, const char *text,
                          const char *key)
{
    const char *argv[KEYS_APPEND_ARGC];
    size_t lens[KEYS_APPEND_ARGC];
    char bufs[KEYS_APPEND_BUFS];
    int n = keys_append_argv(argv, lens, bufs, 1, "idem", from, text,
                             strlen(text), key);

    return cmd_argv(c, n, argv, lens);
}

static long long xlen(redisContext *c)
{
    redisReply *r = redisCommand(c, "XLEN ct:room:{idem}:log");
    long long n = r != NULL && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;

    freeReplyObject(r);
    return n;
}

/* Idempotency keys: a repeat answers the first message and writes and
 * publishes nothing; keys are per user; a trimmed first message still
 * answers its id. */
static void test_idempotent(redisContext *c, int port)
{
    redisContext *sub = redisConnect("127.0.0.1", port);
    redisReply *r, *first = NULL, *msg = NULL;
    char id[STREAMID_STRLEN] = "";
    struct reply_appended a;

    r = redisCommand(sub, "SUBSCRIBE ct:bus:{idem}");
    freeReplyObject(r);
    first = append(c, "alice", "one", "k-1");
    ok(first != NULL && first->type == REDIS_REPLY_ARRAY &&
           first->elements == 2,
       "a new key: {id, ts}");
    if (first == NULL || first->type != REDIS_REPLY_ARRAY)
        goto done;
    snprintf(id, sizeof(id), "%s", first->element[0]->str);
    is_int(reply_appended(first, &a), 0, "reply_appended reads it");
    ok(strcmp(a.id, id) == 0 && !a.repeat && a.text == NULL &&
           a.ts == strtoll(first->element[1]->str, NULL, 10),
       "  id, ts, not a repeat");
    r = redisCommand(c, "TTL ct:idem:{idem}:alice:k-1");
    ok(r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer > 86000 &&
           r->integer <= 86400,
       "the key is kept 24 h (TTL %lld)", r != NULL ? r->integer : -1);
    freeReplyObject(r);

    r = append(c, "alice", "one, again but changed", "k-1");
    ok(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
           strcmp(r->element[0]->str, id) == 0 &&
           strcmp(r->element[1]->str, first->element[1]->str) == 0 &&
           strcmp(r->element[2]->str, "one") == 0,
       "the same key again: {first id, first ts, first text}");
    ok(reply_appended(r, &a) == 0 && a.repeat && strcmp(a.id, id) == 0 &&
           a.text_len == 3 && memcmp(a.text, "one", 3) == 0,
       "  reply_appended: a repeat with the first text");
    freeReplyObject(r);
    is_int(xlen(c), 1, "  nothing more stored");

    r = append(c, "bob", "bob's", "k-1");
    ok(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2,
       "another user's same key is another message");
    freeReplyObject(r);
    is_int(xlen(c), 2, "  stored");

    /* the bus carries "one", then "bob's": the repeat published nothing */
    for (int i = 0; i < 2; i++) {
        ok(redisGetReply(sub, (void **)&msg) == REDIS_OK && msg != NULL &&
               msg->type == REDIS_REPLY_ARRAY && msg->elements == 3 &&
               strstr(msg->element[2]->str, i == 0 ? "\"one\"" : "\"bob's\"") !=
                   NULL,
           "published %d: %s", i + 1,
           msg != NULL && msg->elements == 3 ? msg->element[2]->str : "-");
        freeReplyObject(msg);
        msg = NULL;
    }

    r = redisCommand(c, "XTRIM ct:room:{idem}:log MAXLEN 0");
    freeReplyObject(r);
    r = append(c, "alice", "retry", "k-1");
    ok(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
           strcmp(r->element[0]->str, id) == 0 &&
           strncmp(r->element[1]->str, id, strlen(r->element[1]->str)) == 0 &&
           strcmp(r->element[2]->str, "retry") == 0,
       "first message trimmed away: its id, ts from the id, this text");
    freeReplyObject(r);
    is_int(xlen(c), 0, "  nothing stored");
done:
    freeReplyObject(first);
    redisFree(sub);
}

/* Sends a resume's commands in one write, as the stores do, and returns
 * EXEC's reply (the others are status replies). */
static redisReply *resume_exec(redisContext *c, const char *room,
                               const struct streamid *since)
{
    static const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"};
    struct keys_resume k;
    redisReply *r = NULL;

    keys_resume_init(&k, room, since, 10);
    redisAppendCommandArgv(c, 1, multi, NULL);
    redisAppendCommandArgv(c, 3, k.xinfo, NULL);
    redisAppendCommandArgv(c, 6, k.xrange, NULL);
    redisAppendCommandArgv(c, 1, exec, NULL);
    for (int i = 0; i < 4; i++) {
        freeReplyObject(r);
        r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK)
            return NULL;
    }
    return r;
}

int main(void)
{
    redisContext *c = NULL, *sub = NULL;
    redisReply *r = NULL, *msg = NULL;
    const char *argv[KEYS_APPEND_ARGC];
    size_t lens[KEYS_APPEND_ARGC];
    char bufs[KEYS_APPEND_BUFS], id[STREAMID_STRLEN], ts[32];
    const char text[] = "a/b \"q\" \\ \xc3\xa9\xf0\x9f\x98\x80 </x>";
    struct chat_event ev = {0}, *evs = NULL;
    size_t n = 0;
    int port = -1;

    if (redis_missing())
        return redis_missing_status();
    keys_init();
    c = start_redis(&port);
    ok(c != NULL, "redis-server started on port %d", port);
    if (c == NULL)
        goto done;
    sub = redisConnect("127.0.0.1", port);
    r = redisCommand(sub, "SUBSCRIBE %s", "ct:bus:{lobby}");
    ok(r != NULL && r->type == REDIS_REPLY_ARRAY, "subscribed to the bus");
    freeReplyObject(r);

    r = redisCommand(c, "SCRIPT LOAD %s", keys_append_script.body);
    ok(r != NULL && r->type == REDIS_REPLY_STRING &&
           strcmp(r->str, keys_append_script.sha) == 0,
       "SCRIPT LOAD answers keys_append_script.sha");
    freeReplyObject(r);
    r = redisCommand(c, "SCRIPT FLUSH");
    freeReplyObject(r);

    n = keys_append_argv(argv, lens, bufs, 1, "lobby", "alice", text,
                         strlen(text), NULL);
    r = cmd_argv(c, (int)n, argv, lens);
    ok(r != NULL && r->type == REDIS_REPLY_ERROR &&
           strncmp(r->str, "NOSCRIPT", 8) == 0,
       "EVALSHA of an unloaded script is NOSCRIPT");
    freeReplyObject(r);

    n = keys_append_argv(argv, lens, bufs, 0, "lobby", "alice", text,
                         strlen(text), NULL);
    r = cmd_argv(c, (int)n, argv, lens);
    ok(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
           r->element[0]->type == REDIS_REPLY_STRING &&
           r->element[1]->type == REDIS_REPLY_STRING,
       "EVAL of the append script returns {id, ts}");
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        if (r != NULL && r->type == REDIS_REPLY_ERROR)
            diag("%s", r->str);
        goto done;
    }
    snprintf(id, sizeof(id), "%s", r->element[0]->str);
    snprintf(ts, sizeof(ts), "%s", r->element[1]->str);
    freeReplyObject(r);
    ok(strspn(ts, "0123456789") == strlen(ts) && strlen(ts) == 13,
       "ts is whole ms in digits: %s", ts);

    ok(redisGetReply(sub, (void **)&msg) == REDIS_OK && msg != NULL &&
           msg->type == REDIS_REPLY_ARRAY && msg->elements == 3,
       "the event is published");
    if (msg == NULL || msg->elements != 3)
        goto done;
    diag("published: %s", msg->element[2]->str);
    is_int(event_from_json(msg->element[2]->str, msg->element[2]->len, &ev), 0,
           "event_from_json reads what cjson.encode wrote");
    is_int(ev.type, EVENT_MESSAGE, "  a message");
    is_str(ev.id, id, "  with the id EVAL returned");
    is_str(ev.room, "lobby", "  room");
    is_str(ev.from, "alice", "  from");
    is_str(ev.text, text, "  text byte for byte");
    is_int(ev.ts, strtoll(ts, NULL, 10), "  ts as EVAL returned");
    event_clear(&ev);

    n = keys_append_argv(argv, lens, bufs, 1, "lobby", "bob", "second", 6,
                         NULL);
    r = cmd_argv(c, (int)n, argv, lens);
    ok(r != NULL && r->type == REDIS_REPLY_ARRAY,
       "EVALSHA works once the script is cached");
    freeReplyObject(r);

    r = redisCommand(c, "XRANGE %s - +", keys_room_log(bufs, "lobby"));
    is_int(reply_events(r, "lobby", &evs, &n), 0, "XRANGE reads back");
    is_int(n, 2, "  two messages");
    if (n == 2) {
        is_str(evs[0].id, id, "  first id");
        is_str(evs[0].text, text, "  first text");
        is_int(evs[0].ts, strtoll(ts, NULL, 10), "  first ts field");
        is_str(evs[1].from, "bob", "  second from");
        ok(streamid_cmp(&evs[0].sid, &evs[1].sid) < 0, "  ascending ids");
    }
    is_int(reply_first_id(r, bufs), 0, "reply_first_id");
    is_str(bufs, id, "  is the first message's");
    event_free_array(evs, n);
    freeReplyObject(r);

    r = redisCommand(c, "ZSCORE %s %s", KEYS_ROOMS, "lobby");
    ok(r != NULL && r->type == REDIS_REPLY_STRING &&
           strtoll(r->str, NULL, 10) >= strtoll(ts, NULL, 10),
       "ct:rooms has lobby at the last ts");
    freeReplyObject(r);

    {
        char hash[AUTH_HASH_LEN + 1], ukey[KEYS_MAX], tkey[KEYS_MAX];

        /* users from before names were folded: Carol, and two that
         * differ only in case */
        freeReplyObject(redisCommand(c, "HSET ct:user:Carol token_sha256 c"));
        freeReplyObject(redisCommand(c, "HSET ct:user:dave token_sha256 d1"));
        freeReplyObject(redisCommand(c, "HSET ct:user:DAVE token_sha256 d2"));
        auth_hash("token", 5, hash);
        keys_user(ukey, "alice");
        keys_token(tkey, hash);
        r = redisCommand(c, "EVAL %s 2 %s %s %s %s %s",
                         keys_register_script.body, ukey, tkey, hash,
                         "1732230000000", "alice");
        ok(r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer == 1,
           "register script creates alice");
        freeReplyObject(r);
        is_int(register_again(c, "alice"), 0,
               "register script: alice is taken (by EVALSHA)");
        r = redisCommand(c, "EXISTS ct:token:other");
        ok(r != NULL && r->integer == 0, "  and wrote nothing");
        freeReplyObject(r);
        is_int(register_again(c, "ALICE"), 0,
               "register script: ALICE is alice, taken");
        r = redisCommand(c, "HGET %s name", ukey);
        ok(r != NULL && r->type == REDIS_REPLY_STRING &&
               strcmp(r->str, "alice") == 0,
           "  and alice keeps its spelling in `name`");
        freeReplyObject(r);
        r = redisCommand(c, "HGET %s token_sha256", ukey);
        ok(r != NULL && r->type == REDIS_REPLY_STRING &&
               strcmp(r->str, hash) == 0,
           "user hash holds token_sha256");
        freeReplyObject(r);
        r = redisCommand(c, "HGET %s created", ukey);
        ok(r != NULL && r->type == REDIS_REPLY_STRING &&
               strcmp(r->str, "1732230000000") == 0,
           "user hash holds created");
        freeReplyObject(r);
        r = redisCommand(c, "GET %s", tkey);
        ok(r != NULL && r->type == REDIS_REPLY_STRING &&
               strcmp(r->str, "alice") == 0,
           "token key names the user");
        freeReplyObject(r);
        r = redisCommand(c, "HGET ct:user:carol name");
        ok(r != NULL && r->type == REDIS_REPLY_STRING &&
               strcmp(r->str, "Carol") == 0,
           "an old user is moved to its lower-case key, spelling kept");
        freeReplyObject(r);
        r = redisCommand(c, "EXISTS ct:user:Carol ct:user:dave ct:user:DAVE");
        ok(r != NULL && r->integer == 2,
           "  its old key is gone; two old users differing in case stay");
        freeReplyObject(r);
        is_int(register_again(c, "Dave"), 0,
               "  and Dave cannot be registered again");
        r = redisCommand(c, "EXISTS ct:users:folded");
        ok(r != NULL && r->integer == 1, "  the move is marked as done");
        freeReplyObject(r);
    }
    test_idempotent(c, port);

    {
        /* a resume's round trip on a real stream: trimmed, then emptied,
         * then gone */
        struct streamid_log log;
        struct streamid_signal sig;
        struct streamid since = {0, 0};
        char key[KEYS_MAX];
        int i;

        keys_room_log(key, "trim");
        for (i = 1; i <= 4; i++)
            freeReplyObject(redisCommand(c, "XADD %s %d-0 from a text t%d ts 1",
                                         key, i, i));
        freeReplyObject(redisCommand(c, "XTRIM %s MINID 3", key));
        r = resume_exec(c, "trim", &since);
        is_int(reply_resume(r, "trim", &log, &evs, &n), 0,
               "resume after 0-0 on a trimmed stream");
        ok(log.exists && log.length == 2 && log.first.ms == 3 &&
               log.last.ms == 4 && log.removed == 2,
           "  XINFO: 2 held from 3-0 to 4-0, 2 removed");
        is_int(n, 2, "  the replay: both held");
        streamid_judge(&since, &log, &sig);
        is_int(sig.verdict, STREAMID_TRUNCATED, "  a gap");
        ok(sig.id.ms == 3, "  first_id 3-0");
        event_free_array(evs, n);
        freeReplyObject(r);
        r = NULL;

        since.ms = UINT64_MAX;
        since.seq = UINT64_MAX;
        r = resume_exec(c, "trim", &since);
        is_int(reply_resume(r, "trim", &log, &evs, &n), 0,
               "resume after the largest id: Redis takes it");
        is_int(n, 0, "  nothing after it");
        streamid_judge(&since, &log, &sig);
        ok(sig.verdict == STREAMID_RESET && sig.id.ms == 4, "  reset to 4-0");
        event_free_array(evs, n);
        freeReplyObject(r);

        freeReplyObject(redisCommand(c, "XTRIM %s MAXLEN 0", key));
        since = (struct streamid){3, 0};
        r = resume_exec(c, "trim", &since);
        is_int(reply_resume(r, "trim", &log, &evs, &n), 0,
               "resume on a stream trimmed to nothing");
        ok(log.exists && log.length == 0 && streamid_is_zero(&log.first),
           "  empty, no first entry");
        streamid_judge(&since, &log, &sig);
        ok(sig.verdict == STREAMID_TRUNCATED && sig.id.ms == 4 &&
               sig.id.seq == 1 && sig.from.ms == 4,
           "  a gap up to 4-0: first_id 4-1");
        event_free_array(evs, n);
        freeReplyObject(r);

        /* Redis over maxmemory refuses what is queued in a MULTI, reads
         * too; the same read as the script is not refused, and answers
         * alike */
        for (i = 5; i <= 6; i++)
            freeReplyObject(redisCommand(c, "XADD %s %d-0 from a text t%d ts 1",
                                         key, i, i));
        freeReplyObject(redisCommand(c, "CONFIG SET maxmemory 1"));
        since = (struct streamid){5, 0};
        r = resume_exec(c, "trim", &since);
        ok(r != NULL && r->type == REDIS_REPLY_ERROR &&
               strncmp(r->str, "EXECABORT", 9) == 0,
           "over maxmemory a resume's MULTI is refused (EXECABORT)");
        freeReplyObject(r);
        {
            struct keys_resume k;

            keys_resume_init(&k, "trim", &since, 10);
            r = redisCommandArgv(c, KEYS_RESUME_SCRIPT_ARGC, k.script, NULL);
        }
        is_int(reply_resume(r, "trim", &log, &evs, &n), 0,
               "  its script is not");
        ok(n == 1 && log.exists && log.length == 2, "  the replay: 6-0 of 2");
        event_free_array(evs, n);
        freeReplyObject(r);
        freeReplyObject(redisCommand(c, "CONFIG SET maxmemory 0"));

        freeReplyObject(redisCommand(c, "DEL %s", key));
        r = resume_exec(c, "trim", &since);
        is_int(reply_resume(r, "trim", &log, &evs, &n), 0,
               "resume on no stream at all");
        ok(!log.exists && n == 0, "  it does not exist");
        event_free_array(evs, n);
        evs = NULL;
        n = 0;
        freeReplyObject(r);
        r = NULL;
    }

    {
        /* the rooms script pages ct:rooms newest first, ties by name */
        static const char *names[] = {"a", "b", "c", "d", "e"};
        static const int scores[] = {10, 20, 20, 20, 5};
        struct keys_rooms k;
        char seen[64] = "", after[NAME_ROOM_MAX + 1] = "";
        long long after_ts = 0;
        int pages = 0;

        freeReplyObject(redisCommand(c, "DEL %s", KEYS_ROOMS));
        for (int i = 0; i < 5; i++)
            freeReplyObject(redisCommand(c, "ZADD %s %d %s", KEYS_ROOMS,
                                         scores[i], names[i]));
        do {
            keys_rooms_init(&k, 2, after_ts, after[0] ? after : NULL);
            freeReplyObject(r); /* the page before */
            r = redisCommandArgv(c, KEYS_ROOMS_ARGC, k.argv, NULL);
            if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
                ok(0, "rooms script: %s", r ? r->str : "no reply");
                break;
            }
            for (size_t i = 0; i + 1 < r->elements; i += 2) {
                strcat(seen, r->element[i]->str);
                snprintf(after, sizeof(after), "%s", r->element[i]->str);
                after_ts = strtoll(r->element[i + 1]->str, NULL, 10);
            }
            strcat(seen, "|");
            pages++;
            if (pages == 1) /* activity in a listed room moves it ahead */
                freeReplyObject(redisCommand(c, "ZADD %s 30 d", KEYS_ROOMS));
        } while (r->elements == 4 && pages < 10);
        freeReplyObject(r);
        r = NULL;
        is_str(seen, "dc|ba|e|",
               "rooms in pages of 2: ties in reverse name order, none twice");
    }
done:
    freeReplyObject(msg);
    redisFree(sub);
    redisFree(c);
    stop_redis();
    return tap_done();
}
