/* move_file.c - the intent and stage of a move (see move_file.h).
 *
 * Intent format, version 1, little-endian:
 *
 *     magic "HOPM" | u32 version | u32 count | u32 zero
 *     count x (u64 seq | u64 off)
 *     u32 crc32c of everything before
 *
 * A torn or damaged intent (wrong magic, size or checksum) was never
 * synced, so the rename that follows it never happened: it counts as a
 * move that did not commit. */
#include "move_file.h"

#include "alloc.h"
#include "crc32c.h"
#include "endian.h"
#include "io.h"
#include "journal.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC 0x4d504f48u /* "HOPM" in file order */
#define VERSION 1
#define HEADER 16
#define ENTRY 16

hop_err hop__move_intent_write(int dirfd, const hop__move_pos *pos, size_t n)
{
    size_t size = HEADER + n * ENTRY + 4;
    unsigned char *buf = hop__malloc(size);
    if (buf == NULL)
        return HOP_NOMEM;
    hop__le32_store(buf, MAGIC);
    hop__le32_store(buf + 4, VERSION);
    hop__le32_store(buf + 8, (uint32_t)n);
    hop__le32_store(buf + 12, 0);
    for (size_t i = 0; i < n; i++) {
        hop__le64_store(buf + HEADER + i * ENTRY, pos[i].seq);
        hop__le64_store(buf + HEADER + i * ENTRY + 8, pos[i].off);
    }
    hop__le32_store(buf + size - 4, hop__crc32c(0, buf, size - 4));
    hop_err err = HOP_IO;
    int fd = hop__io_current->openat(dirfd, HOP__MOVE_INTENT_NAME,
                                     O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) {
        struct iovec iov = {buf, size};
        if (hop__pwrite_all(fd, &iov, 1, 0, size) == size && hop__io_current->fdatasync(fd) == 0 &&
            hop__io_current->fsync(dirfd) == 0)
            err = HOP_OK;
        int saved = errno;
        hop__io_current->close(fd);
        errno = saved;
    }
    hop__free(buf);
    return err;
}

/* Remove name from dirfd if it is there: true, or false (errno set). */
static bool unlink_if_there(int dirfd, const char *name)
{
    if (faccessat(dirfd, name, F_OK, AT_SYMLINK_NOFOLLOW) != 0 && errno == ENOENT)
        return true; /* the common case at open: no system call that may fail */
    return hop__io_current->unlinkat(dirfd, name, 0) == 0 || errno == ENOENT;
}

hop_err hop__move_forget(int dirfd)
{
    if (!unlink_if_there(dirfd, HOP__MOVE_STAGE_NAME) ||
        !unlink_if_there(dirfd, HOP__MOVE_INTENT_NAME) || hop__io_current->fsync(dirfd) != 0)
        return HOP_IO;
    return HOP_OK;
}

/* Read the intent of dirfd. HOP_OK: *pos (new) and *n, or *n 0 and *pos
 * NULL when it is damaged; *found false when there is none. */
static hop_err intent_read(int dirfd, bool *found, hop__move_pos **pos, size_t *n)
{
    *found = false;
    *pos = NULL;
    *n = 0;
    int fd = hop__io_current->openat(dirfd, HOP__MOVE_INTENT_NAME, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return errno == ENOENT ? HOP_OK : HOP_IO;
    *found = true;
    struct stat st;
    hop_err err = HOP_IO;
    unsigned char *buf = NULL;
    if (fstat(fd, &st) != 0)
        goto out;
    size_t size = (size_t)st.st_size;
    err = HOP_OK;
    if (size < HEADER + 4 || (size - HEADER - 4) % ENTRY != 0)
        goto out; /* damaged */
    err = HOP_NOMEM;
    if ((buf = hop__malloc(size)) == NULL)
        goto out;
    err = HOP_IO;
    if (hop__io_current->pread(fd, buf, size, 0) != (ssize_t)size)
        goto out;
    err = HOP_OK;
    size_t count = (size - HEADER - 4) / ENTRY;
    if (hop__le32_load(buf) != MAGIC || hop__le32_load(buf + 4) != VERSION ||
        hop__le32_load(buf + 8) != count ||
        hop__le32_load(buf + size - 4) != hop__crc32c(0, buf, size - 4) || count == 0)
        goto out; /* damaged, or naming nothing */
    err = HOP_NOMEM;
    if ((*pos = hop__calloc(count, sizeof **pos)) == NULL)
        goto out;
    for (size_t i = 0; i < count; i++) {
        (*pos)[i].seq = hop__le64_load(buf + HEADER + i * ENTRY);
        (*pos)[i].off = hop__le64_load(buf + HEADER + i * ENTRY + 8);
    }
    *n = count;
    err = HOP_OK;
out:;
    int saved = errno;
    hop__free(buf);
    hop__io_current->close(fd);
    errno = saved;
    return err;
}

/* Journal pos[0..n) as consumed: the journal is rewritten with what it
 * said and those. */
static hop_err journal_consumed(int dirfd, const hop__move_pos *pos, size_t n)
{
    hop__jstate s;
    hop_err err = hop__journal_read(dirfd, &s);
    if (err != HOP_OK)
        return err;
    size_t total = s.nstarts + s.ndone + n;
    hop__jentry *all = hop__calloc(total, sizeof *all);
    if (all == NULL) {
        hop__journal_state_release(&s);
        return HOP_NOMEM;
    }
    memcpy(all, s.starts, s.nstarts * sizeof *all);
    memcpy(all + s.nstarts, s.done, s.ndone * sizeof *all);
    for (size_t i = 0; i < n; i++)
        all[s.nstarts + s.ndone + i] = (hop__jentry){HOP__J_DONE, pos[i].seq, pos[i].off};
    int fd = -1;
    uint64_t size;
    err = hop__journal_rewrite(dirfd, all, total, &fd, &size);
    if (fd >= 0)
        hop__io_current->close(fd);
    hop__free(all);
    hop__journal_state_release(&s);
    return err;
}

hop_err hop__move_recover(int dirfd, const char *name)
{
    bool found;
    hop__move_pos *pos;
    size_t n;
    hop_err err = intent_read(dirfd, &found, &pos, &n);
    if (err != HOP_OK)
        return err;
    if (!found) { /* a stage without an intent never committed either */
        if (!unlink_if_there(dirfd, HOP__MOVE_STAGE_NAME))
            return HOP_IO;
        return HOP_OK;
    }
    int fd = n ? hop__io_current->openat(dirfd, HOP__MOVE_STAGE_NAME, O_RDONLY | O_CLOEXEC, 0) : -1;
    bool committed = n > 0 && fd < 0 && errno == ENOENT;
    if (fd >= 0)
        hop__io_current->close(fd);
    else if (n > 0 && !committed) {
        hop__free(pos);
        return HOP_IO;
    }
    if (committed) {
        err = journal_consumed(dirfd, pos, n);
        if (err == HOP_OK)
            hop__log(HOP_LOG_INFO, name,
                     "a move cut short had committed: %zu record(s) it moved noted as consumed", n);
    } else {
        hop__log(HOP_LOG_INFO, name, "a move cut short had not committed: its records stay");
    }
    hop__free(pos);
    return err == HOP_OK ? hop__move_forget(dirfd) : err;
}
