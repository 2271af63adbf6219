/* reserve.c - the reserve file (see reserve.h). */
#include "reserve.h"

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

static struct {
    int dirfd;
    _Atomic uint64_t bytes; /* read by /status and /metrics threads */
} res = {.dirfd = -1};

uint64_t reserve_fs_free(void)
{
    struct statvfs fs;
    if (res.dirfd < 0 || fstatvfs(res.dirfd, &fs) != 0)
        return UINT64_MAX;
    return (uint64_t)fs.f_bavail * fs.f_frsize;
}

/* Make the file at RESERVE_NAME exactly bytes long, its blocks allocated.
 * 0, or an errno value. */
static int allocate(int dirfd, uint64_t bytes)
{
    int fd = openat(dirfd, RESERVE_NAME, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return errno;
    /* a file left larger by a run with a larger --memory-limit shrinks */
    int err = ftruncate(fd, (off_t)bytes) == 0 ? 0 : errno;
    if (err == 0)
        err = posix_fallocate(fd, 0, (off_t)bytes); /* returns the error */
    if (close(fd) != 0 && err == 0)
        err = errno;
    return err;
}

bool reserve_open(const char *data_dir, uint64_t bytes)
{
    res.dirfd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (res.dirfd < 0) {
        log_error("cannot open %s for the reserve file: %s", data_dir, strerror(errno));
        return false;
    }
    if (bytes == 0) {
        unlinkat(res.dirfd, RESERVE_NAME, 0); /* nothing to keep room for */
        return true;
    }
    int err = allocate(res.dirfd, bytes);
    if (err != 0) {
        uint64_t have = reserve_fs_free();
        unlinkat(res.dirfd, RESERVE_NAME, 0);
        log_error("cannot set aside %" PRIu64 " bytes in %s/%s for a clean stop (what memory may "
                  "hold, see --memory-limit): %s; the file system has %" PRIu64
                  " bytes free: free %" PRIu64 " bytes or lower --memory-limit",
                  bytes, data_dir, RESERVE_NAME, strerror(err), have,
                  bytes > have ? bytes - have : 0);
        close(res.dirfd);
        res.dirfd = -1;
        return false;
    }
    atomic_store(&res.bytes, bytes);
    log_info("reserved %" PRIu64 " bytes in %s/%s for a clean stop", bytes, data_dir, RESERVE_NAME);
    return true;
}

uint64_t reserve_bytes(void)
{
    return atomic_load(&res.bytes);
}

void reserve_release(void)
{
    if (res.dirfd < 0)
        return;
    if (atomic_load(&res.bytes) > 0 && unlinkat(res.dirfd, RESERVE_NAME, 0) != 0)
        log_error("cannot remove the reserve file %s: %s", RESERVE_NAME, strerror(errno));
    atomic_store(&res.bytes, 0);
    close(res.dirfd);
    res.dirfd = -1;
}
