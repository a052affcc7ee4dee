/*
 * Tendril on Arduino (ESP32 core: WiFi + WiFiClientSecure; any board whose Client does TLS works the same).
 * The transport is the board's Client: seven small functions. Copy the SDK into the sketch folder first
 * (Arduino compiles .c files beside the .ino):
 *   cp device-sdk/c/include/tendril_{codec,ws,device,transport}.h device-sdk/c/src/tendril_{codec,ws,device}.c tendril_env/
 * Not compiled in this repository's CI (no Arduino toolchain there); see docs/sdk-c.md.
 */
#include <WiFi.h>
#include <WiFiClientSecure.h>

extern "C" {
#include "tendril_device.h"
}

static const char *WIFI_SSID = "your-ssid";
static const char *WIFI_PASSWORD = "your-password";
static const char *HUB_HOST = "hub.example.com"; // a DNS name on the hub's certificate
static const uint16_t HUB_PORT = 8080;
static const char *HUB_CA = "-----BEGIN CERTIFICATE-----\n...your CA...\n-----END CERTIFICATE-----\n";

static WiFiClientSecure net;

// ---- the transport: the board's TLS client ----
static int t_connect(void *, const char *host, uint16_t port) { return net.connect(host, port) ? TD_OK : TD_E_IO; } // blocks while it connects
static int t_read(void *, uint8_t *buf, size_t n) {
  if (!net.connected() && !net.available()) return -1;
  int avail = net.available();
  return avail > 0 ? net.read(buf, (size_t)avail < n ? (size_t)avail : n) : 0;
}
static int t_write(void *, const uint8_t *buf, size_t n) { return net.connected() ? (int)net.write(buf, n) : -1; }
static void t_close(void *) { net.stop(); }
static uint32_t t_now(void *) { return millis(); }
static int t_random(void *, uint8_t *buf, size_t n) { esp_fill_random(buf, n); return TD_OK; }
static const td_transport transport = {nullptr, t_connect, t_read, t_write, t_close, t_now, t_random};

static const td_metric metrics[] = {
  {0, TD_KIND_F32, TD_HAS_MIN | TD_HAS_MAX, TD_S("temperature"), TD_S("\xc2\xb0" "C"), -40.0, 85.0},
  {1, TD_KIND_BOOL, 0, TD_S("door"), TD_S(""), 0, 0},
};

static void on_command(td_device *dev, const td_command *cmd, void *) {
  td_device_command_result(dev, cmd->id, TD_CMD_REJECTED, td_s("no commands on this board"));
}

static td_device_config cfg;
static td_device dev;
static uint8_t store[4096], rx[512], tx[512];
static uint32_t last;

void setup() {
  Serial.begin(115200);
  WiFi.begin(WIFI_SSID, WIFI_PASSWORD);
  while (WiFi.status() != WL_CONNECTED) delay(200);
  net.setCACert(HUB_CA);
  cfg.host = HUB_HOST;
  cfg.port = HUB_PORT;
  cfg.device_id = td_s("arduino-env-1");
  cfg.token = td_s("the token from POST /api/v1/devices");
  cfg.firmware = td_s("arduino-1.0");
  cfg.metrics = metrics;
  cfg.metric_count = 2;
  cfg.on_command = on_command;
  if (td_device_init(&dev, &cfg, &transport, store, sizeof store, rx, sizeof rx, tx, sizeof tx) != TD_OK) Serial.println("bad config");
  td_device_start(&dev);
}

void loop() {
  td_device_poll(&dev);
  if (millis() - last >= 10000) {
    last = millis();
    td_value v[2] = {td_f32(0, 21.5f /* your sensor */), td_bool(1, digitalRead(4))};
    td_device_send(&dev, v, 2, TD_TS_NOW, nullptr);
  }
}
