/* test_leases.c - GET ?lease=L against the real binary: a leased message is
 * handed out with a receipt and a delivery count and hidden until its lease
 * ends; DELETE on the receipt consumes it for good (across a restart too,
 * from memory and from a queue file); an unacknowledged lease expires and
 * the message comes back at the head, counted, in its order; extend and
 * release; unknown, foreign, ended and derivable receipts; bad ?lease=
 * values; the paths and methods of receipts; dead-lettering after
 * --max-deliveries; leased messages counted against --memory-bytes; leases
 * given back by a clean restart and by a client that went away; an expired
 * message handed straight on to a waiting GET; and a seeded random sequence
 * of all of it checked against a model (HOPPER_TEST_SEED=N replays one;
 * HOPPER_TEST_FILTER="*order*" runs the tests whose names match).
 *
 * Tests that restart the server have their own data directory (a fixture).
 * No test sleeps to let the server catch up: a lease that must end is
 * waited for by a GET ?wait= that returns as the message reappears, or by
 * polling /status; a lease that must NOT end is long (60 s) next to the
 * wait that shows it did not. */
#include "harness.h"

#include <ctype.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define RECEIPT_LEN 32
/* A lease that must not end while a test looks. */
#define LONG_LEASE "60"

static void start(hs_server *s, const char *const *args)
{
    assert_int_equal(hs_start(s, args), 0);
}

static void start_in(hs_server *s, const char *dir, const char *const *args)
{
    assert_int_equal(hs_start_in(s, dir, args), 0);
}

static void stop(hs_server *s)
{
    assert_int_equal(hs_stop(s), 0);
}

/* SIGTERM, and the shutdown log must hold line before the exit code 0. */
static void stop_saying(hs_server *s, const char *line)
{
    kill(s->pid, SIGTERM);
    if (!hs_log_wait(s, line, HS_PATIENCE_MS))
        fail_msg("the shutdown log does not say '%s'", line);
    stop(s);
}

static bool is_receipt(const char *r)
{
    if (strlen(r) != RECEIPT_LEN)
        return false;
    for (const char *p = r; *p; p++)
        if (!isdigit((unsigned char)*p) && !(*p >= 'a' && *p <= 'f'))
            return false;
    return true;
}

/* The Hopper-Delivery-Count of r; -1 if absent or not a number. */
static long delivery_count(const hs_reply *r)
{
    char v[32];
    if (!hs_header(r, "Hopper-Delivery-Count", v, sizeof v) || !isdigit((unsigned char)v[0]))
        return -1;
    return strtol(v, NULL, 10);
}

/* GET /channels/channel?wait=wait[&lease=lease] into r; the status. */
static long get_leased(const hs_server *s, const char *channel, const char *wait, const char *lease,
                       hs_reply *r)
{
    char path[300];
    if (lease)
        snprintf(path, sizeof path, "/channels/%s?wait=%s&lease=%s", channel, wait, lease);
    else
        snprintf(path, sizeof path, "/channels/%s?wait=%s", channel, wait);
    assert_int_equal(hs_get(s, path, r), 0);
    return r->status;
}

/* Take the next message of channel under a lease: it must be body (text),
 * with content_type (NULL: not checked), handed out for the count-th time,
 * with a well-formed receipt, copied to receipt (may be NULL). */
static void take(const hs_server *s, const char *channel, const char *wait, const char *lease,
                 const char *body, const char *content_type, long count,
                 char receipt[RECEIPT_LEN + 1])
{
    hs_reply r;
    long status = get_leased(s, channel, wait, lease, &r);
    char why[2048] = "", got[128] = "";
    if (status != 200 || r.len != strlen(body) || memcmp(r.body, body, r.len) != 0)
        snprintf(why, sizeof why, "GET %s?wait=%s&lease=%s: expected 200 '%s', got %ld '%.*s'",
                 channel, wait, lease, body, status, (int)r.len, (const char *)r.body);
    else if (content_type && strcmp(r.content_type, content_type) != 0)
        snprintf(why, sizeof why, "'%s': expected Content-Type %s, got %s", body, content_type,
                 r.content_type);
    else if (delivery_count(&r) != count)
        snprintf(why, sizeof why, "'%s': expected Hopper-Delivery-Count %ld, headers:\n%s", body,
                 count, r.headers);
    else if (!hs_header(&r, "Hopper-Receipt", got, sizeof got) || !is_receipt(got))
        snprintf(why, sizeof why, "'%s': no receipt of 32 lowercase hex digits, headers:\n%s", body,
                 r.headers);
    hs_reply_free(&r);
    if (why[0])
        fail_msg("%s", why);
    if (receipt)
        memcpy(receipt, got, RECEIPT_LEN + 1);
}

/* GET channel (with a lease if given) must answer 204 after wait. */
static void expect_nothing(const hs_server *s, const char *channel, const char *wait,
                           const char *lease)
{
    hs_reply r;
    long status = get_leased(s, channel, wait, lease, &r);
    char why[512] = "";
    if (status != 204)
        snprintf(why, sizeof why, "GET %s?wait=%s: expected 204, got %ld '%.*s'", channel, wait,
                 status, (int)r.len, (const char *)r.body);
    hs_reply_free(&r);
    if (why[0])
        fail_msg("%s", why);
}

/* method on /channels/channel/messages/receipt[/action] (action may carry a
 * query); the reply into r, the status returned. */
static long on_receipt(const hs_server *s, const char *method, const char *channel,
                       const char *receipt, const char *action, hs_reply *r)
{
    char path[400];
    snprintf(path, sizeof path, "/channels/%s/messages/%s%s%s", channel, receipt, action ? "/" : "",
             action ? action : "");
    assert_int_equal(hs_request(s, method, path, NULL, 0, NULL, r), 0);
    return r->status;
}

/* The same, expecting status and, for an error, the JSON error code. */
static void expect_on_receipt(const hs_server *s, const char *method, const char *channel,
                              const char *receipt, const char *action, long status,
                              const char *code)
{
    hs_reply r;
    long got = on_receipt(s, method, channel, receipt, action, &r);
    char why[1024] = "";
    if ((code ? !hs_is_error(&r, status, code) : got != status) || (status == 204 && r.len != 0))
        snprintf(why, sizeof why, "%s %s/messages/%s%s%s: expected %ld %s, got %ld '%.*s'", method,
                 channel, receipt, action ? "/" : "", action ? action : "", status,
                 code ? code : "", got, (int)r.len, (const char *)r.body);
    hs_reply_free(&r);
    if (why[0])
        fail_msg("%s", why);
}

static void ack(const hs_server *s, const char *channel, const char *receipt, long status,
                const char *code)
{
    expect_on_receipt(s, "DELETE", channel, receipt, NULL, status, code);
}

static void extend(const hs_server *s, const char *channel, const char *receipt, const char *lease,
                   long status, const char *code)
{
    char action[128];
    snprintf(action, sizeof action, "extend?lease=%s", lease);
    expect_on_receipt(s, "POST", channel, receipt, action, status, code);
}

static void release(const hs_server *s, const char *channel, const char *receipt, long status,
                    const char *code)
{
    expect_on_receipt(s, "POST", channel, receipt, "release", status, code);
}

/* The value of a /metrics sample name{channel="channel"}; -1 if absent. */
static long long metric(const hs_server *s, const char *name, const char *channel)
{
    hs_reply r;
    assert_int_equal(hs_get(s, "/metrics", &r), 0);
    char key[300];
    snprintf(key, sizeof key, "\n%s{channel=\"%s\"} ", name, channel);
    const char *at = strstr((const char *)r.body, key);
    long long v = at ? strtoll(at + strlen(key), NULL, 10) : -1;
    hs_reply_free(&r);
    return v;
}

static void await_status(const hs_server *s, const char *channel, const char *field,
                         long long value)
{
    long long got = hs_await_status_value(s, channel, field, value, HS_PATIENCE_MS);
    if (got != value)
        fail_msg("%s of %s is %lld, expected %lld", field, channel, got, value);
}

/* ---- handing out ---- */

static void test_lease_hands_out_a_receipt_and_hides_the_message(void **state)
{
    (void)state;
    hs_server s;
    start(&s, NULL);
    assert_int_equal(hs_post_text(&s, "work", "job-1"), 202);
    char r1[RECEIPT_LEN + 1];
    take(&s, "work", "5", LONG_LEASE, "job-1", "text/plain", 1, r1);
    /* invisible to others while leased, leased or not */
    expect_nothing(&s, "work", "0", NULL);
    expect_nothing(&s, "work", "0", LONG_LEASE);
    assert_int_equal(hs_status_value(&s, "work", "leased"), 1);
    assert_true(hs_status_value(&s, "work", "leased_bytes") > 0);
    assert_int_equal(hs_status_value(&s, "work", "messages"), 0);
    assert_int_equal(metric(&s, "hopper_channel_leased_messages", "work"), 1);

    /* a second lease has a receipt of its own */
    assert_int_equal(hs_post_text(&s, "work", "job-2"), 202);
    char r2[RECEIPT_LEN + 1];
    take(&s, "work", "0", LONG_LEASE, "job-2", "text/plain", 1, r2);
    assert_string_not_equal(r1, r2);
    assert_int_equal(hs_status_value(&s, "work", "leased"), 2);

    /* without ?lease= a GET is what it was: consumed at once, no receipt */
    assert_int_equal(hs_post_text(&s, "work", "job-3"), 202);
    hs_reply r;
    assert_int_equal(get_leased(&s, "work", "0", NULL, &r), 200);
    assert_string_equal((char *)r.body, "job-3");
    char v[64];
    assert_false(hs_header(&r, "Hopper-Receipt", v, sizeof v));
    assert_int_equal(delivery_count(&r), 1);
    hs_reply_free(&r);
    assert_int_equal(hs_status_value(&s, "work", "leased"), 2);

    ack(&s, "work", r1, 204, NULL);
    ack(&s, "work", r2, 204, NULL);
    assert_int_equal(hs_status_value(&s, "work", "leased"), 0);
    assert_int_equal(hs_status_value(&s, "work", "leased_bytes"), 0);
    expect_nothing(&s, "work", "0", NULL);
    stop(&s);
}

/* A leased GET that waits gets the message as it is posted, leased. */
static void test_waiting_lease_gets_a_new_message(void **state)
{
    (void)state;
    hs_server s;
    start(&s, NULL);
    /* a leased GET waits like any other: nothing there, 204 after the wait */
    expect_nothing(&s, "later", "0.2", LONG_LEASE);
    assert_int_equal(hs_status_value(&s, "later", "leased"), 0);
    int fd = hs_connect(&s);
    assert_true(fd >= 0);
    const char *req =
        "GET /channels/later?wait=25&lease=" LONG_LEASE " HTTP/1.1\r\nHost: t\r\n\r\n";
    assert_int_equal(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    await_status(&s, "later", "waiting_receivers", 1);
    assert_int_equal(hs_post_text(&s, "later", "arrived"), 202);
    char buf[4096];
    const char *body = "";
    assert_int_equal(hs_read_response(fd, buf, sizeof buf, HS_PATIENCE_MS, &body), 200);
    assert_string_equal(body, "arrived");
    const char *h = strstr(buf, "Hopper-Receipt: ");
    assert_non_null(h);
    char receipt[RECEIPT_LEN + 1];
    snprintf(receipt, sizeof receipt, "%s", h + strlen("Hopper-Receipt: "));
    assert_true(is_receipt(receipt));
    assert_non_null(strstr(buf, "Hopper-Delivery-Count: 1\r\n"));
    close(fd);
    await_status(&s, "later", "leased", 1);
    expect_nothing(&s, "later", "0", NULL);
    ack(&s, "later", receipt, 204, NULL);
    assert_int_equal(hs_status_value(&s, "later", "leased"), 0);
    stop(&s);
}

/* ---- acknowledgement ---- */

/* Post a and b, lease a and acknowledge it: a never comes back, not even
 * after a clean restart; b does, once. */
static void ack_survives_restart(const char *dir, const char *const *args)
{
    hs_server s;
    start_in(&s, dir, args);
    assert_int_equal(hs_post_text(&s, "acked", "a"), 202);
    assert_int_equal(hs_post_text(&s, "acked", "b"), 202);
    char receipt[RECEIPT_LEN + 1];
    take(&s, "acked", "0", LONG_LEASE, "a", "text/plain", 1, receipt);
    ack(&s, "acked", receipt, 204, NULL);
    ack(&s, "acked", receipt, 410, "lease_ended"); /* once only */
    release(&s, "acked", receipt, 410, "lease_ended");
    extend(&s, "acked", receipt, LONG_LEASE, 410, "lease_ended");
    assert_int_equal(hs_status_value(&s, "acked", "leased"), 0);
    assert_int_equal(hs_status_value(&s, "acked", "leased_bytes"), 0);
    assert_int_equal(hs_status_value(&s, "acked", "messages"), 1);
    stop(&s);

    start_in(&s, dir, args);
    ack(&s, "acked", receipt, 404, "unknown_receipt"); /* a new server never saw it */
    take(&s, "acked", "0", LONG_LEASE, "b", "text/plain", 1, receipt);
    ack(&s, "acked", receipt, 204, NULL);
    expect_nothing(&s, "acked", "0", NULL);
    stop(&s);

    start_in(&s, dir, args);
    expect_nothing(&s, "acked", "0", NULL);
    assert_int_equal(hs_status_value(&s, "acked", "messages"), 0);
    stop(&s);
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
    start(&s, NULL);
    assert_int_equal(hs_post_text(&s, "mine", "held"), 202);
    assert_int_equal(hs_post_text(&s, "other", "x"), 202);
    char receipt[RECEIPT_LEN + 1];
    take(&s, "mine", "0", LONG_LEASE, "held", NULL, 1, receipt);

    const char *made_up = "0123456789abcdef0123456789abcdef";
    ack(&s, "mine", made_up, 404, "unknown_receipt");
    release(&s, "mine", made_up, 404, "unknown_receipt");
    extend(&s, "mine", made_up, "5", 404, "unknown_receipt");
    /* a receipt is not a prefix, not case-insensitive, not longer */
    char upper[RECEIPT_LEN + 1], longer[RECEIPT_LEN + 2], shorter[RECEIPT_LEN];
    for (size_t i = 0; i <= RECEIPT_LEN; i++)
        upper[i] = (char)toupper((unsigned char)receipt[i]);
    snprintf(longer, sizeof longer, "%s0", receipt);
    memcpy(shorter, receipt, RECEIPT_LEN - 1);
    shorter[RECEIPT_LEN - 1] = '\0';
    if (strcmp(upper, receipt) != 0)
        ack(&s, "mine", upper, 404, "unknown_receipt");
    ack(&s, "mine", longer, 404, "unknown_receipt");
    ack(&s, "mine", shorter, 404, "unknown_receipt");

    /* the receipt is mine's: on another channel it is unknown */
    ack(&s, "other", receipt, 404, "unknown_receipt");
    release(&s, "other", receipt, 404, "unknown_receipt");
    extend(&s, "other", receipt, "5", 404, "unknown_receipt");
    assert_int_equal(hs_status_value(&s, "other", "messages"), 1);
    /* on a channel that does not exist: unknown, and nothing is created */
    ack(&s, "ghost", receipt, 404, "unknown_receipt");
    release(&s, "ghost", receipt, 404, "unknown_receipt");
    extend(&s, "ghost", receipt, "5", 404, "unknown_receipt");
    assert_int_equal(hs_status_value(&s, "ghost", "messages"), -1);

    /* none of that touched the lease */
    assert_int_equal(hs_status_value(&s, "mine", "leased"), 1);
    ack(&s, "mine", receipt, 204, NULL);
    assert_int_equal(hs_status_value(&s, "mine", "messages"), 0);
    stop(&s);
}

/* A receipt names a lease of one channel: on another it is unknown, also
 * once its lease is over (lease.h: API_UNKNOWN_RECEIPT "never granted, or
 * for another channel"). */
static void test_ended_receipt_of_another_channel_is_unknown(void **state)
{
    (void)state;
    hs_server s;
    start(&s, NULL);
    assert_int_equal(hs_post_text(&s, "first", "m"), 202);
    assert_int_equal(hs_post_text(&s, "second", "n"), 202);
    char receipt[RECEIPT_LEN + 1];
    take(&s, "first", "0", LONG_LEASE, "m", NULL, 1, receipt);
    ack(&s, "first", receipt, 204, NULL);
    ack(&s, "first", receipt, 410, "lease_ended");
    ack(&s, "second", receipt, 404, "unknown_receipt");
    release(&s, "second", receipt, 404, "unknown_receipt");
    extend(&s, "second", receipt, "5", 404, "unknown_receipt");
    assert_int_equal(hs_status_value(&s, "second", "messages"), 1);
    stop(&s);
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
    start(&s, NULL);
    for (int i = 0; i < 3; i++)
        assert_int_equal(hs_post_text(&s, "guess", i < 2 ? "mine" : "theirs"), 202);
    char r1[RECEIPT_LEN + 1], r2[RECEIPT_LEN + 1], theirs[RECEIPT_LEN + 1];
    take(&s, "guess", "0", LONG_LEASE, "mine", NULL, 1, r1);
    take(&s, "guess", "0", LONG_LEASE, "mine", NULL, 1, r2);
    take(&s, "guess", "0", LONG_LEASE, "theirs", NULL, 1, theirs); /* another worker's */

    /* from r1 and r2 alone: the counter n of r1, then the keys */
    uint64_t hi1, lo1, hi2, lo2;
    halves(r1, &hi1, &lo1);
    halves(r2, &hi2, &lo2);
    uint64_t x1 = splitmix_finaliser_inverse(hi1), x2 = splitmix_finaliser_inverse(hi2);
    char forged[RECEIPT_LEN + 1] = "";
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
        long status = on_receipt(&s, "DELETE", "guess", forged, NULL, &r);
        hs_reply_free(&r);
        if (status != 404)
            fail_msg("the receipt of another worker's lease (%s) was worked out from two "
                     "receipts seen before it, as %s, and DELETE with it answered %ld: their "
                     "message is gone",
                     theirs, forged, status);
    }
    ack(&s, "guess", theirs, 204, NULL);
    ack(&s, "guess", r1, 204, NULL);
    ack(&s, "guess", r2, 204, NULL);
    stop(&s);
}

/* ---- expiry, extend, release ---- */

static void test_expired_lease_comes_back_at_the_head(void **state)
{
    (void)state;
    hs_server s;
    start(&s, NULL);
    hs_reply r;
    assert_int_equal(hs_post(&s, "/channels/exp", "A", 1, "application/x-a", &r), 0);
    assert_int_equal(r.status, 202);
    hs_reply_free(&r);
    char first[RECEIPT_LEN + 1], second[RECEIPT_LEN + 1];
    take(&s, "exp", "0", "0.2", "A", "application/x-a", 1, first);
    assert_int_equal(hs_post_text(&s, "exp", "B"), 202);
    /* the lease ends by itself; then A is ahead of B, counted once more
     * (the expiry is counted just before the message is back: wait for
     * the message) */
    await_status(&s, "exp", "requeued_total", 1);
    assert_int_equal(hs_status_value(&s, "exp", "lease_expired_total"), 1);
    take(&s, "exp", "0", LONG_LEASE, "A", "application/x-a", 2, second);
    assert_string_not_equal(first, second);
    take(&s, "exp", "0", LONG_LEASE, "B", "text/plain", 1, NULL);
    assert_int_equal(metric(&s, "hopper_lease_expired_total", "exp"), 1);
    assert_int_equal(hs_status_value(&s, "exp", "leased"), 2);
    /* the expired receipt is over; the new one holds */
    ack(&s, "exp", first, 410, "lease_ended");
    release(&s, "exp", first, 410, "lease_ended");
    extend(&s, "exp", first, "5", 410, "lease_ended");
    ack(&s, "exp", second, 204, NULL);
    assert_int_equal(metric(&s, "hopper_lease_expired_total", "exp"), 1);
    stop(&s);
}

/* Leases that end by themselves put their messages back in the order
 * they had: each one "back at the head of its channel, before anything
 * newer" (issue 5), so the older one ahead of the newer one, as a failed
 * batch response gives its messages back (delivery.c). */
static void test_expired_leases_keep_their_order(void **state)
{
    (void)state;
    hs_server s;
    start(&s, NULL);
    const char *names[] = {"first", "second", "third"};
    for (int i = 0; i < 3; i++)
        assert_int_equal(hs_post_text(&s, "order", names[i]), 202);
    for (int i = 0; i < 3; i++)
        take(&s, "order", "0", "0.1", names[i], NULL, 1, NULL);
    assert_int_equal(hs_post_text(&s, "order", "newest"), 202);
    await_status(&s, "order", "requeued_total", 3);
    char got[64];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(hs_get_text(&s, "order", "0", got, sizeof got), 200);
        if (strcmp(got, names[i]) != 0)
            fail_msg("after the leases of first, second, third ended, GET %d gave '%s'", i + 1,
                     got);
    }
    assert_int_equal(hs_get_text(&s, "order", "0", got, sizeof got), 200);
    assert_string_equal(got, "newest");
    stop(&s);
}

/* A message alone in its channel: the GET that waits for it returns as it
 * reappears, with a count that grows on each hand-out. Without
 * --max-deliveries it never stops coming back. */
static void test_expiry_repeats_without_max_deliveries(void **state)
{
    (void)state;
    hs_server s;
    start(&s, NULL);
    assert_int_equal(hs_post_text(&s, "again", "boomerang"), 202);
    for (long count = 1; count <= 5; count++)
        take(&s, "again", "20", "0.05", "boomerang", "text/plain", count, NULL);
    char receipt[RECEIPT_LEN + 1];
    take(&s, "again", "20", LONG_LEASE, "boomerang", "text/plain", 6, receipt);
    assert_int_equal(hs_status_value(&s, "again", "lease_expired_total"), 5);
    assert_int_equal(hs_status_value(&s, "again", "dead_lettered_total"), 0);
    assert_int_equal(hs_status_value(&s, "again.dead", "messages"), -1);
    ack(&s, "again", receipt, 204, NULL);
    stop(&s);
}

/* An expired lease hands its message straight to a GET that waits without
 * a lease, which consumes it at once: over and over, the message must come
 * intact, and the server neither touch it after it was handed on (ASan
 * builds abort on that) nor log that it could not be given back. */
#define HAND_ON_ROUNDS 150

static void test_expired_lease_handed_to_a_waiting_get(void **state)
{
    (void)state;
    hs_server s;
    start(&s, NULL);
    int failed = -1;
    long status = 0;
    char got[32] = "";
    for (int i = 0; i < HAND_ON_ROUNDS && failed < 0; i++) {
        char body[32];
        snprintf(body, sizeof body, "round-%d", i);
        assert_int_equal(hs_post_text(&s, "relay", body), 202);
        take(&s, "relay", "0", "0.01", body, NULL, 1, NULL);
        status = hs_get_text(&s, "relay", "20", got, sizeof got);
        if (status != 200 || strcmp(got, body) != 0)
            failed = i;
    }
    bool complained = hs_log_wait(&s, "could not be given back", 0);
    long long expired = hs_status_value(&s, "relay", "lease_expired_total");
    int code = hs_stop(&s); /* prints the server's log (an ASan report) unless 0 */
    if (failed >= 0)
        fail_msg("round %d: %ld '%s'; the server exited with %d", failed, status, got, code);
    if (complained)
        fail_msg("the server logged that an expired message could not be given back, though "
                 "it was (and was delivered)");
    assert_int_equal(expired, HAND_ON_ROUNDS);
    assert_int_equal(code, 0);
}

static void test_extend_keeps_and_release_gives_back(void **state)
{
    (void)state;
    hs_server s;
    start(&s, NULL);
    assert_int_equal(hs_post_text(&s, "slow", "job"), 202);
    char receipt[RECEIPT_LEN + 1];
    /* 1 s: long enough for the extend to come first on a loaded machine,
     * short enough that the 3 s wait below would see it end unextended */
    take(&s, "slow", "0", "1", "job", NULL, 1, receipt);
    extend(&s, "slow", receipt, LONG_LEASE, 204, NULL);
    expect_nothing(&s, "slow", "3", NULL); /* still leased */
    assert_int_equal(hs_status_value(&s, "slow", "lease_expired_total"), 0);
    assert_int_equal(hs_status_value(&s, "slow", "leased"), 1);
    /* release: back at once, counted */
    release(&s, "slow", receipt, 204, NULL);
    assert_int_equal(hs_status_value(&s, "slow", "leased"), 0);
    release(&s, "slow", receipt, 410, "lease_ended");
    extend(&s, "slow", receipt, LONG_LEASE, 410, "lease_ended");
    ack(&s, "slow", receipt, 410, "lease_ended");
    take(&s, "slow", "0", LONG_LEASE, "job", NULL, 2, receipt);
    /* a release puts it at the head, ahead of newer ones */
    assert_int_equal(hs_post_text(&s, "slow", "newer"), 202);
    release(&s, "slow", receipt, 204, NULL);
    take(&s, "slow", "0", LONG_LEASE, "job", NULL, 3, receipt);
    ack(&s, "slow", receipt, 204, NULL);
    take(&s, "slow", "0", LONG_LEASE, "newer", NULL, 1, receipt);
    ack(&s, "slow", receipt, 204, NULL);
    assert_int_equal(hs_status_value(&s, "slow", "lease_expired_total"), 0);
    stop(&s);
}

/* extend sets the end from now: it may bring it closer too. */
static void test_extend_can_shorten_a_lease(void **state)
{
    (void)state;
    hs_server s;
    start(&s, NULL);
    assert_int_equal(hs_post_text(&s, "short", "soon"), 202);
    char receipt[RECEIPT_LEN + 1];
    take(&s, "short", "0", LONG_LEASE, "soon", NULL, 1, receipt);
    extend(&s, "short", receipt, "0.1", 204, NULL);
    take(&s, "short", "20", LONG_LEASE, "soon", NULL, 2, receipt);
    assert_int_equal(hs_status_value(&s, "short", "lease_expired_total"), 1);
    ack(&s, "short", receipt, 204, NULL);
    stop(&s);
}

static const char *const bad_leases[] = {
    "0",  "0.0",  "0.0001", "-1",   "nan", "NaN", "inf", "1e99", "10.001", "11",    "",
    "1s", "0x10", "%205",   "5%20", "+5",  "1e",  "--1", "%00",  "5%005",  "1.5.5", "1e400",
};

static void test_bad_lease_values(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--max-lease", "10", NULL};
    start(&s, args);
    assert_int_equal(hs_post_text(&s, "q", "m"), 202);
    char receipt[RECEIPT_LEN + 1];
    take(&s, "q", "0", "10", "m", NULL, 1, receipt); /* --max-lease itself is fine */
    for (size_t i = 0; i < sizeof bad_leases / sizeof bad_leases[0]; i++) {
        hs_reply r;
        char path[200];
        snprintf(path, sizeof path, "/channels/q/messages/%s/extend?lease=%s", receipt,
                 bad_leases[i]);
        assert_int_equal(hs_request(&s, "POST", path, NULL, 0, NULL, &r), 0);
        if (!hs_is_error(&r, 400, "bad_lease"))
            fail_msg("extend?lease=%s was not refused", bad_leases[i]);
        hs_reply_free(&r);
        /* a GET with it takes nothing, and creates no channel */
        assert_int_equal(hs_post_text(&s, "p", "untouched"), 202);
        snprintf(path, sizeof path, "/channels/p?wait=0&lease=%s", bad_leases[i]);
        assert_int_equal(hs_get(&s, path, &r), 0);
        if (!hs_is_error(&r, 400, "bad_lease"))
            fail_msg("GET ?lease=%s was not refused", bad_leases[i]);
        hs_reply_free(&r);
        snprintf(path, sizeof path, "/channels/nowhere?wait=0&lease=%s", bad_leases[i]);
        assert_int_equal(hs_get(&s, path, &r), 0);
        assert_true(hs_is_error(&r, 400, "bad_lease"));
        hs_reply_free(&r);
        char got[32];
        assert_int_equal(hs_get_text(&s, "p", "0", got, sizeof got), 200);
        assert_string_equal(got, "untouched");
    }
    assert_int_equal(hs_status_value(&s, "nowhere", "messages"), -1);
    /* without a value, or without lease at all */
    const char *no_value[] = {"extend?lease", "extend", "extend?time=5"};
    for (size_t i = 0; i < sizeof no_value / sizeof no_value[0]; i++) {
        hs_reply r;
        on_receipt(&s, "POST", "q", receipt, no_value[i], &r);
        if (!hs_is_error(&r, 400, "bad_lease"))
            fail_msg("POST .../%s was not refused", no_value[i]);
        hs_reply_free(&r);
    }
    hs_reply r;
    assert_int_equal(hs_get(&s, "/channels/p?wait=0&lease", &r), 0);
    assert_true(hs_is_error(&r, 400, "bad_lease"));
    hs_reply_free(&r);
    /* the lease is intact after all the refused extends */
    assert_int_equal(hs_status_value(&s, "q", "leased"), 1);
    extend(&s, "q", receipt, "9.5", 204, NULL);
    ack(&s, "q", receipt, 204, NULL);
    stop(&s);
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
    start(&s, NULL);
    assert_int_equal(hs_post_text(&s, "x", "m"), 202);
    char receipt[RECEIPT_LEN + 1];
    take(&s, "x", "0", LONG_LEASE, "m", NULL, 1, receipt);
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
    expect_path(&s, "DELETE", "/channels/x", 405, "method_not_allowed", "GET, POST");
    expect_path(&s, "GET", "/channels/x/other", 400, "bad_name", NULL);
    expect_path(&s, "DELETE", "/channels/x/other/r", 400, "bad_name", NULL);
    expect_path(&s, "DELETE", "/channels/x/messages", 400, "bad_name", NULL);
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
    hs_reply r;
    assert_int_equal(hs_request(&s, "DELETE", path, NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 204);
    hs_reply_free(&r);
    assert_int_equal(hs_status_value(&s, "x", "leased"), 0);
    stop(&s);
}

/* ---- dead letters ---- */

static void test_dead_letter_after_max_deliveries(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--max-deliveries", "2", NULL};
    start(&s, args);
    unsigned char poison[300];
    for (size_t i = 0; i < sizeof poison; i++)
        poison[i] = (unsigned char)(i * 53 + 7); /* zeros and high bytes among them */
    const char *type = "application/x-poison; v=1";
    hs_reply r;
    assert_int_equal(hs_post(&s, "/channels/hooks", poison, sizeof poison, type, &r), 0);
    assert_int_equal(r.status, 202);
    hs_reply_free(&r);
    assert_int_equal(hs_post_text(&s, "hooks", "fine"), 202);

    /* handed out twice, never acknowledged: each time it comes back ahead
     * of the newer one */
    for (long count = 1; count <= 2; count++) {
        assert_int_equal(get_leased(&s, "hooks", "0", "0.1", &r), 200);
        assert_int_equal(r.len, sizeof poison);
        assert_int_equal(delivery_count(&r), count);
        hs_reply_free(&r);
        if (count == 1) /* back in the channel (counted before it is) */
            await_status(&s, "hooks", "requeued_total", 1);
    }
    /* then it goes to hooks.dead, byte-identical, with its Content-Type */
    await_status(&s, "hooks", "dead_lettered_total", 1);
    assert_int_equal(hs_status_value(&s, "hooks", "lease_expired_total"), 2);
    assert_int_equal(metric(&s, "hopper_messages_dead_lettered_total", "hooks"), 1);
    assert_int_equal(get_leased(&s, "hooks.dead", "0", NULL, &r), 200);
    assert_int_equal(r.len, sizeof poison);
    assert_memory_equal(r.body, poison, sizeof poison);
    assert_string_equal(r.content_type, type);
    hs_reply_free(&r);
    /* and no longer blocks its channel */
    char receipt[RECEIPT_LEN + 1];
    take(&s, "hooks", "0", LONG_LEASE, "fine", "text/plain", 1, receipt);
    ack(&s, "hooks", receipt, 204, NULL);
    expect_nothing(&s, "hooks", "0", NULL);
    assert_int_equal(hs_status_value(&s, "hooks", "messages"), 0);
    stop(&s);
}

/* A dead-letter channel has no dead-letter channel of its own: its
 * messages come back to it, however often. */
static void test_dead_letter_channel_keeps_its_messages(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--max-deliveries", "1", NULL};
    start(&s, args);
    assert_int_equal(hs_post_text(&s, "j.dead", "stays"), 202);
    hs_reply r;
    for (long count = 1; count <= 3; count++) {
        assert_int_equal(get_leased(&s, "j.dead", "20", "0.05", &r), 200);
        assert_string_equal((char *)r.body, "stays");
        assert_int_equal(delivery_count(&r), count);
        hs_reply_free(&r);
    }
    char receipt[RECEIPT_LEN + 1];
    take(&s, "j.dead", "20", LONG_LEASE, "stays", NULL, 4, receipt);
    ack(&s, "j.dead", receipt, 204, NULL);
    assert_int_equal(hs_status_value(&s, "j.dead.dead", "messages"), -1);
    assert_int_equal(hs_status_value(&s, "j.dead", "dead_lettered_total"), 0);
    stop(&s);
}

/* When NAME.dead cannot take the message (here: it cannot be created,
 * --max-channels), the message goes back to its own channel, logged. */
static void test_dead_letter_without_room_goes_back(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--max-deliveries", "1", "--max-channels", "1", NULL};
    start(&s, args);
    assert_int_equal(hs_post_text(&s, "solo", "stuck"), 202);
    take(&s, "solo", "0", "0.05", "stuck", NULL, 1, NULL);
    char receipt[RECEIPT_LEN + 1];
    take(&s, "solo", "20", LONG_LEASE, "stuck", NULL, 2, receipt);
    assert_true(hs_log_wait(&s, "could not go to solo.dead", HS_PATIENCE_MS));
    assert_int_equal(hs_status_value(&s, "solo", "dead_lettered_total"), 0);
    assert_int_equal(hs_status_value(&s, "solo.dead", "messages"), -1);
    ack(&s, "solo", receipt, 204, NULL);
    stop(&s);
}

/* ---- limits ---- */

/* What one message "m" of text/plain costs against --memory-bytes. */
static long long cost_of_one_message(void)
{
    hs_server s;
    start(&s, NULL);
    assert_int_equal(hs_post_text(&s, "probe", "m"), 202);
    long long cost = hs_status_value(&s, "probe", "memory_bytes");
    stop(&s);
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
    start(&s, args);
    /* one message alone goes to memory */
    assert_int_equal(hs_post_text(&s, "mem", "m"), 202);
    assert_int_equal(hs_status_value(&s, "mem", "memory_bytes"), cost);
    assert_int_equal(hs_status_value(&s, "mem", "disk_files"), 0);
    char receipt[RECEIPT_LEN + 1];
    take(&s, "mem", "0", LONG_LEASE, "m", NULL, 1, receipt);
    assert_int_equal(hs_status_value(&s, "mem", "memory_bytes"), 0);
    assert_int_equal(hs_status_value(&s, "mem", "leased_bytes"), cost);
    /* leased, it still takes its room: the next one goes to disk */
    assert_int_equal(hs_post_text(&s, "mem", "m"), 202);
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
    ack(&s, "mem", receipt, 204, NULL);
    assert_int_equal(hs_status_value(&s, "mem", "leased_bytes"), 0);
    take(&s, "mem", "0", LONG_LEASE, "m", NULL, 1, receipt);
    ack(&s, "mem", receipt, 204, NULL);
    assert_int_equal(hs_status_value(&s, "mem", "messages"), 0);
    stop(&s);

    /* and without the lease the same two both fit in turn: the first was
     * consumed before the second came */
    start(&s, args);
    assert_int_equal(hs_post_text(&s, "mem", "m"), 202);
    hs_reply r;
    assert_int_equal(get_leased(&s, "mem", "0", NULL, &r), 200);
    hs_reply_free(&r);
    assert_int_equal(hs_post_text(&s, "mem", "m"), 202);
    assert_int_equal(hs_status_value(&s, "mem", "memory_bytes"), cost);
    assert_int_equal(hs_status_value(&s, "mem", "disk_files"), 0);
    stop(&s);
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
    start(&s, args);
    enum { SENT = 4 };
    for (int i = 0; i < SENT; i++)
        assert_int_equal(hs_post_text(&s, "mem", "m"), 202);
    assert_int_equal(hs_status_value(&s, "mem", "memory_bytes"), cost); /* the rest on disk */
    char receipts[SENT][RECEIPT_LEN + 1];
    int held = 0;
    for (int i = 0; i < SENT; i++) {
        hs_reply r;
        long status = get_leased(&s, "mem", "0", LONG_LEASE, &r);
        if (status == 200) {
            assert_true(hs_header(&r, "Hopper-Receipt", receipts[held], RECEIPT_LEN + 1));
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
        ack(&s, "mem", receipts[i], 204, NULL);
    for (int i = held; i < SENT; i++) {
        take(&s, "mem", "0", LONG_LEASE, "m", NULL, 1, receipts[0]);
        ack(&s, "mem", receipts[0], 204, NULL);
    }
    assert_int_equal(hs_status_value(&s, "mem", "messages"), 0);
    stop(&s);
}

/* ---- restarts ---- */

/* a and b posted, a leased; a clean stop gives a back; the next start
 * hands out a again (count 2) ahead of b, and knows no old receipt. */
static void restart_with_a_lease_out(const char *dir, const char *const *args)
{
    hs_server s;
    start_in(&s, dir, args);
    hs_reply r;
    assert_int_equal(hs_post(&s, "/channels/out", "a", 1, "application/x-a", &r), 0);
    assert_int_equal(r.status, 202);
    hs_reply_free(&r);
    assert_int_equal(hs_post_text(&s, "out", "b"), 202);
    char old[RECEIPT_LEN + 1], receipt[RECEIPT_LEN + 1];
    take(&s, "out", "0", LONG_LEASE, "a", "application/x-a", 1, old);
    assert_int_equal(hs_status_value(&s, "out", "leased"), 1);
    stop_saying(&s, "1 leased message(s) given back to their channels at shutdown");

    start_in(&s, dir, args);
    assert_int_equal(hs_status_value(&s, "out", "messages"), 2);
    assert_int_equal(hs_status_value(&s, "out", "leased"), 0);
    hs_reply rr;
    long status = on_receipt(&s, "DELETE", "out", old, NULL, &rr);
    if (!(status == 404 ? hs_is_error(&rr, 404, "unknown_receipt")
                        : hs_is_error(&rr, 410, "lease_ended")))
        fail_msg("the receipt of before the restart: %ld", status);
    hs_reply_free(&rr);
    take(&s, "out", "0", LONG_LEASE, "a", "application/x-a", 2, receipt);
    assert_string_not_equal(old, receipt);
    ack(&s, "out", receipt, 204, NULL);
    take(&s, "out", "0", LONG_LEASE, "b", "text/plain", 1, receipt);
    ack(&s, "out", receipt, 204, NULL);
    expect_nothing(&s, "out", "0", NULL);
    stop(&s);
    start_in(&s, dir, args);
    expect_nothing(&s, "out", "0", NULL);
    stop(&s);
}

/* The same for leases given back by a clean stop: after the restart the
 * messages come in the order they were posted. */
static void test_restart_keeps_the_order_of_leased_messages(void **state)
{
    const char *dir = *state;
    hs_server s;
    start_in(&s, dir, NULL);
    const char *names[] = {"first", "second", "third"};
    for (int i = 0; i < 3; i++)
        assert_int_equal(hs_post_text(&s, "order", names[i]), 202);
    for (int i = 0; i < 3; i++)
        take(&s, "order", "0", LONG_LEASE, names[i], NULL, 1, NULL);
    assert_int_equal(hs_post_text(&s, "order", "newest"), 202);
    stop_saying(&s, "3 leased message(s) given back to their channels at shutdown");
    start_in(&s, dir, NULL);
    char got[64];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(hs_get_text(&s, "order", "0", got, sizeof got), 200);
        if (strcmp(got, names[i]) != 0)
            fail_msg("after a restart with first, second, third leased, GET %d gave '%s'", i + 1,
                     got);
    }
    assert_int_equal(hs_get_text(&s, "order", "0", got, sizeof got), 200);
    assert_string_equal(got, "newest");
    stop(&s);
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
    start(&s, NULL);
    int fd = hs_connect(&s);
    assert_true(fd >= 0);
    const char *req = "GET /channels/gone?wait=60&lease=" LONG_LEASE " HTTP/1.1\r\nHost: t\r\n\r\n";
    assert_int_equal(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    await_status(&s, "gone", "waiting_receivers", 1);
    int port = hs_local_port(fd);
    assert_true(port > 0);
    close(fd);
    assert_true(hs_await_server_saw_close(&s, &port, 1, HS_PATIENCE_MS));

    assert_int_equal(hs_post_text(&s, "gone", "precious"), 202);
    /* were it leased to the dead client, this would answer 204 after 20 s */
    char receipt[RECEIPT_LEN + 1];
    take(&s, "gone", "20", LONG_LEASE, "precious", NULL, 1, receipt);
    assert_int_equal(hs_status_value(&s, "gone", "leased"), 1); /* ours */
    ack(&s, "gone", receipt, 204, NULL);
    assert_int_equal(hs_status_value(&s, "gone", "leased"), 0);
    assert_int_equal(hs_status_value(&s, "gone", "lease_expired_total"), 0);
    stop(&s);
}

/* A leased response that cannot be written to the end (the client resets
 * the connection a few bytes into a body larger than any socket buffer)
 * ends its lease: the message is back at once, intact, not after 60 s. */
static void test_cut_leased_response_gives_the_message_back(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--max-message-bytes", "16MiB", NULL};
    start(&s, args);
    size_t len = 8u << 20;
    unsigned char *big = malloc(len);
    assert_non_null(big);
    for (size_t i = 0; i < len; i++)
        big[i] = (unsigned char)(i * 7 + i / 4096);
    hs_reply r;
    assert_int_equal(hs_post(&s, "/channels/big", big, len, "application/x-big", &r), 0);
    assert_int_equal(r.status, 202);
    hs_reply_free(&r);
    assert_int_equal(hs_post_text(&s, "big", "after"), 202);

    /* the answer has begun, and cannot have been written whole */
    int status = 0;
    int fd = hs_get_stalled(&s, "/channels/big?wait=0&lease=" LONG_LEASE, &status);
    assert_true(fd >= 0);
    assert_int_equal(status, 200);
    hs_reset(fd);

    /* back at the head without waiting out the lease */
    await_status(&s, "big", "requeued_total", 1);
    assert_int_equal(hs_status_value(&s, "big", "leased"), 0);
    assert_int_equal(hs_status_value(&s, "big", "lease_expired_total"), 0);
    assert_int_equal(get_leased(&s, "big", "0", LONG_LEASE, &r), 200);
    assert_int_equal(r.len, len);
    assert_memory_equal(r.body, big, len);
    assert_string_equal(r.content_type, "application/x-big");
    /* lease.h: a response that did not reach its client counts as a
     * hand-out that came back */
    assert_int_equal(delivery_count(&r), 2);
    char receipt[RECEIPT_LEN + 1];
    assert_true(hs_header(&r, "Hopper-Receipt", receipt, sizeof receipt));
    hs_reply_free(&r);
    ack(&s, "big", receipt, 204, NULL);
    take(&s, "big", "0", LONG_LEASE, "after", NULL, 1, receipt);
    ack(&s, "big", receipt, 204, NULL);
    free(big);
    stop(&s);
}

/* ---- a random sequence against a model ----
 *
 * One client, one channel, operations one at a time. What the model knows
 * for sure: the order of the messages the server holds that it put there
 * itself (posted, released), and for every lease a lower bound of its end
 * (the moment the request that made it was sent, plus its length). What it
 * cannot know is when a lease that may have ended did end; such a message
 * is "loose": back in the channel, at a place the model does not know.
 *
 * Checked: a GET hands out the head of the known order, a loose message,
 * or one whose lease may have ended, never one whose lease is certain to
 * hold or one further down the known order (FIFO), never an acknowledged
 * one; its count is one more than at its last hand-out; a receipt answers
 * 204 while its lease is certain to hold, 410 once it is known to be over
 * (404 or 410 after a restart), 204 or 410 in between; a GET answers 204
 * only when the known order is empty. In the end every message is
 * acknowledged exactly once. */

#define PROP_STEPS 300
#define PROP_MESSAGES 160
#define PROP_RECEIPTS 1200
#define PROP_CHANNEL "prop"
#define PROP_IDLE_CHANNEL "prop-idle"
/* The server keeps deadlines in whole milliseconds, truncated. */
#define PROP_MARGIN 0.005
#define PROP_ARGS "--memory-bytes", "2KiB", "--file-bytes", "4KiB"

typedef enum { M_NONE, M_QUEUED, M_LEASED, M_LOOSE, M_ACKED } m_state;

typedef struct prop_msg {
    m_state state;
    long count;      /* Hopper-Delivery-Count of its last hand-out, 0: none */
    int receipt;     /* M_LEASED: its receipt */
    double not_till; /* M_LEASED: its lease holds at least until then */
    int acks;        /* 204 answers to a DELETE of one of its receipts */
} prop_msg;

typedef enum { R_HELD, R_ENDED, R_BEFORE_RESTART } r_state;

typedef struct prop_receipt {
    char text[RECEIPT_LEN + 1];
    int msg;
    r_state state;
} prop_receipt;

typedef struct model {
    hs_server s;
    const char *dir;
    uint64_t rng;
    prop_msg msgs[PROP_MESSAGES];
    int posted;
    int order[PROP_MESSAGES]; /* the known order: msgs M_QUEUED, head first */
    int queued;
    prop_receipt receipts[PROP_RECEIPTS];
    int nreceipts;
    int step;
    const char *op;
    int expiries_seen; /* leases the model saw end by themselves */
    int restarts;
    hs_reply *pending; /* a reply to free if the step fails */
} model;

static uint64_t next_random(model *m)
{
    uint64_t x = m->rng += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static int below(model *m, int n)
{
    return (int)(next_random(m) % (uint64_t)n);
}

static double between(model *m, double lo, double hi)
{
    return lo + (hi - lo) * (double)(next_random(m) >> 11) / 9007199254740992.0;
}

static void prop_fail(model *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void prop_fail(model *m, const char *fmt, ...)
{
    char text[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (m->pending)
        hs_reply_free(m->pending);
    m->pending = NULL;
    fail_msg("step %d (%s): %s", m->step, m->op, text);
}

static const char *const prop_types[] = {"text/plain", "application/json", "application/x-bin"};

/* Message i's body: "p<4 digits>|" and 20 to 400 bytes of filler. */
static size_t prop_body(int i, char *out, size_t size)
{
    size_t len = 6 + 20 + (size_t)(i * 97 % 380);
    assert_true(len < size);
    snprintf(out, size, "p%04d|", i);
    for (size_t k = 6; k < len; k++)
        out[k] = (char)('a' + (i * 7 + (int)k) % 26);
    out[len] = '\0';
    return len;
}

static void prop_post(model *m)
{
    if (m->posted == PROP_MESSAGES)
        return;
    int i = m->posted;
    char body[512];
    size_t len = prop_body(i, body, sizeof body);
    hs_reply r;
    assert_int_equal(hs_post(&m->s, "/channels/" PROP_CHANNEL, body, len, prop_types[i % 3], &r),
                     0);
    long status = r.status;
    hs_reply_free(&r);
    if (status != 202)
        prop_fail(m, "POST of message %d: %ld", i, status);
    m->msgs[i] = (prop_msg){.state = M_QUEUED, .receipt = -1};
    m->order[m->queued++] = i;
    m->posted++;
}

static void remove_from_order(model *m, int at)
{
    memmove(&m->order[at], &m->order[at + 1], (size_t)(m->queued - at - 1) * sizeof m->order[0]);
    m->queued--;
}

/* GET with a lease of lease seconds, waiting wait seconds: check what came
 * against the model. Returns the message handed out, -1 for 204, or -2 for
 * 503 lease_limit (the leases out fill the channel's memory). */
static int prop_get(model *m, double wait, double lease)
{
    char path[200];
    snprintf(path, sizeof path, "/channels/" PROP_CHANNEL "?wait=%.3f&lease=%.3f", wait, lease);
    double sent = hs_now();
    hs_reply r;
    assert_int_equal(hs_get(&m->s, path, &r), 0);
    double done = hs_now();
    m->pending = &r;
    if (r.status == 204) {
        m->pending = NULL;
        hs_reply_free(&r);
        if (m->queued > 0)
            prop_fail(m, "204, but message %d (and %d more) are in the channel", m->order[0],
                      m->queued - 1);
        return -1;
    }
    if (r.status == 503 && strstr((const char *)r.body, "\"lease_limit\"") != NULL) {
        /* the leases out fill --memory-bytes: nothing was handed out */
        m->pending = NULL;
        hs_reply_free(&r);
        if (hs_status_value(&m->s, PROP_CHANNEL, "leased") < 1)
            prop_fail(m, "503 lease_limit with no lease out");
        return -2;
    }
    int i = -1;
    if (r.status != 200 || sscanf((const char *)r.body, "p%4d|", &i) != 1 || i < 0 ||
        i >= m->posted)
        prop_fail(m, "GET: %ld '%.20s'", r.status, (const char *)r.body);
    char body[512];
    size_t len = prop_body(i, body, sizeof body);
    if (r.len != len || memcmp(r.body, body, len) != 0)
        prop_fail(m, "message %d came back with other bytes", i);
    if (strcmp(r.content_type, prop_types[i % 3]) != 0)
        prop_fail(m, "message %d came back as %s", i, r.content_type);
    prop_msg *msg = &m->msgs[i];
    switch (msg->state) {
    case M_QUEUED:
        if (m->order[0] != i)
            prop_fail(m, "message %d handed out before message %d, which is ahead of it", i,
                      m->order[0]);
        remove_from_order(m, 0);
        break;
    case M_LEASED:
        if (done < msg->not_till)
            prop_fail(m, "message %d handed out again %.3f s before its lease could end", i,
                      msg->not_till - done);
        m->receipts[msg->receipt].state = R_ENDED; /* it expired */
        m->expiries_seen++;
        break;
    case M_LOOSE:
        break;
    case M_ACKED:
        prop_fail(m, "message %d handed out after it was acknowledged", i);
        break;
    case M_NONE:
        prop_fail(m, "message %d was never posted", i);
        break;
    }
    long count = delivery_count(&r);
    if (count != msg->count + 1)
        prop_fail(m, "message %d: Hopper-Delivery-Count %ld after %ld", i, count, msg->count);
    msg->count = count;
    if (m->nreceipts == PROP_RECEIPTS)
        prop_fail(m, "more receipts than the test keeps");
    prop_receipt *rc = &m->receipts[m->nreceipts];
    if (!hs_header(&r, "Hopper-Receipt", rc->text, sizeof rc->text) || !is_receipt(rc->text))
        prop_fail(m, "message %d without a good receipt:\n%s", i, r.headers);
    for (int k = 0; k < m->nreceipts; k++)
        if (strcmp(m->receipts[k].text, rc->text) == 0)
            prop_fail(m, "receipt %s handed out twice", rc->text);
    m->pending = NULL;
    hs_reply_free(&r);
    rc->msg = i;
    rc->state = R_HELD;
    msg->state = M_LEASED;
    msg->receipt = m->nreceipts++;
    msg->not_till = sent + lease - PROP_MARGIN;
    return i;
}

typedef enum { ON_ACK, ON_RELEASE, ON_EXTEND } receipt_op;

/* One request on receipt k, checked. */
static void prop_on_receipt(model *m, int k, receipt_op op, double lease)
{
    prop_receipt *rc = &m->receipts[k];
    prop_msg *msg = &m->msgs[rc->msg];
    char action[64] = "release";
    if (op == ON_EXTEND)
        snprintf(action, sizeof action, "extend?lease=%.3f", lease);
    double sent = hs_now();
    hs_reply r;
    long status = on_receipt(&m->s, op == ON_ACK ? "DELETE" : "POST", PROP_CHANNEL, rc->text,
                             op == ON_ACK ? NULL : action, &r);
    double done = hs_now();
    bool ended = status == 410 && hs_is_error(&r, 410, "lease_ended");
    bool unknown = status == 404 && hs_is_error(&r, 404, "unknown_receipt");
    hs_reply_free(&r);
    switch (rc->state) {
    case R_ENDED:
        if (!ended)
            prop_fail(m, "receipt of message %d, whose lease is over: %ld", rc->msg, status);
        return;
    case R_BEFORE_RESTART:
        if (!ended && !unknown)
            prop_fail(m, "receipt of message %d from before a restart: %ld", rc->msg, status);
        return;
    case R_HELD:
        break;
    }
    if (status != 204 && !ended)
        prop_fail(m, "receipt of message %d: %ld", rc->msg, status);
    if (ended && done < msg->not_till)
        prop_fail(m, "message %d: lease over %.3f s before it could end", rc->msg,
                  msg->not_till - done);
    rc->state = op == ON_EXTEND && !ended ? R_HELD : R_ENDED;
    if (ended) {
        msg->state = M_LOOSE; /* it expired: back in the channel */
        m->expiries_seen++;
        return;
    }
    switch (op) {
    case ON_ACK:
        msg->state = M_ACKED;
        msg->acks++;
        break;
    case ON_RELEASE: { /* back at the head, among the others given back in the order they
                          were first handed out: on one channel, the order they were posted */
        msg->state = M_QUEUED;
        int at = 0;
        while (at < m->queued && m->order[at] < rc->msg)
            at++;
        memmove(&m->order[at + 1], &m->order[at], (size_t)(m->queued - at) * sizeof m->order[0]);
        m->order[at] = rc->msg;
        m->queued++;
        break;
    }
    case ON_EXTEND:
        msg->not_till = sent + lease - PROP_MARGIN;
        break;
    }
}

/* A receipt to use: mostly one that may still hold, sometimes any. */
static int pick_receipt(model *m)
{
    if (m->nreceipts == 0)
        return -1;
    if (below(m, 5) > 0) {
        int held[PROP_RECEIPTS], n = 0;
        for (int k = 0; k < m->nreceipts; k++)
            if (m->receipts[k].state == R_HELD)
                held[n++] = k;
        if (n > 0)
            return held[below(m, n)];
    }
    return below(m, m->nreceipts);
}

static double short_lease(model *m)
{
    return below(m, 8) == 0 ? between(m, 1.0, 2.0) : between(m, 0.05, 0.3);
}

static void prop_restart(model *m)
{
    const char *args[] = {PROP_ARGS, NULL};
    stop(&m->s);
    start_in(&m->s, m->dir, args);
    m->restarts++;
    for (int i = 0; i < m->posted; i++)
        if (m->msgs[i].state == M_LEASED)
            m->msgs[i].state = M_LOOSE; /* given back at the stop, or expired before */
    for (int k = 0; k < m->nreceipts; k++)
        m->receipts[k].state = R_BEFORE_RESTART;
}

static void prop_step(model *m)
{
    int roll = below(m, 100);
    int k;
    if (roll < 2) {
        m->op = "restart";
        prop_restart(m);
    } else if (roll < 28) {
        m->op = "post";
        prop_post(m);
    } else if (roll < 55) {
        m->op = "get";
        prop_get(m, 0, short_lease(m));
    } else if (roll < 61) {
        m->op = "get, waiting"; /* for a message, or a lease to end */
        prop_get(m, between(m, 0.05, 0.3), short_lease(m));
    } else if (roll < 70) {
        m->op = "let time pass"; /* a GET that waits on a channel of its own */
        char wait[32];
        snprintf(wait, sizeof wait, "%.3f", between(m, 0.02, 0.25));
        expect_nothing(&m->s, PROP_IDLE_CHANNEL, wait, NULL);
    } else if (roll < 80) {
        m->op = "ack";
        if ((k = pick_receipt(m)) >= 0)
            prop_on_receipt(m, k, ON_ACK, 0);
    } else if (roll < 88) {
        m->op = "release";
        if ((k = pick_receipt(m)) >= 0)
            prop_on_receipt(m, k, ON_RELEASE, 0);
    } else if (roll < 98) {
        m->op = "extend";
        if ((k = pick_receipt(m)) >= 0)
            prop_on_receipt(m, k, ON_EXTEND, short_lease(m));
    } else {
        m->op = "made-up receipt";
        char made_up[RECEIPT_LEN + 1];
        snprintf(made_up, sizeof made_up, "%016llx%016llx", (unsigned long long)next_random(m),
                 (unsigned long long)next_random(m));
        for (int i = 0; i < m->nreceipts; i++)
            if (strcmp(m->receipts[i].text, made_up) == 0)
                return; /* as likely as a lottery win */
        ack(&m->s, PROP_CHANNEL, made_up, 404, "unknown_receipt");
    }
}

/* Take and acknowledge until every message is: the leases still out end
 * on their own within the waits. */
static void prop_drain(model *m)
{
    m->op = "drain";
    double deadline = hs_now() + HS_PATIENCE_MS / 1000.0;
    for (;;) {
        int left = 0;
        for (int i = 0; i < m->posted; i++)
            left += m->msgs[i].state != M_ACKED;
        if (left == 0)
            break;
        if (hs_now() > deadline)
            prop_fail(m, "%d message(s) never came back to be acknowledged", left);
        int i = prop_get(m, 5, 30);
        if (i >= 0)
            prop_on_receipt(m, m->msgs[i].receipt, ON_ACK, 0);
    }
    for (int i = 0; i < m->posted; i++)
        if (m->msgs[i].acks != 1)
            prop_fail(m, "message %d acknowledged %d times", i, m->msgs[i].acks);
    expect_nothing(&m->s, PROP_CHANNEL, "0", NULL);
    assert_int_equal(hs_status_value(&m->s, PROP_CHANNEL, "leased"), 0);
    assert_int_equal(hs_status_value(&m->s, PROP_CHANNEL, "leased_bytes"), 0);
    assert_int_equal(hs_status_value(&m->s, PROP_CHANNEL, "messages"), 0);
}

static void test_random_leases_against_a_model(void **state)
{
    static model the_model; /* large; static so that a failing step leaks nothing */
    model *m = &the_model;
    memset(m, 0, sizeof *m);
    m->dir = *state;
    const char *seed_text = getenv("HOPPER_TEST_SEED");
    uint64_t seed =
        seed_text ? strtoull(seed_text, NULL, 10) : (uint64_t)time(NULL) ^ (uint64_t)getpid() << 16;
    printf("test_random_leases_against_a_model: seed %llu (HOPPER_TEST_SEED=%llu replays it)\n",
           (unsigned long long)seed, (unsigned long long)seed);
    fflush(stdout);
    m->rng = seed;
    const char *args[] = {PROP_ARGS, NULL};
    start_in(&m->s, m->dir, args);
    double began = hs_now();
    for (m->step = 0; m->step < PROP_STEPS; m->step++)
        prop_step(m);
    prop_drain(m);
    int handed = 0;
    for (int i = 0; i < m->posted; i++)
        handed += (int)m->msgs[i].count;
    printf("  %d messages, %d hand-outs, %d expiries seen (%lld since the last start), %d "
           "restart(s), %.1f s\n",
           m->posted, handed, m->expiries_seen,
           hs_status_value(&m->s, PROP_CHANNEL, "lease_expired_total"), m->restarts,
           hs_now() - began);
    stop(&m->s);
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
        T(test_expired_lease_comes_back_at_the_head),
        T(test_expired_leases_keep_their_order),
        T(test_expiry_repeats_without_max_deliveries),
        T(test_expired_lease_handed_to_a_waiting_get),
        T(test_extend_keeps_and_release_gives_back),
        T(test_extend_can_shorten_a_lease),
        T(test_bad_lease_values),
        T(test_receipt_paths_and_methods),
        T(test_dead_letter_after_max_deliveries),
        T(test_dead_letter_channel_keeps_its_messages),
        T(test_dead_letter_without_room_goes_back),
        T(test_leased_messages_count_toward_memory),
        T(test_leases_of_disk_messages_stay_within_memory),
        D(test_restart_gives_leases_back),
        D(test_restart_gives_leases_of_disk_messages_back),
        D(test_restart_keeps_the_order_of_leased_messages),
        T(test_gone_waiter_takes_no_lease),
        T(test_cut_leased_response_gives_the_message_back),
        D(test_random_leases_against_a_model),
    };
#undef T
#undef D
    const char *filter = getenv("HOPPER_TEST_FILTER"); /* e.g. "*order*" */
    if (filter)
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
