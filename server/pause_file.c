/* pause_file.c - the paused mark of a channel on disk (see pause_file.h
 * for the format and why a crash leaves either state). */
#include "pause_file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

/* The channel's directory, opened for *at() calls; -1 with errno set. */
static int open_channel_dir(const char *data_dir, const char *name)
{
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/%s", data_dir, name);
    if (n < 0 || (size_t)n >= sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

bool pause_file_read(const char *data_dir, const char *name)
{
    int dirfd = open_channel_dir(data_dir, name);
    if (dirfd < 0)
        return false;
    struct stat st;
    bool paused = fstatat(dirfd, PAUSE_FILE_NAME, &st, AT_SYMLINK_NOFOLLOW) == 0;
    close(dirfd);
    return paused;
}

/* Create the mark in dirfd: a synced empty temporary file renamed to its
 * name. 0 or an errno value; no temporary file is left on failure. */
static int create_mark(int dirfd)
{
    int fd = openat(dirfd, PAUSE_FILE_TMP_NAME, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return errno;
    int err = fsync(fd) == 0 ? 0 : errno;
    if (close(fd) != 0 && err == 0)
        err = errno;
    if (err == 0 && renameat(dirfd, PAUSE_FILE_TMP_NAME, dirfd, PAUSE_FILE_NAME) != 0)
        err = errno;
    if (err != 0)
        unlinkat(dirfd, PAUSE_FILE_TMP_NAME, 0);
    return err;
}

int pause_file_write(const char *data_dir, const char *name, bool paused)
{
    int dirfd = open_channel_dir(data_dir, name);
    if (dirfd < 0)
        return errno;
    int err;
    if (paused)
        err = create_mark(dirfd);
    else
        err = unlinkat(dirfd, PAUSE_FILE_NAME, 0) == 0 || errno == ENOENT ? 0 : errno;
    /* the directory holds the rename or the unlink only once synced */
    if (err == 0 && fsync(dirfd) != 0)
        err = errno;
    close(dirfd);
    return err;
}
