/* test_forward.c - --forward against the real binary, what a forwarded
 * request is and where it goes: body, Content-Type and kept headers byte
 * for byte, the Hopper-* headers, a body of 1 MB; a GET on a forwarded
 * channel is 409; prefix rules never take a .dead channel; rules from
 * HOPPER_FORWARD; --forward-concurrency; the Standard Webhooks
 * signature, checked here with nettle's HMAC-SHA256; the forward object
 * of /status and the forwarding samples of /metrics. Retries, backoff
 * and dead letters: test_forward_retry.c; stops and crashes:
 * test_forward_restart.c.
 *
 * Each test has its own receiver (receiver.c), started by the fixture. */
#include "harness.h"
#include "test_forward_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#ifdef HAVE_NETTLE
#include <nettle/base64.h>
#include <nettle/hmac.h>
#endif
#include <stdint.h>

/* Retries quick enough for a test, an attempt that gives up after 1 s. */
#define QUICK_RETRY                                                                                \
    "--forward-retry-min", "0.05", "--forward-retry-max", "0.5", "--forward-timeout", "1"

/* Shapes of real signature headers (GitHub, Stripe), which a receiver must
 * get unchanged. */
#define GITHUB_SIGNATURE "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
#define STRIPE_SIGNATURE                                                                           \
    "t=1492774577,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd,"            \
    "v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39"

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Seconds since the epoch of an RFC 3339 UTC time with milliseconds,
 * exactly "YYYY-MM-DDTHH:MM:SS.mmmZ"; -1 if text is not one. */
static double rfc3339_ms(const char *text)
{
    const char *shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    if (text == NULL || strlen(text) != strlen(shape))
        return -1;
    for (size_t i = 0; shape[i]; i++) {
        bool digit = text[i] >= '0' && text[i] <= '9';
        if (shape[i] == 'd' ? !digit : text[i] != shape[i])
            return -1;
    }
    struct tm tm = {0};
    int ms;
    sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d.%3d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
           &tm.tm_min, &tm.tm_sec, &ms);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (double)timegm(&tm) + ms / 1000.0;
}

/* ---- what a forwarded request is ---- */

/* The values of every header of req named name, in order, joined by "|". */
static void joined_values(const rc_request *req, const char *name, char *out, size_t size)
{
    out[0] = '\0';
    for (size_t i = 0; i < req->header_count; i++) {
        if (strcasecmp(req->headers[i].name, name) == 0) {
            size_t used = strlen(out);
            snprintf(out + used, size - used, "%s%s", used ? "|" : "", req->headers[i].value);
        }
    }
}

static void test_forward_sends_body_type_and_kept_headers(void **state)
{
    rc_receiver *r = *state;
    char rule[RULE_SIZE];
    fw_rule(r, "hooks", "/in/hooks?k=v", rule, sizeof rule);
    hs_server s;
    const char *args[] = {"--forward",      rule,
                          "--keep-headers", "X-Hub-Signature-256,Stripe-Signature,X-Hook-*",
                          QUICK_RETRY,      NULL};
    hs_start_ok(&s, args);
    unsigned char body[1500];
    for (size_t i = 0; i < sizeof body; i++)
        body[i] = (unsigned char)(i * 53 + 7); /* zeros and high bytes among them */
    const char *type = "application/x-poison; v=1; charset=\"odd value\"";
    const char *headers[] = {"X-Hub-Signature-256: " GITHUB_SIGNATURE,
                             "Stripe-Signature: " STRIPE_SIGNATURE,
                             "X-Hook-Seq: 1",
                             "X-Unlisted: must not travel",
                             "X-Hook-Seq: 2",
                             NULL};
    double before = wall_now();
    hs_reply reply;
    assert_int_equal(
        hs_post_headers(&s, "/channels/hooks", body, sizeof body, type, headers, &reply), 0);
    double after = wall_now();
    assert_int_equal(reply.status, 202);
    hs_reply_free(&reply);
    hs_expect_post_bytes(&s, "hooks", "{\"n\":2}", 7, "application/json", 202);

    assert_true(rc_wait_requests(r, 2, HS_PATIENCE_MS));
    const rc_request *req = rc_request_at(r, 0);
    assert_string_equal(req->method, "POST");
    assert_string_equal(req->path, "/in/hooks");
    assert_int_equal(req->body_len, sizeof body);
    assert_memory_equal(req->body, body, sizeof body);
    char values[2048];
    joined_values(req, "Content-Type", values, sizeof values);
    assert_string_equal(values, type);
    joined_values(req, "X-Hub-Signature-256", values, sizeof values);
    assert_string_equal(values, GITHUB_SIGNATURE);
    joined_values(req, "Stripe-Signature", values, sizeof values);
    assert_string_equal(values, STRIPE_SIGNATURE);
    joined_values(req, "X-Hook-Seq", values, sizeof values);
    assert_string_equal(values, "1|2"); /* both, in order */
    assert_null(rc_header_value(req, "X-Unlisted"));

    /* hopper's own headers */
    assert_string_equal(rc_header_value(req, "Hopper-Channel"), "hooks");
    assert_true(fw_is_message_id(fw_id(req)));
    assert_int_equal(fw_delivery_count(req), 1);
    double at = rfc3339_ms(rc_header_value(req, "Hopper-Received-At"));
    if (at < before - 1 || at > after + 1)
        fail_msg("Hopper-Received-At '%s' is not an RFC 3339 UTC time with ms near the POST",
                 rc_header_value(req, "Hopper-Received-At"));
    const rc_request *second = fw_expect_delivery(r, 1, "hooks", "{\"n\":2}", 1);
    joined_values(second, "Content-Type", values, sizeof values);
    assert_string_equal(values, "application/json");
    assert_string_not_equal(fw_id(second), fw_id(req));
    /* consumed: the receiver said 200 */
    hs_await_status_ok(&s, "hooks", "messages", 0);
    assert_int_equal(rc_count(r), 2);
    hs_stop_ok(&s);
}

/* The most kept headers a message can have (long values, one empty) go
 * whole; the next message on the same connection, with none, carries none
 * of them: the header lines of one attempt are not left for the next. No
 * "Expect" goes with either. */
static void test_forward_many_headers_then_none(void **state)
{
    rc_receiver *r = *state;
    char rule[RULE_SIZE];
    fw_rule(r, "many", "/", rule, sizeof rule);
    hs_server s;
    const char *args[] = {"--forward", rule, "--keep-headers", "X-Many-*", QUICK_RETRY, NULL};
    hs_start_ok(&s, args);
    /* hopper keeps 64 headers at most (ENVELOPE_MAX_HEADERS), Content-Type one */
    enum { N = 63, VALUE = 150 };
    char lines[N][16 + VALUE + 1];
    const char *headers[N + 1];
    for (int i = 0; i < N; i++) {
        if (i == N - 1) {
            snprintf(lines[i], sizeof lines[i], "X-Many-Empty;"); /* curl: empty value */
        } else {
            int n = snprintf(lines[i], sizeof lines[i], "X-Many-%02d: ", i);
            memset(lines[i] + n, 'a' + i % 26, VALUE);
            lines[i][n + VALUE] = '\0';
        }
        headers[i] = lines[i];
    }
    headers[N] = NULL;
    hs_reply reply;
    assert_int_equal(hs_post_headers(&s, "/channels/many", "one", 3, "text/plain", headers, &reply),
                     0);
    assert_int_equal(reply.status, 202);
    hs_reply_free(&reply);
    hs_expect_post(&s, "many", "two", 202);

    const rc_request *first = fw_expect_delivery(r, 0, "many", "one", 1);
    for (int i = 0; i < N - 1; i++) {
        char name[16];
        snprintf(name, sizeof name, "X-Many-%02d", i);
        const char *value = rc_header_value(first, name);
        assert_non_null(value);
        assert_int_equal(strlen(value), VALUE);
        assert_int_equal(strspn(value, (char[]){(char)('a' + i % 26), '\0'}), VALUE);
    }
    assert_string_equal(rc_header_value(first, "X-Many-Empty"), "");
    assert_string_equal(rc_header_value(first, "Content-Type"), "text/plain");
    assert_null(rc_header_value(first, "Expect"));

    const rc_request *second = fw_expect_delivery(r, 1, "many", "two", 1);
    for (size_t i = 0; i < second->header_count; i++)
        if (strncasecmp(second->headers[i].name, "X-Many-", 7) == 0)
            fail_msg("the second message carries %s", second->headers[i].name);
    assert_null(rc_header_value(second, "Expect"));
    assert_string_not_equal(fw_id(second), fw_id(first));
    hs_stop_ok(&s);
}

/* A body near --max-message-bytes (1 MiB) arrives whole. */
static void test_forward_large_body(void **state)
{
    rc_receiver *r = *state;
    char rule[RULE_SIZE];
    fw_rule(r, "big", "/", rule, sizeof rule);
    hs_server s;
    const char *args[] = {"--forward", rule, QUICK_RETRY, NULL};
    hs_start_ok(&s, args);
    enum { LEN = 1000000 };
    unsigned char *body = malloc(LEN);
    assert_non_null(body);
    for (size_t i = 0; i < LEN; i++)
        body[i] = (unsigned char)(i * 131 + i / 977);
    hs_expect_post_bytes(&s, "big", body, LEN, "application/octet-stream", 202);
    assert_true(rc_wait_answered(r, 1, HS_PATIENCE_MS));
    const rc_request *req = rc_request_at(r, 0);
    bool same = req->body_len == LEN && memcmp(req->body, body, LEN) == 0;
    free(body);
    if (!same)
        fail_msg("a body of %d bytes arrived as %zu bytes, or changed", LEN, req->body_len);
    assert_int_equal(req->status, 200);
    hs_await_status_ok(&s, "big", "messages", 0);
    hs_stop_ok(&s);
}

/* ---- where requests go ---- */

static void test_get_on_forwarded_channel_is_409(void **state)
{
    rc_receiver *r = *state;
    rc_set_default(r, &(rc_answer){.status = 500}); /* messages stay in hooks */
    char rule[RULE_SIZE];
    fw_rule(r, "hooks", "/", rule, sizeof rule);
    hs_server s;
    const char *args[] = {"--forward", rule, QUICK_RETRY, NULL};
    hs_start_ok(&s, args);
    hs_expect_error(&s, "GET", "/channels/hooks?wait=0", 409, "forwarded");
    hs_expect_post(&s, "hooks", "kept", 202);
    assert_true(rc_wait_requests(r, 1, HS_PATIENCE_MS));
    hs_expect_error(&s, "GET", "/channels/hooks?wait=0", 409, "forwarded");
    hs_expect_error(&s, "GET", "/channels/hooks?wait=0&lease=30", 409, "forwarded");
    /* its .dead channel, and channels without a rule, are read as usual */
    hs_expect_nothing(&s, "hooks.dead", "0", NULL);
    hs_expect_post(&s, "other", "mine", 202);
    hs_expect_get(&s, "other", "0", "mine");
    hs_stop_ok(&s);
}

/* hooks.* takes hooks.a and hooks.b, but never hooks.a.dead: what is
 * posted there stays to be read. */
static void test_prefix_rule_skips_dead_channels(void **state)
{
    rc_receiver *r = *state;
    char rule[RULE_SIZE];
    fw_rule(r, "hooks.*", "/p", rule, sizeof rule);
    hs_server s;
    const char *args[] = {"--forward", rule, QUICK_RETRY, NULL};
    hs_start_ok(&s, args);
    hs_expect_post(&s, "hooks.a.dead", "parked", 202);
    hs_expect_post(&s, "hooks.a", "for a", 202);
    hs_expect_post(&s, "other", "not forwarded", 202);
    hs_expect_post(&s, "hooks.b", "for b", 202);
    fw_expect_delivery(r, 0, "hooks.a", "for a", 1);
    fw_expect_delivery(r, 1, "hooks.b", "for b", 1);
    hs_expect_get(&s, "hooks.a.dead", "0", "parked");
    hs_expect_get(&s, "other", "0", "not forwarded");
    hs_expect_error(&s, "GET", "/channels/hooks.b?wait=0", 409, "forwarded");
    assert_int_equal(rc_count(r), 2);
    hs_stop_ok(&s);
}

/* HOPPER_FORWARD holds several rules, separated by any whitespace. */
static void test_rules_from_the_environment(void **state)
{
    rc_receiver *r = *state;
    char a[RULE_SIZE], b[RULE_SIZE], env[2 * RULE_SIZE + 64];
    fw_rule(r, "a", "/to-a", a, sizeof a);
    fw_rule(r, "b", "/to-b", b, sizeof b);
    snprintf(env, sizeof env, "HOPPER_FORWARD=  %s \t\n %s ", a, b);
    const char *environment[] = {env, NULL};
    const char *args[] = {QUICK_RETRY, NULL};
    hs_server s;
    hs_start_env_ok(&s, args, environment);
    hs_expect_post(&s, "a", "one", 202);
    assert_string_equal(fw_expect_delivery(r, 0, "a", "one", 1)->path, "/to-a");
    hs_expect_post(&s, "b", "two", 202);
    assert_string_equal(fw_expect_delivery(r, 1, "b", "two", 1)->path, "/to-b");
    hs_stop_ok(&s);
}

/* --forward-concurrency 4: four requests in flight at once, never more,
 * and every message delivered once. */
static void test_concurrency_four(void **state)
{
    rc_receiver *r = *state;
    rc_set_default(r, &(rc_answer){.status = 204, .hang_ms = 400});
    char rule[RULE_SIZE];
    fw_rule(r, "many", "/", rule, sizeof rule);
    hs_server s;
    const char *args[] = {"--forward", rule, "--forward-concurrency", "4", QUICK_RETRY, NULL};
    hs_start_ok(&s, args);
    enum { N = 10 };
    for (int i = 0; i < N; i++) {
        char text[16];
        snprintf(text, sizeof text, "m%d", i);
        hs_expect_post(&s, "many", text, 202);
    }
    assert_true(rc_wait_answered(r, N, HS_PATIENCE_MS));
    hs_await_status_ok(&s, "many", "messages", 0);
    assert_int_equal(rc_count(r), N);
    assert_int_equal(rc_max_in_flight(r), 4);
    bool seen[N] = {false};
    for (size_t i = 0; i < N; i++) {
        const rc_request *req = rc_request_at(r, i);
        int k = atoi((const char *)req->body + 1);
        assert_true(k >= 0 && k < N && !seen[k]);
        seen[k] = true;
        assert_int_equal(fw_delivery_count(req), 1);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(fw_id(req), fw_id(rc_request_at(r, j)));
    }
    hs_stop_ok(&s);
}

/* ---- signing ---- */

#ifdef HAVE_NETTLE
/* The Standard Webhooks signature, computed here as the specification
 * says (https://www.standardwebhooks.com): "v1," and the base64 of
 * HMAC-SHA256(key, "<id>.<timestamp>.<body>"). OUT: out. */
static void webhook_signature(const uint8_t *key, size_t key_len, const char *id,
                              const char *timestamp, const void *body, size_t len, char out[64])
{
    struct hmac_sha256_ctx ctx;
    hmac_sha256_set_key(&ctx, key_len, key);
    hmac_sha256_update(&ctx, strlen(id), (const uint8_t *)id);
    hmac_sha256_update(&ctx, 1, (const uint8_t *)".");
    hmac_sha256_update(&ctx, strlen(timestamp), (const uint8_t *)timestamp);
    hmac_sha256_update(&ctx, 1, (const uint8_t *)".");
    hmac_sha256_update(&ctx, len, body);
    uint8_t digest[SHA256_DIGEST_SIZE];
    hmac_sha256_digest(&ctx, sizeof digest, digest);
    memcpy(out, "v1,", 3);
    base64_encode_raw(out + 3, sizeof digest, digest);
    out[3 + BASE64_ENCODE_RAW_LENGTH(sizeof digest)] = '\0';
}

/* The key of a Standard Webhooks secret "whsec_<base64>". OUT: key.
 * Returns its length. */
static size_t secret_key(const char *secret, uint8_t key[128])
{
    assert_memory_equal(secret, "whsec_", 6);
    struct base64_decode_ctx ctx;
    base64_decode_init(&ctx);
    size_t n = 128;
    assert_true(base64_decode_update(&ctx, &n, key, strlen(secret + 6), secret + 6));
    assert_true(base64_decode_final(&ctx));
    return n;
}

/* True if the webhook-signature value header (signatures separated by
 * spaces) holds the one of key for req. */
static bool signed_with(const rc_request *req, const uint8_t *key, size_t key_len)
{
    const char *id = rc_header_value(req, "webhook-id");
    const char *timestamp = rc_header_value(req, "webhook-timestamp");
    const char *header = rc_header_value(req, "webhook-signature");
    if (id == NULL || timestamp == NULL || header == NULL)
        return false;
    char expected[64];
    webhook_signature(key, key_len, id, timestamp, req->body, req->body_len, expected);
    size_t n = strlen(expected);
    for (const char *at = header; (at = strstr(at, expected)) != NULL; at += n) {
        if ((at == header || at[-1] == ' ') && (at[n] == '\0' || at[n] == ' '))
            return true;
    }
    return false;
}

/* The test's own signing against the example of the Standard Webhooks
 * repository, so that a disagreement with hopper is hopper's. */
static void expect_reference_example(void)
{
    uint8_t key[128];
    size_t key_len = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", key);
    const char *body = "{\"test\": 2432232314}";
    char got[64];
    webhook_signature(key, key_len, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body,
                      strlen(body), got);
    assert_string_equal(got, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

/* Run hopper with --forward-secret <file holding secret>; one message is
 * refused once (500) and then taken: both attempts must be signed with
 * key, under the same webhook-id, with a timestamp of now. */
static void expect_signed_deliveries(rc_receiver *r, const char *secret, const uint8_t *key,
                                     size_t key_len)
{
    char dir[256], path[300], rule[RULE_SIZE];
    assert_int_equal(hs_make_dir(dir, sizeof dir), 0);
    snprintf(path, sizeof path, "%s/secret", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(secret, f);
    fclose(f);
    size_t first = rc_count(r);
    rc_push_status(r, 500, 1);
    fw_rule(r, "signed", "/", rule, sizeof rule);
    hs_server s;
    const char *args[] = {"--forward", rule, "--forward-secret", path, QUICK_RETRY, NULL};
    hs_start_ok(&s, args);
    const char *body = "{\"event\":\"invoice.paid\",\"amount\":4200}";
    hs_expect_post_bytes(&s, "signed", body, strlen(body), "application/json", 202);
    fw_expect_delivery(r, first, "signed", body, 1);
    fw_expect_delivery(r, first + 1, "signed", body, 2);
    hs_await_status_ok(&s, "signed", "messages", 0);
    hs_stop_ok(&s);
    hs_remove_tree(dir);
    for (size_t i = first; i < first + 2; i++) {
        const rc_request *req = rc_request_at(r, i);
        if (!signed_with(req, key, key_len))
            fail_msg(
                "attempt %zu: webhook-signature '%s' does not verify (id '%s', timestamp '%s')",
                i - first + 1, rc_header_value(req, "webhook-signature"),
                rc_header_value(req, "webhook-id"), rc_header_value(req, "webhook-timestamp"));
        long long stamp = atoll(rc_header_value(req, "webhook-timestamp"));
        assert_true(llabs(stamp - (long long)time(NULL)) < 60);
        /* a signature that verifies with any key would prove nothing */
        uint8_t other[128];
        memcpy(other, key, key_len);
        other[0] ^= 1;
        assert_false(signed_with(req, other, key_len));
    }
    assert_string_equal(rc_header_value(rc_request_at(r, first), "webhook-id"),
                        rc_header_value(rc_request_at(r, first + 1), "webhook-id"));
}

static void test_signature_standard_webhooks(void **state)
{
    rc_receiver *r = *state;
    expect_reference_example();
    /* a key file of plain bytes is the key itself */
    const char *plain = "hopper test key: not base64!";
    expect_signed_deliveries(r, plain, (const uint8_t *)plain, strlen(plain));
    /* whsec_<base64> is decoded; its trailing newline is not part of it */
    const char *secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    char with_newline[64];
    snprintf(with_newline, sizeof with_newline, "%s\n", secret);
    uint8_t key[128];
    size_t key_len = secret_key(secret, key);
    expect_signed_deliveries(r, with_newline, key, key_len);
    assert_false(signed_with(rc_request_at(r, 2), (const uint8_t *)secret, strlen(secret)));
}
#else
static void test_signature_standard_webhooks(void **state)
{
    (void)state;
    fprintf(stderr, "nettle (nettle-dev) is not installed: the signature is not checked\n");
    skip();
}
#endif

/* ---- seen from outside ---- */

/* The target of /status is the URL without its user:password. */
static void expect_target(const hs_server *s, const rc_receiver *r)
{
    char target[512], expected[512];
    assert_true(fw_forward_string(s, "hooks", "target", target, sizeof target));
    snprintf(expected, sizeof expected, "%s/in", rc_url(r));
    assert_string_equal(target, expected);
}

static void test_status_and_metrics(void **state)
{
    rc_receiver *r = *state;
    char rule[RULE_SIZE], state_text[64];
    snprintf(rule, sizeof rule, "hooks=http://someone:secretpw@127.0.0.1:%d/in", rc_port(r));
    hs_server s;
    /* a long backoff: the failure below is still waited out when looked at */
    const char *args[] = {"--forward", rule, "--forward-retry-min", "3", "--forward-retry-max",
                          "3",         NULL};
    hs_start_ok(&s, args);
    const char *ok = "outcome=\"ok\"", *retry = "outcome=\"retry\"", *dead = "outcome=\"dead\"";
    const char *channel = "channel=\"hooks\"";

    /* a success */
    hs_expect_post(&s, "hooks", "taken", 202);
    assert_true(rc_wait_answered(r, 1, HS_PATIENCE_MS));
    assert_true(fw_await_forward_number(&s, "hooks", "attempts_total", 1, HS_PATIENCE_MS) == 1);
    expect_target(&s, r);
    assert_true(fw_forward_string(&s, "hooks", "state", state_text, sizeof state_text));
    assert_string_equal(state_text, "ok");
    assert_true(fw_forward_number(&s, "hooks", "last_status") == 200);
    assert_true(fw_forward_number(&s, "hooks", "consecutive_failures") == 0);
    assert_true(fw_metric(&s, "hopper_forward_attempts_total", channel, ok) == 1);

    /* a refusal: dead at once */
    rc_push_status(r, 400, 1);
    hs_expect_post(&s, "hooks", "refused", 202);
    hs_await_status_ok(&s, "hooks.dead", "messages", 1);
    assert_true(fw_await_forward_number(&s, "hooks", "attempts_total", 2, HS_PATIENCE_MS) == 2);
    assert_true(fw_metric(&s, "hopper_forward_attempts_total", channel, dead) == 1);

    /* a failure to retry, in its backoff (the refusal above was a failure
     * too: whether it counts among the consecutive ones is hopper's call) */
    rc_push_status(r, 500, 1);
    hs_expect_post(&s, "hooks", "retried", 202);
    assert_true(fw_await_forward_number(&s, "hooks", "attempts_total", 3, HS_PATIENCE_MS) == 3);
    assert_true(fw_forward_string(&s, "hooks", "state", state_text, sizeof state_text));
    if (strcmp(state_text, "retrying") != 0 && strcmp(state_text, "failing") != 0)
        fail_msg("state '%s' while a message waits out its backoff", state_text);
    assert_true(fw_forward_number(&s, "hooks", "last_status") == 500);
    double failures = fw_forward_number(&s, "hooks", "consecutive_failures");
    if (failures != 1 && failures != 2)
        fail_msg("consecutive_failures %g after a refusal and a failure", failures);
    double next = fw_forward_number(&s, "hooks", "next_attempt_seconds");
    if (!(next > 0 && next <= 3.0))
        fail_msg("next_attempt_seconds %g during a backoff of 3 s", next);
    assert_true(fw_metric(&s, "hopper_forward_attempts_total", channel, retry) == 1);
    assert_true(fw_metric(&s, "hopper_forward_attempts_total", channel, ok) == 1);
    double count = fw_metric(&s, "hopper_forward_duration_seconds_count", channel, NULL);
    assert_true(count == 3);
    assert_true(fw_metric(&s, "hopper_forward_duration_seconds_bucket", channel, "le=\"+Inf\"") ==
                count);
    assert_true(fw_metric(&s, "hopper_forward_duration_seconds_sum", channel, NULL) >= 0);
    /* the password shows nowhere */
    hs_reply status;
    assert_int_equal(hs_get(&s, "/status", &status), 0);
    assert_null(strstr((const char *)status.body, "secretpw"));
    hs_reply_free(&status);
    assert_false(hs_log_wait(&s, "secretpw", 0));
    hs_stop_ok(&s);
}

int main(void)
{
#define T(test) cmocka_unit_test_setup_teardown(test, rc_setup, rc_teardown)
    const struct CMUnitTest tests[] = {
        T(test_forward_sends_body_type_and_kept_headers),
        T(test_forward_many_headers_then_none),
        T(test_forward_large_body),
        T(test_get_on_forwarded_channel_is_409),
        T(test_prefix_rule_skips_dead_channels),
        T(test_rules_from_the_environment),
        T(test_concurrency_four),
        T(test_signature_standard_webhooks),
        T(test_status_and_metrics),
    };
#undef T
    const char *filter = getenv("HOPPER_TEST_FILTER"); /* e.g. "*signature*" */
    if (filter)
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
