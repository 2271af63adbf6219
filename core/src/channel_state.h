/* channel_state.h - the state of a channel, shared by the files that
 * implement it: channel.c (open, close, stats), send.c, recv.c (receiving,
 * waiters, requeue), flight.c (holds, consuming), group_commit.c (durable
 * sends sharing syncs), recover.c (the recovery at open), persist.c
 * (the journal, writing memory to disk at close), peek.c (showing
 * messages without taking them: read_lock, then lock), purge.c
 * (dropping them all: write_lock, read_lock, journal_lock, then lock) and
 * move.c (another channel's messages joining as a file: write_lock, lock). Its disk part is
 * disk.c's (disk.h). Data only: each file declares its functions in its
 * own header. Private to the library.
 *
 * Locks, always taken in this order when nested:
 *   write_lock    serialises appends to queue files (held during write
 *                 I/O; disk.h calls it the writer's lock);
 *   read_lock     serialises reads and removals of queue files (the
 *                 reader's lock);
 *   journal_lock  serialises writes of the journal;
 *   lock          guards everything else and is never held during file
 *                 I/O (the state lock).
 * commit.lock (durable sends waiting for their sync) is taken inside
 * write_lock or alone, never with another lock held inside it.
 */
#ifndef HOP_CHANNEL_STATE_H
#define HOP_CHANNEL_STATE_H

#include "hopper/hopper.h"

#include "disk.h"
#include "message.h"

#include <pthread.h>
#include <stdatomic.h>

/* Where a record read from a queue file and handed out is (flight.c). */
typedef enum hop__flight_state {
    HOP__FLIGHT_OUT,      /* a receiver has its message */
    HOP__FLIGHT_REQUEUED, /* requeued: its message waits in memory */
    HOP__FLIGHT_DONE,     /* consumed: its receiver hop_free()d it */
    HOP__FLIGHT_DROPPED,  /* requeued to a closing channel, which freed its message and
                             writes its record again */
} hop__flight_state;

/* A record read from a queue file and handed out: it is consumed (and its
 * file may go) only when the receiver hop_free()s it. The channel keeps
 * these in the order they were read, which is file order; a consumed one
 * stays in the list while an older one is not, so that the journal can
 * still name it (see persist.c). */
typedef struct hop__flight {
    struct hop__flight *next; /* the next newer one */
    hop_channel *ch;          /* NULL once the channel closed or was purged: hop_free() only
                                 frees (set under lock and read_lock, read atomically) */
    hop__qfile *file;
    uint64_t off; /* the record's offset in file */
    hop__flight_state state;
} hop__flight;

/* A message held with hop_hold(): it counts against memory_bytes until it
 * is freed or requeued (flight.c). */
typedef struct hop__hold {
    struct hop__hold *prev, *next; /* the channel's holds */
    hop_channel *ch;               /* NULL once the channel closed: hop_free() only frees */
    size_t cost;                   /* what it counts */
    hop_budget *budget;            /* where cost is charged too, or NULL (borrowed) */
} hop__hold;

/* Where the durable sends of a channel are (group_commit.c). */
typedef enum hop__commit_state {
    HOP__COMMIT_IDLE,    /* no request waits */
    HOP__COMMIT_QUEUED,  /* waiting for a sync thread */
    HOP__COMMIT_RUNNING, /* a sync thread works on it */
} hop__commit_state;

/* The durable sends of a channel waiting for their sync (group_commit.c). */
typedef struct hop__commit {
    pthread_mutex_t lock;
    pthread_cond_t settled;            /* a request settled, or the state went idle */
    pthread_cond_t arrived;            /* a send was queued while gathering */
    struct hop__sync_req *head, *tail; /* lock: requests awaiting a sync */
    hop__commit_state state;           /* lock */
    size_t arrivals;       /* lock: sends (calls, not records) queued since the last take */
    size_t taken;          /* lock: the sends of the round under way, or of the last one */
    size_t want;           /* lock: sends the next round waits for (gather(), 0: none) */
    bool gathering;        /* lock: a sync thread waits on arrived */
    uint64_t last_sync_ns; /* the last round's syncs took (its thread's) */
    hop_channel *next;     /* the sync threads' queue (their lock) */
    void (*published)(hop_channel *ch, size_t n); /* told of records published */
    bool joined;                                  /* durable: the channel holds the sync threads */
} hop__commit;

/* A channel's delayed messages (schedule.c). */
typedef struct hop__schedule hop__schedule;

struct hop_waiter {
    hop_ready_fn fn;
    void *arg;
    /* The channel it was last armed on: set under that channel's lock, read
     * by hop_waiter_cancel() before it can take the lock, maybe on another
     * thread than the one arming (a cancel racing the first arm sees NULL:
     * not armed yet, which is true). */
    _Atomic(hop_channel *) ch;
    hop_waiter *prev, *next;
    bool armed; /* guarded by ch->lock */
};

struct hop_channel {
    /* Hot: every memory send and receive touches these, under `lock`. They
     * sit together so a message crossing between two cores moves as few
     * cache lines as possible. */
    pthread_mutex_t lock;
    hop__membuf mem;
    hop_waiter *waiters_head;
    size_t blocked; /* threads waiting in hop_recv() */
    bool closed;
    bool dispatching; /* a dispatch() loop is running */
    uint64_t sent_total, received_total;

    /* Read by every send: the limits, and the counts that come first in the
     * disk part (and its busy hint), which only sends and receives through
     * disk write. */
    hop_limits limits;
    hop__disk disk; /* the queue files; its fields say which lock guards them */

    char name[HOP_NAME_MAX + 1];

    pthread_mutex_t write_lock;
    pthread_mutex_t read_lock;
    pthread_mutex_t journal_lock;
    pthread_cond_t readable; /* signalled when a message arrives */
    pthread_cond_t drained;  /* signalled when the last call leaves a closing channel */

    hop__flight *flights_head, *flights_tail; /* lock */
    size_t in_flight;                         /* lock: handed out, not consumed or requeued */
    hop__hold *holds;                         /* lock: messages held with hop_hold() */
    uint32_t take_counter;                    /* lock: the last take_order given */
    uint32_t purged_take;                     /* lock: take_counter at the last hop_purge() */
    bool purged;                              /* lock: hop_purge() ran: purged_take is set */
    size_t held, held_bytes;                  /* lock: the holds, and what they count */

    int journal_fd; /* journal_lock; -1 when there is none */
    uint64_t journal_size;

    hop__commit commit; /* durable sends waiting for their sync */

    hop__schedule *schedule; /* delayed messages; NULL when memory only (schedule.c) */

    hop_waiter *waiters_tail;
    size_t waiters;
    size_t inside; /* receive calls in progress, which close waits for */

    /* A move from this channel (move.c) could not journal its records as
     * consumed: its intent stays for the next open, and no other move may
     * overwrite it. Guarded by move.c's lock. */
    bool move_stuck;

    uint64_t requeued_total, rejected_full_total;
    uint64_t io_errors_total;
    uint64_t recovered_total, syncs_total;
};

#endif
