/* io.c - the real system-call table behind io.h. */
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

static int sys_openat(int dirfd, const char *path, int flags, mode_t mode)
{
    return openat(dirfd, path, flags | O_CLOEXEC, mode);
}

const hop__io hop__io_system = {
    .openat = sys_openat,
    .close = close,
    .pwritev = pwritev,
    .pread = pread,
    .ftruncate = ftruncate,
    .unlinkat = unlinkat,
    .fdatasync = fdatasync,
    .fsync = fsync,
    .renameat = renameat,
};

const hop__io *hop__io_current = &hop__io_system;

void hop__io_set(const hop__io *io)
{
    hop__io_current = io ? io : &hop__io_system;
}

size_t hop__pwrite_all(int fd, struct iovec *iov, int n, uint64_t offset, size_t total)
{
    size_t done = 0;
    while (done < total) {
        ssize_t w = hop__io_current->pwritev(fd, iov, n, (off_t)(offset + done));
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return done;
        }
        if (w == 0) {
            errno = EIO;
            return done;
        }
        done += (size_t)w;
        /* advance the iovecs past what was written */
        size_t skip = (size_t)w;
        while (n > 0 && skip >= iov->iov_len) {
            skip -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + skip;
            iov->iov_len -= skip;
        }
    }
    return done;
}
