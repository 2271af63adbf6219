/* graveyard.c - deleted channels' directories, moved aside and removed
 * (see graveyard.h). */
#include "graveyard.h"

#include "hex.h"
#include "log.h"
#include "random.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *graveyard_bury(const char *data_dir, const char *name)
{
    unsigned char bits[8];
    char tag[2 * sizeof bits + 1];
    random_bytes(bits, sizeof bits);
    hex_encode(bits, sizeof bits, tag);
    size_t size = strlen(GRAVEYARD_PREFIX) + strlen(name) + 1 + sizeof tag;
    char *gone = malloc(size);
    int dirfd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (gone == NULL || dirfd < 0) {
        int saved = gone == NULL ? ENOMEM : errno;
        free(gone);
        if (dirfd >= 0)
            close(dirfd);
        errno = saved;
        return NULL;
    }
    snprintf(gone, size, "%s%s-%s", GRAVEYARD_PREFIX, name, tag);
    /* the rename is the delete: synced before anyone is told */
    bool ok = renameat(dirfd, name, dirfd, gone) == 0 && fsync(dirfd) == 0;
    int saved = errno;
    close(dirfd);
    if (!ok) {
        free(gone);
        errno = saved;
        return NULL;
    }
    return gone;
}

void graveyard_remove(const char *data_dir, const char *gone)
{
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/%s", data_dir, gone);
    if (n < 0 || (size_t)n >= sizeof path)
        return;
    DIR *d = opendir(path);
    if (d == NULL) {
        if (errno != ENOENT)
            log_error("cannot remove %s: %s", path, strerror(errno));
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
            unlinkat(dirfd(d), e->d_name, 0) != 0)
            log_error("cannot remove %s/%s: %s", path, e->d_name, strerror(errno));
    closedir(d);
    if (rmdir(path) != 0)
        log_error("cannot remove %s: %s", path, strerror(errno));
}

bool graveyard_holds(const char *name)
{
    return strncmp(name, GRAVEYARD_PREFIX, strlen(GRAVEYARD_PREFIX)) == 0;
}
