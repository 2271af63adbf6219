/* journal.c - the consumed-records journal, version 1.
 *
 * <data_dir>/<channel>/consumed.hqc says which records of the channel's
 * queue files have been consumed. Queue files are append-only, so consuming
 * a record writes here, not there.
 *
 * File header, 16 bytes, integers little-endian:
 *   0  4  magic "HOPC"
 *   4  4  version (1)
 *   8  8  zero
 * Then entries, 32 bytes each:
 *   0  4  magic 0x44504F48 ("HOPD" in file order)
 *   4  4  kind: 1 START, 2 DONE
 *   8  8  seq, the queue file
 *  16  8  off, a record offset in that file
 *  24  4  zero
 *  28  4  CRC-32C of bytes 0..27
 *
 * Meaning. START(seq, off): every record of file seq that begins before off
 * is consumed (off UINT64_MAX: the whole file). DONE(seq, off): the record
 * of file seq at off is consumed. A record is consumed if an entry says so;
 * a file the journal has no START for has nothing consumed but its DONE
 * records. So a lost or damaged entry can only make a consumed message come
 * again, never lose one.
 *
 * Writing. A channel appends one DONE entry for each record it consumes
 * (with pwrite, not synced: a killed process loses nothing the kernel has,
 * and after a power failure a message consumed just before may come again).
 * From time to time, and at every open and close, the channel rewrites the
 * journal from its state: START for every queue file it holds, DONE for
 * records consumed out of order beyond them. The rewrite goes to
 * consumed.hqc.tmp, is synced and renamed over the journal, so a crash
 * leaves either journal whole. Entries of files that no longer exist are
 * dropped by the rewrite; a file number is only used again (by a close,
 * below the oldest file) right after a rewrite, so an old entry never meets
 * a new file.
 *
 * Reading. Entries are read up to the end of the file. One that fails its
 * checks is ignored and counted; a partial entry at the end is a torn
 * append and is ignored. Bump the version when any of this changes.
 */
#include "journal.h"

#include "alloc.h"
#include "array.h"
#include "crc32c.h"
#include "endian.h"
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define JOURNAL_MAGIC "HOPC"
#define JOURNAL_VERSION 1
#define ENTRY_MAGIC 0x44504F48u

static void encode(unsigned char out[HOP__JOURNAL_ENTRY_SIZE], const hop__jentry *e)
{
    hop__le32_store(out, ENTRY_MAGIC);
    hop__le32_store(out + 4, e->kind);
    hop__le64_store(out + 8, e->seq);
    hop__le64_store(out + 16, e->off);
    hop__le32_store(out + 24, 0);
    hop__le32_store(out + 28, hop__crc32c(0, out, 28));
}

static bool decode(const unsigned char in[HOP__JOURNAL_ENTRY_SIZE], hop__jentry *e)
{
    if (hop__le32_load(in) != ENTRY_MAGIC || hop__le32_load(in + 28) != hop__crc32c(0, in, 28))
        return false;
    e->kind = hop__le32_load(in + 4);
    e->seq = hop__le64_load(in + 8);
    e->off = hop__le64_load(in + 16);
    return e->kind == HOP__J_START || e->kind == HOP__J_DONE;
}

static void header_encode(unsigned char out[HOP__JOURNAL_HEADER_SIZE])
{
    memcpy(out, JOURNAL_MAGIC, 4);
    hop__le32_store(out + 4, JOURNAL_VERSION);
    hop__le64_store(out + 8, 0);
}

static int by_seq_off(const void *a, const void *b)
{
    const hop__jentry *x = a, *y = b;
    if (x->seq != y->seq)
        return x->seq < y->seq ? -1 : 1;
    if (x->off != y->off)
        return x->off < y->off ? -1 : 1;
    return 0;
}

void hop__journal_state_release(hop__jstate *s)
{
    hop__free(s->starts);
    hop__free(s->done);
    memset(s, 0, sizeof *s);
}

/* Read all of fd into a new buffer. OUT: *buf, *len. */
static hop_err slurp(int fd, unsigned char **buf, size_t *len)
{
    hop__array b = {0};
    for (;;) {
        if (b.count == b.cap && !hop__array_reserve(&b, 4096, 1)) {
            hop__array_release(&b);
            return HOP_NOMEM;
        }
        unsigned char *at = (unsigned char *)b.items + b.count;
        ssize_t got = hop__io_current->pread(fd, at, b.cap - b.count, (off_t)b.count);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            int saved = errno;
            hop__array_release(&b);
            errno = saved;
            return HOP_IO;
        }
        if (got == 0)
            break;
        b.count += (size_t)got;
    }
    *buf = b.items;
    *len = b.count;
    return HOP_OK;
}

/* True if buf[0..len) begins with the header of this journal version. */
static bool header_valid(const unsigned char *buf, size_t len)
{
    return len >= HOP__JOURNAL_HEADER_SIZE && memcmp(buf, JOURNAL_MAGIC, 4) == 0 &&
           hop__le32_load(buf + 4) == JOURNAL_VERSION;
}

/* Decode the entries of a whole journal buf[0..len) into out: every DONE
 * entry, and the last START of each seq; damaged and torn ones counted.
 * Unsorted. HOP_NOMEM leaves out empty. */
static hop_err decode_entries(const unsigned char *buf, size_t len, hop__jstate *out)
{
    size_t count = (len - HOP__JOURNAL_HEADER_SIZE) / HOP__JOURNAL_ENTRY_SIZE;
    hop__jentry *starts = hop__calloc(count ? count : 1, sizeof *starts);
    hop__jentry *done = hop__calloc(count ? count : 1, sizeof *done);
    if (starts == NULL || done == NULL) {
        hop__free(starts);
        hop__free(done);
        return HOP_NOMEM;
    }
    out->torn = (len - HOP__JOURNAL_HEADER_SIZE) % HOP__JOURNAL_ENTRY_SIZE != 0;
    size_t ns = 0, nd = 0;
    for (size_t i = 0; i < count; i++) {
        hop__jentry e;
        if (!decode(buf + HOP__JOURNAL_HEADER_SIZE + i * HOP__JOURNAL_ENTRY_SIZE, &e)) {
            out->damaged++;
            continue;
        }
        if (e.kind == HOP__J_DONE) {
            done[nd++] = e;
            continue;
        }
        /* the last START of a seq wins: a rewrite writes one per file */
        size_t j = 0;
        while (j < ns && starts[j].seq != e.seq)
            j++;
        starts[j] = e;
        if (j == ns)
            ns++;
    }
    out->starts = starts;
    out->nstarts = ns;
    out->done = done;
    out->ndone = nd;
    return HOP_OK;
}

/* Sort s's entries by (seq, off) and drop duplicate DONE entries. */
static void sort_entries(hop__jstate *s)
{
    qsort(s->starts, s->nstarts, sizeof *s->starts, by_seq_off);
    qsort(s->done, s->ndone, sizeof *s->done, by_seq_off);
    size_t unique = 0;
    for (size_t i = 0; i < s->ndone; i++)
        if (unique == 0 || by_seq_off(&s->done[unique - 1], &s->done[i]) != 0)
            s->done[unique++] = s->done[i];
    s->ndone = unique;
}

hop_err hop__journal_read(int dirfd, hop__jstate *out)
{
    memset(out, 0, sizeof *out);
    int fd = hop__io_current->openat(dirfd, HOP__JOURNAL_NAME, O_RDONLY, 0);
    if (fd < 0)
        return errno == ENOENT ? HOP_OK : HOP_IO;
    unsigned char *buf = NULL;
    size_t len = 0;
    hop_err err = slurp(fd, &buf, &len);
    int saved = errno;
    hop__io_current->close(fd);
    if (err != HOP_OK) {
        errno = saved;
        return err;
    }
    if (!header_valid(buf, len)) {
        /* not a journal we can read: as if consumed entries were lost */
        out->damaged = len > 0;
        out->torn = len > 0 && len < HOP__JOURNAL_HEADER_SIZE;
        hop__free(buf);
        return HOP_OK;
    }
    err = decode_entries(buf, len, out);
    hop__free(buf);
    if (err == HOP_OK)
        sort_entries(out);
    return err;
}

uint64_t hop__journal_start_of(const hop__jstate *s, uint64_t seq)
{
    size_t lo = 0, hi = s->nstarts;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->starts[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->nstarts && s->starts[lo].seq == seq ? s->starts[lo].off : 0;
}

/* Write all of buf at offset off of fd. False with errno set. */
static bool write_at(int fd, const unsigned char *buf, size_t len, uint64_t off)
{
    struct iovec iov = {(void *)buf, len};
    return hop__pwrite_all(fd, &iov, 1, off, len) == len;
}

hop_err hop__journal_rewrite(int dirfd, const hop__jentry *entries, size_t n, int *fd_out,
                             uint64_t *size)
{
    size_t len = HOP__JOURNAL_HEADER_SIZE + n * HOP__JOURNAL_ENTRY_SIZE;
    unsigned char *buf = hop__malloc(len);
    if (buf == NULL)
        return HOP_NOMEM;
    header_encode(buf);
    for (size_t i = 0; i < n; i++)
        encode(buf + HOP__JOURNAL_HEADER_SIZE + i * HOP__JOURNAL_ENTRY_SIZE, &entries[i]);

    hop__io_current->unlinkat(dirfd, HOP__JOURNAL_TMP_NAME, 0);
    int fd = hop__io_current->openat(dirfd, HOP__JOURNAL_TMP_NAME, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        goto fail_free;
    if (!write_at(fd, buf, len, 0) || hop__io_current->fdatasync(fd) != 0)
        goto fail_unlink;
    if (hop__io_current->renameat(dirfd, HOP__JOURNAL_TMP_NAME, dirfd, HOP__JOURNAL_NAME) != 0)
        goto fail_unlink;
    /* the rename is done; a failed directory sync only weakens it against
     * a power failure, and the old journal is gone either way */
    hop__io_current->fsync(dirfd);
    hop__free(buf);
    *fd_out = fd;
    *size = len;
    return HOP_OK;

fail_unlink : {
    int saved = errno;
    hop__io_current->close(fd);
    hop__io_current->unlinkat(dirfd, HOP__JOURNAL_TMP_NAME, 0);
    errno = saved;
}
fail_free : {
    int saved = errno;
    hop__free(buf);
    errno = saved;
}
    return HOP_IO;
}

hop_err hop__journal_append(int fd, uint64_t *size, const hop__jentry *e, size_t n)
{
    unsigned char buf[HOP__JOURNAL_APPEND_MAX * HOP__JOURNAL_ENTRY_SIZE];
    if (n > HOP__JOURNAL_APPEND_MAX) {
        errno = EINVAL;
        return HOP_IO;
    }
    for (size_t i = 0; i < n; i++)
        encode(buf + i * HOP__JOURNAL_ENTRY_SIZE, &e[i]);
    size_t len = n * HOP__JOURNAL_ENTRY_SIZE;
    struct iovec iov = {buf, len};
    size_t done = hop__pwrite_all(fd, &iov, 1, *size, len);
    if (done == len) {
        *size += len;
        return HOP_OK;
    }
    /* cut what was written off, so the file is as long as the budget counts
     * it; if that fails too, the next append overwrites it */
    int saved = errno;
    if (done > 0)
        hop__io_current->ftruncate(fd, (off_t)*size);
    errno = saved;
    return HOP_IO;
}
