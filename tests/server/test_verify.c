/* test_verify.c - webhook signatures checked at the door (--verify,
 * server/verify*.c) against the real binary: GitHub's published example
 * accepted and stored, a changed body refused 401 bad_signature with the
 * body back byte for byte and nothing stored (no channel made); missing and
 * malformed headers; Stripe and Standard Webhooks signatures computed here
 * with nettle (the computation checked first against Standard Webhooks'
 * published vector and a Stripe vector made once with openssl), stale
 * timestamps either way refused, a rotated secret (a file's second line)
 * accepted; a prefix rule; a channel not covered unaffected; the failure
 * counters of /metrics and /status; a multipart batch signed over its raw
 * body; HOPPER_VERIFY; a channel refused after a good signature (the body
 * back); bad --verify flags exit 2.
 *
 * The secret files are made once for the group in a temporary directory;
 * each test starts its own server. */
#include "batch_util.h"
#include "harness.h"

#include <nettle/base64.h>
#include <nettle/hmac.h>
#include <nettle/sha2.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

/* GitHub's example (docs: "Validating webhook deliveries"). */
#define GITHUB_SECRET "It's a Secret to Everybody"
#define GITHUB_BODY "Hello, World!"
#define GITHUB_SIGNATURE "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

/* Standard Webhooks' published test vector (the specification's and its
 * libraries' tests). */
#define STANDARD_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define STANDARD_VECTOR_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define STANDARD_VECTOR_TIME 1614265330
#define STANDARD_VECTOR_BODY "{\"test\": 2432232314}"
#define STANDARD_VECTOR_SIGNATURE "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
/* A second Standard Webhooks secret, the file's second line. */
#define STANDARD_ROTATED "whsec_c2Vjb25kLXNlY3JldC1vZi10aGUtcm90YXRpb24="

/* A Stripe vector computed once, independently of this file, with
 *   printf '%s' '1700000000.{"id":"evt_1"}' |
 *       openssl dgst -sha256 -hmac 'whsec_test_secret' */
#define STRIPE_SECRET "whsec_test_secret"
#define STRIPE_VECTOR_TIME 1700000000
#define STRIPE_VECTOR_BODY "{\"id\":\"evt_1\"}"
#define STRIPE_VECTOR_SIGNATURE "248a374f50f943a28b0f6ab50faf9a7e7e29b710fa26df9fb1618b9bf8ea9c9a"
#define STRIPE_ROTATED "whsec_rotated_in"

/* Beyond the server's 5-minute tolerance. */
#define STALE_S 301

static struct {
    char dir[256];
    char github[512], stripe[512], standard[512], empty[512];
    char github_rule[600], stripe_rule[600], standard_rule[600], prefix_rule[600];
} files;

/* ---- signatures, computed here ---- */

static void hmac(const void *key, size_t key_len, const char *prefix, const void *body, size_t len,
                 uint8_t digest[SHA256_DIGEST_SIZE])
{
    struct hmac_sha256_ctx ctx;
    hmac_sha256_set_key(&ctx, key_len, key);
    hmac_sha256_update(&ctx, strlen(prefix), (const uint8_t *)prefix);
    hmac_sha256_update(&ctx, len, body);
    hmac_sha256_digest(&ctx, SHA256_DIGEST_SIZE, digest);
}

static void to_hex(const uint8_t *bytes, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", bytes[i]);
}

/* Stripe: hex HMAC of "T.body" under secret (its bytes as they are). */
static void stripe_signature(const char *secret, long long t, const char *body, char out[65])
{
    char prefix[32];
    snprintf(prefix, sizeof prefix, "%lld.", t);
    uint8_t d[SHA256_DIGEST_SIZE];
    hmac(secret, strlen(secret), prefix, body, strlen(body), d);
    to_hex(d, sizeof d, out);
}

/* Standard Webhooks: base64 HMAC of "id.T.body" under the key whsec_
 * encodes. */
static void standard_signature(const char *whsec, const char *id, long long t, const char *body,
                               char out[45])
{
    const char *b64 = whsec + strlen("whsec_");
    uint8_t key[64];
    size_t key_len = sizeof key;
    struct base64_decode_ctx ctx;
    base64_decode_init(&ctx);
    assert_true(base64_decode_update(&ctx, &key_len, key, strlen(b64), b64));
    assert_true(base64_decode_final(&ctx));
    char prefix[128];
    snprintf(prefix, sizeof prefix, "%s.%lld.", id, t);
    uint8_t d[SHA256_DIGEST_SIZE];
    hmac(key, key_len, prefix, body, strlen(body), d);
    base64_encode_raw(out, sizeof d, d);
    out[BASE64_ENCODE_RAW_LENGTH(sizeof d)] = '\0';
}

static long long now_s(void)
{
    return (long long)time(NULL);
}

/* ---- files and servers ---- */

static bool write_file(char *path, size_t size, const char *name, const char *text)
{
    snprintf(path, size, "%s/%s", files.dir, name);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return false;
    bool ok = fputs(text, f) >= 0;
    return fclose(f) == 0 && ok;
}

static int group_setup(void **state)
{
    (void)state;
    if (hs_make_dir(files.dir, sizeof files.dir) != 0)
        return -1;
    bool ok = write_file(files.github, sizeof files.github, "github", GITHUB_SECRET "\n") &&
              write_file(files.stripe, sizeof files.stripe, "stripe",
                         STRIPE_SECRET "\r\n\n" STRIPE_ROTATED "\n") &&
              write_file(files.standard, sizeof files.standard, "standard",
                         STANDARD_SECRET "\n" STANDARD_ROTATED) &&
              write_file(files.empty, sizeof files.empty, "empty", "\n\n");
    snprintf(files.github_rule, sizeof files.github_rule, "hooks=github:%s", files.github);
    snprintf(files.stripe_rule, sizeof files.stripe_rule, "pay=stripe:%s", files.stripe);
    snprintf(files.standard_rule, sizeof files.standard_rule, "std=standard-webhooks:%s",
             files.standard);
    snprintf(files.prefix_rule, sizeof files.prefix_rule, "gh*=github:%s", files.github);
    return ok ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    hs_remove_tree(files.dir);
    return 0;
}

/* Start a server with every rule of the group. */
static void start(hs_server *s)
{
    const char *args[] = {"--verify",       files.github_rule,   "--verify", files.stripe_rule,
                          "--verify",       files.standard_rule, "--verify", files.prefix_rule,
                          "--keep-headers", "X-Trace",           NULL};
    hs_start_ok(s, args);
}

/* POST body (text/plain) to channel with the header lines (NULL-terminated,
 * may be NULL). OUT: *r, the caller frees it. */
static void post(const hs_server *s, const char *channel, const char *body,
                 const char *const *headers, hs_reply *r)
{
    char path[256];
    snprintf(path, sizeof path, "/channels/%s", channel);
    assert_int_equal(hs_post_headers(s, path, body, strlen(body), "text/plain", headers, r), 0);
}

/* POST that must be stored. */
static void expect_accepted(const hs_server *s, const char *channel, const char *body,
                            const char *const *headers)
{
    hs_reply r;
    post(s, channel, body, headers, &r);
    if (r.status != 202)
        fprintf(stderr, "POST %s: %ld %s\n", channel, r.status, (char *)r.body);
    long status = r.status;
    hs_reply_free(&r);
    assert_int_equal(status, 202);
}

/* POST that must be refused 401 bad_signature with its body back, its
 * Content-Type and a challenge naming scheme. */
static void expect_refused(const hs_server *s, const char *channel, const char *body,
                           const char *const *headers, const char *scheme)
{
    hs_reply r;
    post(s, channel, body, headers, &r);
    char error[64] = "", challenge[128] = "", expected[128];
    hs_header(&r, "Hopper-Error", error, sizeof error);
    hs_header(&r, "WWW-Authenticate", challenge, sizeof challenge);
    snprintf(expected, sizeof expected, "Signature scheme=\"%s\"", scheme);
    bool same = r.len == strlen(body) && memcmp(r.body, body, r.len) == 0;
    if (r.status != 401 || !same)
        fprintf(stderr, "POST %s: %ld, body '%s'\n", channel, r.status, (char *)r.body);
    long status = r.status;
    bool typed = strcmp(r.content_type, "text/plain") == 0;
    hs_reply_free(&r);
    assert_int_equal(status, 401);
    assert_string_equal(error, "bad_signature");
    assert_string_equal(challenge, expected);
    assert_true(same);
    assert_true(typed);
}

/* ---- the tests ---- */

/* The signatures computed here reproduce the published and independent
 * vectors: what the other tests sign with is right. */
static void test_vectors(void **state)
{
    (void)state;
    char sig[65];
    stripe_signature(STRIPE_SECRET, STRIPE_VECTOR_TIME, STRIPE_VECTOR_BODY, sig);
    assert_string_equal(sig, STRIPE_VECTOR_SIGNATURE);
    char b64[45];
    standard_signature(STANDARD_SECRET, STANDARD_VECTOR_ID, STANDARD_VECTOR_TIME,
                       STANDARD_VECTOR_BODY, b64);
    assert_string_equal(b64, STANDARD_VECTOR_SIGNATURE);
    uint8_t d[SHA256_DIGEST_SIZE];
    hmac(GITHUB_SECRET, strlen(GITHUB_SECRET), "", GITHUB_BODY, strlen(GITHUB_BODY), d);
    to_hex(d, sizeof d, sig);
    assert_string_equal(sig, GITHUB_SIGNATURE + strlen("sha256="));
}

static void test_github_example(void **state)
{
    (void)state;
    hs_server s;
    start(&s);
    const char *const headers[] = {"X-Hub-Signature-256: " GITHUB_SIGNATURE, "X-Trace: t1", NULL};
    expect_accepted(&s, "hooks", GITHUB_BODY, headers);
    hs_expect_get(&s, "hooks", "0", GITHUB_BODY);
    hs_stop_ok(&s);
}

/* With --auth-file too: a POST to a --verify channel needs no bearer
 * token (its sender cannot send one), only its signature; everything else
 * still needs a token with its scope. */
static void test_signed_channel_needs_no_token(void **state)
{
    (void)state;
    static const char token[] = "reader-of-hooks";
    uint8_t digest[SHA256_DIGEST_SIZE];
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    sha256_update(&ctx, sizeof token - 1, (const uint8_t *)token);
    sha256_digest(&ctx, sizeof digest, digest);
    char hex[2 * SHA256_DIGEST_SIZE + 1], line[256], auth[600];
    to_hex(digest, sizeof digest, hex);
    snprintf(line, sizeof line, "%s receive:hooks\n", hex);
    assert_true(write_file(auth, sizeof auth, "tokens", line));
    hs_server s;
    const char *args[] = {"--auth-file", auth, "--verify", files.github_rule, NULL};
    hs_start_ok(&s, args);
    const char *const signed_headers[] = {"X-Hub-Signature-256: " GITHUB_SIGNATURE, NULL};
    expect_accepted(&s, "hooks", GITHUB_BODY, signed_headers); /* no token */
    expect_refused(&s, "hooks", GITHUB_BODY, NULL, "github");  /* no token, no signature */
    hs_reply r;
    post(&s, "other", GITHUB_BODY, signed_headers, &r); /* not covered: a token is needed */
    assert_true(hs_is_error(&r, 401, "unauthorized"));
    hs_reply_free(&r);
    assert_int_equal(hs_get(&s, "/channels/hooks?wait=0", &r), 0); /* reading needs one */
    assert_true(hs_is_error(&r, 401, "unauthorized"));
    hs_reply_free(&r);
    char bearer[128];
    snprintf(bearer, sizeof bearer, "Authorization: Bearer %s", token);
    const char *const with_token[] = {bearer, NULL};
    assert_int_equal(
        hs_request_headers(&s, "GET", "/channels/hooks?wait=0", NULL, 0, NULL, with_token, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, strlen(GITHUB_BODY));
    assert_memory_equal(r.body, GITHUB_BODY, r.len);
    hs_reply_free(&r);
    hs_stop_ok(&s);
}

/* The example's signature over another body: refused, nothing stored, no
 * channel made (counted server-wide); once the channel exists, counted on
 * it. */
static void test_github_changed_body(void **state)
{
    (void)state;
    hs_server s;
    start(&s);
    const char *const headers[] = {"X-Hub-Signature-256: " GITHUB_SIGNATURE, NULL};
    expect_refused(&s, "hooks", "Hello, World?", headers, "github");
    assert_int_equal(hs_status_value(&s, "hooks", "messages"), -1); /* no channel */
    assert_int_equal(hs_metric_value(&s, "hopper_signature_failures_without_channel_total", NULL),
                     1);
    hs_expect_nothing(&s, "hooks", "0", NULL); /* 204; the GET makes the channel */
    expect_refused(&s, "hooks", "Hello, World?", headers, "github");
    assert_int_equal(hs_metric_value(&s, "hopper_signature_failures_total", "hooks"), 1);
    assert_int_equal(hs_status_value(&s, "hooks", "signature_failures_total"), 1);
    assert_int_equal(hs_status_value(&s, "hooks", "messages"), 0);
    hs_expect_nothing(&s, "hooks", "0", NULL);
    hs_stop_ok(&s);
}

static void test_missing_and_malformed(void **state)
{
    (void)state;
    hs_server s;
    start(&s);
    expect_refused(&s, "hooks", GITHUB_BODY, NULL, "github");
    const char *const upper[] = {"X-Hub-Signature-256: SHA256=757107ea0eb2509fc211221cce984b8a"
                                 "37570b6d7586c22c46f4379c8b043e17",
                                 NULL};
    expect_refused(&s, "hooks", GITHUB_BODY, upper, "github");
    const char *const short_sig[] = {"X-Hub-Signature-256: sha256=757107ea", NULL};
    expect_refused(&s, "hooks", GITHUB_BODY, short_sig, "github");
    const char *const twice[] = {"X-Hub-Signature-256: " GITHUB_SIGNATURE,
                                 "X-Hub-Signature-256: " GITHUB_SIGNATURE, NULL};
    expect_refused(&s, "hooks", GITHUB_BODY, twice, "github");
    /* the old SHA-1 header alone is not the one checked */
    const char *const sha1[] = {"X-Hub-Signature: sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59",
                                NULL};
    expect_refused(&s, "hooks", GITHUB_BODY, sha1, "github");
    hs_expect_nothing(&s, "hooks", "0", NULL);
    hs_stop_ok(&s);
}

/* A Stripe-Signature header for body signed at t with secret. */
static void stripe_header(const char *secret, long long t, const char *body, char *out, size_t size)
{
    char sig[65];
    stripe_signature(secret, t, body, sig);
    snprintf(out, size, "Stripe-Signature: t=%lld,v1=%s,v0=0000", t, sig);
}

static void test_stripe(void **state)
{
    (void)state;
    hs_server s;
    start(&s);
    const char *body = "{\"id\":\"evt_2\",\"type\":\"charge.succeeded\"}";
    char h[256];
    const char *const headers[] = {h, NULL};
    stripe_header(STRIPE_SECRET, now_s(), body, h, sizeof h);
    expect_accepted(&s, "pay", body, headers);
    /* the rotated secret, the file's second line */
    stripe_header(STRIPE_ROTATED, now_s(), body, h, sizeof h);
    expect_accepted(&s, "pay", body, headers);
    /* a wrong secret, beside a right signature of the same header */
    char right[65], wrong[65];
    long long t = now_s();
    stripe_signature(STRIPE_SECRET, t, body, right);
    stripe_signature("whsec_unknown", t, body, wrong);
    snprintf(h, sizeof h, "Stripe-Signature: t=%lld,v1=%s,v1=%s", t, wrong, right);
    expect_accepted(&s, "pay", body, headers);
    snprintf(h, sizeof h, "Stripe-Signature: t=%lld,v1=%s", t, wrong);
    expect_refused(&s, "pay", body, headers, "stripe");
    /* stale, older and newer than the tolerance */
    stripe_header(STRIPE_SECRET, now_s() - STALE_S, body, h, sizeof h);
    expect_refused(&s, "pay", body, headers, "stripe");
    stripe_header(STRIPE_SECRET, now_s() + STALE_S + 5, body, h, sizeof h);
    expect_refused(&s, "pay", body, headers, "stripe");
    /* the signature of another timestamp */
    stripe_signature(STRIPE_SECRET, t - 1, body, right);
    snprintf(h, sizeof h, "Stripe-Signature: t=%lld,v1=%s", t, right);
    expect_refused(&s, "pay", body, headers, "stripe");
    expect_refused(&s, "pay", body, NULL, "stripe");
    assert_int_equal(hs_status_value(&s, "pay", "messages"), 3);
    assert_int_equal(hs_metric_value(&s, "hopper_signature_failures_total", "pay"), 5);
    hs_stop_ok(&s);
}

/* Standard Webhooks headers for body signed as id at t with whsec. */
static void standard_headers(const char *whsec, const char *id, long long t, const char *body,
                             char h[3][160])
{
    char sig[45];
    standard_signature(whsec, id, t, body, sig);
    snprintf(h[0], 160, "webhook-id: %s", id);
    snprintf(h[1], 160, "webhook-timestamp: %lld", t);
    snprintf(h[2], 160, "webhook-signature: v1a,c29tZXRoaW5n v1,%s", sig);
}

static void test_standard_webhooks(void **state)
{
    (void)state;
    hs_server s;
    start(&s);
    const char *body = "{\"type\":\"invoice.paid\"}";
    char h[3][160];
    const char *const headers[] = {h[0], h[1], h[2], NULL};
    standard_headers(STANDARD_SECRET, "msg_1", now_s(), body, h);
    expect_accepted(&s, "std", body, headers);
    standard_headers(STANDARD_ROTATED, "msg_2", now_s(), body, h);
    expect_accepted(&s, "std", body, headers);
    /* the published vector is five years stale */
    snprintf(h[0], 160, "webhook-id: %s", STANDARD_VECTOR_ID);
    snprintf(h[1], 160, "webhook-timestamp: %d", STANDARD_VECTOR_TIME);
    snprintf(h[2], 160, "webhook-signature: v1,%s", STANDARD_VECTOR_SIGNATURE);
    expect_refused(&s, "std", STANDARD_VECTOR_BODY, headers, "standard-webhooks");
    standard_headers(STANDARD_SECRET, "msg_3", now_s() - STALE_S, body, h);
    expect_refused(&s, "std", body, headers, "standard-webhooks");
    standard_headers(STANDARD_SECRET, "msg_4", now_s() + STALE_S + 5, body, h);
    expect_refused(&s, "std", body, headers, "standard-webhooks");
    /* signed for another id */
    standard_headers(STANDARD_SECRET, "msg_5", now_s(), body, h);
    snprintf(h[0], 160, "webhook-id: msg_6");
    expect_refused(&s, "std", body, headers, "standard-webhooks");
    /* one header missing */
    standard_headers(STANDARD_SECRET, "msg_7", now_s(), body, h);
    const char *const no_id[] = {h[1], h[2], NULL};
    expect_refused(&s, "std", body, no_id, "standard-webhooks");
    assert_int_equal(hs_status_value(&s, "std", "messages"), 2);
    hs_stop_ok(&s);
}

/* gh* covers every channel that begins with gh; other channels are not
 * covered. */
static void test_prefix_and_uncovered(void **state)
{
    (void)state;
    hs_server s;
    start(&s);
    const char *const headers[] = {"X-Hub-Signature-256: " GITHUB_SIGNATURE, NULL};
    expect_accepted(&s, "gh.repo-a", GITHUB_BODY, headers);
    expect_accepted(&s, "gh", GITHUB_BODY, headers);
    expect_refused(&s, "gh.repo-b", "Hello, World?", headers, "github");
    expect_refused(&s, "gh.repo-a", GITHUB_BODY, NULL, "github");
    hs_expect_post(&s, "jobs", "no signature needed", 202);
    expect_accepted(&s, "jobs", "Hello, World?", headers); /* a wrong one is not looked at */
    hs_expect_get(&s, "jobs", "0", "no signature needed");
    hs_expect_get(&s, "gh.repo-a", "0", GITHUB_BODY);
    assert_int_equal(hs_metric_value(&s, "hopper_signature_failures_total", "jobs"), 0);
    hs_stop_ok(&s);
}

/* A batch is signed over its whole multipart body, as sent. */
static void test_batch_signed(void **state)
{
    (void)state;
    hs_server s;
    start(&s);
    bu_bytes body = {0};
    bu_numbered_batch(&body, 3);
    uint8_t d[SHA256_DIGEST_SIZE];
    hmac(GITHUB_SECRET, strlen(GITHUB_SECRET), "", body.data, body.len, d);
    char h[128] = "X-Hub-Signature-256: sha256=";
    to_hex(d, sizeof d, h + strlen(h));
    const char *const headers[] = {h, NULL};
    bu_expect_post_body(&s, "hooks", &body, BATCH_TYPE, headers, 202, NULL);
    assert_int_equal(hs_status_value(&s, "hooks", "messages"), 3);
    /* one byte changed: refused whole, the body back */
    body.data[body.len / 2] ^= 1;
    hs_reply r;
    bu_post_body(&s, "hooks", &body, BATCH_TYPE, headers, &r);
    bool same = r.len == body.len && memcmp(r.body, body.data, r.len) == 0;
    long status = r.status;
    hs_reply_free(&r);
    bu_bytes_free(&body);
    assert_int_equal(status, 401);
    assert_true(same);
    assert_int_equal(hs_status_value(&s, "hooks", "messages"), 3);
    hs_stop_ok(&s);
}

/* HOPPER_VERIFY takes entries separated by blanks, as the flag repeated. */
static void test_environment(void **state)
{
    (void)state;
    char env[1400];
    snprintf(env, sizeof env, "HOPPER_VERIFY=%s \t%s", files.github_rule, files.stripe_rule);
    const char *const envs[] = {env, NULL};
    hs_server s;
    hs_start_env_ok(&s, NULL, envs);
    const char *const headers[] = {"X-Hub-Signature-256: " GITHUB_SIGNATURE, NULL};
    expect_accepted(&s, "hooks", GITHUB_BODY, headers);
    expect_refused(&s, "hooks", "Hello, World?", headers, "github");
    expect_refused(&s, "pay", GITHUB_BODY, headers, "stripe");
    hs_expect_post(&s, "std", "not covered here", 202);
    hs_stop_ok(&s);
}

/* A good signature for a channel that cannot be made (--max-channels):
 * decided after the body, so the body comes back with the 503. */
static void test_channel_refused_after_signature(void **state)
{
    (void)state;
    const char *args[] = {"--verify", files.github_rule, "--max-channels", "1", NULL};
    hs_server s;
    hs_start_ok(&s, args);
    hs_expect_post(&s, "other", "takes the one slot", 202);
    const char *const headers[] = {"X-Hub-Signature-256: " GITHUB_SIGNATURE, NULL};
    hs_reply r;
    post(&s, "hooks", GITHUB_BODY, headers, &r);
    char error[64] = "";
    hs_header(&r, "Hopper-Error", error, sizeof error);
    bool same = r.len == strlen(GITHUB_BODY) && memcmp(r.body, GITHUB_BODY, r.len) == 0;
    long status = r.status;
    hs_reply_free(&r);
    assert_int_equal(status, 503);
    assert_string_equal(error, "too_many_channels");
    assert_true(same);
    hs_stop_ok(&s);
}

/* Run hopper with one --verify value: it must exit 2 saying text. */
static void expect_bad_flag(const char *value, const char *text)
{
    const char *args[] = {"--listen", "127.0.0.1:0", "--data-dir", files.dir,
                          "--verify", value,         NULL};
    int code = -1;
    char *output = NULL;
    assert_int_equal(hs_run(args, NULL, &code, &output), 0);
    bool said = output && strstr(output, text) != NULL;
    if (code != 2 || !said)
        fprintf(stderr, "--verify %s: exit %d, output:\n%s\n", value, code, output ? output : "");
    free(output);
    assert_int_equal(code, 2);
    assert_true(said);
}

static void test_bad_flags(void **state)
{
    (void)state;
    char text[700];
    expect_bad_flag("hooks", "is not NAME=SCHEME:SECRET_FILE");
    expect_bad_flag("hooks=github", "is not NAME=SCHEME:SECRET_FILE");
    expect_bad_flag("ho/oks=github:x", "neither a channel name nor a prefix");
    snprintf(text, sizeof text, "hooks=gitlab:%s", files.github);
    expect_bad_flag(text, "unknown SCHEME");
    expect_bad_flag("hooks=github:/nonexistent/secret", "cannot read /nonexistent/secret");
    snprintf(text, sizeof text, "hooks=github:%s", files.empty);
    expect_bad_flag(text, "holds no secret");
    snprintf(text, sizeof text, "hooks=github:%s", files.dir);
    expect_bad_flag(text, "cannot be read");
}

/* /status lists the rules (never a secret). */
static void test_status_lists_rules(void **state)
{
    (void)state;
    hs_server s;
    start(&s);
    hs_reply r;
    assert_int_equal(hs_get(&s, "/status", &r), 0);
    bool listed = strstr((char *)r.body, "\"scheme\": \"standard-webhooks\"") &&
                  strstr((char *)r.body, "\"name\": \"gh*\"") &&
                  strstr((char *)r.body, "\"secrets\": 2") &&
                  !strstr((char *)r.body, "Everybody") && !strstr((char *)r.body, "whsec_");
    if (!listed)
        fprintf(stderr, "%s\n", (char *)r.body);
    hs_reply_free(&r);
    assert_true(listed);
    hs_stop_ok(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_github_example),
        cmocka_unit_test(test_signed_channel_needs_no_token),
        cmocka_unit_test(test_github_changed_body),
        cmocka_unit_test(test_missing_and_malformed),
        cmocka_unit_test(test_stripe),
        cmocka_unit_test(test_standard_webhooks),
        cmocka_unit_test(test_prefix_and_uncovered),
        cmocka_unit_test(test_batch_signed),
        cmocka_unit_test(test_environment),
        cmocka_unit_test(test_channel_refused_after_signature),
        cmocka_unit_test(test_bad_flags),
        cmocka_unit_test(test_status_lists_rules),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
