/* td_transport over POSIX sockets (see tendril_posix.h). */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include "tendril_posix.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tendril_codec.h"

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

static void forget_addrs(td_posix *p)
{
    if (p->addrs) freeaddrinfo(p->addrs);
    p->addrs = p->next = NULL;
}

/* Starts a non-blocking connect to the next address of the list: TD_OK, TD_E_AGAIN, or TD_E_IO when none is left. */
static int try_next(td_posix *p)
{
    int one = 1;
    while (p->next) {
        struct addrinfo *a = p->next;
        p->next = a->ai_next;
        p->fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (p->fd < 0) continue;
        fcntl(p->fd, F_SETFL, fcntl(p->fd, F_GETFL) | O_NONBLOCK);
        fcntl(p->fd, F_SETFD, FD_CLOEXEC);
        setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* one reading, one segment, at once */
        if (connect(p->fd, a->ai_addr, a->ai_addrlen) == 0) {
            forget_addrs(p);
            return TD_OK;
        }
        if (errno == EINPROGRESS) {
            p->connecting = 1;
            return TD_E_AGAIN;
        }
        close(p->fd);
        p->fd = -1;
    }
    forget_addrs(p);
    return TD_E_IO;
}

int td_posix_connect(void *ctx, const char *host, uint16_t port)
{
    td_posix *p = ctx;
    struct addrinfo hints;
    char service[8];
    int err = 0;
    socklen_t len = sizeof err;
    if (p->fd >= 0 && p->connecting) {
        struct pollfd pfd;
        pfd.fd = p->fd;
        pfd.events = POLLOUT;
        pfd.revents = 0;
        if (poll(&pfd, 1, 0) == 0) return TD_E_AGAIN;
        if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len) || err) {
            close(p->fd); /* refused here: the next address (an IPv6 ::1 before 127.0.0.1, say) */
            p->fd = -1;
            p->connecting = 0;
            return try_next(p);
        }
        p->connecting = 0;
        forget_addrs(p);
        return TD_OK;
    }
    if (p->fd >= 0) return TD_OK;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(service, sizeof service, "%u", (unsigned)port);
    forget_addrs(p);
    /* A numeric address (an IPv4 dotted quad, an IPv6 literal) is parsed here without any lookup, so it
     * never blocks; a name goes to the resolver, which blocks (docs/sdk-c.md, "What blocks"). */
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    if (getaddrinfo(host, service, &hints, &p->addrs) || !p->addrs) {
        hints.ai_flags = AI_NUMERICSERV;
        p->addrs = NULL;
        if (p->numeric_only || getaddrinfo(host, service, &hints, &p->addrs) || !p->addrs) {
            p->addrs = NULL;
            return TD_E_IO;
        }
    }
    p->next = p->addrs;
    return try_next(p);
}

int td_posix_read(void *ctx, uint8_t *buf, size_t n)
{
    td_posix *p = ctx;
    ssize_t r;
    if (p->fd < 0) return -1;
    r = recv(p->fd, buf, n, 0);
    if (r > 0) return (int)r;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return 0;
    return -1; /* 0: the peer closed */
}

int td_posix_write(void *ctx, const uint8_t *buf, size_t n)
{
    td_posix *p = ctx;
    ssize_t r;
    if (p->fd < 0) return -1;
    r = send(p->fd, buf, n, MSG_NOSIGNAL);
    if (r >= 0) return (int)r;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
    return -1;
}

void td_posix_close(void *ctx)
{
    td_posix *p = ctx;
    if (p->fd >= 0) close(p->fd);
    p->fd = -1;
    p->connecting = 0;
    forget_addrs(p);
}

uint32_t td_posix_now_ms(void *ctx)
{
    struct timespec ts;
    (void)ctx;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}

int td_posix_random(void *ctx, uint8_t *buf, size_t n)
{
    (void)ctx;
    while (n) {
        ssize_t r = getrandom(buf, n, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            return TD_E_IO;
        }
        buf += r;
        n -= (size_t)r;
    }
    return TD_OK;
}

int td_posix_fd(const td_posix *p)
{
    return p->fd;
}

void td_posix_transport(td_transport *t, td_posix *p)
{
    p->fd = -1;
    p->connecting = 0;
    p->numeric_only = 0;
    p->addrs = p->next = NULL;
    t->ctx = p;
    t->connect = td_posix_connect;
    t->read = td_posix_read;
    t->write = td_posix_write;
    t->close = td_posix_close;
    t->now_ms = td_posix_now_ms;
    t->random = td_posix_random;
}
