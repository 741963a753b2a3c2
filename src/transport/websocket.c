/* websocket.c - GET /api/rooms/{room}/ws: RFC 6455 on the same port */
#include "transport.h"

void ws_handle(struct request *r)
{
    http_reply_error(r->req, r->kind, 501, "not_implemented",
                     "WebSocket is not served yet");
    http_request_free(r);
}
