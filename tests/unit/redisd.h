/* redisd.h - a real redis-server for the unit tests that need one: on a
 * free loopback port, in a temporary directory removed at the end */
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

static pid_t redis_pid = -1;
static char dir[] = "/tmp/crosstalk-test-scripts.XXXXXX";

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

static void stop_redis(void)
{
    char cmd[128];

    if (redis_pid > 0) {
        kill(redis_pid, SIGTERM);
        waitpid(redis_pid, NULL, 0);
        redis_pid = -1;
    }
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        diag("could not remove %s", dir);
}

/* Starts redis-server on a free loopback port and connects to it; NULL,
 * with the reason printed, when it does not answer within 5 s. */
static redisContext *start_redis(int *port)
{
    struct timeval tv = {1, 0};
    char portstr[16];
    redisContext *c = NULL;
    int i;

    if (mkdtemp(dir) == NULL || (*port = free_port()) < 0)
        return NULL;
    snprintf(portstr, sizeof(portstr), "%d", *port);
    redis_pid = fork();
    if (redis_pid == 0) {
        execlp("redis-server", "redis-server", "--port", portstr, "--bind",
               "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no",
               "--logfile", "redis.log", (char *)NULL);
        _exit(127);
    }
    for (i = 0; i < 100; i++) {
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
         *port, dir);
    return NULL;
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
