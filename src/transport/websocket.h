/* websocket.h - the WebSocket transport: RFC 6455 on crosstalkd's own port,
 * framing by wslay, one socket for the whole chat */
#ifndef CT_WEBSOCKET_H
#define CT_WEBSOCKET_H

#include <stddef.h>

#include "bus.h"

struct config;

/* The event as one final, unmasked text frame: header and event JSON. Made
 * once per event (bus slot BUS_SLOT_WS) and shared by every WebSocket
 * subscriber. Returns a new blob with one reference. */
struct bus_blob *ws_encode(const struct bus_event *e);

/* The longest client message (after reassembly of its fragments) read
 * before the connection is closed with 1009: room for a JSON frame whose
 * text is max_message_bytes long even with every byte escaped as \u00XX.
 * Longer text in a smaller frame gets a "too_large" error frame instead. */
size_t ws_max_message(const struct config *cfg);

#endif
