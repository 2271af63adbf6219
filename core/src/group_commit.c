/* group_commit.c - durable sends share syncs.
 *
 * A durable send appends its record under write_lock and queues a request
 * on its channel; the first request of an idle channel hands the channel
 * to the library's sync threads. A sync thread takes every request queued
 * so far, syncs the files they wrote (and the directory, for a new file),
 * publishes all of their records at once and tells their senders; requests
 * queued meanwhile make the next round, which first waits a little for the
 * senders just told to come back (gather()). So N concurrent senders share
 * about one sync, whether they block in hop_send() or are suspended HTTP
 * requests, and a record is readable only once it is on stable storage: a
 * receiver never sees a message that a power failure could take back. A
 * lone sender makes its own sync on its own thread (hop__group_commit_lead()):
 * no hand-off to wait for.
 *
 * When a sync fails, what the kernel holds of the file can no longer be
 * trusted (after a failed fsync Linux may drop the dirty pages and report
 * success next time). So every record not yet synced fails, with HOP_IO,
 * and is cut off its file, which is sealed: later sends start a new file.
 *
 * The threads: rather than have each waiting sender sync, or each durable
 * channel own a thread, a few threads serve every durable channel that has
 * requests waiting, one channel each at a time, so syncs of different
 * channels overlap. They run while at least one durable channel is open.
 */
#include "group_commit.h"

#include "deadline.h"
#include "disk.h"
#include "io.h"
#include "log.h"
#include "persist.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

/* Syncs are I/O, not CPU: a few threads keep several devices (or one
 * device's queue) busy without a thread per channel. */
#define SYNC_THREADS 4
/* Write descriptors of files a round finished syncing that it closes; any
 * more are closed when their files go. */
#define CLOSE_AT_MOST 16
/* The longest a round waits for senders (gather()), however slow the
 * syncs: past this, latency matters more than sharing a sync. */
#define GATHER_AT_MOST_NS 10000000u /* 10 ms */

/* ---- the sync threads ---- */

static struct {
    pthread_mutex_t lock;
    pthread_cond_t work;
    hop_channel *head, *tail; /* channels waiting for a thread */
    size_t users;             /* open durable channels */
    bool quit;
    pthread_t threads[SYNC_THREADS];
    size_t running;
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .work = PTHREAD_COND_INITIALIZER};

/* Held across starting and stopping the threads, so that an open racing
 * with the last close waits for the old threads to be joined. */
static pthread_mutex_t lifecycle = PTHREAD_MUTEX_INITIALIZER;

/* A forked child has none of the parent's threads: it starts with no pool,
 * so that its own durable channels start one. (Channels the parent opened
 * are the parent's; the child must not use them.) */
static void forget_in_child(void)
{
    pthread_mutex_init(&lifecycle, NULL);
    pthread_mutex_init(&pool.lock, NULL);
    pthread_cond_init(&pool.work, NULL);
    pool.head = pool.tail = NULL;
    pool.users = 0;
    pool.running = 0;
    pool.quit = false;
}

static pthread_once_t at_fork = PTHREAD_ONCE_INIT;

static void register_at_fork(void)
{
    pthread_atfork(NULL, NULL, forget_in_child);
}

static void run(hop_channel *ch);

static void *sync_thread(void *arg)
{
    (void)arg;
    /* else it has the name of whatever thread opened the first durable
     * channel (an HTTP thread's, in the server): top -H tells them apart */
    pthread_setname_np(pthread_self(), "hopper-sync");
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        while (pool.head == NULL && !pool.quit)
            pthread_cond_wait(&pool.work, &pool.lock);
        if (pool.head == NULL)
            break; /* quitting, and nothing left */
        hop_channel *ch = pool.head;
        pool.head = ch->commit.next;
        if (pool.head == NULL)
            pool.tail = NULL;
        ch->commit.next = NULL;
        pthread_mutex_unlock(&pool.lock);
        run(ch);
        pthread_mutex_lock(&pool.lock);
    }
    pthread_mutex_unlock(&pool.lock);
    return NULL;
}

/* One more durable channel: the first starts the threads. */
static hop_err pool_join(void)
{
    pthread_once(&at_fork, register_at_fork);
    pthread_mutex_lock(&lifecycle);
    pthread_mutex_lock(&pool.lock);
    hop_err err = HOP_OK;
    if (pool.users == 0) {
        pool.quit = false;
        for (pool.running = 0; pool.running < SYNC_THREADS; pool.running++)
            if (pthread_create(&pool.threads[pool.running], NULL, sync_thread, NULL) != 0)
                break;
        if (pool.running == 0)
            err = HOP_NOMEM;
    }
    if (err == HOP_OK)
        pool.users++;
    pthread_mutex_unlock(&pool.lock);
    pthread_mutex_unlock(&lifecycle);
    return err;
}

/* One durable channel less: the last stops the threads and joins them. */
static void pool_leave(void)
{
    pthread_mutex_lock(&lifecycle);
    pthread_mutex_lock(&pool.lock);
    if (pool.users == 0 || --pool.users > 0) { /* 0: a parent's channel, in a child */
        pthread_mutex_unlock(&pool.lock);
        pthread_mutex_unlock(&lifecycle);
        return;
    }
    pool.quit = true;
    pthread_cond_broadcast(&pool.work);
    size_t n = pool.running;
    pthread_mutex_unlock(&pool.lock);
    for (size_t i = 0; i < n; i++)
        pthread_join(pool.threads[i], NULL);
    pthread_mutex_lock(&pool.lock);
    pool.running = 0;
    pthread_mutex_unlock(&pool.lock);
    pthread_mutex_unlock(&lifecycle);
}

void hop__group_commit_start(hop_channel *ch)
{
    pthread_mutex_lock(&pool.lock);
    ch->commit.next = NULL;
    if (pool.tail)
        pool.tail->commit.next = ch;
    else
        pool.head = ch;
    pool.tail = ch;
    pthread_cond_signal(&pool.work);
    pthread_mutex_unlock(&pool.lock);
}

hop_err hop__group_commit_open(hop_channel *ch, hop__published_fn published)
{
    hop_err err = pool_join();
    if (err == HOP_OK) {
        ch->commit.published = published;
        ch->commit.joined = true;
    }
    return err;
}

void hop__group_commit_wait_idle(hop_channel *ch)
{
    pthread_mutex_lock(&ch->commit.lock);
    while (ch->commit.state != HOP__COMMIT_IDLE)
        pthread_cond_wait(&ch->commit.settled, &ch->commit.lock);
    pthread_mutex_unlock(&ch->commit.lock);
}

void hop__group_commit_close(hop_channel *ch)
{
    if (!ch->commit.joined)
        return;
    hop__group_commit_wait_idle(ch);
    ch->commit.joined = false;
    pool_leave();
}

/* ---- the requests of a channel ---- */

hop__commit_next hop__group_commit_enqueue(hop_channel *ch, hop__sync_req *reqs, size_t n)
{
    pthread_mutex_lock(&ch->commit.lock);
    for (size_t i = 0; i < n; i++) {
        reqs[i].next = NULL;
        if (ch->commit.tail)
            ch->commit.tail->next = &reqs[i];
        else
            ch->commit.head = &reqs[i];
        ch->commit.tail = &reqs[i];
    }
    ch->commit.arrivals++;
    if (ch->commit.gathering)
        pthread_cond_signal(&ch->commit.arrived);
    hop__commit_next next = HOP__COMMIT_JOINED;
    if (ch->commit.state == HOP__COMMIT_IDLE) {
        ch->commit.state = HOP__COMMIT_QUEUED;
        next = ch->commit.taken <= 1 ? HOP__COMMIT_SOLO : HOP__COMMIT_HAND;
    }
    pthread_mutex_unlock(&ch->commit.lock);
    return next;
}

void hop__group_commit_wait(hop_channel *ch, const bool *done)
{
    pthread_mutex_lock(&ch->commit.lock);
    while (!*done)
        pthread_cond_wait(&ch->commit.settled, &ch->commit.lock);
    pthread_mutex_unlock(&ch->commit.lock);
}

void hop__group_commit_notify(hop_channel *ch, bool *done)
{
    pthread_mutex_lock(&ch->commit.lock);
    *done = true;
    pthread_cond_broadcast(&ch->commit.settled);
    pthread_mutex_unlock(&ch->commit.lock);
}

/* The distinct files of a batch, oldest first: requests are queued in the
 * order their records were appended, so a file's requests are adjacent. */
#define FOR_EACH_FILE(batch, r)                                                                    \
    for (hop__sync_req *r = (batch); r; r = r->next)                                               \
        if (r->next == NULL || r->next->span.file != r->span.file)

/* Tell the senders of batch how it went. Without locks: fn may free its
 * request, and may send again. */
static void settle(hop__sync_req *batch, hop_err result, int err_no)
{
    for (hop__sync_req *r = batch; r;) {
        hop__sync_req *next = r->next;
        r->fn(r->arg, result, err_no);
        r = next;
    }
}

/* ---- a round ---- */

/* Take every request queued so far: the batch of a round. False if none
 * was: the channel is idle again. OUT: *batch; *dir, true if a file of
 * the batch is new (its directory entry needs a sync too). */
static bool take_batch(hop_channel *ch, hop__sync_req **batch, bool *dir)
{
    pthread_mutex_lock(&ch->write_lock);
    pthread_mutex_lock(&ch->commit.lock);
    *batch = ch->commit.head;
    ch->commit.head = ch->commit.tail = NULL;
    if (*batch == NULL) {
        /* Idle is the last word: a close waiting for it may free ch as
         * soon as the lock is free. */
        pthread_mutex_unlock(&ch->write_lock);
        ch->commit.state = HOP__COMMIT_IDLE;
        pthread_cond_broadcast(&ch->commit.settled);
        pthread_mutex_unlock(&ch->commit.lock);
        return false;
    }
    ch->commit.state = HOP__COMMIT_RUNNING;
    ch->commit.taken = ch->commit.arrivals;
    ch->commit.arrivals = 0;
    pthread_mutex_unlock(&ch->commit.lock);
    *dir = false;
    for (hop__sync_req *r = *batch; r; r = r->next) {
        if (r->span.file->dir_unsynced) { /* a writer field: under write_lock */
            *dir = true;
            r->span.file->dir_unsynced = false;
        }
    }
    pthread_mutex_unlock(&ch->write_lock);
    return true;
}

/* Sync the directory (dir) and the files of batch. Returns 0, or the errno
 * of the first sync that failed. The descriptors stay open meanwhile: only
 * a sync thread closes those of sealed files, and only one works on a
 * channel at a time. Without locks. */
static int sync_files(hop_channel *ch, hop__sync_req *batch, bool dir)
{
    uint64_t syncs = 0, began = hop__monotonic_ns();
    int err_no = 0;
    if (dir) {
        syncs++;
        if (hop__io_current->fsync(ch->disk.dirfd) != 0)
            err_no = errno;
    }
    FOR_EACH_FILE(batch, r)
    {
        if (err_no)
            break;
        syncs++;
        if (hop__io_current->fdatasync(r->span.file->write_fd) != 0)
            err_no = errno;
    }
    ch->commit.last_sync_ns = hop__monotonic_ns() - began;
    pthread_mutex_lock(&ch->lock);
    ch->syncs_total += syncs;
    pthread_mutex_unlock(&ch->lock);
    return err_no;
}

/* batch is synced: publish its records, close the descriptors of sealed
 * files now fully synced, tell the senders and then the channel. */
static void publish(hop_channel *ch, hop__sync_req *batch)
{
    int fds[CLOSE_AT_MOST];
    size_t nfds = 0, n = 0;
    pthread_mutex_lock(&ch->lock);
    for (hop__sync_req *r = batch; r; r = r->next) {
        hop__disk_publish_synced(&ch->disk, &r->span);
        ch->sent_total++;
        n++;
    }
    FOR_EACH_FILE(batch, r)
    {
        int fd = nfds < CLOSE_AT_MOST ? hop__disk_take_synced_fd(r->span.file) : -1;
        if (fd >= 0)
            fds[nfds++] = fd;
    }
    pthread_mutex_unlock(&ch->lock);
    for (size_t i = 0; i < nfds; i++)
        hop__io_current->close(fds[i]);
    /* Before they are told: those told now come back on top of those
     * queued meanwhile (gather()). */
    pthread_mutex_lock(&ch->commit.lock);
    ch->commit.want = ch->commit.arrivals + ch->commit.taken;
    pthread_mutex_unlock(&ch->commit.lock);
    settle(batch, HOP_OK, 0);
    ch->commit.published(ch, n);
}

/* The requests queued behind batch (none is synced: the sync of batch
 * failed first) join it, to fail with it. write_lock held. */
static hop__sync_req *take_the_rest(hop_channel *ch, hop__sync_req *batch)
{
    pthread_mutex_lock(&ch->commit.lock);
    hop__sync_req *rest = ch->commit.head;
    ch->commit.head = ch->commit.tail = NULL;
    ch->commit.arrivals = 0;
    pthread_mutex_unlock(&ch->commit.lock);
    if (batch == NULL)
        return rest;
    hop__sync_req *last = batch;
    while (last->next)
        last = last->next;
    last->next = rest;
    return batch;
}

/* Cut the records of batch off their files; a request whose record could
 * not be cut off is marked kept. Under write_lock alone: the files'
 * unpublished ends are the writers' (and nobody writes now). */
static void cut_refused(hop_channel *ch, hop__sync_req *batch)
{
    hop__qfile *uncut = NULL;
    for (hop__sync_req *r = batch; r; r = r->next) {
        hop__qfile *f = r->span.file;
        if (f->written > f->size)
            uncut = hop__disk_cut_unsynced(&ch->disk, f) ? NULL : f;
        r->kept = f == uncut;
    }
}

/* A record that could not be cut off is whole and valid in its file: mark
 * it consumed (a skip for the reader, DONE in the journal), or a restart
 * would bring back what its sender was told was not stored. read_lock
 * held. */
static void mark_kept_consumed(hop_channel *ch, hop__sync_req *batch)
{
    for (hop__sync_req *r = batch; r; r = r->next) {
        if (!r->kept)
            continue;
        hop__disk_span *s = &r->span;
        bool noted = hop__qfile_add_skip(s->file, s->start, s->end, true) &&
                     hop__persist_note_consumed(ch, s->file->seq, s->start) == HOP_OK;
        if (!noted)
            hop__log(HOP_LOG_ERROR, ch->name,
                     "a refused record could not be marked consumed: it may come back after a "
                     "restart");
    }
}

/* A sync failed: fail every record not synced yet (batch and whatever was
 * queued since), cut them off their files and seal those files. */
static void fail_unsynced(hop_channel *ch, hop__sync_req *batch, int err_no)
{
    pthread_mutex_lock(&ch->write_lock);
    batch = take_the_rest(ch, batch);
    cut_refused(ch, batch);
    pthread_mutex_lock(&ch->read_lock);
    mark_kept_consumed(ch, batch);
    pthread_mutex_lock(&ch->lock);
    size_t failed = 0;
    for (hop__sync_req *r = batch; r; r = r->next) {
        hop__disk_refuse(&ch->disk, r->span.file);
        ch->io_errors_total++;
        failed++;
    }
    /* a file of the failed ones that holds no record can go now */
    hop__qfile *finished = NULL;
    hop__disk_detach_finished(&ch->disk, &finished);
    pthread_mutex_unlock(&ch->lock);
    hop__disk_remove(&ch->disk, finished);
    pthread_mutex_unlock(&ch->read_lock);
    pthread_mutex_unlock(&ch->write_lock);
    hop__qfile_free_list(finished);
    hop__log(HOP_LOG_ERROR, ch->name, "syncing queue file: %s; %zu message(s) refused",
             strerror(err_no), failed);
    settle(batch, HOP_IO, err_no);
}

/* Sync batch and publish it, or fail it and what is queued behind. */
static void round_of(hop_channel *ch, hop__sync_req *batch, bool dir)
{
    int err_no = sync_files(ch, batch, dir);
    if (err_no)
        fail_unsynced(ch, batch, err_no);
    else
        publish(ch, batch);
}

/* Before a round on a sync thread: wait, at most as long as the last
 * round's syncs took, until the senders it answered are back, if it had
 * several. Why: senders that wait for their sync (an HTTP client, a
 * thread in hop_send()) come back as soon as they are answered, a round
 * trip later, while the next round would start at once with only those
 * that came during the last sync, and the rest would wait for the round
 * after. Rounds settle into halves of the senders, each sharing a sync:
 * half the throughput of syncing all of them at once, as a single-threaded
 * server such as Redis does when its event loop has read them all. A
 * round that had one sender does not wait: that sender leads its next
 * send itself (hop__group_commit_lead()). */
static void gather(hop_channel *ch)
{
    pthread_mutex_lock(&ch->commit.lock);
    size_t want = ch->commit.want;
    ch->commit.want = 0;
    if (want >= 2 && ch->commit.arrivals < want) {
        uint64_t wait = ch->commit.last_sync_ns;
        if (wait > GATHER_AT_MOST_NS)
            wait = GATHER_AT_MOST_NS;
        struct timespec until;
        hop__deadline_in(&until, wait);
        ch->commit.gathering = true;
        while (ch->commit.arrivals < want &&
               pthread_cond_timedwait(&ch->commit.arrived, &ch->commit.lock, &until) != ETIMEDOUT)
            ;
        ch->commit.gathering = false;
    }
    pthread_mutex_unlock(&ch->commit.lock);
}

/* Sync and publish what is queued for ch, in rounds, until nothing is; on
 * a sync thread. */
static void run(hop_channel *ch)
{
    hop__sync_req *batch;
    bool dir;
    for (gather(ch); take_batch(ch, &batch, &dir); gather(ch))
        round_of(ch, batch, dir);
}

void hop__group_commit_lead(hop_channel *ch)
{
    hop__sync_req *batch;
    bool dir;
    if (!take_batch(ch, &batch, &dir))
        return; /* idle again */
    round_of(ch, batch, dir);
    /* One round only: the caller's thread has its own work. What came
     * meanwhile goes to the sync threads. */
    pthread_mutex_lock(&ch->commit.lock);
    bool more = ch->commit.head != NULL;
    ch->commit.state = more ? HOP__COMMIT_QUEUED : HOP__COMMIT_IDLE;
    if (!more) /* idle is the last word, as in take_batch() */
        pthread_cond_broadcast(&ch->commit.settled);
    pthread_mutex_unlock(&ch->commit.lock);
    if (more)
        hop__group_commit_start(ch);
}
