/* store.c - the Redis commands: arguments built, replies decoded and the
 * token cache, once, over any executor (rexec.h) */
#include "store.h"

#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>

#include "auth.h"
#include "config.h"
#include "keys.h"
#include "log.h"
#include "names.h"
#include "reply.h"
#include "rexec.h"
#include "shard.h"
#include "statrec.h"
#include "xmalloc.h"

#define AUTH_CACHE_MAX 65536

struct store {
    struct rexec **x; /* one executor per shard */
    int n;
    const struct config *cfg;
    /* token -> user name, believed for token_cache_ttl after Redis said so */
    void *auth_cache;
    size_t auth_cached;
    store_stored_fn stored; /* store_on_stored */
    void *stored_arg;
};

/* One command in flight and what to tell whom when it answers. */
struct call {
    struct store *st;
    union {
        store_append_cb append;
        store_events_cb events;
        store_resume_cb resume;
        store_user_cb user;
        store_register_cb reg;
        store_rooms_cb rooms;
        store_online_cb online;
        store_status_cb status;
    } cb;
    void *arg;
    char room[NAME_ROOM_MAX + 1];
    char key[AUTH_HASH_LEN + 1];
    char token[AUTH_TOKEN_LEN + 1];
    char created[24];
    bool reverse;
    /* the command, kept to resend as EVAL after NOSCRIPT */
    int argc;
    const char *argv[KEYS_APPEND_ARGC];
    size_t lens[KEYS_APPEND_ARGC];
    char from[NAME_USER_MAX + 1];
    char *text;
    size_t text_len;
    char idem[API_KEY_MAX + 1]; /* the idempotency key, "" for none */
    char bufs[KEYS_APPEND_BUFS];
    struct keys_resume resume; /* kept to run again as a script */
    bool scripted;             /* and so it was */
};

/* Tokens are looked up by their token rather than their digest, so a
 * cached token costs no SHA-256; the digest is what Redis keeps. */
struct auth_entry {
    char token[AUTH_TOKEN_LEN + 1];
    char user[NAME_USER_MAX + 1];
    int64_t checked_ms; /* monotonic: when Redis last confirmed it */
};

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct call *call_new(struct store *st, void *arg)
{
    struct call *c = xcalloc(1, sizeof(*c));

    c->st = st;
    c->arg = arg;
    return c;
}

static void call_free(struct call *c)
{
    if (c == NULL)
        return;
    free(c->text);
    free(c);
}

/* An error reply or none at all (disconnected) is a failure. */
static bool reply_failed(const redisReply *r, const char *what)
{
    if (r == NULL)
        return true;
    if (r->type == REDIS_REPLY_ERROR) {
        log_warn("redis: %s: %s", what, r->str);
        return true;
    }
    return false;
}

/* --- life cycle --- */

struct store *store_new(struct rexec **x, int n, const struct config *cfg)
{
    struct store *st = xcalloc(1, sizeof(*st));

    st->x = xcalloc((size_t)n, sizeof(*st->x));
    memcpy(st->x, x, (size_t)n * sizeof(*x));
    st->n = n;
    st->cfg = cfg;
    keys_init();
    return st;
}

void store_free(struct store *st)
{
    if (st == NULL)
        return;
    tdestroy(st->auth_cache, free);
    free(st->x);
    free(st);
}

bool store_ready(const struct store *st)
{
    for (int i = 0; i < st->n; i++)
        if (!st->x[i]->ready(st->x[i]))
            return false;
    return true;
}

int store_shards(const struct store *st)
{
    return st->n;
}

/* The executor of a room's shard, and of a user's. */
static struct rexec *room_x(const struct store *st, const char *room)
{
    return st->x[shard_of_room(room, st->n)];
}

static struct rexec *user_x(const struct store *st, const char *name)
{
    return st->x[shard_of_user(name, st->n)];
}

static int send_argv(struct rexec *x, rexec_cb fn, struct call *c, int argc,
                     const char **argv, const size_t *lens)
{
    return x->send(x, fn, c, argc, argv, lens);
}

/* --- commands --- */

static void on_append(redisReply *reply, void *priv)
{
    struct call *c = priv;
    redisReply *r = reply;
    struct reply_appended a;
    enum api_fault fault;

    if (r != NULL && r->type == REDIS_REPLY_ERROR &&
        strncmp(r->str, "NOSCRIPT", 8) == 0 && c->argv[0][4] == 'S') {
        /* the script cache was flushed (restart): send the body once */
        c->argc = keys_append_argv(c->argv, c->lens, c->bufs, 0, c->room,
                                   c->from, c->text, c->text_len, c->idem);
        if (send_argv(room_x(c->st, c->room), on_append, c, c->argc, c->argv,
                      c->lens) == 0)
            return;
        /* lost between the two: the EVALSHA did nothing, the EVAL went
         * nowhere */
        c->cb.append(API_FAULT_DOWN, NULL, c->arg);
        call_free(c);
        return;
    }
    if ((fault = reply_fault(r)) != API_FAULT_NONE) {
        if (r != NULL)
            log_warn("redis: append in %s: %s", c->room, r->str);
        c->cb.append(fault, NULL, c->arg);
    } else if (reply_appended(r, &a) != 0) {
        c->cb.append(API_FAULT_ERROR, NULL, c->arg);
    } else {
        if (c->st->stored != NULL)
            c->st->stored(c->st->stored_arg, c->room, a.id);
        c->cb.append(0, &a, c->arg);
    }
    call_free(c);
}

void store_on_stored(struct store *st, store_stored_fn fn, void *arg)
{
    st->stored = fn;
    st->stored_arg = arg;
}

int store_append(struct store *st, const char *room, const char *from,
                 const char *text, size_t len, const char *key,
                 store_append_cb cb, void *arg)
{
    struct call *c = call_new(st, arg);

    c->cb.append = cb;
    strcpy(c->room, room);
    strcpy(c->from, from);
    snprintf(c->idem, sizeof(c->idem), "%s", key != NULL ? key : "");
    c->text = xmalloc(len + 1);
    memcpy(c->text, text, len);
    c->text[len] = '\0';
    c->text_len = len;
    c->argc = keys_append_argv(c->argv, c->lens, c->bufs, 1, c->room, c->from,
                               c->text, len, c->idem);
    if (send_argv(room_x(st, room), on_append, c, c->argc, c->argv, c->lens) !=
        0) {
        call_free(c);
        return -1;
    }
    return 0;
}

static void on_range(redisReply *reply, void *priv)
{
    struct call *c = priv;
    redisReply *r = reply;
    struct chat_event *evs = NULL;
    size_t n = 0;

    if (reply_failed(r, "range") || reply_events(r, c->room, &evs, &n) != 0) {
        c->cb.events(-1, NULL, 0, c->arg);
    } else {
        if (c->reverse) {
            for (size_t i = 0; i < n / 2; i++) {
                struct chat_event t = evs[i];
                evs[i] = evs[n - 1 - i];
                evs[n - 1 - i] = t;
            }
        }
        c->cb.events(0, evs, n, c->arg);
    }
    event_free_array(evs, n);
    call_free(c);
}

static int range(struct store *st, const char *cmd, const char *room,
                 const char *start, const char *end, int limit,
                 store_events_cb cb, void *arg)
{
    struct call *c = call_new(st, arg);
    char key[KEYS_MAX], count[16];
    const char *argv[6];

    c->cb.events = cb;
    c->reverse = strcmp(cmd, "XREVRANGE") == 0;
    strcpy(c->room, room);
    snprintf(count, sizeof(count), "%d", limit);
    argv[0] = cmd;
    argv[1] = keys_room_log(key, room);
    argv[2] = start;
    argv[3] = end;
    argv[4] = "COUNT";
    argv[5] = count;
    if (send_argv(room_x(st, room), on_range, c, 6, argv, NULL) != 0) {
        call_free(c);
        return -1;
    }
    return 0;
}

int store_after(struct store *st, const char *room,
                const struct streamid *after, int limit, store_events_cb cb,
                void *arg)
{
    char id[STREAMID_STRLEN + 1] = "-";

    if (after != NULL)
        streamid_format_after(after, id);
    return range(st, "XRANGE", room, id, "+", limit, cb, arg);
}

int store_before(struct store *st, const char *room,
                 const struct streamid *before, int limit, store_events_cb cb,
                 void *arg)
{
    char id[STREAMID_STRLEN + 1] = "+";

    if (before != NULL) {
        id[0] = '(';
        streamid_format(before, id + 1);
    }
    return range(st, "XREVRANGE", room, id, "-", limit, cb, arg);
}

static void on_resume(redisReply *reply, void *priv)
{
    struct call *c = priv;
    redisReply *r = reply;
    struct streamid_log log;
    struct chat_event *evs = NULL;
    size_t n = 0;

    /* over maxmemory: the same read as a script, once */
    if (r != NULL && r->type == REDIS_REPLY_ERROR &&
        strncmp(r->str, "EXECABORT", 9) == 0 && !c->scripted) {
        c->scripted = true;
        if (send_argv(room_x(c->st, c->room), on_resume, c,
                      KEYS_RESUME_SCRIPT_ARGC, c->resume.script, NULL) == 0)
            return;
        r = NULL;
    }
    if (reply_failed(r, "resume") ||
        reply_resume(r, c->room, &log, &evs, &n) != 0)
        c->cb.resume(-1, NULL, 0, NULL, c->arg);
    else
        c->cb.resume(0, evs, n, &log, c->arg);
    event_free_array(evs, n);
    call_free(c);
}

int store_resume(struct store *st, const char *room,
                 const struct streamid *after, int limit, store_resume_cb cb,
                 void *arg)
{
    static const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"};
    struct rexec *x = room_x(st, room);
    struct call *c;
    struct keys_resume *k;

    c = call_new(st, arg);
    k = &c->resume;
    keys_resume_init(k, room, after, limit);
    /* one write, one round trip: only EXEC's reply is read */
    if (x->queue(x, 1, multi, NULL) != 0 ||
        x->queue(x, 3, k->xinfo, NULL) != 0 ||
        x->queue(x, 6, k->xrange, NULL) != 0) {
        call_free(c);
        return -1;
    }
    c->cb.resume = cb;
    strcpy(c->room, room);
    if (send_argv(x, on_resume, c, 1, exec, NULL) != 0) {
        call_free(c);
        return -1;
    }
    return 0;
}

static int auth_cmp(const void *a, const void *b)
{
    return strcmp(((const struct auth_entry *)a)->token,
                  ((const struct auth_entry *)b)->token);
}

/* Believes `token` is `user`'s from now for token_cache_ttl. */
static void auth_remember(struct store *st, const char *token, const char *user)
{
    struct auth_entry *e = xmalloc(sizeof(*e)), *old;

    strcpy(e->token, token);
    strcpy(e->user, user);
    e->checked_ms = mono_ms();
    if (st->auth_cached >= AUTH_CACHE_MAX) {
        tdestroy(st->auth_cache, free);
        st->auth_cache = NULL;
        st->auth_cached = 0;
    }
    old = *(struct auth_entry **)tsearch(e, &st->auth_cache, auth_cmp);
    if (old != e) {
        *old = *e;
        free(e);
    } else {
        st->auth_cached++;
    }
}

static void auth_forget(struct store *st, const char *token)
{
    struct auth_entry key, *e;
    void *node;

    strcpy(key.token, token);
    if ((node = tfind(&key, &st->auth_cache, auth_cmp)) == NULL)
        return;
    e = *(struct auth_entry **)node;
    tdelete(&key, &st->auth_cache, auth_cmp);
    free(e);
    st->auth_cached--;
}

/* The second step: the user still exists and this is still its token (a
 * user deleted, or deleted and registered again, leaves the old token's
 * ct:token key pointing at the name). */
static void on_auth_user(redisReply *reply, void *priv)
{
    struct call *c = priv;
    redisReply *r = reply;

    if (reply_failed(r, "auth")) {
        c->cb.user(-1, NULL, c->arg);
    } else if (r->type != REDIS_REPLY_STRING || strcmp(r->str, c->key) != 0) {
        auth_forget(c->st, c->token);
        c->cb.user(0, NULL, c->arg);
    } else {
        auth_remember(c->st, c->token, c->from);
        c->cb.user(0, c->from, c->arg);
    }
    call_free(c);
}

/* The first step asks every shard at once for the token's digest: only
 * the token is known, not the user and so not its shard. The first shard
 * that holds it goes on to the second step (the others' answers are then
 * only counted); when none does, the answer waits for every shard. */
struct auth_fan {
    struct call *c; /* until `done`: then the second step owns it */
    int pending;    /* questions without an answer yet */
    bool down;      /* a shard could not answer */
    bool done;
};

/* One shard answered (or could not be asked). */
static void auth_account(struct auth_fan *f)
{
    f->pending--;
    if (!f->done && f->pending == 0) {
        f->done = true;
        if (f->down) {
            /* the token may be on the shard that did not answer */
            f->c->cb.user(-1, NULL, f->c->arg);
        } else {
            auth_forget(f->c->st, f->c->token);
            f->c->cb.user(0, NULL, f->c->arg);
        }
        call_free(f->c);
    }
    if (f->pending == 0)
        free(f);
}

static void on_auth(redisReply *reply, void *priv)
{
    struct auth_fan *f = priv;
    redisReply *r = reply;
    struct call *c = f->c;
    char k[KEYS_MAX];
    const char *argv[3] = {"HGET", k, "token_sha256"};

    if (f->done) {
        /* another shard had it */
    } else if (reply_failed(r, "auth")) {
        f->down = true;
    } else if (r->type == REDIS_REPLY_STRING &&
               names_user_valid(r->str, r->len)) {
        f->done = true;
        strcpy(c->from, r->str);
        keys_user(k, c->from);
        if (send_argv(user_x(c->st, c->from), on_auth_user, c, 3, argv, NULL) !=
            0) {
            c->cb.user(-1, NULL, c->arg);
            call_free(c);
        }
    }
    auth_account(f);
}

int store_auth(struct store *st, const char *token, store_user_cb cb, void *arg)
{
    struct auth_entry key, *e;
    void *node;
    struct call *c;
    struct auth_fan *f;
    char k[KEYS_MAX];
    const char *argv[2] = {"GET", k};
    int n = st->n;

    if (!auth_token_wellformed(token, strlen(token))) {
        cb(0, NULL, arg);
        return 0;
    }
    strcpy(key.token, token);
    if ((node = tfind(&key, &st->auth_cache, auth_cmp)) != NULL) {
        e = *(struct auth_entry **)node;
        if (mono_ms() - e->checked_ms < st->cfg->token_cache_ttl * 1000LL) {
            cb(0, e->user, arg);
            return 0;
        }
    }
    c = call_new(st, arg);
    c->cb.user = cb;
    strcpy(c->token, token);
    auth_hash(token, strlen(token), c->key);
    keys_token(k, c->key);
    f = xcalloc(1, sizeof(*f));
    f->c = c;
    f->pending = n;
    /* a synchronous executor answers within send: `f` may be gone after
     * the last question, so the loop reads only locals */
    for (int i = 0; i < n; i++) {
        if (f->done) {
            /* found already (synchronously): the rest are not asked */
            auth_account(f);
        } else if (st->x[i]->send(st->x[i], on_auth, f, 2, argv, NULL) != 0) {
            f->down = true;
            auth_account(f);
        }
    }
    return 0;
}

static void on_register(redisReply *reply, void *priv)
{
    struct call *c = priv;
    redisReply *r = reply;

    if (r != NULL && r->type == REDIS_REPLY_ERROR &&
        strncmp(r->str, "NOSCRIPT", 8) == 0 && c->argv[0][4] == 'S') {
        c->argv[0] = "EVAL";
        c->argv[1] = keys_register_script.body;
        c->lens[0] = 4;
        c->lens[1] = strlen(c->argv[1]);
        if (send_argv(user_x(c->st, c->room), on_register, c, c->argc, c->argv,
                      c->lens) == 0)
            return;
        r = NULL;
    }
    if (reply_failed(r, "register") || r->type != REDIS_REPLY_INTEGER)
        c->cb.reg(-1, false, c->arg);
    else
        c->cb.reg(0, r->integer == 1, c->arg);
    call_free(c);
}

int store_register(struct store *st, const char *name, const char *token,
                   store_register_cb cb, void *arg)
{
    struct call *c = call_new(st, arg);
    char *hash = c->key, *created = c->created;
    char *ukey = c->bufs, *tkey = c->bufs + KEYS_MAX;

    c->cb.reg = cb;
    strcpy(c->room, name); /* the name lives as long as the call */
    auth_hash(token, strlen(token), hash);
    snprintf(created, sizeof(c->created), "%lld", (long long)event_now_ms());
    keys_user(ukey, name);
    keys_token(tkey, hash);
    c->argc = 8;
    c->argv[0] = "EVALSHA";
    c->argv[1] = keys_register_script.sha;
    c->argv[2] = "2";
    c->argv[3] = ukey;
    c->argv[4] = tkey;
    c->argv[5] = hash;
    c->argv[6] = created;
    c->argv[7] = c->room;
    for (int i = 0; i < c->argc; i++)
        c->lens[i] = strlen(c->argv[i]);
    if (send_argv(user_x(st, name), on_register, c, c->argc, c->argv,
                  c->lens) != 0) {
        call_free(c);
        return -1;
    }
    return 0;
}

/* The rooms of every shard, gathered in turn, then merged. */
struct rooms_call {
    struct store *st;
    store_rooms_cb cb;
    void *arg;
    int want;
    int shard;
    struct keys_rooms k;
    struct store_room *rooms;
    size_t n, cap;
};

static int room_cmp(const void *a, const void *b)
{
    const struct store_room *x = a, *y = b;

    /* newest first, then by name descending: ct:rooms' ZREVRANGEBYSCORE */
    if (x->last_ts != y->last_ts)
        return x->last_ts > y->last_ts ? -1 : 1;
    return -strcmp(x->name, y->name);
}

size_t store_rooms_merge(struct store_room *rooms, size_t n, size_t want)
{
    /* no rooms yet: `rooms` is NULL, which qsort may not be given */
    if (n > 1)
        qsort(rooms, n, sizeof(*rooms), room_cmp);
    return n < want ? n : want;
}

static void rooms_end(struct rooms_call *c, int status)
{
    if (status != 0) {
        c->cb(-1, NULL, NULL, 0, c->arg);
    } else {
        size_t n = store_rooms_merge(c->rooms, c->n, (size_t)c->want);
        const char **names = xcalloc(n + 1, sizeof(*names));
        long long *ts = xcalloc(n + 1, sizeof(*ts));

        for (size_t i = 0; i < n; i++) {
            names[i] = c->rooms[i].name;
            ts[i] = c->rooms[i].last_ts;
        }
        c->cb(0, names, ts, n, c->arg);
        free(names);
        free(ts);
    }
    free(c->rooms);
    free(c);
}

static void on_rooms(redisReply *reply, void *priv);

/* Asks the next shard, or answers when every one did. */
static void rooms_next(struct rooms_call *c)
{
    struct rexec *x;

    if (c->shard == c->st->n) {
        rooms_end(c, 0);
        return;
    }
    x = c->st->x[c->shard];
    if (x->send(x, on_rooms, c, KEYS_ROOMS_ARGC, c->k.argv, NULL) != 0)
        rooms_end(c, -1);
}

static void on_rooms(redisReply *reply, void *priv)
{
    struct rooms_call *c = priv;
    redisReply *r = reply;

    if (reply_failed(r, "rooms") || r->type != REDIS_REPLY_ARRAY) {
        rooms_end(c, -1);
        return;
    }
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        struct store_room *e;

        if (r->element[i]->len > NAME_ROOM_MAX)
            continue;
        if (c->n == c->cap) {
            c->cap = c->cap ? 2 * c->cap : 64;
            c->rooms = xrealloc(c->rooms, c->cap * sizeof(*c->rooms));
        }
        e = &c->rooms[c->n++];
        strcpy(e->name, r->element[i]->str);
        e->last_ts = strtoll(r->element[i + 1]->str, NULL, 10);
    }
    c->shard++;
    rooms_next(c);
}

int store_rooms(struct store *st, int n, long long after_ts,
                const char *after_name, store_rooms_cb cb, void *arg)
{
    struct rooms_call *c = xcalloc(1, sizeof(*c));
    struct rexec *x = st->x[0];

    c->st = st;
    c->cb = cb;
    c->arg = arg;
    c->want = n;
    /* each shard's first n after the cursor: the merged first n are among
     * them */
    keys_rooms_init(&c->k, n, after_ts, after_name);
    if (x->send(x, on_rooms, c, KEYS_ROOMS_ARGC, c->k.argv, NULL) != 0) {
        free(c);
        return -1;
    }
    return 0;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void on_online(redisReply *reply, void *priv)
{
    struct call *c = priv;
    redisReply *r = reply;

    if (reply_failed(r, "presence") || r->type != REDIS_REPLY_ARRAY) {
        c->cb.online(-1, NULL, 0, c->arg);
    } else {
        const char **names = xcalloc(r->elements + 1, sizeof(*names));
        size_t n = 0;

        /* "user holder" (presence_member), or a bare user from before */
        for (size_t i = 0; i < r->elements; i++) {
            char *sp = strchr(r->element[i]->str, ' ');

            if (sp != NULL)
                *sp = '\0';
            names[i] = r->element[i]->str;
        }
        /* by name, as crosstalk-fcgi and presence events list them; a
         * user held by several processes once */
        qsort(names, r->elements, sizeof(*names), name_cmp);
        for (size_t i = 0; i < r->elements; i++)
            if (n == 0 || strcmp(names[n - 1], names[i]) != 0)
                names[n++] = names[i];
        c->cb.online(0, names, n, c->arg);
        free(names);
    }
    call_free(c);
}

int store_online(struct store *st, const char *room, store_online_cb cb,
                 void *arg)
{
    struct call *c = call_new(st, arg);
    char key[KEYS_MAX], now[24];
    const char *argv[4];

    c->cb.online = cb;
    snprintf(now, sizeof(now), "%lld", (long long)event_now_ms());
    argv[0] = "ZRANGEBYSCORE";
    argv[1] = keys_presence(key, room);
    argv[2] = now;
    argv[3] = "+inf";
    if (send_argv(room_x(st, room), on_online, c, 4, argv, NULL) != 0) {
        call_free(c);
        return -1;
    }
    return 0;
}

struct added {
    store_added_cb cb;
    void *arg;
};

static void on_added(redisReply *reply, void *priv)
{
    struct added *a = priv;
    redisReply *r = reply;

    if (r == NULL || r->type != REDIS_REPLY_INTEGER)
        a->cb(-1, false, a->arg);
    else
        a->cb(0, r->integer > 0, a->arg);
    free(a);
}

static int send_added(struct rexec *x, store_added_cb cb, void *arg, int argc,
                      const char **argv)
{
    struct added *a = xmalloc(sizeof(*a));

    a->cb = cb;
    a->arg = arg;
    if (x->send(x, on_added, a, argc, argv, NULL) != 0) {
        free(a);
        return -1;
    }
    return 0;
}

/* One round trip, whatever the executor: the expired members go first, so
 * that ZADD's answer tells whose member is new, and whether any went (returned:
 * 1 for the one, 2 for the other, 3 for both; 0 when the list is as it was,
 * which is no news to announce); then the key is made to go when its last
 * member expires, so a room read once and never again leaves nothing behind. NX
 * gives a key without an expiry one (a new key, or one from before this rule),
 * GT only ever moves it later, so a member written with a later expiry (another
 * process, another presence_ttl) is never cut short. KEYS = {presence}, ARGV =
 * {now, expiry, member}. Sent whole with EVAL: it is short, and has no NOSCRIPT
 * to recover from. */
static const char presence_add_lua[] =
    "local gone = redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1]) "
    "local n = redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3]) "
    "redis.call('PEXPIREAT', KEYS[1], ARGV[2], 'NX') "
    "redis.call('PEXPIREAT', KEYS[1], ARGV[2], 'GT') "
    "if gone > 0 then n = n + 2 end "
    "return n";

/* The member of a user's presence written by `holder`: "user holder".
 * Each process writes and removes its own, so a user held on two daemons
 * stays online while either holds them; the list is of the users. */
static void presence_member(char *buf, const char *user, const char *holder)
{
    snprintf(buf, STORE_MEMBER_MAX, "%s %s", user, holder);
}

int store_presence_add(struct store *st, const char *room, const char *user,
                       const char *holder, int64_t expiry_ms, store_added_cb cb,
                       void *arg)
{
    struct rexec *x = room_x(st, room);
    char key[KEYS_MAX], now[24], expiry[24], member[STORE_MEMBER_MAX];
    const char *argv[] = {"EVAL", presence_add_lua, "1",   key,
                          now,    expiry,           member};

    snprintf(now, sizeof(now), "%lld", (long long)event_now_ms());
    snprintf(expiry, sizeof(expiry), "%lld", (long long)expiry_ms);
    keys_presence(key, room);
    presence_member(member, user, holder);
    return send_added(x, cb, arg, 7, argv);
}

int store_presence_expire(struct store *st, const char *room, store_added_cb cb,
                          void *arg)
{
    char key[KEYS_MAX], now[24];
    const char *argv[] = {"ZREMRANGEBYSCORE", key, "-inf", now};

    snprintf(now, sizeof(now), "%lld", (long long)event_now_ms());
    keys_presence(key, room);
    return send_added(room_x(st, room), cb, arg, 4, argv);
}

void store_presence_remove(struct store *st, const char *room, const char *user,
                           const char *holder)
{
    struct rexec *x = room_x(st, room);
    char key[KEYS_MAX], member[STORE_MEMBER_MAX];
    const char *argv[3];

    presence_member(member, user, holder);
    argv[0] = "ZREM";
    argv[1] = keys_presence(key, room);
    argv[2] = member;
    x->send(x, NULL, NULL, 3, argv, NULL);
}

static void on_published(redisReply *reply, void *priv)
{
    struct call *c = priv;

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
        log_warn("redis: publish: %s", reply->str);
    c->cb.status(reply_fault(reply), c->arg);
    call_free(c);
}

int store_publish(struct store *st, const struct chat_event *ev,
                  store_status_cb cb, void *arg)
{
    struct rexec *x = room_x(st, ev->room);
    struct call *c = cb != NULL ? call_new(st, arg) : NULL;
    char chan[KEYS_MAX];
    size_t len;
    char *json;
    const char *argv[3];
    size_t lens[3];
    int rc;

    json = event_to_json(ev, &len);
    argv[0] = "PUBLISH";
    argv[1] = keys_bus(chan, ev->room);
    argv[2] = json;
    lens[0] = 7;
    lens[1] = strlen(chan);
    lens[2] = len;
    if (c != NULL)
        c->cb.status = cb;
    rc = x->send(x, c != NULL ? on_published : NULL, c, 3, argv, lens);
    if (rc != 0)
        call_free(c);
    free(json);
    return rc;
}

/* The probe of every shard, all at once; each shard's fault is kept and
 * the answer comes with the last probe's. */
struct health_call {
    store_health_cb cb;
    void *arg;
    int n, pending;
    int *faults;
    struct health_probe {
        struct health_call *h;
        int shard;
    } * probes;
};

static void health_account(struct health_call *h)
{
    if (--h->pending > 0)
        return;
    h->cb(h->faults, h->n, h->arg);
    free(h->faults);
    free(h->probes);
    free(h);
}

static void on_health(redisReply *reply, void *priv)
{
    struct health_probe *p = priv;
    redisReply *r = reply;

    if (r != NULL && r->type == REDIS_REPLY_ERROR)
        log_warn("redis: health probe of shard %d: %s", p->shard, r->str);
    p->h->faults[p->shard] = reply_fault(r);
    health_account(p->h);
}

void store_health(struct store *st, store_health_cb cb, void *arg)
{
    const char *argv[5] = {"SET", KEYS_HEALTH, "1", "PX", "10000"};
    struct health_call *h = xcalloc(1, sizeof(*h));
    int n = st->n;

    h->cb = cb;
    h->arg = arg;
    h->n = h->pending = n;
    h->faults = xcalloc((size_t)n, sizeof(*h->faults));
    h->probes = xcalloc((size_t)n, sizeof(*h->probes));
    /* `h` goes with the last answer, maybe within a send: only locals
     * after it */
    for (int i = 0; i < n; i++) {
        struct health_probe *p = &h->probes[i];

        p->h = h;
        p->shard = i;
        if (st->x[i]->send(st->x[i], on_health, p, 5, argv, NULL) != 0) {
            h->faults[i] = API_FAULT_DOWN;
            health_account(h);
        }
    }
}

/* --- the counters records of every process --- */

void store_stats_write(struct store *st, const char *id, const char *json,
                       size_t len, int ttl_ms)
{
    char key[STATREC_KEY_MAX], px[24];
    const char *set[5] = {"SET", statrec_key(key, id), json, "PX", px};
    size_t lens[5];
    const char *sadd[3] = {"SADD", STATREC_INDEX, id};

    snprintf(px, sizeof(px), "%d", ttl_ms);
    for (int i = 0; i < 5; i++)
        lens[i] = strlen(set[i]);
    lens[2] = len;
    /* the records of every process are on the first shard */
    if (st->x[0]->queue(st->x[0], 5, set, lens) == 0)
        st->x[0]->send(st->x[0], NULL, NULL, 3, sadd, NULL);
}

struct strings_call {
    store_strings_cb cb;
    void *arg;
};

static void on_stats_read(redisReply *reply, void *priv)
{
    struct strings_call *c = priv;
    redisReply *r = reply;

    if (reply_failed(r, "stats") || r->type != REDIS_REPLY_ARRAY) {
        c->cb(-1, NULL, NULL, 0, c->arg);
    } else {
        const char **v = xcalloc(r->elements + 1, sizeof(*v));
        size_t *lens = xcalloc(r->elements + 1, sizeof(*lens));
        size_t n = 0;

        for (size_t i = 0; i < r->elements; i++) {
            if (r->element[i]->type != REDIS_REPLY_STRING)
                continue;
            v[n] = r->element[i]->str;
            lens[n++] = r->element[i]->len;
        }
        c->cb(0, v, lens, n, c->arg);
        free(v);
        free(lens);
    }
    free(c);
}

int store_stats_read(struct store *st, store_strings_cb cb, void *arg)
{
    struct strings_call *c = xcalloc(1, sizeof(*c));
    const char *argv[] = {"EVAL", STATREC_READ_SCRIPT, "1", STATREC_INDEX,
                          STATREC_PREFIX};

    c->cb = cb;
    c->arg = arg;
    if (st->x[0]->send(st->x[0], on_stats_read, c, 5, argv, NULL) != 0) {
        free(c);
        return -1;
    }
    return 0;
}
