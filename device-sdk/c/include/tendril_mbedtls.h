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
    const char *server_name; /* the name to verify and send as SNI; NULL: the host connected to */
    int last_error;       /* why the last TLS handshake failed (an MBEDTLS_ERR_* code, mbedtls_strerror) */
    uint32_t verify_flags;/* and the certificate check's flags (mbedtls_x509_crt_verify_info) */
} td_mbedtls;

/* ca_pem: the CA certificate(s) in PEM, NUL included in ca_len (mbedtls_x509_crt_parse). TD_OK or TD_E_IO. */
int td_mbedtls_transport(td_transport *t, td_mbedtls *m, const unsigned char *ca_pem, size_t ca_len);
/* Verifies the certificate against `name` (a DNS name) instead of the host connected to. mbedTLS 2.28
 * does not match IP addresses against the certificate's IP SANs: to connect to an address, give the hub's
 * certificate a DNS name and pass it here. The string must outlive the transport. */
void td_mbedtls_server_name(td_mbedtls *m, const char *name);
void td_mbedtls_free(td_mbedtls *m);

#ifdef __cplusplus
}
#endif
#endif
