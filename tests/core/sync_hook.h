/* sync_hook.h - the io hook of the durable tests and their helpers (see
 * sync_hook.c). The hook counts the syncs of queue files (fdatasync) and
 * directories (fsync), can hold queue file syncs at a gate until the test
 * opens it, and can fail the next fdatasync, fsync or ftruncate. The
 * helpers fail the test through cmocka, so they run on the main thread (a
 * sender's thread only records what happened). */
#ifndef HOP_TEST_SYNC_HOOK_H
#define HOP_TEST_SYNC_HOOK_H

#include "test_util.h"

#include <pthread.h>
#include <stdatomic.h>

/* How long any wait of a test may take before the test fails. */
#define WAIT_MS 10000
/* How long a held sync waits to be released before it gives up (the test
 * has failed by then; this only keeps threads from hanging forever). */
#define GATE_MS 15000

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* What the hooked syncs did and will do; all under lock. */
struct sync_hook {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int qsyncs;                /* fdatasync calls on queue files */
    int dirsyncs;              /* fsync calls (directories) */
    uint64_t last_ino;         /* the file of the last queue file fdatasync */
    uint64_t last_size;        /* its size when it was synced */
    pthread_t last_thread;     /* the thread that made it */
    int gate_armed;            /* so many next queue file fdatasyncs wait at the gate */
    int gate_entered;          /* calls that reached the gate */
    bool gate_open;            /* the gate lets them through */
    int gate_err;              /* errno they then fail with; 0: they sync */
    int gate_timeouts;         /* calls the gate let through because nobody opened it */
    int fail_fdatasync;        /* errno the next queue file fdatasync fails with */
    int fail_fsync;            /* errno the next directory fsync fails with */
    int fail_ftruncate;        /* errno the next ftruncate fails with */
    int failed_fsync_qfiles;   /* queue files present when that fsync failed */
    uint64_t failed_fsync_seq; /* the newest of them */
};
extern struct sync_hook H;

/* Counters and gate back to nothing. */
void hook_reset(void);
/* cmocka setup and teardown of a durable test: a temp dir (tu_dir_setup),
 * the hook installed and reset, and a watchdog that ends a stuck test. */
int sync_setup(void **state);
int sync_teardown(void **state);
/* A field of H, read or written under its lock. */
int hook_get(const int *field);
void hook_set(int *field, int value);
/* Let the calls held at the gate go, failing with err (0: syncing). */
void gate_open(int err);
/* Counters since the last hook_reset(). */
void hook_counts(int *qsyncs, int *dirsyncs);

/* Wait until cond holds, polling; fail the test after WAIT_MS. */
#define WAIT_FOR(cond, what)                                                                       \
    do {                                                                                           \
        int64_t wait_deadline_ = tu_now_ms() + WAIT_MS;                                            \
        while (!(cond)) {                                                                          \
            if (tu_now_ms() > wait_deadline_)                                                      \
                fail_msg("timed out waiting for %s", what);                                        \
            tu_sleep_ms(1);                                                                        \
        }                                                                                          \
    } while (0)

/* Limits of a durable channel with files of file_bytes. */
hop_limits durable_limits(size_t file_bytes);
/* Send message id of len bytes (at most 4096). */
hop_err send_id(hop_channel *ch, uint64_t id, size_t len);
/* Send it, which must succeed. */
void send_ok(hop_channel *ch, uint64_t id, size_t len);
/* Receive every message now in ch: they must be ids[0..n), of len bytes,
 * in that order, and then nothing. */
void recv_exactly(hop_channel *ch, const uint64_t *ids, size_t n, size_t len);
/* The queue files of d's channel (at most 64): tu_list_qfiles(). */
int qfiles(const tu_dir *d, uint64_t *seqs, uint64_t *sizes);

/* One send on its own thread. */
typedef struct sender {
    hop_channel *ch;
    uint64_t id;
    size_t len;
    pthread_t thread;
    hop_err err;
    int err_no;
    atomic_bool done;
} sender;
void sender_start(sender *s, hop_channel *ch, uint64_t id, size_t len);
/* Wait for it (failing the test after WAIT_MS) and join it. */
void sender_join(sender *s);

#endif
