/*
 * libFuzzer: the bytes a hub (or anything posing as one) sends after a valid WebSocket upgrade, fed to the
 * whole device client (WebSocket frame parser, hub-frame decoder, the client's state machine) in chunks whose
 * sizes the input chooses; or, when the input starts with 'H', the rest of the upgrade answer itself.
 * Nothing may crash, read out of bounds or hang; the client must end up in a defined state. Also the
 * frame-header parser on its own.
 */
#include <stdlib.h>
#include <string.h>

#include "../test/fake_hub.h"
#include "tendril_device.h"

static fake F;
static td_transport T;
static td_device D;
static uint8_t STORE[2048], RX[256], TX[512];
static const td_metric METRICS[] = {{0, TD_KIND_F32, 0, TD_S("t"), TD_S(""), 0, 0}};

static void on_command(td_device *dev, const td_command *cmd, void *user)
{
    (void)user;
    td_device_command_result(dev, cmd->id, TD_CMD_SUCCEEDED, cmd->args);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    td_device_config cfg;
    td_ws_header h;
    size_t i = 0;
    int rounds = 0;
    if (td_ws_parse_header(data, size, &h) == TD_OK && h.header > size) abort();
    fake_transport(&T, &F);
    memset(&cfg, 0, sizeof cfg);
    cfg.host = "h";
    cfg.device_id = td_s("fuzz");
    cfg.token = td_s("t");
    cfg.metrics = METRICS;
    cfg.metric_count = 1;
    cfg.epoch = 1;
    cfg.on_command = on_command;
    if (td_device_init(&D, &cfg, &T, STORE, sizeof STORE, RX, sizeof RX, TX, sizeof TX)) abort();
    td_device_set_clock(&D, 1732233600000ull);
    td_device_start(&D);
    td_device_poll(&D);
    if (size && data[0] == 'H') {
        /* the upgrade answer itself, as a proxy or an impostor might send it: a valid answer's prefix
         * (status and accept) and then the input as the rest of the headers and beyond */
        char accept[29], head[160];
        const char *k = strstr(fake_request(&F), "Sec-WebSocket-Key: ");
        if (!k) abort();
        td_ws_accept_for(k + 19, 24, accept);
        accept[28] = 0;
        snprintf(head, sizeof head, "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: %s\r\n", accept);
        F.out_off = F.out_len = 0;
        fake_push(&F, head, strlen(head));
        data++;
        size--;
    } else if (!fake_accept(&F, NULL, 0)) {
        abort();
    }
    td_device_poll(&D);
    while (i < size && rounds++ < 10000) {
        size_t n = 1 + data[i] % 64;
        td_value v = td_f32(0, (float)rounds);
        i++;
        if (n > size - i) n = size - i;
        if (F.in_off == F.in_len) F.in_off = F.in_len = 0;
        fake_push(&F, data + i, n);
        i += n;
        F.now += 100;
        td_device_send(&D, &v, 1, TD_TS_NOW, NULL);
        td_device_poll(&D);
        td_device_poll(&D);
        F.out_off = F.out_len = 0; /* the hub reads everything */
        if (D.state == TD_DEV_WAITING || D.state == TD_DEV_STOPPED) break;
    }
    if (D.state > TD_DEV_STOPPING) abort();
    return 0;
}
