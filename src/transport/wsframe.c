/* wsframe.c - frame boundaries in the bytes a WebSocket client sends */
#include "wsframe.h"

size_t wsframe_head(const uint8_t *h, size_t avail, uint64_t *plen)
{
    unsigned len7;
    size_t hl;

    if (avail < 2)
        return 0;
    len7 = h[1] & 0x7f;
    hl = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (h[1] & 0x80 ? 4 : 0);
    if (avail < hl)
        return 0;
    if (len7 < 126) {
        *plen = len7;
    } else if (len7 == 126) {
        *plen = (uint64_t)h[2] << 8 | h[3];
    } else {
        *plen = 0;
        for (int i = 0; i < 8; i++)
            *plen = *plen << 8 | h[2 + i];
    }
    return hl;
}

size_t wsframe_take(const uint8_t *h, size_t seen, size_t avail, size_t room,
                    size_t given, uint64_t *frame_left)
{
    size_t take;

    if (avail == 0 || room == 0)
        return 0;
    if (*frame_left == 0) {
        uint64_t plen = 0;
        size_t hl = wsframe_head(h, seen, &plen);
        if (hl == 0)
            return 0; /* the rest of the header first */
        if ((h[0] & 0x08) && plen <= 125 &&
            (avail < hl + plen || (room < hl + plen && given > 0)))
            return 0; /* a control frame: all of it, next time */
        *frame_left = plen > UINT64_MAX - hl ? UINT64_MAX : hl + plen;
    }
    take = room < avail ? room : avail;
    if (take > *frame_left)
        take = (size_t)*frame_left;
    *frame_left -= take;
    return take;
}
