/*
 * RFC 6455 WebSocket client (see tendril_ws.h). No heap, no globals: the state is the caller's td_ws, the
 * bytes live in the caller's rx and tx buffers. The tx buffer is an output queue: frames are appended
 * (header, masked payload) and written out as the transport takes them.
 */
#include "tendril_ws.h"

#include <string.h>

#define OP_CONT 0x0u
#define OP_TEXT 0x1u
#define OP_BINARY 0x2u
#define OP_CLOSE 0x8u
#define OP_PING 0x9u
#define OP_PONG 0xAu
#define CLOSE_WAIT_MS 2000u /* how long a close waits for the hub's close frame */
#if defined(__GNUC__)
#define TD_NOINLINE __attribute__((noinline)) /* one copy of a helper that -Os would inline at every call */
#define TD_INLINE __attribute__((always_inline)) inline /* where -Os keeps a call that costs more than the body */
#else
#define TD_NOINLINE
#define TD_INLINE
#endif

static uint32_t ws_now(const td_ws *ws)
{
    return ws->t->now_ms(ws->t->ctx);
}

/* ---- SHA-1 (FIPS 180-4), only for Sec-WebSocket-Accept ---- */

static uint32_t rol(uint32_t x, unsigned n)
{
    return (x << n) | (x >> (32u - n));
}

/* SHA-1 (td_sha1 below; this body is inlined into td_ws_accept_for, its one caller in a firmware). The message,
 * the 0x80 byte and zeros are streamed byte by byte into the 16 big-endian words of one block (each byte shifts
 * into its word), the bit length lands in the last word: no second path for the padding blocks, no byte
 * buffer. One rolled round loop. x holds a..e, then the schedule as a sliding window of 16 words, newest
 * first: one move a round shifts both (a to b, ..., and the window), then a, c and the newest word are
 * written. */
static TD_INLINE void sha1(const uint8_t *data, size_t len, uint8_t out[20])
{
    uint32_t h[5] = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u, 0xC3D2E1F0u};
    uint32_t x[21], *w = x + 5, f, k; /* w[15] is word j */
    size_t i, total = (len + 8u) / 64u * 64u + 64u; /* whole blocks with room for 0x80 and the length */
    unsigned j;
    for (i = 0; i < total; i++) {
        uint32_t *p = &w[15u - ((i >> 2) & 15u)];
        *p = *p << 8 | (i < len ? data[i] : i == len ? 0x80u : 0u);
        if ((i & 63u) != 63u) continue;
        if (i == total - 1u) w[0] = (uint32_t)len * 8u; /* the 64-bit length's high half is 0: under 512 MB */
        memcpy(x, h, sizeof h);
        for (j = 0; j < 80; j++) {
            uint32_t b = x[1], c = x[2], d = x[3], next = rol(w[2] ^ w[7] ^ w[13] ^ w[15], 1);
            if (j < 20) f = d ^ (b & (c ^ d)), k = 0x5A827999u;
            else if (j < 40) f = b ^ c ^ d, k = 0x6ED9EBA1u;
            else if (j < 60) f = (b & c) | (d & (b | c)), k = 0x8F1BBCDCu;
            else f = b ^ c ^ d, k = 0xCA62C1D6u;
            f += rol(x[0], 5) + x[4] + k + w[15];
            memmove(x + 1, x, 20 * sizeof *x); /* e = d, d = c, c = b, b = a; the window moves on */
            x[0] = f;
            x[2] = rol(b, 30);
            w[0] = next;
        }
        for (j = 0; j < 5; j++) h[j] += x[j];
    }
    for (i = 0; i < 20; i++) { /* big-endian */
        out[i] = (uint8_t)(h[i >> 2] >> 24);
        h[i >> 2] <<= 8;
    }
}

void td_sha1(const uint8_t *data, size_t len, uint8_t out[20])
{
    sha1(data, len, out);
}

/* One base64 digit (RFC 4648), computed rather than looked up in a 65-byte alphabet. */
static char b64_digit(uint32_t v)
{
    unsigned c;
    v &= 63u;
    c = v + 'A';                                /* 0-25: 'A'-'Z' */
    if (v > 25u) c += 'a' - 'A' - 26u;          /* 26-51: 'a'-'z' */
    if (v > 51u) c -= 'a' + 26u - '0';          /* 52-61: '0'-'9' */
    if (v > 61u) c = v * 4u - (62u * 4u - '+'); /* 62 '+', 63 '/' (4 apart) */
    return (char)c;
}

size_t td_base64(const uint8_t *in, size_t n, char *out)
{
    size_t i, o = 0;
    unsigned k;
    for (i = 0; i < n; i += 3) {
        uint32_t v = 0;
        for (k = 0; k < 3; k++) v = v << 8 | (i + k < n ? in[i + k] : 0u);
        for (k = 0; k < 4; k++) out[o++] = k <= n - i ? b64_digit(v >> (18u - 6u * k)) : '='; /* short: padded */
    }
    return o;
}

void td_ws_accept_for(const char *key, size_t key_len, char out[28])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    uint8_t buf[64 + 36], digest[20];
    if (key_len > 64) key_len = 64;
    memcpy(buf, key, key_len);
    memcpy(buf + key_len, guid, 36);
    sha1(buf, key_len + 36, digest);
    td_base64(digest, 20, out);
}

/* ---- frames ---- */

/* td_ws_parse_header, inlined into td_ws_poll (its one caller in a firmware) */
static TD_INLINE int parse_header(const uint8_t *p, size_t len, td_ws_header *h)
{
    unsigned b0, b1;
    size_t ext, i;
    uint64_t n;
    if (len < 2) return TD_FRAME_TRUNCATED;
    b0 = p[0];
    b1 = p[1];
    h->fin = (uint8_t)(b0 >> 7);
    h->opcode = (uint8_t)(b0 & 0x0Fu);
    h->masked = (uint8_t)(b1 >> 7);
    n = b1 & 0x7Fu;
    if (b0 & 0x70u) return TD_E_WS; /* RSV1-3: no extension was negotiated */
    ext = n < 126 ? 0u : n == 126 ? 2u : 8u; /* extended length bytes */
    h->header = 2u + ext + (b1 >> 7) * 4u;
    if (len < h->header) return TD_FRAME_TRUNCATED;
    if (ext) {
        for (n = 0, i = 0; i < ext; i++) n = n << 8 | p[2 + i];
        /* RFC 6455 §5.2: the minimal length form, and the top bit of a 64-bit length clear */
        if (n < (ext == 2 ? 126u : 65536u) || (n >> 63)) return TD_E_WS;
    }
    if ((b0 & 0x8u) && (!(b0 >> 7) || n > 125)) return TD_E_WS; /* control frames: FIN, payload <= 125 (§5.5) */
    h->len = n;
    return TD_OK;
}

int td_ws_parse_header(const uint8_t *p, size_t len, td_ws_header *h)
{
    return parse_header(p, len, h);
}

/* td_device_init does the same on its zeroed context (keep the two alike) */
void td_ws_init(td_ws *ws, const td_transport *t, uint8_t *rx, size_t rx_cap, uint8_t *tx, size_t tx_cap)
{
    memset(ws, 0, sizeof *ws);
    ws->t = t;
    ws->rx = rx;
    ws->rx_cap = rx_cap;
    ws->tx = tx;
    ws->tx_cap = tx_cap;
}

size_t td_ws_pending(const td_ws *ws)
{
    return ws->tx_len - ws->tx_off;
}

/* Room for n more bytes at the end of the output queue, once what is still queued is moved to its front. */
static int room(td_ws *ws, size_t n)
{
    if (ws->tx_off) { /* what was written out leaves room at the front */
        ws->tx_len -= ws->tx_off;
        memmove(ws->tx, ws->tx + ws->tx_off, ws->tx_len);
        ws->tx_off = 0;
    }
    return ws->tx_cap - ws->tx_len >= n;
}

/* Frames the payload that sits TD_WS_HEADROOM bytes after the queue's end: header, then the payload
 * moved up against it and masked with a fresh key (RFC 6455 §5.3). */
static int frame_at_end(td_ws *ws, uint8_t opcode, size_t len)
{
    uint8_t *h = ws->tx + ws->tx_len;
    size_t hl = 2, i, n = len;
    unsigned code = (unsigned)len; /* the 7-bit length, or 126 / 127 for an extended one */
    if (len > 125) {
        code = 126, hl = 4;
        if (len > 0xFFFFu) code = 127, hl = 10;
    }
    h[0] = (uint8_t)(0x80u | opcode);
    h[1] = (uint8_t)(0x80u | code);
    for (i = hl; i > 2; n >>= 8) h[--i] = (uint8_t)n; /* the extended length, big-endian */
    if (ws->t->random(ws->t->ctx, h + hl, 4) != TD_OK) return TD_E_IO; /* the mask */
    for (i = 0; i < len; i++) h[hl + 4 + i] = h[TD_WS_HEADROOM + i] ^ h[hl + (i & 3u)]; /* moved down: forward is safe */
    ws->tx_len += hl + 4 + len;
    return TD_OK;
}

uint8_t *td_ws_reserve(td_ws *ws, size_t *cap)
{
    size_t free_bytes;
    if (ws->state != TD_WS_OPEN) {
        *cap = 0;
        return 0;
    }
    room(ws, 0); /* compacts */
    free_bytes = ws->tx_cap - ws->tx_len;
    *cap = free_bytes > TD_WS_HEADROOM ? free_bytes - TD_WS_HEADROOM : 0;
    return ws->tx + ws->tx_len + TD_WS_HEADROOM;
}

int td_ws_commit(td_ws *ws, size_t len)
{
    if (ws->state != TD_WS_OPEN) return TD_E_CLOSED;
    if (ws->tx_cap - ws->tx_len < len + TD_WS_HEADROOM) return TD_E_NOSPACE;
    return frame_at_end(ws, OP_BINARY, len);
}

static int send_frame(td_ws *ws, uint8_t opcode, const uint8_t *payload, size_t len)
{
    if (!room(ws, len + TD_WS_HEADROOM)) return TD_E_AGAIN;
    if (len) memcpy(ws->tx + ws->tx_len + TD_WS_HEADROOM, payload, len);
    return frame_at_end(ws, opcode, len);
}

int td_ws_send(td_ws *ws, const uint8_t *payload, size_t len)
{
    if (ws->state != TD_WS_OPEN) return TD_E_CLOSED;
    return send_frame(ws, OP_BINARY, payload, len);
}

TD_NOINLINE static void closed(td_ws *ws, td_ws_event *ev, uint16_t code, int err)
{
    td_ws_abort(ws);
    ev->type = TD_WS_EV_CLOSED;
    ev->code = code;
    ev->err = err;
    ev->data = ws->close + 2;
    ev->len = ws->reason_len;
}

TD_NOINLINE static void set_reason(td_ws *ws, const uint8_t *p, size_t n)
{
    if (n > TD_WS_REASON_MAX) n = TD_WS_REASON_MAX;
    memcpy(ws->close + 2, p, n);
    ws->reason_len = (uint8_t)n;
}

/* Keeps the close code and reason (the CLOSED event's); when open, queues a close frame with them and waits for
 * the hub's answer. */
static void start_close(td_ws *ws, uint16_t code, const char *reason)
{
    ws->close[0] = (uint8_t)(code >> 8);
    ws->close[1] = (uint8_t)code;
    set_reason(ws, (const uint8_t *)reason, reason ? strlen(reason) : 0);
    if (ws->state != TD_WS_OPEN) return;
    send_frame(ws, OP_CLOSE, ws->close, 2u + ws->reason_len); /* no room: it closes anyway */
    ws->state = TD_WS_CLOSING;
    ws->closing_since = ws_now(ws);
}

void td_ws_close(td_ws *ws, uint16_t code, const char *reason)
{
    if (ws->state == TD_WS_OPEN) start_close(ws, code, reason);
    else if (ws->state != TD_WS_CLOSING) {
        td_ws_abort(ws);
    }
}

void td_ws_abort(td_ws *ws)
{
    if (ws->state != TD_WS_CLOSED) ws->t->close(ws->t->ctx);
    ws->state = TD_WS_CLOSED;
    ws->rx_len = ws->rx_consume = ws->tx_off = ws->tx_len = 0;
}

int td_ws_connect(td_ws *ws, const char *host, uint16_t port, const char *path)
{
    if (!host || !path) return TD_E_ARG;
    td_ws_abort(ws);
    ws->host = host;
    ws->port = port;
    ws->path = path;
    ws->state = TD_WS_CONNECTING;
    ws->reason_len = 0;
    ws->http_status = 0;
    ws->last_rx_ms = ws_now(ws);
    return TD_OK;
}

/* The upgrade request (RFC 6455 §4.1) into the output queue, and the accept value it must get back. The
 * template's bytes 1 to 5 stand for the path, the host, the port, the key and "Sec-WebSocket-". */
static int send_upgrade(td_ws *ws)
{
    static const char tmpl[] = "GET \1 HTTP/1.1\r\nHost: \2:\3\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                               "\5Version: 13\r\n\5Protocol: tendril.v1\r\n\5Key: \4\r\n\r\n";
    uint8_t nonce[16];
    char key[25], port[6], *num = port + 5;
    const char *t, *sub[5];
    unsigned v = ws->port;
    size_t n = 0;
    if (ws->t->random(ws->t->ctx, nonce, sizeof nonce) != TD_OK) return TD_E_IO;
    td_base64(nonce, sizeof nonce, key);
    key[24] = 0;
    td_ws_accept_for(key, 24, ws->accept);
    *num = 0;
    do *--num = (char)('0' + v % 10u);
    while ((v /= 10u) != 0);
    sub[0] = ws->path, sub[1] = ws->host, sub[2] = num, sub[3] = key, sub[4] = "Sec-WebSocket-";
    for (t = tmpl; *t; t++) {
        const char *s = t;
        size_t k = 1;
        if (*t < 6) k = strlen(s = sub[*t - 1]);
        if (ws->tx_cap - n < k) return TD_E_NOSPACE;
        memcpy(ws->tx + n, s, k);
        n += k;
    }
    ws->tx_off = 0;
    ws->tx_len = n;
    return TD_OK;
}

/* Does p start with s (lower case when fold), ignoring the case of p when fold? Where the match ends, or NULL. */
TD_NOINLINE static const char *iprefix(const char *p, const char *end, const char *s, int fold)
{
    for (; *s; p++, s++)
        if (p >= end || (*p | (fold && *p >= 'A' && *p <= 'Z' ? 0x20 : 0)) != *s) return 0;
    return p;
}

/* The value of header `name` (lower case, with its colon) in the answer [p, end), trimmed; NULL if absent. */
static const char *header(const char *p, const char *end, const char *name, size_t *len)
{
    const char *v, *e;
    for (; p < end; p++) {
        if (*p != '\n' || !(v = iprefix(p + 1, end, name, 1))) continue;
        for (; v < end && *v == ' '; v++) {}
        for (e = v; e < end && *e != '\r'; e++) {}
        while (e > v && e[-1] == ' ') e--;
        *len = (size_t)(e - v);
        return v;
    }
    return 0;
}

/* Checks the 101 answer in rx[0, end) (RFC 6455 §4.2.2, tendril.v1 §1.1.4, §1.3). Each header, in turn:
 * Upgrade is "websocket" and Connection holds "upgrade" (any case), Sec-WebSocket-Accept is the expected
 * value and Sec-WebSocket-Protocol is tendril.v1 (byte for byte), Sec-WebSocket-Extensions is absent
 * (none was offered). */
static int check_upgrade(td_ws *ws, size_t end)
{
    /* each header's name (lower case, with its colon), then the value it must have ("" for the accept value) */
    static const char checks[] = "upgrade:\0websocket\0connection:\0upgrade\0sec-websocket-accept:\0\0"
                                 "sec-websocket-protocol:\0tendril.v1\0sec-websocket-extensions:\0";
    const char *p = (const char *)ws->rx, *e = p + end, *v, *name = checks, *want;
    size_t n, i, k;
    if (end < 12 || memcmp(p, "HTTP/1.1 ", 9)) return TD_E_HANDSHAKE;
    for (n = 0, i = 9; i < 12; i++) n = n * 10u + (uint8_t)(p[i] - '0');
    ws->http_status = (uint16_t)n;
    if (n != 101 || p[9] != '1') return TD_E_HANDSHAKE; /* with a first digit 1, only "101" makes 101 */
    for (k = 0; k < 5; k++, name = want + strlen(want) + 1) {
        const char *w;
        size_t wlen;
        int ok;
        want = name + strlen(name) + 1;
        w = k == 2 ? ws->accept : want;
        wlen = strlen(w);
        n = 0;
        v = header(p, e, name, &n);
        ok = k == 4 && !v;
        if (v && k < 4 && (k == 1 || n == wlen)) /* Connection is a list that holds "upgrade"; the others are exact */
            for (i = 0; i + wlen <= n; i++) ok |= iprefix(v + i, e, w, k < 2) != 0;
        if (!ok) return TD_E_HANDSHAKE;
    }
    return TD_OK;
}

/* Writes what the transport takes, then reads what it has into rx. TD_OK, or TD_E_IO when the stream failed
 * or ended. */
static int fill(td_ws *ws)
{
    int n;
    if (td_ws_flush(ws)) return TD_E_IO;
    if (ws->rx_len >= ws->rx_cap) return TD_OK;
    n = ws->t->read(ws->t->ctx, ws->rx + ws->rx_len, ws->rx_cap - ws->rx_len);
    if (n < 0) return TD_E_IO;
    if (n > 0) {
        ws->rx_len += (size_t)n;
        ws->last_rx_ms = ws_now(ws);
    }
    return TD_OK;
}

int td_ws_flush(td_ws *ws)
{
    while (ws->tx_off < ws->tx_len) {
        int n = ws->t->write(ws->t->ctx, ws->tx + ws->tx_off, ws->tx_len - ws->tx_off);
        if (n < 0) return TD_E_IO;
        if (n == 0) break;
        ws->tx_off += (size_t)n;
    }
    return TD_OK;
}

/* Fails the connection: a close frame with the code (when open), what is queued written out, then the stream
 * is closed. */
static void fail(td_ws *ws, td_ws_event *ev, uint16_t code, const char *reason, int err)
{
    start_close(ws, code, reason);
    td_ws_flush(ws);
    closed(ws, ev, code, err);
}

void td_ws_poll(td_ws *ws, td_ws_event *ev)
{
    td_ws_header h;
    const uint8_t *pl;
    size_t n;
    int e;
    memset(ev, 0, sizeof *ev);
    if (ws->rx_consume) { /* the message delivered last time is done with */
        memmove(ws->rx, ws->rx + ws->rx_consume, ws->rx_len - ws->rx_consume);
        ws->rx_len -= ws->rx_consume;
        ws->rx_consume = 0;
    }
    switch (ws->state) {
    case TD_WS_CLOSED: return;
    case TD_WS_CONNECTING:
        e = ws->t->connect(ws->t->ctx, ws->host, ws->port);
        if (e == TD_E_AGAIN) return;
        if (e != TD_OK || (e = send_upgrade(ws)) != TD_OK) {
            closed(ws, ev, 1006, e == TD_E_NOSPACE ? TD_E_NOSPACE : TD_E_IO);
            return;
        }
        ws->state = TD_WS_HANDSHAKE;
        ws->rx_len = 0;
        ws->last_rx_ms = ws_now(ws);
        /* fall through */
    case TD_WS_HANDSHAKE: {
        size_t i;
        uint32_t last4;
        if (fill(ws)) {
            closed(ws, ev, 1006, TD_E_IO);
            return;
        }
        for (i = 0, last4 = 0; i < ws->rx_len; i++) /* the answer ends at its first "\r\n\r\n" */
            if ((last4 = last4 << 8 | ws->rx[i]) == 0x0D0A0D0Au) break;
        if (i >= ws->rx_len) {
            if (ws->rx_len == ws->rx_cap) closed(ws, ev, 1006, TD_E_HANDSHAKE); /* an answer we cannot hold */
            return;
        }
        if (check_upgrade(ws, i + 1) != TD_OK) {
            closed(ws, ev, 1006, TD_E_HANDSHAKE);
            return;
        }
        ws->rx_consume = i + 1;
        ws->tx_off = ws->tx_len = 0;
        ws->state = TD_WS_OPEN;
        ev->type = TD_WS_EV_OPEN;
        return;
    }
    default: break;
    }
    /* OPEN or CLOSING */
    e = fill(ws);
    /* closing ends when the hub closes the stream, or when ours went out and no answer came in time */
    if (ws->state == TD_WS_CLOSING &&
        (e || (ws->tx_off == ws->tx_len && (uint32_t)(ws_now(ws) - ws->closing_since) > CLOSE_WAIT_MS))) {
        closed(ws, ev, (uint16_t)(ws->close[0] << 8 | ws->close[1]), TD_OK);
        return;
    }
    if (e) {
        closed(ws, ev, 1006, TD_E_IO);
        return;
    }
    e = parse_header(ws->rx, ws->rx_len, &h);
    if (e == TD_FRAME_TRUNCATED) return;
    if (e != TD_OK || h.masked) { /* RFC 6455 §5.1: a server never masks */
        fail(ws, ev, 1002, "", TD_E_WS);
        return;
    }
    if (h.len > ws->rx_cap - h.header) { /* larger than we can hold */
        fail(ws, ev, 1009, TD_REASON_FRAME_TOO_LARGE, TD_FRAME_TOO_LARGE);
        return;
    }
    n = (size_t)h.len; /* at most rx_cap */
    if (ws->rx_len < h.header + n) return; /* the rest is on its way */
    if (!h.fin || h.opcode == OP_CONT) { /* fragmented: not supported in fixed memory */
        fail(ws, ev, 1003, "fragmented", TD_E_WS);
        return;
    }
    pl = ws->rx + h.header;
    ws->rx_consume = h.header + n; /* done with at the next poll (a failure empties rx anyway) */
    if (h.opcode == OP_BINARY) {
        if (ws->state == TD_WS_OPEN) {
            ev->type = TD_WS_EV_MESSAGE;
            ev->data = pl;
            ev->len = n;
        }
    } else if (h.opcode == OP_TEXT) {
        fail(ws, ev, 1003, TD_REASON_TEXT_FRAME, TD_TEXT_FRAME); /* §1.2.3 */
    } else if (h.opcode == OP_PING) {
        /* no room for the pong now: leave the ping in rx until the queue drains */
        if (ws->state == TD_WS_OPEN && send_frame(ws, OP_PONG, pl, n) == TD_E_AGAIN) ws->rx_consume = 0;
        else td_ws_flush(ws);
    } else if (h.opcode == OP_CLOSE && n != 1) {
        uint16_t code = 1005; /* no status code */
        ws->reason_len = 0;
        if (n >= 2) {
            code = (uint16_t)(pl[0] << 8 | pl[1]);
            set_reason(ws, pl + 2, n - 2);
        }
        /* echo the code, the payload's first two bytes (RFC 6455 §5.5.1); CLOSING: ours went already */
        if (ws->state == TD_WS_OPEN && send_frame(ws, OP_CLOSE, pl, n ? 2u : 0u) == TD_OK) td_ws_flush(ws);
        closed(ws, ev, code, TD_OK);
    } else if (h.opcode != OP_PONG) {
        fail(ws, ev, 1002, "", TD_E_WS); /* reserved opcode, or a close frame with a 1-byte payload */
    }
}
