/* redisd.h - real redis-servers for the unit tests that need them (one, or
 * up to REDISD_MAX as shards): each on a free loopback port, in a temporary
 * directory removed at the end */
#ifndef CT_REDISD_H
#define CT_REDISD_H

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tap.h"

#define REDISD_MAX 3

static pid_t redisd_pid[REDISD_MAX] = {-1, -1, -1};
static char redisd_dir[REDISD_MAX][40];

static int free_port(void)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* Stops server i (0..REDISD_MAX-1) and removes its directory. */
static void stop_redis_i(int i)
{
    char cmd[128];

    if (redisd_pid[i] > 0) {
        kill(redisd_pid[i], SIGTERM);
        waitpid(redisd_pid[i], NULL, 0);
        redisd_pid[i] = -1;
    }
    if (redisd_dir[i][0] == '\0')
        return;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", redisd_dir[i]);
    if (system(cmd) != 0)
        diag("could not remove %s", redisd_dir[i]);
    redisd_dir[i][0] = '\0';
}

static void stop_redis(void)
{
    stop_redis_i(0);
}

/* Starts redis-server i on a free loopback port and connects to it; NULL,
 * with the reason printed, when it does not answer within 5 s. */
static redisContext *start_redis_i(int i, int *port)
{
    struct timeval tv = {1, 0};
    char portstr[16];
    redisContext *c = NULL;

    snprintf(redisd_dir[i], sizeof(redisd_dir[i]),
             "/tmp/crosstalk-test-redis.XXXXXX");
    if (mkdtemp(redisd_dir[i]) == NULL || (*port = free_port()) < 0)
        return NULL;
    snprintf(portstr, sizeof(portstr), "%d", *port);
    redisd_pid[i] = fork();
    if (redisd_pid[i] == 0) {
        execlp("redis-server", "redis-server", "--port", portstr, "--bind",
               "127.0.0.1", "--dir", redisd_dir[i], "--save", "",
               "--appendonly", "no", "--logfile", "redis.log", (char *)NULL);
        _exit(127);
    }
    for (int k = 0; k < 100; k++) {
        struct timespec ts = {0, 50 * 1000 * 1000};

        c = redisConnectWithTimeout("127.0.0.1", *port, tv);
        if (c != NULL && c->err == 0)
            return c;
        redisFree(c);
        c = NULL;
        nanosleep(&ts, NULL);
    }
    diag("redis-server on 127.0.0.1:%d did not accept a connection in 5 s "
         "(log in %s/redis.log)",
         *port, redisd_dir[i]);
    return NULL;
}

static redisContext *start_redis(int *port)
{
    return start_redis_i(0, port);
}

/* True when there is no redis-server to run (then the test prints its
 * plan with redis_missing_status and ends). */
static int redis_missing(void)
{
    return system("command -v redis-server >/dev/null 2>&1") != 0;
}

/* A skip, but a failure in CI, where nothing is skipped. */
static int redis_missing_status(void)
{
    const char *ci = getenv("CI");

    if (ci != NULL && strcmp(ci, "true") == 0) {
        printf("1..1\nnot ok 1 - redis-server is installed (CI=true)\n");
        return 1;
    }
    printf("1..0 # SKIP redis-server not found\n");
    return 0;
}

#endif
