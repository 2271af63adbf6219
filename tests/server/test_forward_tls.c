/* test_forward_tls.c - forwarding to an https:// URL over real TLS, against
 * the real binary: the receiver (receiver.c) runs in TLS mode with a server
 * certificate for IP 127.0.0.1 signed by a CA the test makes with the
 * openssl command line. With --forward-ca naming that CA a message arrives
 * over TLS byte for byte; without it the system's CAs do not know the
 * certificate: every attempt fails verification (libcurl's error in
 * /status), the message is kept (held by the forwarder between attempts,
 * given back to the channel by SIGTERM), and a restart with --forward-ca on
 * the same data directory delivers it.
 *
 * Skipped when openssl is not on PATH or libmicrohttpd has no TLS. The CA
 * and certificate are made once for the group (in a temporary directory);
 * each test has its own TLS receiver and data directory (the fixture). */
#include "harness.h"
#include "pki_util.h"
#include "test_forward_util.h"

#include <curl/curl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

/* Retries quick enough for a test; an attempt may take 10 s, so that a TLS
 * handshake on a loaded machine (or under a sanitizer) is not cut off. */
#define QUICK_RETRY                                                                                \
    "--forward-retry-min", "0.05", "--forward-retry-max", "0.2", "--forward-timeout", "10"
/* So many attempts that a message failing verification is never given up
 * (moved to hooks.dead) while a test watches it. */
#define NEVER_DEAD "--forward-max-attempts", "1000000"
/* The CA and the receiver's certificate, shared by the tests. */
static test_pki pki;

/* ---- the group: the CA and the certificate ---- */

static int group_setup(void **state)
{
    (void)state;
    if (!rc_tls_supported()) {
        pki.skip_reason = "libmicrohttpd has no TLS (MHD_FEATURE_TLS)";
        return 0;
    }
    return pki_setup(&pki);
}

static int group_teardown(void **state)
{
    (void)state;
    pki_teardown(&pki);
    return 0;
}

/* ---- the fixture: a TLS receiver and a data directory ---- */

typedef fw_fixture fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    *state = f;
    if (pki.skip_reason)
        return 0; /* the test skips */
    if (rc_start_tls(&f->r, pki.cert_pem, pki.key_pem) != 0 ||
        hs_make_dir(f->dir, sizeof f->dir) != 0) {
        rc_stop(f->r);
        free(f);
        return -1;
    }
    fw_rule(f->r, "hooks", "/h", f->rule, sizeof f->rule);
    return 0;
}

static void skip_if_unavailable(void)
{
    if (pki.skip_reason) {
        fprintf(stderr, "skipped: %s\n", pki.skip_reason);
        skip();
    }
}

/* Start hopper on f's directory forwarding "hooks" to the receiver, with
 * the flags given (NULL-terminated). */
static void start_on_dir(hs_server *s, fixture *f, const char *const *flags)
{
    const char *args[32] = {"--forward", f->rule};
    size_t n = 2;
    for (size_t i = 0; flags[i] && n < 31; i++)
        args[n++] = flags[i];
    args[n] = NULL;
    hs_start_in_ok(s, f->dir, args);
}

/* /status forward.state of hooks must be state. */
static void expect_state(const hs_server *s, const char *state)
{
    char got[64];
    fw_forward_string(s, "hooks", "state", got, sizeof got);
    if (strcmp(got, state) != 0)
        fail_msg("forward state '%s', expected '%s'", got, state);
}

/* Whether text holds word, ASCII case-insensitive. */
static bool contains_nocase(const char *text, const char *word)
{
    size_t n = strlen(word);
    for (const char *at = text; *at; at++) {
        if (strncasecmp(at, word, n) == 0)
            return true;
    }
    return false;
}

/* ---- the tests ---- */

/* A HEAD of url with libcurl, trusting only the test CA: the status, or 0
 * with the transport error in error. */
static long head_request(const char *url, long timeout_ms, char *error, size_t size)
{
    CURL *e = curl_easy_init();
    if (e == NULL) {
        snprintf(error, size, "curl_easy_init failed");
        return 0;
    }
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CAINFO, pki.ca);
    curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    CURLcode code = curl_easy_perform(e);
    long status = 0;
    if (code == CURLE_OK)
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    snprintf(error, size, "%s", curl_easy_strerror(code));
    curl_easy_cleanup(e);
    return status;
}

/* The receiver speaks TLS with the certificate made: libcurl trusting the
 * CA gets its answer, also after rc_down() and rc_up(); plain HTTP to its
 * port gets none. (A check of the test's own set-up, so that a failure
 * below is hopper's.) */
static void test_receiver_speaks_tls(void **state)
{
    skip_if_unavailable();
    fixture *f = *state;
    assert_true(strncmp(rc_url(f->r), "https://127.0.0.1:", 18) == 0);
    char https[RULE_SIZE], plain[RULE_SIZE], error[CURL_ERROR_SIZE];
    snprintf(https, sizeof https, "%s/probe", rc_url(f->r));
    snprintf(plain, sizeof plain, "http://127.0.0.1:%d/probe", rc_port(f->r));

    if (head_request(https, HS_PATIENCE_MS, error, sizeof error) != 200)
        fail_msg("https HEAD of the receiver with the test CA: %s", error);
    assert_int_equal(rc_count(f->r), 1);
    assert_string_equal(rc_request_at(f->r, 0)->path, "/probe");

    long status = head_request(plain, 5000, error, sizeof error);
    fprintf(stderr, "plain HTTP to the TLS receiver: %s, status %ld\n", error, status);
    assert_int_equal(status, 0);
    assert_int_equal(rc_count(f->r), 1); /* the plain request was not one */

    rc_down(f->r);
    assert_int_equal(rc_up(f->r), 0);
    if (head_request(https, HS_PATIENCE_MS, error, sizeof error) != 200)
        fail_msg("https HEAD of the receiver after rc_up(): %s", error);
    assert_int_equal(rc_count(f->r), 2);
}

/* With --forward-ca naming the test CA, a message POSTed to hooks reaches
 * the receiver over TLS, body byte for byte, and forwarding is "ok". */
static void test_delivered_with_forward_ca(void **state)
{
    skip_if_unavailable();
    fixture *f = *state;
    unsigned char body[600];
    for (size_t i = 0; i < sizeof body; i++)
        body[i] = (unsigned char)(i * 7 + 3); /* every byte value, NUL and CR LF among them */
    hs_server s;
    const char *flags[] = {"--forward-ca", pki.ca, QUICK_RETRY, NULL};
    start_on_dir(&s, f, flags);
    hs_expect_post_bytes(&s, "hooks", body, sizeof body, "application/octet-stream", 202);

    assert_true(rc_wait_requests(f->r, 1, HS_PATIENCE_MS));
    const rc_request *req = rc_request_at(f->r, 0);
    assert_string_equal(req->method, "POST");
    assert_string_equal(req->path, "/h");
    assert_string_equal(rc_header_value(req, "Hopper-Channel"), "hooks");
    assert_true(fw_is_message_id(fw_id(req)));
    assert_int_equal(fw_delivery_count(req), 1);
    assert_int_equal(req->body_len, sizeof body);
    assert_memory_equal(req->body, body, sizeof body);
    assert_true(rc_wait_answered(f->r, 1, HS_PATIENCE_MS));
    assert_int_equal(rc_request_at(f->r, 0)->status, 200);

    hs_await_status_ok(&s, "hooks", "messages", 0);
    assert_true(fw_await_forward_number(&s, "hooks", "attempts_total", 1, HS_PATIENCE_MS) >= 1);
    expect_state(&s, "ok");
    char error[300];
    fw_forward_string(&s, "hooks", "last_error", error, sizeof error);
    assert_string_equal(error, "");
    assert_true(fw_forward_number(&s, "hooks", "consecutive_failures") == 0);
    assert_int_equal(rc_count(f->r), 1);
    hs_stop_ok(&s);
}

/* Without --forward-ca the certificate is not trusted (the system's CAs do
 * not know the test CA): every attempt fails verification before a request
 * is sent, /status and the log say so with libcurl's error, and the message
 * is kept. While hopper runs, the forwarder holds it between attempts (it
 * is taken from the channel, whose "messages" is then 0); SIGTERM gives it
 * back: started without --forward on the same data directory, the channel
 * holds it (messages 1). Restarted with --forward-ca, hopper delivers it. */
static void test_untrusted_then_delivered_after_restart(void **state)
{
    skip_if_unavailable();
    fixture *f = *state;
    hs_server s;
    const char *untrusted[] = {QUICK_RETRY, NEVER_DEAD, NULL};
    start_on_dir(&s, f, untrusted);
    hs_expect_post(&s, "hooks", "sent over tls", 202);

    /* three failures: the channel is "failing" */
    double failures =
        fw_await_forward_number(&s, "hooks", "consecutive_failures", 3, HS_PATIENCE_MS);
    if (failures < 3)
        fail_msg("consecutive_failures %.0f, expected at least 3", failures);
    char state_text[64], error[300];
    fw_forward_string(&s, "hooks", "state", state_text, sizeof state_text);
    fw_forward_string(&s, "hooks", "last_error", error, sizeof error);
    fprintf(stderr, "without --forward-ca: state '%s', last_error '%s'\n", state_text, error);
    if (strcmp(state_text, "retrying") != 0 && strcmp(state_text, "failing") != 0)
        fail_msg("forward state '%s', expected retrying or failing", state_text);
    if (!contains_nocase(error, "certificate") && !contains_nocase(error, "SSL"))
        fail_msg("last_error '%s' names no certificate or SSL problem", error);
    assert_true(fw_forward_number(&s, "hooks", "last_status") == 0); /* no answer */
    assert_true(hs_log_wait(&s, "failing (", HS_PATIENCE_MS));
    /* accepted, taken by the forwarder, not given up */
    assert_int_equal(hs_status_value(&s, "hooks", "sent_total"), 1);
    assert_int_equal(hs_status_value(&s, "hooks", "received_total"), 1);
    assert_int_equal(hs_status_value(&s, "hooks", "dead_lettered_total"), 0);
    assert_int_equal(hs_status_value(&s, "hooks.dead", "messages"), -1); /* no such channel */
    assert_int_equal(rc_count(f->r), 0); /* no request got through a handshake */
    hs_stop_ok(&s);
    assert_int_equal(rc_count(f->r), 0);

    /* given back: the channel holds it */
    const char *no_flags[] = {NULL};
    hs_start_in_ok(&s, f->dir, no_flags);
    assert_int_equal(hs_status_value(&s, "hooks", "messages"), 1);
    assert_int_equal(hs_status_value(&s, "hooks", "recovered"), 1);
    hs_stop_ok(&s);

    const char *trusted[] = {"--forward-ca", pki.ca, QUICK_RETRY, NULL};
    start_on_dir(&s, f, trusted);
    const rc_request *req = fw_expect_delivery(f->r, 0, "hooks", "sent over tls", 0);
    assert_string_equal(req->path, "/h");
    long count = fw_delivery_count(req);
    fprintf(stderr, "after the restart with --forward-ca: delivered, Hopper-Delivery-Count %ld\n",
            count);
    if (count < 2)
        fail_msg("Hopper-Delivery-Count %ld, but attempts before the restart failed", count);
    assert_true(rc_wait_answered(f->r, 1, HS_PATIENCE_MS));
    assert_int_equal(rc_request_at(f->r, 0)->status, 200);
    assert_true(fw_await_forward_number(&s, "hooks", "attempts_total", 1, HS_PATIENCE_MS) >= 1);
    hs_await_status_ok(&s, "hooks", "messages", 0);
    expect_state(&s, "ok");
    assert_int_equal(hs_status_value(&s, "hooks", "dead_lettered_total"), 0);
    assert_int_equal(rc_count(f->r), 1);
    hs_stop_ok(&s);
}

int main(void)
{
#define T(test) cmocka_unit_test_setup_teardown(test, setup, fw_fixture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_receiver_speaks_tls),
        T(test_delivered_with_forward_ca),
        T(test_untrusted_then_delivered_after_restart),
    };
#undef T
    const char *filter = getenv("HOPPER_TEST_FILTER"); /* e.g. "*restart*" */
    if (filter)
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
