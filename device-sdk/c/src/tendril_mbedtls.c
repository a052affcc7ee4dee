/* td_transport for wss through mbedTLS 2.28 (see tendril_mbedtls.h). */
#include "tendril_mbedtls.h"

#include <mbedtls/net_sockets.h>
#include <string.h>

#include "tendril_codec.h"

static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    int n = td_posix_write(&((td_mbedtls *)ctx)->tcp, buf, len);
    return n < 0 ? MBEDTLS_ERR_NET_SEND_FAILED : n == 0 ? MBEDTLS_ERR_SSL_WANT_WRITE : n;
}

static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    int n = td_posix_read(&((td_mbedtls *)ctx)->tcp, buf, len);
    return n < 0 ? MBEDTLS_ERR_NET_CONN_RESET : n == 0 ? MBEDTLS_ERR_SSL_WANT_READ : n;
}

static int tls_connect(void *ctx, const char *host, uint16_t port)
{
    td_mbedtls *m = ctx;
    int r;
    if (m->stage == 0) {
        r = td_posix_connect(&m->tcp, host, port);
        if (r != TD_OK) return r;
        mbedtls_ssl_session_reset(&m->ssl);
        /* SNI, and the name the certificate must carry */
        if (mbedtls_ssl_set_hostname(&m->ssl, m->server_name ? m->server_name : host)) return TD_E_IO;
        m->pending_write = 0;
        m->stage = 1;
    }
    if (m->stage == 1) {
        r = mbedtls_ssl_handshake(&m->ssl);
        if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE) return TD_E_AGAIN;
        if (r) {
            m->last_error = r;
            m->verify_flags = mbedtls_ssl_get_verify_result(&m->ssl);
            td_posix_close(&m->tcp);
            m->stage = 0;
            return TD_E_IO;
        }
        m->stage = 2;
    }
    return TD_OK;
}

static int tls_read(void *ctx, uint8_t *buf, size_t n)
{
    td_mbedtls *m = ctx;
    int r = mbedtls_ssl_read(&m->ssl, buf, n);
    if (r > 0) return r;
    if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE) return 0;
    return -1; /* 0: end of stream; close_notify; errors */
}

static int tls_write(void *ctx, const uint8_t *buf, size_t n)
{
    td_mbedtls *m = ctx;
    int r;
    /* After WANT_WRITE mbedTLS must get the same length again (it reports that length as written). */
    if (m->pending_write && m->pending_write < n) n = m->pending_write;
    r = mbedtls_ssl_write(&m->ssl, buf, n);
    if (r == MBEDTLS_ERR_SSL_WANT_WRITE || r == MBEDTLS_ERR_SSL_WANT_READ) {
        m->pending_write = n;
        return 0;
    }
    m->pending_write = 0;
    return r < 0 ? -1 : r;
}

static void tls_close(void *ctx)
{
    td_mbedtls *m = ctx;
    if (m->stage == 2) mbedtls_ssl_close_notify(&m->ssl);
    td_posix_close(&m->tcp);
    m->stage = 0;
}

static int tls_random(void *ctx, uint8_t *buf, size_t n)
{
    return mbedtls_ctr_drbg_random(&((td_mbedtls *)ctx)->drbg, buf, n) ? TD_E_IO : TD_OK;
}

int td_mbedtls_transport(td_transport *t, td_mbedtls *m, const unsigned char *ca_pem, size_t ca_len)
{
    static const unsigned char pers[] = "tendril-c-sdk";
    memset(m, 0, sizeof *m);
    m->tcp.fd = -1;
    m->tcp.addrs = m->tcp.next = NULL;
    mbedtls_ssl_init(&m->ssl);
    mbedtls_ssl_config_init(&m->conf);
    mbedtls_x509_crt_init(&m->ca);
    mbedtls_entropy_init(&m->entropy);
    mbedtls_ctr_drbg_init(&m->drbg);
    if (mbedtls_ctr_drbg_seed(&m->drbg, mbedtls_entropy_func, &m->entropy, pers, sizeof pers - 1) ||
        mbedtls_x509_crt_parse(&m->ca, ca_pem, ca_len) ||
        mbedtls_ssl_config_defaults(&m->conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                    MBEDTLS_SSL_PRESET_DEFAULT))
        return TD_E_IO;
    mbedtls_ssl_conf_authmode(&m->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    mbedtls_ssl_conf_ca_chain(&m->conf, &m->ca, NULL);
    mbedtls_ssl_conf_rng(&m->conf, mbedtls_ctr_drbg_random, &m->drbg);
    if (mbedtls_ssl_setup(&m->ssl, &m->conf)) return TD_E_IO;
    mbedtls_ssl_set_bio(&m->ssl, m, bio_send, bio_recv, NULL);
    t->ctx = m;
    t->connect = tls_connect;
    t->read = tls_read;
    t->write = tls_write;
    t->close = tls_close;
    t->now_ms = td_posix_now_ms;
    t->random = tls_random;
    return TD_OK;
}

void td_mbedtls_server_name(td_mbedtls *m, const char *name)
{
    m->server_name = name;
}

void td_mbedtls_free(td_mbedtls *m)
{
    td_posix_close(&m->tcp);
    mbedtls_ssl_free(&m->ssl);
    mbedtls_ssl_config_free(&m->conf);
    mbedtls_x509_crt_free(&m->ca);
    mbedtls_ctr_drbg_free(&m->drbg);
    mbedtls_entropy_free(&m->entropy);
}
