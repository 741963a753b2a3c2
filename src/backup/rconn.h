/* rconn.h - a synchronous Redis connection opened from a redis_url */
#ifndef CT_RCONN_H
#define CT_RCONN_H

#include <hiredis/hiredis.h>

/* Connects to `url` (redis://[[user]:password@]host[:port][/db] or
 * unix:///path/to/redis.sock[?db=N]), sends AUTH and SELECT when the URL
 * asks for them, and sets `timeout_ms` as both the connect and the command
 * timeout. On any failure, NULL is returned and the reason is logged (the
 * password never is). */
redisContext *rconn_open(const char *url, int timeout_ms);

#endif
