/*
 * The device client (tendril_device.c) against a fake hub: the hub side speaks tendril.v1 through the
 * peer codec (decode device frames, encode hub frames) over the fake transport, with a clock the test moves.
 * Each test names the clause it holds the client to.
 */
#include "check.h"
#include "fake_hub.h"
#include "tendril_device.h"

static fake F;
static td_transport T;
static td_device D;
static uint8_t STORE[4096], RX[512], TX[1024];

static td_metric dmetrics[256];
static td_reading dreadings[512];
static td_value dvalues[4096];
static const td_decode_space SPACE = {dmetrics, 256, dreadings, 512, dvalues, 4096};

static const td_metric METRICS[] = {
    {0, TD_KIND_F32, 0, TD_S("temperature"), TD_S("\xc2\xb0" "C"), 0, 0},
    {1, TD_KIND_F32, 0, TD_S("humidity"), TD_S("%"), 0, 0},
    {2, TD_KIND_F32, TD_HAS_MIN, TD_S("pressure"), TD_S("hPa"), 300.0, 0},
};

/* what the callbacks saw */
static td_event events[256];
static int nevents;
static int commands_run;
static int answer_commands = 1;

static void on_event(td_device *dev, const td_event *ev, void *user)
{
    (void)dev;
    (void)user;
    if (nevents < 256) events[nevents++] = *ev;
}

static void on_command(td_device *dev, const td_command *cmd, void *user)
{
    (void)user;
    commands_run++;
    if (!answer_commands) return;
    if (cmd->name.len == 4 && !memcmp(cmd->name.p, "ping", 4)) td_device_command_result(dev, cmd->id, TD_CMD_SUCCEEDED, td_s("\"pong\""));
    else td_device_command_result(dev, cmd->id, TD_CMD_FAILED, td_s("no such thing"));
}

static td_device_config CFG;

static int count_events(uint8_t type)
{
    int i, n = 0;
    for (i = 0; i < nevents; i++) n += events[i].type == type;
    return n;
}

static const td_event *last_event(uint8_t type)
{
    int i;
    for (i = nevents - 1; i >= 0; i--)
        if (events[i].type == type) return &events[i];
    return NULL;
}

static void setup(uint32_t epoch, size_t store_cap)
{
    fake_transport(&T, &F);
    memset(&CFG, 0, sizeof CFG);
    CFG.host = "hub.example";
    CFG.port = 8080;
    CFG.device_id = td_s("env-1");
    CFG.token = td_s("secret");
    CFG.firmware = td_s("1.2.0");
    CFG.metrics = METRICS;
    CFG.metric_count = 3;
    CFG.epoch = epoch;
    CFG.on_command = on_command;
    CFG.on_event = on_event;
    nevents = 0;
    commands_run = 0;
    answer_commands = 1;
    CHECK_EQ(td_device_init(&D, &CFG, &T, STORE, store_cap, RX, sizeof RX, TX, sizeof TX), TD_OK);
}

static void poll_n(int n)
{
    while (n--) td_device_poll(&D);
}

/* Next device frame the hub receives, decoded with the hub's context; 0 when none. Pongs are skipped. */
static td_ctx hub_ctx;
static int take(td_device_frame *out)
{
    uint8_t op, buf[4096];
    size_t n;
    int masked;
    while (fake_take(&F, &op, buf, &n, &masked, NULL)) {
        static uint8_t keep[4096];
        CHECK(masked); /* RFC 6455 §5.3: every client frame */
        if (op == 0x8A) continue;
        if (op != 0x82) return -(int)op;
        memcpy(keep, buf, n);
        CHECK_EQ(td_decode_device_frame(keep, n, &hub_ctx, NULL, out, &SPACE), TD_OK);
        return 1;
    }
    return 0;
}

static void hub_send(const td_hub_frame *f)
{
    uint8_t buf[2048];
    size_t n;
    CHECK_EQ(td_encode_hub_frame(buf, sizeof buf, &n, f, NULL), TD_OK);
    fake_binary(&F, buf, n);
}

static void hub_welcome(uint64_t acked, uint64_t heartbeat, uint64_t max_rate, const td_hello *hello)
{
    td_hub_frame f;
    memset(&f, 0, sizeof f);
    f.type = TD_WELCOME;
    f.u.welcome.server_time = 1732233600000ull;
    f.u.welcome.acked_seq = acked;
    f.u.welcome.heartbeat_ms = heartbeat;
    f.u.welcome.max_frame_bytes = 16384;
    f.u.welcome.max_batch = 256;
    f.u.welcome.max_rate = max_rate;
    hub_ctx.prev_seq = acked; /* §5.1.2 */
    hub_ctx.prev_ts = hello->clock;
    hub_send(&f);
}

static void hub_simple(uint8_t type, uint64_t a, uint64_t b)
{
    td_hub_frame f;
    memset(&f, 0, sizeof f);
    f.type = type;
    if (type == TD_ACK) f.u.ack.seq = a;
    if (type == TD_BACKOFF) f.u.backoff.code = a, f.u.backoff.pause_ms = b;
    hub_send(&f);
}

/* Starts (or waits for the reconnect), answers the upgrade, returns the HELLO. */
static td_hello connect_hello(void)
{
    td_device_frame fr;
    td_hello h;
    int i;
    memset(&h, 0, sizeof h);
    td_device_start(&D);
    for (i = 0; i < 100000 && !fake_request(&F); i++) {
        td_device_poll(&D);
        if (!fake_request(&F)) F.now += 1;
    }
    CHECK(fake_accept(&F, NULL, 0));
    poll_n(2);
    CHECK_EQ(D.state, TD_DEV_HELLO_SENT);
    hub_ctx.prev_seq = hub_ctx.prev_ts = 0;
    if (take(&fr) == 1 && fr.type == TD_HELLO) h = fr.hello;
    else CHECK(0 && "HELLO first");
    return h;
}

static float f32_of(const td_value *v)
{
    return v->v.f32;
}

/* The next n resent readings, as if one BATCH: one BATCH frame (TD_WITH_BATCH, the default), or n READING
 * frames (TD_WITH_BATCH=0). */
static int take_resent(td_device_frame *fr, size_t n)
{
#if TD_WITH_BATCH
    (void)n;
    CHECK_EQ(take(fr), 1);
    CHECK_EQ(fr->type, TD_BATCH);
    return 1;
#else
    static td_reading rs[8];
    static td_value vs[8][4];
    td_device_frame one;
    size_t i, j;
    for (i = 0; i < n && i < 8; i++) {
        CHECK_EQ(take(&one), 1);
        CHECK_EQ(one.type, TD_READING);
        rs[i] = one.readings[0];
        for (j = 0; j < rs[i].count && j < 4; j++) vs[i][j] = one.readings[0].values[j];
        rs[i].values = vs[i];
    }
    fr->type = TD_BATCH;
    fr->reading_count = i;
    fr->readings = rs;
    return 1;
#endif
}

static void send3(float t, int64_t ts)
{
    td_value v[3];
    v[0] = td_f32(0, t);
    v[1] = td_f32(1, 48.25f);
    v[2] = td_f32(2, 1013.25f);
    CHECK_EQ(td_device_send(&D, v, 3, ts, NULL), TD_OK);
}

static void test_hello_welcome_readings(void)
{
    td_hello h;
    td_device_frame fr;
    check_context = "§4.1 HELLO, §3.2 nothing before WELCOME";
    setup(0, sizeof STORE);
    td_device_set_clock(&D, 1732233600000ull);
    send3(1, TD_TS_NOW);
    F.now += 10;
    send3(2, TD_TS_NOW);
    h = connect_hello();
    CHECK(h.device_id.len == 5 && !memcmp(h.device_id.p, "env-1", 5));
    CHECK(h.token.len == 6 && !memcmp(h.token.p, "secret", 6));
    CHECK(h.sdk.len == 7 && !memcmp(h.sdk.p, "c/0.1.0", 7));
    CHECK(h.firmware.len == 5);
    CHECK(h.epoch != 0); /* §6.3.2: random */
    CHECK_EQ(h.last_seq, 2);
    CHECK_EQ(h.clock, 1732233600010ull);
    CHECK_EQ(h.dropped, 0);
    CHECK_EQ(h.metric_count, 3);
    CHECK(h.metric_count == 3 && h.metrics[2].flags == TD_HAS_MIN && h.metrics[2].min == 300.0);
    poll_n(3);
    CHECK_EQ(take(&fr), 0); /* §6.1.4 */
    check_context = "§6.3.4 after WELCOME: buffered readings as one BATCH, then live READING frames";
    hub_welcome(0, 10000, 0, &h);
    poll_n(2);
    CHECK_EQ(count_events(TD_EV_CONNECTED), 1);
    take_resent(&fr, 2);
    CHECK_EQ(fr.reading_count, 2);
    CHECK(fr.reading_count == 2 && fr.readings[0].seq == 1 && fr.readings[1].seq == 2);
    CHECK(fr.reading_count == 2 && fr.readings[0].ts == 1732233600000ull && fr.readings[1].ts == 1732233600010ull);
    CHECK(fr.reading_count == 2 && f32_of(&fr.readings[1].values[0]) == 2.0f);
    send3(3, TD_TS_NOW);
    send3(4, TD_TS_NONE);
    poll_n(1);
    CHECK_EQ(take(&fr), 1);
    CHECK(fr.type == TD_READING && fr.readings[0].seq == 3 && fr.readings[0].timed);
    CHECK_EQ(take(&fr), 1);
    CHECK(fr.type == TD_READING_UNTIMED && fr.readings[0].seq == 4 && !fr.readings[0].timed);
    check_context = "§7.3 ACK drops what it covers";
    CHECK_EQ(td_device_buffered(&D), 4);
    hub_simple(TD_ACK, 3, 0);
    poll_n(1);
    CHECK_EQ(td_device_buffered(&D), 1);
    CHECK(last_event(TD_EV_ACK) && last_event(TD_EV_ACK)->seq == 3);
    check_context = "";
}

static void test_size_budget(void)
{
    static const uint8_t frame[] = {0x02, 0x02, 0xd0, 0x0f, 0x00, 0x00, 0x00, 0xac, 0x41, 0x08,
                                    0x00, 0x00, 0x41, 0x42, 0x10, 0x00, 0x50, 0x7d, 0x44};
    td_hello h;
    uint8_t op, buf[64];
    size_t n, before;
    int masked;
    check_context = "§12: three f32 values, 1 s after the previous reading: 19 bytes of frame, 25 on the wire";
    setup(0xdeadbeef, sizeof STORE);
    td_device_set_clock(&D, 1732233600000ull);
    h = connect_hello();
    CHECK_EQ(h.epoch, 0xdeadbeefu);
    hub_welcome(41, 10000, 0, &h); /* the hub holds 1..41 of this epoch: ours are numbered after (§6.3.5) */
    poll_n(2);
    F.now += 1000;
    before = F.out_len - F.out_off;
    CHECK_EQ(before, 0);
    {
        td_value v[3];
        uint64_t seq = 0;
        v[0] = td_f32(0, 21.5f);
        v[1] = td_f32(1, 48.25f);
        v[2] = td_f32(2, 1013.25f);
        CHECK_EQ(td_device_send(&D, v, 3, TD_TS_NOW, &seq), TD_OK);
        CHECK_EQ(seq, 42);
    }
    poll_n(1);
    CHECK_EQ(F.out_len - F.out_off, 25);
    CHECK(fake_take(&F, &op, buf, &n, &masked, NULL));
    CHECK_EQ(n, 19);
    CHECK(n == 19 && !memcmp(buf, frame, 19)); /* the golden vector reading-three-f32-size-budget */
    check_context = "";
}

static void test_reconnect_resend(void)
{
    td_hello h;
    td_device_frame fr;
    int i;
    check_context = "§6.3.4 resend after a reconnect: everything above WELCOME.ackedSeq, oldest first";
    setup(7, sizeof STORE);
    td_device_set_clock(&D, 1732233600000ull);
    h = connect_hello();
    hub_welcome(0, 10000, 0, &h);
    poll_n(2);
    for (i = 0; i < 8; i++) {
        send3((float)i, TD_TS_NOW);
        poll_n(1);
        F.now += 100;
    }
    while (take(&fr) == 1) {}
    hub_simple(TD_ACK, 3, 0);
    poll_n(1);
    F.eof = 1; /* the hub vanished */
    poll_n(1);
    CHECK_EQ(count_events(TD_EV_DISCONNECTED), 1);
    CHECK(last_event(TD_EV_DISCONNECTED)->code == 1006 && last_event(TD_EV_DISCONNECTED)->will_reconnect);
    CHECK_EQ(D.state, TD_DEV_WAITING);
    h = connect_hello();
    CHECK_EQ(h.last_seq, 8);
    CHECK_EQ(h.epoch, 7);
    hub_welcome(5, 10000, 0, &h); /* 4 and 5 were durable before the cut */
    poll_n(2);
    take_resent(&fr, 3);
    CHECK_EQ(fr.reading_count, 3);
    CHECK(fr.reading_count == 3 && fr.readings[0].seq == 6 && fr.readings[2].seq == 8);
    CHECK(fr.reading_count == 3 && f32_of(&fr.readings[0].values[0]) == 5.0f);
    CHECK_EQ(td_device_buffered(&D), 3);
    check_context = "";
}

static void test_backoff(void)
{
    td_hello h;
    td_device_frame fr;
    int i;
    check_context = "§7.4 BACKOFF: nothing for pauseMs, then everything unacked again, oldest first";
    setup(9, sizeof STORE);
    td_device_set_clock(&D, 1732233600000ull);
    h = connect_hello();
    hub_welcome(0, 10000, 0, &h);
    poll_n(2);
    for (i = 0; i < 4; i++) {
        send3((float)i, TD_TS_NOW);
        poll_n(1);
        F.now += 10;
    }
    while (take(&fr) == 1) {}
    hub_simple(TD_BACKOFF, TD_STORE_BUSY, 1000);
    poll_n(1);
    CHECK(last_event(TD_EV_BACKOFF) && last_event(TD_EV_BACKOFF)->code == TD_STORE_BUSY && last_event(TD_EV_BACKOFF)->value == 1000);
    send3(9, TD_TS_NOW);
    F.now += 999;
    poll_n(2);
    CHECK_EQ(take(&fr), 0);
    F.now += 2;
    poll_n(1);
    take_resent(&fr, 5);
    CHECK_EQ(fr.reading_count, 5);
    CHECK(fr.reading_count == 5 && fr.readings[0].seq == 1 && fr.readings[4].seq == 5);
    check_context = "";
}

static void test_overflow_status(void)
{
    td_hello h;
    td_device_frame fr;
    int i, saw_status = 0;
    check_context = "§7.5 a full store drops the oldest, counts it, STATUS and HELLO report the total";
    setup(11, 27 * 4); /* four readings of three f32 (12 + 15 bytes each) */
    td_device_set_clock(&D, 1732233600000ull);
    for (i = 0; i < 6; i++) send3((float)i, TD_TS_NOW);
    CHECK_EQ(td_device_buffered(&D), 4);
    CHECK(last_event(TD_EV_DROP) && last_event(TD_EV_DROP)->value == 2);
    h = connect_hello();
    CHECK_EQ(h.dropped, 2);
    CHECK_EQ(h.last_seq, 6);
    hub_welcome(0, 10000, 0, &h);
    poll_n(2);
    take_resent(&fr, 4);
    CHECK(fr.type == TD_BATCH && fr.reading_count == 4 && fr.readings[0].seq == 3);
    send3(7, TD_TS_NOW); /* drops 3 */
    poll_n(1);
    while (take(&fr) == 1)
        if (fr.type == TD_STATUS) saw_status = fr.dropped == 3;
    CHECK(saw_status);
    CHECK_EQ(td_device_send(&D, NULL, 0, TD_TS_NOW, NULL), TD_EMPTY_READING);
    {
        td_value big = td_string(0, td_s("0123456789012345678901234567890123456789012345678901234567890123456789"
                                          "0123456789012345678901234567890123456789"));
        CHECK_EQ(td_device_send(&D, &big, 1, TD_TS_NOW, NULL), TD_E_NOSPACE); /* larger than the store */
    }
    check_context = "";
}

static void test_commands(void)
{
    td_hello h;
    td_device_frame fr;
    td_hub_frame c;
    check_context = "§8.2 delivered at once, then the final status; §8.3 a duplicate never runs twice";
    setup(12, sizeof STORE);
    h = connect_hello();
    hub_welcome(0, 10000, 0, &h);
    poll_n(2);
    memset(&c, 0, sizeof c);
    c.type = TD_COMMAND;
    c.u.command.id = 77;
    c.u.command.name = td_s("ping");
    c.u.command.args = td_s("{}");
    c.u.command.timeout_ms = 5000;
    hub_send(&c);
    poll_n(1);
    CHECK_EQ(commands_run, 1);
    CHECK_EQ(take(&fr), 1);
    CHECK(fr.type == TD_COMMAND_RESULT && fr.command_result.id == 77 && fr.command_result.status == TD_CMD_DELIVERED);
    CHECK_EQ(take(&fr), 1);
    CHECK(fr.type == TD_COMMAND_RESULT && fr.command_result.status == TD_CMD_SUCCEEDED);
    CHECK(fr.command_result.detail.len == 6 && !memcmp(fr.command_result.detail.p, "\"pong\"", 6));
    hub_send(&c);
    poll_n(1);
    CHECK_EQ(commands_run, 1);
    CHECK_EQ(take(&fr), 1);
    CHECK(fr.type == TD_COMMAND_RESULT && fr.command_result.id == 77 && fr.command_result.status == TD_CMD_SUCCEEDED);
    check_context = "an answer given later, after a reconnect";
    answer_commands = 0;
    c.u.command.id = 78;
    hub_send(&c);
    poll_n(1);
    CHECK_EQ(take(&fr), 1);
    CHECK(fr.command_result.id == 78 && fr.command_result.status == TD_CMD_DELIVERED);
    hub_send(&c); /* duplicate while running: delivered again */
    poll_n(1);
    CHECK_EQ(take(&fr), 1);
    CHECK(fr.command_result.id == 78 && fr.command_result.status == TD_CMD_DELIVERED);
    CHECK_EQ(commands_run, 2);
    F.eof = 1;
    poll_n(1);
    CHECK_EQ(td_device_command_result(&D, 78, TD_CMD_REJECTED, td_s("busy")), TD_OK);
    h = connect_hello();
    hub_welcome(0, 10000, 0, &h);
    poll_n(2);
    CHECK_EQ(take(&fr), 1);
    CHECK(fr.type == TD_COMMAND_RESULT && fr.command_result.id == 78 && fr.command_result.status == TD_CMD_REJECTED);
    CHECK_EQ(fr.command_result.detail.len, 0); /* no result buffer: the status alone (documented) */

#if TD_WITH_RESULT_BUFFER
    check_context = "a result that could not be sent keeps its detail in the caller's result buffer";
    {
        static uint8_t results[64];
        int i;
        td_device_result_buffer(&D, results, sizeof results);
        for (i = 0; i < 3; i++) { /* three commands that are still running when the connection drops */
            c.u.command.id = 90u + (uint64_t)i;
            hub_send(&c);
            poll_n(1);
            CHECK_EQ(take(&fr), 1);
            CHECK(fr.command_result.id == 90u + (uint64_t)i && fr.command_result.status == TD_CMD_DELIVERED);
        }
        F.eof = 1;
        poll_n(1);
        CHECK_EQ(td_device_command_result(&D, 90, TD_CMD_SUCCEEDED, td_s("{\"t\":21.5}")), TD_OK);
        CHECK_EQ(td_device_command_result(&D, 91, TD_CMD_FAILED, td_s("sensor unplugged")), TD_OK);
        /* 12 + 2 bytes used, 38 free: a 40-byte detail does not fit, so this one keeps only its status */
        CHECK_EQ(td_device_command_result(&D, 92, TD_CMD_REJECTED, td_s("0123456789012345678901234567890123456789")), TD_OK);
        h = connect_hello();
        hub_welcome(0, 10000, 0, &h);
        poll_n(2);
        CHECK_EQ(take(&fr), 1);
        CHECK(fr.type == TD_COMMAND_RESULT && fr.command_result.id == 90 && fr.command_result.status == TD_CMD_SUCCEEDED);
        CHECK(fr.command_result.detail.len == 10 && !memcmp(fr.command_result.detail.p, "{\"t\":21.5}", 10));
        CHECK_EQ(take(&fr), 1);
        CHECK(fr.type == TD_COMMAND_RESULT && fr.command_result.id == 91 && fr.command_result.status == TD_CMD_FAILED);
        CHECK(fr.command_result.detail.len == 16 && !memcmp(fr.command_result.detail.p, "sensor unplugged", 16));
        CHECK_EQ(take(&fr), 1);
        CHECK(fr.type == TD_COMMAND_RESULT && fr.command_result.id == 92 && fr.command_result.status == TD_CMD_REJECTED);
        CHECK_EQ(fr.command_result.detail.len, 0);
        CHECK_EQ(take(&fr), 0); /* each once */
        CHECK_EQ(D.results_len, 0);
    }
#endif
    check_context = "";
}

static void closes_with(const char *reason, uint16_t code, int error_code, int expect_reconnect)
{
    td_hello h;
    uint8_t payload[32];
    size_t n = strlen(reason);
    int connects;
    setup(13, sizeof STORE);
    h = connect_hello();
    hub_welcome(0, 10000, 0, &h);
    poll_n(2);
    if (error_code) {
        td_hub_frame e;
        memset(&e, 0, sizeof e);
        e.type = TD_ERROR;
        e.u.error.code = (uint64_t)error_code;
        e.u.error.alias = -1;
        e.u.error.message = td_s("because");
        hub_send(&e);
    }
    payload[0] = (uint8_t)(code >> 8);
    payload[1] = (uint8_t)code;
    memcpy(payload + 2, reason, n);
    fake_frame(&F, 0x88, payload, n + 2);
    poll_n(2);
    CHECK(last_event(TD_EV_DISCONNECTED) != NULL);
    if (last_event(TD_EV_DISCONNECTED)) {
        CHECK_EQ(last_event(TD_EV_DISCONNECTED)->code, code);
        CHECK_EQ(last_event(TD_EV_DISCONNECTED)->will_reconnect, expect_reconnect);
    }
    if (error_code) CHECK(last_event(TD_EV_ERROR) && last_event(TD_EV_ERROR)->code == error_code);
    connects = F.connects;
    F.now += 60000;
    poll_n(2);
    CHECK_EQ(F.connects - connects, expect_reconnect);
}

static void test_terminal_closes(void)
{
    check_context = "§6.4/§6.7.2 no reconnect after AUTH_FAILED";
    closes_with("AUTH_FAILED", 1008, TD_AUTH_FAILED, 0);
    CHECK_EQ(D.state, TD_DEV_STOPPED);
    check_context = "§6.4 no reconnect after REPLACED";
    closes_with("REPLACED", 1008, 0, 0);
    check_context = "no reconnect after DEVICE_DISABLED";
    closes_with("DEVICE_DISABLED", 1008, TD_DEVICE_DISABLED, 0);
    check_context = "§6.7.3 reconnect after HELLO_TIMEOUT, SHUTTING_DOWN, TRY_AGAIN_LATER";
    closes_with("HELLO_TIMEOUT", 1008, TD_HELLO_TIMEOUT, 1);
    closes_with("SHUTTING_DOWN", 1001, TD_SHUTTING_DOWN, 1);
    closes_with("TRY_AGAIN_LATER", 1013, 0, 1);
    check_context = "";
}

static void test_backoff_jitter(void)
{
    int attempt, ok = 1, spread = 0;
    uint32_t caps[] = {500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000};
    check_context = "§6.7.1 reconnect waits are uniformly random in [0, min(30 s, 0.5 s x 2^n)]";
    setup(14, sizeof STORE);
    F.connect_result = TD_E_IO; /* every attempt fails at once */
    td_device_start(&D);
    poll_n(1);
    for (attempt = 0; attempt < 9; attempt++) {
        uint32_t waited = 0;
        int before = F.connects;
        CHECK_EQ(D.state, TD_DEV_WAITING);
        while (F.connects == before && waited <= caps[attempt] + 1) {
            F.now += 1;
            waited++;
            td_device_poll(&D);
        }
        if (F.connects == before || waited > caps[attempt] + 1) ok = 0;
        if (waited > caps[attempt] / 4) spread++;
    }
    CHECK(ok);
    CHECK(spread >= 3); /* not always at once: the waits are spread */
    check_context = "n returns to 0 after a WELCOME";
    CHECK(D.attempt >= 9);
    F.connect_result = TD_OK;
    {
        int i;
        for (i = 0; i < 40000 && D.state == TD_DEV_WAITING; i++) {
            F.now += 1;
            td_device_poll(&D);
        }
    }
    CHECK(fake_accept(&F, NULL, 0));
    poll_n(2);
    {
        td_device_frame fr;
        td_hello h;
        memset(&h, 0, sizeof h);
        if (take(&fr) == 1) h = fr.hello;
        hub_welcome(0, 10000, 0, &h);
    }
    poll_n(1);
    CHECK_EQ(D.attempt, 0);
    check_context = "";
}

static void test_heartbeat(void)
{
    td_hello h;
    int i;
    check_context = "§6.5.4 silence for 3 x heartbeatMs: dead, and reconnect";
    setup(15, sizeof STORE);
    h = connect_hello();
    hub_welcome(0, 1000, 0, &h);
    poll_n(2);
    for (i = 0; i < 10; i++) { /* pings every 900 ms keep it alive */
        F.now += 900;
        fake_frame(&F, 0x89, NULL, 0);
        poll_n(1);
    }
    CHECK_EQ(D.state, TD_DEV_READY);
    F.now += 3000;
    poll_n(1);
    CHECK_EQ(D.state, TD_DEV_READY);
    F.now += 2;
    poll_n(1);
    CHECK_EQ(D.state, TD_DEV_WAITING);
    CHECK(last_event(TD_EV_DISCONNECTED) && last_event(TD_EV_DISCONNECTED)->text.len == 14);
    check_context = "";
}

static void test_bad_hub_frames(void)
{
    td_hello h;
    uint8_t op, buf[64];
    size_t n;
    int masked;
    check_context = "§6.6.5 an undecodable hub frame: close 1002, reason = the code";
    setup(16, sizeof STORE);
    h = connect_hello();
    hub_welcome(0, 10000, 0, &h);
    poll_n(2);
    fake_binary(&F, (const uint8_t *)"\x42\x01\x00", 3);
    poll_n(1);
    CHECK(fake_take(&F, &op, buf, &n, &masked, NULL));
    CHECK_EQ(op, 0x88);
    CHECK(n == 2 + 14 && buf[0] == 0x03 && buf[1] == 0xea && !memcmp(buf + 2, "TRAILING_BYTES", 14));
    CHECK(last_event(TD_EV_ERROR) && last_event(TD_EV_ERROR)->code == TD_TRAILING_BYTES);
    check_context = "§6.6.5 every code the hub-frame decoder returns closes with its registry name";
    {
        static const struct {
            const char *frame;
            size_t len;
            int code;
        } bad[] = {
            {"\x42", 1, TD_FRAME_TRUNCATED},
            {"\x99", 1, TD_UNKNOWN_FRAME_TYPE},
            {"\x42\xff\xff\xff\xff\xff\xff\xff\xff", 9, TD_VARINT_OVERFLOW},
            {"\x43\x01\x01\xff\x00\x00", 6, TD_INVALID_UTF8},
            {"\x43\x01\x41", 3, TD_STRING_TOO_LONG},
            {"\x43\x00\x01x\x00\x00", 6, TD_INVALID_FIELD},
        };
        size_t i;
        for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            const char *name = td_err_name(bad[i].code);
            setup(30 + (uint32_t)i, sizeof STORE);
            h = connect_hello();
            hub_welcome(0, 10000, 0, &h);
            poll_n(2);
            fake_binary(&F, (const uint8_t *)bad[i].frame, bad[i].len);
            poll_n(1);
            CHECK(fake_take(&F, &op, buf, &n, &masked, NULL));
            CHECK(op == 0x88 && buf[0] == 0x03 && buf[1] == 0xea);
            CHECK(n == 2 + strlen(name) && !memcmp(buf + 2, name, strlen(name)));
            CHECK(last_event(TD_EV_ERROR) && last_event(TD_EV_ERROR)->code == bad[i].code);
        }
    }
    check_context = "a reading sent while the connection closes waits in the store (found by fuzz_ws_stream)";
    send3(1, TD_TS_NONE);
    poll_n(1);
    CHECK_EQ(td_device_buffered(&D), 1);
    CHECK(!fake_take(&F, &op, buf, &n, &masked, NULL));
    check_context = "§3.2 an ACK before WELCOME is UNEXPECTED_FRAME";
    setup(17, sizeof STORE);
    connect_hello();
    hub_simple(TD_ACK, 1, 0);
    poll_n(1);
    CHECK(fake_take(&F, &op, buf, &n, &masked, NULL));
    CHECK(op == 0x88 && n == 2 + 16 && !memcmp(buf + 2, "UNEXPECTED_FRAME", 16));
    check_context = "§7.1 an ERROR about a value is a REJECT event, the connection stays";
    setup(18, sizeof STORE);
    h = connect_hello();
    hub_welcome(0, 10000, 0, &h);
    poll_n(2);
    {
        td_hub_frame e;
        memset(&e, 0, sizeof e);
        e.type = TD_ERROR;
        e.u.error.code = TD_OUT_OF_RANGE;
        e.u.error.seq = 5;
        e.u.error.alias = 2;
        e.u.error.message = td_s("pressure 2 is below 300");
        hub_send(&e);
    }
    poll_n(1);
    CHECK(last_event(TD_EV_REJECT) && last_event(TD_EV_REJECT)->seq == 5 && last_event(TD_EV_REJECT)->alias == 2 &&
          last_event(TD_EV_REJECT)->code == TD_OUT_OF_RANGE);
    CHECK_EQ(D.state, TD_DEV_READY);
    check_context = "";
}

static void test_rate_and_stop(void)
{
    td_hello h;
    td_device_frame fr;
    int i, got = 0;
    check_context = "§4.3.1 paced to WELCOME.maxRate";
    setup(19, sizeof STORE);
    td_device_set_clock(&D, 1732233600000ull);
    h = connect_hello();
    hub_welcome(0, 10000, 10, &h);
    poll_n(2);
    for (i = 0; i < 50; i++) send3((float)i, TD_TS_NOW);
    poll_n(3);
    while (take(&fr) == 1) got += (int)fr.reading_count;
    CHECK_EQ(got, 10); /* one second of burst */
    for (i = 0; i < 10; i++) {
        F.now += 100;
        poll_n(1);
    }
    while (take(&fr) == 1) got += (int)fr.reading_count;
    CHECK(got >= 19 && got <= 21);
    check_context = "§6.6.4 td_device_stop closes with 1000 and stays down";
    td_device_stop(&D);
    poll_n(1);
    {
        uint8_t op, buf[64];
        size_t n;
        int masked, closed = 0;
        while (fake_take(&F, &op, buf, &n, &masked, NULL))
            if (op == 0x88) closed = n == 2 && buf[0] == 0x03 && buf[1] == 0xe8;
        CHECK(closed);
    }
    fake_frame(&F, 0x88, (const uint8_t *)"\x03\xe8", 2);
    poll_n(1);
    CHECK_EQ(D.state, TD_DEV_STOPPED);
    F.now += 100000;
    i = F.connects;
    poll_n(2);
    CHECK_EQ(F.connects, i);
    CHECK_EQ(td_device_buffered(&D), 50); /* unacked readings stay */
    check_context = "";
}

static void test_bad_config(void)
{
    static const td_metric dup[] = {{0, TD_KIND_F32, 0, TD_S("a"), TD_S(""), 0, 0}, {0, TD_KIND_F32, 0, TD_S("b"), TD_S(""), 0, 0}};
    check_context = "td_device_init refuses what the hub would refuse in HELLO";
    fake_transport(&T, &F);
    memset(&CFG, 0, sizeof CFG);
    CFG.host = "h";
    CFG.device_id = td_s("bad id");
    CFG.token = td_s("t");
    CHECK_EQ(td_device_init(&D, &CFG, &T, STORE, sizeof STORE, RX, sizeof RX, TX, sizeof TX), TD_INVALID_FIELD);
    CFG.device_id = td_s("ok");
    CFG.metrics = dup;
    CFG.metric_count = 2;
    CHECK_EQ(td_device_init(&D, &CFG, &T, STORE, sizeof STORE, RX, sizeof RX, TX, sizeof TX), TD_INVALID_FIELD);
    CFG.metric_count = 1;
    CHECK_EQ(td_device_init(&D, &CFG, &T, STORE, sizeof STORE, RX, sizeof RX, TX, sizeof TX), TD_OK);
    CHECK_EQ(td_device_init(&D, &CFG, &T, STORE, sizeof STORE, RX, sizeof RX, TX, 20), TD_E_NOSPACE);
    check_context = "";
}

int main(void)
{
    test_hello_welcome_readings();
    test_size_budget();
    test_reconnect_resend();
    test_backoff();
    test_overflow_status();
    test_commands();
    test_terminal_closes();
    test_backoff_jitter();
    test_heartbeat();
    test_bad_hub_frames();
    test_rate_and_stop();
    test_bad_config();
    return check_report("test_device");
}
