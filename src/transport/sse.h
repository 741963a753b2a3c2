/* sse.h - the Server-Sent Events wire format */
#ifndef CT_SSE_H
#define CT_SSE_H

#include "bus.h"

/* The event as one SSE block: "id:" (stored events only), "event:" its
 * type, "data:" its JSON, and a blank line. */
struct bus_blob *sse_encode(const struct bus_event *e);
/* The same block framed as one HTTP/1.1 chunk ("<hex>\r\n" block "\r\n"),
 * so a stream's bytes go to its socket by reference, untouched. */
struct bus_blob *sse_encode_chunked(const struct bus_event *e);

#endif
