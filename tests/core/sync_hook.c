/* sync_hook.c - the io hook of the durable tests (test_group_commit.c,
 * test_send_durable.c), and their helpers: the syncs of queue files and
 * directories counted, held at a gate or failed, a watchdog, durable
 * channel limits, sends and receives that check, a send on its own thread.
 * Moved from test_sync.c as it was. */
#include "sync_hook.h"

#include "io.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the io hook ---- */

typedef enum fd_kind { FD_QUEUE_FILE, FD_JOURNAL, FD_OTHER } fd_kind;

static fd_kind kind_of(int fd)
{
    char link[64], target[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n < 0)
        return FD_OTHER;
    target[n] = '\0';
    if (strstr(target, "consumed.hqc"))
        return FD_JOURNAL;
    if (n > 3 && strcmp(target + n - 3, ".hq") == 0)
        return FD_QUEUE_FILE;
    return FD_OTHER;
}

/* What the hooked syncs did and will do; all under lock. */
struct sync_hook H = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static char hook_chan[PATH_MAX]; /* the channel directory of the test */

static int hooked_fdatasync(int fd)
{
    if (kind_of(fd) != FD_QUEUE_FILE)
        return hop__io_system.fdatasync(fd);
    int fail = 0;
    struct stat st;
    pthread_mutex_lock(&H.lock);
    if (H.gate_armed > 0) {
        H.gate_armed--;
        H.gate_entered++;
        pthread_cond_broadcast(&H.cond);
        int64_t deadline = tu_now_ms() + GATE_MS;
        while (!H.gate_open && tu_now_ms() < deadline) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 20 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&H.cond, &H.lock, &ts);
        }
        if (!H.gate_open)
            H.gate_timeouts++;
        fail = H.gate_err;
    } else if (H.fail_fdatasync) {
        fail = H.fail_fdatasync;
        H.fail_fdatasync = 0;
    }
    H.qsyncs++;
    H.last_thread = pthread_self();
    if (fstat(fd, &st) == 0) {
        H.last_ino = (uint64_t)st.st_ino;
        H.last_size = (uint64_t)st.st_size;
    }
    pthread_mutex_unlock(&H.lock);
    if (fail) {
        errno = fail;
        return -1;
    }
    return hop__io_system.fdatasync(fd);
}

static int hooked_fsync(int fd)
{
    int fail = 0;
    pthread_mutex_lock(&H.lock);
    H.dirsyncs++;
    if (H.fail_fsync) {
        fail = H.fail_fsync;
        H.fail_fsync = 0;
        uint64_t seqs[64];
        H.failed_fsync_qfiles = tu_list_qfiles(hook_chan, seqs, NULL, 64);
        H.failed_fsync_seq = H.failed_fsync_qfiles > 0 ? seqs[H.failed_fsync_qfiles - 1] : 0;
    }
    pthread_mutex_unlock(&H.lock);
    if (fail) {
        errno = fail;
        return -1;
    }
    return hop__io_system.fsync(fd);
}

static int hooked_ftruncate(int fd, off_t len)
{
    pthread_mutex_lock(&H.lock);
    int fail = H.fail_ftruncate;
    H.fail_ftruncate = 0;
    pthread_mutex_unlock(&H.lock);
    if (fail) {
        errno = fail;
        return -1;
    }
    return hop__io_system.ftruncate(fd, len);
}

static hop__io hooked;

void hook_reset(void)
{
    pthread_mutex_lock(&H.lock);
    H.qsyncs = H.dirsyncs = 0;
    H.last_ino = H.last_size = 0;
    H.gate_armed = H.gate_entered = H.gate_err = H.gate_timeouts = 0;
    H.gate_open = false;
    H.fail_fdatasync = H.fail_fsync = H.fail_ftruncate = 0;
    H.failed_fsync_qfiles = 0;
    H.failed_fsync_seq = 0;
    pthread_mutex_unlock(&H.lock);
}

/* A test that takes this long is stuck (in the library, where no deadline
 * of the test can reach): say so and stop, rather than hang. */
#define WATCHDOG_S 60
#define STRING_(x) #x
#define STRING(x) STRING_(x)

static void watchdog(int sig)
{
    (void)sig;
    static const char msg[] = "a test is stuck (watchdog, " STRING(WATCHDOG_S) " s)\n";
    ssize_t ignored = write(2, msg, sizeof msg - 1);
    (void)ignored;
    _exit(1);
}

int sync_setup(void **state)
{
    signal(SIGALRM, watchdog);
    alarm(WATCHDOG_S);
    int rc = tu_dir_setup(state);
    const tu_dir *d = *state;
    snprintf(hook_chan, sizeof hook_chan, "%s", d->chan);
    hook_reset();
    hooked = hop__io_system;
    hooked.fdatasync = hooked_fdatasync;
    hooked.fsync = hooked_fsync;
    hooked.ftruncate = hooked_ftruncate;
    hop__io_set(&hooked);
    return rc;
}

int sync_teardown(void **state)
{
    /* let any held sync go, so that no thread of a failed test hangs */
    pthread_mutex_lock(&H.lock);
    H.gate_open = true;
    H.gate_armed = 0;
    pthread_cond_broadcast(&H.cond);
    pthread_mutex_unlock(&H.lock);
    hop__io_set(NULL);
    alarm(0);
    return tu_dir_teardown(state);
}

int hook_get(const int *field)
{
    pthread_mutex_lock(&H.lock);
    int v = *field;
    pthread_mutex_unlock(&H.lock);
    return v;
}

void hook_set(int *field, int value)
{
    pthread_mutex_lock(&H.lock);
    *field = value;
    pthread_mutex_unlock(&H.lock);
}

/* Let the calls held at the gate go, failing with err (0: syncing). */
void gate_open(int err)
{
    pthread_mutex_lock(&H.lock);
    H.gate_err = err;
    H.gate_open = true;
    pthread_cond_broadcast(&H.cond);
    pthread_mutex_unlock(&H.lock);
}

/* Counters since the last hook_reset(). */
void hook_counts(int *qsyncs, int *dirsyncs)
{
    pthread_mutex_lock(&H.lock);
    *qsyncs = H.qsyncs;
    *dirsyncs = H.dirsyncs;
    pthread_mutex_unlock(&H.lock);
}

/* ---- channel helpers ---- */

hop_limits durable_limits(size_t file_bytes)
{
    hop_limits l = tu_limits(1 << 20, file_bytes, SIZE_MAX, 64 * 1024);
    l.durable = true;
    return l;
}

hop_err send_id(hop_channel *ch, uint64_t id, size_t len)
{
    unsigned char buf[4096];
    assert_true(len <= sizeof buf);
    tu_fill_id(buf, len, id);
    return hop_send(ch, buf, len);
}

void send_ok(hop_channel *ch, uint64_t id, size_t len)
{
    errno = 0;
    hop_err err = send_id(ch, id, len);
    if (err != HOP_OK)
        fail_msg("send of id %llu: %s (errno %d)", (unsigned long long)id, hop_err_name(err),
                 errno);
}

/* Receive every message now in ch: they must be ids[0..n), of len bytes,
 * in that order, and then nothing. */
void recv_exactly(hop_channel *ch, const uint64_t *ids, size_t n, size_t len)
{
    for (size_t i = 0; i < n; i++) {
        void *data = NULL;
        size_t got = 0;
        hop_err err = hop_recv(ch, 0, &data, &got);
        if (err != HOP_OK)
            fail_msg("recv %zu, expecting id %llu: %s", i, (unsigned long long)ids[i],
                     hop_err_name(err));
        uint64_t id = tu_id_of(data, got);
        if (id != ids[i] || got != len)
            fail_msg("recv %zu: id %llu (%zu bytes), expected id %llu (%zu bytes)", i,
                     (unsigned long long)id, got, (unsigned long long)ids[i], len);
        hop_free(data);
    }
    void *data = NULL;
    size_t got = 0;
    hop_err err = hop_recv(ch, 0, &data, &got);
    if (err != HOP_TIMEOUT)
        fail_msg("after %zu messages: %s, id %llu", n, hop_err_name(err),
                 err == HOP_OK ? (unsigned long long)tu_id_of(data, got) : 0ull);
}

int qfiles(const tu_dir *d, uint64_t *seqs, uint64_t *sizes)
{
    return tu_list_qfiles(d->chan, seqs, sizes, 64);
}

/* ---- one send on its own thread ---- */

static void *send_one(void *arg)
{
    sender *s = arg;
    errno = 0;
    s->err = send_id(s->ch, s->id, s->len);
    s->err_no = errno;
    atomic_store(&s->done, true);
    return NULL;
}

void sender_start(sender *s, hop_channel *ch, uint64_t id, size_t len)
{
    memset(s, 0, sizeof *s);
    s->ch = ch;
    s->id = id;
    s->len = len;
    s->err = HOP_INVALID;
    atomic_init(&s->done, false);
    assert_int_equal(pthread_create(&s->thread, NULL, send_one, s), 0);
}

void sender_join(sender *s)
{
    WAIT_FOR(atomic_load(&s->done), "a sender to return");
    assert_int_equal(pthread_join(s->thread, NULL), 0);
}
