/*
 * libFuzzer: the device-frame decoder (the hub's side, tendril_codec_peer.c) and the device-side encoders.
 * Any input decodes or fails with a documented code (1..14); the delta context moves only on success; a
 * reading or batch that decodes is encoded again by the device encoders (which must accept it) to bytes
 * that decode to the same readings.
 */
#include <stdlib.h>
#include <string.h>

#include "tendril_codec.h"

static td_metric metrics[64];
static td_reading readings[256], readings2[256];
static td_value values[4096], values2[4096];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const td_decode_space space = {metrics, 64, readings, 256, values, 4096};
    const td_decode_space space2 = {metrics, 64, readings2, 256, values2, 4096};
    td_ctx ctx = {10, 1732233600000ull}, before = ctx, enc, dec2;
    td_device_frame f, g;
    static uint8_t out[1 << 16];
    size_t len, i, j;
    int e = td_decode_device_frame(data, size, &ctx, NULL, &f, &space);
    if (e < 0 || e > 14) abort();
    if (e) {
        if (memcmp(&ctx, &before, sizeof ctx)) abort();
        return 0;
    }
    if (f.type != TD_READING && f.type != TD_READING_UNTIMED && f.type != TD_BATCH) return 0;
    enc = before;
    if (f.type == TD_BATCH) e = td_encode_batch(out, sizeof out, &len, f.readings, f.reading_count, &enc, NULL);
    else e = td_encode_reading(out, sizeof out, &len, &f.readings[0], &enc, NULL);
    if (e == TD_FRAME_TOO_LARGE) return 0; /* a non-minimal input re-encodes shorter; never longer */
    if (e != TD_OK || memcmp(&enc, &ctx, sizeof ctx)) abort();
    dec2 = before;
    if (td_decode_device_frame(out, len, &dec2, NULL, &g, &space2) != TD_OK || g.reading_count != f.reading_count) abort();
    for (i = 0; i < f.reading_count; i++) {
        const td_reading *a = &f.readings[i], *b = &g.readings[i];
        if (a->seq != b->seq || a->timed != b->timed || a->ts != b->ts || a->count != b->count) abort();
        for (j = 0; j < a->count; j++) {
            const td_value *x = &a->values[j], *y = &b->values[j];
            if (x->alias != y->alias || x->type != y->type) abort();
            if (x->type == TD_VT_F32 && memcmp(&x->v.f32, &y->v.f32, 4)) abort();
            if (x->type == TD_VT_F64 && memcmp(&x->v.f64, &y->v.f64, 8)) abort();
            if (x->type == TD_VT_INT && x->v.i != y->v.i) abort();
            if (x->type == TD_VT_STRING && (x->v.s.len != y->v.s.len || memcmp(x->v.s.p, y->v.s.p, x->v.s.len))) abort();
        }
    }
    return 0;
}
