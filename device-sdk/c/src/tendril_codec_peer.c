/*
 * tendril.v1 codec, peer side: decode device frames as the hub does, encode hub frames. Not needed on a
 * device; the tests, the fuzzers and any hub or test hub written in C use it. Same rules and order of
 * checks as device-sdk/src/codec/decode.ts (§9.1.3), so both give the vectors' codes.
 */
#include "tendril_codec.h"

#include <string.h>

#define LIM(l) ((l) ? (l) : &td_limits_default)

typedef struct {
    const uint8_t *p;
    size_t len, pos;
    int err;
} rd;

static void fail(rd *r, int code)
{
    if (!r->err) r->err = code;
}

static uint64_t r_varint(rd *r)
{
    uint64_t v = 0;
    size_t used;
    int e;
    if (r->err) return 0;
    e = td_get_varint(r->p + r->pos, r->len - r->pos, &v, &used);
    if (e) {
        fail(r, e);
        return 0;
    }
    r->pos += used;
    return v;
}

static uint64_t r_le(rd *r, unsigned n)
{
    uint64_t v = 0;
    unsigned i;
    if (r->err) return 0;
    if (r->len - r->pos < n) {
        fail(r, TD_FRAME_TRUNCATED);
        return 0;
    }
    for (i = 0; i < n; i++) v |= (uint64_t)r->p[r->pos + i] << (8u * i);
    r->pos += n;
    return v;
}

static td_str r_str(rd *r, uint32_t max)
{
    td_str s;
    uint64_t n = r_varint(r);
    s.p = "";
    s.len = 0;
    if (r->err) return s;
    if (n > max) fail(r, TD_STRING_TOO_LONG); /* §2.5.2: before the bytes */
    else if (n > r->len - r->pos) fail(r, TD_FRAME_TRUNCATED);
    else if (!td_utf8_valid(r->p + r->pos, (size_t)n)) fail(r, TD_INVALID_UTF8);
    else {
        s.p = (const char *)r->p + r->pos;
        s.len = (size_t)n;
        r->pos += (size_t)n;
    }
    return s;
}

static double bits_f64(uint64_t b)
{
    double d;
    memcpy(&d, &b, 8);
    return d;
}

static int finite_bits(uint64_t b)
{
    return ((b >> 52) & 0x7ffu) != 0x7ffu;
}

static int name_char(char c, int first, int id)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return 1;
    if (first && !id) return 0;
    if ((c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-') return 1;
    return id ? c == ':' : c == '/';
}

/* §4.1 (id = 1) and §4.2 (id = 0) patterns */
static int pattern_ok(td_str s, int id)
{
    size_t i;
    if (!s.len) return 0;
    for (i = 0; i < s.len; i++)
        if (!name_char(s.p[i], i == 0, id)) return 0;
    return 1;
}

static int str_eq(td_str a, td_str b)
{
    return a.len == b.len && (!a.len || !memcmp(a.p, b.p, a.len));
}

static void decode_hello(rd *r, const td_limits *lim, td_hello *h, const td_decode_space *sp)
{
    uint64_t v, count, i, j;
    h->device_id = r_str(r, lim->max_device_id_bytes);
    if (!r->err && !pattern_ok(h->device_id, 1)) fail(r, TD_INVALID_FIELD);
    h->token = r_str(r, lim->max_token_bytes);
    if (!r->err && !h->token.len) fail(r, TD_INVALID_FIELD);
    h->firmware = r_str(r, lim->max_version_bytes);
    h->sdk = r_str(r, lim->max_version_bytes);
    v = r_varint(r);
    if (v > 0xFFFFFFFFu) fail(r, TD_INVALID_FIELD);
    h->epoch = (uint32_t)v;
    h->last_seq = r_varint(r);
    h->clock = r_varint(r);
    h->dropped = r_varint(r);
    count = r_varint(r);
    if (!r->err && count > lim->max_metrics) fail(r, TD_TOO_MANY_METRICS);
    if (!r->err && count > sp->metrics_cap) fail(r, TD_E_NOSPACE);
    h->metrics = sp->metrics;
    for (i = 0; i < count && !r->err; i++) {
        td_metric *m = &sp->metrics[i];
        uint64_t alias = r_varint(r), lo, hi;
        if (r->err) break;
        if (alias > lim->max_alias) fail(r, TD_INVALID_FIELD);
        for (j = 0; j < i; j++)
            if (sp->metrics[j].alias == alias) fail(r, TD_INVALID_FIELD);
        m->alias = (uint16_t)alias;
        m->kind = (uint8_t)r_le(r, 1);
        if (!r->err && m->kind > TD_KIND_STRING) fail(r, TD_INVALID_FIELD);
        m->flags = (uint8_t)r_le(r, 1);
        if (!r->err && ((m->flags & ~3u) || (m->flags && m->kind >= TD_KIND_BOOL))) fail(r, TD_INVALID_FIELD);
        m->name = r_str(r, lim->max_metric_name_bytes);
        if (!r->err && !pattern_ok(m->name, 0)) fail(r, TD_INVALID_FIELD);
        for (j = 0; j < i && !r->err; j++)
            if (str_eq(sp->metrics[j].name, m->name)) fail(r, TD_INVALID_FIELD);
        m->unit = r_str(r, lim->max_unit_bytes);
        m->min = m->max = 0;
        if (m->flags & TD_HAS_MIN) {
            lo = r_le(r, 8);
            if (!r->err && !finite_bits(lo)) fail(r, TD_INVALID_FIELD);
            m->min = bits_f64(lo);
        }
        if (m->flags & TD_HAS_MAX) {
            hi = r_le(r, 8);
            if (!r->err && !finite_bits(hi)) fail(r, TD_INVALID_FIELD);
            m->max = bits_f64(hi);
        }
        if (!r->err && m->flags == 3u && m->min > m->max) fail(r, TD_INVALID_FIELD);
    }
    h->metric_count = (uint8_t)count;
}

/* §5.2 */
static void decode_value(rd *r, const td_limits *lim, td_value *v)
{
    uint64_t tag = r_varint(r), z;
    uint32_t b32;
    if (r->err) return;
    if (tag / 8u > lim->max_alias) {
        fail(r, TD_INVALID_FIELD); /* §5.2.1: before the wire type */
        return;
    }
    v->alias = (uint16_t)(tag / 8u);
    v->type = (uint8_t)(tag % 8u);
    switch (v->type) {
    case TD_VT_F32:
        b32 = (uint32_t)r_le(r, 4);
        memcpy(&v->v.f32, &b32, 4);
        break;
    case TD_VT_F64: v->v.f64 = bits_f64(r_le(r, 8)); break;
    case TD_VT_INT:
        z = r_varint(r);
        v->v.i = td_unzigzag(z);
        break;
    case TD_VT_FALSE:
    case TD_VT_TRUE: v->v.i = 0; break;
    case TD_VT_STRING: v->v.s = r_str(r, lim->max_string_value_bytes); break;
    default: fail(r, TD_INVALID_VALUE_TYPE);
    }
}

/* §5.1, §5.3, §5.4 entry */
static void decode_reading(rd *r, const td_limits *lim, td_ctx *ctx, int timed, int counted, td_reading *out,
                           td_value *values, size_t values_cap, size_t *used)
{
    int64_t seq, ts;
    uint64_t n = 0, i;
    seq = (int64_t)ctx->prev_seq + td_unzigzag(r_varint(r));
    if (r->err) return;
    if (seq < 1 || seq > (int64_t)TD_MAX_SAFE) {
        fail(r, TD_INVALID_FIELD);
        return;
    }
    out->seq = (uint64_t)seq;
    out->timed = (uint8_t)timed;
    out->ts = 0;
    if (timed) {
        ts = (int64_t)ctx->prev_ts + td_unzigzag(r_varint(r));
        if (r->err) return;
        if (ts < 0 || ts > (int64_t)TD_MAX_SAFE) {
            fail(r, TD_INVALID_FIELD);
            return;
        }
        out->ts = (uint64_t)ts;
        ctx->prev_ts = (uint64_t)ts;
    }
    ctx->prev_seq = (uint64_t)seq;
    if (counted) {
        n = r_varint(r);
        if (r->err) return;
        if (n == 0) fail(r, TD_EMPTY_READING);
        else if (n > lim->max_metrics) fail(r, TD_TOO_MANY_METRICS);
    } else if (r->pos == r->len) {
        fail(r, TD_EMPTY_READING); /* §5.3.2 */
    }
    out->values = values + *used;
    for (i = 0; !r->err && (counted ? i < n : r->pos < r->len); i++) {
        if (i >= lim->max_metrics) {
            fail(r, TD_TOO_MANY_METRICS); /* before reading the (max+1)th value */
            break;
        }
        if (*used >= values_cap) {
            fail(r, TD_E_NOSPACE);
            break;
        }
        decode_value(r, lim, &values[(*used)++]);
    }
    out->count = (uint8_t)i;
}

int td_decode_device_frame(const uint8_t *p, size_t len, td_ctx *ctx, const td_limits *limits, td_device_frame *out,
                           const td_decode_space *sp)
{
    const td_limits *lim = LIM(limits);
    td_ctx local;
    rd r;
    size_t used = 0;
    uint64_t count, i;
    if (len > lim->max_frame_bytes) return TD_FRAME_TOO_LARGE; /* §3.1.3 */
    if (!len) return TD_FRAME_TRUNCATED;
    memset(out, 0, sizeof *out);
    r.p = p;
    r.len = len;
    r.pos = 1;
    r.err = 0;
    local = *ctx;
    out->type = p[0];
    out->readings = sp->readings;
    switch (p[0]) {
    case TD_HELLO: decode_hello(&r, lim, &out->hello, sp); break;
    case TD_READING:
    case TD_READING_UNTIMED:
        if (!sp->readings_cap) return TD_E_NOSPACE;
        decode_reading(&r, lim, &local, p[0] == TD_READING, 0, &sp->readings[0], sp->values, sp->values_cap, &used);
        out->reading_count = 1;
        break;
    case TD_BATCH: /* §5.4 */
        count = r_varint(&r);
        if (!r.err && (count < 1 || count > lim->max_batch)) fail(&r, TD_BATCH_TOO_LARGE);
        if (!r.err && count > sp->readings_cap) fail(&r, TD_E_NOSPACE);
        for (i = 0; i < count && !r.err; i++)
            decode_reading(&r, lim, &local, 1, 1, &sp->readings[i], sp->values, sp->values_cap, &used);
        out->reading_count = (size_t)count;
        break;
    case TD_COMMAND_RESULT: /* §8.2 */
        out->command_result.id = r_varint(&r);
        if (!r.err && out->command_result.id < 1) fail(&r, TD_INVALID_FIELD);
        out->command_result.status = (uint8_t)r_le(&r, 1);
        if (!r.err && out->command_result.status > TD_CMD_REJECTED) fail(&r, TD_INVALID_FIELD);
        out->command_result.detail = r_str(&r, lim->max_detail_bytes);
        break;
    case TD_STATUS: out->dropped = r_varint(&r); break; /* §7.5 */
    default: return TD_UNKNOWN_FRAME_TYPE;
    }
    if (r.err) return r.err;
    if (r.pos != len) return TD_TRAILING_BYTES;
    *ctx = local;
    return TD_OK;
}

/* ---- hub frames ---- */

typedef struct {
    uint8_t *p;
    size_t cap, pos;
    int err;
} wr;

static void w_bytes(wr *w, const void *b, size_t n)
{
    if (w->err) return;
    if (w->cap - w->pos < n) w->err = TD_E_NOSPACE;
    else if (n) {
        memcpy(w->p + w->pos, b, n);
        w->pos += n;
    }
}

static void w_varint(wr *w, uint64_t v)
{
    uint8_t tmp[8];
    size_t n = td_put_varint(tmp, v);
    if (!n && !w->err) w->err = TD_INVALID_FIELD;
    w_bytes(w, tmp, n);
}

static void w_str(wr *w, td_str s, uint32_t max)
{
    if (!w->err && s.len > max) w->err = TD_STRING_TOO_LONG;
    if (!w->err && !td_utf8_valid((const uint8_t *)s.p, s.len)) w->err = TD_INVALID_UTF8;
    w_varint(w, s.len);
    w_bytes(w, s.p, s.len);
}

int td_encode_hub_frame(uint8_t *out, size_t cap, size_t *len, const td_hub_frame *f, const td_limits *limits)
{
    const td_limits *lim = LIM(limits);
    wr w;
    uint8_t t = f->type;
    td_str msg;
    w.p = out;
    w.cap = cap;
    w.pos = 0;
    w.err = 0;
    w_bytes(&w, &t, 1);
    switch (t) {
    case TD_WELCOME:
        w_varint(&w, f->u.welcome.server_time);
        w_varint(&w, f->u.welcome.acked_seq);
        w_varint(&w, f->u.welcome.heartbeat_ms);
        w_varint(&w, f->u.welcome.max_frame_bytes);
        w_varint(&w, f->u.welcome.max_batch);
        w_varint(&w, f->u.welcome.max_rate);
        break;
    case TD_ACK: w_varint(&w, f->u.ack.seq); break;
    case TD_COMMAND:
        if (f->u.command.id < 1 || !f->u.command.name.len) return TD_INVALID_FIELD;
        w_varint(&w, f->u.command.id);
        w_str(&w, f->u.command.name, lim->max_command_name_bytes);
        w_str(&w, f->u.command.args, lim->max_command_args_bytes);
        w_varint(&w, f->u.command.timeout_ms);
        break;
    case TD_ERROR:
        w_varint(&w, f->u.error.code);
        w_varint(&w, f->u.error.seq);
        w_varint(&w, f->u.error.alias < 0 ? 0u : (uint64_t)f->u.error.alias + 1u); /* §7.6.1 */
        msg = f->u.error.message;
        if (msg.len > lim->max_message_bytes) { /* cut at a character boundary */
            msg.len = lim->max_message_bytes;
            while (msg.len && ((uint8_t)msg.p[msg.len] & 0xC0u) == 0x80u) msg.len--;
        }
        w_str(&w, msg, lim->max_message_bytes);
        break;
    case TD_BACKOFF:
        w_varint(&w, f->u.backoff.code);
        w_varint(&w, f->u.backoff.pause_ms);
        break;
    default: return TD_UNKNOWN_FRAME_TYPE;
    }
    if (!w.err && w.pos > lim->max_frame_bytes) w.err = TD_FRAME_TOO_LARGE;
    if (!w.err) *len = w.pos;
    return w.err;
}
