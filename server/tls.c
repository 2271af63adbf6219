/* tls.c - reading and checking the HTTPS certificate and key (see tls.h). */
#include "tls.h"

#include "log.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Largest certificate chain or key file read: far above any real one. */
#define TLS_FILE_MAX (1024 * 1024)

/* The whole of path, NUL-terminated (new), or NULL with the reason logged. */
static char *read_pem(const char *flag, const char *path)
{
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        log_error("%s %s: cannot read it: %s", flag, path, strerror(errno));
        return NULL;
    }
    char *text = malloc(TLS_FILE_MAX + 1);
    size_t len = text ? fread(text, 1, TLS_FILE_MAX + 1, f) : 0;
    bool failed = text == NULL || ferror(f) || len > TLS_FILE_MAX || len == 0;
    if (failed)
        log_error("%s %s: %s", flag, path,
                  text == NULL ? "out of memory"
                  : ferror(f)  ? "cannot read it"
                  : len == 0   ? "the file is empty"
                               : "the file is larger than 1 MiB");
    fclose(f);
    if (failed) {
        free(text);
        return NULL;
    }
    text[len] = '\0';
    return text;
}

/* Log the first certificate's subject and validity; warn if it is not
 * valid now (the start goes on: a client decides what it accepts). */
static void log_certificate(const char *path, gnutls_x509_crt_t crt)
{
    char dn[256] = "?";
    size_t dn_size = sizeof dn;
    gnutls_x509_crt_get_dn(crt, dn, &dn_size);
    time_t until = gnutls_x509_crt_get_expiration_time(crt);
    time_t from = gnutls_x509_crt_get_activation_time(crt);
    time_t now = time(NULL);
    char when[32] = "?";
    struct tm tm;
    if (gmtime_r(&until, &tm))
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (now > until || now < from)
        log_warn("--tls-cert %s: the certificate (%s) is not valid now (valid until %s): clients "
                 "will refuse it",
                 path, dn, when);
    else
        log_info("TLS certificate %s: %s, valid until %s", path, dn, when);
}

/* Parse the certificate chain; false (logged) if it is not one. */
static bool check_certificate(const char *path, const char *pem)
{
    gnutls_datum_t data = {(unsigned char *)pem, (unsigned)strlen(pem)};
    gnutls_x509_crt_t *list = NULL;
    unsigned count = 0;
    int rc = gnutls_x509_crt_list_import2(&list, &count, &data, GNUTLS_X509_FMT_PEM,
                                          GNUTLS_X509_CRT_LIST_FAIL_IF_UNSORTED);
    if (rc < 0 || count == 0) {
        log_error("--tls-cert %s: not a PEM certificate chain: %s", path,
                  rc < 0 ? gnutls_strerror(rc) : "no certificate in it");
        return false;
    }
    log_certificate(path, list[0]);
    for (unsigned i = 0; i < count; i++)
        gnutls_x509_crt_deinit(list[i]);
    gnutls_free(list);
    return true;
}

/* Parse the key; false (logged) if it is not one. */
static bool check_key(const char *path, const char *pem)
{
    gnutls_datum_t data = {(unsigned char *)pem, (unsigned)strlen(pem)};
    gnutls_x509_privkey_t key;
    if (gnutls_x509_privkey_init(&key) < 0) {
        log_error("--tls-key %s: out of memory", path);
        return false;
    }
    int rc = gnutls_x509_privkey_import2(key, &data, GNUTLS_X509_FMT_PEM, NULL, 0);
    gnutls_x509_privkey_deinit(key);
    if (rc < 0)
        log_error("--tls-key %s: not an unencrypted PEM private key: %s", path,
                  gnutls_strerror(rc));
    return rc >= 0;
}

/* The key must be the certificate's, and GnuTLS must take the pair and
 * TLS_PRIORITIES as libmicrohttpd will give them to it. */
static bool check_pair(const char *cert_path, const char *key_path, const tls_files *files)
{
    gnutls_certificate_credentials_t cred;
    if (gnutls_certificate_allocate_credentials(&cred) < 0) {
        log_error("TLS: out of memory");
        return false;
    }
    gnutls_datum_t cert = {(unsigned char *)files->cert_pem, (unsigned)strlen(files->cert_pem)};
    gnutls_datum_t key = {(unsigned char *)files->key_pem, (unsigned)strlen(files->key_pem)};
    int rc = gnutls_certificate_set_x509_key_mem2(cred, &cert, &key, GNUTLS_X509_FMT_PEM, NULL, 0);
    gnutls_certificate_free_credentials(cred);
    if (rc < 0) {
        log_error("--tls-cert %s and --tls-key %s do not go together: %s", cert_path, key_path,
                  gnutls_strerror(rc));
        return false;
    }
    gnutls_priority_t priority;
    const char *where;
    rc = gnutls_priority_init(&priority, TLS_PRIORITIES, &where);
    if (rc < 0) {
        log_error("TLS: this GnuTLS does not take the priorities '%s': %s", TLS_PRIORITIES,
                  gnutls_strerror(rc));
        return false;
    }
    gnutls_priority_deinit(priority);
    return true;
}

bool tls_load(const char *cert_path, const char *key_path, tls_files *out)
{
    *out = (tls_files){0};
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        log_error("--tls-cert: this libmicrohttpd was built without TLS");
        return false;
    }
    out->cert_pem = read_pem("--tls-cert", cert_path);
    out->key_pem = out->cert_pem ? read_pem("--tls-key", key_path) : NULL;
    if (out->key_pem && check_certificate(cert_path, out->cert_pem) &&
        check_key(key_path, out->key_pem) && check_pair(cert_path, key_path, out))
        return true;
    tls_free(out);
    return false;
}

void tls_free(tls_files *files)
{
    if (files->key_pem)
        gnutls_memset(files->key_pem, 0, strlen(files->key_pem));
    free(files->key_pem);
    free(files->cert_pem);
    *files = (tls_files){0};
}
