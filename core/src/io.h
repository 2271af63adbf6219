/* io.h - the system calls the library makes on queue files and journals, behind a table of
 * function pointers so tests can inject ENOSPC, EIO, EMFILE and short writes
 * (the beanstalkd habit of swapping falloc). Each entry has the signature
 * and errno behaviour of the system call it is named after. */
#ifndef HOP_IO_H
#define HOP_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

typedef struct hop__io {
    int (*openat)(int dirfd, const char *path, int flags, mode_t mode);
    int (*close)(int fd);
    ssize_t (*pwritev)(int fd, const struct iovec *iov, int iovcnt, off_t offset);
    ssize_t (*pread)(int fd, void *buf, size_t count, off_t offset);
    int (*ftruncate)(int fd, off_t length);
    int (*unlinkat)(int dirfd, const char *path, int flags);
    int (*fdatasync)(int fd);
    int (*fsync)(int fd); /* of directories, after creating, renaming or removing in them */
    int (*renameat)(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);
} hop__io;

/* The table in use; never NULL. */
extern const hop__io *hop__io_current;

/* Tests only: use io (NULL restores the real system calls). Not for use
 * while another thread is inside the library. */
void hop__io_set(const hop__io *io);

/* Write all of iov (total bytes) at offset of fd through the table,
 * looping over short writes and EINTR; iov is consumed. Returns the bytes
 * written: fewer than total means failure, errno set (EIO for a write that
 * wrote nothing). */
size_t hop__pwrite_all(int fd, struct iovec *iov, int n, uint64_t offset, size_t total);

/* The real system calls, for a test hook to call through to. */
extern const hop__io hop__io_system;

#endif
