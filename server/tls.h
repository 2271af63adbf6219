/* tls.h - the certificate and key hopper serves HTTPS with (--tls-cert,
 * --tls-key): read once at start and checked with GnuTLS before the HTTP
 * daemon starts, so that a bad file or pair stops the start with a message
 * that names it; libmicrohttpd's own TLS (GnuTLS too) then serves them.
 * They are never read again: a new certificate takes a restart. */
#ifndef HOPPER_SERVER_TLS_H
#define HOPPER_SERVER_TLS_H

#include <stdbool.h>

/* The protocol versions offered: TLS 1.3 and 1.2, nothing older (GnuTLS
 * priority string, MHD_OPTION_HTTPS_PRIORITIES). */
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

typedef struct tls_files {
    char *cert_pem; /* the certificate chain, NUL-terminated; new */
    char *key_pem;  /* its private key; new */
} tls_files;

/* Read cert_path and key_path into *out and check them: a PEM certificate
 * chain GnuTLS parses, a PEM private key it parses, the key the
 * certificate's, TLS_PRIORITIES understood, and libmicrohttpd built with
 * TLS. Logs the certificate's subject and expiry (a warning if it has
 * expired or is not yet valid). False, with the reason logged and nothing
 * held, otherwise. */
bool tls_load(const char *cert_path, const char *key_path, tls_files *out);

/* Free what tls_load() read (the key's bytes wiped first). */
void tls_free(tls_files *files);

#endif
