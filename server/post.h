/* post.h - POST /channels/NAME: store one message, or a batch (a
 * multipart/mixed body, one message a part, batch.h), in the channel.
 *
 * 202 once stored; with --durable once synced to a queue file (the
 * connection is suspended meanwhile, so that the senders of a channel
 * share syncs without a thread each). A declared body beyond the limit is
 * 413 before any byte is read. A message the channel refuses after its
 * body came (507 full, or a 5xx) is answered with its own payload, so the
 * sender can keep it or send it elsewhere; Hopper-Error says why.
 *
 * The body is read into the envelope it is stored as (envelope.h): room
 * for the prefix first, then the body as it arrives, in one buffer. The
 * prefix is written once the body is complete, just before the send: that
 * is when the message is accepted, and gets its id and receive time (a
 * batch's parts too, batch.c: an id each, one time for all).
 *
 * A POST to a channel --verify covers (verify.h) is stored only if its
 * signature over the body as received is good; else 401 bad_signature
 * with its payload back, and the channel is not made.
 *
 * A POST with a key (idempotency.h) already accepted on the channel is
 * answered 200 duplicate and stores nothing; its key is reserved just
 * before the send and recorded once the send is accepted (with --durable,
 * once synced, and the key synced too, before the 202). */
#ifndef HOPPER_SERVER_POST_H
#define HOPPER_SERVER_POST_H

#include "idempotency.h"
#include "multipart.h"
#include "request.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct post_request {
    request base;
    char *content_type; /* as sent, NULL when absent or empty; new */
    unsigned char *buf; /* the envelope: prefix (written last), then the body; new */
    size_t prefix_len, body_len, cap;
    size_t kept_bytes; /* names and values of the kept headers: they count
                          toward --max-message-bytes with the body */
    bool batch;        /* a multipart/mixed body, one message a part */
    uint64_t delay_ms; /* ?delay= or Hopper-Delay: visible this long after it is stored */
    uint64_t ttl_ms;   /* ?ttl= or Hopper-TTL (expiry.h), for every message; 0: none */
    char boundary[MULTIPART_BOUNDARY_SIZE];
    idempotency idem; /* its key, reserved around the send (idempotency.h) */
    /* the --verify rule covering the channel, or NULL; borrowed from the
     * options. The channel is opened only once the signature is good. */
    const verify_rule *verify;
    /* --durable only (initialised by begin): the sync's outcome. */
    pthread_mutex_t sync_lock; /* guards sent; orders resume after suspend */
    hop_err sent;
    int sent_errno; /* with sent: the errno of a failed sync */
    bool synced;    /* sent is the outcome (on_synced() came) */
    struct MHD_Connection *conn;
} post_request;

extern const request_handler post_handler;

#endif
