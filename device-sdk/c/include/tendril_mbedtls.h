/*
 * td_transport for wss: TLS 1.2 through mbedTLS 2.28 (Debian libmbedtls-dev; ESP-IDF ships mbedTLS too)
 * over the POSIX socket transport. The hub's certificate is verified against the CA you give and the host
 * name you connect to (SNI and SAN); there is no switch to turn verification off.
 */
#ifndef TENDRIL_MBEDTLS_H
#define TENDRIL_MBEDTLS_H

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "tendril_posix.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    td_posix tcp;
    mbedtls_ssl_context ssl;
    mbedtls_ssl_config conf;
    mbedtls_x509_crt ca;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    int stage;          /* 0 TCP, 1 TLS handshake, 2 open */
    size_t pending_write; /* length of a write mbedTLS asked to repeat (WANT_WRITE) */
} td_mbedtls;

/* ca_pem: the CA certificate(s) in PEM, NUL included in ca_len (mbedtls_x509_crt_parse). TD_OK or TD_E_IO. */
int td_mbedtls_transport(td_transport *t, td_mbedtls *m, const unsigned char *ca_pem, size_t ca_len);
void td_mbedtls_free(td_mbedtls *m);

#ifdef __cplusplus
}
#endif
#endif
