/* transport.h - the four ways a client follows a room; each is a kind of
 * subscriber on the bus */
#ifndef CT_TRANSPORT_H
#define CT_TRANSPORT_H

#include "http.h"

/* GET /api/rooms/{room}/poll: answers once anything after since exists, or
 * 204 after the timeout. Takes ownership of r. */
void long_poll_handle(struct request *r);
/* GET /api/rooms/{room}/events: the Server-Sent Events stream. Takes
 * ownership of r. */
void sse_handle(struct request *r);
/* GET /api/rooms/{room}/ws: the WebSocket upgrade. Takes ownership of r. */
void ws_handle(struct request *r);

/* Counts one more SSE or WebSocket stream of r's user (streams_per_token).
 * Returns true when it may open; otherwise answers r with 429
 * too_many_streams (r itself is not freed) and returns false. The caller
 * gives the stream back with tally_give(app.streams, user) when it ends. */
bool transport_stream_take(struct request *r);

/* Stops the SSE heartbeat (shutdown, after every stream has ended). */
void sse_shutdown(void);

#endif
