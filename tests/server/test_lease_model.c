/* test_lease_model.c - a seeded random sequence of leased GETs, waits,
 * acknowledgements, releases, extends, made-up receipts and restarts
 * against the real binary, each answer checked against a model of what the
 * server may answer (below). The seed is printed; HOPPER_TEST_SEED=N
 * replays one. (The leases one at a time: test_leases.c.) */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

/* One client, one channel, operations one at a time. What the model knows
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
    char text[HS_RECEIPT_LEN + 1];
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
    long count = hs_delivery_count(&r);
    if (count != msg->count + 1)
        prop_fail(m, "message %d: Hopper-Delivery-Count %ld after %ld", i, count, msg->count);
    msg->count = count;
    if (m->nreceipts == PROP_RECEIPTS)
        prop_fail(m, "more receipts than the test keeps");
    prop_receipt *rc = &m->receipts[m->nreceipts];
    if (!hs_header(&r, "Hopper-Receipt", rc->text, sizeof rc->text) || !hs_is_receipt(rc->text))
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
    long status = hs_on_receipt(&m->s, op == ON_ACK ? "DELETE" : "POST", PROP_CHANNEL, rc->text,
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
    hs_stop_ok(&m->s);
    hs_start_in_ok(&m->s, m->dir, args);
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
        hs_expect_nothing(&m->s, PROP_IDLE_CHANNEL, wait, NULL);
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
        char made_up[HS_RECEIPT_LEN + 1];
        snprintf(made_up, sizeof made_up, "%016llx%016llx", (unsigned long long)next_random(m),
                 (unsigned long long)next_random(m));
        for (int i = 0; i < m->nreceipts; i++)
            if (strcmp(m->receipts[i].text, made_up) == 0)
                return; /* as likely as a lottery win */
        hs_expect_ack(&m->s, PROP_CHANNEL, made_up, 404, "unknown_receipt");
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
    hs_expect_nothing(&m->s, PROP_CHANNEL, "0", NULL);
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
    hs_start_in_ok(&m->s, m->dir, args);
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
    hs_stop_ok(&m->s);
}

int main(void)
{
#define T(test) cmocka_unit_test(test)
#define D(test) cmocka_unit_test_setup_teardown(test, hs_dir_setup, hs_dir_teardown)
    const struct CMUnitTest tests[] = {
        D(test_random_leases_against_a_model),
    };
#undef T
#undef D
    const char *filter = getenv("HOPPER_TEST_FILTER"); /* e.g. "*order*" */
    if (filter)
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
