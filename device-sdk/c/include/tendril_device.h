/*
 * tendril.v1 device client (docs/sdk-c.md): one reconnecting connection to the hub, the caller's reading
 * store kept until the hub's cumulative ACK, commands to a callback. No heap, no globals, no threads: the
 * application's main loop calls td_device_poll() (every few ms, or when the socket is readable).
 *
 * What it does, clause by clause (docs/protocol.md):
 *  - HELLO with the declarations, the epoch (random unless configured), lastSeq, clock, dropped (§4.1, §6.1);
 *    nothing else until WELCOME (§3.2);
 *  - on WELCOME: drop readings <= ackedSeq, resend the rest oldest first as BATCH frames within maxBatch and
 *    maxFrameBytes, then live READING frames, paced to maxRate (§4.3, §6.3);
 *  - ACK drops covered readings (§7.3); BACKOFF pauses readings, then resends everything unacked (§7.4);
 *  - a full store drops the oldest reading, counts it, reports it in HELLO and STATUS (§7.5);
 *  - COMMAND: `delivered` at once, then the callback; its final status goes back; duplicates are answered,
 *    never run twice (§8);
 *  - reconnects with exponential back-off and full jitter, not after REPLACED, AUTH_FAILED,
 *    DEVICE_DISABLED (§6.7); a connection silent for 3 x heartbeatMs is dead (§6.5.4).
 */
#ifndef TENDRIL_DEVICE_H
#define TENDRIL_DEVICE_H

#include "tendril_codec.h"
#include "tendril_ws.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifndef TD_RECENT_COMMANDS
#define TD_RECENT_COMMANDS 64 /* §8.3: at least the 64 most recent command ids */
#endif

/* Build options (docs/sdk-c.md, "Build options"). TD_WITH_BATCH: 1 resends buffered readings as BATCH frames
 * (§5.4); 0 resends them as READING frames, one per reading (the protocol allows both, §6.3), and saves about
 * 240 bytes of flash. */
#ifndef TD_WITH_BATCH
#define TD_WITH_BATCH 1
#endif
/* TD_WITH_RESULT_BUFFER: 1 keeps unsent command results whole in the buffer of td_device_result_buffer (about
 * 150 bytes of flash); 0 keeps their status only (the function then keeps nothing). */
#ifndef TD_WITH_RESULT_BUFFER
#define TD_WITH_RESULT_BUFFER 1
#endif

#define TD_SDK_VERSION "c/0.1.0"

/* Timestamps for td_device_send */
#define TD_TS_NOW (-1)  /* the device clock (td_device_set_clock, or the hub's WELCOME.serverTime); untimed without one */
#define TD_TS_NONE (-2) /* READING_UNTIMED: the hub stamps arrival time (§5.3.1) */

typedef struct td_device td_device;

enum {
    TD_EV_CONNECTED = 1, /* WELCOME arrived; value = WELCOME.ackedSeq */
    TD_EV_DISCONNECTED,  /* code = close code, text = reason, will_reconnect */
    TD_EV_ACK,           /* seq (and value) = every reading up to it is durable in the hub */
    TD_EV_DROP,          /* value = total readings dropped (store overflow) */
    TD_EV_REJECT,        /* the hub rejected a value (alias >= 0) or a reading's timestamp (§7.1): code, seq, alias, text */
    TD_EV_BACKOFF,       /* code (RATE_LIMITED, STORE_BUSY), value = pause ms */
    TD_EV_ERROR          /* code: an ERROR from the hub about the session, or a frame the SDK could not decode */
};

typedef struct {
    uint8_t type;       /* TD_EV_* */
    uint8_t will_reconnect;
    int code;
    int32_t alias;      /* -1 = none */
    uint64_t seq;
    uint64_t value;
    td_str text;        /* valid during the callback only */
} td_event;

/* td_command (tendril_codec.h): id, name and args (valid during the callback only; args JSON text, "" = none),
 * timeout_ms */

/* Answer with td_device_command_result(), from the callback or later (before cmd->timeout_ms).
 * Callbacks may call td_device_send, td_device_command_result and td_device_stop, not td_device_poll. */
typedef void (*td_command_fn)(td_device *dev, const td_command *cmd, void *user);
typedef void (*td_event_fn)(td_device *dev, const td_event *ev, void *user);

typedef struct {
    const char *host;
    uint16_t port;
    const char *path;          /* NULL: "/v1/device" */
    td_str device_id, token, firmware;
    const td_metric *metrics;  /* declarations (§4.2); aliases 0..15 cost one byte per value */
    uint8_t metric_count;
    uint32_t epoch;            /* 0: a random epoch per td_device_init (§6.3.2) */
    uint32_t initial_delay_ms; /* 0: 500 */
    uint32_t max_delay_ms;     /* 0: 30000 */
    td_command_fn on_command;  /* NULL: every command is rejected */
    td_event_fn on_event;      /* may be NULL */
    void *user;
} td_device_config;

enum { TD_DEV_STOPPED, TD_DEV_WAITING, TD_DEV_CONNECTING, TD_DEV_HELLO_SENT, TD_DEV_READY, TD_DEV_STOPPING };

struct td_device {
    /* the fields the client uses most come first: short offsets make short instructions on Thumb-2 */
    uint8_t state, has_clock, numbered, attempt;
    uint8_t recent_next;
    const td_device_config *cfg;
    uint8_t *store;            /* the caller's reading store: records [head, tail), oldest first */
    size_t store_cap, head, tail;
    size_t sent_bytes;         /* bytes of the records sent on this connection since WELCOME or BACKOFF */
    uint32_t count, sent;      /* records held; of them, sent */
    uint32_t clock_at;
    uint32_t epoch;
    uint32_t heartbeat_ms, max_frame, max_batch, max_rate;
    uint32_t tokens;           /* rate bucket, in thousandths of a reading */
    uint32_t refilled_at;
    uint32_t timer_start, timer_ms; /* reconnect wait */
    uint32_t pause_start, pause_ms; /* BACKOFF; pause_ms 0: not paused */
    int last_error;            /* code of the last ERROR about the session (seq 0) */
    uint8_t *results;          /* the caller's buffer for results that could not be sent (td_device_result_buffer) */
    size_t results_cap, results_len;
    td_ws ws;
    uint64_t first_seq;        /* seq of the oldest record; records hold consecutive seqs */
    uint64_t dropped, reported_dropped;
    td_ctx ctx;                /* §5.1 delta context of this connection */
    uint64_t hello_clock;
    uint64_t clock_base;       /* Unix ms at clock_at */
    uint32_t recent_id[TD_RECENT_COMMANDS];
    uint8_t recent_status[TD_RECENT_COMMANDS]; /* TD_CMD_*; 0x80 = final status not yet sent */
};

/* Prepares the client in the caller's memory: the store keeps unacked readings (about 12 bytes + the
 * values' bytes each: 27 bytes for three f32), rx takes the largest hub frame (COMMAND with its args:
 * 512 is plenty unless your commands carry long arguments), tx queues outgoing frames (it bounds a BATCH;
 * 512 or more). cfg and its strings must outlive the client. Does not connect: call td_device_start. */
int td_device_init(td_device *dev, const td_device_config *cfg, const td_transport *t, uint8_t *store,
                   size_t store_cap, uint8_t *rx, size_t rx_cap, uint8_t *tx, size_t tx_cap);
/* Connects, and keeps reconnecting until td_device_stop or a terminal close. */
int td_device_start(td_device *dev);
/* Closes with 1000 and stops reconnecting; unacked readings stay in the store. */
void td_device_stop(td_device *dev);
/* Does the work that can be done now. Call it often. Returns the state (TD_DEV_*). */
int td_device_poll(td_device *dev);

/* Stores a reading (values of declared metrics, each encoded as its declared kind) and sends it when the
 * connection and the rate allow. ts: Unix ms, TD_TS_NOW or TD_TS_NONE. *seq (may be NULL) gets its
 * sequence number. TD_E_NOSPACE: larger than the store or than one frame can carry; encoder codes for
 * bad values (TD_INVALID_FIELD, TD_STRING_TOO_LONG, ...). A full store drops its oldest reading. */
int td_device_send(td_device *dev, const td_value *values, uint8_t count, int64_t ts, uint64_t *seq);
/* The final status of a command (TD_CMD_SUCCEEDED, _FAILED, _REJECTED) with its detail (JSON result or reason). */
int td_device_command_result(td_device *dev, uint64_t id, uint8_t status, td_str detail);
/* Gives the client a buffer (the caller's memory; call after td_device_init) for final command results
 * that cannot be sent now (no connection, or the output queue is full): each is kept there whole, detail
 * included (the encoded COMMAND_RESULT frame, 12 bytes + the detail's, + 2), and sent oldest first as soon
 * as the connection and the output queue allow (after the next WELCOME when offline).
 * Without it, or when it is full, only the id and status are kept (in the recent-command table) and the
 * result goes after the next WELCOME with an empty detail: the detail is the caller's string, which the
 * client cannot keep past the call without memory of its own. */
void td_device_result_buffer(td_device *dev, uint8_t *buf, size_t cap);
/* Sets the device clock (Unix ms now). Without it the client takes the hub's WELCOME.serverTime. */
void td_device_set_clock(td_device *dev, uint64_t unix_ms);
/* Unix ms now (0 when no clock is known yet). */
uint64_t td_device_now(const td_device *dev);
/* Readings held until an ACK covers them. */
uint32_t td_device_buffered(const td_device *dev);

#ifdef __cplusplus
}
#endif
#endif
