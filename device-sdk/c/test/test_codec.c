/*
 * The C codec against the golden vectors (docs/vectors/tendril-v1.json through the generated
 * build/vectors.h): every valid vector decoded and encoded (and round-tripped), every invalid one failing
 * with its code; the registry against device-sdk/src/codec/errors.ts; primitives and limits.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "tendril_codec.h"
#include "vectors.h"

#define NV (sizeof valid_vectors / sizeof valid_vectors[0])
#define NI (sizeof invalid_vectors / sizeof invalid_vectors[0])

static td_metric metrics_buf[256];
static td_reading readings_buf[512];
static td_value values_buf[4096];
static const td_decode_space space = {metrics_buf, 256, readings_buf, 512, values_buf, 4096};

static int str_is(td_str s, xstr x)
{
    return s.len == x.len && (!x.len || !memcmp(s.p, x.p, x.len));
}

static td_str str_of(xstr x)
{
    td_str s;
    s.p = x.p ? x.p : "";
    s.len = x.len;
    return s;
}

static uint32_t f32_bits(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

static uint64_t f64_bits(double d)
{
    uint64_t b;
    memcpy(&b, &d, 8);
    return b;
}

static td_value value_of(const xvalue *x)
{
    td_value v;
    uint32_t b32 = (uint32_t)x->bits;
    memset(&v, 0, sizeof v);
    v.alias = x->alias;
    v.type = x->type;
    if (x->type == TD_VT_F32) memcpy(&v.v.f32, &b32, 4);
    else if (x->type == TD_VT_F64) memcpy(&v.v.f64, &x->bits, 8);
    else if (x->type == TD_VT_INT) v.v.i = x->i;
    else if (x->type == TD_VT_STRING) v.v.s = str_of(x->s);
    return v;
}

static void check_value(const td_value *v, const xvalue *x)
{
    CHECK_EQ(v->alias, x->alias);
    CHECK_EQ(v->type, x->type);
    if (x->type == TD_VT_F32) CHECK_EQ(f32_bits(v->v.f32), x->bits);
    if (x->type == TD_VT_F64) CHECK_EQ(f64_bits(v->v.f64), x->bits);
    if (x->type == TD_VT_INT) CHECK_EQ(v->v.i, x->i);
    if (x->type == TD_VT_STRING) CHECK(str_is(v->v.s, x->s));
}

static void check_decoded_device(const xvalid *x, const td_device_frame *f)
{
    size_t i, j;
    CHECK_EQ(f->type, x->type == TD_READING_UNTIMED ? TD_READING_UNTIMED : x->type);
    switch (x->type) {
    case TD_HELLO:
        CHECK(str_is(f->hello.device_id, x->s[0]));
        CHECK(str_is(f->hello.token, x->s[1]));
        CHECK(str_is(f->hello.firmware, x->s[2]));
        CHECK(str_is(f->hello.sdk, x->s[3]));
        CHECK_EQ(f->hello.epoch, x->n[0]);
        CHECK_EQ(f->hello.last_seq, x->n[1]);
        CHECK_EQ(f->hello.clock, x->n[2]);
        CHECK_EQ(f->hello.dropped, x->n[3]);
        CHECK_EQ(f->hello.metric_count, x->metric_count);
        for (i = 0; i < x->metric_count && i < f->hello.metric_count; i++) {
            const td_metric *m = &f->hello.metrics[i];
            const xmetric *e = &x->metrics[i];
            CHECK_EQ(m->alias, e->alias);
            CHECK_EQ(m->kind, e->kind);
            CHECK_EQ(m->flags, e->flags);
            CHECK(str_is(m->name, e->name));
            CHECK(str_is(m->unit, e->unit));
            if (e->flags & TD_HAS_MIN) CHECK_EQ(f64_bits(m->min), e->min_bits);
            if (e->flags & TD_HAS_MAX) CHECK_EQ(f64_bits(m->max), e->max_bits);
        }
        break;
    case TD_READING:
    case TD_READING_UNTIMED:
    case TD_BATCH:
        CHECK_EQ(f->reading_count, x->reading_count);
        for (i = 0; i < x->reading_count && i < f->reading_count; i++) {
            const td_reading *r = &f->readings[i];
            const xreading *e = &x->readings[i];
            CHECK_EQ(r->seq, e->seq);
            CHECK_EQ(r->timed, e->timed);
            if (e->timed) CHECK_EQ(r->ts, e->ts);
            CHECK_EQ(r->count, e->count);
            for (j = 0; j < e->count && j < r->count; j++) check_value(&r->values[j], &x->values[e->first + j]);
        }
        break;
    case TD_COMMAND_RESULT:
        CHECK_EQ(f->command_result.id, x->n[0]);
        CHECK_EQ(f->command_result.status, x->status);
        CHECK(str_is(f->command_result.detail, x->s[0]));
        break;
    case TD_STATUS: CHECK_EQ(f->dropped, x->n[0]); break;
    default: CHECK(0 && "unexpected device frame type");
    }
}

static void check_decoded_hub(const xvalid *x, const td_hub_frame *f)
{
    CHECK_EQ(f->type, x->type);
    switch (x->type) {
    case TD_WELCOME:
        CHECK_EQ(f->u.welcome.server_time, x->n[0]);
        CHECK_EQ(f->u.welcome.acked_seq, x->n[1]);
        CHECK_EQ(f->u.welcome.heartbeat_ms, x->n[2]);
        CHECK_EQ(f->u.welcome.max_frame_bytes, x->n[3]);
        CHECK_EQ(f->u.welcome.max_batch, x->n[4]);
        CHECK_EQ(f->u.welcome.max_rate, x->n[5]);
        break;
    case TD_ACK: CHECK_EQ(f->u.ack.seq, x->n[0]); break;
    case TD_COMMAND:
        CHECK_EQ(f->u.command.id, x->n[0]);
        CHECK_EQ(f->u.command.timeout_ms, x->n[1]);
        CHECK(str_is(f->u.command.name, x->s[0]));
        CHECK(str_is(f->u.command.args, x->s[1]));
        break;
    case TD_ERROR:
        CHECK_EQ(f->u.error.code, x->n[0]);
        CHECK_EQ(f->u.error.seq, x->n[1]);
        CHECK_EQ(f->u.error.alias, x->alias);
        CHECK(str_is(f->u.error.message, x->s[0]));
        break;
    case TD_BACKOFF:
        CHECK_EQ(f->u.backoff.code, x->n[0]);
        CHECK_EQ(f->u.backoff.pause_ms, x->n[1]);
        break;
    default: CHECK(0 && "unexpected hub frame type");
    }
}

/* Encodes the expected frame of a valid vector with the C encoders. */
static int encode_expected(const xvalid *x, uint8_t *out, size_t cap, size_t *len, td_ctx *ctx, const td_limits *lim)
{
    static td_metric m[256];
    static td_value v[4096];
    static td_reading r[512];
    td_hello h;
    td_hub_frame f;
    size_t i;
    switch (x->type) {
    case TD_HELLO:
        memset(&h, 0, sizeof h);
        h.device_id = str_of(x->s[0]);
        h.token = str_of(x->s[1]);
        h.firmware = str_of(x->s[2]);
        h.sdk = str_of(x->s[3]);
        h.epoch = (uint32_t)x->n[0];
        h.last_seq = x->n[1];
        h.clock = x->n[2];
        h.dropped = x->n[3];
        h.metric_count = (uint8_t)x->metric_count;
        for (i = 0; i < x->metric_count; i++) {
            memset(&m[i], 0, sizeof m[i]);
            m[i].alias = x->metrics[i].alias;
            m[i].kind = x->metrics[i].kind;
            m[i].flags = x->metrics[i].flags;
            m[i].name = str_of(x->metrics[i].name);
            m[i].unit = str_of(x->metrics[i].unit);
            memcpy(&m[i].min, &x->metrics[i].min_bits, 8);
            memcpy(&m[i].max, &x->metrics[i].max_bits, 8);
        }
        h.metrics = m;
        return td_encode_hello(out, cap, len, &h, lim);
    case TD_READING:
    case TD_READING_UNTIMED:
    case TD_BATCH: {
        size_t nv = 0;
        for (i = 0; i < x->reading_count; i++) {
            size_t j;
            r[i].seq = x->readings[i].seq;
            r[i].ts = x->readings[i].ts;
            r[i].timed = (uint8_t)x->readings[i].timed;
            r[i].count = (uint8_t)x->readings[i].count;
            r[i].values = &v[nv];
            for (j = 0; j < x->readings[i].count; j++) v[nv++] = value_of(&x->values[x->readings[i].first + j]);
        }
        if (x->type == TD_BATCH) return td_encode_batch(out, cap, len, r, x->reading_count, ctx, lim);
        return td_encode_reading(out, cap, len, &r[0], ctx, lim);
    }
    case TD_COMMAND_RESULT:
        return td_encode_command_result(out, cap, len, x->n[0], (uint8_t)x->status, str_of(x->s[0]), lim);
    case TD_STATUS: return td_encode_status(out, cap, len, x->n[0], lim);
    default:
        memset(&f, 0, sizeof f);
        f.type = (uint8_t)x->type;
        if (x->type == TD_WELCOME) {
            f.u.welcome.server_time = x->n[0];
            f.u.welcome.acked_seq = x->n[1];
            f.u.welcome.heartbeat_ms = x->n[2];
            f.u.welcome.max_frame_bytes = x->n[3];
            f.u.welcome.max_batch = x->n[4];
            f.u.welcome.max_rate = x->n[5];
        } else if (x->type == TD_ACK) {
            f.u.ack.seq = x->n[0];
        } else if (x->type == TD_COMMAND) {
            f.u.command.id = x->n[0];
            f.u.command.timeout_ms = x->n[1];
            f.u.command.name = str_of(x->s[0]);
            f.u.command.args = str_of(x->s[1]);
        } else if (x->type == TD_ERROR) {
            f.u.error.code = x->n[0];
            f.u.error.seq = x->n[1];
            f.u.error.alias = x->alias;
            f.u.error.message = str_of(x->s[0]);
        } else if (x->type == TD_BACKOFF) {
            f.u.backoff.code = x->n[0];
            f.u.backoff.pause_ms = x->n[1];
        }
        return td_encode_hub_frame(out, cap, len, &f, lim);
    }
}

static void test_valid_vectors(void)
{
    size_t k;
    for (k = 0; k < NV; k++) {
        const xvalid *x = &valid_vectors[k];
        const td_limits *lim = x->has_limits ? &x->limits : NULL;
        uint8_t out[20000];
        size_t len = 0;
        int err;
        check_context = x->name;
        if (x->hub) {
            td_hub_frame f;
            err = td_decode_hub_frame(x->hex, x->len, &f, lim);
            CHECK_EQ(err, TD_OK);
            if (!err) check_decoded_hub(x, &f);
            err = encode_expected(x, out, sizeof out, &len, NULL, lim);
        } else {
            td_device_frame f;
            td_ctx ctx = x->ctx, enc_ctx = x->ctx;
            err = td_decode_device_frame(x->hex, x->len, &ctx, lim, &f, &space);
            CHECK_EQ(err, TD_OK);
            if (!err) check_decoded_device(x, &f);
            if (x->has_ctx) {
                CHECK_EQ(ctx.prev_seq, x->after.prev_seq);
                CHECK_EQ(ctx.prev_ts, x->after.prev_ts);
            }
            err = encode_expected(x, out, sizeof out, &len, &enc_ctx, lim);
            if (x->has_ctx) {
                CHECK_EQ(enc_ctx.prev_seq, x->after.prev_seq);
                CHECK_EQ(enc_ctx.prev_ts, x->after.prev_ts);
            }
        }
        CHECK_EQ(err, TD_OK);
        /* §14: encoding `decoded` gives `reencoded` where the hex is a non-minimal form, else the hex */
        CHECK_EQ(len, x->re ? x->re_len : x->len);
        CHECK(len == (x->re ? x->re_len : x->len) && !memcmp(out, x->re ? x->re : x->hex, len));
        /* the encoder refuses a buffer one byte too small, and never writes past it */
        if (len > 1) {
            size_t len2 = 0;
            td_ctx c2 = x->ctx;
            out[len - 1] = 0xAA;
            CHECK_EQ(encode_expected(x, out, len - 1, &len2, &c2, lim), TD_E_NOSPACE);
            CHECK_EQ(out[len - 1], 0xAA);
            CHECK_EQ(c2.prev_seq, x->ctx.prev_seq); /* ctx untouched on failure */
        }
    }
    check_context = "";
}

static void test_invalid_vectors(void)
{
    size_t k;
    for (k = 0; k < NI; k++) {
        const xinvalid *x = &invalid_vectors[k];
        const td_limits *lim = x->has_limits ? &x->limits : NULL;
        int err;
        check_context = x->name;
        if (x->hub) {
            td_hub_frame f;
            err = td_decode_hub_frame(x->hex, x->len, &f, lim);
        } else {
            td_device_frame f;
            td_ctx ctx = x->ctx;
            err = td_decode_device_frame(x->hex, x->len, &ctx, lim, &f, &space);
            /* §5.1.5: a frame that fails leaves the context alone */
            CHECK_EQ(ctx.prev_seq, x->ctx.prev_seq);
            CHECK_EQ(ctx.prev_ts, x->ctx.prev_ts);
        }
        CHECK_EQ(err, x->code);
        CHECK_EQ(err == TD_FRAME_TRUNCATED, x->incomplete); /* §9.1.1: the only "not enough bytes" code */
    }
    check_context = "";
}

/* §11: names and close codes agree with the TypeScript registry (device-sdk/src/codec/errors.ts) */
static void test_registry(void)
{
    size_t i;
    for (i = 0; i < sizeof ts_registry / sizeof ts_registry[0]; i++) {
        check_context = ts_registry[i].name;
        CHECK(!strcmp(td_err_name(ts_registry[i].wire), ts_registry[i].name));
        CHECK_EQ(td_err_close_code(ts_registry[i].wire), ts_registry[i].close);
    }
    check_context = "";
    CHECK(!strcmp(td_err_name(99), "UNKNOWN"));
}

static void test_primitives(void)
{
    static const struct {
        uint64_t v;
        const char *hex;
        size_t n;
    } cases[] = {{0, "\x00", 1},       {127, "\x7f", 1},         {128, "\x80\x01", 2},
                 {300, "\xac\x02", 2}, {16384, "\x80\x80\x01", 3}, {TD_MAX_SAFE, "\xff\xff\xff\xff\xff\xff\xff\x0f", 8}};
    uint8_t b[8];
    uint64_t v;
    size_t i, used;
    check_context = "§2.2 varint";
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK_EQ(td_put_varint(b, cases[i].v), cases[i].n);
        CHECK(!memcmp(b, cases[i].hex, cases[i].n));
        CHECK_EQ(td_get_varint((const uint8_t *)cases[i].hex, cases[i].n, &v, &used), TD_OK);
        CHECK_EQ(v, cases[i].v);
        CHECK_EQ(used, cases[i].n);
        if (cases[i].n > 1) CHECK_EQ(td_get_varint((const uint8_t *)cases[i].hex, cases[i].n - 1, &v, &used), TD_FRAME_TRUNCATED);
    }
    CHECK_EQ(td_put_varint(b, TD_MAX_SAFE + 1), 0);
    CHECK_EQ(td_get_varint((const uint8_t *)"\x80\x00", 2, &v, &used), TD_OK); /* §2.2.4 non-minimal accepted */
    CHECK_EQ(v, 0);
    check_context = "§2.3 zigzag";
    CHECK_EQ(td_zigzag(-1), 1);
    CHECK_EQ(td_zigzag(1), 2);
    CHECK_EQ(td_zigzag(1000), 2000);
    CHECK_EQ(td_unzigzag(2000), 1000);
    CHECK_EQ(td_unzigzag(1), -1);
    CHECK_EQ(td_unzigzag(TD_MAX_SAFE), -4503599627370496ll);
    check_context = "§2.5.3 utf8";
    CHECK(td_utf8_valid((const uint8_t *)"\xc2\xb0" "C", 3));
    CHECK(td_utf8_valid((const uint8_t *)"\xf4\x8f\xbf\xbf", 4));
    CHECK(td_utf8_valid((const uint8_t *)"\xef\xbb\xbf", 3)); /* BOM is content */
    CHECK(!td_utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4));
    CHECK(!td_utf8_valid((const uint8_t *)"\xe0\x80\x80", 3));
    CHECK(!td_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3));
    CHECK(!td_utf8_valid((const uint8_t *)"\xc0\x80", 2));
    CHECK(!td_utf8_valid((const uint8_t *)"\xe2\x82", 2));
    CHECK(!td_utf8_valid((const uint8_t *)"\x80", 1));
    CHECK(!td_utf8_valid((const uint8_t *)"\xff", 1));
    check_context = "";
}

/* §9.2: every string limit of the encoder is an option; one byte over fails with STRING_TOO_LONG, at the
 * limit it passes, and the hub-side decoder agrees. */
static void test_limits(void)
{
    static const char long_text[] = "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz";
    td_limits lim = td_limits_default;
    td_metric m;
    td_hello h;
    td_value v;
    td_reading r;
    td_ctx ctx = {0, 0};
    uint8_t out[600];
    size_t len;
    td_device_frame f;
    td_ctx dctx;
    unsigned field;
    memset(&m, 0, sizeof m);
    m.alias = 1;
    m.kind = TD_KIND_F32;
    m.name = td_s("temp");
    m.unit = td_s("C");
    for (field = 0; field < 6; field++) {
        uint32_t *limit[6];
        td_str *target[6];
        uint32_t saved;
        td_str text;
        memset(&h, 0, sizeof h);
        h.device_id = td_s("dev-1");
        h.token = td_s("tok");
        h.firmware = td_s("1");
        h.sdk = td_s("c");
        h.epoch = 7;
        h.metric_count = 1;
        h.metrics = &m;
        limit[0] = &lim.max_device_id_bytes, target[0] = &h.device_id;
        limit[1] = &lim.max_token_bytes, target[1] = &h.token;
        limit[2] = &lim.max_version_bytes, target[2] = &h.firmware;
        limit[3] = &lim.max_version_bytes, target[3] = &h.sdk;
        limit[4] = &lim.max_metric_name_bytes, target[4] = &m.name;
        limit[5] = &lim.max_unit_bytes, target[5] = &m.unit;
        saved = *limit[field];
        *limit[field] = 10;
        text.p = long_text;
        text.len = 10;
        *target[field] = text;
        check_context = "§9.2 string limits at the limit";
        CHECK_EQ(td_encode_hello(out, sizeof out, &len, &h, &lim), TD_OK);
        dctx = ctx;
        CHECK_EQ(td_decode_device_frame(out, len, &dctx, &lim, &f, &space), TD_OK);
        text.len = 11;
        *target[field] = text;
        check_context = "§9.2 string limits one over";
        CHECK_EQ(td_encode_hello(out, sizeof out, &len, &h, &lim), TD_STRING_TOO_LONG);
        *limit[field] = 11;
        CHECK_EQ(td_encode_hello(out, sizeof out, &len, &h, &lim), TD_OK);
        *limit[field] = 10;
        dctx = ctx;
        CHECK_EQ(td_decode_device_frame(out, len, &dctx, &lim, &f, &space), TD_STRING_TOO_LONG);
        *limit[field] = saved;
        m.name = td_s("temp");
        m.unit = td_s("C");
    }
    check_context = "§9.2 maxFrameBytes, maxStringValueBytes, maxMetrics, maxAlias";
    v = td_string(3, td_s(long_text));
    r.seq = 1;
    r.ts = 5;
    r.timed = 1;
    r.count = 1;
    r.values = &v;
    lim = td_limits_default;
    lim.max_string_value_bytes = 20;
    CHECK_EQ(td_encode_reading(out, sizeof out, &len, &r, &ctx, &lim), TD_STRING_TOO_LONG);
    lim = td_limits_default;
    lim.max_frame_bytes = 20;
    CHECK_EQ(td_encode_reading(out, sizeof out, &len, &r, &ctx, &lim), TD_FRAME_TOO_LARGE);
    CHECK_EQ(ctx.prev_seq, 0);
    lim = td_limits_default;
    lim.max_alias = 2;
    CHECK_EQ(td_encode_reading(out, sizeof out, &len, &r, &ctx, &lim), TD_INVALID_FIELD);
    lim.max_metrics = 0;
    lim.max_alias = 1023;
    CHECK_EQ(td_encode_reading(out, sizeof out, &len, &r, &ctx, &lim), TD_TOO_MANY_METRICS);
    lim = td_limits_default;
    lim.max_batch = 1;
    {
        td_reading two[2];
        two[0] = r;
        two[1] = r;
        two[1].seq = 2;
        CHECK_EQ(td_encode_batch(out, sizeof out, &len, two, 2, &ctx, &lim), TD_BATCH_TOO_LARGE);
        CHECK_EQ(td_encode_batch(out, sizeof out, &len, two, 1, &ctx, &lim), TD_OK);
    }
    check_context = "encoder refusals (§4, §5, §8)";
    ctx.prev_seq = 0;
    ctx.prev_ts = 0;
    v = td_int(0, 4503599627370496ll); /* 2^52: outside -2^52..2^52-1 */
    CHECK_EQ(td_encode_reading(out, sizeof out, &len, &r, &ctx, NULL), TD_INVALID_FIELD);
    v = td_string(0, td_s("\xed\xa0\x80"));
    CHECK_EQ(td_encode_reading(out, sizeof out, &len, &r, &ctx, NULL), TD_INVALID_UTF8);
    r.count = 0;
    CHECK_EQ(td_encode_reading(out, sizeof out, &len, &r, &ctx, NULL), TD_EMPTY_READING);
    r.count = 1;
    r.seq = 0;
    v = td_bool(0, 1);
    CHECK_EQ(td_encode_reading(out, sizeof out, &len, &r, &ctx, NULL), TD_INVALID_FIELD);
    CHECK_EQ(td_encode_command_result(out, sizeof out, &len, 0, 1, td_s(""), NULL), TD_INVALID_FIELD);
    CHECK_EQ(td_encode_command_result(out, sizeof out, &len, 1, 4, td_s(""), NULL), TD_INVALID_FIELD);
    memset(&h, 0, sizeof h);
    h.device_id = td_s("bad id");
    h.token = td_s("t");
    CHECK_EQ(td_encode_hello(out, sizeof out, &len, &h, NULL), TD_INVALID_FIELD);
    h.device_id = td_s("ok:id");
    CHECK_EQ(td_encode_hello(out, sizeof out, &len, &h, NULL), TD_OK);
    h.token = td_s("");
    CHECK_EQ(td_encode_hello(out, sizeof out, &len, &h, NULL), TD_INVALID_FIELD);
    h.token = td_s("t");
    {
        td_metric two[2];
        memset(two, 0, sizeof two);
        two[0].name = td_s("a");
        two[1].name = td_s("b");
        two[1].alias = 0;
        h.metrics = two;
        h.metric_count = 2;
        CHECK_EQ(td_encode_hello(out, sizeof out, &len, &h, NULL), TD_INVALID_FIELD); /* alias twice */
        two[1].alias = 1;
        two[1].name = td_s("a");
        CHECK_EQ(td_encode_hello(out, sizeof out, &len, &h, NULL), TD_INVALID_FIELD); /* name twice */
        two[1].name = td_s("1b");
        CHECK_EQ(td_encode_hello(out, sizeof out, &len, &h, NULL), TD_INVALID_FIELD); /* name pattern */
        two[1].name = td_s("b");
        two[1].kind = TD_KIND_BOOL;
        two[1].flags = TD_HAS_MIN;
        CHECK_EQ(td_encode_hello(out, sizeof out, &len, &h, NULL), TD_INVALID_FIELD); /* bool with range */
        two[1].kind = TD_KIND_F64;
        two[1].flags = 3;
        two[1].min = 2;
        two[1].max = 1;
        CHECK_EQ(td_encode_hello(out, sizeof out, &len, &h, NULL), TD_INVALID_FIELD); /* min > max */
        two[1].min = -0.0;
        two[1].max = 0.0;
        CHECK_EQ(td_encode_hello(out, sizeof out, &len, &h, NULL), TD_OK);
        two[1].max = -1e300;
        two[1].min = -1e301;
        CHECK_EQ(td_encode_hello(out, sizeof out, &len, &h, NULL), TD_OK);
    }
    check_context = "";
}

/* Random bytes: only documented codes, no crash (the fuzzers do this at scale). */
static void test_random_bytes(void)
{
    uint32_t seed = 12345;
    const char *env = getenv("TD_TEST_ROUNDS"); /* valgrind runs fewer */
    int round, rounds = env ? atoi(env) : 200000;
    for (round = 0; round < rounds; round++) {
        uint8_t buf[64];
        size_t n, i;
        td_hub_frame hf;
        td_device_frame df;
        td_ctx ctx = {10, 1000};
        int e1, e2;
        seed = seed * 1103515245u + 12345u;
        n = (seed >> 16) % sizeof buf;
        for (i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            buf[i] = (uint8_t)(seed >> 16);
        }
        if (n) buf[0] = (uint8_t)((buf[0] & 7) | ((buf[0] & 8) ? 0x40 : 0));
        e1 = td_decode_hub_frame(buf, n, &hf, NULL);
        e2 = td_decode_device_frame(buf, n, &ctx, NULL, &df, &space);
        CHECK(e1 >= 0 && e1 <= 14);
        CHECK(e2 >= 0 && e2 <= 14);
    }
}

int main(void)
{
    test_valid_vectors();
    test_invalid_vectors();
    test_registry();
    test_primitives();
    test_limits();
    test_random_bytes();
    printf("golden vectors: %u valid, %u invalid\n", (unsigned)NV, (unsigned)NI);
    return check_report("test_codec");
}
