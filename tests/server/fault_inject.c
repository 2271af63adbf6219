/* fault_inject.c - an LD_PRELOAD library that makes the real hopper binary
 * meet disk faults: the server's file system calls fail with a chosen errno
 * while a control file says so. test_faults.c starts the server with it.
 *
 * The control file (path in HOPPER_FAULT_CONTROL) holds lines
 *
 *     CALL ERRNO COUNT
 *
 * CALL is one of pwritev, fdatasync, fsync, openat, renameat, unlinkat,
 * ftruncate, pread; ERRNO is ENOSPC, EIO, EMFILE, ENFILE or EROFS, or for
 * pwritev PARTIAL: the call writes half of its bytes and returns that
 * count, and the next pwritev fails with ENOSPC (a disk that fills in the
 * middle of a record: the writer's retry of the rest meets it), or for
 * renameat KILL or KILLAFTER: the process dies of SIGKILL just before the
 * call, or just after it (a crash on either side of a rename); COUNT is
 * how many calls fail from now on (-1: every one). The file is read again
 * whenever its modification time or size changes, which resets the counts;
 * an empty or missing file injects nothing. Only calls on the data
 * directory's files fail: descriptor calls on regular files, openat() that
 * creates, and every renameat()/unlinkat() (the server renames and removes
 * nothing else). Sockets, the log on stderr and reads of /proc never fail.
 *
 * Each injected fault is counted: HOPPER_FAULT_COUNT names a file the total
 * is written to, so a test can tell that its faults really happened. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

/* renameat only: the process dies of SIGKILL before the call, or right
 * after it. */
#define KILL_BEFORE (-2)
#define KILL_AFTER (-3)

enum call { PWRITEV, FDATASYNC, FSYNC, OPENAT, RENAMEAT, UNLINKAT, FTRUNCATE, PREAD, CALLS };

static const char *const call_names[CALLS] = {
    "pwritev", "fdatasync", "fsync", "openat", "renameat", "unlinkat", "ftruncate", "pread",
};

static const struct {
    const char *name;
    int value;
} errnos[] = {
    {"ENOSPC", ENOSPC}, {"EIO", EIO},    {"EMFILE", EMFILE},    {"ENFILE", ENFILE},
    {"EROFS", EROFS},   {"PARTIAL", -1}, {"KILL", KILL_BEFORE}, {"KILLAFTER", KILL_AFTER}};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct timespec seen_mtime;
static off_t seen_size = -1;
static int fault_errno[CALLS];
static long fault_left[CALLS]; /* -1: unlimited */
static unsigned long injected;
static bool enospc_next; /* PARTIAL: the pwritev after a short one fails */

/* Re-read the control file if it changed. Called with lock held. */
static void reload(void)
{
    const char *path = getenv("HOPPER_FAULT_CONTROL");
    struct stat st;
    if (path == NULL || stat(path, &st) != 0) {
        memset(fault_left, 0, sizeof fault_left);
        seen_size = -1;
        return;
    }
    if (st.st_size == seen_size && st.st_mtim.tv_sec == seen_mtime.tv_sec &&
        st.st_mtim.tv_nsec == seen_mtime.tv_nsec)
        return;
    seen_size = st.st_size;
    seen_mtime = st.st_mtim;
    memset(fault_left, 0, sizeof fault_left);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    char call[32], err[32];
    long count;
    while (fscanf(f, "%31s %31s %ld", call, err, &count) == 3)
        for (int c = 0; c < CALLS; c++)
            if (strcmp(call, call_names[c]) == 0)
                for (size_t e = 0; e < sizeof errnos / sizeof errnos[0]; e++)
                    if (strcmp(err, errnos[e].name) == 0) {
                        fault_errno[c] = errnos[e].value;
                        fault_left[c] = count;
                    }
    fclose(f);
}

/* The count is written in place at a fixed width, never truncated first, so
 * a test that reads it meanwhile sees the old number or the new one. */
static void note_injected(void)
{
    const char *path = getenv("HOPPER_FAULT_COUNT");
    if (path == NULL)
        return;
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    char text[32];
    int n = snprintf(text, sizeof text, "%20lu\n", injected);
    ssize_t w = write(fd, text, (size_t)n); /* short: the test sees fewer, and fails */
    (void)w;
    close(fd);
}

/* The errno call c is to fail with now, or 0. */
static int fault(enum call c)
{
    pthread_mutex_lock(&lock);
    reload();
    int e = 0;
    if (fault_left[c] != 0) {
        e = fault_errno[c];
        if (fault_left[c] > 0)
            fault_left[c]--;
        injected++;
        note_injected();
    }
    pthread_mutex_unlock(&lock);
    return e;
}

static bool regular(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

#define REAL(name) ((__typeof__(&name))dlsym(RTLD_NEXT, #name))

#define FAIL_IF(c, cond)                                                                           \
    do {                                                                                           \
        int e_;                                                                                    \
        if ((cond) && (e_ = fault(c)) != 0) {                                                      \
            errno = e_;                                                                            \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

/* pwritev under a PARTIAL fault: half of the bytes, as a short write. */
static ssize_t write_half(int fd, const struct iovec *iov, int n, off_t off)
{
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    struct iovec part[64];
    int k = 0;
    size_t want = total / 2 > 0 ? total / 2 : total, got = 0;
    for (int i = 0; i < n && k < 64 && got < want; i++) {
        size_t take = iov[i].iov_len < want - got ? iov[i].iov_len : want - got;
        part[k++] = (struct iovec){iov[i].iov_base, take};
        got += take;
    }
    return REAL(pwritev)(fd, part, k, off);
}

ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
    if (regular(fd)) {
        pthread_mutex_lock(&lock);
        bool fail_now = enospc_next;
        enospc_next = false;
        pthread_mutex_unlock(&lock);
        if (fail_now) {
            errno = ENOSPC;
            return -1;
        }
        int e = fault(PWRITEV);
        if (e == -1) {
            pthread_mutex_lock(&lock);
            enospc_next = true;
            pthread_mutex_unlock(&lock);
            return write_half(fd, iov, n, off);
        }
        if (e != 0) {
            errno = e;
            return -1;
        }
    }
    return REAL(pwritev)(fd, iov, n, off);
}

ssize_t pwritev64(int fd, const struct iovec *iov, int n, off_t off)
{
    return pwritev(fd, iov, n, off);
}

int fdatasync(int fd)
{
    FAIL_IF(FDATASYNC, regular(fd));
    return REAL(fdatasync)(fd);
}

int fsync(int fd)
{
    FAIL_IF(FSYNC, regular(fd));
    return REAL(fsync)(fd);
}

int ftruncate(int fd, off_t len)
{
    FAIL_IF(FTRUNCATE, regular(fd));
    return REAL(ftruncate)(fd, len);
}

int ftruncate64(int fd, off_t len)
{
    FAIL_IF(FTRUNCATE, regular(fd));
    return REAL(ftruncate64)(fd, len);
}

ssize_t pread(int fd, void *buf, size_t len, off_t off)
{
    FAIL_IF(PREAD, regular(fd));
    return REAL(pread)(fd, buf, len, off);
}

ssize_t pread64(int fd, void *buf, size_t len, off_t off)
{
    FAIL_IF(PREAD, regular(fd));
    return REAL(pread64)(fd, buf, len, off);
}

int renameat(int olddir, const char *old, int newdir, const char *new)
{
    int e = fault(RENAMEAT);
    if (e == KILL_BEFORE)
        raise(SIGKILL);
    if (e > 0) {
        errno = e;
        return -1;
    }
    int r = REAL(renameat)(olddir, old, newdir, new);
    if (e == KILL_AFTER)
        raise(SIGKILL);
    return r;
}

int unlinkat(int dir, const char *path, int flags)
{
    FAIL_IF(UNLINKAT, true);
    return REAL(unlinkat)(dir, path, flags);
}

static int open_with_mode(int dir, const char *path, int flags, va_list ap, bool is64)
{
    mode_t mode = (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;
    FAIL_IF(OPENAT, (flags & O_CREAT) != 0);
    return is64 ? REAL(openat64)(dir, path, flags, mode) : REAL(openat)(dir, path, flags, mode);
}

int openat(int dir, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    int fd = open_with_mode(dir, path, flags, ap, false);
    va_end(ap);
    return fd;
}

int openat64(int dir, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    int fd = open_with_mode(dir, path, flags, ap, true);
    va_end(ap);
    return fd;
}
