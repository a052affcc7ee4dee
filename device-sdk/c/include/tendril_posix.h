/*
 * td_transport over POSIX sockets (Linux, macOS, lwIP's BSD sockets with small changes): non-blocking TCP
 * with TCP_NODELAY, CLOCK_MONOTONIC, getrandom(). Name resolution (getaddrinfo) blocks, and allocates
 * (the C library does, for its address list); every address it gives is tried in turn.
 */
#ifndef TENDRIL_POSIX_H
#define TENDRIL_POSIX_H

#include "tendril_transport.h"

#ifdef __cplusplus
extern "C" {
#endif

struct addrinfo;

typedef struct {
    int fd;
    int connecting;
    struct addrinfo *addrs, *next; /* getaddrinfo's list while connecting: each address is tried in turn */
} td_posix;

/* Fills *t with the POSIX functions working on *p. */
void td_posix_transport(td_transport *t, td_posix *p);
/* The socket, for select()/poll() in the application's loop (-1 when closed). */
int td_posix_fd(const td_posix *p);

/* The building blocks, also used by the mbedTLS transport. */
int td_posix_connect(void *ctx, const char *host, uint16_t port);
int td_posix_read(void *ctx, uint8_t *buf, size_t n);
int td_posix_write(void *ctx, const uint8_t *buf, size_t n);
void td_posix_close(void *ctx);
uint32_t td_posix_now_ms(void *ctx);
int td_posix_random(void *ctx, uint8_t *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif
