/*
 * The C half of the TypeScript/C cross test (test/e2e/c-sdk.test.ts): reads frames described one per line on
 * stdin, encodes each with the C SDK, prints its hex per line. Two modes:
 *   codec  (default) each line is one frame for the codec's encoders, with the delta context carried over:
 *          C prevSeq prevTs          set the context (no output)
 *          R seq ts|- n v...         READING / READING_UNTIMED;  v = alias:type:payload
 *          B k  then k lines  E seq ts n v...   BATCH
 *          H id token fw sdk epoch lastSeq clock dropped m  then m lines  M alias kind flags name unit min max
 *          X id status detail        COMMAND_RESULT
 *          S dropped                 STATUS
 *   device (argv[1] == "device") the lines are readings for td_device_send (R with ts), after a WELCOME whose
 *          ackedSeq and the HELLO clock are given by the first line W ackedSeq clock; prints each frame the
 *          device client puts on the wire (payload hex), so whole-client bytes are compared too.
 * Payloads: f32/f64 as IEEE bits in hex, int in decimal, bool none, string as hex UTF-8 ("-" = empty).
 * Strings in H/M/X lines are hex too. An encoder refusal prints "ERR <code>".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_hub.h"
#include "tendril_device.h"

static char strings[64][4096];
static int nstrings;

static td_str hexstr(const char *h)
{
    char *s = strings[nstrings++ % 64];
    size_t n = 0;
    td_str r;
    if (strcmp(h, "-"))
        for (; h[0] && h[1]; h += 2) {
            unsigned b;
            sscanf(h, "%2x", &b);
            s[n++] = (char)b;
        }
    r.p = s;
    r.len = n;
    return r;
}

static int parse_value(const char *tok, td_value *v)
{
    unsigned alias, type;
    char payload[4096] = "";
    unsigned long long bits;
    if (sscanf(tok, "%u:%u:%4095s", &alias, &type, payload) < 2) return -1;
    memset(v, 0, sizeof *v);
    v->alias = (uint16_t)alias;
    v->type = (uint8_t)type;
    if (type == TD_VT_F32) {
        uint32_t b;
        bits = strtoull(payload, NULL, 16);
        b = (uint32_t)bits;
        memcpy(&v->v.f32, &b, 4);
    } else if (type == TD_VT_F64) {
        bits = strtoull(payload, NULL, 16);
        memcpy(&v->v.f64, &bits, 8);
    } else if (type == TD_VT_INT) {
        v->v.i = strtoll(payload, NULL, 10);
    } else if (type == TD_VT_STRING) {
        v->v.s = hexstr(payload[0] ? payload : "-");
    }
    return 0;
}

/* "seq ts|- n v..." into r, values into vals; returns the number of values used. */
static size_t parse_reading(char *line, td_reading *r, td_value *vals)
{
    char *tok = strtok(line, " \n"), ts[32];
    size_t n, i;
    r->seq = strtoull(tok, NULL, 10);
    strncpy(ts, strtok(NULL, " \n"), sizeof ts - 1);
    ts[31] = 0;
    r->timed = strcmp(ts, "-") != 0;
    r->ts = r->timed ? strtoull(ts, NULL, 10) : 0;
    n = strtoul(strtok(NULL, " \n"), NULL, 10);
    for (i = 0; i < n; i++) parse_value(strtok(NULL, " \n"), &vals[i]);
    r->count = (uint8_t)n;
    r->values = vals;
    return n;
}

static void print_hex(const uint8_t *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) printf("%02x", p[i]);
    printf("\n");
}

static int codec_mode(void)
{
    static char line[1 << 16];
    static td_value vals[256 * 64];
    static td_reading rs[256];
    static td_metric ms[64];
    static uint8_t out[1 << 16];
    td_ctx ctx = {0, 0};
    size_t len;
    int e;
    while (fgets(line, sizeof line, stdin)) {
        char kind = line[0];
        char *rest = line + 2;
        e = TD_OK;
        nstrings = 0;
        if (kind == 'C') {
            unsigned long long a, b;
            sscanf(rest, "%llu %llu", &a, &b);
            ctx.prev_seq = a;
            ctx.prev_ts = b;
            continue;
        } else if (kind == 'R') {
            parse_reading(rest, &rs[0], vals);
            e = td_encode_reading(out, sizeof out, &len, &rs[0], &ctx, NULL);
        } else if (kind == 'B') {
            size_t k = strtoul(rest, NULL, 10), i, used = 0;
            for (i = 0; i < k && fgets(line, sizeof line, stdin); i++) used += parse_reading(line + 2, &rs[i], vals + used);
            e = td_encode_batch(out, sizeof out, &len, rs, k, &ctx, NULL);
        } else if (kind == 'H') {
            td_hello h;
            char id[512], tok[512], fw[512], sdk[512];
            unsigned long long epoch, last, clock, dropped;
            unsigned m, i;
            memset(&h, 0, sizeof h);
            sscanf(rest, "%511s %511s %511s %511s %llu %llu %llu %llu %u", id, tok, fw, sdk, &epoch, &last, &clock, &dropped, &m);
            h.device_id = hexstr(id);
            h.token = hexstr(tok);
            h.firmware = hexstr(fw);
            h.sdk = hexstr(sdk);
            h.epoch = (uint32_t)epoch;
            h.last_seq = last;
            h.clock = clock;
            h.dropped = dropped;
            h.metric_count = (uint8_t)m;
            for (i = 0; i < m && fgets(line, sizeof line, stdin); i++) {
                char name[512], unit[512], lo[32], hi[32];
                unsigned alias, k, flags;
                unsigned long long b;
                sscanf(line + 2, "%u %u %u %511s %511s %31s %31s", &alias, &k, &flags, name, unit, lo, hi);
                memset(&ms[i], 0, sizeof ms[i]);
                ms[i].alias = (uint16_t)alias;
                ms[i].kind = (uint8_t)k;
                ms[i].flags = (uint8_t)flags;
                ms[i].name = hexstr(name);
                ms[i].unit = hexstr(unit);
                b = strtoull(lo, NULL, 16);
                memcpy(&ms[i].min, &b, 8);
                b = strtoull(hi, NULL, 16);
                memcpy(&ms[i].max, &b, 8);
            }
            h.metrics = ms;
            e = td_encode_hello(out, sizeof out, &len, &h, NULL);
        } else if (kind == 'X') {
            unsigned long long id;
            unsigned status;
            char detail[8192];
            sscanf(rest, "%llu %u %8191s", &id, &status, detail);
            e = td_encode_command_result(out, sizeof out, &len, id, (uint8_t)status, hexstr(detail), NULL);
        } else if (kind == 'S') {
            e = td_encode_status(out, sizeof out, &len, strtoull(rest, NULL, 10), NULL);
        } else {
            continue;
        }
        if (e) printf("ERR %d\n", e);
        else print_hex(out, len);
    }
    return 0;
}

/* The device client over the fake transport: every frame it writes after WELCOME, one per line. */
static fake F;
static int device_mode(void)
{
    static const td_metric metrics[] = {
        {0, TD_KIND_F32, 0, TD_S("temperature"), TD_S(""), 0, 0}, {1, TD_KIND_F32, 0, TD_S("humidity"), TD_S(""), 0, 0},
        {2, TD_KIND_F32, 0, TD_S("pressure"), TD_S(""), 0, 0},    {3, TD_KIND_F64, 0, TD_S("energy"), TD_S(""), 0, 0},
        {4, TD_KIND_INT, 0, TD_S("count"), TD_S(""), 0, 0},       {5, TD_KIND_BOOL, 0, TD_S("door"), TD_S(""), 0, 0},
        {6, TD_KIND_STRING, 0, TD_S("state"), TD_S(""), 0, 0},    {20, TD_KIND_F32, 0, TD_S("far.alias"), TD_S(""), 0, 0},
    };
    static td_device dev;
    static uint8_t store[1 << 16], rx[1024], tx[1 << 14];
    static char line[1 << 14];
    static td_value vals[64];
    td_transport t;
    td_device_config cfg;
    td_hub_frame w;
    uint8_t buf[1 << 14], op;
    unsigned long long acked = 0, clock = 0;
    size_t n;
    int masked;
    fake_transport(&t, &F);
    memset(&cfg, 0, sizeof cfg);
    cfg.host = "h";
    cfg.device_id = td_s("cross");
    cfg.token = td_s("t");
    cfg.metrics = metrics;
    cfg.metric_count = sizeof metrics / sizeof metrics[0];
    cfg.epoch = 1;
    if (!fgets(line, sizeof line, stdin) || sscanf(line, "W %llu %llu", &acked, &clock) != 2) return 2;
    if (td_device_init(&dev, &cfg, &t, store, sizeof store, rx, sizeof rx, tx, sizeof tx)) return 3;
    td_device_set_clock(&dev, clock);
    td_device_start(&dev);
    td_device_poll(&dev);
    fake_accept(&F, NULL, 0);
    td_device_poll(&dev);
    fake_take(&F, &op, buf, &n, &masked, NULL); /* HELLO */
    memset(&w, 0, sizeof w);
    w.type = TD_WELCOME;
    w.u.welcome.acked_seq = acked;
    w.u.welcome.heartbeat_ms = 10000;
    w.u.welcome.max_frame_bytes = 16384;
    w.u.welcome.max_batch = 256;
    {
        size_t wl;
        td_encode_hub_frame(buf, sizeof buf, &wl, &w, NULL);
        fake_binary(&F, buf, wl);
    }
    td_device_poll(&dev);
    while (fgets(line, sizeof line, stdin)) {
        td_reading r;
        nstrings = 0;
        if (line[0] != 'R') continue;
        parse_reading(line + 2, &r, vals);
        /* the device stamps TD_TS_NOW from its clock: move the fake clock to the reading's time */
        if (r.timed) F.now += (uint32_t)(r.ts - td_device_now(&dev));
        fake_frame(&F, 0x89, (const uint8_t *)"hb00", 4); /* the hub's heartbeat keeps the connection alive */
        if (td_device_send(&dev, vals, r.count, r.timed ? TD_TS_NOW : TD_TS_NONE, NULL)) {
            printf("ERR\n");
            continue;
        }
        td_device_poll(&dev);
        while (fake_take(&F, &op, buf, &n, &masked, NULL))
            if (op == 0x82) print_hex(buf, n); /* not the pongs */
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "device")) return device_mode();
    return codec_mode();
}
