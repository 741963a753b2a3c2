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

/* Stops the SSE heartbeat (shutdown, after every stream has ended). */
void sse_shutdown(void);

#endif
