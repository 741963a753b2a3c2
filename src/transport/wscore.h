/* wscore.h - a WebSocket server connection's protocol without its socket:
 * the client's bytes and the timer's requests in, bytes to write and
 * actions out (wslay underneath); websocket.c drives it, and so do
 * tests/unit/test_wscore.c and tests/fuzz/fuzz_ws.c */
#ifndef CT_WSCORE_H
#define CT_WSCORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* RFC 6455 opcodes, as the callbacks see them. */
#define WSCORE_TEXT 0x1
#define WSCORE_BINARY 0x2
#define WSCORE_CLOSE 0x8
#define WSCORE_PING 0x9
#define WSCORE_PONG 0xa

/* The longest header of a server frame. */
#define WSCORE_HEAD_MAX 10

/* Sec-WebSocket-Key is base64 of 16 bytes; Sec-WebSocket-Accept is base64
 * of a SHA-1. */
#define WSCORE_KEY_LEN 24
#define WSCORE_ACCEPT_LEN 28

/* Close codes of RFC 6455 section 7.4.1 that we send. */
#define WSCORE_GOING_AWAY 1001
#define WSCORE_PROTOCOL_ERROR 1002
#define WSCORE_UNSUPPORTED_DATA 1003
#define WSCORE_POLICY 1008
#define WSCORE_MESSAGE_TOO_BIG 1009
#define WSCORE_INTERNAL_ERROR 1011

enum wscore_state {
    WSCORE_OPEN,    /* chatting */
    WSCORE_CLOSING, /* our close frame is queued behind what is unsent */
    WSCORE_LINGER,  /* it is sent and our side shut: reading to the end */
};

struct wslay_event_context;

/* One connection; embed it in the transport's own (the callbacks get it
 * back). Kept small: it lives as long as the socket. The wslay context
 * (about 9 KB) exists only while there is something for it to do: it is
 * made when the client sends a frame or we queue a message through wslay,
 * and freed once open and idle again (no frame half read, no message
 * fragmented, nothing queued), so an idle socket that only listens (and
 * answers pings) costs this struct alone. */
struct wscore {
    struct wslay_event_context *ctx; /* NULL while idle */
    uint64_t frame_left;   /* of the client's frame being read, bytes not
                            * yet given to wslay */
    uint32_t max_message;  /* wscore_limits.max_message, for a new ctx */
    uint8_t state;         /* enum wscore_state */
    uint8_t depth;         /* calls into wslay under way: ctx is in use */
    bool fragmented;       /* the client's message continues in a frame to
                            * come */
    bool awaiting_pong;    /* a ping is out */
    bool raw_close;        /* we wrote a close frame past wslay */
    bool end_when_written; /* no lingering after our close frame */
    bool dead;             /* torn down: nothing more read or written */
};

/* What the core asks of its driver. The same for every connection of a
 * program (wscore_setup), so that no connection carries a pointer to it. */
struct wscore_ops {
    /* Copies up to `len` of the client's unread bytes into buf, leaving
     * them unread; returns how many are unread in all. */
    size_t (*peek)(struct wscore *w, uint8_t *buf, size_t len);
    /* Takes the first n unread bytes into buf, or drops them (buf NULL). */
    void (*take)(struct wscore *w, uint8_t *buf, size_t n);
    /* Bytes for the client, in order; all of them are taken. */
    void (*write)(struct wscore *w, const uint8_t *data, size_t len);
    /* A frame of the client's begins (counted, nothing more). */
    void (*frame)(struct wscore *w);
    /* A whole message from the client (text reassembled and valid UTF-8,
     * ping, pong), in any state; a ping is answered already. */
    void (*message)(struct wscore *w, unsigned opcode, const uint8_t *msg,
                    size_t len);
    /* The connection left WSCORE_OPEN: no more events for it; the close
     * handshake has the pong timeout to finish. */
    void (*closing)(struct wscore *w);
    /* wslay failed with `rc` in `what` (not the client's fault). */
    void (*error)(struct wscore *w, const char *what, int rc);
};

/* The connection's limits. */
struct wscore_limits {
    size_t max_message; /* longest client message; longer: close 1009 */
};

/* What the driver does after wscore_settle. */
enum wscore_next {
    WSCORE_CHAT,    /* open: carry on (check the unsent bytes' limit) */
    WSCORE_WAIT,    /* closing: wait for the output or the peer */
    WSCORE_SHUT_WR, /* our close frame is written: shut the write side and
                     * read on until the peer's close or end of stream */
    WSCORE_END,     /* the handshake is done: close the socket */
};

/* What the driver does after wscore_tick. */
enum wscore_tick {
    WSCORE_TICK_NONE,    /* nothing (a ping could not be queued) */
    WSCORE_TICK_PINGED,  /* a ping went out: arm the pong timeout */
    WSCORE_TICK_NO_PONG, /* the pong deadline passed: drop the socket */
    WSCORE_TICK_LATE,    /* the close deadline passed: drop the socket */
};

/* Sets the callbacks of every connection; call before wscore_init. */
void wscore_setup(const struct wscore_ops *ops);

/* Starts a server connection in w. Out of memory aborts. */
void wscore_init(struct wscore *w, const struct wscore_limits *limits);

/* Frees what wscore_init allocated; w itself is the caller's. */
void wscore_free(struct wscore *w);

/* Marks w torn down: from now on it reads and writes nothing. */
void wscore_kill(struct wscore *w);

/* True while chatting. */
bool wscore_open(const struct wscore *w);

/* Reads the client's unread bytes (control frames are given to wslay
 * whole, wsframe.h): messages, answers and closes follow. Returns 0, or -1
 * when wslay failed on its own (reported through ops->error): drop the
 * socket. */
int wscore_read(struct wscore *w);

/* Writes out what wslay has queued (pongs, closes, text). */
void wscore_flush(struct wscore *w);

/* After any input, output or event, once flushed, with `unsent` bytes
 * still waiting to be written: notices a close wslay queued and says what
 * the driver does next. An open connection with nothing in progress frees
 * its wslay context here. */
enum wscore_next wscore_settle(struct wscore *w, size_t unsent);

/* Sends a text message (copied) after anything queued, while open. */
void wscore_send_text(struct wscore *w, const char *text, size_t len);

/* A ready final text frame (header and payload) shared with other
 * connections. Returns true when nothing is queued before it: the caller
 * writes it as it is (by reference); else it is queued here as a copy. */
bool wscore_send_frame(struct wscore *w, const uint8_t *frame, size_t len);

/* Starts the closing handshake with `code` and `reason` (at most 123
 * bytes, UTF-8). With linger false, the connection ends as soon as our
 * close frame is written, even when already closing. Returns true when a
 * close was queued (then call wscore_settle). */
bool wscore_close(struct wscore *w, uint16_t code, const char *reason,
                  bool linger);

/* The connection's one timer fired: a ping is due, or the pong or close
 * deadline passed. */
enum wscore_tick wscore_tick(struct wscore *w);

/* Writes the header of a final unmasked frame with a payload of `len`
 * bytes into h; returns its length. */
size_t wscore_frame_header(uint8_t h[WSCORE_HEAD_MAX], uint8_t opcode,
                           size_t len);

/* True when `key` (NUL-terminated; NULL is false) is a Sec-WebSocket-Key:
 * 16 bytes in base64, 22 characters and "==". */
bool wscore_key_valid(const char *key);

/* Writes the Sec-WebSocket-Accept answer to a Sec-WebSocket-Key of
 * WSCORE_KEY_LEN characters: base64(SHA-1(key GUID)), NUL-terminated. */
void wscore_accept_key(const char *key, char out[WSCORE_ACCEPT_LEN + 1]);

/* The longest client message for max_message_bytes of text: room for a
 * JSON frame whose text has every byte escaped as \u00XX. */
size_t wscore_max_message(size_t max_message_bytes);

#endif
