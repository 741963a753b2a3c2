/* main.c - crosstalk-backup: run by cron, copies new chat messages from
 * Redis into MongoDB; also trims, restores and verifies */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup.h"
#include "config.h"
#include "keys.h"
#include "lock.h"
#include "log.h"
#include "mongo_archive.h"
#include "names.h"
#include "redisurl.h"
#include "reshard.h"
#include "rexec_sync.h"
#include "shard.h"
#include "xmalloc.h"

#define PROG "crosstalk-backup"

/* Exit statuses (README.md "Backups"). */
#define EXIT_OK 0
#define EXIT_FAIL 1
#define EXIT_USAGE 2
#define EXIT_DIFFERENT 3

#define LOCK_TTL_DEFAULT 60

enum mode {
    MODE_BACKUP,
    MODE_RESTORE,
    MODE_VERIFY,
    MODE_MIGRATE,   /* --migrate-keys */
    MODE_RESHARD,   /* --reshard OLD_URLS [--verify] [--dry-run] */
    MODE_PLACEMENT, /* --placement ROOMS --shards N */
};

struct options {
    enum mode mode;
    long long retain; /* -1: do not trim */
    const char *room; /* --restore --room */
    int lock_ttl;     /* seconds */
    bool mode_given;
    bool quiet;          /* --quiet: nothing unless something fails */
    bool progress;       /* --progress: the progress line even without a tty */
    const char *reshard; /* --reshard OLD_URLS */
    bool dry_run;        /* --dry-run */
    const char *placement; /* --placement ROOM[,ROOM...] */
    long long shards;      /* --shards N */
    bool verify_placement; /* --reshard --verify */
};

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void usage(FILE *out)
{
    /* clang-format off */
    fprintf(out,
"Usage: " PROG " [--retain N] [options]\n"
"       " PROG " --restore [--room ROOM] [options]\n"
"       " PROG " --verify [options]\n"
"       " PROG " --migrate-keys [options]\n"
"       " PROG " --reshard OLD_URLS [--dry-run | --verify] [options]\n"
"       " PROG " --placement ROOM[,ROOM...] --shards N\n"
"\n"
"Copies the chat messages Redis holds (redis_url) into MongoDB (mongo_uri),\n"
"each room from its checkpoint ct:backup:{room}, in unordered bulk inserts\n"
"of up to backup_batch messages (several rooms may share one), moving the\n"
"checkpoints only once MongoDB acknowledged the insert (write concern\n"
"mongo_write_concern). The unique {room, id} index refuses a message that\n"
"is already archived, which counts as done: running it again, or after a\n"
"crash at any moment, never duplicates and never loses a message. One run\n"
"at a time: a second one finds the lock " KEYS_BACKUP_LOCK " and exits 0\n"
"saying so.\n"
"\n"
"  --retain N      after a successful backup, trim each room's stream to its\n"
"                  newest N messages, never one not yet in MongoDB\n"
"  --restore       rebuild the Redis streams (and ct:rooms) from MongoDB with\n"
"                  the original ids (only messages newer than a stream's\n"
"                  last id can be added: restore into an empty Redis, with\n"
"                  crosstalkd and crosstalk-fcgi stopped)\n"
"  --room ROOM     with --restore: only this room\n"
"  --verify        per room, compare what Redis and MongoDB must both hold\n"
"                  (the stream from its first entry up to the checkpoint)\n"
"                  message by message: id, sender, text and time\n"
"  --migrate-keys  rename the keys of a deployment older than the hash-tagged\n"
"                  names (ct:room:R:log to ct:room:{R}:log; also ct:presence,\n"
"                  ct:backup and ct:idem) on every server of redis_url, for\n"
"                  every room of ct:rooms; with crosstalkd and crosstalk-fcgi\n"
"                  stopped; safe to run again (already renamed keys are\n"
"                  left alone, a key under both names is reported)\n"
"  --reshard OLD_URLS  with writers stopped, move every room (stream with its\n"
"                  ids, presence, checkpoint, idempotency keys, ct:rooms\n"
"                  entry) and user (with its tokens) whose shard differs in\n"
"                  redis_url (the new comma-separated list) to it, from any\n"
"                  server of OLD_URLS or redis_url: DUMP, RESTORE there, DEL\n"
"                  here, so a run killed at any point is finished by running\n"
"                  it again; prints how many rooms moved (adding an Nth shard\n"
"                  moves about 1/N of them)\n"
"  --dry-run       with --reshard: list the rooms that would move, write\n"
"                  nothing\n"
"  --reshard OLD_URLS --verify  check that every room's and user's keys are\n"
"                  on its shard of redis_url and on no other server of\n"
"                  either list (exit 3 if not); writes nothing\n"
"  --placement ROOM[,ROOM...] --shards N  print each room's shard 0..N-1\n"
"                  (shard.h's placement; reads nothing, connects nowhere)\n"
"  --lock-ttl S    seconds the lock outlives a run that died (default %d)\n"
"  --quiet         print nothing unless something fails (for cron)\n"
"  --progress      the progress line even when stderr is not a terminal\n"
"  --config FILE   configuration file; any key below also as --key=value\n"
"                  (default %s)\n"
"  -h, --help      this text\n"
"\n"
"Output: on a terminal, a progress line on stderr (rooms done/total,\n"
"messages, messages/s), rewritten in place; then one summary line on\n"
"stdout (rooms, messages, ms), which cron's logger keeps. Errors go to the\n"
"log (stderr by default) whatever the flags. Without a terminal (cron)\n"
"there is no progress line; --quiet also drops the summary line and info\n"
"lines of a run that succeeds, so cron only mails or logs failures.\n"
"\n"
"Exit status: 0 done, or another run holds the lock (backup only);\n"
"1 failure (Redis or MongoDB unreachable or refusing; the lock held by\n"
"another run for --restore/--verify/--migrate-keys/--reshard; a key\n"
"--migrate-keys or --reshard found under both names or on both servers,\n"
"different); 2 usage or configuration error; 3 --verify found a room that\n"
"differs (or, with --reshard, a key off its shard).\n"
"\n"
"Test hooks: CT_BACKUP_BATCH_DELAY_MS=N sleeps N ms after MongoDB\n"
"acknowledged each batch, before the checkpoints move;\n"
"CT_RESHARD_DELAY_MS=N sleeps N ms after each key --reshard copied,\n"
"before it deletes it from its old server.\n"
"\n"
"Configuration keys (file, then CROSSTALK_<KEY>, then flags):\n",
            LOCK_TTL_DEFAULT, config_default_file);
    /* clang-format on */
    config_usage(out, "redis_url,redis_timeout_ms,mongo_uri,"
                      "mongo_write_concern,backup_batch,log_level,log_file");
}

/* Parses a whole decimal number in [min, max]. */
static int parse_num(const char *s, long long min, long long max,
                     long long *out)
{
    char *end;
    long long v;

    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* The value of `--name=V` or `--name V` at argv[*i]; NULL if argv[*i] is
 * not that flag. *missing is set when the flag has no value. */
static const char *flag_value(int argc, char **argv, int *i, const char *name,
                              bool *missing)
{
    size_t len = strlen(name);
    const char *a = argv[*i];

    if (strncmp(a, name, len) != 0)
        return NULL;
    if (a[len] == '=')
        return a + len + 1;
    if (a[len] != '\0')
        return NULL;
    /* "--room --retain=5": the next flag is not the value */
    if (*i + 1 >= argc || strncmp(argv[*i + 1], "--", 2) == 0) {
        *missing = true;
        return NULL;
    }
    return argv[++*i];
}

static int parse_options(int argc, char **argv, struct options *o)
{
    long long v;
    bool missing = false;
    const char *val;
    int i;

    o->mode = MODE_BACKUP;
    o->retain = -1;
    o->room = NULL;
    o->lock_ttl = LOCK_TTL_DEFAULT;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (strcmp(a, "--migrate-keys") == 0) {
            if (o->mode_given) {
                fprintf(stderr, PROG ": --migrate-keys is a run of its own\n");
                return -1;
            }
            o->mode = MODE_MIGRATE;
            o->mode_given = true;
        } else if (strcmp(a, "--dry-run") == 0) {
            o->dry_run = true;
        } else if ((val = flag_value(argc, argv, &i, "--reshard", &missing)) !=
                   NULL) {
            o->reshard = val;
        } else if ((val = flag_value(argc, argv, &i, "--placement",
                                     &missing)) != NULL) {
            o->placement = val;
        } else if ((val = flag_value(argc, argv, &i, "--shards", &missing)) !=
                   NULL) {
            if (parse_num(val, 1, REDISURL_LIST_MAX, &v) < 0) {
                fprintf(stderr, PROG ": --shards wants 1..%d, got '%s'\n",
                        REDISURL_LIST_MAX, val);
                return -1;
            }
            o->shards = v;
        } else if (strcmp(a, "--quiet") == 0) {
            o->quiet = true;
        } else if (strcmp(a, "--progress") == 0) {
            o->progress = true;
        } else if (strcmp(a, "--restore") == 0 || strcmp(a, "--verify") == 0) {
            enum mode m = a[2] == 'r' ? MODE_RESTORE : MODE_VERIFY;

            if (o->mode_given && o->mode != m) {
                fprintf(stderr, PROG ": --restore, --verify and "
                                     "--migrate-keys are separate runs\n");
                return -1;
            }
            o->mode = m;
            o->mode_given = true;
        } else if ((val = flag_value(argc, argv, &i, "--retain", &missing)) !=
                   NULL) {
            if (parse_num(val, 0, 1LL << 40, &v) < 0) {
                fprintf(stderr,
                        PROG ": --retain wants a number of messages "
                             "(0 or more), got '%s'\n",
                        val);
                return -1;
            }
            o->retain = v;
        } else if ((val = flag_value(argc, argv, &i, "--room", &missing)) !=
                   NULL) {
            if (!names_room_valid(val, strlen(val))) {
                fprintf(stderr,
                        PROG ": --room '%s' is not a room name "
                             "([a-z0-9_-]{1,%d})\n",
                        val, NAME_ROOM_MAX);
                return -1;
            }
            o->room = val;
        } else if ((val = flag_value(argc, argv, &i, "--lock-ttl", &missing)) !=
                   NULL) {
            if (parse_num(val, 1, 86400, &v) < 0) {
                fprintf(stderr,
                        PROG ": --lock-ttl wants seconds in "
                             "1..86400, got '%s'\n",
                        val);
                return -1;
            }
            o->lock_ttl = (int)v;
        } else if (missing) {
            fprintf(stderr, PROG ": %s needs a value\n", a);
            return -1;
        } else {
            fprintf(stderr, PROG ": unknown argument '%s' (see --help)\n", a);
            return -1;
        }
    }
    if (o->reshard != NULL) {
        if (o->mode_given && o->mode != MODE_VERIFY) {
            fprintf(stderr, PROG ": --reshard goes alone, with --dry-run or "
                                 "with --verify\n");
            return -1;
        }
        if (o->dry_run && o->mode == MODE_VERIFY) {
            fprintf(stderr, PROG ": --dry-run and --verify contradict\n");
            return -1;
        }
        o->verify_placement = o->mode == MODE_VERIFY;
        o->mode = MODE_RESHARD;
    } else if (o->dry_run) {
        fprintf(stderr, PROG ": --dry-run goes with --reshard\n");
        return -1;
    }
    if ((o->placement != NULL) != (o->shards > 0) ||
        (o->placement != NULL && (o->mode_given || o->reshard != NULL))) {
        fprintf(stderr, PROG ": --placement ROOMS --shards N go together and "
                             "alone\n");
        return -1;
    }
    if (o->placement != NULL)
        o->mode = MODE_PLACEMENT;
    if (o->room != NULL && o->mode != MODE_RESTORE) {
        fprintf(stderr, PROG ": --room goes with --restore\n");
        return -1;
    }
    if (o->quiet && o->progress) {
        fprintf(stderr, PROG ": --quiet and --progress contradict\n");
        return -1;
    }
    if (o->retain >= 0 && o->mode != MODE_BACKUP) {
        fprintf(stderr, PROG ": --retain goes with a backup run, not with "
                             "--restore or --verify\n");
        return -1;
    }
    return 0;
}

static const char *const mode_names[] = {"backup", "restore", "verify"};

/* --placement: each room's shard, one line each. Every name is checked
 * before any is printed: a bad one prints nothing. */
static int print_placement(const struct options *o)
{
    char room[NAME_ROOM_MAX + 1];
    const char *p, *end;
    size_t len;

    for (int pass = 0; pass < 2; pass++) {
        for (p = o->placement; *p != '\0'; p = *end == ',' ? end + 1 : end) {
            end = strchr(p, ',');
            if (end == NULL)
                end = p + strlen(p);
            len = (size_t)(end - p);
            if (pass == 0 && !names_room_valid(p, len)) {
                fprintf(stderr,
                        PROG ": --placement: '%.*s' is not a room name\n",
                        (int)len, p);
                return EXIT_USAGE;
            }
            if (pass == 1) {
                memcpy(room, p, len);
                room[len] = '\0';
                printf("%s %d\n", room, shard_of_room(room, (int)o->shards));
            }
        }
    }
    return EXIT_OK;
}

static void summary(const struct options *o, const struct backup *b, bool ok,
                    int64_t ms)
{
    const char *state = ok ? "ok" : "FAILED";

    switch (o->mode) {
    case MODE_BACKUP:
        printf(PROG ": backup %s: %zu rooms, %" PRIu64
                    " messages copied, %" PRIu64 " trimmed, %" PRId64 " ms\n",
               state, b->rooms, b->copied, b->trimmed, ms);
        break;
    case MODE_RESTORE:
        printf(PROG ": restore %s: %zu rooms, %" PRIu64
                    " messages restored, %" PRIu64
                    " older ones only in MongoDB, %" PRId64 " ms\n",
               state, b->rooms, b->restored, b->skipped, ms);
        break;
    case MODE_VERIFY:
        printf(PROG ": verify %s: %zu rooms, %" PRIu64 " different, %" PRId64
                    " ms\n",
               ok ? (b->differences > 0 ? "DIFFERENT" : "ok") : "FAILED",
               b->rooms, b->differences, ms);
        break;
    default: /* the key tools return before */
        break;
    }
    fflush(stdout);
}

static void install_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* --migrate-keys and --reshard: Redis only. */
static int run_keys_tool(const struct options *o, const struct config *cfg)
{
    struct reshard_opts ro;

    memset(&ro, 0, sizeof(ro));
    ro.old_urls = o->reshard;
    ro.new_urls = cfg->redis_url;
    ro.timeout_ms = cfg->redis_timeout_ms;
    ro.lock_ttl_ms = o->lock_ttl * 1000;
    ro.dry_run = o->dry_run;
    ro.verify = o->verify_placement;
    ro.tty = isatty(STDERR_FILENO) == 1;
    ro.progress = !o->quiet && (o->progress || ro.tty);
    ro.stop = &stop_flag;
    install_signals();
    return o->mode == MODE_MIGRATE ? migrate_keys(&ro) : reshard_run(&ro);
}

int main(int argc, char **argv)
{
    struct config cfg;
    struct options opt;
    struct backup b;
    struct lock *lock = NULL;        /* one per shard */
    struct rexec_sync **conn = NULL; /* one per shard */
    redisContext **redis = NULL;     /* conn's */
    struct rexec **rx = NULL;
    int shards = 0, nlocked = 0;
    struct mongo_archive *archive = NULL;
    char err[512];
    const char *delay;
    long long left_ms, v;
    int64_t t0 = lock_now_ms();
    int status = EXIT_FAIL, i, r;
    bool ok = false;

    log_set_program(PROG);
    memset(&opt, 0, sizeof(opt));
    memset(&b, 0, sizeof(b));
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return EXIT_OK;
        }
    }
    memset(&cfg, 0, sizeof(cfg));
    argc = config_load(&cfg, argc, argv, err, sizeof(err));
    if (argc < 0) {
        fprintf(stderr, PROG ": %s\n", err);
        config_free(&cfg);
        return EXIT_USAGE;
    }
    if (parse_options(argc, argv, &opt) < 0) {
        status = EXIT_USAGE;
        goto out;
    }
    /* --quiet keeps warnings and errors only. */
    if (log_open(opt.quiet && (strcmp(cfg.log_level, "debug") == 0 ||
                               strcmp(cfg.log_level, "info") == 0)
                     ? "warn"
                     : cfg.log_level,
                 cfg.log_file) < 0) {
        fprintf(stderr,
                PROG ": cannot open the log (log_level '%s', "
                     "log_file '%s')\n",
                cfg.log_level, cfg.log_file);
        status = EXIT_USAGE;
        goto out;
    }
    if (opt.mode == MODE_PLACEMENT) {
        status = print_placement(&opt);
        goto out;
    }
    if (opt.mode == MODE_MIGRATE || opt.mode == MODE_RESHARD) {
        status = run_keys_tool(&opt, &cfg);
        goto out;
    }
    delay = getenv("CT_BACKUP_BATCH_DELAY_MS");
    if (delay != NULL && *delay != '\0') {
        if (parse_num(delay, 0, 600000, &v) < 0) {
            fprintf(stderr,
                    PROG ": CT_BACKUP_BATCH_DELAY_MS wants ms in "
                         "0..600000, got '%s'\n",
                    delay);
            status = EXIT_USAGE;
            goto out;
        }
        b.delay_ms = (int)v;
    }
    archive = mongo_archive_open(cfg.mongo_uri);
    if (archive == NULL) {
        status = EXIT_USAGE;
        goto out;
    }
    if (mongo_archive_set_write_concern(archive, cfg.mongo_write_concern) < 0) {
        fprintf(stderr,
                PROG ": mongo_write_concern '%s' is neither "
                     "'majority' nor a number of nodes >= 1\n",
                cfg.mongo_write_concern);
        status = EXIT_USAGE;
        goto out;
    }
    install_signals();

    {
        char why[512];

        shards = rexec_sync_new_list(cfg.redis_url, cfg.redis_timeout_ms, &conn,
                                     &rx, why, sizeof(why));
        if (shards < 0) {
            log_error("%s", why);
            shards = 0;
            goto done;
        }
        redis = xcalloc((size_t)shards, sizeof(*redis));
        lock = xcalloc((size_t)shards, sizeof(*lock));
        /* the reason it cannot connect is logged there */
        for (i = 0; i < shards; i++)
            if ((redis[i] = rexec_sync_context(conn[i])) == NULL)
                goto done;
    }
    /* The lock on every shard, in redis_url's order (two runs meet on
     * shard 0): each shard's checkpoint script checks its own copy. */
    r = 1;
    while (r == 1 && nlocked < shards) {
        r = lock_acquire(redis[nlocked], &lock[nlocked], KEYS_BACKUP_LOCK,
                         opt.lock_ttl * 1000, &left_ms);
        if (r == 1)
            nlocked++;
    }
    if (r < 0)
        goto done;
    if (r == 0) {
        if (opt.quiet && opt.mode == MODE_BACKUP) {
            status = EXIT_OK;
            goto out;
        }
        printf(PROG ": another run is in progress (%s is held for %lld ms "
                    "more); %s\n",
               KEYS_BACKUP_LOCK, left_ms,
               opt.mode == MODE_BACKUP ? "leaving the work to it"
                                       : "try again later");
        fflush(stdout);
        status = opt.mode == MODE_BACKUP ? EXIT_OK : EXIT_FAIL;
        goto out;
    }
    b.redis = redis;
    b.shards = shards;
    b.archive = archive;
    b.lock = lock;
    b.batch = (size_t)cfg.backup_batch;
    b.stop = &stop_flag;
    b.what = mode_names[opt.mode];
    b.quiet = opt.quiet;
    b.progress_tty = isatty(STDERR_FILENO) == 1;
    b.progress = !opt.quiet && (opt.progress || b.progress_tty);
    b.started_ms = t0;
    switch (opt.mode) {
    case MODE_BACKUP:
        if (mongo_archive_prepare(archive) < 0 || backup_copy(&b) < 0)
            goto done;
        if (opt.retain >= 0 && backup_retain(&b, opt.retain) < 0)
            goto done;
        status = EXIT_OK;
        break;
    case MODE_RESTORE:
        if (backup_restore(&b, opt.room) < 0)
            goto done;
        status = EXIT_OK;
        break;
    case MODE_VERIFY:
        r = backup_verify(&b);
        if (r < 0)
            goto done;
        status = r > 0 ? EXIT_DIFFERENT : EXIT_OK;
        break;
    default: /* the key tools return before */
        break;
    }
    ok = true;

done:
    if (!ok)
        log_error("%s failed; %s", mode_names[opt.mode],
                  opt.mode == MODE_BACKUP
                      ? "checkpoints cover only what MongoDB acknowledged"
                      : "see the lines above");
    for (i = 0; i < nlocked; i++)
        lock_release(redis[i], &lock[i]);
    nlocked = 0;
    backup_progress(&b, true);
    if (!opt.quiet || status != EXIT_OK)
        summary(&opt, &b, ok, lock_now_ms() - t0);
out:
    for (i = 0; i < nlocked; i++)
        lock_release(redis[i], &lock[i]);
    rexec_sync_free_list(conn, shards);
    free(rx);
    free(redis);
    free(lock);
    mongo_archive_close(archive);
    config_free(&cfg);
    log_close();
    return status;
}
