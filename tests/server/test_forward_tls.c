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
#include "test_forward_util.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

/* Retries quick enough for a test; an attempt may take 10 s, so that a TLS
 * handshake on a loaded machine (or under a sanitizer) is not cut off. */
#define QUICK_RETRY                                                                                \
    "--forward-retry-min", "0.05", "--forward-retry-max", "0.2", "--forward-timeout", "10"
/* So many attempts that a message failing verification is never given up
 * (moved to hooks.dead) while a test watches it. */
#define NEVER_DEAD "--forward-max-attempts", "1000000"
/* How long one openssl command may take. */
#define OPENSSL_PATIENCE_S 30.0

#define PATH_SIZE 512

/* The CA and the receiver's certificate, shared by the tests. */
static struct {
    const char *skip_reason;  /* non-NULL: the tests skip, saying why */
    char openssl[PATH_SIZE];  /* the openssl binary */
    char dir[256];            /* where the files are */
    char ca[PATH_SIZE];       /* the CA certificate, for --forward-ca */
    char *cert_pem, *key_pem; /* the receiver's certificate and key */
} pki;

/* The OpenSSL configuration the certificates are made with, so that the
 * system's openssl.cnf plays no part. */
static const char openssl_cnf[] = "[req]\n"
                                  "distinguished_name = dn\n"
                                  "prompt = no\n"
                                  "[dn]\n"
                                  "CN = hopper test\n"
                                  "[ca_ext]\n"
                                  "basicConstraints = critical, CA:TRUE\n"
                                  "keyUsage = critical, keyCertSign, cRLSign\n"
                                  "subjectKeyIdentifier = hash\n"
                                  "[server_ext]\n"
                                  "basicConstraints = critical, CA:FALSE\n"
                                  "keyUsage = critical, digitalSignature, keyEncipherment\n"
                                  "extendedKeyUsage = serverAuth\n"
                                  "subjectAltName = IP:127.0.0.1\n"
                                  "subjectKeyIdentifier = hash\n"
                                  "authorityKeyIdentifier = keyid\n";

/* ---- making the CA and the certificate ---- */

/* The path of an executable named name on PATH into out; false if none. */
static bool find_on_path(const char *name, char *out, size_t size)
{
    const char *path = getenv("PATH");
    if (path == NULL || *path == '\0')
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        size_t len = strcspn(path, ":");
        if (len > 0) {
            snprintf(out, size, "%.*s/%s", (int)len, path, name);
            struct stat st;
            if (stat(out, &st) == 0 && S_ISREG(st.st_mode) && access(out, X_OK) == 0)
                return true;
        }
        path += len;
        if (*path == ':')
            path++;
    }
    return false;
}

/* pki.dir/name into out. */
static void pki_path(const char *name, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", pki.dir, name);
}

/* Run openssl with args (NULL-terminated, without argv[0]) in pki.dir, its
 * output to pki.dir/openssl.log, for at most OPENSSL_PATIENCE_S. True if it
 * exited 0; else the reason and its output are printed. */
static bool run_openssl(const char *const *args)
{
    const char *argv[32] = {pki.openssl};
    size_t n = 1;
    for (size_t i = 0; args[i] && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    char log[PATH_SIZE];
    pki_path("openssl.log", log, sizeof log);
    pid_t pid = fork();
    if (pid < 0)
        return false;
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int null = open("/dev/null", O_RDONLY);
        if (fd < 0 || null < 0 || chdir(pki.dir) != 0)
            _exit(126);
        dup2(null, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(pki.openssl, (char *const *)argv);
        _exit(127);
    }
    int status = 0;
    pid_t done = 0;
    double deadline = hs_now() + OPENSSL_PATIENCE_S;
    while ((done = waitpid(pid, &status, WNOHANG)) == 0 && hs_now() < deadline)
        usleep(10000);
    if (done == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        fprintf(stderr, "openssl %s: still running after %.0f s, killed\n", args[0],
                OPENSSL_PATIENCE_S);
        return false;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return true;
    fprintf(stderr, "openssl %s failed (wait status %d); its output:\n", args[0], status);
    FILE *f = fopen(log, "r");
    char line[512];
    while (f && fgets(line, sizeof line, f))
        fputs(line, stderr);
    if (f)
        fclose(f);
    return false;
}

/* The whole file pki.dir/name, NUL-terminated (free()); NULL if unreadable. */
static char *read_pki_file(const char *name)
{
    char path[PATH_SIZE];
    pki_path(name, path, sizeof path);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *text = NULL;
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (size > 0 && fseek(f, 0, SEEK_SET) == 0 && (text = malloc((size_t)size + 1)) != NULL) {
        if (fread(text, 1, (size_t)size, f) == (size_t)size) {
            text[size] = '\0';
        } else {
            free(text);
            text = NULL;
        }
    }
    fclose(f);
    return text;
}

/* Make in pki.dir: ca.key and ca.pem, a CA (P-256, valid 2 days); server.key
 * and server.pem, a certificate for IP 127.0.0.1 (subjectAltName) signed
 * by it. */
static bool make_pki(void)
{
    char cnf[PATH_SIZE];
    pki_path("openssl.cnf", cnf, sizeof cnf);
    FILE *f = fopen(cnf, "w");
    if (f == NULL || fputs(openssl_cnf, f) < 0) {
        if (f)
            fclose(f);
        return false;
    }
    if (fclose(f) != 0)
        return false;
    const char *ca[] = {"req",
                        "-x509",
                        "-new",
                        "-config",
                        "openssl.cnf",
                        "-extensions",
                        "ca_ext",
                        "-newkey",
                        "ec",
                        "-pkeyopt",
                        "ec_paramgen_curve:P-256",
                        "-nodes",
                        "-keyout",
                        "ca.key",
                        "-out",
                        "ca.pem",
                        "-days",
                        "2",
                        "-subj",
                        "/CN=hopper test CA",
                        NULL};
    const char *csr[] = {"req",        "-new",    "-config",       "openssl.cnf",
                         "-newkey",    "ec",      "-pkeyopt",      "ec_paramgen_curve:P-256",
                         "-nodes",     "-keyout", "server.key",    "-out",
                         "server.csr", "-subj",   "/CN=127.0.0.1", NULL};
    const char *sign[] = {"x509",       "-req",   "-in",        "server.csr",  "-CA",
                          "ca.pem",     "-CAkey", "ca.key",     "-set_serial", "2",
                          "-days",      "2",      "-extfile",   "openssl.cnf", "-extensions",
                          "server_ext", "-out",   "server.pem", NULL};
    if (!run_openssl(ca) || !run_openssl(csr) || !run_openssl(sign))
        return false;
    pki_path("ca.pem", pki.ca, sizeof pki.ca);
    pki.cert_pem = read_pki_file("server.pem");
    pki.key_pem = read_pki_file("server.key");
    return pki.cert_pem != NULL && pki.key_pem != NULL;
}

static int group_setup(void **state)
{
    (void)state;
    if (!rc_tls_supported()) {
        pki.skip_reason = "libmicrohttpd has no TLS (MHD_FEATURE_TLS)";
        return 0;
    }
    if (!find_on_path("openssl", pki.openssl, sizeof pki.openssl)) {
        pki.skip_reason = "no openssl command on PATH";
        return 0;
    }
    if (hs_make_dir(pki.dir, sizeof pki.dir) != 0)
        return -1;
    if (!make_pki()) {
        fprintf(stderr, "could not make the test CA and certificate in %s\n", pki.dir);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    free(pki.cert_pem);
    free(pki.key_pem);
    hs_remove_tree(pki.dir);
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
