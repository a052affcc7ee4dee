/*
 * Tendril on ESP-IDF: wss to the hub through the SDK's mbedTLS transport (lwIP's BSD sockets stand in for
 * POSIX), readings of the chip's temperature sensor every 10 s, one command. The only ESP-specific glue is
 * the clock and the random source below. Not compiled in this repository's CI (no ESP-IDF toolchain there).
 */
#include <string.h>

#include "esp_event.h"
#include "esp_netif.h"
#include "esp_random.h"
#include "esp_system.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "nvs_flash.h"
#include "protocol_examples_common.h"
#include "tendril_device.h"
#include "tendril_mbedtls.h"

extern const unsigned char hub_ca_pem_start[] asm("_binary_hub_ca_pem_start");
extern const unsigned char hub_ca_pem_end[] asm("_binary_hub_ca_pem_end");

static const td_metric metrics[] = {
    {0, TD_KIND_F32, TD_HAS_MIN | TD_HAS_MAX, TD_S("temperature"), TD_S("\xc2\xb0" "C"), -40.0, 125.0},
    {1, TD_KIND_INT, 0, TD_S("free_heap"), TD_S("B"), 0, 0},
};

static uint32_t esp_now_ms(void *ctx)
{
    (void)ctx;
    return (uint32_t)(esp_timer_get_time() / 1000);
}

static int esp_rand(void *ctx, uint8_t *buf, size_t n)
{
    (void)ctx;
    esp_fill_random(buf, n); /* the hardware RNG (true random with Wi-Fi on) */
    return TD_OK;
}

static int reboot_requested;

static void on_command(td_device *dev, const td_command *cmd, void *user)
{
    (void)user;
    if (cmd->name.len == 6 && !memcmp(cmd->name.p, "reboot", 6)) {
        td_device_command_result(dev, cmd->id, TD_CMD_SUCCEEDED, td_s("null"));
        reboot_requested = 1; /* once the answer is out (see the loop) */
        return;
    }
    td_device_command_result(dev, cmd->id, TD_CMD_REJECTED, td_s("unknown command"));
}

static void tendril_task(void *arg)
{
    static td_mbedtls tls;
    static td_transport transport;
    static td_device dev;
    static uint8_t store[8192], rx[1024], tx[1024]; /* ~300 unacked readings of this device */
    static const td_device_config cfg = {
        .host = CONFIG_TENDRIL_HOST, .port = CONFIG_TENDRIL_PORT,
        .device_id = TD_S(CONFIG_TENDRIL_DEVICE_ID), .token = TD_S(CONFIG_TENDRIL_TOKEN), .firmware = TD_S("esp-idf-1.0"),
        .metrics = metrics, .metric_count = 2, .on_command = on_command,
    };
    uint32_t last = 0;
    (void)arg;
    if (td_mbedtls_transport(&transport, &tls, hub_ca_pem_start, (size_t)(hub_ca_pem_end - hub_ca_pem_start)) != TD_OK) {
        vTaskDelete(NULL);
    }
    transport.now_ms = esp_now_ms; /* the IDF's clock and RNG instead of the POSIX ones */
    transport.random = esp_rand;
    td_device_init(&dev, &cfg, &transport, store, sizeof store, rx, sizeof rx, tx, sizeof tx);
    td_device_start(&dev);
    for (;;) {
        td_device_poll(&dev);
        if (reboot_requested && !td_ws_pending(&dev.ws)) esp_restart();
        if (esp_now_ms(NULL) - last >= 10000) {
            td_value v[2];
            last = esp_now_ms(NULL);
            v[0] = td_f32(0, 21.5f); /* read your sensor here */
            v[1] = td_int(1, (int64_t)esp_get_free_heap_size());
            td_device_send(&dev, v, 2, TD_TS_NOW, NULL); /* without SNTP the hub's WELCOME sets the clock */
        }
        vTaskDelay(pdMS_TO_TICKS(10));
    }
}

void app_main(void)
{
    ESP_ERROR_CHECK(nvs_flash_init());
    ESP_ERROR_CHECK(esp_netif_init());
    ESP_ERROR_CHECK(esp_event_loop_create_default());
    ESP_ERROR_CHECK(example_connect());
    xTaskCreate(tendril_task, "tendril", 8192, NULL, 5, NULL);
}
