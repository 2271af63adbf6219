/* test_waiter.c - tests of the waiter half of core/src/channel.c:
 * hop_recv_or_arm(), the callback, its order, cancel and close. */
#include "test_util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* What one waiter's callback saw. */
typedef struct seen {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int calls;
    hop_err err;
    void *data;
    size_t len;
    pthread_t thread; /* who called */
    int order;        /* global call order */
    /* optional extra work inside the callback */
    hop_channel *ch;
    bool requeue;   /* give the message back */
    bool send_more; /* send message id 1000 from inside the callback */
    hop_err inner_err;
} seen;

static int call_counter;
static pthread_mutex_t counter_lock = PTHREAD_MUTEX_INITIALIZER;

static void seen_init(seen *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    s->err = (hop_err)-1;
}

static void seen_destroy(seen *s)
{
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
}

static void on_ready(void *arg, hop_err err, void *data, size_t len)
{
    seen *s = arg;
    pthread_mutex_lock(&counter_lock);
    int order = ++call_counter;
    pthread_mutex_unlock(&counter_lock);
    hop_err inner = HOP_OK;
    if (err == HOP_OK && s->requeue) {
        inner = hop_requeue(s->ch, data, len);
        data = NULL;
    }
    if (err == HOP_OK && s->send_more) {
        unsigned char buf[16];
        tu_fill_id(buf, sizeof buf, 1000);
        inner = hop_send(s->ch, buf, sizeof buf);
    }
    pthread_mutex_lock(&s->lock);
    s->calls++;
    s->err = err;
    s->data = data;
    s->len = len;
    s->thread = pthread_self();
    s->order = order;
    s->inner_err = inner;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

static int calls_of(seen *s)
{
    pthread_mutex_lock(&s->lock);
    int n = s->calls;
    pthread_mutex_unlock(&s->lock);
    return n;
}

static hop_err send_id(hop_channel *ch, uint64_t id, size_t len)
{
    static unsigned char buf[1 << 16];
    tu_fill_id(buf, len, id);
    return hop_send(ch, buf, len);
}

static hop_limits small_limits(void)
{
    return tu_limits(4 * hop_message_cost(100), 1000, SIZE_MAX, 10000);
}

/* A message is ready: it comes back at once and the waiter stays idle. */
static void test_ready_message_returned_at_once(void **state)
{
    tu_dir *d = *state;
    hop_channel *ch = tu_open(d, small_limits());
    seen s;
    seen_init(&s);
    hop_waiter *w;
    assert_int_equal(hop_waiter_new(on_ready, &s, &w), HOP_OK);
    assert_int_equal(send_id(ch, 7, 50), HOP_OK);
    void *data = NULL;
    size_t len = 0;
    assert_int_equal(hop_recv_or_arm(ch, w, &data, &len), HOP_OK);
    assert_int_equal(len, 50);
    assert_int_equal(tu_id_of(data, len), 7);
    hop_free(data);
    assert_int_equal(tu_stats(ch).waiting_receivers, 0);
    assert_false(hop_waiter_cancel(w)); /* never armed */
    assert_int_equal(send_id(ch, 8, 50), HOP_OK);
    assert_int_equal(calls_of(&s), 0);
    assert_int_equal(tu_stats(ch).messages, 1);
    hop_waiter_free(w);
    hop_channel_close(ch);
    seen_destroy(&s);
}

typedef struct sender_arg {
    hop_channel *ch;
    uint64_t id;
    size_t len;
    hop_err err;
    pthread_t self;
} sender_arg;

static void *sender(void *arg)
{
    sender_arg *a = arg;
    a->self = pthread_self();
    a->err = send_id(a->ch, a->id, a->len);
    return NULL;
}

/* Nothing ready: the waiter is armed and called exactly once, from the
 * thread whose send made the message available. */
static void test_arm_and_fire_from_sender_thread(void **state)
{
    tu_dir *d = *state;
    hop_channel *ch = tu_open(d, small_limits());
    seen s;
    seen_init(&s);
    hop_waiter *w;
    assert_int_equal(hop_waiter_new(on_ready, &s, &w), HOP_OK);
    void *data = (void *)(uintptr_t)1;
    size_t len = 2;
    assert_int_equal(hop_recv_or_arm(ch, w, &data, &len), HOP_TIMEOUT);
    assert_ptr_equal(data, (void *)(uintptr_t)1);
    assert_int_equal(len, 2);
    assert_int_equal(tu_stats(ch).waiting_receivers, 1);
    /* armed twice is refused */
    assert_int_equal(hop_recv_or_arm(ch, w, &data, &len), HOP_INVALID);
    assert_int_equal(tu_stats(ch).waiting_receivers, 1);

    sender_arg a = {.ch = ch, .id = 11, .len = 60};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, sender, &a), 0);
    pthread_join(t, NULL); /* the callback ran inside hop_send() */
    assert_int_equal(a.err, HOP_OK);
    assert_int_equal(calls_of(&s), 1);
    assert_int_equal(s.err, HOP_OK);
    assert_true(pthread_equal(s.thread, a.self));
    assert_int_equal(s.len, 60);
    assert_int_equal(tu_id_of(s.data, s.len), 11);
    hop_free(s.data);
    hop_stats st = tu_stats(ch);
    assert_int_equal(st.waiting_receivers, 0);
    assert_int_equal(st.messages, 0);
    assert_int_equal(st.received_total, 1);

    /* one-shot: the next message stays in the channel */
    assert_int_equal(send_id(ch, 12, 60), HOP_OK);
    assert_int_equal(calls_of(&s), 1);
    assert_false(hop_waiter_cancel(w)); /* delivered: nothing to cancel */
    assert_int_equal(hop_recv(ch, 0, &data, &len), HOP_OK);
    assert_int_equal(tu_id_of(data, len), 12);
    hop_free(data);

    /* re-armable after delivery */
    assert_int_equal(hop_recv_or_arm(ch, w, &data, &len), HOP_TIMEOUT);
    assert_int_equal(send_id(ch, 13, 60), HOP_OK);
    assert_int_equal(calls_of(&s), 2);
    assert_int_equal(tu_id_of(s.data, s.len), 13);
    hop_free(s.data);
    hop_waiter_free(w);
    hop_channel_close(ch);
    seen_destroy(&s);
}

/* Waiters are served in the order they were armed. */
static void test_waiters_served_in_arming_order(void **state)
{
    tu_dir *d = *state;
    hop_channel *ch = tu_open(d, small_limits());
    enum { N = 5 };
    seen s[N];
    hop_waiter *w[N];
    static const int arm_order[N] = {3, 0, 4, 1, 2};
    for (int i = 0; i < N; i++) {
        seen_init(&s[i]);
        assert_int_equal(hop_waiter_new(on_ready, &s[i], &w[i]), HOP_OK);
    }
    void *data;
    size_t len;
    for (int i = 0; i < N; i++)
        assert_int_equal(hop_recv_or_arm(ch, w[arm_order[i]], &data, &len), HOP_TIMEOUT);
    assert_int_equal(tu_stats(ch).waiting_receivers, N);
    /* cancel one in the middle: the rest keep their order */
    assert_true(hop_waiter_cancel(w[4]));
    assert_int_equal(tu_stats(ch).waiting_receivers, N - 1);
    static const int served[N - 1] = {3, 0, 1, 2};
    for (int k = 0; k < N - 1; k++) {
        assert_int_equal(send_id(ch, (uint64_t)(100 + k), 20), HOP_OK);
        for (int i = 0; i < N; i++) { /* served[0..k] have been called, once */
            int want = 0;
            for (int j = 0; j <= k; j++)
                want |= served[j] == i;
            assert_int_equal(calls_of(&s[i]), want);
        }
        seen *got = &s[served[k]];
        assert_int_equal(got->err, HOP_OK);
        assert_int_equal(tu_id_of(got->data, got->len), 100 + k);
        hop_free(got->data);
    }
    assert_int_equal(send_id(ch, 200, 20), HOP_OK);
    assert_int_equal(calls_of(&s[4]), 0);
    assert_int_equal(tu_stats(ch).messages, 1);
    for (int i = 0; i < N; i++) {
        hop_waiter_free(w[i]);
        seen_destroy(&s[i]);
    }
    hop_channel_close(ch);
}

/* Cancel before a send: true, no callback ever, the message stays. */
static void test_cancel_before_send(void **state)
{
    tu_dir *d = *state;
    hop_channel *ch = tu_open(d, small_limits());
    seen s;
    seen_init(&s);
    hop_waiter *w;
    assert_int_equal(hop_waiter_new(on_ready, &s, &w), HOP_OK);
    assert_false(hop_waiter_cancel(w)); /* never armed */
    void *data;
    size_t len;
    assert_int_equal(hop_recv_or_arm(ch, w, &data, &len), HOP_TIMEOUT);
    assert_true(hop_waiter_cancel(w));
    assert_false(hop_waiter_cancel(w)); /* already idle */
    assert_int_equal(tu_stats(ch).waiting_receivers, 0);
    assert_int_equal(send_id(ch, 1, 20), HOP_OK);
    assert_int_equal(send_id(ch, 2, 5000), HOP_OK); /* disk too */
    assert_int_equal(calls_of(&s), 0);
    assert_int_equal(tu_stats(ch).messages, 2);
    hop_channel_close(ch); /* not armed: not called at close either */
    assert_int_equal(calls_of(&s), 0);
    hop_waiter_free(w);
    seen_destroy(&s);
}

/* Close calls every armed waiter once with HOP_CLOSED and no data. */
static void test_close_calls_armed_waiters(void **state)
{
    tu_dir *d = *state;
    hop_channel *ch = tu_open(d, small_limits());
    enum { N = 3 };
    seen s[N];
    hop_waiter *w[N];
    void *data;
    size_t len;
    for (int i = 0; i < N; i++) {
        seen_init(&s[i]);
        assert_int_equal(hop_waiter_new(on_ready, &s[i], &w[i]), HOP_OK);
        assert_int_equal(hop_recv_or_arm(ch, w[i], &data, &len), HOP_TIMEOUT);
    }
    pthread_mutex_lock(&counter_lock);
    int before = call_counter;
    pthread_mutex_unlock(&counter_lock);
    hop_channel_close(ch);
    for (int i = 0; i < N; i++) {
        assert_int_equal(s[i].calls, 1);
        assert_int_equal(s[i].err, HOP_CLOSED);
        assert_null(s[i].data);
        assert_int_equal(s[i].len, 0);
        assert_int_equal(s[i].order, before + 1 + i); /* in arming order */
        hop_waiter_free(w[i]);
        seen_destroy(&s[i]);
    }
}

/* A message that arrives through the disk (too big for memory, or behind
 * other disk messages) reaches an armed waiter too. */
static void test_disk_message_delivered_to_waiter(void **state)
{
    tu_dir *d = *state;
    hop_channel *ch = tu_open(d, small_limits());
    seen s;
    seen_init(&s);
    hop_waiter *w;
    assert_int_equal(hop_waiter_new(on_ready, &s, &w), HOP_OK);
    void *data;
    size_t len;
    assert_int_equal(hop_recv_or_arm(ch, w, &data, &len), HOP_TIMEOUT);
    assert_int_equal(send_id(ch, 21, 5000), HOP_OK); /* bigger than memory */
    assert_int_equal(calls_of(&s), 1);
    assert_int_equal(s.err, HOP_OK);
    assert_int_equal(s.len, 5000);
    assert_int_equal(tu_id_of(s.data, s.len), 21);
    hop_free(s.data);
    hop_stats st = tu_stats(ch);
    assert_int_equal(st.disk_files, 0); /* read and deleted */
    assert_int_equal(tu_count_qfiles(d->chan), 0);

    /* with messages on disk, arming takes one at once */
    for (uint64_t id = 0; id < 10; id++)
        assert_int_equal(send_id(ch, id, 100), HOP_OK);
    assert_true(tu_stats(ch).disk_messages > 0);
    for (uint64_t id = 0; id < 10; id++) {
        assert_int_equal(hop_recv_or_arm(ch, w, &data, &len), HOP_OK);
        assert_int_equal(tu_id_of(data, len), id);
        hop_free(data);
    }
    assert_int_equal(calls_of(&s), 1);
    hop_waiter_free(w);
    hop_channel_close(ch);
    seen_destroy(&s);
}

/* A requeue serves an armed waiter; a callback may call back into the
 * channel (requeue, send) without deadlock. */
static void test_requeue_and_reentrant_callbacks(void **state)
{
    tu_dir *d = *state;
    hop_channel *ch = tu_open(d, small_limits());
    seen a, b;
    seen_init(&a);
    seen_init(&b);
    hop_waiter *wa, *wb;
    assert_int_equal(hop_waiter_new(on_ready, &a, &wa), HOP_OK);
    assert_int_equal(hop_waiter_new(on_ready, &b, &wb), HOP_OK);
    void *data;
    size_t len;

    /* a requeued message goes to an armed waiter */
    assert_int_equal(send_id(ch, 1, 30), HOP_OK);
    assert_int_equal(hop_recv(ch, 0, &data, &len), HOP_OK);
    void *none;
    size_t none_len;
    assert_int_equal(hop_recv_or_arm(ch, wa, &none, &none_len), HOP_TIMEOUT);
    assert_int_equal(hop_requeue(ch, data, len), HOP_OK);
    assert_int_equal(calls_of(&a), 1);
    assert_int_equal(tu_id_of(a.data, a.len), 1);

    /* a's callback gives the message back; b, armed after a, gets it */
    a.ch = ch;
    a.requeue = true;
    assert_int_equal(hop_recv_or_arm(ch, wa, &data, &len), HOP_TIMEOUT);
    assert_int_equal(hop_recv_or_arm(ch, wb, &data, &len), HOP_TIMEOUT);
    assert_int_equal(hop_requeue(ch, a.data, a.len), HOP_OK);
    assert_int_equal(calls_of(&a), 2);
    assert_int_equal(a.inner_err, HOP_OK);
    assert_int_equal(calls_of(&b), 1);
    assert_int_equal(tu_id_of(b.data, b.len), 1);
    hop_free(b.data);

    /* a callback that sends: the new message stays for the next receiver */
    b.ch = ch;
    b.send_more = true;
    assert_int_equal(hop_recv_or_arm(ch, wb, &data, &len), HOP_TIMEOUT);
    assert_int_equal(send_id(ch, 2, 30), HOP_OK);
    assert_int_equal(calls_of(&b), 2);
    assert_int_equal(b.inner_err, HOP_OK);
    assert_int_equal(tu_id_of(b.data, b.len), 2);
    hop_free(b.data);
    assert_int_equal(hop_recv(ch, 0, &data, &len), HOP_OK);
    assert_int_equal(tu_id_of(data, len), 1000);
    hop_free(data);

    hop_waiter_free(wa);
    hop_waiter_free(wb);
    hop_channel_close(ch);
    seen_destroy(&a);
    seen_destroy(&b);
}

/* A blocked hop_recv() and an armed waiter both count as waiting. */
static void *blocked_recv(void *arg)
{
    hop_channel *ch = arg;
    void *data;
    size_t len;
    hop_err err = hop_recv(ch, -1, &data, &len);
    if (err == HOP_OK)
        hop_free(data);
    return (void *)(uintptr_t)err;
}

static void test_waiting_receivers_counts_both(void **state)
{
    tu_dir *d = *state;
    hop_channel *ch = tu_open(d, small_limits());
    seen s;
    seen_init(&s);
    hop_waiter *w;
    assert_int_equal(hop_waiter_new(on_ready, &s, &w), HOP_OK);
    void *data;
    size_t len;
    assert_int_equal(hop_recv_or_arm(ch, w, &data, &len), HOP_TIMEOUT);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, blocked_recv, ch), 0);
    int64_t until = tu_now_ms() + 10000;
    while (tu_stats(ch).waiting_receivers != 2 && tu_now_ms() < until)
        tu_sleep_ms(1);
    assert_int_equal(tu_stats(ch).waiting_receivers, 2);
    hop_channel_close(ch);
    void *ret;
    pthread_join(t, &ret);
    assert_int_equal((hop_err)(uintptr_t)ret, HOP_CLOSED);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.err, HOP_CLOSED);
    hop_waiter_free(w);
    seen_destroy(&s);
}

static void test_invalid_arguments(void **state)
{
    tu_dir *d = *state;
    hop_waiter *w = (hop_waiter *)(uintptr_t)1;
    assert_int_equal(hop_waiter_new(NULL, NULL, &w), HOP_INVALID);
    assert_ptr_equal(w, (hop_waiter *)(uintptr_t)1);
    assert_int_equal(hop_waiter_new(on_ready, NULL, NULL), HOP_INVALID);
    assert_int_equal(hop_waiter_new(on_ready, NULL, &w), HOP_OK);
    hop_channel *ch = tu_open(d, small_limits());
    void *data;
    size_t len;
    assert_int_equal(hop_recv_or_arm(NULL, w, &data, &len), HOP_INVALID);
    assert_int_equal(hop_recv_or_arm(ch, NULL, &data, &len), HOP_INVALID);
    assert_int_equal(hop_recv_or_arm(ch, w, NULL, &len), HOP_INVALID);
    assert_int_equal(hop_recv_or_arm(ch, w, &data, NULL), HOP_INVALID);
    assert_int_equal(tu_stats(ch).waiting_receivers, 0);
    assert_false(hop_waiter_cancel(NULL));
    hop_waiter_free(w);
    hop_waiter_free(NULL);
    hop_channel_close(ch);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, tu_dir_setup, tu_dir_teardown)
    const struct CMUnitTest tests[] = {
        T(test_ready_message_returned_at_once),
        T(test_arm_and_fire_from_sender_thread),
        T(test_waiters_served_in_arming_order),
        T(test_cancel_before_send),
        T(test_close_calls_armed_waiters),
        T(test_disk_message_delivered_to_waiter),
        T(test_requeue_and_reentrant_callbacks),
        T(test_waiting_receivers_counts_both),
        T(test_invalid_arguments),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
