/*
 * RFC 6455 WebSocket client for tendril.v1, over any td_transport, in the caller's buffers.
 * - Handshake: GET path with a random Sec-WebSocket-Key, Sec-WebSocket-Protocol: tendril.v1 and no
 *   extensions; the 101 answer must carry the matching Sec-WebSocket-Accept (SHA-1 + base64, checked), the
 *   subprotocol tendril.v1 (§1.1.4) and no extension (§1.3).
 * - Every frame it sends is masked with a fresh random key (RFC 6455 §5.3).
 * - Pings are answered with pongs; a close frame is answered and the stream closed.
 * - It refuses what it cannot hold: fragmented messages (close 1003), messages larger than its receive
 *   buffer (close 1009); masked or reserved-bit frames, bad control frames, unknown opcodes (close 1002);
 *   text messages (close 1003, tendril.v1 §1.2.3).
 * Non-blocking: td_ws_poll() does whatever can be done now and returns one event at a time.
 */
#ifndef TENDRIL_WS_H
#define TENDRIL_WS_H

#include "tendril_codec.h"
#include "tendril_transport.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TD_WS_HEADROOM 14u /* largest client frame header: 2 + 8 (length) + 4 (mask) */
#define TD_WS_REASON_MAX 24u

enum { TD_WS_CLOSED, TD_WS_CONNECTING, TD_WS_HANDSHAKE, TD_WS_OPEN, TD_WS_CLOSING };
enum { TD_WS_EV_NONE, TD_WS_EV_OPEN, TD_WS_EV_MESSAGE, TD_WS_EV_CLOSED };

typedef struct {
    uint8_t type;      /* TD_WS_EV_* */
    uint16_t code;     /* CLOSED: the close code (1006 when there was no close frame) */
    int err;           /* CLOSED: TD_OK, TD_E_IO, TD_E_HANDSHAKE, TD_E_WS, or what td_ws_fail was given */
    const uint8_t *data; /* MESSAGE: the payload (valid until the next td_ws_poll); CLOSED: the reason */
    size_t len;
} td_ws_event;

typedef struct {
    const td_transport *t;
    const char *host, *path;
    uint16_t port;
    uint8_t state;
    uint16_t http_status;   /* status of the last upgrade answer (101, or why it failed: 400 ...) */
    uint8_t reason_len;
    uint8_t close[2 + TD_WS_REASON_MAX]; /* close frame payload: the code (big-endian), the reason */
    char accept[29];        /* the Sec-WebSocket-Accept we expect, NUL-terminated */
    uint8_t *rx;
    size_t rx_cap, rx_len, rx_consume;
    uint8_t *tx;
    size_t tx_cap, tx_off, tx_len;
    uint32_t last_rx_ms;    /* when bytes last arrived (liveness) */
    uint32_t closing_since;
} td_ws;

/* Parsed header of one frame (RFC 6455 §5.2). */
typedef struct {
    uint8_t fin, opcode, masked;
    uint64_t len;  /* payload length */
    size_t header; /* header bytes */
} td_ws_header;

void td_ws_init(td_ws *ws, const td_transport *t, uint8_t *rx, size_t rx_cap, uint8_t *tx, size_t tx_cap);
/* Starts connecting (path e.g. "/v1/device"); strings must outlive the connection. */
int td_ws_connect(td_ws *ws, const char *host, uint16_t port, const char *path);
/* Does the work that can be done now; *ev says what happened (TD_WS_EV_NONE: nothing more for now). */
void td_ws_poll(td_ws *ws, td_ws_event *ev);
/* Queues one binary message (copied). TD_E_AGAIN: no room now; TD_E_CLOSED: not open. */
int td_ws_send(td_ws *ws, const uint8_t *payload, size_t len);
/* Zero-copy send: the room for a payload of up to *cap bytes, then commit the length written there. */
uint8_t *td_ws_reserve(td_ws *ws, size_t *cap);
int td_ws_commit(td_ws *ws, size_t len);
/* Starts the closing handshake (code, reason); the CLOSED event follows. */
void td_ws_close(td_ws *ws, uint16_t code, const char *reason);
/* Closes at once, without a close frame; no event follows. */
void td_ws_abort(td_ws *ws);
/* Writes what the transport takes now: TD_OK or TD_E_IO (td_ws_poll flushes too). */
int td_ws_flush(td_ws *ws);
/* Bytes queued and not yet written. */
size_t td_ws_pending(const td_ws *ws);

/* The pure parts, for tests and fuzzers. */
/* TD_OK (header complete), TD_FRAME_TRUNCATED (need more bytes), TD_E_WS (invalid). */
int td_ws_parse_header(const uint8_t *p, size_t len, td_ws_header *h);
/* SHA-1 of data (len under 512 MB: the SDK hashes 60 bytes). */
void td_sha1(const uint8_t *data, size_t len, uint8_t out[20]);
/* Standard base64 with padding; out gets 4 * ((n + 2) / 3) characters (no NUL). */
size_t td_base64(const uint8_t *in, size_t n, char *out);
/* The Sec-WebSocket-Accept for a key (RFC 6455 §4.2.2): base64(SHA-1(key + GUID)), 28 characters. */
void td_ws_accept_for(const char *key, size_t key_len, char out[28]);

#ifdef __cplusplus
}
#endif
#endif
