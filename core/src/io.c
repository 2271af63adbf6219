/* io.c - the real system-call table behind io.h. */
#include "io.h"

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
