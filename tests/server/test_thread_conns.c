/* test_thread_conns.c - tests of server/thread_conns.c: connections are
 * counted by the thread serving them; and, through the real server, what
 * the count is for: a durable POST makes its own sync only on a thread
 * that serves no other connection, so senders that share one HTTP thread
 * share syncs rather than queue for a sync each. */
#include "harness.h"
#include "thread_conns.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

/* ---- the counter ---- */

static void *start_one(void *arg)
{
    thread_conns_started(arg);
    return NULL;
}

/* Two connections on this thread: not alone; one closed: alone again. One
 * started on another thread counts there, and its close (wherever it is
 * made) counts it down there. */
static void test_counted_by_thread(void **state)
{
    (void)state;
    assert_true(thread_conns_alone());
    void *a = NULL, *b = NULL, *other = NULL;
    thread_conns_started(&a);
    assert_true(thread_conns_alone()); /* the one being handled */
    thread_conns_started(&b);
    assert_false(thread_conns_alone());
    thread_conns_closed(&b);
    assert_true(thread_conns_alone());

    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, start_one, &other), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_non_null(other);
    assert_ptr_not_equal(other, a);
    assert_true(thread_conns_alone());
    thread_conns_closed(&other); /* here, for that thread */
    thread_conns_closed(&a);
    assert_true(thread_conns_alone());
    void *never = NULL;
    thread_conns_closed(&never); /* a connection never counted: nothing */
    assert_true(thread_conns_alone());
}

/* ---- through the server ---- */

#define SENDERS 8
#define EACH 40

typedef struct sender {
    const hs_server *s;
    int index;
    int accepted;
} sender;

static void *send_all(void *arg)
{
    sender *t = arg;
    for (int i = 0; i < EACH; i++) {
        char body[32];
        int len = snprintf(body, sizeof body, "s%d-%03d", t->index, i);
        hs_reply r;
        if (hs_post(t->s, "/channels/shared", body, (size_t)len, "text/plain", &r) != 0)
            break;
        long status = r.status;
        hs_reply_free(&r);
        if (status != 202)
            break;
        t->accepted++;
    }
    return NULL;
}

/* Eight senders on a server with one HTTP thread, --durable: they share
 * syncs (a sender that made its own sync on the only thread would keep the
 * others' requests unread meanwhile, and every POST would cost one sync,
 * one after the other: syncs_total >= the POSTs). Every message is back
 * once, in each sender's order. */
static void test_senders_on_one_thread_share_syncs(void **state)
{
    (void)state;
    const char *args[] = {"--durable", "--threads", "1", NULL};
    hs_server s;
    hs_start_ok(&s, args);
    pthread_t threads[SENDERS];
    sender senders[SENDERS];
    for (int t = 0; t < SENDERS; t++) {
        senders[t] = (sender){.s = &s, .index = t};
        assert_int_equal(pthread_create(&threads[t], NULL, send_all, &senders[t]), 0);
    }
    for (int t = 0; t < SENDERS; t++) {
        assert_int_equal(pthread_join(threads[t], NULL), 0);
        assert_int_equal(senders[t].accepted, EACH);
    }
    long long syncs = hs_status_value(&s, "shared", "syncs_total");
    long long sent = hs_status_value(&s, "shared", "sent_total");
    printf("# %d senders, one HTTP thread: %lld POSTs, %lld syncs\n", SENDERS, sent, syncs);
    assert_int_equal(sent, SENDERS * EACH);
    if (syncs * 4 > sent * 3)
        fail_msg("%lld syncs for %lld POSTs: the senders did not share syncs", syncs, sent);

    int next[SENDERS] = {0};
    for (int n = 0; n < SENDERS * EACH; n++) {
        char text[64];
        assert_int_equal(hs_get_text(&s, "shared", "0", text, sizeof text), 200);
        int who, i;
        assert_int_equal(sscanf(text, "s%d-%d", &who, &i), 2);
        assert_true(who >= 0 && who < SENDERS);
        assert_int_equal(i, next[who]);
        next[who]++;
    }
    char text[64];
    assert_int_equal(hs_get_text(&s, "shared", "0", text, sizeof text), 204);
    hs_stop_ok(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counted_by_thread),
        cmocka_unit_test(test_senders_on_one_thread_share_syncs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
