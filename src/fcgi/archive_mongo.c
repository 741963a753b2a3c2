/* archive_mongo.c - the MongoDB archive (src/backup's read path) as
 * crosstalk-fcgi's archive backend */
#include <stddef.h>

#include "archive.h"
#include "log.h"
#include "mongo_archive.h"

static int mongo_before(void *ctx, const char *room,
                        const struct streamid *before, int limit,
                        struct chat_event **evs, size_t *n)
{
    return mongo_archive_before(ctx, room, before, (size_t)limit, evs, n);
}

static void mongo_close(void *ctx)
{
    mongo_archive_close(ctx);
}

int archive_mongo_use(const char *uri)
{
    struct archive_backend b = {"MongoDB", NULL, mongo_before, mongo_close};

    if (uri == NULL || *uri == '\0')
        return 0;
    b.ctx = mongo_archive_open(uri);
    if (b.ctx == NULL)
        return -1;
    archive_use(&b);
    return 0;
}
