/* test_leases.c - GET ?lease=L against the real binary: a leased message is
 * handed out with a receipt and a delivery count and hidden until its lease
 * ends; DELETE on the receipt consumes it for good (across a restart too,
 * from memory and from a queue file); unknown, foreign, ended and derivable
 * receipts; bad ?lease= values; the paths and methods of receipts; leased
 * messages counted against --memory-bytes; leases given back by a clean
 * restart and by a client that went away.
 *
 * How leases end by themselves, extend and release are in
 * test_lease_expiry.c, dead letters in test_dead_letters.c, a random
 * sequence of all of it against a model in test_lease_model.c. In each,
 * HOPPER_TEST_FILTER="*order*" runs the tests whose names match.
 *
 * Tests that restart the server have their own data directory (a fixture).
 * No test sleeps to let the server catch up: a lease that must end is
 * waited for by a GET ?wait= that returns as the message reappears, or by
 * polling /status; a lease that must NOT end is long (60 s) next to the
 * wait that shows it did not. */
#include "harness.h"

#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

/* A lease that must not end while a test looks. */
#define LONG_LEASE "60"

/* ---- handing out ---- */

static void test_lease_hands_out_a_receipt_and_hides_the_message(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    hs_expect_post(&s, "work", "job-1", 202);
    char r1[HS_RECEIPT_LEN + 1];
    hs_expect_leased(&s, "work", "5", LONG_LEASE, "job-1", "text/plain", 1, r1);
    /* invisible to others while leased, leased or not */
    hs_expect_nothing(&s, "work", "0", NULL);
    hs_expect_nothing(&s, "work", "0", LONG_LEASE);
    assert_int_equal(hs_status_value(&s, "work", "leased"), 1);
    assert_true(hs_status_value(&s, "work", "leased_bytes") > 0);
    assert_int_equal(hs_status_value(&s, "work", "messages"), 0);
    assert_int_equal(hs_metric_value(&s, "hopper_channel_leased_messages", "work"), 1);

    /* a second lease has a receipt of its own */
    hs_expect_post(&s, "work", "job-2", 202);
    char r2[HS_RECEIPT_LEN + 1];
    hs_expect_leased(&s, "work", "0", LONG_LEASE, "job-2", "text/plain", 1, r2);
    assert_string_not_equal(r1, r2);
    assert_int_equal(hs_status_value(&s, "work", "leased"), 2);

    /* without ?lease= a GET is what it was: consumed at once, no receipt */
    hs_expect_post(&s, "work", "job-3", 202);
    hs_reply r;
    assert_int_equal(hs_get_leased(&s, "work", "0", NULL, &r), 200);
    assert_string_equal((char *)r.body, "job-3");
    char v[64];
    assert_false(hs_header(&r, "Hopper-Receipt", v, sizeof v));
    assert_int_equal(hs_delivery_count(&r), 1);
    hs_reply_free(&r);
    assert_int_equal(hs_status_value(&s, "work", "leased"), 2);

    hs_expect_ack(&s, "work", r1, 204, NULL);
    hs_expect_ack(&s, "work", r2, 204, NULL);
    assert_int_equal(hs_status_value(&s, "work", "leased"), 0);
    assert_int_equal(hs_status_value(&s, "work", "leased_bytes"), 0);
    hs_expect_nothing(&s, "work", "0", NULL);
    hs_stop_ok(&s);
}

/* A leased GET that waits gets the message as it is posted, leased. */
static void test_waiting_lease_gets_a_new_message(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    /* a leased GET waits like any other: nothing there, 204 after the wait */
    hs_expect_nothing(&s, "later", "0.2", LONG_LEASE);
    assert_int_equal(hs_status_value(&s, "later", "leased"), 0);
    int fd = hs_connect(&s);
    assert_true(fd >= 0);
    const char *req =
        "GET /channels/later?wait=25&lease=" LONG_LEASE " HTTP/1.1\r\nHost: t\r\n\r\n";
    assert_int_equal(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    hs_await_status_ok(&s, "later", "waiting_receivers", 1);
    hs_expect_post(&s, "later", "arrived", 202);
    char buf[4096];
    const char *body = "";
    assert_int_equal(hs_read_response(fd, buf, sizeof buf, HS_PATIENCE_MS, &body), 200);
    assert_string_equal(body, "arrived");
    const char *h = strstr(buf, "Hopper-Receipt: ");
    assert_non_null(h);
    char receipt[HS_RECEIPT_LEN + 1];
    snprintf(receipt, sizeof receipt, "%s", h + strlen("Hopper-Receipt: "));
    assert_true(hs_is_receipt(receipt));
    assert_non_null(strstr(buf, "Hopper-Delivery-Count: 1\r\n"));
    close(fd);
    hs_await_status_ok(&s, "later", "leased", 1);
    hs_expect_nothing(&s, "later", "0", NULL);
    hs_expect_ack(&s, "later", receipt, 204, NULL);
    assert_int_equal(hs_status_value(&s, "later", "leased"), 0);
    hs_stop_ok(&s);
}

/* ---- acknowledgement ---- */

/* Post a and b, lease a and acknowledge it: a never comes back, not even
 * after a clean restart; b does, once. */
static void ack_survives_restart(const char *dir, const char *const *args)
{
    hs_server s;
    hs_start_in_ok(&s, dir, args);
    hs_expect_post(&s, "acked", "a", 202);
    hs_expect_post(&s, "acked", "b", 202);
    char receipt[HS_RECEIPT_LEN + 1];
    hs_expect_leased(&s, "acked", "0", LONG_LEASE, "a", "text/plain", 1, receipt);
    hs_expect_ack(&s, "acked", receipt, 204, NULL);
    hs_expect_ack(&s, "acked", receipt, 410, "lease_ended"); /* once only */
    hs_expect_release(&s, "acked", receipt, 410, "lease_ended");
    hs_expect_extend(&s, "acked", receipt, LONG_LEASE, 410, "lease_ended");
    assert_int_equal(hs_status_value(&s, "acked", "leased"), 0);
    assert_int_equal(hs_status_value(&s, "acked", "leased_bytes"), 0);
    assert_int_equal(hs_status_value(&s, "acked", "messages"), 1);
    hs_stop_ok(&s);

    hs_start_in_ok(&s, dir, args);
    hs_expect_ack(&s, "acked", receipt, 404, "unknown_receipt"); /* a new server never saw it */
    hs_expect_leased(&s, "acked", "0", LONG_LEASE, "b", "text/plain", 1, receipt);
    hs_expect_ack(&s, "acked", receipt, 204, NULL);
    hs_expect_nothing(&s, "acked", "0", NULL);
    hs_stop_ok(&s);

    hs_start_in_ok(&s, dir, args);
    hs_expect_nothing(&s, "acked", "0", NULL);
    assert_int_equal(hs_status_value(&s, "acked", "messages"), 0);
    hs_stop_ok(&s);
}

/* Arguments that put every message in a queue file. */
static const char *const FROM_DISK[] = {"--memory-bytes", "0", NULL};

static void test_ack_consumes_for_good(void **state)
{
    ack_survives_restart(*state, NULL);
}

/* The same with every message in a queue file: the acknowledgement must
 * mark the record consumed on disk. */
static void test_ack_of_a_message_from_disk_consumes_for_good(void **state)
{
    ack_survives_restart(*state, FROM_DISK);
}

static void test_unknown_and_foreign_receipts(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    hs_expect_post(&s, "mine", "held", 202);
    hs_expect_post(&s, "other", "x", 202);
    char receipt[HS_RECEIPT_LEN + 1];
    hs_expect_leased(&s, "mine", "0", LONG_LEASE, "held", NULL, 1, receipt);

    const char *made_up = "0123456789abcdef0123456789abcdef";
    hs_expect_ack(&s, "mine", made_up, 404, "unknown_receipt");
    hs_expect_release(&s, "mine", made_up, 404, "unknown_receipt");
    hs_expect_extend(&s, "mine", made_up, "5", 404, "unknown_receipt");
    /* a receipt is not a prefix, not case-insensitive, not longer */
    char upper[HS_RECEIPT_LEN + 1], longer[HS_RECEIPT_LEN + 2], shorter[HS_RECEIPT_LEN];
    for (size_t i = 0; i <= HS_RECEIPT_LEN; i++)
        upper[i] = (char)toupper((unsigned char)receipt[i]);
    snprintf(longer, sizeof longer, "%s0", receipt);
    memcpy(shorter, receipt, HS_RECEIPT_LEN - 1);
    shorter[HS_RECEIPT_LEN - 1] = '\0';
    if (strcmp(upper, receipt) != 0)
        hs_expect_ack(&s, "mine", upper, 404, "unknown_receipt");
    hs_expect_ack(&s, "mine", longer, 404, "unknown_receipt");
    hs_expect_ack(&s, "mine", shorter, 404, "unknown_receipt");

    /* the receipt is mine's: on another channel it is unknown */
    hs_expect_ack(&s, "other", receipt, 404, "unknown_receipt");
    hs_expect_release(&s, "other", receipt, 404, "unknown_receipt");
    hs_expect_extend(&s, "other", receipt, "5", 404, "unknown_receipt");
    assert_int_equal(hs_status_value(&s, "other", "messages"), 1);
    /* on a channel that does not exist: unknown, and nothing is created */
    hs_expect_ack(&s, "ghost", receipt, 404, "unknown_receipt");
    hs_expect_release(&s, "ghost", receipt, 404, "unknown_receipt");
    hs_expect_extend(&s, "ghost", receipt, "5", 404, "unknown_receipt");
    assert_int_equal(hs_status_value(&s, "ghost", "messages"), -1);

    /* none of that touched the lease */
    assert_int_equal(hs_status_value(&s, "mine", "leased"), 1);
    hs_expect_ack(&s, "mine", receipt, 204, NULL);
    assert_int_equal(hs_status_value(&s, "mine", "messages"), 0);
    hs_stop_ok(&s);
}

/* A receipt names a lease of one channel: on another it is unknown, also
 * once its lease is over (lease.h: API_UNKNOWN_RECEIPT "never granted, or
 * for another channel"). */
static void test_ended_receipt_of_another_channel_is_unknown(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    hs_expect_post(&s, "first", "m", 202);
    hs_expect_post(&s, "second", "n", 202);
    char receipt[HS_RECEIPT_LEN + 1];
    hs_expect_leased(&s, "first", "0", LONG_LEASE, "m", NULL, 1, receipt);
    hs_expect_ack(&s, "first", receipt, 204, NULL);
    hs_expect_ack(&s, "first", receipt, 410, "lease_ended");
    hs_expect_ack(&s, "second", receipt, 404, "unknown_receipt");
    hs_expect_release(&s, "second", receipt, 404, "unknown_receipt");
    hs_expect_extend(&s, "second", receipt, "5", 404, "unknown_receipt");
    assert_int_equal(hs_status_value(&s, "second", "messages"), 1);
    hs_stop_ok(&s);
}

/* lease.h promises receipts "not guessable from the ones seen". A client
 * that has seen two receipts of its own must not be able to work out the
 * receipt of a lease handed to someone else after them. The receipts are
 * two halves of 64 bits, mix(n ^ k0) and mix(mix(n) ^ k1), n a counter
 * and mix() the splitmix64 finaliser: a bijection that is easily inverted,
 * so two receipts give n and both keys away. This test does exactly that;
 * against receipts that are random it predicts nothing. */
static uint64_t splitmix_finaliser(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static uint64_t inverse_mod_2_64(uint64_t a) /* a odd */
{
    uint64_t x = a;
    for (int i = 0; i < 6; i++)
        x *= 2 - a * x;
    return x;
}

static uint64_t splitmix_finaliser_inverse(uint64_t y)
{
    y ^= y >> 31 ^ y >> 62;
    y *= inverse_mod_2_64(0x94D049BB133111EBull);
    y ^= y >> 27 ^ y >> 54;
    y *= inverse_mod_2_64(0xBF58476D1CE4E5B9ull);
    y ^= y >> 30 ^ y >> 60;
    return y - 0x9E3779B97F4A7C15ull;
}

static void halves(const char *receipt, uint64_t *hi, uint64_t *lo)
{
    char part[17];
    memcpy(part, receipt, 16);
    part[16] = '\0';
    *hi = strtoull(part, NULL, 16);
    *lo = strtoull(receipt + 16, NULL, 16);
}

static void test_receipts_cannot_be_derived_from_others(void **state)
{
    (void)state;
    assert_int_equal(splitmix_finaliser_inverse(splitmix_finaliser(12345)), 12345);
    hs_server s;
    hs_start_ok(&s, NULL);
    for (int i = 0; i < 3; i++)
        hs_expect_post(&s, "guess", i < 2 ? "mine" : "theirs", 202);
    char r1[HS_RECEIPT_LEN + 1], r2[HS_RECEIPT_LEN + 1], theirs[HS_RECEIPT_LEN + 1];
    hs_expect_leased(&s, "guess", "0", LONG_LEASE, "mine", NULL, 1, r1);
    hs_expect_leased(&s, "guess", "0", LONG_LEASE, "mine", NULL, 1, r2);
    hs_expect_leased(&s, "guess", "0", LONG_LEASE, "theirs", NULL, 1,
                     theirs); /* another worker's */

    /* from r1 and r2 alone: the counter n of r1, then the keys */
    uint64_t hi1, lo1, hi2, lo2;
    halves(r1, &hi1, &lo1);
    halves(r2, &hi2, &lo2);
    uint64_t x1 = splitmix_finaliser_inverse(hi1), x2 = splitmix_finaliser_inverse(hi2);
    char forged[HS_RECEIPT_LEN + 1] = "";
    for (uint64_t n = 1; n < 1000000 && !forged[0]; n++) {
        if ((x1 ^ n) != (x2 ^ (n + 1)))
            continue;
        uint64_t k0 = x1 ^ n, k1 = splitmix_finaliser_inverse(lo1) ^ splitmix_finaliser(n);
        if (splitmix_finaliser(splitmix_finaliser(n + 1) ^ k1) != lo2)
            continue;
        uint64_t next = n + 2;
        snprintf(forged, sizeof forged, "%016llx%016llx",
                 (unsigned long long)splitmix_finaliser(next ^ k0),
                 (unsigned long long)splitmix_finaliser(splitmix_finaliser(next) ^ k1));
    }
    if (forged[0]) {
        hs_reply r;
        long status = hs_on_receipt(&s, "DELETE", "guess", forged, NULL, &r);
        hs_reply_free(&r);
        if (status != 404)
            fail_msg("the receipt of another worker's lease (%s) was worked out from two "
                     "receipts seen before it, as %s, and DELETE with it answered %ld: their "
                     "message is gone",
                     theirs, forged, status);
    }
    hs_expect_ack(&s, "guess", theirs, 204, NULL);
    hs_expect_ack(&s, "guess", r1, 204, NULL);
    hs_expect_ack(&s, "guess", r2, 204, NULL);
    hs_stop_ok(&s);
}

/* ---- bad ?lease= values ---- */

static const char *const bad_leases[] = {
    "0",  "0.0",  "0.0001", "-1",   "nan", "NaN", "inf", "1e99", "10.001", "11",    "",
    "1s", "0x10", "%205",   "5%20", "+5",  "1e",  "--1", "%00",  "5%005",  "1.5.5", "1e400",
};

static void test_bad_lease_values(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--max-lease", "10", NULL};
    hs_start_ok(&s, args);
    hs_expect_post(&s, "q", "m", 202);
    char receipt[HS_RECEIPT_LEN + 1];
    hs_expect_leased(&s, "q", "0", "10", "m", NULL, 1, receipt); /* --max-lease itself is fine */
    for (size_t i = 0; i < sizeof bad_leases / sizeof bad_leases[0]; i++) {
        char path[200];
        snprintf(path, sizeof path, "/channels/q/messages/%s/extend?lease=%s", receipt,
                 bad_leases[i]);
        hs_expect_error(&s, "POST", path, 400, "bad_lease");
        /* a GET with it takes nothing, and creates no channel */
        hs_expect_post(&s, "p", "untouched", 202);
        snprintf(path, sizeof path, "/channels/p?wait=0&lease=%s", bad_leases[i]);
        hs_expect_error(&s, "GET", path, 400, "bad_lease");
        snprintf(path, sizeof path, "/channels/nowhere?wait=0&lease=%s", bad_leases[i]);
        hs_expect_error(&s, "GET", path, 400, "bad_lease");
        hs_expect_get(&s, "p", "0", "untouched");
    }
    assert_int_equal(hs_status_value(&s, "nowhere", "messages"), -1);
    /* without a value, or without lease at all */
    const char *no_value[] = {"extend?lease", "extend", "extend?time=5"};
    for (size_t i = 0; i < sizeof no_value / sizeof no_value[0]; i++) {
        char path[200];
        snprintf(path, sizeof path, "/channels/q/messages/%s/%s", receipt, no_value[i]);
        hs_expect_error(&s, "POST", path, 400, "bad_lease");
    }
    hs_expect_error(&s, "GET", "/channels/p?wait=0&lease", 400, "bad_lease");
    /* the lease is intact after all the refused extends */
    assert_int_equal(hs_status_value(&s, "q", "leased"), 1);
    hs_expect_extend(&s, "q", receipt, "9.5", 204, NULL);
    hs_expect_ack(&s, "q", receipt, 204, NULL);
    hs_stop_ok(&s);
}

/* ---- paths and methods ---- */

static void expect_path(const hs_server *s, const char *method, const char *path, long status,
                        const char *code, const char *allow)
{
    hs_reply r;
    assert_int_equal(hs_request(s, method, path, NULL, 0, NULL, &r), 0);
    char v[64], why[1024] = "";
    if (!hs_is_error(&r, status, code))
        snprintf(why, sizeof why, "%s %s: expected %ld %s", method, path, status, code);
    else if (allow && (!hs_header(&r, "Allow", v, sizeof v) || strcmp(v, allow) != 0))
        snprintf(why, sizeof why, "%s %s: expected Allow: %s, headers:\n%s", method, path, allow,
                 r.headers);
    hs_reply_free(&r);
    if (why[0])
        fail_msg("%s", why);
}

static void test_receipt_paths_and_methods(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    hs_expect_post(&s, "x", "m", 202);
    char receipt[HS_RECEIPT_LEN + 1];
    hs_expect_leased(&s, "x", "0", LONG_LEASE, "m", NULL, 1, receipt);
    char path[300];
    const char *wrong_for_receipt[] = {"GET", "POST", "PUT", "PATCH"};
    for (size_t i = 0; i < sizeof wrong_for_receipt / sizeof wrong_for_receipt[0]; i++) {
        snprintf(path, sizeof path, "/channels/x/messages/%s", receipt);
        expect_path(&s, wrong_for_receipt[i], path, 405, "method_not_allowed", "DELETE");
    }
    const char *actions[] = {"extend?lease=5", "release"};
    const char *wrong_for_action[] = {"GET", "DELETE", "PUT"};
    for (size_t a = 0; a < 2; a++) {
        for (size_t i = 0; i < sizeof wrong_for_action / sizeof wrong_for_action[0]; i++) {
            snprintf(path, sizeof path, "/channels/x/messages/%s/%s", receipt, actions[a]);
            expect_path(&s, wrong_for_action[i], path, 405, "method_not_allowed", "POST");
        }
    }
    snprintf(path, sizeof path, "/channels/x/messages/%s/renew", receipt);
    expect_path(&s, "POST", path, 404, "not_found", NULL);
    snprintf(path, sizeof path, "/channels/x/messages/%s/extend/", receipt);
    expect_path(&s, "POST", path, 404, "not_found", NULL);
    expect_path(&s, "PUT", "/channels/x", 405, "method_not_allowed", "GET, POST, DELETE");
    expect_path(&s, "GET", "/channels/x/other", 400, "bad_name", NULL);
    expect_path(&s, "DELETE", "/channels/x/other/r", 400, "bad_name", NULL);
    expect_path(&s, "DELETE", "/channels/x/messagesx", 400, "bad_name", NULL);
    expect_path(&s, "DELETE", "/channels/x/messages/", 400, "bad_name", NULL);
    /* a decoded %2F does not make a segment */
    snprintf(path, sizeof path, "/channels/x%%2Fmessages%%2F%s", receipt);
    expect_path(&s, "DELETE", path, 400, "bad_name", NULL);
    expect_path(&s, "GET", path, 400, "bad_name", NULL);
    snprintf(path, sizeof path, "/channels/x/messages%%2F%s", receipt);
    expect_path(&s, "DELETE", path, 400, "bad_name", NULL);
    snprintf(path, sizeof path, "/channels/x/messages/%s%%2Frelease", receipt);
    expect_path(&s, "POST", path, 404, "unknown_receipt", NULL);
    /* none of these touched the lease */
    assert_int_equal(hs_status_value(&s, "x", "leased"), 1);
    /* a percent-encoded channel name is the name */
    snprintf(path, sizeof path, "/channels/%%78/messages/%s", receipt);
    hs_expect_request(&s, "DELETE", path, 204);
    assert_int_equal(hs_status_value(&s, "x", "leased"), 0);
    hs_stop_ok(&s);
}

/* ---- limits ---- */

/* What one message "m" of text/plain costs against --memory-bytes. */
static long long cost_of_one_message(void)
{
    hs_server s;
    hs_start_ok(&s, NULL);
    hs_expect_post(&s, "probe", "m", 202);
    long long cost = hs_status_value(&s, "probe", "memory_bytes");
    hs_stop_ok(&s);
    assert_true(cost > 0);
    return cost;
}

static void test_leased_messages_count_toward_memory(void **state)
{
    (void)state;
    long long cost = cost_of_one_message();
    long long limit = cost + cost / 2; /* one message fits, two do not */
    char limit_text[32];
    snprintf(limit_text, sizeof limit_text, "%lld", limit);
    const char *args[] = {"--memory-bytes", limit_text, NULL};
    hs_server s;
    hs_start_ok(&s, args);
    /* one message alone goes to memory */
    hs_expect_post(&s, "mem", "m", 202);
    assert_int_equal(hs_status_value(&s, "mem", "memory_bytes"), cost);
    assert_int_equal(hs_status_value(&s, "mem", "disk_files"), 0);
    char receipt[HS_RECEIPT_LEN + 1];
    hs_expect_leased(&s, "mem", "0", LONG_LEASE, "m", NULL, 1, receipt);
    assert_int_equal(hs_status_value(&s, "mem", "memory_bytes"), 0);
    assert_int_equal(hs_status_value(&s, "mem", "leased_bytes"), cost);
    /* leased, it still takes its room: the next one goes to disk */
    hs_expect_post(&s, "mem", "m", 202);
    long long memory = hs_status_value(&s, "mem", "memory_bytes");
    long long leased = hs_status_value(&s, "mem", "leased_bytes");
    assert_int_equal(hs_status_value(&s, "mem", "messages"), 1);
    assert_int_equal(hs_status_value(&s, "mem", "disk_files"), 1);
    assert_true(hs_status_value(&s, "mem", "disk_bytes") > 0);
    assert_int_equal(memory, 0);
    if (memory + leased > limit)
        fail_msg("memory_bytes %lld + leased_bytes %lld > --memory-bytes %lld", memory, leased,
                 limit);
    /* acknowledged, the room is free again (and the disk one comes next) */
    hs_expect_ack(&s, "mem", receipt, 204, NULL);
    assert_int_equal(hs_status_value(&s, "mem", "leased_bytes"), 0);
    hs_expect_leased(&s, "mem", "0", LONG_LEASE, "m", NULL, 1, receipt);
    hs_expect_ack(&s, "mem", receipt, 204, NULL);
    assert_int_equal(hs_status_value(&s, "mem", "messages"), 0);
    hs_stop_ok(&s);

    /* and without the lease the same two both fit in turn: the first was
     * consumed before the second came */
    hs_start_ok(&s, args);
    hs_expect_post(&s, "mem", "m", 202);
    hs_reply r;
    assert_int_equal(hs_get_leased(&s, "mem", "0", NULL, &r), 200);
    hs_reply_free(&r);
    hs_expect_post(&s, "mem", "m", 202);
    assert_int_equal(hs_status_value(&s, "mem", "memory_bytes"), cost);
    assert_int_equal(hs_status_value(&s, "mem", "disk_files"), 0);
    hs_stop_ok(&s);
}

/* The messages a lease holds are in memory whether they were read from
 * memory or from a queue file: what leases hold must stay within
 * --memory-bytes also when the messages come from disk (the server may
 * refuse a lease it has no room for; it must not hold more than the
 * limit, or a few workers leasing a deep backlog hold all of it in RAM). */
static void test_leases_of_disk_messages_stay_within_memory(void **state)
{
    (void)state;
    long long cost = cost_of_one_message();
    long long limit = cost + cost / 2;
    char limit_text[32];
    snprintf(limit_text, sizeof limit_text, "%lld", limit);
    const char *args[] = {"--memory-bytes", limit_text, NULL};
    hs_server s;
    hs_start_ok(&s, args);
    enum { SENT = 4 };
    for (int i = 0; i < SENT; i++)
        hs_expect_post(&s, "mem", "m", 202);
    assert_int_equal(hs_status_value(&s, "mem", "memory_bytes"), cost); /* the rest on disk */
    char receipts[SENT][HS_RECEIPT_LEN + 1];
    int held = 0;
    for (int i = 0; i < SENT; i++) {
        hs_reply r;
        long status = hs_get_leased(&s, "mem", "0", LONG_LEASE, &r);
        if (status == 200) {
            assert_true(hs_header(&r, "Hopper-Receipt", receipts[held], HS_RECEIPT_LEN + 1));
            held++;
        } else if (status != 204 && status < 500) {
            fail_msg("a lease beyond the memory limit: %ld", status);
        }
        hs_reply_free(&r);
    }
    long long leased = hs_status_value(&s, "mem", "leased_bytes");
    assert_true(held >= 1);
    if (leased > limit)
        fail_msg("%d messages leased, %d of them read from a queue file: leased_bytes %lld > "
                 "--memory-bytes %lld",
                 held, held - 1, leased, limit);
    /* nothing lost either way */
    for (int i = 0; i < held; i++)
        hs_expect_ack(&s, "mem", receipts[i], 204, NULL);
    for (int i = held; i < SENT; i++) {
        hs_expect_leased(&s, "mem", "0", LONG_LEASE, "m", NULL, 1, receipts[0]);
        hs_expect_ack(&s, "mem", receipts[0], 204, NULL);
    }
    assert_int_equal(hs_status_value(&s, "mem", "messages"), 0);
    hs_stop_ok(&s);
}

/* ---- restarts ---- */

/* a and b posted, a leased; a clean stop gives a back; the next start
 * hands out a again (count 2) ahead of b, and knows no old receipt. */
static void restart_with_a_lease_out(const char *dir, const char *const *args)
{
    hs_server s;
    hs_start_in_ok(&s, dir, args);
    hs_expect_post_bytes(&s, "out", "a", 1, "application/x-a", 202);
    hs_expect_post(&s, "out", "b", 202);
    char old[HS_RECEIPT_LEN + 1], receipt[HS_RECEIPT_LEN + 1];
    hs_expect_leased(&s, "out", "0", LONG_LEASE, "a", "application/x-a", 1, old);
    assert_int_equal(hs_status_value(&s, "out", "leased"), 1);
    hs_stop_saying(&s, "1 leased message(s) given back to their channels at shutdown");

    hs_start_in_ok(&s, dir, args);
    assert_int_equal(hs_status_value(&s, "out", "messages"), 2);
    assert_int_equal(hs_status_value(&s, "out", "leased"), 0);
    hs_reply rr;
    long status = hs_on_receipt(&s, "DELETE", "out", old, NULL, &rr);
    bool over = status == 404 ? hs_is_error(&rr, 404, "unknown_receipt")
                              : hs_is_error(&rr, 410, "lease_ended");
    hs_reply_free(&rr);
    if (!over)
        fail_msg("the receipt of before the restart: %ld", status);
    hs_expect_leased(&s, "out", "0", LONG_LEASE, "a", "application/x-a", 2, receipt);
    assert_string_not_equal(old, receipt);
    hs_expect_ack(&s, "out", receipt, 204, NULL);
    hs_expect_leased(&s, "out", "0", LONG_LEASE, "b", "text/plain", 1, receipt);
    hs_expect_ack(&s, "out", receipt, 204, NULL);
    hs_expect_nothing(&s, "out", "0", NULL);
    hs_stop_ok(&s);
    hs_start_in_ok(&s, dir, args);
    hs_expect_nothing(&s, "out", "0", NULL);
    hs_stop_ok(&s);
}

/* The same for leases given back by a clean stop: after the restart the
 * messages come in the order they were posted. */
static void test_restart_keeps_the_order_of_leased_messages(void **state)
{
    const char *dir = *state;
    hs_server s;
    hs_start_in_ok(&s, dir, NULL);
    const char *names[] = {"first", "second", "third"};
    for (int i = 0; i < 3; i++)
        hs_expect_post(&s, "order", names[i], 202);
    for (int i = 0; i < 3; i++)
        hs_expect_leased(&s, "order", "0", LONG_LEASE, names[i], NULL, 1, NULL);
    hs_expect_post(&s, "order", "newest", 202);
    hs_stop_saying(&s, "3 leased message(s) given back to their channels at shutdown");
    hs_start_in_ok(&s, dir, NULL);
    /* after a restart with first, second, third leased */
    for (int i = 0; i < 3; i++)
        hs_expect_get(&s, "order", "0", names[i]);
    hs_expect_get(&s, "order", "0", "newest");
    hs_stop_ok(&s);
}

static void test_restart_gives_leases_back(void **state)
{
    restart_with_a_lease_out(*state, NULL);
}

static void test_restart_gives_leases_of_disk_messages_back(void **state)
{
    restart_with_a_lease_out(*state, FROM_DISK);
}

/* ---- clients that go away ---- */

/* A leased GET waits; its client goes; a message then arrives: it is not
 * leased to the dead client, the next GET gets it, first hand-out. */
static void test_gone_waiter_takes_no_lease(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    int fd = hs_connect(&s);
    assert_true(fd >= 0);
    const char *req = "GET /channels/gone?wait=60&lease=" LONG_LEASE " HTTP/1.1\r\nHost: t\r\n\r\n";
    assert_int_equal(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    hs_await_status_ok(&s, "gone", "waiting_receivers", 1);
    int port = hs_local_port(fd);
    assert_true(port > 0);
    close(fd);
    assert_true(hs_await_server_saw_close(&s, &port, 1, HS_PATIENCE_MS));

    hs_expect_post(&s, "gone", "precious", 202);
    /* were it leased to the dead client, this would answer 204 after 20 s */
    char receipt[HS_RECEIPT_LEN + 1];
    hs_expect_leased(&s, "gone", "20", LONG_LEASE, "precious", NULL, 1, receipt);
    assert_int_equal(hs_status_value(&s, "gone", "leased"), 1); /* ours */
    hs_expect_ack(&s, "gone", receipt, 204, NULL);
    assert_int_equal(hs_status_value(&s, "gone", "leased"), 0);
    assert_int_equal(hs_status_value(&s, "gone", "lease_expired_total"), 0);
    hs_stop_ok(&s);
}

/* A leased response that cannot be written to the end (the client resets
 * the connection a few bytes into a body larger than any socket buffer)
 * ends its lease: the message is back at once, intact, not after 60 s. */
static void test_cut_leased_response_gives_the_message_back(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--max-message-bytes", "16MiB", NULL};
    hs_start_ok(&s, args);
    size_t len = 8u << 20;
    unsigned char *big = malloc(len);
    assert_non_null(big);
    for (size_t i = 0; i < len; i++)
        big[i] = (unsigned char)(i * 7 + i / 4096);
    hs_expect_post_bytes(&s, "big", big, len, "application/x-big", 202);
    hs_expect_post(&s, "big", "after", 202);

    /* the answer has begun, and cannot have been written whole */
    int status = 0;
    int fd = hs_get_stalled(&s, "/channels/big?wait=0&lease=" LONG_LEASE, &status);
    assert_true(fd >= 0);
    assert_int_equal(status, 200);
    hs_reset(fd);

    /* back at the head without waiting out the lease */
    hs_await_status_ok(&s, "big", "requeued_total", 1);
    assert_int_equal(hs_status_value(&s, "big", "leased"), 0);
    assert_int_equal(hs_status_value(&s, "big", "lease_expired_total"), 0);
    hs_reply r;
    assert_int_equal(hs_get_leased(&s, "big", "0", LONG_LEASE, &r), 200);
    assert_int_equal(r.len, len);
    assert_memory_equal(r.body, big, len);
    assert_string_equal(r.content_type, "application/x-big");
    /* lease.h: a response that did not reach its client counts as a
     * hand-out that came back */
    assert_int_equal(hs_delivery_count(&r), 2);
    char receipt[HS_RECEIPT_LEN + 1];
    assert_true(hs_header(&r, "Hopper-Receipt", receipt, sizeof receipt));
    hs_reply_free(&r);
    hs_expect_ack(&s, "big", receipt, 204, NULL);
    hs_expect_leased(&s, "big", "0", LONG_LEASE, "after", NULL, 1, receipt);
    hs_expect_ack(&s, "big", receipt, 204, NULL);
    free(big);
    hs_stop_ok(&s);
}

int main(void)
{
#define T(test) cmocka_unit_test(test)
#define D(test) cmocka_unit_test_setup_teardown(test, hs_dir_setup, hs_dir_teardown)
    const struct CMUnitTest tests[] = {
        T(test_lease_hands_out_a_receipt_and_hides_the_message),
        T(test_waiting_lease_gets_a_new_message),
        D(test_ack_consumes_for_good),
        D(test_ack_of_a_message_from_disk_consumes_for_good),
        T(test_unknown_and_foreign_receipts),
        T(test_ended_receipt_of_another_channel_is_unknown),
        T(test_receipts_cannot_be_derived_from_others),
        T(test_bad_lease_values),
        T(test_receipt_paths_and_methods),
        T(test_leased_messages_count_toward_memory),
        T(test_leases_of_disk_messages_stay_within_memory),
        D(test_restart_gives_leases_back),
        D(test_restart_gives_leases_of_disk_messages_back),
        D(test_restart_keeps_the_order_of_leased_messages),
        T(test_gone_waiter_takes_no_lease),
        T(test_cut_leased_response_gives_the_message_back),
    };
#undef T
#undef D
    const char *filter = getenv("HOPPER_TEST_FILTER"); /* e.g. "*order*" */
    if (filter)
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
