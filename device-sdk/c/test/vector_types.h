/* Row types of the generated vector table (build/vectors.h, from test/gen-vectors.mjs). */
#ifndef VECTOR_TYPES_H
#define VECTOR_TYPES_H
#include "tendril_codec.h"

typedef struct {
    const char *p;
    size_t len;
} xstr;

typedef struct {
    uint16_t alias;
    uint8_t kind, flags;
    xstr name, unit;
    uint64_t min_bits, max_bits;
} xmetric;

typedef struct {
    uint64_t seq, ts;
    int timed;
    size_t first, count; /* range in the vector's values */
} xreading;

typedef struct {
    uint16_t alias;
    uint8_t type;
    uint64_t bits; /* f32 / f64 as IEEE bits */
    int64_t i;
    xstr s;
} xvalue;

typedef struct {
    const char *name, *clause;
    int hub;
    const uint8_t *hex;
    size_t len;
    const uint8_t *re; /* reencoded form, when hex is non-minimal */
    size_t re_len;
    int has_ctx;
    td_ctx ctx, after;
    int has_limits;
    td_limits limits;
    int type;
    /* hello: deviceId, token, firmware, sdk; commandResult: detail; command: name, args; error: message */
    xstr s[4];
    /* hello: epoch, lastSeq, clock, dropped; welcome: its 6 fields; ack/status: [0]; command: id, timeout;
     * commandResult: id; error: code, seq; backoff: code, pauseMs */
    uint64_t n[6];
    int alias; /* error; -1 = none */
    int status;
    const xmetric *metrics;
    size_t metric_count;
    const xreading *readings;
    size_t reading_count;
    const xvalue *values;
} xvalid;

typedef struct {
    const char *name, *clause;
    int hub;
    const uint8_t *hex;
    size_t len;
    td_ctx ctx;
    int has_limits;
    td_limits limits;
    int code, incomplete;
} xinvalid;

typedef struct {
    const char *name;
    int wire, close;
} xregistry;
#endif
