/* pki_util.h - a test CA and a server certificate made with the openssl
 * command line, for the tests that speak TLS (test_forward_tls.c: a TLS
 * receiver; test_tls.c: hopper serving HTTPS). The certificate is for IP
 * 127.0.0.1 and DNS localhost (subjectAltName), P-256, valid 2 days. */
#ifndef HOPPER_TESTS_SERVER_PKI_UTIL_H
#define HOPPER_TESTS_SERVER_PKI_UTIL_H

#include <stdbool.h>
#include <stddef.h>

#define PKI_PATH_SIZE 512

typedef struct test_pki {
    const char *skip_reason;     /* non-NULL: no openssl, the tests skip, saying why */
    char openssl[PKI_PATH_SIZE]; /* the openssl binary */
    char dir[256];               /* where the files are: a new temporary directory */
    char ca[PKI_PATH_SIZE];      /* the CA certificate (PEM) */
    char cert[PKI_PATH_SIZE];    /* the server certificate (PEM), server.pem */
    char key[PKI_PATH_SIZE];     /* its key (PEM), server.key */
    char *cert_pem, *key_pem;    /* their contents, NUL-terminated; new */
} test_pki;

/* Find openssl and make the CA and certificate in a new directory. 0 on
 * success, and also when there is no openssl (pki->skip_reason says so);
 * -1 with the reason printed if making them failed. */
int pki_setup(test_pki *pki);
/* Free the contents and remove the directory. */
void pki_teardown(test_pki *pki);

/* pki->dir/name into out. */
void pki_path(const test_pki *pki, const char *name, char *out, size_t size);
/* Run openssl with args (NULL-terminated, without argv[0]) in pki->dir, its
 * output to pki->dir/openssl.log, for at most 30 s. True if it exited 0;
 * else the reason and its output are printed. */
bool pki_openssl(const test_pki *pki, const char *const *args);
/* The whole file pki->dir/name, NUL-terminated (free()); NULL if unreadable. */
char *pki_read(const test_pki *pki, const char *name);

#endif
