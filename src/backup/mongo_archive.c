/* mongo_archive.c - the MongoDB archive of chat messages (the one mongoc user)
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <mongoc/mongoc.h>

#include "mongo_archive.h"
#include "log.h"
#include "names.h"
#include "streamid.h"
#include "xmalloc.h"

#define MONGO_ARCHIVE_DEFAULT_DB "crosstalk"
#define MONGO_ARCHIVE_COLLECTION "messages"
#define MONGO_ARCHIVE_TIMEOUT_MS 3000
/* How long a majority write may wait for the other nodes before it counts
 * as failed (and is retried by the next run). */
#define MONGO_ARCHIVE_WTIMEOUT_MS 30000

struct mongo_archive {
    mongoc_client_t *client;
    mongoc_collection_t *coll;
    mongoc_write_concern_t *wc;
};

static pthread_once_t mongo_archive_once = PTHREAD_ONCE_INIT;

/* The driver's messages go to our log, not straight to stderr. Its
 * warnings are about its own housekeeping (e.g. a server that does not know
 * endSessions): every failure that matters also comes back from the call as
 * an error, which the caller logs with context; so they are debug lines. */
static void mongo_archive_log_handler(mongoc_log_level_t level,
                                      const char *domain, const char *message,
                                      void *data)
{
    (void)data;
    switch (level) {
    case MONGOC_LOG_LEVEL_ERROR:
    case MONGOC_LOG_LEVEL_CRITICAL:
        log_error("mongoc %s: %s", domain, message);
        break;
    default:
        log_debug("mongoc %s: %s", domain, message);
        break;
    }
}

/* The driver makes a shared-memory file /dev/shm/mongoc-<pid> for its
 * performance counters in its init, and removes it only in mongoc_cleanup,
 * which a killed process never reaches. Left behind, such files pile up,
 * and a later process that gets the same pid finds one, falls back to
 * malloc and says so on stderr, which the cron entry passes to syslog even
 * under --quiet. Nothing here reads the counters (they are for the
 * driver's mongoc-stat tool), so the name is removed at once: the counters
 * stay mapped, and nothing is left to find. */
static void mongo_archive_forget_counters_file(void)
{
    char name[32];

    snprintf(name, sizeof name, "/mongoc-%ld", (long)getpid());
    shm_unlink(name); /* ENOENT when the driver used malloc: nothing to do */
}

/* Debian's driver runs its init as the library loads (its automatic init),
 * before this constructor, which every program linked with this file then
 * runs; a driver built without it makes the file in mongoc_init, below. */
__attribute__((constructor)) static void mongo_archive_at_load(void)
{
    mongo_archive_forget_counters_file();
}

static void mongo_archive_init(void)
{
    mongoc_init();
    mongo_archive_forget_counters_file();
    mongoc_log_set_handler(mongo_archive_log_handler, NULL);
}

struct mongo_archive *mongo_archive_open(const char *uri_string)
{
    struct mongo_archive *a = NULL;
    mongoc_uri_t *uri = NULL;
    bson_error_t error;
    const char *db;

    pthread_once(&mongo_archive_once, mongo_archive_init);
    uri = mongoc_uri_new_with_error(uri_string, &error);
    if (uri == NULL) {
        log_error("mongo_uri is not a MongoDB URI: %s", error.message);
        goto done;
    }
    if (mongoc_uri_get_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS,
                                       0) == 0)
        mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS,
                                       MONGO_ARCHIVE_TIMEOUT_MS);
    if (mongoc_uri_get_option_as_int32(uri, MONGOC_URI_CONNECTTIMEOUTMS, 0) ==
        0)
        mongoc_uri_set_option_as_int32(uri, MONGOC_URI_CONNECTTIMEOUTMS,
                                       MONGO_ARCHIVE_TIMEOUT_MS);
    if (mongoc_uri_get_appname(uri) == NULL)
        mongoc_uri_set_appname(uri, "crosstalk");

    a = xcalloc(1, sizeof(*a));
    a->client = mongoc_client_new_from_uri_with_error(uri, &error);
    if (a->client == NULL) {
        log_error("cannot create a MongoDB client: %s", error.message);
        mongo_archive_close(a);
        a = NULL;
        goto done;
    }
    mongoc_client_set_error_api(a->client, MONGOC_ERROR_API_VERSION_2);
    db = mongoc_uri_get_database(uri);
    if (db == NULL || *db == '\0')
        db = MONGO_ARCHIVE_DEFAULT_DB;
    a->coll =
        mongoc_client_get_collection(a->client, db, MONGO_ARCHIVE_COLLECTION);
    a->wc = mongoc_write_concern_new();
    mongoc_write_concern_set_wmajority(a->wc, MONGO_ARCHIVE_WTIMEOUT_MS);

done:
    mongoc_uri_destroy(uri);
    return a;
}

void mongo_archive_close(struct mongo_archive *a)
{
    if (a == NULL)
        return;
    mongoc_write_concern_destroy(a->wc);
    mongoc_collection_destroy(a->coll);
    mongoc_client_destroy(a->client);
    free(a);
}

int mongo_archive_set_write_concern(struct mongo_archive *a, const char *wc)
{
    char *end;
    long w;

    if (strcmp(wc, "majority") == 0) {
        mongoc_write_concern_set_wmajority(a->wc, MONGO_ARCHIVE_WTIMEOUT_MS);
        return 0;
    }
    if (*wc < '0' || *wc > '9')
        return -1;
    w = strtol(wc, &end, 10);
    if (*end != '\0' || w < 1 || w > INT32_MAX)
        return -1;
    mongoc_write_concern_set_w(a->wc, (int32_t)w);
    mongoc_write_concern_set_wtimeout_int64(a->wc, MONGO_ARCHIVE_WTIMEOUT_MS);
    return 0;
}

/* The collection's indexes: {room, id} unique (a message is stored once),
 * {room, ms, seq} for pages in id order. */
static const struct {
    const char *name;
    const char *f1, *f2, *f3;
    bool unique;
} mongo_archive_indexes[] = {
    {"room_1_id_1", "room", "id", NULL, true},
    {"room_1_ms_1_seq_1", "room", "ms", "seq", false},
};

int mongo_archive_prepare(struct mongo_archive *a)
{
    bson_t cmd, list, spec, key, reply;
    bson_error_t error;
    size_t i;
    bool ok = true;

    /* One index per command: creating a list of indexes of which several
     * already exist is the case MongoDB-wire servers get wrong, and it
     * costs nothing. An identical existing index is not an error. */
    for (i = 0; ok && i < sizeof(mongo_archive_indexes) /
                              sizeof(mongo_archive_indexes[0]);
         i++) {
        bson_init(&cmd);
        BSON_APPEND_UTF8(&cmd, "createIndexes", MONGO_ARCHIVE_COLLECTION);
        bson_append_array_begin(&cmd, "indexes", 7, &list);
        bson_append_document_begin(&list, "0", 1, &spec);
        bson_append_document_begin(&spec, "key", 3, &key);
        BSON_APPEND_INT32(&key, mongo_archive_indexes[i].f1, 1);
        BSON_APPEND_INT32(&key, mongo_archive_indexes[i].f2, 1);
        if (mongo_archive_indexes[i].f3 != NULL)
            BSON_APPEND_INT32(&key, mongo_archive_indexes[i].f3, 1);
        bson_append_document_end(&spec, &key);
        BSON_APPEND_UTF8(&spec, "name", mongo_archive_indexes[i].name);
        if (mongo_archive_indexes[i].unique)
            BSON_APPEND_BOOL(&spec, "unique", true);
        bson_append_document_end(&list, &spec);
        bson_append_array_end(&cmd, &list);
        ok = mongoc_collection_write_command_with_opts(a->coll, &cmd, NULL,
                                                       &reply, &error);
        if (!ok)
            log_error("MongoDB createIndexes %s on %s failed: %s",
                      mongo_archive_indexes[i].name, MONGO_ARCHIVE_COLLECTION,
                      error.message);
        bson_destroy(&reply);
        bson_destroy(&cmd);
    }
    return ok ? 0 : -1;
}

/* Parses a stream id that the archive can store: both parts must fit an
 * int64 (Redis makes ids from the clock's ms and a small sequence). */
static int mongo_archive_parse_id(const char *s, struct streamid *id)
{
    if (streamid_parse(s, strlen(s), id) < 0 || id->ms > INT64_MAX ||
        id->seq > INT64_MAX)
        return -1;
    return 0;
}

/* The server's code for a write that a unique index refused. */
#define MONGO_ARCHIVE_DUPLICATE_KEY 11000

/* Reads an unordered bulk insert's reply: every document must be either
 * inserted or refused as a duplicate key, and no write concern error may
 * be reported. Returns 0 with *dups set, or -1 (logged). */
static int mongo_archive_insert_reply(const bson_t *reply, size_t n,
                                      const struct chat_event *evs,
                                      size_t *dups)
{
    bson_iter_t it, errs, e, f;
    int64_t inserted = 0;
    size_t other = 0;

    *dups = 0;
    if (bson_iter_init_find(&it, reply, "nInserted") &&
        BSON_ITER_HOLDS_NUMBER(&it))
        inserted = bson_iter_as_int64(&it);
    if (bson_iter_init_find(&it, reply, "writeConcernErrors") &&
        BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &errs) &&
        bson_iter_next(&errs)) {
        log_error("MongoDB bulk insert of %zu message(s) (%s %s .. %s %s): "
                  "a write concern error: the batch may not be durable",
                  n, evs[0].room, evs[0].id, evs[n - 1].room, evs[n - 1].id);
        return -1;
    }
    if (bson_iter_init_find(&it, reply, "writeErrors") &&
        BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &errs)) {
        while (bson_iter_next(&errs)) {
            int32_t code = 0;
            const char *msg = "";

            if (!BSON_ITER_HOLDS_DOCUMENT(&errs) ||
                !bson_iter_recurse(&errs, &e))
                continue;
            if (bson_iter_find(&e, "code") && BSON_ITER_HOLDS_NUMBER(&e))
                code = (int32_t)bson_iter_as_int64(&e);
            if (bson_iter_recurse(&errs, &f) && bson_iter_find(&f, "errmsg") &&
                BSON_ITER_HOLDS_UTF8(&f))
                msg = bson_iter_utf8(&f, NULL);
            if (code == MONGO_ARCHIVE_DUPLICATE_KEY) {
                (*dups)++;
            } else if (other++ == 0) {
                log_error("MongoDB refused a message of the batch %s %s .. "
                          "%s %s: code %d: %s",
                          evs[0].room, evs[0].id, evs[n - 1].room,
                          evs[n - 1].id, (int)code, msg);
            }
        }
    }
    if (other > 0)
        return -1;
    /* Every document must be accounted for: a batch cut short (a lost
     * connection mid-way) reports fewer. */
    if (inserted < 0 || (uint64_t)inserted + *dups != n) {
        log_error("MongoDB bulk insert of %zu message(s) (%s %s .. %s %s): "
                  "%" PRId64 " inserted and %zu already there: not all "
                  "were written",
                  n, evs[0].room, evs[0].id, evs[n - 1].room, evs[n - 1].id,
                  inserted, *dups);
        return -1;
    }
    return 0;
}

int mongo_archive_put(struct mongo_archive *a, const struct chat_event *evs,
                      size_t n, size_t *dups)
{
    mongoc_bulk_operation_t *bulk = NULL;
    bson_t opts = BSON_INITIALIZER, reply;
    bson_error_t error;
    struct streamid sid;
    size_t i, d = 0;
    int rc = -1;

    if (dups != NULL)
        *dups = 0;
    if (n == 0)
        return 0;
    bson_init(&reply);
    mongoc_write_concern_append(a->wc, &opts);
    BSON_APPEND_BOOL(&opts, "ordered", false);
    bulk = mongoc_collection_create_bulk_operation_with_opts(a->coll, &opts);
    for (i = 0; i < n; i++) {
        const struct chat_event *ev = &evs[i];
        bson_t doc = BSON_INITIALIZER;
        bool ok;

        if (mongo_archive_parse_id(ev->id, &sid) < 0) {
            log_error("room %s: message id '%s' cannot be archived", ev->room,
                      ev->id);
            goto done;
        }
        BSON_APPEND_UTF8(&doc, "room", ev->room);
        BSON_APPEND_UTF8(&doc, "id", ev->id);
        BSON_APPEND_INT64(&doc, "ms", (int64_t)sid.ms);
        BSON_APPEND_INT64(&doc, "seq", (int64_t)sid.seq);
        BSON_APPEND_UTF8(&doc, "from", ev->from);
        bson_append_utf8(&doc, "text", 4, ev->text != NULL ? ev->text : "",
                         (int)ev->text_len);
        BSON_APPEND_INT64(&doc, "ts", ev->ts);
        ok = mongoc_bulk_operation_insert_with_opts(bulk, &doc, NULL, &error);
        bson_destroy(&doc);
        if (!ok) {
            log_error("room %s: cannot queue message %s for MongoDB: %s",
                      ev->room, ev->id, error.message);
            goto done;
        }
    }
    if (mongoc_bulk_operation_execute(bulk, &reply, &error) == 0) {
        /* Write errors (duplicates among them) fail the whole call: look
         * at each. Anything else (no server, a timeout) has no
         * writeErrors to excuse it. */
        if (error.domain != MONGOC_ERROR_SERVER &&
            error.domain != MONGOC_ERROR_WRITE_CONCERN) {
            log_error("MongoDB bulk insert of %zu message(s) (%s %s .. %s "
                      "%s) failed: %s",
                      n, evs[0].room, evs[0].id, evs[n - 1].room, evs[n - 1].id,
                      error.message);
            goto done;
        }
    }
    if (mongo_archive_insert_reply(&reply, n, evs, &d) < 0)
        goto done;
    if (dups != NULL)
        *dups = d;
    rc = 0;

done:
    mongoc_bulk_operation_destroy(bulk);
    bson_destroy(&reply);
    bson_destroy(&opts);
    return rc;
}

/* Appends to the array `arr` at index `idx` the condition
 * {$or: [{ms: {op_ms: MS}}, {ms: MS, seq: {op_seq: SEQ}}]}, i.e. the id
 * compared with `id`: ("$lt", "$lt") is "id < ID", ("$gt", "$gte") is
 * "id >= ID", and so on. Both parts of id fit an int64. */
static void mongo_archive_append_id_cond(bson_t *arr, uint32_t idx,
                                         const struct streamid *id,
                                         const char *op_ms, const char *op_seq)
{
    bson_t cond, any, a, b, sub;
    const char *key;
    char buf[16];

    bson_uint32_to_string(idx, &key, buf, sizeof(buf));
    bson_append_document_begin(arr, key, -1, &cond);
    bson_append_array_begin(&cond, "$or", 3, &any);
    bson_append_document_begin(&any, "0", 1, &a);
    bson_append_document_begin(&a, "ms", 2, &sub);
    bson_append_int64(&sub, op_ms, -1, (int64_t)id->ms);
    bson_append_document_end(&a, &sub);
    bson_append_document_end(&any, &a);
    bson_append_document_begin(&any, "1", 1, &b);
    BSON_APPEND_INT64(&b, "ms", (int64_t)id->ms);
    bson_append_document_begin(&b, "seq", 3, &sub);
    bson_append_int64(&sub, op_seq, -1, (int64_t)id->seq);
    bson_append_document_end(&b, &sub);
    bson_append_document_end(&any, &b);
    bson_append_array_end(&cond, &any);
    bson_append_document_end(arr, &cond);
}

/* Stored ids have both parts <= INT64_MAX (mongo_archive_put refuses
 * others), so a bound beyond that is turned into an equivalent one that
 * fits: an upper bound into none or "<= (ms, INT64_MAX)", a lower bound into
 * ">= (ms + 1, 0)" or "nothing can match" (returns false). */
static bool mongo_archive_clamp(const struct streamid *in, bool upper,
                                struct streamid *out, bool *inclusive,
                                bool *unbounded)
{
    *out = *in;
    *unbounded = false;
    if (in->ms > INT64_MAX) {
        *unbounded = upper;
        return upper;
    }
    if (in->seq <= INT64_MAX)
        return true;
    if (upper) {
        out->seq = INT64_MAX;
        *inclusive = true;
        return true;
    }
    if (in->ms == INT64_MAX)
        return false;
    out->ms = in->ms + 1;
    out->seq = 0;
    *inclusive = true;
    return true;
}

/* Builds into f (initialized) {room: ROOM, $and: [lower, upper]}, the
 * messages of room with lo <(=) id <(=) hi; either bound may be NULL.
 * Returns false when no stored message can match. */
static bool mongo_archive_filter(bson_t *f, const char *room,
                                 const struct streamid *lo, bool lo_incl,
                                 const struct streamid *hi, bool hi_incl)
{
    struct streamid l, h;
    bool lo_none = lo == NULL, hi_none = hi == NULL;
    bson_t and;
    uint32_t i = 0;

    if (lo != NULL && !mongo_archive_clamp(lo, false, &l, &lo_incl, &lo_none))
        return false;
    if (hi != NULL && !mongo_archive_clamp(hi, true, &h, &hi_incl, &hi_none))
        return false;
    if (room != NULL)
        BSON_APPEND_UTF8(f, "room", room);
    if (lo_none && hi_none)
        return true;
    bson_append_array_begin(f, "$and", 4, &and);
    if (!lo_none)
        mongo_archive_append_id_cond(&and, i++, &l, "$gt",
                                     lo_incl ? "$gte" : "$gt");
    if (!hi_none)
        mongo_archive_append_id_cond(&and, i++, &h, "$lt",
                                     hi_incl ? "$lte" : "$lt");
    bson_append_array_end(f, &and);
    return true;
}

/* A string field of doc, NULL when missing or not a string. */
static const char *mongo_archive_doc_str(const bson_t *doc, const char *key,
                                         uint32_t *len)
{
    bson_iter_t it;

    if (!bson_iter_init_find(&it, doc, key) || !BSON_ITER_HOLDS_UTF8(&it))
        return NULL;
    return bson_iter_utf8(&it, len);
}

/* Turns an archived document into a message event; -1 (logged) when a
 * field is missing or malformed. */
static int mongo_archive_doc_event(const bson_t *doc, const char *room,
                                   struct chat_event *ev)
{
    const char *id, *from, *text;
    uint32_t id_len, from_len, text_len;
    struct streamid sid;
    bson_iter_t it;
    int64_t ts;

    if (room == NULL) {
        uint32_t room_len;

        room = mongo_archive_doc_str(doc, "room", &room_len);
        if (room == NULL || !names_room_valid(room, room_len)) {
            log_warn("skipping an archived message without a valid room");
            return -1;
        }
    }
    id = mongo_archive_doc_str(doc, "id", &id_len);
    from = mongo_archive_doc_str(doc, "from", &from_len);
    text = mongo_archive_doc_str(doc, "text", &text_len);
    if (id == NULL || streamid_parse(id, id_len, &sid) < 0 || from == NULL ||
        !names_user_valid(from, from_len) || text == NULL ||
        !bson_iter_init_find(&it, doc, "ts") || !BSON_ITER_HOLDS_NUMBER(&it)) {
        log_warn("room %s: skipping a malformed archived message (id %s)", room,
                 id != NULL ? id : "missing");
        return -1;
    }
    ts = bson_iter_as_int64(&it);
    event_init_message(ev, room, id, from, text, text_len, ts);
    return 0;
}

/* Runs a find of messages of `room` and appends the events to *evs, in
 * the cursor's order. */
static int mongo_archive_find(struct mongo_archive *a, const char *room,
                              const bson_t *filter, int sort, size_t limit,
                              struct chat_event **evs, size_t *n)
{
    mongoc_cursor_t *cursor = NULL;
    const bson_t *doc;
    bson_error_t error;
    bson_t *opts;
    size_t cap = 0;
    int rc = -1;

    opts = BCON_NEW("sort", "{", "ms", BCON_INT32(sort), "seq",
                    BCON_INT32(sort), "}", "limit",
                    BCON_INT64(limit > INT64_MAX ? INT64_MAX : (int64_t)limit),
                    "projection", "{", "_id", BCON_INT32(0), "}");
    cursor = mongoc_collection_find_with_opts(a->coll, filter, opts, NULL);
    while (mongoc_cursor_next(cursor, &doc)) {
        if (*n == cap) {
            cap = cap != 0 ? cap * 2 : (limit < 64 ? limit : 64);
            *evs = xrealloc(*evs, cap * sizeof(**evs));
        }
        memset(&(*evs)[*n], 0, sizeof(**evs));
        if (mongo_archive_doc_event(doc, room, &(*evs)[*n]) == 0)
            (*n)++;
    }
    if (mongoc_cursor_error(cursor, &error)) {
        log_error("MongoDB read of room %s failed: %s", room, error.message);
        goto done;
    }
    rc = 0;

done:
    mongoc_cursor_destroy(cursor);
    bson_destroy(opts);
    return rc;
}

/* The common body of mongo_archive_before and mongo_archive_after. */
static int mongo_archive_page(struct mongo_archive *a, const char *room,
                              const struct streamid *bound, size_t limit,
                              bool before, struct chat_event **evs, size_t *n)
{
    bson_t filter = BSON_INITIALIZER;
    size_t i;
    int rc = 0;

    *evs = NULL;
    *n = 0;
    if (limit == 0)
        goto done;
    if (before
            ? !mongo_archive_filter(&filter, room, NULL, false, bound, false)
            : !mongo_archive_filter(&filter, room, bound, false, NULL, false))
        goto done;
    rc = mongo_archive_find(a, room, &filter, before ? -1 : 1, limit, evs, n);
    if (rc == 0 && before) {
        /* Newest first from MongoDB; the API lists events ascending. */
        for (i = 0; i < *n / 2; i++) {
            struct chat_event t = (*evs)[i];
            (*evs)[i] = (*evs)[*n - 1 - i];
            (*evs)[*n - 1 - i] = t;
        }
    }

done:
    if (rc < 0) {
        event_free_array(*evs, *n);
        *evs = NULL;
        *n = 0;
    } else if (*n == 0) {
        free(*evs);
        *evs = NULL;
    }
    bson_destroy(&filter);
    return rc;
}

int mongo_archive_before(struct mongo_archive *a, const char *room,
                         const struct streamid *before, size_t limit,
                         struct chat_event **evs, size_t *n)
{
    return mongo_archive_page(a, room, before, limit, true, evs, n);
}

int mongo_archive_after(struct mongo_archive *a, const char *room,
                        const struct streamid *after, size_t limit,
                        struct chat_event **evs, size_t *n)
{
    return mongo_archive_page(a, room, after, limit, false, evs, n);
}

struct mongo_archive_scan {
    mongoc_cursor_t *cursor;
    char room[NAME_ROOM_MAX + 1];
    bool failed;
    bool end; /* the driver refuses a cursor that ended another next() */
};

struct mongo_archive_scan *mongo_archive_scan_open(struct mongo_archive *a,
                                                   const char *room,
                                                   const struct streamid *after,
                                                   const struct streamid *upto,
                                                   size_t batch)
{
    struct mongo_archive_scan *s = xcalloc(1, sizeof(*s));
    bson_t filter = BSON_INITIALIZER;
    bson_t *opts;

    int32_t bs = batch > 100000 ? 100000 : (int32_t)batch;

    snprintf(s->room, sizeof(s->room), "%s", room != NULL ? room : "");
    if (!mongo_archive_filter(&filter, room, after, false, upto, true)) {
        bson_destroy(&filter);
        return s; /* nothing can match: an empty scan */
    }
    /* Every room: by room, then id; the {room, ms, seq} index serves both
     * orders. */
    if (room != NULL)
        opts = BCON_NEW("sort", "{", "ms", BCON_INT32(1), "seq", BCON_INT32(1),
                        "}", "batchSize", BCON_INT32(bs), "projection", "{",
                        "_id", BCON_INT32(0), "}");
    else
        opts = BCON_NEW("sort", "{", "room", BCON_INT32(1), "ms", BCON_INT32(1),
                        "seq", BCON_INT32(1), "}", "batchSize", BCON_INT32(bs),
                        "projection", "{", "_id", BCON_INT32(0), "}");
    s->cursor = mongoc_collection_find_with_opts(a->coll, &filter, opts, NULL);
    bson_destroy(opts);
    bson_destroy(&filter);
    return s;
}

int mongo_archive_scan_next(struct mongo_archive_scan *s, size_t max,
                            struct chat_event **evs, size_t *n)
{
    const bson_t *doc;
    bson_error_t error;

    *evs = NULL;
    *n = 0;
    if (s->failed)
        return -1;
    if (s->cursor == NULL || s->end || max == 0)
        return 0;
    *evs = xcalloc(max, sizeof(**evs));
    while (*n < max) {
        if (!mongoc_cursor_next(s->cursor, &doc)) {
            s->end = true;
            break;
        }
        if (mongo_archive_doc_event(doc, s->room[0] != '\0' ? s->room : NULL,
                                    &(*evs)[*n]) == 0)
            (*n)++;
    }
    if (mongoc_cursor_error(s->cursor, &error)) {
        log_error("MongoDB read of %s%s failed: %s",
                  s->room[0] != '\0' ? "room " : "the archive", s->room,
                  error.message);
        s->failed = true;
        event_free_array(*evs, *n);
        *evs = NULL;
        *n = 0;
        return -1;
    }
    if (*n == 0) {
        free(*evs);
        *evs = NULL;
    }
    return 0;
}

void mongo_archive_scan_close(struct mongo_archive_scan *s)
{
    if (s == NULL)
        return;
    mongoc_cursor_destroy(s->cursor);
    free(s);
}

int64_t mongo_archive_estimate(struct mongo_archive *a)
{
    bson_error_t error;
    int64_t n;

    n = mongoc_collection_estimated_document_count(a->coll, NULL, NULL, NULL,
                                                   &error);
    if (n < 0)
        log_debug("MongoDB estimated count: %s", error.message);
    return n;
}

long mongo_archive_dump(struct mongo_archive *a, const char *room, FILE *out)
{
    bson_t filter = BSON_INITIALIZER;
    mongoc_cursor_t *cursor;
    const bson_t *doc;
    bson_error_t error;
    bson_t *opts;
    long n = 0;

    if (room != NULL)
        BSON_APPEND_UTF8(&filter, "room", room);
    opts = BCON_NEW("sort", "{", "room", BCON_INT32(1), "ms", BCON_INT32(1),
                    "seq", BCON_INT32(1), "}", "projection", "{", "_id",
                    BCON_INT32(0), "}");
    cursor = mongoc_collection_find_with_opts(a->coll, &filter, opts, NULL);
    while (mongoc_cursor_next(cursor, &doc)) {
        char *json = bson_as_relaxed_extended_json(doc, NULL);

        fprintf(out, "%s\n", json);
        bson_free(json);
        n++;
    }
    if (mongoc_cursor_error(cursor, &error)) {
        log_error("MongoDB dump failed: %s", error.message);
        n = -1;
    }
    mongoc_cursor_destroy(cursor);
    bson_destroy(opts);
    bson_destroy(&filter);
    return n;
}
