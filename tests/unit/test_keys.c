/* test_keys.c - Redis key names, script digests and EVAL argument vectors */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keys.h"
#include "names.h"
#include "tap.h"

/* The SHA-1 that `sha1sum` gives for body, which is what Redis's
 * SCRIPT LOAD answers: computed outside our code on purpose. */
static int sha1sum(const char *body, char out[41])
{
    char path[] = "/tmp/crosstalk-test-keys.XXXXXX", cmd[128];
    int fd = mkstemp(path);
    FILE *p;
    int rc = -1;

    if (fd < 0)
        return -1;
    if (write(fd, body, strlen(body)) != (ssize_t)strlen(body))
        goto done;
    snprintf(cmd, sizeof(cmd), "sha1sum %s", path);
    if ((p = popen(cmd, "r")) == NULL)
        goto done;
    if (fread(out, 1, 40, p) == 40)
        rc = 0;
    out[40] = '\0';
    pclose(p);
done:
    close(fd);
    unlink(path);
    return rc;
}

int main(void)
{
    char buf[KEYS_MAX], sha[41], bufs[KEYS_APPEND_BUFS];
    const char *argv[KEYS_APPEND_ARGC];
    size_t lens[KEYS_APPEND_ARGC];
    char room64[65];
    int n;

    is_str(keys_room_log(buf, "lobby"), "ct:room:{lobby}:log", "room log key");
    is_str(keys_user(buf, "alice"), "ct:user:alice", "user key");
    is_str(keys_user(buf, "ALICE"), "ct:user:alice",
           "user key: the name in lower case");
    is_str(keys_token(buf, "ab12"), "ct:token:ab12", "token key");
    is_str(keys_presence(buf, "lobby"), "ct:presence:{lobby}", "presence key");
    is_str(keys_bus(buf, "lobby"), "ct:bus:{lobby}", "bus channel");
    is_str(keys_backup(buf, "lobby"), "ct:backup:{lobby}", "backup key");
    ok(keys_bus(buf, "x") == buf, "builders return buf");
    memset(room64, 'r', 64);
    room64[64] = '\0';
    keys_room_log(buf, room64);
    ok(strlen(buf) == 9 + 64 + 5, "longest room's log key fits KEYS_MAX");
    is_str(KEYS_ROOMS, "ct:rooms", "rooms key");
    ok(strncmp(KEYS_BUS_PATTERN, KEYS_BUS_PREFIX, strlen(KEYS_BUS_PREFIX)) == 0,
       "bus pattern matches the prefix");
    {
        char room[NAME_ROOM_MAX + 1], chan[KEYS_MAX];

        is_str(keys_bus_room("ct:bus:{lobby}", room), "lobby",
               "keys_bus_room: the room of a channel");
        ok(keys_bus_room(keys_bus(chan, room64), room) == room &&
               strcmp(room, room64) == 0,
           "keys_bus_room: the longest room name");
        ok(keys_bus_room("ct:bus:lobby", room) == NULL,
           "keys_bus_room: an untagged (old) channel is none");
        ok(keys_bus_room("ct:bus:{}", room) == NULL &&
               keys_bus_room("ct:bus:{Lobby}", room) == NULL &&
               keys_bus_room("ct:bus:{lobby", room) == NULL &&
               keys_bus_room("ct:room:{lobby}", room) == NULL,
           "keys_bus_room: empty, invalid, unclosed or other keys are none");
        memset(chan, 'r', sizeof(chan) - 1);
        memcpy(chan, "ct:bus:{", 8);
        chan[8 + 65] = '}';
        chan[8 + 66] = '\0';
        ok(keys_bus_room(chan, room) == NULL,
           "keys_bus_room: a name one longer than NAME_ROOM_MAX is none");
    }

    keys_init();
    is_int(strlen(keys_append_script.sha), 40, "append sha is 40 hex");
    if (sha1sum(keys_append_script.body, sha) == 0)
        is_str(keys_append_script.sha, sha, "append sha = sha1sum of body");
    else
        ok(0, "sha1sum ran");
    if (sha1sum(keys_register_script.body, sha) == 0)
        is_str(keys_register_script.sha, sha, "register sha = sha1sum of body");
    else
        ok(0, "sha1sum ran");
    ok(strstr(keys_append_script.body, "XADD") != NULL &&
           strstr(keys_append_script.body, "PUBLISH") != NULL &&
           strstr(keys_append_script.body, "ZADD") != NULL,
       "append script does XADD, ZADD and PUBLISH");

    n = keys_append_argv(argv, lens, bufs, 1, "lobby", "alice", "hi\0x", 4,
                         NULL);
    is_int(n, 9, "EVALSHA argv without a key has 9 entries");
    is_str(argv[0], "EVALSHA", "  command");
    is_str(argv[1], keys_append_script.sha, "  sha");
    is_str(argv[2], "2", "  numkeys");
    is_str(argv[3], "ct:room:{lobby}:log", "  KEYS[1]");
    is_str(argv[4], "ct:rooms", "  KEYS[2]");
    is_str(argv[5], "lobby", "  ARGV[1] room");
    is_str(argv[6], "alice", "  ARGV[2] from");
    ok(memcmp(argv[7], "hi\0x", 4) == 0 && lens[7] == 4,
       "  ARGV[3] text with its length, NUL and all");
    is_str(argv[8], "ct:bus:{lobby}", "  ARGV[4] channel");
    is_int(lens[3], strlen("ct:room:{lobby}:log"), "  lengths");
    is_int(lens[1], 40, "  sha length");
    {
        /* not NUL-terminated: the sanitizer build catches any strlen */
        char *unterminated = malloc(2);

        memcpy(unterminated, "yo", 2);
        keys_append_argv(argv, lens, bufs, 1, "lobby", "alice", unterminated, 2,
                         "");
        ok(argv[7] == unterminated && lens[7] == 2,
           "text is passed by pointer and length only");
        free(unterminated);
    }
    n = keys_append_argv(argv, lens, bufs, 0, "lobby", "alice", "hi", 2, NULL);
    is_str(argv[0], "EVAL", "EVAL form");
    ok(argv[1] == keys_append_script.body, "  carries the body");
    is_int(lens[1], strlen(keys_append_script.body), "  its length");

    {
        char key64[65], user32[33], idem[KEYS_IDEM_MAX];

        memset(key64, 'k', 64);
        key64[64] = '\0';
        memset(user32, 'u', 32);
        user32[32] = '\0';
        n = keys_append_argv(argv, lens, bufs, 1, room64, user32, "hi\0x", 4,
                             key64);
        is_int(n, KEYS_APPEND_ARGC, "with a key: KEYS_APPEND_ARGC entries");
        is_str(argv[2], "3", "  numkeys 3");
        ok(strncmp(argv[5], "ct:idem:", 8) == 0 &&
               strlen(argv[5]) == 9 + 64 + 2 + 32 + 1 + 64 &&
               strcmp(argv[5] + strlen(argv[5]) - 64, key64) == 0,
           "  KEYS[3] ct:idem:{room}:user:key, longest of each whole");
        is_str(argv[6], room64, "  ARGV[1] room");
        is_str(argv[7], user32, "  ARGV[2] from");
        ok(memcmp(argv[8], "hi\0x", 4) == 0 && lens[8] == 4,
           "  ARGV[3] text with its length");
        ok(strncmp(argv[9], "ct:bus:{", 8) == 0, "  ARGV[4] channel");
        is_str(keys_idem(idem, "lobby", "bob", "k1"), "ct:idem:{lobby}:bob:k1",
               "idempotency key");
    }
    return tap_done();
}
