/*
 * tendril.v1 codec, device side: primitives (§2), device-frame encoders, hub-frame decoder.
 * Section numbers (§) refer to docs/protocol.md. No heap, no globals (td_limits_default is const data).
 */
#include "tendril_codec.h"

#include <string.h>

const td_limits td_limits_default = TD_LIMITS_DEFAULT_INIT;
const char td_reasons[sizeof TD_REASONS] = TD_REASONS;

#define LIM(l) ((l) ? (l) : &td_limits_default)
#if defined(__GNUC__)
#define TD_NOINLINE __attribute__((noinline)) /* one copy of a helper that -Os would inline at every call */
#define TD_INLINE __attribute__((always_inline)) inline /* where -Os keeps a call that costs more than the body */
#else
#define TD_NOINLINE
#define TD_INLINE
#endif
#define SVARINT_MAX 0xFFFFFFFFFFFFFll /* 2^52-1; the minimum is -2^52 (§2.3.2) */

td_str td_s(const char *cstr)
{
    td_str s;
    s.p = cstr;
    s.len = cstr ? strlen(cstr) : 0;
    return s;
}

td_value td_f32(uint16_t alias, float v)
{
    td_value x;
    x.alias = alias;
    x.type = TD_VT_F32;
    x.v.f32 = v;
    return x;
}

td_value td_f64(uint16_t alias, double v)
{
    td_value x;
    x.alias = alias;
    x.type = TD_VT_F64;
    x.v.f64 = v;
    return x;
}

td_value td_int(uint16_t alias, int64_t v)
{
    td_value x;
    x.alias = alias;
    x.type = TD_VT_INT;
    x.v.i = v;
    return x;
}

td_value td_bool(uint16_t alias, int v)
{
    td_value x;
    x.alias = alias;
    x.type = v ? TD_VT_TRUE : TD_VT_FALSE;
    x.v.i = 0;
    return x;
}

td_value td_string(uint16_t alias, td_str s)
{
    td_value x;
    x.alias = alias;
    x.type = TD_VT_STRING;
    x.v.s = s;
    return x;
}

/* ---- primitives (§2) ---- */

size_t td_put_varint(uint8_t *out, uint64_t v)
{
    size_t n = 0;
    if (v > TD_MAX_SAFE) return 0; /* §2.2.1 */
    while (v >= 0x80u) {
        out[n++] = (uint8_t)(v | 0x80u);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

/* td_get_varint, inlined into the hub-frame decoder (its one caller in a firmware) */
static TD_INLINE int get_varint(const uint8_t *p, size_t len, uint64_t *v, size_t *used)
{
    uint64_t r = 0;
    size_t n = 0, i;
    for (;;) { /* find the last byte first: then the value is built with shifts by a constant */
        if (n == 8) return TD_VARINT_OVERFLOW; /* §2.2.2: high bit still set in the 8th byte */
        if (n >= len) return TD_FRAME_TRUNCATED; /* §2.2.3 */
        if (!(p[n++] & 0x80u)) break;
    }
    for (i = n; i;) r = r << 7 | (p[--i] & 0x7Fu);
    if (r > TD_MAX_SAFE) return TD_VARINT_OVERFLOW; /* §2.2.2 */
    *v = r;
    *used = n;
    return TD_OK;
}

int td_get_varint(const uint8_t *p, size_t len, uint64_t *v, size_t *used)
{
    return get_varint(p, len, v, used);
}

uint64_t td_zigzag(int64_t n)
{
    /* §2.3.3: shift the unsigned value */
    return ((uint64_t)n << 1) ^ (uint64_t)(n >> 63);
}

int64_t td_unzigzag(uint64_t z)
{
    return (int64_t)(z >> 1) ^ -(int64_t)(z & 1u);
}

int td_utf8_valid(const uint8_t *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = p[i++], n, k;
        uint32_t cp;
        if (c < 0x80u) continue;
        if (c < 0xC2u || c > 0xF4u) return 0; /* continuation byte, overlong 2-byte lead, above U+10FFFF */
        n = c < 0xE0u ? 1u : c < 0xF0u ? 2u : 3u; /* continuation bytes */
        if (len - i < n) return 0;                 /* truncated sequence */
        for (cp = c & (0x3Fu >> n), k = n; k; k--) {
            if ((p[i] & 0xC0u) != 0x80u) return 0;
            cp = cp << 6 | (p[i++] & 0x3Fu);
        }
        /* overlong (the shortest form with n continuation bytes starts at 2^(5n+1)), surrogates, above U+10FFFF */
        if (!(cp >> (5u * n + 1u)) || (cp >> 11) == 0x1Bu || cp > 0x10FFFFu) return 0;
    }
    return 1;
}

/* ---- writer: a sticky error keeps the call sites short ---- */

typedef td_writer wr;

static void w_init(wr *w, uint8_t *out, size_t cap)
{
    w->p = out;
    w->cap = cap;
    w->pos = 0;
    w->err = 0;
}

TD_NOINLINE static void w_fail(wr *w, int code)
{
    if (!w->err) w->err = code;
}

/* With p == NULL the writer only measures (td_encode_values(NULL, ...)). */
void td_w_bytes(wr *w, const void *b, size_t n)
{
    if (!w->p) w->pos += n;
    else if (w->cap - w->pos < n) w_fail(w, TD_E_NOSPACE);
    else if (n) {
        memcpy(w->p + w->pos, b, n);
        w->pos += n;
    }
}

static void w_u8(wr *w, uint8_t b)
{
    td_w_bytes(w, &b, 1);
}

void td_w_varint(wr *w, uint64_t v)
{
    uint8_t tmp[8];
    size_t n = td_put_varint(tmp, v);
    if (!n) w_fail(w, TD_INVALID_FIELD); /* not 0..2^53-1 */
    td_w_bytes(w, tmp, n);
}

void td_w_svarint(wr *w, int64_t n)
{
    if (n > SVARINT_MAX || n < -SVARINT_MAX - 1) w_fail(w, TD_INVALID_FIELD); /* §2.3.2 */
    else td_w_varint(w, td_zigzag(n));
}

/* §2.5: length, then UTF-8 bytes within max */
static void w_str(wr *w, td_str s, uint32_t max)
{
    if (s.len > max) w_fail(w, TD_STRING_TOO_LONG);
    else if (s.len && !s.p) w_fail(w, TD_E_ARG);
    else if (!td_utf8_valid((const uint8_t *)s.p, s.len)) w_fail(w, TD_INVALID_UTF8);
    td_w_varint(w, s.len);
    if (!w->err) td_w_bytes(w, s.p, s.len);
}

/* §2.4: the n bytes of the float or double at p, little-endian whatever the host's byte order (its bytes are its
 * IEEE bits in the host's order) */
static void w_le(wr *w, const void *p, unsigned n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    td_w_bytes(w, p, n); /* one copy */
#else
    while (n--) w_u8(w, ((const uint8_t *)p)[n]);
#endif
}

static uint64_t f64_bits(double d)
{
    uint64_t b;
    memcpy(&b, &d, 8);
    return b;
}

static int w_end(wr *w, size_t *len, const td_limits *lim)
{
    if (!w->err && w->pos > lim->max_frame_bytes) w->err = TD_FRAME_TOO_LARGE; /* §9.2 */
    if (!w->err && len) *len = w->pos;
    return w->err;
}

/* ---- device frames ---- */

/* §4.1 device id: ^[A-Za-z0-9._:-]+$ (extra ':'); §4.2 metric name: ^[A-Za-z][A-Za-z0-9_./-]*$ (extra '/') */
static int name_ok(td_str s, char extra)
{
    size_t i;
    if (!s.len || !s.p || (extra == '/' && (uint8_t)((s.p[0] | 0x20) - 'a') > 25u)) return 0;
    for (i = 0; i < s.len; i++) {
        char c = s.p[i];
        if ((uint8_t)((c | 0x20) - 'a') > 25u && (uint8_t)(c - '0') > 9u && c != '.' && c != '_' && c != '-' &&
            c != extra)
            return 0;
    }
    return 1;
}

static int finite_bits(uint64_t b)
{
    return ((b >> 52) & 0x7ffu) != 0x7ffu;
}

/* IEEE bits in an unsigned order (no soft-float calls), -0 as +0: min > max is f64_order(min) > f64_order(max) */
TD_NOINLINE static uint64_t f64_order(uint64_t b)
{
    if (!(b << 1)) b = 0;
    return (b >> 63) ? ~b : (b | 0x8000000000000000ull);
}

int td_encode_hello(uint8_t *out, size_t cap, size_t *len, const td_hello *h, const td_limits *limits)
{
    const td_limits *lim = LIM(limits);
    wr w;
    size_t i, j;
    w_init(&w, out, cap);
    if (!h || (h->metric_count && !h->metrics)) return TD_E_ARG;
    if (!name_ok(h->device_id, ':') || !h->token.len) return TD_INVALID_FIELD; /* §4.1 */
    if (h->metric_count > lim->max_metrics) return TD_TOO_MANY_METRICS;
    td_w_varint(&w, TD_HELLO); /* a byte below 128 is its own varint: the frame type, kind, flags, status */
    for (i = 0; i < 4; i++) /* device_id, token, firmware, sdk: adjacent members, each within its limit (adjacent
                               too; the two versions share one) */
        w_str(&w, *(const td_str *)((const uint8_t *)h + offsetof(td_hello, device_id) + i * sizeof(td_str)),
              *(const uint32_t *)((const uint8_t *)lim + offsetof(td_limits, max_device_id_bytes) + (i < 3 ? i : 2u) * 4u));
    td_w_varint(&w, h->epoch);
    for (i = 0; i < 3; i++) { /* last_seq, clock, dropped */
        uint64_t v;
        memcpy(&v, (const uint8_t *)h + offsetof(td_hello, last_seq) + i * 8u, 8);
        td_w_varint(&w, v);
    }
    td_w_varint(&w, h->metric_count);
    for (i = 0; i < h->metric_count && !w.err; i++) {
        const td_metric *m = &h->metrics[i];
        const double *mm;
        unsigned f;
        /* §4.2 */
        if (m->alias > lim->max_alias || m->kind > TD_KIND_STRING || (m->flags & ~3u) || !name_ok(m->name, '/') ||
            (m->flags && m->kind >= TD_KIND_BOOL) ||
            (m->flags == 3u && f64_order(f64_bits(m->min)) > f64_order(f64_bits(m->max))))
            return TD_INVALID_FIELD;
        for (j = 0; j < i; j++) {
            const td_metric *o = &h->metrics[j];
            if (o->alias == m->alias ||
                (o->name.len == m->name.len && !memcmp(o->name.p, m->name.p, m->name.len)))
                return TD_INVALID_FIELD; /* declared twice */
        }
        td_w_varint(&w, m->alias);
        td_w_varint(&w, m->kind);
        td_w_varint(&w, m->flags);
        w_str(&w, m->name, lim->max_metric_name_bytes);
        w_str(&w, m->unit, lim->max_unit_bytes);
        for (f = m->flags, mm = &m->min; f; f >>= 1, mm = &m->max) /* min (TD_HAS_MIN), max (TD_HAS_MAX): finite */
            if (f & 1u) {
                if (!finite_bits(f64_bits(*mm))) return TD_INVALID_FIELD;
                w_le(&w, mm, 8);
            }
    }
    return w_end(&w, len, lim);
}

static TD_INLINE void w_values(wr *w, const td_value *v, size_t count, const td_limits *lim)
{
    size_t i;
    if (!count) w_fail(w, TD_EMPTY_READING);
    if (count > lim->max_metrics) w_fail(w, TD_TOO_MANY_METRICS);
    if (count && !v) w_fail(w, TD_E_ARG);
    for (i = 0; i < count && !w->err; i++, v++) {
        if (v->alias > lim->max_alias || v->type > TD_VT_STRING) {
            w_fail(w, TD_INVALID_FIELD);
            break;
        }
        td_w_varint(w, (uint64_t)v->alias * 8u + v->type); /* §5.2 tag */
        switch (v->type) {
        case TD_VT_F32:
        case TD_VT_F64:
            w_le(w, &v->v, v->type == TD_VT_F32 ? 4u : 8u); /* f32 or f64: the union's first bytes */
            break;
        case TD_VT_INT: td_w_svarint(w, v->v.i); break;
        case TD_VT_STRING: w_str(w, v->v.s, lim->max_string_value_bytes); break;
        default: break; /* FALSE, TRUE: no payload */
        }
    }
}

int td_encode_values(uint8_t *out, size_t cap, size_t *len, const td_value *v, size_t count, const td_limits *limits)
{
    wr w;
    w_init(&w, out, cap);
    w_values(&w, v, count, LIM(limits));
    if (!w.err) *len = w.pos;
    return w.err;
}

/* §5.1, §5.3: deltas from ctx, then the values (counted in a BATCH entry) */
static void w_reading(wr *w, const td_reading *r, td_ctx *ctx, int counted, const td_limits *lim)
{
    if (r->seq < 1 || r->seq > TD_MAX_SAFE || (r->timed && r->ts > TD_MAX_SAFE)) w_fail(w, TD_INVALID_FIELD);
    if (w->err) return;
    td_w_svarint(w, (int64_t)r->seq - (int64_t)ctx->prev_seq);
    ctx->prev_seq = r->seq;
    if (r->timed) {
        td_w_svarint(w, (int64_t)r->ts - (int64_t)ctx->prev_ts);
        ctx->prev_ts = r->ts;
    }
    if (counted) td_w_varint(w, r->count);
    w_values(w, r->values, r->count, lim);
}

int td_encode_reading(uint8_t *out, size_t cap, size_t *len, const td_reading *r, td_ctx *ctx, const td_limits *limits)
{
    const td_limits *lim = LIM(limits);
    td_ctx local;
    wr w;
    int err;
    if (!r || !ctx) return TD_E_ARG;
    local = *ctx;
    w_init(&w, out, cap);
    w_u8(&w, r->timed ? TD_READING : TD_READING_UNTIMED);
    w_reading(&w, r, &local, 0, lim);
    err = w_end(&w, len, lim);
    if (!err) *ctx = local;
    return err;
}

int td_encode_batch(uint8_t *out, size_t cap, size_t *len, const td_reading *r, size_t count, td_ctx *ctx,
                    const td_limits *limits)
{
    const td_limits *lim = LIM(limits);
    td_ctx local;
    wr w;
    size_t i;
    int err;
    if (!r || !ctx) return TD_E_ARG;
    if (count < 1 || count > lim->max_batch) return TD_BATCH_TOO_LARGE; /* §5.4 */
    local = *ctx;
    w_init(&w, out, cap);
    w_u8(&w, TD_BATCH);
    td_w_varint(&w, count);
    for (i = 0; i < count; i++) {
        if (!r[i].timed) w_fail(&w, TD_INVALID_FIELD); /* every BATCH entry is timed */
        w_reading(&w, &r[i], &local, 1, lim);
    }
    err = w_end(&w, len, lim);
    if (!err) *ctx = local;
    return err;
}

int td_encode_command_result(uint8_t *out, size_t cap, size_t *len, uint64_t id, uint8_t status, td_str detail,
                             const td_limits *limits)
{
    const td_limits *lim = LIM(limits);
    wr w;
    if (id < 1 || status > TD_CMD_REJECTED) return TD_INVALID_FIELD; /* §8.2 */
    w_init(&w, out, cap);
    td_w_varint(&w, TD_COMMAND_RESULT);
    td_w_varint(&w, id);
    td_w_varint(&w, status); /* checked: below 128 */
    w_str(&w, detail, lim->max_detail_bytes);
    return w_end(&w, len, lim);
}

int td_encode_status(uint8_t *out, size_t cap, size_t *len, uint64_t dropped, const td_limits *limits)
{
    wr w;
    w_init(&w, out, cap);
    w_u8(&w, TD_STATUS); /* §7.5 */
    td_w_varint(&w, dropped);
    return w_end(&w, len, LIM(limits));
}

/* ---- reader ---- */

/* Each hub frame's fields in the order of its table (§4.3 WELCOME, §7.3 ACK, §8.1 COMMAND, §7.6 ERROR,
 * §7.4 BACKOFF): the low byte is where the field goes in the frame, the rest says how it is read. */
#define H_REQ 0x100u   /* 0 or empty is INVALID_FIELD (§8.1: id >= 1, a name) */
#define H_STR 0x200u   /* a string (§2.5) within the limit whose index is in the top 4 bits; else a varint */
#define H_ALIAS 0x400u /* §7.6: the alias + 1 as a varint, kept as an int32 (-1 = none) */
#define H_AT(f) ((uint16_t)offsetof(td_hub_frame, u.f))
#define H_LIM(l) ((uint16_t)(offsetof(td_limits, l) / 4u << 12))
static const uint16_t hub_fields[] = {
    H_AT(welcome.server_time), H_AT(welcome.acked_seq), H_AT(welcome.heartbeat_ms),
    H_AT(welcome.max_frame_bytes), H_AT(welcome.max_batch), H_AT(welcome.max_rate),
    H_AT(ack.seq),
    H_AT(command.id) | H_REQ, H_AT(command.name) | H_STR | H_REQ | H_LIM(max_command_name_bytes),
    H_AT(command.args) | H_STR | H_LIM(max_command_args_bytes), H_AT(command.timeout_ms),
    H_AT(error.code), H_AT(error.seq), H_AT(error.alias) | H_ALIAS,
    H_AT(error.message) | H_STR | H_LIM(max_message_bytes),
    H_AT(backoff.code), H_AT(backoff.pause_ms)};
static const uint8_t hub_first_field[] = {0, 6, 7, 11, 15, 17};

int td_decode_hub_frame(const uint8_t *p, size_t len, td_hub_frame *out, const td_limits *limits)
{
    const td_limits *lim = LIM(limits);
    size_t pos = 1, used;
    unsigned t, i;
    if (len > lim->max_frame_bytes) return TD_FRAME_TOO_LARGE; /* §3.1.3: before anything else */
    if (!len) return TD_FRAME_TRUNCATED;
    t = (unsigned)p[0] - TD_WELCOME;
    if (t > TD_BACKOFF - TD_WELCOME) return TD_UNKNOWN_FRAME_TYPE; /* §3.1.1 */
    memset(out, 0, sizeof *out);
    out->type = p[0];
    for (i = hub_first_field[t]; i < hub_first_field[t + 1]; i++) {
        unsigned f = hub_fields[i];
        uint8_t *at = (uint8_t *)out + (f & 0xFFu);
        uint64_t v;
        int e = get_varint(p + pos, len - pos, &v, &used);
        if (e) return e;
        pos += used;
        /* at is the field itself: a td_str, the alias's int32_t or a uint64_t */
        if (f & H_STR) { /* §2.5.2: the length is checked against the limit before the bytes are read */
            td_str *s = (td_str *)(void *)at;
            if (v > *(const uint32_t *)((const uint8_t *)lim + (f >> 12) * 4u)) return TD_STRING_TOO_LONG;
            if (v > len - pos) return TD_FRAME_TRUNCATED;
            if (!td_utf8_valid(p + pos, (size_t)v)) return TD_INVALID_UTF8;
            s->p = (const char *)p + pos;
            s->len = (size_t)v;
            pos += s->len;
        } else if (f & H_ALIAS) {
            *(int32_t *)(void *)at = v == 0 || v > 0x7fffffffu ? -1 : (int32_t)(v - 1u);
        } else *(uint64_t *)(void *)at = v;
        if ((f & H_REQ) && !v) return TD_INVALID_FIELD;
    }
    return pos == len ? TD_OK : TD_TRAILING_BYTES; /* §3.1.2 */
}
