/*
 * Host example: a device that sends temperature, humidity and a door switch to a Tendril hub over ws:// or
 * wss://, answers commands, and prints one JSON line per event on stdout. docs/sdk-c.md walks through it;
 * test/e2e/c-sdk-hub.test.ts runs it against a real hub.
 *
 *   tendril-device --url ws://127.0.0.1:8080/v1/device --id env-c-1 [--token TOKEN | env TENDRIL_TOKEN]
 *                  [--ca ca.pem [--server-name NAME]] [--readings N] [--rate PER_SECOND] [--firmware X] [--max-delay-ms MS]
 *
 * --readings 0 (the default) sends forever. SIGTERM/SIGINT: close with 1000 and exit.
 * Commands: set-interval {"ms": N} (succeeded, {"intervalMs": N}); echo (succeeded, the args); others rejected.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tendril_device.h"
#include "tendril_posix.h"
#ifdef TENDRIL_WITH_MBEDTLS
#include "tendril_mbedtls.h"
#endif

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static unsigned interval_ms = 100;
#ifdef TENDRIL_WITH_MBEDTLS
#include <mbedtls/error.h>
static td_mbedtls tls;
#endif

/* The metrics this device declares (§4.2): aliases 0..2 make one-byte tags. */
static const td_metric metrics[] = {
    {0, TD_KIND_F32, TD_HAS_MIN | TD_HAS_MAX, TD_S("temperature"), TD_S("\xc2\xb0" "C"), -40.0, 85.0},
    {1, TD_KIND_F32, TD_HAS_MIN | TD_HAS_MAX, TD_S("humidity"), TD_S("%"), 0.0, 100.0},
    {2, TD_KIND_BOOL, 0, TD_S("door"), TD_S(""), 0.0, 0.0},
};

static void print_str(td_str s)
{
    size_t i;
    putchar('"');
    for (i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static void on_event(td_device *dev, const td_event *ev, void *user)
{
    (void)dev;
    (void)user;
    switch (ev->type) {
    case TD_EV_CONNECTED: printf("{\"event\":\"connected\",\"ackedSeq\":%llu}\n", (unsigned long long)ev->value); break;
    case TD_EV_DISCONNECTED:
        printf("{\"event\":\"disconnected\",\"code\":%d,\"reason\":", ev->code);
        print_str(ev->text);
        printf(",\"willReconnect\":%s}\n", ev->will_reconnect ? "true" : "false");
#ifdef TENDRIL_WITH_MBEDTLS
        if (tls.last_error) { /* why TLS failed, for people */
            char why[160];
            mbedtls_strerror(tls.last_error, why, sizeof why);
            fprintf(stderr, "tendril-device: TLS handshake failed: %s (certificate flags 0x%x)\n", why, (unsigned)tls.verify_flags);
            tls.last_error = 0;
        }
#endif
        break;
    case TD_EV_ACK: printf("{\"event\":\"ack\",\"seq\":%llu}\n", (unsigned long long)ev->seq); break;
    case TD_EV_DROP: printf("{\"event\":\"drop\",\"total\":%llu}\n", (unsigned long long)ev->value); break;
    case TD_EV_REJECT:
        printf("{\"event\":\"reject\",\"code\":%d,\"seq\":%llu,\"alias\":%d,\"message\":", ev->code,
               (unsigned long long)ev->seq, (int)ev->alias);
        print_str(ev->text);
        printf("}\n");
        break;
    case TD_EV_BACKOFF: printf("{\"event\":\"backoff\",\"code\":%d,\"pauseMs\":%llu}\n", ev->code, (unsigned long long)ev->value); break;
    case TD_EV_ERROR:
        printf("{\"event\":\"error\",\"code\":%d,\"message\":", ev->code);
        print_str(ev->text);
        printf("}\n");
        break;
    default: break;
    }
    fflush(stdout);
}

/* A command handler that answers at once. A long job would answer later, with the id kept. */
static void on_command(td_device *dev, const td_command *cmd, void *user)
{
    char detail[64];
    (void)user;
    printf("{\"event\":\"command\",\"id\":%llu,\"name\":", (unsigned long long)cmd->id);
    print_str(cmd->name);
    printf(",\"args\":");
    print_str(cmd->args);
    printf("}\n");
    fflush(stdout);
    if (cmd->name.len == 12 && !memcmp(cmd->name.p, "set-interval", 12)) {
        /* args {"ms": N}: a JSON parser is the application's choice; this one looks for the number */
        const char *p = cmd->args.p, *end = cmd->args.p + cmd->args.len;
        unsigned long ms = 0;
        while (p < end && (*p < '0' || *p > '9')) p++;
        while (p < end && *p >= '0' && *p <= '9') ms = ms * 10 + (unsigned long)(*p++ - '0');
        if (ms < 10 || ms > 3600000) {
            td_device_command_result(dev, cmd->id, TD_CMD_REJECTED, td_s("ms must be 10..3600000"));
            return;
        }
        interval_ms = (unsigned)ms;
        snprintf(detail, sizeof detail, "{\"intervalMs\":%lu}", ms);
        td_device_command_result(dev, cmd->id, TD_CMD_SUCCEEDED, td_s(detail));
    } else if (cmd->name.len == 4 && !memcmp(cmd->name.p, "echo", 4)) {
        td_device_command_result(dev, cmd->id, TD_CMD_SUCCEEDED, cmd->args.len ? cmd->args : td_s("null"));
    } else {
        td_device_command_result(dev, cmd->id, TD_CMD_REJECTED, td_s("unknown command"));
    }
}

static int usage(const char *why)
{
    fprintf(stderr, "tendril-device: %s\nusage: tendril-device --url ws[s]://HOST:PORT/v1/device --id ID "
                    "[--token TOKEN (or env TENDRIL_TOKEN)] [--ca CA.pem [--server-name NAME]] [--readings N] [--rate PER_SECOND] "
                    "[--firmware X] [--max-delay-ms MS]\n", why);
    return 2;
}

/* ws[s]://host[:port][/path] into its parts (host and path point into static copies). */
static int parse_url(const char *url, int *secure, char *host, size_t host_cap, uint16_t *port, char *path, size_t path_cap)
{
    const char *p, *h, *colon, *slash;
    if (!strncmp(url, "ws://", 5)) *secure = 0, p = url + 5;
    else if (!strncmp(url, "wss://", 6)) *secure = 1, p = url + 6;
    else return -1;
    h = p;
    slash = strchr(h, '/');
    if (!slash) slash = h + strlen(h);
    colon = memchr(h, ':', (size_t)(slash - h));
    if ((size_t)((colon ? colon : slash) - h) >= host_cap || (colon ? colon : slash) == h) return -1;
    memcpy(host, h, (size_t)((colon ? colon : slash) - h));
    host[(colon ? colon : slash) - h] = 0;
    *port = (uint16_t)(colon ? atoi(colon + 1) : (*secure ? 443 : 80));
    if (strlen(*slash ? slash : "/v1/device") >= path_cap) return -1;
    strcpy(path, *slash ? slash : "/v1/device");
    return 0;
}

int main(int argc, char **argv)
{
    /* Every buffer the SDK uses, sized here: the store holds about 2400 unacked readings of this device. */
    static uint8_t store[64 * 1024], rx[1024], tx[2048], results[1024];
    static char host[256], path[256];
    static td_device dev;
    static td_posix tcp;
#ifdef TENDRIL_WITH_MBEDTLS
    static unsigned char ca[16384];
#endif
    td_transport transport;
    td_device_config cfg;
    const char *url = NULL, *id = NULL, *token = getenv("TENDRIL_TOKEN"), *ca_path = NULL, *server_name = NULL, *firmware = "example-1.0";
    unsigned long readings = 0, sent = 0, max_delay = 0;
    double rate = 10;
    int tls_wanted = 0, i, e;
    uint32_t next_at;
    struct sigaction sa;

    for (i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--url")) url = argv[i + 1];
        else if (!strcmp(argv[i], "--id")) id = argv[i + 1];
        else if (!strcmp(argv[i], "--token")) token = argv[i + 1];
        else if (!strcmp(argv[i], "--ca")) ca_path = argv[i + 1];
        else if (!strcmp(argv[i], "--server-name")) server_name = argv[i + 1];
        else if (!strcmp(argv[i], "--readings")) readings = strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--rate")) rate = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--firmware")) firmware = argv[i + 1];
        else if (!strcmp(argv[i], "--max-delay-ms")) max_delay = strtoul(argv[i + 1], NULL, 10);
        else return usage("unknown option");
    }
    if (i != argc) return usage("an option without its value");
    if (!url || !id || !token) return usage("--url, --id and a token are required");
    memset(&cfg, 0, sizeof cfg);
    if (parse_url(url, &tls_wanted, host, sizeof host, &cfg.port, path, sizeof path)) return usage("bad --url");
    if (rate > 0) interval_ms = (unsigned)(1000.0 / rate);
    cfg.host = host;
    cfg.path = path;
    cfg.device_id = td_s(id);
    cfg.token = td_s(token);
    cfg.firmware = td_s(firmware);
    cfg.metrics = metrics;
    cfg.metric_count = sizeof metrics / sizeof metrics[0];
    cfg.initial_delay_ms = 100;
    cfg.max_delay_ms = (uint32_t)max_delay;
    cfg.on_command = on_command;
    cfg.on_event = on_event;

    if (tls_wanted) {
#ifdef TENDRIL_WITH_MBEDTLS
        FILE *f;
        size_t n;
        if (!ca_path) return usage("wss:// needs --ca");
        f = fopen(ca_path, "rb");
        if (!f) return usage("cannot open --ca");
        n = fread(ca, 1, sizeof ca - 1, f);
        fclose(f);
        ca[n] = 0;
        if (td_mbedtls_transport(&transport, &tls, ca, n + 1) != TD_OK) return usage("cannot load the CA or set up TLS");
        if (server_name) td_mbedtls_server_name(&tls, server_name);
#else
        return usage("built without mbedTLS: wss:// is not available");
#endif
    } else {
        td_posix_transport(&transport, &tcp);
    }

    e = td_device_init(&dev, &cfg, &transport, store, sizeof store, rx, sizeof rx, tx, sizeof tx);
    if (e) {
        fprintf(stderr, "tendril-device: bad configuration: %s\n", td_err_name(e));
        return 2;
    }
    td_device_result_buffer(&dev, results, sizeof results); /* results answered while offline keep their detail */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    printf("{\"event\":\"started\",\"epoch\":%lu}\n", (unsigned long)dev.epoch);
    fflush(stdout);
    td_device_start(&dev);
    next_at = transport.now_ms(transport.ctx);
    for (;;) {
        struct pollfd pfd;
        int state = td_device_poll(&dev);
        uint32_t now = transport.now_ms(transport.ctx);
        if (stop_requested == 1) {
            stop_requested = 2;
            td_device_stop(&dev);
        }
        if (stop_requested && state == TD_DEV_STOPPED) break;
        if (!stop_requested && state == TD_DEV_STOPPED) {
            printf("{\"event\":\"stopped\"}\n");
            return 1;
        }
        if (!stop_requested && (readings == 0 || sent < readings) && (int32_t)(now - next_at) >= 0) {
            td_value v[3];
            uint64_t seq;
            v[0] = td_f32(0, 20.0f + (float)(sent % 1000) / 100.0f);
            v[1] = td_f32(1, 40.0f + (float)(sent % 10));
            v[2] = td_bool(2, (int)(sent % 2));
            e = td_device_send(&dev, v, 3, TD_TS_NOW, &seq);
            if (e) fprintf(stderr, "tendril-device: send: %s\n", td_err_name(e));
            else if (++sent == readings) {
                printf("{\"event\":\"sent-all\",\"count\":%lu,\"lastSeq\":%llu}\n", sent, (unsigned long long)seq);
                fflush(stdout);
            }
            next_at += interval_ms;
            if ((int32_t)(now - next_at) > 1000) next_at = now; /* do not burst after a stall */
        }
        /* Sleep until the socket has data or 5 ms pass. */
        pfd.fd = tls_wanted ?
#ifdef TENDRIL_WITH_MBEDTLS
                            tls.tcp.fd
#else
                            -1
#endif
                            : tcp.fd;
        pfd.events = POLLIN;
        pfd.revents = 0;
        if (poll(&pfd, pfd.fd >= 0 ? 1 : 0, 5) < 0 && errno != EINTR) break;
    }
    printf("{\"event\":\"exit\",\"buffered\":%lu}\n", (unsigned long)td_device_buffered(&dev));
#ifdef TENDRIL_WITH_MBEDTLS
    if (tls_wanted) td_mbedtls_free(&tls);
#endif
    return 0;
}
