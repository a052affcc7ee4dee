/*
 * td_transport over POSIX sockets (Linux, macOS, lwIP's BSD sockets with small changes): non-blocking TCP
 * with TCP_NODELAY, CLOCK_MONOTONIC, getrandom(). td_posix_connect never waits for the TCP handshake (a
 * non-blocking connect, then poll for writability on the next calls). A numeric host ("192.0.2.7", "::1") is
 * parsed without any lookup; a name goes to getaddrinfo, which blocks the calling loop until the resolver
 * answers or gives up (glibc: resolv.conf timeout x attempts x nameservers, 5 s x 2 x up to 3 by default),
 * and allocates (the C library's address list). Set numeric_only to refuse names (TD_E_IO) so that no call
 * ever blocks. Every address is tried in turn.
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
    int numeric_only; /* 1: hosts must be numeric addresses; a name fails with TD_E_IO instead of blocking */
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
