/* transport_kind.h - the ways a client talks to crosstalk, for routing and
 * for the counters kept per transport */
#ifndef CT_TRANSPORT_KIND_H
#define CT_TRANSPORT_KIND_H

enum transport {
    TRANSPORT_REST,
    TRANSPORT_SHORT_POLL,
    TRANSPORT_LONG_POLL,
    TRANSPORT_SSE,
    TRANSPORT_WEBSOCKET,
    TRANSPORT_COUNT
};

#endif
