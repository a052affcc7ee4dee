/*
 * A fake transport for the unit tests: a scripted peer in memory and a clock the test moves. The server side
 * of the WebSocket (accepting the upgrade, framing hub frames, unmasking what the client sent) is written
 * here from RFC 6455, apart from the client under test.
 */
#ifndef FAKE_HUB_H
#define FAKE_HUB_H
#include <stdio.h>
#include <string.h>

#include "tendril_ws.h"

typedef struct {
    uint8_t in[1 << 16];  /* what the peer sent, not yet read by the client */
    size_t in_len, in_off;
    uint8_t out[1 << 18]; /* what the client wrote, not yet taken by the test */
    size_t out_len, out_off;
    size_t write_chunk;   /* most bytes taken per write; 0: all */
    size_t read_chunk;    /* most bytes given per read; 0: all */
    int connect_result;   /* what connect returns (TD_OK, TD_E_AGAIN, TD_E_IO) */
    int connects, closes, eof, write_fail;
    uint32_t now;
    uint32_t rnd;
} fake;

static int fake_connect(void *ctx, const char *host, uint16_t port)
{
    fake *f = ctx;
    (void)host;
    (void)port;
    f->connects++;
    if (f->connect_result == TD_OK) {
        f->in_len = f->in_off = 0;
        f->out_len = f->out_off = 0;
        f->eof = 0;
    }
    return f->connect_result;
}

static int fake_read(void *ctx, uint8_t *buf, size_t n)
{
    fake *f = ctx;
    size_t avail = f->in_len - f->in_off;
    if (!avail) return f->eof ? -1 : 0;
    if (n > avail) n = avail;
    if (f->read_chunk && n > f->read_chunk) n = f->read_chunk;
    memcpy(buf, f->in + f->in_off, n);
    f->in_off += n;
    return (int)n;
}

static int fake_write(void *ctx, const uint8_t *buf, size_t n)
{
    fake *f = ctx;
    if (f->write_fail) return -1;
    if (f->write_chunk && n > f->write_chunk) n = f->write_chunk;
    if (n > sizeof f->out - f->out_len) n = sizeof f->out - f->out_len;
    memcpy(f->out + f->out_len, buf, n);
    f->out_len += n;
    return (int)n;
}

static void fake_close(void *ctx)
{
    ((fake *)ctx)->closes++;
}

static uint32_t fake_now(void *ctx)
{
    return ((fake *)ctx)->now;
}

static int fake_random(void *ctx, uint8_t *buf, size_t n)
{
    fake *f = ctx;
    while (n--) {
        f->rnd = f->rnd * 1664525u + 1013904223u;
        *buf++ = (uint8_t)(f->rnd >> 24);
    }
    return TD_OK;
}

static void fake_transport(td_transport *t, fake *f)
{
    /* the buffers need no clearing (a fuzzer calls this per input) */
    f->in_len = f->in_off = f->out_len = f->out_off = f->write_chunk = f->read_chunk = 0;
    f->connect_result = TD_OK;
    f->connects = f->closes = f->eof = f->write_fail = 0;
    f->rnd = 42;
    f->now = 1000;
    t->ctx = f;
    t->connect = fake_connect;
    t->read = fake_read;
    t->write = fake_write;
    t->close = fake_close;
    t->now_ms = fake_now;
    t->random = fake_random;
}

static void fake_push(fake *f, const void *p, size_t n)
{
    memcpy(f->in + f->in_len, p, n);
    f->in_len += n;
}

/* The client's upgrade request, NUL-terminated, or NULL when it has not all arrived. */
static const char *fake_request(fake *f)
{
    static char req[4096];
    size_t n = f->out_len - f->out_off;
    if (n >= sizeof req) n = sizeof req - 1;
    memcpy(req, f->out + f->out_off, n);
    req[n] = 0;
    return strstr(req, "\r\n\r\n") ? req : NULL;
}

/* Answers the upgrade as a hub does (101 with accept and tendril.v1); extra headers are appended. */
static int fake_accept(fake *f, const char *extra, int break_accept)
{
    const char *req = fake_request(f), *k;
    char accept[29], resp[1024];
    if (!req || !(k = strstr(req, "Sec-WebSocket-Key: "))) return 0;
    td_ws_accept_for(k + 19, 24, accept);
    accept[28] = 0;
    if (break_accept) accept[3] ^= 1;
    snprintf(resp, sizeof resp,
             "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: tendril.v1\r\n%s\r\n",
             accept, extra ? extra : "");
    f->out_off = f->out_len = 0;
    fake_push(f, resp, strlen(resp));
    return 1;
}

/* An unmasked server frame. */
static void fake_frame(fake *f, uint8_t first_byte, const uint8_t *p, size_t n)
{
    uint8_t h[10];
    size_t hl = 2;
    h[0] = first_byte;
    if (n < 126) h[1] = (uint8_t)n;
    else if (n < 65536) {
        h[1] = 126;
        h[2] = (uint8_t)(n >> 8);
        h[3] = (uint8_t)n;
        hl = 4;
    } else {
        h[1] = 127;
        memset(h + 2, 0, 4);
        h[6] = (uint8_t)(n >> 24);
        h[7] = (uint8_t)(n >> 16);
        h[8] = (uint8_t)(n >> 8);
        h[9] = (uint8_t)n;
        hl = 10;
    }
    fake_push(f, h, hl);
    if (n) fake_push(f, p, n);
}

static void fake_binary(fake *f, const uint8_t *p, size_t n)
{
    fake_frame(f, 0x82, p, n);
}

/* Takes the next client frame: its opcode, unmasked payload (into buf), and whether it was masked.
 * 0 when no whole frame is there. */
static int fake_take(fake *f, uint8_t *opcode, uint8_t *buf, size_t *len, int *masked, uint8_t mask_out[4])
{
    const uint8_t *p = f->out + f->out_off;
    size_t avail = f->out_len - f->out_off, hl = 2, n, i;
    if (avail < 2) return 0;
    n = p[1] & 0x7F;
    if (n == 126) {
        if (avail < 4) return 0;
        n = (size_t)p[2] << 8 | p[3];
        hl = 4;
    } else if (n == 127) {
        if (avail < 10) return 0;
        n = (size_t)p[8] << 8 | p[9];
        hl = 10;
    }
    *masked = p[1] >> 7;
    if (*masked) hl += 4;
    if (avail < hl + n) return 0;
    *opcode = p[0];
    for (i = 0; i < n; i++) buf[i] = (uint8_t)(p[hl + i] ^ (*masked ? p[hl - 4 + (i & 3)] : 0));
    if (mask_out && *masked) memcpy(mask_out, p + hl - 4, 4);
    *len = n;
    f->out_off += hl + n;
    return 1;
}
#endif
