/* archive_tool.c - ct-archive-tool: reads the MongoDB archive for tests and
 * debugging, through the same archive module crosstalk-fcgi links */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "log.h"
#include "mongo_archive.h"
#include "streamid.h"

static void usage(void)
{
    fprintf(stderr,
            "usage: ct-archive-tool dump URI [ROOM]\n"
            "       ct-archive-tool before URI ROOM ID|- LIMIT\n"
            "       ct-archive-tool after URI ROOM ID|- LIMIT\n"
            "dump: every archived document as a line of JSON, by room and id;\n"
            "before/after: mongo_archive_before/mongo_archive_after as event "
            "JSON lines.\n"
            "Exit status: 0 ok, 1 MongoDB failed, 2 usage.\n");
}

int main(int argc, char **argv)
{
    struct mongo_archive *a = NULL;
    struct streamid sid;
    struct chat_event *evs = NULL;
    size_t n = 0, i;
    const char *id;
    char *end;
    unsigned long limit;
    int rc = 1;

    log_set_program("ct-archive-tool");
    if (argc < 3) {
        usage();
        return 2;
    }
    if (strcmp(argv[1], "dump") == 0 && argc <= 4) {
        a = mongo_archive_open(argv[2]);
        if (a != NULL &&
            mongo_archive_dump(a, argc == 4 ? argv[3] : NULL, stdout) >= 0)
            rc = 0;
        goto done;
    }
    if ((strcmp(argv[1], "before") != 0 && strcmp(argv[1], "after") != 0) ||
        argc != 6) {
        usage();
        return 2;
    }
    limit = strtoul(argv[5], &end, 10);
    if (*argv[5] == '\0' || *end != '\0') {
        usage();
        return 2;
    }
    id = strcmp(argv[4], "-") == 0 ? NULL : argv[4];
    if (id != NULL && streamid_parse(id, strlen(id), &sid) < 0) {
        fprintf(stderr, "ct-archive-tool: '%s' is not a stream id\n", id);
        return 2;
    }
    a = mongo_archive_open(argv[2]);
    if (a == NULL)
        goto done;
    if ((argv[1][0] == 'b' ? mongo_archive_before : mongo_archive_after)(
            a, argv[3], id != NULL ? &sid : NULL, limit, &evs, &n) < 0)
        goto done;
    for (i = 0; i < n; i++) {
        size_t len;
        char *json = event_to_json(&evs[i], &len);

        fwrite(json, 1, len, stdout);
        fputc('\n', stdout);
        free(json);
    }
    rc = 0;

done:
    event_free_array(evs, n);
    mongo_archive_close(a);
    return rc;
}
