/* archive.c - the seam to the MongoDB archive: which backend, if any, answers
 * for messages older than Redis holds */
#include <stdlib.h>

#include "archive.h"
#include "log.h"

static struct archive_backend backend;
static int have_backend;

void archive_use(const struct archive_backend *b)
{
    archive_close();
    if (b == NULL)
        return;
    backend = *b;
    have_backend = 1;
    log_info("history older than Redis holds comes from the %s archive",
             backend.name != NULL ? backend.name : "(unnamed)");
}

int archive_enabled(void)
{
    return have_backend;
}

int archive_before(const char *room, const struct streamid *before, int limit,
                   struct chat_event **evs, size_t *n)
{
    *evs = NULL;
    *n = 0;
    if (!have_backend || limit <= 0)
        return 0;
    if (backend.before(backend.ctx, room, before, limit, evs, n) < 0) {
        log_warn("room %s: the %s archive could not be read; serving what "
                 "Redis holds",
                 room, backend.name);
        *evs = NULL;
        *n = 0;
        return -1;
    }
    return 0;
}

void archive_close(void)
{
    if (have_backend && backend.close != NULL)
        backend.close(backend.ctx);
    have_backend = 0;
}
