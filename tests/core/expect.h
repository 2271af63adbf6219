/* expect.h - what a channel should hold, and the sends and receives that
 * keep it and check against it: shared by the tests of the channel's
 * parts (test_channel.c, test_send.c, test_recv.c, test_flight.c,
 * test_disk.c), compiled into each. They fail the test through cmocka:
 * main thread only. */
#ifndef HOP_TEST_EXPECT_H
#define HOP_TEST_EXPECT_H

#include "test_util.h"

/* What the channel should hold, oldest first: message ids and lengths. */
typedef struct expect {
    uint64_t *id;
    size_t *len;
    size_t cap, head, tail; /* [head, tail) */
} expect;

/* Room for cap messages, and as many pushed at the head. */
void expect_init(expect *e, size_t cap);
void expect_free(expect *e);
size_t expect_size(const expect *e);
void expect_push(expect *e, uint64_t id, size_t len);

/* Send message id of len bytes (len >= 8 so the id is recoverable). */
hop_err send_id(hop_channel *ch, uint64_t id, size_t len);
/* Send it, which must succeed; pushed on e unless e is NULL. */
void send_ok(hop_channel *ch, expect *e, uint64_t id, size_t len);
/* Receive the next message, which must be the head of e. */
void recv_expected(hop_channel *ch, expect *e);
/* Receive all of e, and then nothing: the channel is empty. */
void recv_all_expected(hop_channel *ch, expect *e);
/* The queue files of d's channel (at most 1000): tu_list_qfiles(). */
int qfiles(const tu_dir *d, uint64_t *seqs, uint64_t *sizes);

#endif
