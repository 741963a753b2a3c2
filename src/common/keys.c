/* keys.c - Redis key names and the Lua scripts every writer runs */
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "keys.h"
#include "names.h"

/*
 * The one write path of DESIGN.md. ts comes from the server's clock so
 * every writer agrees; it is formatted with %d because a Lua number would
 * otherwise go to XADD as "1.7e+12". cjson escapes '/' as "\/", which any
 * JSON reader (event_from_json included) takes as '/'.
 *
 * The idempotency key is read and written inside the script, so two
 * retries racing on two processes still store one message. A repeat is
 * answered by reads alone, which Redis runs even when it refuses writes
 * (out of memory, read-only replica).
 */
/* The idempotency key's 86400 s is KEYS_IDEM_TTL written out: the backup
 * tests read this script's text from this file. */
static const char append_body[] =
    "if KEYS[3] then\n"
    "  local prev = redis.call('GET', KEYS[3])\n"
    "  if prev then\n"
    "    local e = redis.call('XRANGE', KEYS[1], prev, prev)\n"
    "    local ts, text = string.match(prev, '^%d+'), ARGV[3]\n"
    "    if e[1] then\n"
    "      local f = e[1][2]\n"
    "      for i = 1, #f, 2 do\n"
    "        if f[i] == 'ts' then ts = f[i + 1] end\n"
    "        if f[i] == 'text' then text = f[i + 1] end\n"
    "      end\n"
    "    end\n"
    "    return {prev, ts, text}\n"
    "  end\n"
    "end\n"
    "local t = redis.call('TIME')\n"
    "local ts = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local tss = string.format('%d', ts)\n"
    "local id = redis.call('XADD', KEYS[1], '*', 'from', ARGV[2], "
    "'text', ARGV[3], 'ts', tss)\n"
    "redis.call('ZADD', KEYS[2], tss, ARGV[1])\n"
    "if KEYS[3] then\n"
    "  redis.call('SET', KEYS[3], id, 'EX', 86400)\n"
    "end\n"
    "redis.call('PUBLISH', ARGV[4], cjson.encode({id = id, "
    "room = ARGV[1], "
    "type = 'message', from = ARGV[2], text = ARGV[3], ts = "
    "ts}))\n"
    "return {id, tss}\n";

/*
 * Creating the user and its token lookup together, or neither: a taken
 * name writes nothing. Users are keyed by their name in lower case, so
 * "ALICE1" finds "alice1". Users registered before that are keyed by their
 * name as given; the first registration on a database moves each of them
 * to its lower-case key (RENAME, and `name` keeps the spelling), once,
 * marked by ct:users:folded. Where two old users differ only in case, the
 * first found takes the lower-case key and the other keeps its own: both
 * go on working by token, and neither name can be registered again.
 */
static const char register_body[] =
    "if redis.call('EXISTS', 'ct:users:folded') == 0 then\n"
    "  local cursor = '0'\n"
    "  repeat\n"
    "    local r = redis.call('SCAN', cursor, 'MATCH', 'ct:user:*', "
    "'COUNT', 1000, 'TYPE', 'hash')\n"
    "    cursor = r[1]\n"
    "    for _, k in ipairs(r[2]) do\n"
    "      local low = string.lower(k)\n"
    "      if low == k or redis.call('EXISTS', low) == 0 then\n"
    "        if low ~= k then redis.call('RENAME', k, low) end\n"
    "        redis.call('HSETNX', low, 'name', string.sub(k, 9))\n"
    "      end\n"
    "    end\n"
    "  until cursor == '0'\n"
    "  redis.call('SET', 'ct:users:folded', '1')\n"
    "end\n"
    "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'token_sha256', ARGV[1], "
    "'created', ARGV[2], 'name', ARGV[3])\n"
    "redis.call('SET', KEYS[2], ARGV[3])\n"
    "return 1\n";

struct keys_script keys_append_script = {"append", append_body, ""};
struct keys_script keys_register_script = {"register", register_body, ""};

static char *key(char *buf, const char *prefix, const char *name,
                 const char *suffix)
{
    snprintf(buf, KEYS_MAX, "%s%s%s", prefix, name, suffix);
    return buf;
}

char *keys_room_log(char *buf, const char *room)
{
    return key(buf, "ct:room:{", room, "}:log");
}

char *keys_user(char *buf, const char *name)
{
    char folded[NAME_USER_MAX + 1];

    names_user_fold(name, folded);
    return key(buf, "ct:user:", folded, "");
}

char *keys_token(char *buf, const char *hash)
{
    return key(buf, "ct:token:", hash, "");
}

char *keys_presence(char *buf, const char *room)
{
    return key(buf, "ct:presence:{", room, "}");
}

char *keys_bus(char *buf, const char *room)
{
    return key(buf, KEYS_BUS_PREFIX, room, "}");
}

char *keys_backup(char *buf, const char *room)
{
    return key(buf, "ct:backup:{", room, "}");
}

char *keys_idem(char *buf, const char *room, const char *user, const char *key)
{
    snprintf(buf, KEYS_IDEM_MAX, "ct:idem:{%s}:%s:%s", room, user, key);
    return buf;
}

const char *keys_bus_room(const char *channel, char room[NAME_ROOM_MAX + 1])
{
    size_t plen = strlen(KEYS_BUS_PREFIX), len;

    if (channel == NULL || strncmp(channel, KEYS_BUS_PREFIX, plen) != 0)
        return NULL;
    channel += plen;
    len = strlen(channel);
    if (len < 2 || channel[len - 1] != '}' ||
        !names_room_valid(channel, len - 1))
        return NULL;
    memcpy(room, channel, len - 1);
    room[len - 1] = '\0';
    return room;
}

static void script_sha(struct keys_script *s)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0, i;

    if (!EVP_Digest(s->body, strlen(s->body), md, &n, EVP_sha1(), NULL) ||
        n != 20) {
        /* EVALSHA then fails with NOSCRIPT and callers fall back to EVAL. */
        snprintf(s->sha, sizeof(s->sha), "%040d", 0);
        return;
    }
    for (i = 0; i < n; i++) {
        s->sha[2 * i] = hex[md[i] >> 4];
        s->sha[2 * i + 1] = hex[md[i] & 15];
    }
    s->sha[40] = '\0';
}

void keys_init(void)
{
    script_sha(&keys_append_script);
    script_sha(&keys_register_script);
}

int keys_append_argv(const char **argv, size_t *lens, char *bufs, int evalsha,
                     const char *room, const char *from, const char *text,
                     size_t text_len, const char *key)
{
    bool idem = key != NULL && key[0] != '\0';
    int n = 0, itext, i;

    if (evalsha && keys_append_script.sha[0] == '\0')
        keys_init();
    argv[n++] = evalsha ? "EVALSHA" : "EVAL";
    argv[n++] = evalsha ? keys_append_script.sha : keys_append_script.body;
    argv[n++] = idem ? "3" : "2";
    argv[n++] = keys_room_log(bufs, room);
    argv[n++] = KEYS_ROOMS;
    if (idem)
        argv[n++] = keys_idem(bufs + 2 * KEYS_MAX, room, from, key);
    argv[n++] = room;
    argv[n++] = from;
    itext = n;
    argv[n++] = text;
    argv[n++] = keys_bus(bufs + KEYS_MAX, room);
    for (i = 0; i < n; i++)
        lens[i] = i == itext ? text_len : strlen(argv[i]); /* text: any bytes */
    return n;
}

static const char resume_body[] =
    "return {redis.pcall('XINFO', 'STREAM', KEYS[1]), "
    "redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2])}\n";

void keys_resume_init(struct keys_resume *k, const char *room,
                      const struct streamid *after, int limit)
{
    keys_room_log(k->key, room);
    streamid_format_after(after, k->start);
    snprintf(k->count, sizeof(k->count), "%d", limit);
    k->xinfo[0] = "XINFO";
    k->xinfo[1] = "STREAM";
    k->xinfo[2] = k->key;
    k->xrange[0] = "XRANGE";
    k->xrange[1] = k->key;
    k->xrange[2] = k->start;
    k->xrange[3] = "+";
    k->xrange[4] = "COUNT";
    k->xrange[5] = k->count;
    k->script[0] = "EVAL";
    k->script[1] = resume_body;
    k->script[2] = "1";
    k->script[3] = k->key;
    k->script[4] = k->start;
    k->script[5] = k->count;
}

/* Names are compared byte by byte, as sorted sets order them: Lua's '<'
 * follows the server's locale. */
static const char rooms_body[] =
    "local n = tonumber(ARGV[1])\n"
    "local out, max = {}, '+inf'\n"
    "local function below(a, b)\n"
    "  for i = 1, math.min(#a, #b) do\n"
    "    local x, y = string.byte(a, i), string.byte(b, i)\n"
    "    if x ~= y then return x < y end\n"
    "  end\n"
    "  return #a < #b\n"
    "end\n"
    "if ARGV[2] ~= '' then\n"
    "  local ties = redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[2], "
    "ARGV[2], 'WITHSCORES')\n"
    "  for i = 1, #ties, 2 do\n"
    "    if #out < 2 * n and below(ties[i], ARGV[3]) then\n"
    "      out[#out + 1] = ties[i]\n"
    "      out[#out + 1] = ties[i + 1]\n"
    "    end\n"
    "  end\n"
    "  max = '(' .. ARGV[2]\n"
    "end\n"
    "if #out < 2 * n then\n"
    "  local rest = redis.call('ZREVRANGEBYSCORE', KEYS[1], max, '-inf', "
    "'WITHSCORES', 'LIMIT', 0, n - #out / 2)\n"
    "  for i = 1, #rest do out[#out + 1] = rest[i] end\n"
    "end\n"
    "return out\n";

void keys_rooms_init(struct keys_rooms *k, int n, long long after_ts,
                     const char *after_name)
{
    snprintf(k->n, sizeof(k->n), "%d", n);
    if (after_name != NULL)
        snprintf(k->score, sizeof(k->score), "%lld", after_ts);
    else
        k->score[0] = '\0';
    k->argv[0] = "EVAL";
    k->argv[1] = rooms_body;
    k->argv[2] = "1";
    k->argv[3] = KEYS_ROOMS;
    k->argv[4] = k->n;
    k->argv[5] = k->score;
    k->argv[6] = after_name != NULL ? after_name : "";
}
