/* test_tls.c - hopper serving HTTPS (--tls-cert, --tls-key; server/tls.c)
 * against the real binary, with a CA and a certificate for 127.0.0.1 and
 * localhost that the test makes with openssl (pki_util.c), and libcurl
 * verifying the peer against that CA and the host name: a POST and a GET
 * of the message back, a long poll answered over TLS; a plain-HTTP request
 * to the TLS port fails and the server goes on serving TLS; TLS 1.1 is
 * refused while 1.2 and 1.3 are taken; the environment variables; and
 * starts that must fail: a missing key, a pair that does not match, a
 * garbage certificate or key exit 1 naming the file, one of the two flags
 * alone exits 2.
 *
 * Skipped when openssl is not on PATH. */
#include "harness.h"
#include "pki_util.h"

#include <curl/curl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static test_pki pki;
/* a key that is not the certificate's, and files that are no PEM */
static char other_key[PKI_PATH_SIZE], garbage[PKI_PATH_SIZE];

static int group_setup(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (pki_setup(&pki) != 0)
        return -1;
    if (pki.skip_reason)
        return 0;
    const char *genkey[] = {"genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                            "-out",    "other.key",  NULL};
    if (!pki_openssl(&pki, genkey))
        return -1;
    pki_path(&pki, "other.key", other_key, sizeof other_key);
    pki_path(&pki, "garbage.pem", garbage, sizeof garbage);
    FILE *f = fopen(garbage, "w");
    if (f == NULL)
        return -1;
    fputs("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n", f);
    return fclose(f) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    pki_teardown(&pki);
    curl_global_cleanup();
    return 0;
}

static void skip_if_unavailable(void)
{
    if (pki.skip_reason) {
        fprintf(stderr, "skipped: %s\n", pki.skip_reason);
        skip();
    }
}

/* ---- requests over TLS ---- */

/* CURLOPT_SSLVERSION of a client that offers TLS 1.0 and 1.1 only. */
#define OLD_TLS (CURL_SSLVERSION_TLSv1_0 | CURL_SSLVERSION_MAX_TLSv1_1)

typedef struct tls_reply {
    CURLcode rc;
    long status;
    char body[4096];
    size_t len;
    char error[CURL_ERROR_SIZE];
} tls_reply;

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    tls_reply *r = arg;
    size_t take = size * n;
    if (take > sizeof r->body - 1 - r->len)
        take = sizeof r->body - 1 - r->len;
    memcpy(r->body + r->len, data, take);
    r->len += take;
    r->body[r->len] = '\0';
    return size * n;
}

/* method url (body NULL: none) trusting only the test CA, host name
 * checked; sslversion a CURLOPT_SSLVERSION value (0: curl's default).
 * localhost resolves to 127.0.0.1 (CURLOPT_RESOLVE) for the given port.
 * OUT: *r. */
static void tls_request(const char *method, const char *url, int port, const char *body,
                        long sslversion, tls_reply *r)
{
    memset(r, 0, sizeof *r);
    CURL *e = curl_easy_init();
    assert_non_null(e);
    char resolve_line[64];
    snprintf(resolve_line, sizeof resolve_line, "localhost:%d:127.0.0.1", port);
    struct curl_slist *resolve = curl_slist_append(NULL, resolve_line);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_RESOLVE, resolve);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(e, CURLOPT_CAINFO, pki.ca);
    curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    if (sslversion)
        curl_easy_setopt(e, CURLOPT_SSLVERSION, sslversion);
    if (sslversion == OLD_TLS) /* what OpenSSL 3 needs to offer TLS 1.0 and 1.1 at all */
        curl_easy_setopt(e, CURLOPT_SSL_CIPHER_LIST, "DEFAULT@SECLEVEL=0");
    if (body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->error);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)HS_PATIENCE_MS);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    r->rc = curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_cleanup(e);
    curl_slist_free_all(resolve);
}

/* method https://HOST:PORT/path must answer status (and body, unless NULL). */
static void expect_tls(const hs_server *s, const char *host, const char *method, const char *path,
                       const char *body, long status, const char *answer)
{
    char url[256];
    snprintf(url, sizeof url, "https://%s:%d%s", host, s->port, path);
    tls_reply r;
    tls_request(method, url, s->port, body, 0, &r);
    if (r.rc != CURLE_OK || r.status != status)
        fprintf(stderr, "%s %s: curl %d (%s), status %ld, body '%s'\n", method, url, r.rc, r.error,
                r.status, r.body);
    assert_int_equal(r.rc, CURLE_OK);
    assert_int_equal(r.status, status);
    if (answer)
        assert_string_equal(r.body, answer);
}

static void start_tls(hs_server *s)
{
    const char *args[] = {"--tls-cert", pki.cert, "--tls-key", pki.key, NULL};
    hs_start_ok(s, args);
}

/* ---- the tests ---- */

static void test_post_and_get(void **state)
{
    (void)state;
    skip_if_unavailable();
    hs_server s;
    start_tls(&s);
    assert_true(hs_log_wait(&s, "serving https: listening on 127.0.0.1:", HS_PATIENCE_MS));
    expect_tls(&s, "127.0.0.1", "POST", "/channels/secure", "over tls", 202, NULL);
    expect_tls(&s, "localhost", "POST", "/channels/secure", "by name", 202, NULL);
    expect_tls(&s, "127.0.0.1", "GET", "/channels/secure?wait=0", NULL, 200, "over tls");
    expect_tls(&s, "localhost", "GET", "/channels/secure?wait=0", NULL, 200, "by name");
    expect_tls(&s, "127.0.0.1", "GET", "/channels/secure?wait=0", NULL, 204, "");
    hs_stop_ok(&s);
}

/* A waiting GET (a suspended connection) is answered over TLS when a
 * message comes. */
typedef struct waiter {
    const hs_server *s;
    tls_reply reply;
} waiter;

static void *wait_for_message(void *arg)
{
    waiter *w = arg;
    char url[256];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/channels/later?wait=20", w->s->port);
    tls_request("GET", url, w->s->port, NULL, 0, &w->reply);
    return NULL;
}

static void test_long_poll(void **state)
{
    (void)state;
    skip_if_unavailable();
    hs_server s;
    start_tls(&s);
    waiter w = {.s = &s};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, wait_for_message, &w), 0);
    char url[256];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/status", s.port);
    bool waiting = false;
    for (double end = hs_now() + HS_PATIENCE_MS / 1000.0; !waiting && hs_now() < end;) {
        tls_reply r;
        tls_request("GET", url, s.port, NULL, 0, &r);
        waiting = r.rc == CURLE_OK && strstr(r.body, "\"waiting_receivers\": 1") != NULL;
        if (!waiting)
            usleep(20000);
    }
    expect_tls(&s, "127.0.0.1", "POST", "/channels/later", "arrived", 202, NULL);
    pthread_join(t, NULL);
    assert_true(waiting);
    assert_int_equal(w.reply.rc, CURLE_OK);
    assert_int_equal(w.reply.status, 200);
    assert_string_equal(w.reply.body, "arrived");
    hs_stop_ok(&s);
}

/* Plain HTTP to the TLS port gets no HTTP answer; TLS goes on. */
static void test_plain_http_refused(void **state)
{
    (void)state;
    skip_if_unavailable();
    hs_server s;
    start_tls(&s);
    for (int i = 0; i < 3; i++) {
        int fd = hs_connect(&s);
        assert_true(fd >= 0);
        const char req[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
        assert_int_equal(write(fd, req, sizeof req - 1), (ssize_t)(sizeof req - 1));
        char buf[1024];
        size_t n = hs_read_all(fd, buf, sizeof buf, 5000);
        close(fd);
        assert_true(n < 5 || strncmp(buf, "HTTP/", 5) != 0);
    }
    /* the harness speaks plain HTTP: a transport failure, no status */
    hs_reply r;
    int rc = hs_get(&s, "/healthz", &r);
    long status = r.status;
    hs_reply_free(&r);
    assert_int_equal(rc, -1);
    assert_int_equal(status, 0);
    expect_tls(&s, "127.0.0.1", "GET", "/healthz", NULL, 200, "ok");
    hs_stop_ok(&s);
}

/* TLS 1.1 at most: refused by the server. The client is allowed TLS 1.0
 * and 1.1 (OpenSSL 3 forbids them at its default security level, so the
 * level is lowered to 0), and the same client with 1.2 at most connects:
 * what fails is the server's refusal of the version (with TLS 1.1 added to
 * TLS_PRIORITIES this test fails: the request is served). A libcurl that cannot
 * offer 1.1 at all (no such option, or a TLS library without the
 * protocol) skips that case, saying so. */
static void test_old_tls_refused(void **state)
{
    (void)state;
    skip_if_unavailable();
    hs_server s;
    start_tls(&s);
    char url[128];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/healthz", s.port);
    tls_reply r;
    tls_request("GET", url, s.port, NULL, CURL_SSLVERSION_TLSv1_2 | CURL_SSLVERSION_MAX_TLSv1_2,
                &r);
    assert_int_equal(r.rc, CURLE_OK); /* 1.2 is served */
    tls_request("GET", url, s.port, NULL, CURL_SSLVERSION_TLSv1_3 | CURL_SSLVERSION_MAX_TLSv1_3,
                &r);
    assert_int_equal(r.rc, CURLE_OK); /* 1.3 too */
    tls_request("GET", url, s.port, NULL, OLD_TLS, &r);
    if (r.rc == CURLE_NOT_BUILT_IN || r.rc == CURLE_UNKNOWN_OPTION ||
        strstr(r.error, "no protocols available")) {
        fprintf(stderr, "skipped: this libcurl cannot offer TLS 1.1 (%s)\n", r.error);
        hs_stop_ok(&s);
        skip();
    }
    fprintf(stderr, "TLS 1.1 at most: curl %d (%s)\n", r.rc, r.error);
    assert_int_equal(r.rc, CURLE_SSL_CONNECT_ERROR);
    assert_int_equal(r.status, 0);
    expect_tls(&s, "127.0.0.1", "GET", "/healthz", NULL, 200, "ok"); /* and it goes on */
    hs_stop_ok(&s);
}

/* HOPPER_TLS_CERT and HOPPER_TLS_KEY do what the flags do. */
static void test_environment(void **state)
{
    (void)state;
    skip_if_unavailable();
    char cert[PKI_PATH_SIZE + 32], key[PKI_PATH_SIZE + 32];
    snprintf(cert, sizeof cert, "HOPPER_TLS_CERT=%s", pki.cert);
    snprintf(key, sizeof key, "HOPPER_TLS_KEY=%s", pki.key);
    const char *env[] = {cert, key, NULL};
    hs_server s;
    hs_start_env_ok(&s, NULL, env);
    expect_tls(&s, "localhost", "GET", "/healthz", NULL, 200, "ok");
    hs_stop_ok(&s);
}

/* Start with --tls-cert cert --tls-key key (either NULL: not given): the
 * exit code must be code and the output hold text. */
static void expect_start_fails(const char *cert, const char *key, int code, const char *text)
{
    char dir[256];
    assert_int_equal(hs_make_dir(dir, sizeof dir), 0);
    const char *args[12] = {"--listen", "127.0.0.1:0", "--data-dir", dir};
    size_t n = 4;
    if (cert) {
        args[n++] = "--tls-cert";
        args[n++] = cert;
    }
    if (key) {
        args[n++] = "--tls-key";
        args[n++] = key;
    }
    args[n] = NULL;
    int got = -1;
    char *output = NULL;
    int rc = hs_run(args, NULL, &got, &output);
    bool said = output && strstr(output, text) && !strstr(output, "listening on");
    if (got != code || !said)
        fprintf(stderr, "exit %d, expected %d with '%s'; output:\n%s\n", got, code, text,
                output ? output : "");
    free(output);
    hs_remove_tree(dir);
    assert_int_equal(rc, 0);
    assert_int_equal(got, code);
    assert_true(said);
}

static void test_bad_certificates(void **state)
{
    (void)state;
    skip_if_unavailable();
    char missing[PKI_PATH_SIZE], text[3 * PKI_PATH_SIZE];
    pki_path(&pki, "missing.key", missing, sizeof missing);
    snprintf(text, sizeof text, "--tls-key %s: cannot read it", missing);
    expect_start_fails(pki.cert, missing, 1, text);
    snprintf(text, sizeof text, "--tls-cert %s and --tls-key %s do not go together", pki.cert,
             other_key);
    expect_start_fails(pki.cert, other_key, 1, text);
    snprintf(text, sizeof text, "--tls-cert %s: not a PEM certificate chain", garbage);
    expect_start_fails(garbage, pki.key, 1, text);
    snprintf(text, sizeof text, "--tls-key %s: not an unencrypted PEM private key", garbage);
    expect_start_fails(pki.cert, garbage, 1, text);
    expect_start_fails(pki.cert, NULL, 2, "--tls-cert is given without --tls-key");
    expect_start_fails(NULL, pki.key, 2, "--tls-key is given without --tls-cert");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_post_and_get),       cmocka_unit_test(test_long_poll),
        cmocka_unit_test(test_plain_http_refused), cmocka_unit_test(test_old_tls_refused),
        cmocka_unit_test(test_environment),        cmocka_unit_test(test_bad_certificates),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
