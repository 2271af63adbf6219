/* test_message.c - tests of core/src/message.c: one-allocation messages and
 * the in-memory FIFO with its byte count. */
#include "test_util.h"

#include "alloc.h"
#include "message.h"

#include <stdlib.h>
#include <string.h>

static hop__msg *msg_with_id(uint64_t id, size_t len)
{
    hop__msg *m = hop__msg_new(len);
    assert_non_null(m);
    tu_fill_id(m->data, len, id);
    return m;
}

static void test_msg_new_and_of(void **state)
{
    (void)state;
    static const size_t lens[] = {0, 1, 15, 16, 17, 1000, 1 << 16};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        hop__msg *m = hop__msg_new(lens[i]);
        assert_non_null(m);
        assert_int_equal(m->len, lens[i]);
        assert_null(m->next);
        assert_int_equal((uintptr_t)m->data % 16, 0);
        memset(m->data, 0xEE, lens[i]); /* the payload is all ours (ASan checks) */
        assert_ptr_equal(hop__msg_of(m->data), m);
        hop__msg_free(m);
    }
    assert_null(hop__msg_of(NULL));
    hop__msg_free(NULL);
    assert_null(hop__msg_new(SIZE_MAX));
    assert_null(hop__msg_new(SIZE_MAX - sizeof(hop__msg) + 1));
}

/* A pointer into a block that is not a message is not taken for one. */
static void test_msg_of_rejects_foreign_block(void **state)
{
    (void)state;
    unsigned char *block = calloc(1, sizeof(hop__msg) + 16);
    assert_non_null(block);
    assert_null(hop__msg_of(block + offsetof(hop__msg, data)));
    free(block);
}

static void test_cost_matches_public(void **state)
{
    (void)state;
    for (size_t len = 0; len < 3000; len += 13)
        assert_int_equal(hop__message_cost(len), hop_message_cost(len));
    /* at least the allocation itself */
    assert_true(hop__message_cost(10) >= sizeof(hop__msg) + 10);
}

static void test_membuf_fifo_order(void **state)
{
    (void)state;
    hop__membuf b;
    hop__membuf_init(&b);
    assert_null(hop__membuf_pop_head(&b));
    size_t bytes = 0;
    for (uint64_t id = 0; id < 200; id++) {
        size_t len = 8 + (size_t)(id * 37 % 300);
        hop__membuf_push_tail(&b, msg_with_id(id, len));
        bytes += hop_message_cost(len);
        assert_int_equal(b.count, id + 1);
        assert_int_equal(b.bytes, bytes);
    }
    for (uint64_t id = 0; id < 200; id++) {
        hop__msg *m = hop__membuf_pop_head(&b);
        assert_non_null(m);
        assert_null(m->next);
        assert_int_equal(tu_id_of(m->data, m->len), id);
        bytes -= hop_message_cost(m->len);
        assert_int_equal(b.bytes, bytes);
        assert_int_equal(b.count, 199 - id);
        hop__msg_free(m);
    }
    assert_null(hop__membuf_pop_head(&b));
    assert_int_equal(b.bytes, 0);
    assert_null(b.head);
    assert_null(b.tail);
    /* usable again after running empty */
    hop__membuf_push_tail(&b, msg_with_id(1000, 8));
    hop__membuf_push_tail(&b, msg_with_id(1001, 8));
    hop__msg *m = hop__membuf_pop_head(&b);
    assert_int_equal(tu_id_of(m->data, m->len), 1000);
    hop__msg_free(m);
    hop__membuf_release(&b);
    assert_int_equal(b.count, 0);
    assert_int_equal(b.bytes, 0);
}

static void test_membuf_push_head(void **state)
{
    (void)state;
    hop__membuf b;
    hop__membuf_init(&b);
    /* head into an empty buffer: it is also the tail */
    hop__membuf_push_head(&b, msg_with_id(5, 8));
    hop__membuf_push_tail(&b, msg_with_id(6, 8));
    hop__membuf_push_head(&b, msg_with_id(4, 8));
    hop__membuf_push_head(&b, msg_with_id(3, 100));
    hop__membuf_push_tail(&b, msg_with_id(7, 0 + 8));
    assert_int_equal(b.count, 5);
    assert_int_equal(b.bytes, 4 * hop_message_cost(8) + hop_message_cost(100));
    for (uint64_t id = 3; id <= 7; id++) {
        hop__msg *m = hop__membuf_pop_head(&b);
        assert_non_null(m);
        assert_int_equal(tu_id_of(m->data, m->len), id);
        hop__msg_free(m);
    }
    assert_null(hop__membuf_pop_head(&b));
    assert_int_equal(b.bytes, 0);
}

/* Random pushes at both ends and pops, against an array model. */
static void test_membuf_random_against_model(void **state)
{
    (void)state;
    enum { CAP = 4096 };
    static uint64_t model[2 * CAP];
    size_t head = CAP, tail = CAP; /* model[head..tail) */
    hop__membuf b;
    hop__membuf_init(&b);
    tu_rng rng = {99};
    uint64_t next_id = 0;
    size_t bytes = 0;
    for (int op = 0; op < 20000; op++) {
        uint64_t r = tu_range(&rng, 0, 9);
        if (r < 4 && tail < 2 * CAP) {
            size_t len = (size_t)tu_range(&rng, 8, 64);
            hop__membuf_push_tail(&b, msg_with_id(next_id, len));
            model[tail++] = next_id++;
            bytes += hop_message_cost(len);
        } else if (r < 6 && head > 0) {
            size_t len = (size_t)tu_range(&rng, 8, 64);
            hop__membuf_push_head(&b, msg_with_id(next_id, len));
            model[--head] = next_id++;
            bytes += hop_message_cost(len);
        } else {
            hop__msg *m = hop__membuf_pop_head(&b);
            if (head == tail) {
                assert_null(m);
            } else {
                assert_non_null(m);
                assert_int_equal(tu_id_of(m->data, m->len), model[head++]);
                bytes -= hop_message_cost(m->len);
                hop__msg_free(m);
            }
        }
        assert_int_equal(b.count, tail - head);
        assert_int_equal(b.bytes, bytes);
    }
    hop__membuf_release(&b); /* frees the rest (ASan reports a leak otherwise) */
    assert_int_equal(b.count, 0);
}

static void *fail_malloc(size_t n)
{
    (void)n;
    return NULL;
}

static void test_msg_new_out_of_memory(void **state)
{
    (void)state;
    hop__alloc_set_malloc(fail_malloc);
    hop__msg *m = hop__msg_new(10);
    void *p = hop__calloc(2, 8);
    hop__alloc_set_malloc(NULL);
    assert_null(m);
    assert_null(p);
    m = hop__msg_new(10);
    assert_non_null(m);
    hop__msg_free(m);
    assert_null(hop__calloc(SIZE_MAX / 2, 4)); /* overflow, not a tiny block */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_msg_new_and_of),
        cmocka_unit_test(test_msg_of_rejects_foreign_block),
        cmocka_unit_test(test_cost_matches_public),
        cmocka_unit_test(test_membuf_fifo_order),
        cmocka_unit_test(test_membuf_push_head),
        cmocka_unit_test(test_membuf_random_against_model),
        cmocka_unit_test(test_msg_new_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
