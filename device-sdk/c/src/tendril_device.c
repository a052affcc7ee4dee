/*
 * tendril.v1 device client (see tendril_device.h). Section numbers (§) refer to docs/protocol.md.
 *
 * The reading store is the caller's buffer holding records oldest first, from `head` to `tail`:
 *   u16 values length | u8 value count | u8 flags (1 timed, 2 skipped) | [u64 ts if timed] | values (§5.2)
 * (the length and the timestamp in host byte order: only this client reads its store)
 * The values are encoded once, at td_device_send; a frame adds only the deltas (§5.1), so resending after a
 * reconnect or a BACKOFF copies bytes. Records hold consecutive seqs from first_seq, because only the oldest
 * is ever dropped.
 */
#include "tendril_device.h"

#include <string.h>

#define F_TIMED 1u
#define F_SKIP 2u
#define DEFAULT_HEARTBEAT_MS 10000u /* before WELCOME tells the real one (§6.5) */
#define DEAD_AFTER_PERIODS 3u       /* §6.5.4 */
#if defined(__GNUC__)
#define TD_NOINLINE __attribute__((noinline)) /* one copy of a helper that -Os would inline at every call */
#define TD_INLINE __attribute__((always_inline)) inline /* where -Os keeps a call that costs more than the body */
#else
#define TD_NOINLINE
#define TD_INLINE
#endif

static uint32_t now_ms(const td_device *d)
{
    return d->ws.t->now_ms(d->ws.t->ctx);
}

static void emit(td_device *d, td_event *ev)
{
    if (d->cfg->on_event) d->cfg->on_event(d, ev, d->cfg->user);
}

/* An event of this type and code, no alias, no text */
TD_NOINLINE static void ev_init(td_event *ev, unsigned type, int code)
{
    memset(ev, 0, sizeof *ev);
    ev->type = (uint8_t)type;
    ev->code = code;
    ev->alias = -1;
    ev->text.p = "";
}

/* An event with a code and one number: the value, and the seq too for CONNECTED and ACK */
static void emit_simple(td_device *d, unsigned type, uint64_t value, int code)
{
    td_event ev;
    ev_init(&ev, type, code);
    if (type == TD_EV_CONNECTED || type == TD_EV_ACK) ev.seq = value;
    ev.value = value;
    emit(d, &ev);
}

static const td_str no_detail = {"", 0};

static void pump(td_device *d);

/* ---- the reading store ---- */

/* the length of a record's values */
static size_t rec_len(const uint8_t *r)
{
    uint16_t n;
    memcpy(&n, r, 2);
    return n;
}

static size_t rec_size(const uint8_t *r)
{
    return 4u + ((r[3] & F_TIMED) ? 8u : 0u) + rec_len(r);
}

static uint64_t rec_ts(const uint8_t *r)
{
    uint64_t ts;
    memcpy(&ts, r + 4, 8);
    return ts;
}

static void drop_head(td_device *d)
{
    size_t n = rec_size(d->store + d->head);
    if (d->sent) {
        d->sent--;
        d->sent_bytes -= n;
    }
    d->head += n;
    d->count--;
    d->first_seq++;
    if (!d->count) d->head = d->tail = 0;
}

uint32_t td_device_buffered(const td_device *d)
{
    return d->count;
}

/* §7.3: the ACK is cumulative */
static void acked(td_device *d, uint64_t seq)
{
    int n = 0;
    while (d->count && d->first_seq <= seq) {
        drop_head(d);
        n = 1;
    }
    if (n) emit_simple(d, TD_EV_ACK, seq, 0);
}

int td_device_send(td_device *d, const td_value *values, uint8_t count, int64_t ts, uint64_t *seq)
{
    size_t vlen, hdr, need;
    uint8_t *r;
    uint64_t t = 0;
    uint32_t dropped = 0;
    uint16_t len16;
    int timed = 1, e;
    if (ts == TD_TS_NOW) {
        timed = d->has_clock;
        t = td_device_now(d);
    } else if (ts == TD_TS_NONE) {
        timed = 0;
    } else if (ts < 0 || (uint64_t)ts > TD_MAX_SAFE) {
        return TD_E_ARG;
    } else {
        t = (uint64_t)ts;
    }
    e = td_encode_values(NULL, 0, &vlen, values, count, NULL); /* checks the values, measures them */
    if (e) return e;
    hdr = timed ? 12u : 4u;
    need = hdr + vlen;
    /* a READING frame of it (type, two deltas of up to 8 bytes, values) must fit the output queue */
    if (vlen > 0xFFFFu || need > d->store_cap || 17u + vlen + TD_WS_HEADROOM > d->ws.tx_cap) return TD_E_NOSPACE;
    while (d->store_cap - d->tail < need) {
        if (d->head) { /* compact */
            memmove(d->store, d->store + d->head, d->tail - d->head);
            d->tail -= d->head;
            d->head = 0;
        } else {
            drop_head(d); /* §7.5: full: the oldest goes, and is counted */
            dropped++;
        }
    }
    r = d->store + d->tail;
    len16 = (uint16_t)vlen;
    memcpy(r, &len16, 2);
    r[2] = count;
    r[3] = (uint8_t)timed; /* F_TIMED or 0 */
    if (timed) memcpy(r + 4, &t, 8); /* host byte order: only this client reads its store */
    td_encode_values(r + hdr, vlen, &vlen, values, count, NULL);
    d->tail += need;
    if (seq) *seq = d->first_seq + d->count;
    d->count++;
    if (dropped) {
        d->dropped += dropped;
        emit_simple(d, TD_EV_DROP, d->dropped, 0);
    }
    pump(d); /* out at once when connected, not at the next poll */
    return TD_OK;
}

/* ---- frames out ---- */

/* One reading's deltas (and value count in a BATCH) and values at b[*pos]; advances c. 0 if it does not fit. */
static TD_INLINE int put_record(uint8_t *b, size_t *pos, size_t limit, const uint8_t *r, uint64_t seq, td_ctx *c, int counted)
{
    td_writer w;
    uint64_t ts = c->prev_ts;
    const uint8_t *values = r + 4;
    w.p = b;
    w.cap = limit;
    w.pos = *pos;
    w.err = 0;
    td_w_svarint(&w, (int64_t)seq - (int64_t)c->prev_seq);
    if (r[3] & F_TIMED) {
        ts = rec_ts(r);
        td_w_svarint(&w, (int64_t)ts - (int64_t)c->prev_ts);
        values += 8;
    }
    if (counted) td_w_varint(&w, r[2]);
    td_w_bytes(&w, values, rec_len(r));
    if (w.err) return 0;
    c->prev_seq = seq;
    c->prev_ts = ts;
    *pos = w.pos;
    return 1;
}

static int send_result(td_device *d, uint8_t status, uint64_t id, const td_str *detail)
{
    size_t cap, len;
    uint8_t *b;
    int e;
    if (d->state != TD_DEV_READY) return TD_E_CLOSED;
    b = td_ws_reserve(&d->ws, &cap);
    e = td_encode_command_result(b, cap, &len, id, status, *detail, NULL);
    if (!e) e = td_ws_commit(&d->ws, len);
    return e;
}

TD_NOINLINE static int recent_find(const td_device *d, uint64_t id)
{
    int i;
    for (i = TD_RECENT_COMMANDS; i--;)
        if (d->recent_id[i] == (uint32_t)id && d->recent_id[i]) return i;
    return -1;
}

/* §8.3: the kept status of recent command i again, with no detail; "not yet sent" clears once it is queued. */
static int resend_status(td_device *d, int i)
{
    int e = send_result(d, d->recent_status[i] & 0x7Fu, d->recent_id[i], &no_detail);
    if (!e) d->recent_status[i] &= 0x7Fu;
    return e;
}

int td_device_command_result(td_device *d, uint64_t id, uint8_t status, td_str detail)
{
    int i = recent_find(d, id);
    if (status < TD_CMD_SUCCEEDED || status > TD_CMD_REJECTED) return TD_E_ARG;
    if (detail.len > TD_MAX_DETAIL_BYTES) detail.len = 0; /* never fails for a long detail */
    if (i >= 0) d->recent_status[i] = status;
    if (send_result(d, status, id, &detail) == TD_OK) return td_ws_flush(&d->ws);
    /* not connected, or no room: the whole frame into the caller's result buffer when it fits ... */
#if TD_WITH_RESULT_BUFFER
    if (d->results_cap - d->results_len > 2u) { /* no buffer: a capacity of 0 */
        size_t len;
        uint8_t *b = d->results + d->results_len;
        if (!td_encode_command_result(b + 2, d->results_cap - d->results_len - 2u, &len, id, status, detail, NULL) &&
            len + TD_WS_HEADROOM <= d->ws.tx_cap) { /* a frame the output queue can ever take */
            b[0] = (uint8_t)len;
            b[1] = (uint8_t)(len >> 8);
            d->results_len += len + 2u;
            return TD_OK;
        }
    }
#endif
    /* ... else the status alone (the detail is the caller's string) goes after the next WELCOME */
    if (i >= 0) d->recent_status[i] = (uint8_t)(status | 0x80u);
    return TD_OK;
}

/* §5.4, §6.3.4, §7.4: what is unsent, oldest first, in BATCH frames (several) or READING frames (one). */
static void pump(td_device *d)
{
    uint32_t now = now_ms(d);
    int i;
    if (d->state != TD_DEV_READY) return;
    if (d->dropped != d->reported_dropped) { /* §7.5: STATUS whenever the total changed */
        uint8_t st[9];    /* the type and a varint: the count stays far below 2^53 */
        st[0] = TD_STATUS;
        if (td_ws_send(&d->ws, st, 1u + td_put_varint(st + 1, d->dropped))) goto flush;
        d->reported_dropped = d->dropped;
    }
#if TD_WITH_RESULT_BUFFER
    while (d->results_len) { /* results kept whole, oldest first */
        size_t len = (size_t)(d->results[0] | d->results[1] << 8);
        if (td_ws_send(&d->ws, d->results + 2, len)) goto flush;
        d->results_len -= len + 2u;
        memmove(d->results, d->results + len + 2u, d->results_len);
    }
#endif
    for (i = 0; i < TD_RECENT_COMMANDS; i++) {
        if ((d->recent_status[i] & 0x80u) && resend_status(d, i)) goto flush;
    }
    if (d->pause_ms) { /* BACKOFF */
        if ((uint32_t)(now - d->pause_start) < d->pause_ms) goto flush;
        d->pause_ms = 0;
    }
    while (d->sent < d->count) {
        size_t cap, limit, pos, used, off = d->head + d->sent_bytes;
        uint32_t k, avail = 0xFFFFFFFFu;
        uint8_t *r = d->store + off;
        uint64_t seq = d->first_seq + d->sent;
        td_ctx c;
        uint8_t *b;
        int batch;
        if (d->max_rate) { /* §4.3.1: a token bucket of maxRate per second, one second of burst */
            uint32_t elapsed = now - d->refilled_at, full = d->max_rate * 1000u;
            if (elapsed > 1000u) elapsed = 1000u;
            d->tokens = d->tokens + elapsed * d->max_rate > full ? full : d->tokens + elapsed * d->max_rate;
            d->refilled_at = now;
            if (d->tokens < 1000u) break;
            avail = d->tokens / 1000u;
        }
        if (r[3] & F_SKIP) { /* passed over, as if sent */
            k = 1;
            used = rec_size(r);
            goto next;
        }
        b = td_ws_reserve(&d->ws, &cap);
        if (cap < 4) break; /* closing (a capacity of 0), or the queue is full: later */
        limit = cap < d->max_frame ? cap : d->max_frame;
        if (17u + rec_len(r) > d->max_frame) {
            /* larger than the hub's frame limit: it would block every later reading */
            r[3] |= F_SKIP;
            d->dropped++;
            emit_simple(d, TD_EV_DROP, d->dropped, 0);
            continue;
        }
        /* §5.4: timed readings as one BATCH (within maxBatch, the frame and the rate) when two or more fit,
         * else one READING (a single unsent reading, maxBatch 1 or a rate that allows one: the BATCH tried
         * first stops at one and is built again as a READING) */
        batch = TD_WITH_BATCH;
        for (;; batch = 0) {
            c = d->ctx;
            k = 0;
            used = 0;
            pos = batch ? 3 : 1; /* type, and two bytes for a BATCH's count */
            while (d->sent + k < d->count && k < (batch ? d->max_batch : 1u) && k < avail) {
                const uint8_t *rr = r + used;
                if ((batch && (rr[3] & (F_TIMED | F_SKIP)) != F_TIMED) || !put_record(b, &pos, limit, rr, seq + k, &c, batch))
                    break;
                used += rec_size(rr);
                k++;
            }
            if (!batch || k >= 2) break;
        }
        if (!k) break; /* waits for the queue to drain */
        b[0] = (r[3] & F_TIMED) ? TD_READING : TD_READING_UNTIMED;
        if (batch) {
            b[0] = TD_BATCH;
            if (td_put_varint(b + 1, k) == 1) { /* the count in one byte: the entries move down */
                memmove(b + 2, b + 3, pos - 3);
                pos--;
            }
        }
        if (td_ws_commit(&d->ws, pos)) break;
        d->ctx = c; /* §5.1.3: the context advances with every reading sent, in order */
        d->tokens -= k * 1000u; /* read only while max_rate is set; WELCOME sets it again */
    next:
        d->sent += k;
        d->sent_bytes += used;
    }
flush:
    td_ws_flush(&d->ws);
}

/* ---- frames in ---- */

/* §6.6.5: the close reason is the code's name (td_reasons): code is one td_decode_hub_frame returns (a registry
 * code from 1 to 12), or UNEXPECTED_FRAME */
static const char *decode_error_name(int code)
{
    const char *p = td_reasons;
    while (--code) p += strlen(p) + 1;
    return p;
}

TD_NOINLINE static uint32_t clamp32(uint64_t v, uint32_t max)
{
    return v > max ? max : (uint32_t)v;
}

static void on_welcome(td_device *d, const td_hub_frame *f)
{
    uint64_t acked_seq = f->u.welcome.acked_seq;
    if (!d->numbered) {
        /* §6.3.5: a persisted epoch the hub already holds seqs of: number ours after them */
        d->numbered = 1;
        if (acked_seq >= d->first_seq) d->first_seq = acked_seq + 1;
    }
    d->state = TD_DEV_READY;
    d->heartbeat_ms = clamp32(f->u.welcome.heartbeat_ms, 3600000u);
    d->max_frame = clamp32(f->u.welcome.max_frame_bytes, 1048576u);
    d->max_batch = clamp32(f->u.welcome.max_batch, 256u); /* 0 or 1: the BATCH the pump tries stops short, a READING goes */
    d->max_rate = clamp32(f->u.welcome.max_rate, 1000000u);
    d->tokens = d->max_rate * 1000u;
    d->refilled_at = now_ms(d);
    d->attempt = 0;
    d->sent = 0;
    d->sent_bytes = 0;
    /* §5.1.2 */
    d->ctx.prev_seq = acked_seq;
    d->ctx.prev_ts = d->hello_clock;
    if (!d->has_clock && f->u.welcome.server_time) td_device_set_clock(d, f->u.welcome.server_time); /* §4.3.2 */
    acked(d, acked_seq); /* §6.1.4: what the hub holds is done with, before anything is resent */
    emit_simple(d, TD_EV_CONNECTED, acked_seq, 0);
}

static void on_command(td_device *d, const td_hub_frame *f)
{
    uint64_t id = f->u.command.id;
    int i = recent_find(d, id);
    if (i >= 0) {
        /* §8.3: a duplicate runs nothing; the stored final status again, or `delivered` while it runs */
        resend_status(d, i);
        return;
    }
    i = d->recent_next;
    d->recent_next = (uint8_t)((d->recent_next + 1u) % TD_RECENT_COMMANDS);
    d->recent_id[i] = (uint32_t)id;
    d->recent_status[i] = TD_CMD_DELIVERED;
    send_result(d, TD_CMD_DELIVERED, id, &no_detail); /* §8.2.1: at once, before it runs */
    if (!d->cfg->on_command) {
        td_str why;
        why.p = "no command handler";
        why.len = sizeof "no command handler" - 1u;
        td_device_command_result(d, id, TD_CMD_REJECTED, why);
        return;
    }
    d->cfg->on_command(d, &f->u.command, d->cfg->user); /* the decoded frame's fields, as they are */
}

static void on_message(td_device *d, const uint8_t *p, size_t n)
{
    td_hub_frame f;
    td_event ev;
    int e = td_decode_hub_frame(p, n, &f, NULL);
    /* §3.2: nothing but WELCOME (or ERROR) before WELCOME, and one WELCOME per connection */
    if (!e && f.type != TD_ERROR && (f.type == TD_WELCOME) == (d->state == TD_DEV_READY)) e = TD_UNEXPECTED_FRAME;
    if (e) {
        emit_simple(d, TD_EV_ERROR, 0, e);
        td_ws_close(&d->ws, 1002, decode_error_name(e)); /* §6.6.5 */
        return;
    }
    if (f.type == TD_WELCOME) on_welcome(d, &f);
    else if (f.type == TD_ACK) acked(d, f.u.ack.seq);
    else if (f.type == TD_COMMAND) on_command(d, &f);
    else if (f.type == TD_BACKOFF) { /* §7.4: no readings for pauseMs, then everything unacked again, oldest first */
        d->pause_start = now_ms(d);
        d->pause_ms = clamp32(f.u.backoff.pause_ms, 3600000u);
        d->sent = 0;
        d->sent_bytes = 0;
        if (f.u.backoff.code == TD_RATE_LIMITED) d->tokens = 0;
        emit_simple(d, TD_EV_BACKOFF, d->pause_ms, (int)f.u.backoff.code);
    } else { /* TD_ERROR: the decoder returns no other type */
        /* §7.1: about a reading (seq > 0): it is acked anyway and never resent; else about the session */
        ev_init(&ev, f.u.error.seq ? TD_EV_REJECT : TD_EV_ERROR,
                f.u.error.code > 0x7FFFu ? 0x7FFF : (int)f.u.error.code);
        ev.seq = f.u.error.seq;
        ev.alias = f.u.error.alias;
        ev.text = f.u.error.message;
        if (!f.u.error.seq) d->last_error = ev.code;
        emit(d, &ev);
    }
}

/* ---- connection ---- */

static TD_INLINE uint32_t random32(td_device *d)
{
    uint8_t b[4] = {0, 0, 0, 0};
    d->ws.t->random(d->ws.t->ctx, b, 4);
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void connect_now(td_device *d)
{
    d->state = TD_DEV_CONNECTING;
    d->last_error = 0;
    td_ws_connect(&d->ws, d->cfg->host, d->cfg->port, d->cfg->path ? d->cfg->path : "/v1/device");
}

static void disconnected(td_device *d, uint16_t code, const uint8_t *reason, size_t reason_len)
{
    /* §6.4, §6.7.2: retrying cannot fix these (by the close reason or the ERROR before it); the application
     * decides. Each: its wire code, then its name. */
    static const char names[] = "\x14" "AUTH_FAILED\0" "\x15" "REPLACED\0" "\x1b" "DEVICE_DISABLED\0";
    const char *name;
    td_event ev;
    int terminal = 0;
    if (code == 1008)
        for (name = names; *name; name += strlen(name) + 1)
            if (d->last_error == name[0] || (reason_len == strlen(name + 1) && !memcmp(reason, name + 1, reason_len)))
                terminal = 1;
    d->sent = 0;
    d->sent_bytes = 0;
    if (terminal || d->state == TD_DEV_STOPPING || d->state == TD_DEV_STOPPED) {
        d->state = TD_DEV_STOPPED;
    } else {
        /* §6.7.1: a uniformly random wait in [0, min(maxDelay, initialDelay * 2^n)] */
        uint32_t initial = d->cfg->initial_delay_ms ? d->cfg->initial_delay_ms : 500u;
        uint32_t max = d->cfg->max_delay_ms ? d->cfg->max_delay_ms : 30000u, cap = initial;
        unsigned n;
        for (n = 0; n < d->attempt && cap < max; n++) cap <<= 1;
        if (cap > max) cap = max;
        if (d->attempt < 31) d->attempt++;
        d->timer_ms = random32(d) % (cap + 1u);
        d->timer_start = now_ms(d);
        d->state = TD_DEV_WAITING;
    }
    ev_init(&ev, TD_EV_DISCONNECTED, code);
    ev.text.p = (const char *)reason;
    ev.text.len = reason_len;
    ev.will_reconnect = d->state == TD_DEV_WAITING;
    emit(d, &ev);
}

/* §4.1: the HELLO of this connection into b[cap] (td_device_init encodes one too, to check the configuration). */
static int encode_hello(const td_device *d, uint8_t *b, size_t cap, size_t *len)
{
    const td_device_config *c = d->cfg;
    td_hello h;
    h.device_id = c->device_id;
    h.token = c->token;
    h.firmware = c->firmware;
    h.sdk.p = TD_SDK_VERSION;
    h.sdk.len = sizeof TD_SDK_VERSION - 1u;
    h.epoch = d->epoch;
    h.last_seq = d->first_seq + d->count - 1u;
    h.clock = d->hello_clock;
    h.dropped = d->dropped;
    h.metric_count = c->metric_count;
    h.metrics = c->metrics;
    return td_encode_hello(b, cap, len, &h, NULL);
}

static void send_hello(td_device *d)
{
    size_t cap, len;
    uint8_t *b = td_ws_reserve(&d->ws, &cap);
    d->hello_clock = td_device_now(d); /* 0 without a clock */
    d->reported_dropped = d->dropped;
    if (encode_hello(d, b, cap, &len) || td_ws_commit(&d->ws, len)) { /* called on OPEN: b is the queue's room */
        td_ws_close(&d->ws, 1000, "");
        return;
    }
    d->state = TD_DEV_HELLO_SENT; /* §6.1.4: nothing more until WELCOME */
    td_ws_flush(&d->ws);
}

int td_device_init(td_device *d, const td_device_config *cfg, const td_transport *t, uint8_t *store, size_t store_cap,
                   uint8_t *rx, size_t rx_cap, uint8_t *tx, size_t tx_cap)
{
    size_t len;
    int e;
    if (!d || !cfg || !t || !store || !rx || !tx || !cfg->host) return TD_E_ARG;
    memset(d, 0, sizeof *d); /* the WebSocket client too: td_ws_init's work, without a second memset */
    d->ws.t = t;
    d->ws.rx = rx;
    d->ws.rx_cap = rx_cap;
    d->ws.tx = tx;
    d->ws.tx_cap = tx_cap;
    d->cfg = cfg;
    d->store = store;
    d->store_cap = store_cap;
    d->epoch = cfg->epoch ? cfg->epoch : random32(d);
    /* the configuration must make a HELLO the hub accepts, and it must fit the output queue, with room for
     * the largest counters */
    d->first_seq = d->hello_clock = TD_MAX_SAFE >> 1;
    d->dropped = 0xFFFFFFFFu;
    e = tx_cap > TD_WS_HEADROOM ? encode_hello(d, tx + TD_WS_HEADROOM, tx_cap - TD_WS_HEADROOM, &len) : TD_E_NOSPACE;
    d->first_seq = 1; /* §6.3.1 */
    d->hello_clock = d->dropped = 0;
    return e;
}

int td_device_start(td_device *d)
{
    if (d->state != TD_DEV_STOPPED) return TD_OK;
    d->attempt = 0;
    connect_now(d);
    return TD_OK;
}

void td_device_stop(td_device *d)
{
    if (d->ws.state == TD_WS_OPEN) {
        td_ws_close(&d->ws, 1000, ""); /* §6.6.4 */
        d->state = TD_DEV_STOPPING;
    } else {
        td_ws_abort(&d->ws);
        d->state = TD_DEV_STOPPED;
    }
}

void td_device_result_buffer(td_device *d, uint8_t *buf, size_t cap)
{
    d->results = buf;
    d->results_cap = buf ? cap : 0;
    d->results_len = 0;
}

void td_device_set_clock(td_device *d, uint64_t unix_ms)
{
    d->clock_base = unix_ms;
    d->clock_at = now_ms(d);
    d->has_clock = 1;
}

uint64_t td_device_now(const td_device *d)
{
    return d->has_clock ? d->clock_base + (uint32_t)(now_ms(d) - d->clock_at) : 0;
}

int td_device_poll(td_device *d)
{
    td_ws_event ev;
    uint32_t now = now_ms(d), hb;
    int i;
    if (d->has_clock && (uint32_t)(now - d->clock_at) > 0x40000000u) td_device_set_clock(d, td_device_now(d));
    if (d->state == TD_DEV_WAITING && (uint32_t)(now - d->timer_start) >= d->timer_ms) connect_now(d);
    for (i = 16; i-- && d->state != TD_DEV_STOPPED && d->state != TD_DEV_WAITING;) {
        td_ws_poll(&d->ws, &ev);
        if (ev.type == TD_WS_EV_NONE) break;
        if (ev.type == TD_WS_EV_OPEN) send_hello(d);
        else if (ev.type == TD_WS_EV_MESSAGE) on_message(d, ev.data, ev.len);
        else disconnected(d, ev.code, ev.data, ev.len); /* TD_WS_EV_CLOSED */
    }
    /* §6.5.4: nothing at all (no frame, no ping) for 3 x heartbeatMs: the connection is dead */
    hb = d->state == TD_DEV_READY ? d->heartbeat_ms : DEFAULT_HEARTBEAT_MS;
    if (d->state >= TD_DEV_CONNECTING && hb &&
        (uint32_t)(now_ms(d) - d->ws.last_rx_ms) > DEAD_AFTER_PERIODS * hb) {
        td_ws_abort(&d->ws);
        disconnected(d, 1006, (const uint8_t *)"HEARTBEAT_LOST", 14);
    }
    pump(d);
    return d->state;
}
