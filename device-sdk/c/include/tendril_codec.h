/*
 * tendril.v1 wire codec (docs/protocol.md), C99, no heap, no globals, no I/O.
 *
 * Device side (what a device ships): encode device frames (HELLO, READING, READING_UNTIMED, BATCH,
 * COMMAND_RESULT, STATUS) and decode hub frames (WELCOME, ACK, COMMAND, ERROR, BACKOFF).
 * Peer side (tendril_codec_peer.c, for tests, fuzzers and a hub written in C): decode device frames,
 * encode hub frames. A firmware build links only the device side.
 *
 * Decoded strings point into the frame buffer (no copy, not NUL-terminated): keep the buffer alive while
 * you use them. Every limit of §9.2 is a field of td_limits; pass NULL for the defaults.
 */
#ifndef TENDRIL_CODEC_H
#define TENDRIL_CODEC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* §11: every protocol error code with its wire code as the value; SDK-local conditions are negative. */
typedef enum {
    TD_OK = 0,
    /* frame decoding (§9.1): the decoder fails with one of these; close 1002 (1009 for FRAME_TOO_LARGE) */
    TD_FRAME_TRUNCATED = 1, /* the only "not enough bytes" code (td_err_incomplete) */
    TD_UNKNOWN_FRAME_TYPE = 2,
    TD_TRAILING_BYTES = 3,
    TD_VARINT_OVERFLOW = 4,
    TD_INVALID_UTF8 = 5,
    TD_STRING_TOO_LONG = 6,
    TD_INVALID_VALUE_TYPE = 7,
    TD_TOO_MANY_METRICS = 8,
    TD_BATCH_TOO_LARGE = 9,
    TD_EMPTY_READING = 10,
    TD_INVALID_FIELD = 11,
    TD_FRAME_TOO_LARGE = 12,
    TD_TEXT_FRAME = 13,
    TD_UNEXPECTED_FRAME = 14,
    /* session (§6) */
    TD_AUTH_FAILED = 20,
    TD_REPLACED = 21,
    TD_HELLO_TIMEOUT = 22,
    TD_HEARTBEAT_LOST = 23,
    TD_SHUTTING_DOWN = 24,
    TD_INTERNAL_ERROR = 25,
    TD_TRY_AGAIN_LATER = 26,
    TD_DEVICE_DISABLED = 27,
    TD_AUTH_THROTTLED = 28,
    TD_TOO_MANY_PINGS = 29,
    TD_SLOW_CONSUMER = 60, /* a presence reason: the hub cut a connection that did not read */
    /* validation (§7.1) */
    TD_UNKNOWN_ALIAS = 30,
    TD_TYPE_MISMATCH = 31,
    TD_OUT_OF_RANGE = 32,
    TD_NOT_FINITE = 33,
    TD_TIMESTAMP_OUT_OF_RANGE = 34,
    TD_DUPLICATE_ALIAS = 35,
    /* flow control (§7.4) */
    TD_RATE_LIMITED = 40,
    TD_STORE_BUSY = 41,
    /* commands (§8) */
    TD_UNKNOWN_COMMAND_ID = 50,
    /* SDK-local, never on the wire */
    TD_E_ARG = -1,      /* a bad argument (NULL, out of range, wrong state) */
    TD_E_NOSPACE = -2,  /* the caller's buffer is too small for this frame / these readings */
    TD_E_IO = -3,       /* the transport failed */
    TD_E_AGAIN = -4,    /* not now: the transport would block, or the output queue is full */
    TD_E_HANDSHAKE = -5,/* the WebSocket upgrade was refused or its answer is wrong */
    TD_E_CLOSED = -6,   /* the connection is closed */
    TD_E_WS = -7        /* the hub broke RFC 6455 (masked, reserved bits, bad control frame) */
} td_err;

/* The registry's string code ("FRAME_TRUNCATED"), "UNKNOWN" for others. In tendril_errors.c (optional). */
const char *td_err_name(int code);
/* The close reasons the SDK sends (§6.6.5: the code's registry name), NUL-separated, the n-th for code n: the codes
 * td_decode_hub_frame returns, TEXT_FRAME and UNEXPECTED_FRAME ("" for 7-10, about device frames). One copy for the
 * SDK's WebSocket and device clients (in tendril_codec.c); td_err_name has every name. */
#define TD_REASONS_1_11 "FRAME_TRUNCATED\0UNKNOWN_FRAME_TYPE\0TRAILING_BYTES\0VARINT_OVERFLOW\0INVALID_UTF8\0" \
                        "STRING_TOO_LONG\0\0\0\0\0INVALID_FIELD\0"
#define TD_REASONS_1_12 TD_REASONS_1_11 "FRAME_TOO_LARGE\0"
#define TD_REASONS TD_REASONS_1_12 "TEXT_FRAME\0UNEXPECTED_FRAME"
extern const char td_reasons[sizeof TD_REASONS];
#define TD_REASON_FRAME_TOO_LARGE (td_reasons + sizeof TD_REASONS_1_11 - 1u)
#define TD_REASON_TEXT_FRAME (td_reasons + sizeof TD_REASONS_1_12 - 1u)
/* The close code of the registry (§10/§11): 1002, 1009, 1003, 1008, 1001, 1011, 1013; 0 = none. */
int td_err_close_code(int code);

/* §9.2 limits. Defaults: TD_LIMITS_DEFAULT. */
typedef struct {
    uint32_t max_frame_bytes;
    uint32_t max_device_id_bytes;
    uint32_t max_token_bytes;
    uint32_t max_version_bytes;
    uint32_t max_metric_name_bytes;
    uint32_t max_unit_bytes;
    uint32_t max_metrics;
    uint32_t max_alias;
    uint32_t max_string_value_bytes;
    uint32_t max_batch;
    uint32_t max_command_name_bytes;
    uint32_t max_command_args_bytes;
    uint32_t max_detail_bytes;
    uint32_t max_message_bytes;
} td_limits;

#define TD_MAX_DETAIL_BYTES 1024u /* the default maxDetailBytes, as a constant */
#define TD_LIMITS_DEFAULT_INIT \
    {16384u, 64u, 128u, 32u, 64u, 16u, 64u, 1023u, 256u, 256u, 64u, 4096u, TD_MAX_DETAIL_BYTES, 256u}
extern const td_limits td_limits_default;

/* §3.1 frame types */
enum {
    TD_HELLO = 0x01,
    TD_READING = 0x02,
    TD_READING_UNTIMED = 0x03,
    TD_BATCH = 0x04,
    TD_COMMAND_RESULT = 0x05,
    TD_STATUS = 0x06,
    TD_WELCOME = 0x41,
    TD_ACK = 0x42,
    TD_COMMAND = 0x43,
    TD_ERROR = 0x44,
    TD_BACKOFF = 0x45
};

/* §5.2 wire value types (the low 3 bits of a value tag) */
enum { TD_VT_F32 = 0, TD_VT_F64 = 1, TD_VT_INT = 2, TD_VT_FALSE = 3, TD_VT_TRUE = 4, TD_VT_STRING = 5 };
/* §4.2 declared kinds */
enum { TD_KIND_F32 = 0, TD_KIND_F64 = 1, TD_KIND_INT = 2, TD_KIND_BOOL = 3, TD_KIND_STRING = 4 };
/* §8.2 command statuses */
enum { TD_CMD_DELIVERED = 0, TD_CMD_SUCCEEDED = 1, TD_CMD_FAILED = 2, TD_CMD_REJECTED = 3 };
/* §4.2 declaration flags */
#define TD_HAS_MIN 0x01u
#define TD_HAS_MAX 0x02u

#define TD_MAX_SAFE 0x1FFFFFFFFFFFFFull /* 2^53-1 */

/* A byte string: UTF-8, not NUL-terminated. TD_S("lit") for literals, td_s(cstr) for C strings. */
typedef struct {
    const char *p;
    size_t len;
} td_str;
#define TD_S(lit) {(lit), sizeof(lit) - 1u}
td_str td_s(const char *cstr);

/* §5.1 delta context of one connection */
typedef struct {
    uint64_t prev_seq;
    uint64_t prev_ts;
} td_ctx;

/* §4.2 metric declaration */
typedef struct {
    uint16_t alias;
    uint8_t kind;  /* TD_KIND_* */
    uint8_t flags; /* TD_HAS_MIN | TD_HAS_MAX */
    td_str name;
    td_str unit;
    double min, max;
} td_metric;

/* §5.2 value */
typedef struct {
    uint16_t alias;
    uint8_t type; /* TD_VT_*; a bool is TD_VT_FALSE or TD_VT_TRUE */
    union {
        float f32;
        double f64;
        int64_t i; /* -2^52 .. 2^52-1 */
        td_str s;
    } v;
} td_value;

/* Value constructors. */
td_value td_f32(uint16_t alias, float v);
td_value td_f64(uint16_t alias, double v);
td_value td_int(uint16_t alias, int64_t v);
td_value td_bool(uint16_t alias, int v);
td_value td_string(uint16_t alias, td_str s);

/* §5.3 a reading: timed (READING, ts set) or untimed (READING_UNTIMED) */
typedef struct {
    uint64_t seq;
    uint64_t ts;
    uint8_t timed;
    uint8_t count; /* values */
    const td_value *values;
} td_reading;

/* §4.1 */
typedef struct {
    td_str device_id, token, firmware, sdk;
    uint32_t epoch;
    uint64_t last_seq, clock, dropped;
    uint8_t metric_count;
    const td_metric *metrics;
} td_hello;

/* ---- hub -> device frames, decoded ---- */
/* §8.1 COMMAND: also what the device client hands its command callback (tendril_device.h) */
typedef struct {
    uint64_t id;
    td_str name;        /* valid during the callback only */
    td_str args;        /* JSON text, "" = none; valid during the callback only */
    uint64_t timeout_ms;
} td_command;

typedef struct {
    uint8_t type; /* TD_WELCOME .. TD_BACKOFF */
    union {
        struct { /* §4.3 */
            uint64_t server_time, acked_seq, heartbeat_ms, max_frame_bytes, max_batch, max_rate;
        } welcome;
        struct { uint64_t seq; } ack; /* §7.3 */
        td_command command;           /* §8.1 */
        struct {         /* §7.6; an unknown code keeps its number (UNKNOWN_<n>) */
            uint64_t code, seq;
            int32_t alias; /* -1 = no alias */
            td_str message;
        } error;
        struct { uint64_t code, pause_ms; } backoff; /* §7.4 */
    } u;
} td_hub_frame;

/* Every function returns TD_OK or a td_err: a positive registry code (§11) for what the protocol forbids,
 * a negative TD_E_* for the caller's own problems (TD_E_NOSPACE: `cap` is too small). Lengths come back
 * through *len. */

/* ---- primitives (§2) ---- */
/* Writes a varint (shortest form, §2.2.4) into out (room for 8 bytes); returns its length, 0 if v > 2^53-1. */
size_t td_put_varint(uint8_t *out, uint64_t v);
/* Reads a varint of at most 8 bytes and <= 2^53-1 (§2.2): TD_OK, TD_FRAME_TRUNCATED or TD_VARINT_OVERFLOW. */
int td_get_varint(const uint8_t *p, size_t len, uint64_t *v, size_t *used);
uint64_t td_zigzag(int64_t n);
int64_t td_unzigzag(uint64_t z);
/* 1 when the bytes are well-formed UTF-8 (§2.5.3). */
int td_utf8_valid(const uint8_t *p, size_t len);

/* ---- device side ---- */
/* Each encoder writes one frame into out[cap]. The encoders refuse (with the decoder's codes) to build a
 * frame the hub would reject: TD_INVALID_FIELD, TD_STRING_TOO_LONG, TD_INVALID_UTF8, TD_FRAME_TOO_LARGE ...
 * Readings advance ctx (§5.1), only on success. limits may be NULL (defaults). */
int td_encode_hello(uint8_t *out, size_t cap, size_t *len, const td_hello *h, const td_limits *limits);
int td_encode_reading(uint8_t *out, size_t cap, size_t *len, const td_reading *r, td_ctx *ctx, const td_limits *limits);
int td_encode_batch(uint8_t *out, size_t cap, size_t *len, const td_reading *r, size_t count, td_ctx *ctx,
                    const td_limits *limits);
int td_encode_command_result(uint8_t *out, size_t cap, size_t *len, uint64_t id, uint8_t status, td_str detail,
                             const td_limits *limits);
int td_encode_status(uint8_t *out, size_t cap, size_t *len, uint64_t dropped, const td_limits *limits);
/* Encodes the values of one reading (tags and payloads, §5.2): what READING, READING_UNTIMED and BATCH
 * entries carry after their deltas. With out == NULL it only checks them and measures *len. */
int td_encode_values(uint8_t *out, size_t cap, size_t *len, const td_value *v, size_t count, const td_limits *limits);

/* The writer the encoders share, for the device client's frames built from its store: bytes, varints and
 * svarints appended at pos within cap; the first problem sticks in err (TD_E_NOSPACE, TD_INVALID_FIELD for a
 * number out of range): check it once at the end. p == NULL only measures. */
typedef struct {
    uint8_t *p;
    size_t cap, pos;
    int err;
} td_writer;
void td_w_bytes(td_writer *w, const void *b, size_t n);
void td_w_varint(td_writer *w, uint64_t v);
void td_w_svarint(td_writer *w, int64_t n); /* §2.3: -2^52 .. 2^52-1 */

/* Decodes a hub frame (§9.1 order): TD_OK or the registry code of the first problem. */
int td_decode_hub_frame(const uint8_t *p, size_t len, td_hub_frame *out, const td_limits *limits);

/* ---- peer side (tendril_codec_peer.c) ---- */
typedef struct {
    uint8_t type;                       /* TD_HELLO .. TD_STATUS */
    td_hello hello;                     /* metrics point into the caller's metrics array */
    size_t reading_count;               /* READING/READING_UNTIMED: 1; BATCH: count */
    td_reading *readings;               /* the caller's array */
    struct { uint64_t id; uint8_t status; td_str detail; } command_result;
    uint64_t dropped;                   /* STATUS */
} td_device_frame;

typedef struct {
    td_metric *metrics; size_t metrics_cap;   /* >= max_metrics for every HELLO */
    td_reading *readings; size_t readings_cap;/* >= max_batch for every BATCH */
    td_value *values; size_t values_cap;      /* all values of a frame */
} td_decode_space;

/* Decodes a device frame as the hub does (§9.1 order, every limit). ctx advances only on success.
 * Returns TD_OK, a positive td_err, or TD_E_NOSPACE when `space` cannot hold the frame. */
int td_decode_device_frame(const uint8_t *p, size_t len, td_ctx *ctx, const td_limits *limits,
                           td_device_frame *out, const td_decode_space *space);
/* Encodes a hub frame (what a hub or a test hub sends). */
int td_encode_hub_frame(uint8_t *out, size_t cap, size_t *len, const td_hub_frame *f, const td_limits *limits);

#ifdef __cplusplus
}
#endif
#endif
