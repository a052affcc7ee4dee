/*
 * The WebSocket client (tendril_ws.c) against a scripted peer: SHA-1/base64, the upgrade and its checks,
 * masking, ping/pong, close codes, refusals (fragmented, oversized, masked, text, reserved bits), partial
 * reads and writes.
 */
#include "check.h"
#include "fake_hub.h"
#include "tendril_ws.h"

static fake F;
static td_transport T;
static td_ws WS;
static uint8_t RX[512], TX[1024];

static void hex_of(const uint8_t *p, size_t n, char *out)
{
    size_t i;
    for (i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", p[i]);
}

static void test_sha1_base64(void)
{
    uint8_t d[20];
    char hex[41], b64[32];
    static uint8_t million[1000];
    check_context = "SHA-1 (FIPS 180-4 examples)";
    td_sha1((const uint8_t *)"abc", 3, d);
    hex_of(d, 20, hex);
    CHECK(!strcmp(hex, "a9993e364706816aba3e25717850c26c9cd0d89d"));
    td_sha1((const uint8_t *)"", 0, d);
    hex_of(d, 20, hex);
    CHECK(!strcmp(hex, "da39a3ee5e6b4b0d3255bfef95601890afd80709"));
    td_sha1((const uint8_t *)"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, d);
    hex_of(d, 20, hex);
    CHECK(!strcmp(hex, "84983e441c3bd26ebaae4aa1f95129e5e54670f1"));
    memset(million, 'a', sizeof million);
    td_sha1(million, 1000, d);
    hex_of(d, 20, hex);
    CHECK(!strcmp(hex, "291e9a6c66994949b57ba5e650361e98fc36b1ba"));
    check_context = "base64 (RFC 4648 §10)";
    b64[td_base64((const uint8_t *)"f", 1, b64)] = 0;
    CHECK(!strcmp(b64, "Zg=="));
    b64[td_base64((const uint8_t *)"fo", 2, b64)] = 0;
    CHECK(!strcmp(b64, "Zm8="));
    b64[td_base64((const uint8_t *)"foobar", 6, b64)] = 0;
    CHECK(!strcmp(b64, "Zm9vYmFy"));
    check_context = "Sec-WebSocket-Accept (RFC 6455 §1.3 example)";
    td_ws_accept_for("dGhlIHNhbXBsZSBub25jZQ==", 24, b64);
    b64[28] = 0;
    CHECK(!strcmp(b64, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    check_context = "";
}

static td_ws_event poll_once(void)
{
    td_ws_event ev;
    td_ws_poll(&WS, &ev);
    return ev;
}

/* Connects and answers the upgrade; returns the OPEN event's type. */
static int open_ws(const char *extra, int break_accept)
{
    td_ws_event ev;
    fake_transport(&T, &F);
    td_ws_init(&WS, &T, RX, sizeof RX, TX, sizeof TX);
    td_ws_connect(&WS, "hub.example", 8443, "/v1/device");
    ev = poll_once(); /* connects, writes the request */
    if (ev.type != TD_WS_EV_NONE) return ev.type;
    if (!fake_accept(&F, extra, break_accept)) return -1;
    ev = poll_once();
    return ev.type == TD_WS_EV_CLOSED ? 100 + ev.err : ev.type;
}

static void test_handshake(void)
{
    const char *req;
    check_context = "upgrade request (RFC 6455 §4.1, tendril.v1 §1.1)";
    fake_transport(&T, &F);
    td_ws_init(&WS, &T, RX, sizeof RX, TX, sizeof TX);
    td_ws_connect(&WS, "hub.example", 8443, "/v1/device");
    F.connect_result = TD_E_AGAIN;
    CHECK_EQ(poll_once().type, TD_WS_EV_NONE);
    CHECK_EQ(WS.state, TD_WS_CONNECTING);
    F.connect_result = TD_OK;
    CHECK_EQ(poll_once().type, TD_WS_EV_NONE);
    req = fake_request(&F);
    CHECK(req != NULL);
    if (req) {
        CHECK(!strncmp(req, "GET /v1/device HTTP/1.1\r\n", 25));
        CHECK(strstr(req, "\r\nHost: hub.example:8443\r\n") != NULL);
        CHECK(strstr(req, "\r\nUpgrade: websocket\r\n") != NULL);
        CHECK(strstr(req, "\r\nConnection: Upgrade\r\n") != NULL);
        CHECK(strstr(req, "\r\nSec-WebSocket-Version: 13\r\n") != NULL);
        CHECK(strstr(req, "\r\nSec-WebSocket-Protocol: tendril.v1\r\n") != NULL);
        CHECK(strstr(req, "Sec-WebSocket-Extensions") == NULL); /* §1.3: no permessage-deflate */
        CHECK(strstr(req, "\r\nSec-WebSocket-Key: ") != NULL && strlen(strstr(req, "Sec-WebSocket-Key: ")) == 19 + 24 + 4);
    }
    check_context = "upgrade accepted";
    CHECK_EQ(open_ws(NULL, 0), TD_WS_EV_OPEN);
    CHECK_EQ(WS.state, TD_WS_OPEN);
    CHECK_EQ(WS.http_status, 101);
    {
        /* two connections use two different keys */
        char k1[25], k2[25];
        const char *r;
        fake_transport(&T, &F);
        td_ws_init(&WS, &T, RX, sizeof RX, TX, sizeof TX);
        td_ws_connect(&WS, "h", 1, "/");
        poll_once();
        r = strstr(fake_request(&F), "Key: ");
        memcpy(k1, r + 5, 24);
        td_ws_connect(&WS, "h", 1, "/");
        F.out_len = F.out_off = 0;
        poll_once();
        r = strstr(fake_request(&F), "Key: ");
        memcpy(k2, r + 5, 24);
        CHECK(memcmp(k1, k2, 24) != 0);
    }
    check_context = "a wrong Sec-WebSocket-Accept fails the connection";
    CHECK_EQ(open_ws(NULL, 1), 100 + TD_E_HANDSHAKE);
    CHECK_EQ(WS.state, TD_WS_CLOSED);
    CHECK(F.closes > 0);
    check_context = "extensions in the answer fail the connection (§1.3)";
    CHECK_EQ(open_ws("Sec-WebSocket-Extensions: permessage-deflate\r\n", 0), 100 + TD_E_HANDSHAKE);
    check_context = "another subprotocol fails the connection (§1.1.4)";
    {
        const char *req2;
        char accept[29], resp[512];
        fake_transport(&T, &F);
        td_ws_init(&WS, &T, RX, sizeof RX, TX, sizeof TX);
        td_ws_connect(&WS, "h", 80, "/v1/device");
        poll_once();
        req2 = strstr(fake_request(&F), "Sec-WebSocket-Key: ");
        td_ws_accept_for(req2 + 19, 24, accept);
        accept[28] = 0;
        snprintf(resp, sizeof resp, "HTTP/1.1 101 OK\r\nupgrade: WebSocket\r\nconnection: keep-alive, Upgrade\r\n"
                                   "sec-websocket-accept: %s\r\nSec-WebSocket-Protocol: tendril.v2\r\n\r\n", accept);
        fake_push(&F, resp, strlen(resp));
        CHECK_EQ(poll_once().err, TD_E_HANDSHAKE);
        /* the same answer with tendril.v1 and lower-case names and a token list passes */
        fake_transport(&T, &F);
        td_ws_init(&WS, &T, RX, sizeof RX, TX, sizeof TX);
        td_ws_connect(&WS, "h", 80, "/v1/device");
        poll_once();
        req2 = strstr(fake_request(&F), "Sec-WebSocket-Key: ");
        td_ws_accept_for(req2 + 19, 24, accept);
        snprintf(resp, sizeof resp, "HTTP/1.1 101 OK\r\nupgrade: WebSocket\r\nconnection: keep-alive, Upgrade\r\n"
                                   "sec-websocket-accept: %.28s\r\nsec-websocket-protocol: tendril.v1\r\n\r\n", accept);
        fake_push(&F, resp, strlen(resp));
        CHECK_EQ(poll_once().type, TD_WS_EV_OPEN);
    }
    check_context = "a missing subprotocol fails the connection";
    {
        fake_transport(&T, &F);
        td_ws_init(&WS, &T, RX, sizeof RX, TX, sizeof TX);
        td_ws_connect(&WS, "h", 80, "/v1/device");
        poll_once();
        fake_push(&F, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", 47);
        CHECK_EQ(poll_once().err, TD_E_HANDSHAKE);
        CHECK_EQ(WS.http_status, 400);
    }
    check_context = "the answer arrives byte by byte, a frame right behind it";
    {
        fake_transport(&T, &F);
        td_ws_init(&WS, &T, RX, sizeof RX, TX, sizeof TX);
        td_ws_connect(&WS, "h", 80, "/v1/device");
        poll_once();
        fake_accept(&F, NULL, 0);
        fake_binary(&F, (const uint8_t *)"\x42\x07", 2);
        F.read_chunk = 1;
        {
            int i, opened = 0, got = 0;
            for (i = 0; i < 400 && !got; i++) {
                td_ws_event ev = poll_once();
                if (ev.type == TD_WS_EV_OPEN) opened = 1;
                if (ev.type == TD_WS_EV_MESSAGE) got = ev.len == 2 && ev.data[0] == 0x42 && ev.data[1] == 7;
            }
            CHECK(opened);
            CHECK(got);
        }
    }
    check_context = "";
}

static void test_frames(void)
{
    uint8_t op, buf[2048], mask1[4], mask2[4];
    size_t n;
    int masked;
    td_ws_event ev;
    check_context = "client frames are masked, with a fresh key each (RFC 6455 §5.3)";
    CHECK_EQ(open_ws(NULL, 0), TD_WS_EV_OPEN);
    CHECK_EQ(td_ws_send(&WS, (const uint8_t *)"\x02\x02\xd0\x0f", 4), TD_OK);
    CHECK_EQ(td_ws_send(&WS, (const uint8_t *)"\x02\x02\xd0\x0f", 4), TD_OK);
    poll_once();
    CHECK(fake_take(&F, &op, buf, &n, &masked, mask1));
    CHECK_EQ(op, 0x82);
    CHECK(masked);
    CHECK(n == 4 && !memcmp(buf, "\x02\x02\xd0\x0f", 4));
    CHECK(fake_take(&F, &op, buf, &n, &masked, mask2));
    CHECK(memcmp(mask1, mask2, 4) != 0);
    check_context = "§12: a 19-byte frame costs 25 bytes on the wire";
    F.out_len = F.out_off = 0;
    td_ws_send(&WS, buf, 19);
    poll_once();
    CHECK_EQ(F.out_len, 25);
    CHECK_EQ(F.out[0], 0x82);
    CHECK_EQ(F.out[1], 0x80 | 19);
    check_context = "16-bit lengths both ways";
    F.out_len = F.out_off = 0;
    memset(buf, 0x5A, 300);
    CHECK_EQ(td_ws_send(&WS, buf, 300), TD_OK);
    poll_once();
    CHECK(fake_take(&F, &op, buf, &n, &masked, NULL));
    CHECK_EQ(n, 300);
    CHECK_EQ(buf[299], 0x5A);
    memset(buf, 0x33, 300);
    fake_binary(&F, buf, 300);
    ev = poll_once();
    CHECK_EQ(ev.type, TD_WS_EV_MESSAGE);
    CHECK_EQ(ev.len, 300);
    check_context = "partial writes keep order";
    F.out_len = F.out_off = 0;
    F.write_chunk = 3;
    memset(buf, 0x11, 100);
    td_ws_send(&WS, buf, 100);
    memset(buf, 0x22, 50);
    td_ws_send(&WS, buf, 50);
    {
        int i;
        for (i = 0; i < 100 && td_ws_pending(&WS); i++) poll_once();
    }
    CHECK_EQ(td_ws_pending(&WS), 0);
    CHECK(fake_take(&F, &op, buf, &n, &masked, NULL) && n == 100 && buf[99] == 0x11);
    CHECK(fake_take(&F, &op, buf, &n, &masked, NULL) && n == 50 && buf[49] == 0x22);
    F.write_chunk = 0;
    check_context = "a full output queue says TD_E_AGAIN";
    F.write_chunk = 0;
    {
        size_t cap;
        F.write_fail = 0;
        td_ws_reserve(&WS, &cap);
        CHECK(cap >= sizeof TX - 2 * TD_WS_HEADROOM);
        CHECK_EQ(td_ws_send(&WS, buf, sizeof TX), TD_E_AGAIN);
    }
    check_context = "ping -> pong with the same payload (RFC 6455 §5.5.2)";
    F.out_len = F.out_off = 0;
    fake_frame(&F, 0x89, (const uint8_t *)"hb-7", 4);
    ev = poll_once();
    CHECK_EQ(ev.type, TD_WS_EV_NONE);
    CHECK(fake_take(&F, &op, buf, &n, &masked, NULL));
    CHECK_EQ(op, 0x8A);
    CHECK(masked);
    CHECK(n == 4 && !memcmp(buf, "hb-7", 4));
    fake_frame(&F, 0x8A, NULL, 0); /* an unsolicited pong is ignored */
    CHECK_EQ(poll_once().type, TD_WS_EV_NONE);
    CHECK_EQ(WS.state, TD_WS_OPEN);
    check_context = "the hub's close frame: echoed, stream closed, code and reason reported";
    F.out_len = F.out_off = 0;
    fake_frame(&F, 0x88, (const uint8_t *)"\x03\xf0REPLACED", 10);
    ev = poll_once();
    CHECK_EQ(ev.type, TD_WS_EV_CLOSED);
    CHECK_EQ(ev.code, 1008);
    CHECK(ev.len == 8 && !memcmp(ev.data, "REPLACED", 8));
    CHECK(fake_take(&F, &op, buf, &n, &masked, NULL));
    CHECK_EQ(op, 0x88);
    CHECK(n == 2 && buf[0] == 0x03 && buf[1] == 0xf0);
    CHECK_EQ(WS.state, TD_WS_CLOSED);
    check_context = "td_ws_close: close frame, then CLOSED once the hub answers";
    CHECK_EQ(open_ws(NULL, 0), TD_WS_EV_OPEN);
    td_ws_close(&WS, 1000, "");
    poll_once();
    CHECK(fake_take(&F, &op, buf, &n, &masked, NULL) && op == 0x88 && n == 2 && buf[0] == 0x03 && buf[1] == 0xe8);
    CHECK_EQ(td_ws_send(&WS, buf, 1), TD_E_CLOSED);
    fake_frame(&F, 0x88, (const uint8_t *)"\x03\xe8", 2);
    ev = poll_once();
    CHECK_EQ(ev.type, TD_WS_EV_CLOSED);
    CHECK_EQ(ev.code, 1000);
    CHECK_EQ(F.out_len - F.out_off, 0); /* no second close frame */
    check_context = "td_ws_close: a hub that never answers is left after a while";
    CHECK_EQ(open_ws(NULL, 0), TD_WS_EV_OPEN);
    td_ws_close(&WS, 1000, "");
    CHECK_EQ(poll_once().type, TD_WS_EV_NONE);
    F.now += 5000;
    CHECK_EQ(poll_once().type, TD_WS_EV_CLOSED);
    check_context = "the stream ends without a close frame: 1006";
    CHECK_EQ(open_ws(NULL, 0), TD_WS_EV_OPEN);
    F.eof = 1;
    ev = poll_once();
    CHECK_EQ(ev.type, TD_WS_EV_CLOSED);
    CHECK_EQ(ev.code, 1006);
    CHECK_EQ(ev.err, TD_E_IO);
    check_context = "";
}

/* Each refusal: the frame the hub sends, the close code the client answers with. */
/* ... and the close frame's reason is `reason` (the registry's name, or the SDK's own word) */
static void refuse(const char *what, uint8_t b0, uint8_t b1, size_t len, uint16_t code, const char *reason)
{
    uint8_t payload[600], op, buf[64];
    size_t n;
    int masked;
    td_ws_event ev;
    check_context = what;
    CHECK_EQ(open_ws(NULL, 0), TD_WS_EV_OPEN);
    memset(payload, 0, sizeof payload);
    if (b1 == 0xFF) fake_frame(&F, b0, payload, len);
    else {
        uint8_t h[2];
        h[0] = b0;
        h[1] = b1;
        fake_push(&F, h, 2);
        fake_push(&F, payload, len);
    }
    ev = poll_once();
    CHECK_EQ(ev.type, TD_WS_EV_CLOSED);
    CHECK_EQ(ev.code, code);
    CHECK(fake_take(&F, &op, buf, &n, &masked, NULL));
    CHECK_EQ(op, 0x88);
    CHECK(n >= 2 && (buf[0] << 8 | buf[1]) == code);
    CHECK(n == 2 + strlen(reason) && !memcmp(buf + 2, reason, n - 2));
    CHECK_EQ(WS.state, TD_WS_CLOSED);
    check_context = "";
}

static void test_refusals(void)
{
    refuse("fragmented message: FIN clear -> 1003", 0x02, 0xFF, 3, 1003, "fragmented");
    refuse("continuation frame -> 1003", 0x80, 0xFF, 3, 1003, "fragmented");
    refuse("larger than the receive buffer -> 1009", 0x82, 0xFF, 600, 1009, "FRAME_TOO_LARGE");
    refuse("a masked server frame -> 1002 (RFC 6455 §5.1)", 0x82, 0x83, 7, 1002, "");
    refuse("reserved bits -> 1002", 0xC2, 0xFF, 1, 1002, "");
    refuse("reserved opcode 0x3 -> 1002", 0x83, 0xFF, 1, 1002, "");
    refuse("a control frame over 125 bytes -> 1002", 0x89, 0xFF, 200, 1002, "");
    refuse("a fragmented ping -> 1002", 0x09, 0xFF, 1, 1002, "");
    refuse("a text message -> 1003 (tendril.v1 §1.2.3)", 0x81, 0xFF, 2, 1003, "TEXT_FRAME");
    refuse("a close frame of 1 byte -> 1002", 0x88, 0xFF, 1, 1002, "");
    refuse("a non-minimal 16-bit length -> 1002", 0x82, 126, 2, 1002, "");
}

static void test_parse_header(void)
{
    td_ws_header h;
    check_context = "td_ws_parse_header";
    CHECK_EQ(td_ws_parse_header((const uint8_t *)"\x82", 1, &h), TD_FRAME_TRUNCATED);
    CHECK_EQ(td_ws_parse_header((const uint8_t *)"\x82\x7e\x01", 3, &h), TD_FRAME_TRUNCATED);
    CHECK_EQ(td_ws_parse_header((const uint8_t *)"\x82\x7e\x01\x00", 4, &h), TD_OK);
    CHECK_EQ(h.len, 256);
    CHECK_EQ(h.header, 4);
    CHECK_EQ(td_ws_parse_header((const uint8_t *)"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10, &h), TD_OK);
    CHECK_EQ(h.len, 65536);
    CHECK_EQ(td_ws_parse_header((const uint8_t *)"\x82\x7f\x80\x00\x00\x00\x00\x01\x00\x00", 10, &h), TD_E_WS);
    CHECK_EQ(td_ws_parse_header((const uint8_t *)"\x82\x85\x01\x02\x03", 5, &h), TD_FRAME_TRUNCATED);
    CHECK_EQ(td_ws_parse_header((const uint8_t *)"\x82\x85\x01\x02\x03\x04", 6, &h), TD_OK);
    CHECK_EQ(h.masked, 1);
    check_context = "";
}

int main(void)
{
    test_sha1_base64();
    test_parse_header();
    test_handshake();
    test_frames();
    test_refusals();
    return check_report("test_ws");
}
