/* group_commit.h - durable sends share syncs (group_commit.c): a durable
 * send appends its record and queues a request here; the library's sync
 * threads sync the files of every request queued so far at once, publish
 * the records, and tell each sender how it went. */
#ifndef HOP_GROUP_COMMIT_H
#define HOP_GROUP_COMMIT_H

#include "channel_state.h"

/* A durable send waiting for the sync that covers its record. fn is
 * called once with the outcome (HOP_OK: synced and readable; HOP_IO with
 * the errno: refused, nothing stored), on a sync thread, without locks; it
 * may free the request. */
typedef struct hop__sync_req {
    struct hop__sync_req *next;
    hop__disk_span span; /* where its record was appended */
    bool kept;           /* its sync failed and its record could not be cut off */
    hop_sent_fn fn;
    void *arg;
} hop__sync_req;

/* Called on a sync thread, without locks, once n records of ch were synced
 * and published: readable now. */
typedef void (*hop__published_fn)(hop_channel *ch, size_t n);

/* ch, a durable channel being opened, joins the sync threads (the first
 * one starts them); published tells it of the records they publish.
 * HOP_NOMEM if no thread could be started: nothing changed. */
hop_err hop__group_commit_open(hop_channel *ch, hop__published_fn published);
/* At close: wait until every request of ch settled (every callback ran),
 * then leave the sync threads (the last channel stops them). A channel that
 * did not join: nothing. */
void hop__group_commit_close(hop_channel *ch);

/* Wait until no request of ch waits for a sync (at once if ch did not
 * join). Without locks. */
void hop__group_commit_wait_idle(hop_channel *ch);

/* What a sender that queued requests must do next. */
typedef enum hop__commit_next {
    HOP__COMMIT_JOINED, /* nothing: a round under way or queued takes them */
    HOP__COMMIT_HAND,   /* hop__group_commit_start() */
    HOP__COMMIT_SOLO,   /* the last round had one sender: hop__group_commit_lead(), or _start() */
} hop__commit_next;

/* Queue reqs[0..n), one sender's records just appended and staged, in the
 * order of the appends: write_lock held. Returns what the caller must do
 * once write_lock is dropped. */
hop__commit_next hop__group_commit_enqueue(hop_channel *ch, hop__sync_req *reqs, size_t n);
/* Hand ch to the sync threads. Without locks. */
void hop__group_commit_start(hop_channel *ch);
/* Instead of hop__group_commit_start(): make one round now, on the
 * calling thread, then leave ch idle, or to the sync threads if requests
 * were queued meanwhile. Without locks. */
void hop__group_commit_lead(hop_channel *ch);

/* A blocking durable send: wait until *done, which the fn of its requests
 * sets with hop__group_commit_notify(). Without locks. */
void hop__group_commit_wait(hop_channel *ch, const bool *done);
/* Set *done and wake hop__group_commit_wait(). Without locks. */
void hop__group_commit_notify(hop_channel *ch, bool *done);

#endif
