/* wsframe.h - frame boundaries in the bytes a WebSocket client sends, so
 * that wslay is given control frames whole (wscore.c) */
#ifndef CT_WSFRAME_H
#define CT_WSFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The most a frame header can take: 2 + 8 (length) + 4 (mask key). */
#define WSFRAME_HEAD_MAX 14

/* The length of the frame header in h[0..avail), with the extended length
 * and the mask key, or 0 when it is not all there; *plen gets the payload
 * length. */
size_t wsframe_head(const uint8_t *h, size_t avail, uint64_t *plen);

/* How many of the `avail` waiting bytes (the first `seen` of them, at most
 * WSFRAME_HEAD_MAX, are in `h`) to give wslay now, when it asks for `room`
 * more and `given` went in this read already. *frame_left counts the bytes
 * of the current frame still to give (0 between frames) and is updated as
 * if the returned bytes were given. 0 means: wait for more bytes. A control
 * frame (125 bytes of payload at most) is given whole or not at all: wslay
 * 1.1.1 checks a close reason's UTF-8 in each piece it reads as if each
 * began with the status code, so a close frame read in two pieces could be
 * refused though valid, or echoed though not. */
size_t wsframe_take(const uint8_t *h, size_t seen, size_t avail, size_t room,
                    size_t given, uint64_t *frame_left);

#endif
