/*
 * What a firmware links of the SDK, for `make size`: a device that declares metrics, sends readings,
 * answers commands and polls, over a transport whose functions live elsewhere (the board's). Built with
 * and without TD_SIZE_WITH_SDK; the difference is what the SDK costs, C library helpers it pulls included.
 */
#include <stddef.h>
#include <stdint.h>
#ifdef TD_SIZE_WITH_SDK
#include "tendril_device.h"
#endif

/* the board's transport (not counted: it exists with or without the SDK) */
extern int board_connect(void *ctx, const char *host, uint16_t port);
extern int board_read(void *ctx, uint8_t *buf, size_t n);
extern int board_write(void *ctx, const uint8_t *buf, size_t n);
extern void board_close(void *ctx);
extern uint32_t board_now_ms(void *ctx);
extern int board_random(void *ctx, uint8_t *buf, size_t n);
extern float board_temperature(void);

#ifdef TD_SIZE_WITH_SDK
static void on_command(td_device *dev, const td_command *cmd, void *user)
{
    (void)user;
    td_device_command_result(dev, cmd->id, TD_CMD_SUCCEEDED, td_s("{}"));
}

static const td_metric metrics[] = {
    {0, TD_KIND_F32, TD_HAS_MIN | TD_HAS_MAX, TD_S("temperature"), TD_S("C"), -40.0, 85.0},
    {1, TD_KIND_BOOL, 0, TD_S("door"), TD_S(""), 0.0, 0.0},
};
static const td_device_config cfg = {"hub.example", 443, NULL, TD_S("env-1"), TD_S("token"), TD_S("1.0"),
                                     metrics, 2, 0, 0, 0, on_command, NULL, NULL};
static const td_transport transport = {NULL, board_connect, board_read, board_write, board_close, board_now_ms, board_random};
/* the caller's memory: the context and the buffers (reported apart, not as the SDK's static RAM) */
static td_device dev;
static uint8_t store[2048], rx[512], tx[512];
#endif

int main(void)
{
#ifdef TD_SIZE_WITH_SDK
    uint32_t last = 0;
    td_device_init(&dev, &cfg, &transport, store, sizeof store, rx, sizeof rx, tx, sizeof tx);
    td_device_start(&dev);
    for (;;) {
        td_device_poll(&dev);
        if (board_now_ms(NULL) - last > 10000u) {
            td_value v[2];
            v[0] = td_f32(0, board_temperature());
            v[1] = td_bool(1, 1);
            td_device_send(&dev, v, 2, TD_TS_NOW, NULL);
            last = board_now_ms(NULL);
        }
    }
#else
    for (;;) {
        board_connect(0, 0, 0);
        board_read(0, 0, 0);
        board_write(0, 0, 0);
        board_close(0);
        board_random(0, 0, 0);
        if (board_now_ms(NULL) > 10000u) (void)board_temperature();
    }
#endif
}

/* the board functions, as empty stand-ins so the image links */
int board_connect(void *ctx, const char *host, uint16_t port) { (void)ctx; (void)host; (void)port; return 0; }
int board_read(void *ctx, uint8_t *buf, size_t n) { (void)ctx; (void)buf; (void)n; return 0; }
int board_write(void *ctx, const uint8_t *buf, size_t n) { (void)ctx; (void)buf; (void)n; return (int)n; }
void board_close(void *ctx) { (void)ctx; }
uint32_t board_now_ms(void *ctx) { static volatile uint32_t t; (void)ctx; return t++; }
int board_random(void *ctx, uint8_t *buf, size_t n) { (void)ctx; while (n--) buf[n] = (uint8_t)n; return 0; }
float board_temperature(void) { return 21.5f; }
