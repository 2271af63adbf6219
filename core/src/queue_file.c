/* queue_file.c - one queue file: create, append, read, remove (see
 * queue_file.h; the byte format is documented in record.c). */
#include "queue_file.h"

#include "alloc.h"
#include "budget.h"
#include "endian.h"
#include "io.h"
#include "record.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

void hop__qfile_name(uint64_t seq, char out[HOP__QFILE_NAME_SIZE])
{
    snprintf(out, HOP__QFILE_NAME_SIZE, "%020" PRIu64 ".hq", seq);
}

bool hop__qfile_parse_name(const char *name, uint64_t *seq)
{
    uint64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
        uint64_t d = (uint64_t)(name[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (strcmp(name + 20, ".hq") != 0)
        return false;
    *seq = v;
    return true;
}

hop_err hop__qfile_create(int dirfd, uint64_t seq, hop__qfile **out)
{
    char name[HOP__QFILE_NAME_SIZE];
    hop__qfile_name(seq, name);
    hop__qfile *f = hop__calloc(1, sizeof *f);
    if (f == NULL)
        return HOP_NOMEM;
    int fd = hop__io_current->openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        goto fail_free;
    unsigned char header[HOP__FILE_HEADER_SIZE];
    hop__file_header_encode(header, seq);
    struct iovec iov = {header, sizeof header};
    if (hop__pwrite_all(fd, &iov, 1, 0, sizeof header) != sizeof header)
        goto fail_unlink;
    f->seq = seq;
    f->write_fd = fd;
    f->read_fd = -1;
    f->size = HOP__FILE_HEADER_SIZE;
    f->written = HOP__FILE_HEADER_SIZE;
    f->dir_unsynced = true;
    f->read_off = HOP__FILE_HEADER_SIZE;
    *out = f;
    return HOP_OK;

fail_unlink : {
    int saved = errno;
    hop__io_current->close(fd);
    hop__io_current->unlinkat(dirfd, name, 0);
    errno = saved;
}
fail_free:
    hop__free(f);
    return HOP_IO;
}

hop_err hop__qfile_append(hop__qfile *f, const void *payload, uint32_t len, uint64_t *end,
                          bool *torn)
{
    unsigned char header[HOP__RECORD_HEADER_SIZE];
    hop__record_header_encode(header, payload, len);
    struct iovec iov[2] = {{header, sizeof header}, {(void *)payload, len}};
    size_t total = sizeof header + (size_t)len;
    *torn = false;
    size_t done = hop__pwrite_all(f->write_fd, iov, len ? 2 : 1, f->written, total);
    if (done == total) {
        *end = f->written + total;
        return HOP_OK;
    }
    int saved = errno;
    if (done > 0 || saved == ENOSPC) {
        /* cut the partial record off; if that fails too the tail is junk the
         * reader must never reach, and the caller seals the file before it */
        while (hop__io_current->ftruncate(f->write_fd, (off_t)f->written) != 0) {
            if (errno != EINTR) {
                *torn = true;
                break;
            }
        }
    }
    errno = saved;
    return HOP_IO;
}

bool hop__qfile_add_skip(hop__qfile *f, uint64_t off, uint64_t to, bool consumed)
{
    hop__skip skip = {off, to, consumed};
    return hop__array_push(&f->skips, &skip, sizeof skip);
}

void hop__qfile_free(hop__qfile *f)
{
    if (f == NULL)
        return;
    if (f->write_fd >= 0)
        hop__io_current->close(f->write_fd);
    if (f->read_fd >= 0)
        hop__io_current->close(f->read_fd);
    hop__array_release(&f->skips);
    hop__free(f);
}

void hop__qfile_free_list(hop__qfile *f)
{
    while (f) {
        hop__qfile *next = f->next;
        hop__qfile_free(f);
        f = next;
    }
}

int hop__qfile_unlink(int dirfd, uint64_t seq)
{
    char name[HOP__QFILE_NAME_SIZE];
    hop__qfile_name(seq, name);
    return hop__io_current->unlinkat(dirfd, name, 0);
}

void hop__qfile_measure_junk(hop__qfile *f)
{
    struct stat st;
    f->junk = 0;
    if (f->write_fd >= 0 && fstat(f->write_fd, &st) == 0 && (uint64_t)st.st_size > f->written)
        f->junk = (uint64_t)st.st_size - f->written;
}

void hop__qreader_init(hop__qreader *r, hop_budget *budget)
{
    memset(r, 0, sizeof *r);
    r->budget = budget;
}

void hop__qreader_release(hop__qreader *r)
{
    if (r->buf)
        hop__budget_release(r->budget, r->cap);
    hop__free(r->buf);
    hop__qreader_init(r, r->budget);
}

/* Read exactly n bytes at off into dst. Returns false (errno set) on error
 * or if the file ends first (EIO: the file is shorter than published). */
static bool read_exact(int fd, void *dst, size_t n, uint64_t off)
{
    size_t done = 0;
    while (done < n) {
        ssize_t got = hop__io_current->pread(fd, (char *)dst + done, n - done, (off_t)(off + done));
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        if (got == 0) {
            errno = EIO;
            return false;
        }
        done += (size_t)got;
    }
    return true;
}

/* Allocate the buffer, counted in the budget: the full size if it has
 * room, else the small one whatever it says. False if out of memory
 * (nothing counted). */
static bool buffer_take(hop__qreader *r)
{
    size_t cap = HOP__READ_BUFFER;
    if (!hop__budget_reserve(r->budget, cap)) {
        cap = HOP__READ_BUFFER_SMALL;
        hop__budget_charge(r->budget, cap);
    }
    r->buf = hop__malloc(cap);
    if (r->buf == NULL) {
        hop__budget_release(r->budget, cap);
        return false;
    }
    r->cap = cap;
    return true;
}

/* Make the buffer hold [off, off + need) of file f, reading as far ahead as
 * avail allows. need <= r->cap. */
static hop__read_result fill(hop__qreader *r, hop__qfile *f, uint64_t off, size_t need,
                             uint64_t avail)
{
    if (r->buf && r->seq == f->seq && off >= r->off && off + need <= r->off + r->len)
        return HOP__READ_OK;
    if (r->buf == NULL && !buffer_take(r))
        return HOP__READ_NOMEM;
    uint64_t want = avail - off < r->cap ? avail - off : r->cap;
    r->len = 0;
    if (!read_exact(f->read_fd, r->buf, (size_t)want, off))
        return HOP__READ_IO;
    r->seq = f->seq;
    r->off = off;
    r->len = (size_t)want;
    return HOP__READ_OK;
}

hop__read_result hop__qreader_read(hop__qreader *r, int dirfd, hop__qfile *f, uint64_t off,
                                   uint64_t avail, size_t max_len, hop__msg **out, uint64_t *next)
{
    if (f->read_fd < 0) {
        char name[HOP__QFILE_NAME_SIZE];
        hop__qfile_name(f->seq, name);
        f->read_fd = hop__io_current->openat(dirfd, name, O_RDONLY, 0);
        if (f->read_fd < 0)
            return HOP__READ_IO;
    }
    if (avail - off < HOP__RECORD_HEADER_SIZE)
        return HOP__READ_UNFRAMED;
    hop__read_result res = fill(r, f, off, HOP__RECORD_HEADER_SIZE, avail);
    if (res != HOP__READ_OK)
        return res;
    uint32_t len, crc;
    const unsigned char *h = r->buf + (off - r->off);
    if (!hop__record_header_decode(h, &len, &crc) || len > max_len ||
        len > avail - off - HOP__RECORD_HEADER_SIZE)
        return HOP__READ_UNFRAMED;

    hop__msg *m = hop__msg_new(len);
    if (m == NULL)
        return HOP__READ_NOMEM;
    uint64_t body = off + HOP__RECORD_HEADER_SIZE;
    /* take what the buffer holds, read the rest straight into the message */
    size_t have = 0;
    if (body < r->off + r->len) {
        have = (size_t)(r->off + r->len - body);
        if (have > len)
            have = len;
        memcpy(m->data, r->buf + (body - r->off), have);
    }
    if (have < len) {
        size_t rest = len - have;
        if (rest < r->cap / 2) {
            res = fill(r, f, body + have, rest, avail);
            if (res != HOP__READ_OK) {
                hop__msg_free(m);
                return res;
            }
            memcpy(m->data + have, r->buf + (body + have - r->off), rest);
        } else if (!read_exact(f->read_fd, m->data + have, rest, body + have)) {
            hop__msg_free(m);
            return HOP__READ_IO;
        }
    }
    *next = body + len;
    if (!hop__record_verify(crc, m->data, len)) {
        hop__msg_free(m);
        return HOP__READ_CORRUPT;
    }
    *out = m;
    return HOP__READ_OK;
}

/* ---- framing a file of an earlier run ---- */

/* A window over the file for the framing: reads ahead in big chunks. */
typedef struct window {
    int fd;
    uint64_t size;
    unsigned char *buf;
    uint64_t off; /* file offset of buf[0] */
    size_t len;
} window;

/* Make [off, off + need) available in w->buf (need <= HOP__READ_BUFFER,
 * off + need <= size). NULL with errno set on a read error. */
static const unsigned char *window_at(window *w, uint64_t off, size_t need)
{
    if (off >= w->off && off + need <= w->off + w->len)
        return w->buf + (off - w->off);
    uint64_t want = w->size - off < HOP__READ_BUFFER ? w->size - off : HOP__READ_BUFFER;
    w->len = 0;
    if (!read_exact(w->fd, w->buf, (size_t)want, off))
        return NULL;
    w->off = off;
    w->len = (size_t)want;
    return w->buf;
}

/* The header alone: true in *valid if a record header with a length that
 * fits starts at off. Enough to step over a record (its payload is checked
 * when it is read). OUT: *next, the offset after it; *len, *crc. */
static hop_err header_at(window *w, uint64_t off, size_t max_len, uint64_t *next, uint32_t *len,
                         uint32_t *crc, bool *valid)
{
    *valid = false;
    if (w->size - off < HOP__RECORD_HEADER_SIZE)
        return HOP_OK;
    const unsigned char *h = window_at(w, off, HOP__RECORD_HEADER_SIZE);
    if (h == NULL)
        return HOP_IO;
    if (!hop__record_header_decode(h, len, crc) || *len > max_len ||
        *len > w->size - off - HOP__RECORD_HEADER_SIZE)
        return HOP_OK;
    *next = off + HOP__RECORD_HEADER_SIZE + *len;
    *valid = true;
    return HOP_OK;
}

/* True in *valid if a whole, valid record starts at off: the header, and
 * the payload checksum (the payload read with pread). */
static hop_err record_at(window *w, uint64_t off, size_t max_len, uint64_t *next, bool *valid)
{
    uint32_t len, crc;
    hop_err err = header_at(w, off, max_len, next, &len, &crc, valid);
    if (err != HOP_OK || !*valid || len == 0)
        return err;
    unsigned char *payload = hop__malloc(len);
    if (payload == NULL)
        return HOP_NOMEM;
    bool read = read_exact(w->fd, payload, len, off + HOP__RECORD_HEADER_SIZE);
    int saved = errno;
    *valid = read && hop__record_verify(crc, payload, len);
    hop__free(payload);
    errno = saved;
    return read ? HOP_OK : HOP_IO;
}

/* The first offset after from where a valid whole record begins, or size
 * if there is none. Candidates are found by the record magic. */
static hop_err resync(window *w, uint64_t from, size_t max_len, uint64_t *found)
{
    const unsigned char first = HOP__RECORD_MAGIC & 0xFF; /* a quick test before the whole magic */
    uint64_t off = from;
    while (w->size - off >= HOP__RECORD_HEADER_SIZE) {
        size_t span = w->size - off < HOP__READ_BUFFER ? (size_t)(w->size - off) : HOP__READ_BUFFER;
        const unsigned char *p = window_at(w, off, span);
        if (p == NULL)
            return HOP_IO;
        const unsigned char *hit = NULL;
        for (size_t i = 0; i + 4 <= span; i++) {
            if (p[i] == first && hop__le32_load(p + i) == HOP__RECORD_MAGIC) {
                hit = p + i;
                break;
            }
        }
        if (hit == NULL) {
            off += span - 3; /* a magic may straddle the end of the span */
            if (span < 4)
                break;
            continue;
        }
        uint64_t at = off + (uint64_t)(hit - p);
        uint64_t next;
        bool valid;
        hop_err err = record_at(w, at, max_len, &next, &valid);
        if (err != HOP_OK)
            return err;
        if (valid) {
            *found = at;
            return HOP_OK;
        }
        off = at + 1;
    }
    *found = w->size;
    return HOP_OK;
}

hop_err hop__qfile_frame(int fd, uint64_t from, uint64_t size, size_t max_len, hop__frame_fn fn,
                         void *arg, uint64_t *valid_end)
{
    window w = {.fd = fd, .size = size, .buf = hop__malloc(HOP__READ_BUFFER)};
    if (w.buf == NULL)
        return HOP_NOMEM;
    hop_err err = HOP_OK;
    uint64_t off = from;
    *valid_end = from;
    while (off < size) {
        uint64_t next;
        uint32_t len, crc;
        bool valid;
        err = header_at(&w, off, max_len, &next, &len, &crc, &valid);
        if (err != HOP_OK)
            break;
        if (valid) {
            fn(arg, off, next, false);
            off = next;
            *valid_end = off;
            continue;
        }
        uint64_t found;
        err = resync(&w, off + 1, max_len, &found);
        if (err != HOP_OK || found >= size)
            break; /* nothing valid follows: a torn tail */
        fn(arg, off, found, true);
        off = found;
    }
    int saved = errno;
    hop__free(w.buf);
    errno = saved;
    return err;
}
