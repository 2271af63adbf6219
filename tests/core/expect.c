/* expect.c - what a channel should hold, and the sends and receives that
 * check against it (see expect.h). Moved from test_channel.c as it was. */
#include "expect.h"

#include <stdlib.h>

void expect_init(expect *e, size_t cap)
{
    e->id = calloc(2 * cap, sizeof *e->id);
    e->len = calloc(2 * cap, sizeof *e->len);
    assert_non_null(e->id);
    assert_non_null(e->len);
    e->cap = 2 * cap;
    e->head = e->tail = cap; /* room to push at the head too */
}

void expect_free(expect *e)
{
    free(e->id);
    free(e->len);
}

size_t expect_size(const expect *e)
{
    return e->tail - e->head;
}

void expect_push(expect *e, uint64_t id, size_t len)
{
    assert_true(e->tail < e->cap);
    e->id[e->tail] = id;
    e->len[e->tail++] = len;
}

/* Send message id of len bytes (len >= 8 so the id is recoverable). */
hop_err send_id(hop_channel *ch, uint64_t id, size_t len)
{
    static unsigned char buf[1 << 18];
    assert_true(len <= sizeof buf);
    tu_fill_id(buf, len, id);
    return hop_send(ch, buf, len);
}

void send_ok(hop_channel *ch, expect *e, uint64_t id, size_t len)
{
    hop_err err = send_id(ch, id, len);
    if (err != HOP_OK)
        fail_msg("send of id %llu (%zu bytes): %s", (unsigned long long)id, len, hop_err_name(err));
    if (e)
        expect_push(e, id, len);
}

/* Receive the next message, which must be the head of e. */
void recv_expected(hop_channel *ch, expect *e)
{
    assert_true(expect_size(e) > 0);
    void *data = NULL;
    size_t len = 0;
    hop_err err = hop_recv(ch, 0, &data, &len);
    if (err != HOP_OK)
        fail_msg("recv, expecting id %llu: %s", (unsigned long long)e->id[e->head],
                 hop_err_name(err));
    uint64_t id = tu_id_of(data, len);
    if (id != e->id[e->head] || len != e->len[e->head])
        fail_msg("recv: got id %llu (%zu bytes), expected id %llu (%zu bytes)",
                 (unsigned long long)id, len, (unsigned long long)e->id[e->head], e->len[e->head]);
    e->head++;
    hop_free(data);
}

void recv_all_expected(hop_channel *ch, expect *e)
{
    while (expect_size(e) > 0)
        recv_expected(ch, e);
    void *data = NULL;
    size_t len = 0;
    assert_int_equal(hop_recv(ch, 0, &data, &len), HOP_TIMEOUT);
    hop_stats s = tu_stats(ch);
    assert_int_equal(s.messages, 0);
    assert_int_equal(s.memory_bytes, 0);
    assert_int_equal(s.disk_messages, 0);
}

int qfiles(const tu_dir *d, uint64_t *seqs, uint64_t *sizes)
{
    return tu_list_qfiles(d->chan, seqs, sizes, 1000);
}