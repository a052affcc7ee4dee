/*
 * The transport a WebSocket client runs on: a byte stream (TCP, TLS over TCP, a modem's socket), a
 * millisecond clock and random bytes. Every call must return at once (non-blocking); the client calls
 * again from its poll. Implementations here: tendril_posix.h (POSIX sockets) and tendril_mbedtls.h
 * (TLS through mbedTLS); examples/ has ESP-IDF and Arduino glue.
 */
#ifndef TENDRIL_TRANSPORT_H
#define TENDRIL_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct td_transport {
    void *ctx;
    /* Starts, or goes on with, connecting to host:port (for TLS: the TLS handshake too).
     * TD_OK: connected; TD_E_AGAIN: in progress, call again; anything else: failed. */
    int (*connect)(void *ctx, const char *host, uint16_t port);
    /* Up to n bytes: > 0 bytes read; 0 none available now; < 0 the stream ended or failed. */
    int (*read)(void *ctx, uint8_t *buf, size_t n);
    /* Up to n bytes: >= 0 bytes taken (0: would block); < 0 failed. */
    int (*write)(void *ctx, const uint8_t *buf, size_t n);
    /* Closes the stream (any state); connect may be called again afterwards. */
    void (*close)(void *ctx);
    /* A monotonic millisecond clock; it may wrap (the SDK only subtracts). */
    uint32_t (*now_ms)(void *ctx);
    /* n unpredictable bytes (a hardware RNG or a seeded CSPRNG): WebSocket keys and masks, epoch, jitter.
     * TD_OK or an error. */
    int (*random)(void *ctx, uint8_t *buf, size_t n);
} td_transport;

#ifdef __cplusplus
}
#endif
#endif
