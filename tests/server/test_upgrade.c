/* test_upgrade.c - a data directory written by a release before opens
 * with nothing lost: fixtures/datadir-envelope-v2/ (hopper 6223057:
 * messages stored as envelope version 2, before message ids) and
 * fixtures/datadir-envelope-v3/ (hopper 6dd1eb2: version 3, before TTLs),
 * both made with fixtures/make-datadir.sh (fixtures/README.md), are
 * copied and opened by this server. Every message comes back byte for
 * byte, in order, with its Content-Type, its kept header and its delivery
 * count, and with a message id (derived from its bytes in version 2,
 * stored in version 3) that stays the same when it is handed out again,
 * released, given back by a stop and read after a restart; a message
 * posted next gets a random id of its own.
 *
 * The table below and the script must agree: change neither alone, and
 * never remake a fixture with a newer hopper (it would no longer be what
 * the release before wrote). */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define FIXTURE_V2 FIXTURES_DIR "/datadir-envelope-v2"
#define FIXTURE_V3 FIXTURES_DIR "/datadir-envelope-v3"
/* The flags the fixture was written with that matter to reading it. */
#define KEEP_ARGS "--keep-headers", "X-Sig"

/* ---- what the fixture holds ---- */

enum body_kind {
    TEXT,      /* the text given */
    ALL_BYTES, /* the 256 byte values, 0 to 255 */
    BIG,       /* big_body() */
};

typedef struct old_message {
    const char *channel;
    enum body_kind kind;
    const char *text; /* TEXT: the body */
    int big;          /* BIG: which one */
    const char *type; /* the Content-Type it comes back with */
    const char *sig;  /* its X-Sig, NULL: none */
    long count;       /* its Hopper-Delivery-Count when first handed out */
} old_message;

/* In the order of the script, channel by channel. "big" 1 was consumed
 * (its journal says so); "once" was leased, released and leased again
 * when the server stopped; "poison" went to poison.dead after three
 * hand-outs, leaving its own channel empty (removed at start). */
static const old_message OLD[] = {
    {"plain", TEXT, "hello", 0, "text/plain", "sha256=0a1b2c", 1},
    {"plain", TEXT, "no type given", 0, "application/octet-stream", NULL, 1},
    {"plain", TEXT, "{\"n\":3}", 0, "application/json; charset=utf-8", NULL, 1},
    {"plain", TEXT, "", 0, "text/plain", "empty body", 1},
    {"plain", ALL_BYTES, NULL, 0, "application/octet-stream", "all bytes", 1},
    {"big", BIG, NULL, 2, "text/plain", "big-2", 1},
    {"big", BIG, NULL, 3, "text/plain", "big-3", 1},
    {"big", BIG, NULL, 4, "text/plain", "big-4", 1},
    {"big", BIG, NULL, 5, "text/plain", "big-5", 1},
    {"big", BIG, NULL, 6, "text/plain", "big-6", 1},
    {"leased", TEXT, "once", 0, "text/plain", NULL, 3},
    {"leased", TEXT, "twice", 0, "text/plain", NULL, 1},
    {"batch", TEXT, "part one", 0, "text/plain", "part-1", 1},
    {"batch", TEXT, "part two", 0, "application/octet-stream", NULL, 1},
    {"batch", TEXT, "[3]", 0, "application/json", "part-3", 1},
    {"poison.dead", TEXT, "poison", 0, "text/plain", "poison", 4},
};
#define OLD_COUNT (sizeof OLD / sizeof OLD[0])
#define BIG_BYTES 20000

/* Big message k: the lines "big <k> line <5 digits>", numbered from 1,
 * cut at BIG_BYTES (the script's seq -f ... | head -c). */
static void big_body(int k, unsigned char out[BIG_BYTES])
{
    size_t len = 0;
    for (int line = 1; len < BIG_BYTES; line++) {
        char text[32];
        int n = snprintf(text, sizeof text, "big %d line %05d\n", k, line);
        size_t take = (size_t)n < BIG_BYTES - len ? (size_t)n : BIG_BYTES - len;
        memcpy(out + len, text, take);
        len += take;
    }
}

/* The body of m. OUT: out. Returns its length. */
static size_t body_of(const old_message *m, unsigned char out[BIG_BYTES])
{
    switch (m->kind) {
    case TEXT:
        memcpy(out, m->text, strlen(m->text));
        return strlen(m->text);
    case ALL_BYTES:
        for (int i = 0; i < 256; i++)
            out[i] = (unsigned char)i;
        return 256;
    case BIG:
        big_body(m->big, out);
        return BIG_BYTES;
    }
    return 0;
}

/* ---- checks ---- */

/* r must be 200 with m, handed out for the count-th time. OUT: id. */
static void expect_old(hs_reply *r, const old_message *m, long count,
                       char id[HS_MESSAGE_ID_LEN + 1])
{
    static unsigned char body[BIG_BYTES];
    size_t len = body_of(m, body);
    char sig[128] = "";
    assert_int_equal(r->status, 200);
    if (r->len != len || memcmp(r->body, body, len) != 0)
        fail_msg("%s: expected a body of %zu bytes, got %zu: '%.40s'", m->channel, len, r->len,
                 (const char *)r->body);
    assert_string_equal(r->content_type, m->type);
    assert_int_equal(hs_header_count(r, "X-Sig"), m->sig ? 1 : 0);
    if (m->sig) {
        assert_true(hs_header(r, "X-Sig", sig, sizeof sig));
        assert_string_equal(sig, m->sig);
    }
    assert_int_equal(hs_delivery_count(r), count);
    hs_expect_message_id(r, id);
}

/* The next message of its channel, leased (lease not NULL) or not: it must
 * be m, handed out for the count-th time. OUT: id; receipt (leased). */
static void expect_next(const hs_server *s, const old_message *m, const char *lease, long count,
                        char id[HS_MESSAGE_ID_LEN + 1], char receipt[HS_RECEIPT_LEN + 1])
{
    hs_reply r;
    hs_get_leased(s, m->channel, "0", lease, &r);
    expect_old(&r, m, count, id);
    if (lease)
        assert_true(hs_header(&r, "Hopper-Receipt", receipt, HS_RECEIPT_LEN + 1));
    hs_reply_free(&r);
}

/* After OLD[i], its channel has nothing more to hand out. */
static void expect_channel_done(const hs_server *s, size_t i)
{
    if (i + 1 == OLD_COUNT || strcmp(OLD[i + 1].channel, OLD[i].channel) != 0)
        hs_expect_nothing(s, OLD[i].channel, "0", NULL);
}

/* ---- the test ---- */

/* A copy of fixture in the test's directory. */
static void copy_fixture(const char *fixture, const char *dir)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cp -R '%s/.' '%s'", fixture, dir);
    assert_int_equal(system(cmd), 0);
}

/* Each old message, leased, released and leased again: the same id both
 * times, one more delivery; ids all different (the messages are). The
 * leases are left for the stop to give back. OUT: ids. */
static void lease_each_twice(const hs_server *s, char ids[][HS_MESSAGE_ID_LEN + 1])
{
    char again[HS_MESSAGE_ID_LEN + 1], receipt[HS_RECEIPT_LEN + 1];
    for (size_t i = 0; i < OLD_COUNT; i++) {
        expect_next(s, &OLD[i], "60", OLD[i].count, ids[i], receipt);
        for (size_t k = 0; k < i; k++)
            assert_string_not_equal(ids[k], ids[i]);
        hs_expect_release(s, OLD[i].channel, receipt, 204, NULL);
        expect_next(s, &OLD[i], "60", OLD[i].count + 1, again, receipt);
        assert_string_equal(again, ids[i]);
        expect_channel_done(s, i);
    }
}

/* Two messages posted now, with the same bytes: random ids, so different,
 * and different from the old ones (a derived id would be the same). */
static void expect_new_ids(const hs_server *s, char old[][HS_MESSAGE_ID_LEN + 1])
{
    char ids[2][HS_MESSAGE_ID_LEN + 1];
    for (int i = 0; i < 2; i++)
        hs_expect_post(s, "plain", "new", 202);
    for (int i = 0; i < 2; i++) {
        hs_reply r;
        assert_int_equal(hs_get_leased(s, "plain", "0", NULL, &r), 200);
        assert_string_equal((char *)r.body, "new");
        assert_int_equal(hs_delivery_count(&r), 1);
        hs_expect_message_id(&r, ids[i]);
        hs_reply_free(&r);
        for (size_t k = 0; k < OLD_COUNT; k++)
            assert_string_not_equal(ids[i], old[k]);
    }
    assert_string_not_equal(ids[0], ids[1]);
}

/* A copy of fixture opens in dir, and everything in it comes back. */
static void expect_fixture_opens(const char *fixture, const char *dir)
{
    copy_fixture(fixture, dir);
    hs_server s;
    const char *args[] = {KEEP_ARGS, NULL};
    hs_start_in_ok(&s, dir, args);
    assert_true(hs_log_wait(&s, "recovered 5 channel(s) with 16 message(s)", 0));
    assert_int_equal(hs_status_value(&s, "poison", "messages"), -1); /* empty: removed */
    char ids[OLD_COUNT][HS_MESSAGE_ID_LEN + 1], id[HS_MESSAGE_ID_LEN + 1];
    lease_each_twice(&s, ids);
    hs_stop_ok(&s); /* gives every lease back: one more delivery each */

    hs_start_in_ok(&s, dir, args);
    for (size_t i = 0; i < OLD_COUNT; i++) {
        expect_next(&s, &OLD[i], NULL, OLD[i].count + 2, id, NULL);
        assert_string_equal(id, ids[i]);
        expect_channel_done(&s, i);
    }
    expect_new_ids(&s, ids);
    hs_stop_ok(&s);
}

static void test_data_directory_of_envelope_v2_opens(void **state)
{
    expect_fixture_opens(FIXTURE_V2, *state);
}

static void test_data_directory_of_envelope_v3_opens(void **state)
{
    expect_fixture_opens(FIXTURE_V3, *state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_data_directory_of_envelope_v2_opens, hs_dir_setup,
                                        hs_dir_teardown),
        cmocka_unit_test_setup_teardown(test_data_directory_of_envelope_v3_opens, hs_dir_setup,
                                        hs_dir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
