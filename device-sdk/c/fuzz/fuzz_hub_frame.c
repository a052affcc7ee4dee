/*
 * libFuzzer: the hub-frame decoder (what a device decodes from the network). Any input either decodes or
 * fails with a documented frame-decoding code (1..14); a frame that decodes re-encodes to a frame that
 * decodes to the same fields. The first byte picks a smaller frame limit now and then, to reach that check.
 */
#include <stdlib.h>
#include <string.h>

#include "tendril_codec.h"

static int str_eq(td_str a, td_str b)
{
    return a.len == b.len && (!a.len || !memcmp(a.p, b.p, a.len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    td_limits lim = td_limits_default;
    td_hub_frame f, g;
    uint8_t out[20000];
    size_t len;
    int e;
    if (size && data[0] == 0xFE) {
        lim.max_frame_bytes = 16;
        lim.max_message_bytes = 8;
        lim.max_command_name_bytes = 4;
        data++;
        size--;
    }
    e = td_decode_hub_frame(data, size, &f, &lim);
    if (e < 0 || e > 14) abort();
    if (e) return 0;
    if (td_encode_hub_frame(out, sizeof out, &len, &f, &lim) != TD_OK) abort();
    if (td_decode_hub_frame(out, len, &g, &lim) != TD_OK || g.type != f.type) abort();
    switch (f.type) {
    case TD_WELCOME:
        if (memcmp(&f.u.welcome, &g.u.welcome, sizeof f.u.welcome)) abort();
        break;
    case TD_ACK:
        if (f.u.ack.seq != g.u.ack.seq) abort();
        break;
    case TD_COMMAND:
        if (f.u.command.id != g.u.command.id || !str_eq(f.u.command.name, g.u.command.name) ||
            !str_eq(f.u.command.args, g.u.command.args) || f.u.command.timeout_ms != g.u.command.timeout_ms)
            abort();
        break;
    case TD_ERROR:
        if (f.u.error.code != g.u.error.code || f.u.error.seq != g.u.error.seq || !str_eq(f.u.error.message, g.u.error.message))
            abort();
        break;
    case TD_BACKOFF:
        if (f.u.backoff.code != g.u.backoff.code || f.u.backoff.pause_ms != g.u.backoff.pause_ms) abort();
        break;
    default: abort();
    }
    return 0;
}
