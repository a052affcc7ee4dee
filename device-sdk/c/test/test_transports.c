/*
 * The POSIX and mbedTLS transports against real loopback sockets (no fake): connect without blocking, numeric
 * addresses without a lookup, and the TLS partial-write path made to happen on every write by a BIO shim
 * that takes at most 3 bytes per call and answers WANT_WRITE on every other call.
 * Waits are poll() on the sockets with a bound, never sleeps.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <mbedtls/certs.h>
#include <mbedtls/net_sockets.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "tendril_codec.h"
#include "tendril_mbedtls.h"

/* A listening loopback socket on an ephemeral port; *port gets the port. */
static int listen_on(int family, uint16_t *port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd = socket(family, SOCK_STREAM, 0), one = 1;
    memset(&ss, 0, sizeof ss);
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *a;
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        len = sizeof *a;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 4)) {
        if (fd >= 0) close(fd);
        return -1;
    }
    getsockname(fd, (struct sockaddr *)&ss, &len);
    *port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return fd;
}

/* Calls connect until it is done (TD_OK or TD_E_IO), waiting on the socket's writability between calls;
 * at most 5 s in all. Returns the last result and how many calls returned TD_E_AGAIN. */
static int connect_until_done(const td_transport *t, td_posix *p, const char *host, uint16_t port, int *again)
{
    int r, i;
    *again = 0;
    for (i = 0; i < 50; i++) {
        struct pollfd pfd;
        r = t->connect(t->ctx, host, port);
        if (r != TD_E_AGAIN) return r;
        (*again)++;
        pfd.fd = td_posix_fd(p);
        pfd.events = POLLOUT | POLLIN;
        pfd.revents = 0;
        poll(&pfd, 1, 100); /* wait for the TCP handshake's outcome, bounded */
    }
    return TD_E_AGAIN;
}

static void test_posix_connect(void)
{
    td_transport t;
    td_posix p;
    uint16_t port;
    int lfd, afd, again, r;
    uint8_t buf[8];

    check_context = "a numeric IPv4 address connects without a lookup, through a non-blocking connect";
    td_posix_transport(&t, &p);
    p.numeric_only = 1; /* a lookup would fail the connect: this proves none happens */
    lfd = listen_on(AF_INET, &port);
    CHECK(lfd >= 0);
    r = connect_until_done(&t, &p, "127.0.0.1", port, &again);
    CHECK_EQ(r, TD_OK);
    CHECK(fcntl(td_posix_fd(&p), F_GETFL) & O_NONBLOCK);
    afd = accept(lfd, NULL, NULL);
    CHECK(afd >= 0);
    CHECK_EQ(t.write(t.ctx, (const uint8_t *)"abc", 3), 3);
    CHECK_EQ(recv(afd, buf, sizeof buf, 0), 3);
    CHECK_EQ(t.read(t.ctx, buf, sizeof buf), 0); /* nothing yet: 0, not a block */
    t.close(t.ctx);
    close(afd);
    close(lfd);

    check_context = "numeric_only refuses a name at once instead of blocking in the resolver";
    CHECK_EQ(t.connect(t.ctx, "localhost", port), TD_E_IO);
    CHECK_EQ(td_posix_fd(&p), -1);

    check_context = "an IPv6 literal connects without a lookup";
    lfd = listen_on(AF_INET6, &port);
    if (lfd >= 0) { /* a machine without IPv6 loopback skips this part */
        r = connect_until_done(&t, &p, "::1", port, &again);
        CHECK_EQ(r, TD_OK);
        t.close(t.ctx);
        close(lfd);
    }

    check_context = "a refused connect ends in TD_E_IO, reported by a later call, not by blocking";
    lfd = listen_on(AF_INET, &port);
    close(lfd); /* nobody listens on that port any more */
    r = connect_until_done(&t, &p, "127.0.0.1", port, &again);
    CHECK_EQ(r, TD_E_IO);
    CHECK_EQ(td_posix_fd(&p), -1);

    check_context = "names still resolve when allowed (getaddrinfo, blocking)";
    p.numeric_only = 0;
    lfd = listen_on(AF_INET, &port);
    r = connect_until_done(&t, &p, "localhost", port, &again);
    CHECK_EQ(r, TD_OK);
    t.close(t.ctx);
    close(lfd);
    check_context = "";
}

/* ---- the TLS partial-write path ---- */

static int shim_calls, shim_short;

/* The client's BIO: at most 3 bytes a call, and every other call WANT_WRITE (as a full socket would). */
static int shim_send(void *ctx, const unsigned char *buf, size_t len)
{
    td_mbedtls *m = ctx;
    int n;
    if (shim_calls++ & 1) return MBEDTLS_ERR_SSL_WANT_WRITE;
    if (len > 3) {
        len = 3;
        shim_short++;
    }
    n = td_posix_write(&m->tcp, buf, len);
    return n < 0 ? MBEDTLS_ERR_NET_SEND_FAILED : n == 0 ? MBEDTLS_ERR_SSL_WANT_WRITE : n;
}

static int shim_recv(void *ctx, unsigned char *buf, size_t len)
{
    int n = td_posix_read(&((td_mbedtls *)ctx)->tcp, buf, len);
    return n < 0 ? MBEDTLS_ERR_NET_CONN_RESET : n == 0 ? MBEDTLS_ERR_SSL_WANT_READ : n;
}

typedef struct {
    mbedtls_net_context net;
    mbedtls_ssl_context ssl;
    mbedtls_ssl_config conf;
    mbedtls_x509_crt crt;
    mbedtls_pk_context key;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
} tls_server;

static int server_init(tls_server *s, int fd)
{
    memset(s, 0, sizeof *s);
    mbedtls_ssl_init(&s->ssl);
    mbedtls_ssl_config_init(&s->conf);
    mbedtls_x509_crt_init(&s->crt);
    mbedtls_pk_init(&s->key);
    mbedtls_entropy_init(&s->entropy);
    mbedtls_ctr_drbg_init(&s->drbg);
    s->net.fd = fd;
    if (mbedtls_ctr_drbg_seed(&s->drbg, mbedtls_entropy_func, &s->entropy, NULL, 0) ||
        mbedtls_x509_crt_parse(&s->crt, (const unsigned char *)mbedtls_test_srv_crt, mbedtls_test_srv_crt_len) ||
        mbedtls_pk_parse_key(&s->key, (const unsigned char *)mbedtls_test_srv_key, mbedtls_test_srv_key_len, NULL, 0) ||
        mbedtls_ssl_config_defaults(&s->conf, MBEDTLS_SSL_IS_SERVER, MBEDTLS_SSL_TRANSPORT_STREAM,
                                    MBEDTLS_SSL_PRESET_DEFAULT) ||
        mbedtls_ssl_conf_own_cert(&s->conf, &s->crt, &s->key))
        return -1;
    mbedtls_ssl_conf_rng(&s->conf, mbedtls_ctr_drbg_random, &s->drbg);
    if (mbedtls_ssl_setup(&s->ssl, &s->conf)) return -1;
    mbedtls_net_set_nonblock(&s->net);
    mbedtls_ssl_set_bio(&s->ssl, &s->net, mbedtls_net_send, mbedtls_net_recv, NULL);
    return 0;
}

static void server_free(tls_server *s)
{
    mbedtls_ssl_free(&s->ssl);
    mbedtls_ssl_config_free(&s->conf);
    mbedtls_x509_crt_free(&s->crt);
    mbedtls_pk_free(&s->key);
    mbedtls_ctr_drbg_free(&s->drbg);
    mbedtls_entropy_free(&s->entropy);
    mbedtls_net_free(&s->net);
}

static void wait_readable(int fd1, int fd2)
{
    struct pollfd pfd[2];
    pfd[0].fd = fd1;
    pfd[1].fd = fd2;
    pfd[0].events = pfd[1].events = POLLIN;
    pfd[0].revents = pfd[1].revents = 0;
    poll(pfd, 2, 100); /* bounded: the caller counts rounds */
}

static void test_tls_partial_writes(void)
{
    static uint8_t sent[5000], got[5000];
    td_transport t;
    static td_mbedtls m;
    static tls_server s;
    uint16_t port;
    size_t off = 0, in = 0, queued = 0, i;
    int lfd, afd = -1, r, sr = 1, rounds, zero_returns = 0, idle = 0;

    check_context = "wss: a TLS write that the socket takes a few bytes at a time arrives whole, in order, once";
    for (i = 0; i < sizeof sent; i++) sent[i] = (uint8_t)(i * 7u + (i >> 8));
    lfd = listen_on(AF_INET, &port);
    CHECK(lfd >= 0);
    CHECK_EQ(td_mbedtls_transport(&t, &m, (const unsigned char *)mbedtls_test_cas_pem, mbedtls_test_cas_pem_len), TD_OK);
    td_mbedtls_server_name(&m, "localhost"); /* the name in mbedTLS's test server certificate */
    mbedtls_ssl_set_bio(&m.ssl, &m, shim_send, shim_recv, NULL);
    /* TCP, then the TLS handshake, stepping the client and the server in turn */
    for (rounds = 0, r = TD_E_AGAIN; rounds < 2000 && (r == TD_E_AGAIN || sr); rounds++) {
        int writes_before = shim_calls;
        if (r == TD_E_AGAIN) r = t.connect(t.ctx, "127.0.0.1", port);
        if (afd < 0) {
            struct pollfd pfd;
            pfd.fd = lfd;
            pfd.events = POLLIN;
            pfd.revents = 0;
            if (poll(&pfd, 1, 100) > 0) {
                afd = accept(lfd, NULL, NULL);
                CHECK(afd >= 0 && server_init(&s, afd) == 0);
            }
            continue;
        }
        if (sr) {
            sr = mbedtls_ssl_handshake(&s.ssl);
            if (sr && sr != MBEDTLS_ERR_SSL_WANT_READ && sr != MBEDTLS_ERR_SSL_WANT_WRITE) break;
        }
        /* wait only when the client is not writing (it waits for the server's bytes) */
        if ((r == TD_E_AGAIN || sr) && shim_calls == writes_before) wait_readable(afd, td_posix_fd(&m.tcp));
    }
    CHECK_EQ(r, TD_OK);
    CHECK_EQ(sr, 0);
    CHECK(shim_short > 0); /* the handshake itself went out in pieces */
    shim_short = 0;
    /* the application data: the SDK's flush loop (td_ws_flush) calls write with what is queued, and the queue
     * grows between calls (frames are added while a write waits), so a repeated write may offer more bytes
     * than the one mbedTLS answered WANT_WRITE to */
    for (rounds = 0; rounds < 200000 && (off < sizeof sent || in < sizeof got); rounds++) {
        if (queued < sizeof sent) queued = queued + 700 > sizeof sent ? sizeof sent : queued + 700;
        if (off < queued) {
            int n = t.write(t.ctx, sent + off, queued - off);
            CHECK(n >= 0);
            if (n < 0) break;
            if (n == 0) zero_returns++;
            off += (size_t)n;
        }
        {
            int n = mbedtls_ssl_read(&s.ssl, got + in, sizeof got - in);
            if (n > 0) in += (size_t)n, idle = 0;
            else if (n != MBEDTLS_ERR_SSL_WANT_READ) break;
            else if (off == sizeof sent) {
                if (++idle > 20) break; /* 2 s without a byte: what is missing will not come */
                wait_readable(afd, afd);
            }
        }
    }
    CHECK_EQ(off, sizeof sent);
    CHECK_EQ(in, sizeof got);
    CHECK(!memcmp(sent, got, sizeof got));
    CHECK(zero_returns > 0); /* WANT_WRITE reached the transport's caller, which wrote the rest later */
    CHECK(shim_short > 0);   /* and the records went out a few bytes at a time */
    {
        uint8_t extra[16];
        CHECK_EQ(mbedtls_ssl_read(&s.ssl, extra, sizeof extra), MBEDTLS_ERR_SSL_WANT_READ); /* nothing twice */
    }
    t.close(t.ctx);
    td_mbedtls_free(&m);
    server_free(&s);
    close(lfd);
    check_context = "";
}

int main(void)
{
    test_posix_connect();
    test_tls_partial_writes();
    return check_report("test_transports");
}
