/* delay_file.c - the files that hold a channel's delayed messages until
 * they are due (see schedule.c for which file a message goes to and when).
 *
 * Names: "delay-<kind>-<start>", <start> 16 lower-case hex digits of ms
 * since the epoch, <kind> one of
 *   w  a window: the messages due in [start, start + 60 s);
 *   n  a near file: those due in [start, start + 1 s), handed on in 20
 *      slots of 50 ms (version 2);
 *   s  a slot: those due in [start, start + 50 ms) (version 1, which split
 *      windows into slots; read, never written now).
 *
 * File header (32 bytes, integers little-endian):
 *    0  8  magic "HOPDELAY"
 *    8  1  format version: 2 (1 is read too)
 *    9  1  the kind, as in the name
 *   10  2  zero
 *   12  4  crc32c of bytes 0..12 and 16..24
 *   16  8  start of the span, ms since the epoch
 *   24  8  progress mark: bits 0..55 an offset, bits 56..63 a slot (of the
 *          span, counted from 0): every record of an earlier slot was
 *          handed on, and of that slot those before the offset (32, the
 *          first record's, when none). A window, and a version-1 file, has
 *          one slot: the mark is the offset of the first record not yet
 *          moved on, as version 1 wrote it. Rewritten as records are handed
 *          on; not under the checksum (an aligned 8-byte write lands whole).
 * Records follow, in the order they arrived (so a near file's due times
 * may go up and down):
 *    0  4  crc32c of bytes 4..24 of this header and of the payload
 *    4  4  payload length
 *    8  8  due time, ms since the epoch (absolute: a restart keeps it)
 *   16  1  kind: 1 to the tail, 2 back to the head
 *   17  7  zero
 *   24  .  payload
 * A record is valid when its checksum matches and its kind is known. The
 * scan at open cuts off a tail that is no whole record (a write torn by a
 * crash) and counts the records the mark leaves to hand on; a record
 * whose checksum fails is skipped and counted as corrupt when read.
 * Records handed on (or moved to a near file) just before a crash, whose
 * progress mark was not written yet, are handed on (moved) again after the
 * restart: at-least-once for that moment; schedule.c marks at least every
 * 64. Version 2 added near files and the slot in the mark; bump the
 * version when the layout changes: a file of a version this library does
 * not read is left alone (and logged by the caller).
 */
#include "delay_file.h"

#include "alloc.h"
#include "crc32c.h"
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char MAGIC[8] = {'H', 'O', 'P', 'D', 'E', 'L', 'A', 'Y'};
#define PROGRESS_OFFSET 24
#define MARK_OFF_BITS 56
#define MARK_OFF_MASK (((uint64_t)1 << MARK_OFF_BITS) - 1)

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static bool kind_known(int kind)
{
    return kind == HOP__DELAY_WINDOW || kind == HOP__DELAY_NEAR || kind == HOP__DELAY_SLOT;
}

static uint64_t span_of(hop__delay_id id)
{
    return id.kind == HOP__DELAY_WINDOW ? HOP__DELAY_WINDOW_MS
           : id.kind == HOP__DELAY_NEAR ? HOP__DELAY_NEAR_MS
                                        : HOP__DELAY_SLOT_MS;
}

unsigned hop__delay_slot_of(hop__delay_id id, uint64_t due_ms)
{
    if (id.kind == HOP__DELAY_WINDOW || due_ms < id.start)
        return 0;
    uint64_t slot = (due_ms - id.start) / HOP__DELAY_SLOT_MS;
    uint64_t last = span_of(id) / HOP__DELAY_SLOT_MS - 1;
    return (unsigned)(slot < last ? slot : last);
}

uint64_t hop__delay_slot_end(hop__delay_id id, uint64_t due_ms)
{
    if (id.kind == HOP__DELAY_WINDOW)
        return id.start + HOP__DELAY_WINDOW_MS;
    return id.start + (uint64_t)(hop__delay_slot_of(id, due_ms) + 1) * HOP__DELAY_SLOT_MS;
}

bool hop__delay_pending(hop__delay_id id, hop__delay_mark m, uint64_t off, uint64_t due_ms)
{
    unsigned slot = hop__delay_slot_of(id, due_ms);
    return slot > m.slot || (slot == m.slot && off >= m.off);
}

void hop__delay_file_name(char out[HOP__DELAY_NAME_SIZE], hop__delay_id id)
{
    snprintf(out, HOP__DELAY_NAME_SIZE, "delay-%c-%016" PRIx64, id.kind, id.start);
}

bool hop__delay_file_parse_name(const char *name, hop__delay_id *id)
{
    if (strncmp(name, "delay-", 6) != 0 || !kind_known(name[6]) || name[7] != '-')
        return false;
    uint64_t start = 0;
    const char *p = name + 8;
    for (int i = 0; i < 16; i++, p++) {
        int d = *p >= '0' && *p <= '9' ? *p - '0' : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10 : -1;
        if (d < 0)
            return false;
        start = start << 4 | (uint64_t)d;
    }
    if (*p != '\0')
        return false;
    *id = (hop__delay_id){.kind = name[6], .start = start};
    return true;
}

static uint32_t header_crc(const unsigned char h[HOP__DELAY_HEADER_SIZE])
{
    return hop__crc32c(hop__crc32c(0, h, 12), h + 16, 8);
}

static void header_encode(unsigned char h[HOP__DELAY_HEADER_SIZE], hop__delay_id id)
{
    memset(h, 0, HOP__DELAY_HEADER_SIZE);
    memcpy(h, MAGIC, sizeof MAGIC);
    h[8] = HOP__DELAY_VERSION;
    h[9] = (unsigned char)id.kind;
    put64(h + 16, id.start);
    put64(h + PROGRESS_OFFSET, HOP__DELAY_HEADER_SIZE);
    put32(h + 12, header_crc(h));
}

/* Whether a file of kind may be of version: slots are version 1's, near
 * files version 2's, windows both's (the same layout). */
static bool version_has(int version, int kind)
{
    if (version == 1)
        return kind == HOP__DELAY_WINDOW || kind == HOP__DELAY_SLOT;
    return version == 2 && (kind == HOP__DELAY_WINDOW || kind == HOP__DELAY_NEAR);
}

/* True if h is the header of file id in a version this library reads;
 * OUT: *mark. */
static bool header_decode(const unsigned char h[HOP__DELAY_HEADER_SIZE], hop__delay_id id,
                          hop__delay_mark *mark)
{
    if (memcmp(h, MAGIC, sizeof MAGIC) != 0 || !version_has(h[8], id.kind) || h[9] != id.kind ||
        get32(h + 12) != header_crc(h) || get64(h + 16) != id.start)
        return false;
    uint64_t progress = get64(h + PROGRESS_OFFSET);
    *mark = (hop__delay_mark){(unsigned)(progress >> MARK_OFF_BITS), progress & MARK_OFF_MASK};
    return mark->off >= HOP__DELAY_HEADER_SIZE && mark->slot <= hop__delay_slot_of(id, UINT64_MAX);
}

static void record_header_encode(unsigned char h[HOP__DELAY_RECORD_HEADER_SIZE],
                                 const hop__delay_rec *rec)
{
    memset(h, 0, HOP__DELAY_RECORD_HEADER_SIZE);
    put32(h + 4, (uint32_t)rec->len);
    put64(h + 8, rec->due_ms);
    h[16] = (unsigned char)rec->kind;
    uint32_t crc = hop__crc32c(0, h + 4, HOP__DELAY_RECORD_HEADER_SIZE - 4);
    put32(h, rec->len ? hop__crc32c(crc, rec->data, rec->len) : crc);
}

/* Open file id for appending, creating it with its header if missing.
 * OUT: *size, its size, *created. -1 on failure (errno set). */
static int open_append(int dirfd, hop__delay_id id, uint64_t *size, bool *created)
{
    char name[HOP__DELAY_NAME_SIZE];
    hop__delay_file_name(name, id);
    *created = false;
    int fd = hop__io_current->openat(dirfd, name, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0 && errno == ENOENT) {
        fd = hop__io_current->openat(dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0)
            return -1;
        *created = true;
        unsigned char h[HOP__DELAY_HEADER_SIZE];
        header_encode(h, id);
        struct iovec iov = {h, sizeof h};
        if (hop__pwrite_all(fd, &iov, 1, 0, sizeof h) != sizeof h) {
            int saved = errno;
            hop__io_current->close(fd);
            hop__io_current->unlinkat(dirfd, name, 0);
            errno = saved;
            return -1;
        }
        *size = HOP__DELAY_HEADER_SIZE;
        return fd;
    }
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) != 0) {
        int saved = errno;
        hop__io_current->close(fd);
        errno = saved;
        return -1;
    }
    if (fd >= 0)
        *size = (uint64_t)st.st_size;
    return fd;
}

/* The append failed: take back what it wrote. */
static void append_undo(int dirfd, hop__delay_id id, int fd, uint64_t size, bool created)
{
    int saved = errno;
    if (created) {
        char name[HOP__DELAY_NAME_SIZE];
        hop__delay_file_name(name, id);
        hop__io_current->unlinkat(dirfd, name, 0);
    } else {
        hop__io_current->ftruncate(fd, (off_t)size);
    }
    hop__io_current->close(fd);
    errno = saved;
}

/* Write recs[0..n) at size of fd, one after another. False: errno set. */
static bool write_records(int fd, uint64_t size, const hop__delay_rec *recs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char h[HOP__DELAY_RECORD_HEADER_SIZE];
        record_header_encode(h, &recs[i]);
        struct iovec iov[2] = {{h, sizeof h}, {recs[i].data, recs[i].len}};
        size_t total = sizeof h + recs[i].len;
        if (hop__pwrite_all(fd, iov, recs[i].len ? 2 : 1, size, total) != total)
            return false;
        size += total;
    }
    return true;
}

hop_err hop__delay_file_append(int dirfd, hop__delay_id id, const hop__delay_rec *recs, size_t n,
                               bool durable, uint64_t *added)
{
    uint64_t size;
    bool created;
    int fd = open_append(dirfd, id, &size, &created);
    if (fd < 0)
        return HOP_IO;
    bool ok = write_records(fd, size, recs, n);
    ok = ok && (!durable || hop__io_current->fdatasync(fd) == 0);
    ok = ok && (!durable || !created || hop__io_current->fsync(dirfd) == 0);
    if (!ok) {
        append_undo(dirfd, id, fd, size, created);
        return HOP_IO;
    }
    hop__io_current->close(fd);
    *added = (created ? HOP__DELAY_HEADER_SIZE : 0);
    for (size_t i = 0; i < n; i++)
        *added += hop__delay_record_size(recs[i].len);
    return HOP_OK;
}

#define READ_BUF_SIZE ((size_t)64 << 10)

/* Read len bytes at off into dst, through r's buffer when they fit in it
 * (the bytes below r->size never change: records are only appended). */
static bool read_at(hop__delay_reader *r, void *dst, size_t len, uint64_t off)
{
    if (r->buf != NULL && off >= r->buf_at && off + len <= r->buf_at + r->buf_len) {
        memcpy(dst, r->buf + (off - r->buf_at), len);
        return true;
    }
    if (len > READ_BUF_SIZE / 2)
        return hop__io_current->pread(r->fd, dst, len, (off_t)off) == (ssize_t)len;
    if (r->buf == NULL && (r->buf = hop__malloc(READ_BUF_SIZE)) == NULL) {
        errno = ENOMEM;
        return false;
    }
    uint64_t want = r->size - off < READ_BUF_SIZE ? r->size - off : READ_BUF_SIZE;
    ssize_t got = hop__io_current->pread(r->fd, r->buf, (size_t)want, (off_t)off);
    r->buf_at = off;
    r->buf_len = got > 0 ? (size_t)got : 0;
    if (r->buf_len < len) {
        if (got >= 0)
            errno = EIO; /* shorter than its size said */
        return false;
    }
    memcpy(dst, r->buf, len);
    return true;
}

hop_err hop__delay_reader_open(int dirfd, hop__delay_id id, hop__delay_reader *r)
{
    r->buf = NULL;
    r->buf_len = 0;
    r->buf_at = 0;
    char name[HOP__DELAY_NAME_SIZE];
    hop__delay_file_name(name, id);
    r->fd = hop__io_current->openat(dirfd, name, O_RDWR | O_CLOEXEC, 0);
    if (r->fd < 0)
        return HOP_IO;
    unsigned char h[HOP__DELAY_HEADER_SIZE];
    struct stat st;
    if (fstat(r->fd, &st) != 0)
        goto fail;
    if (hop__io_current->pread(r->fd, h, sizeof h, 0) != (ssize_t)sizeof h ||
        !header_decode(h, id, &r->mark)) {
        errno = EINVAL;
        goto fail;
    }
    r->off = r->mark.off;
    r->size = (uint64_t)st.st_size;
    return HOP_OK;
fail:;
    int saved = errno;
    hop__io_current->close(r->fd);
    r->fd = -1;
    errno = saved;
    return HOP_IO;
}

hop__delay_read hop__delay_reader_next(hop__delay_reader *r, hop__delay_rec *rec)
{
    if (r->off >= r->size)
        return HOP__DELAY_READ_END;
    unsigned char h[HOP__DELAY_RECORD_HEADER_SIZE];
    if (r->size - r->off < sizeof h)
        return HOP__DELAY_READ_TORN;
    if (!read_at(r, h, sizeof h, r->off))
        return HOP__DELAY_READ_ERROR;
    uint32_t len = get32(h + 4);
    if (len > HOP_MAX_MESSAGE_BYTES || r->size - r->off - sizeof h < len)
        return HOP__DELAY_READ_TORN;
    void *data = hop__malloc(len ? len : 1);
    if (data == NULL) {
        errno = ENOMEM;
        return HOP__DELAY_READ_ERROR;
    }
    if (len && !read_at(r, data, len, r->off + sizeof h)) {
        hop__free(data);
        return HOP__DELAY_READ_ERROR;
    }
    r->off += sizeof h + len;
    uint32_t crc = hop__crc32c(hop__crc32c(0, h + 4, sizeof h - 4), data, len);
    if (crc != get32(h) || (h[16] != HOP__DELAY_TAIL && h[16] != HOP__DELAY_HEAD)) {
        hop__free(data);
        return HOP__DELAY_READ_CORRUPT;
    }
    *rec = (hop__delay_rec){get64(h + 8), (hop__delay_kind)h[16], data, len};
    return HOP__DELAY_READ_OK;
}

bool hop__delay_reader_mark(hop__delay_reader *r, hop__delay_mark m)
{
    unsigned char b[8];
    put64(b, (uint64_t)m.slot << MARK_OFF_BITS | m.off);
    struct iovec iov = {b, sizeof b};
    return hop__pwrite_all(r->fd, &iov, 1, PROGRESS_OFFSET, sizeof b) == sizeof b;
}

void hop__delay_reader_close(hop__delay_reader *r)
{
    hop__free(r->buf);
    r->buf = NULL;
    if (r->fd >= 0)
        hop__io_current->close(r->fd);
    r->fd = -1;
}

hop_err hop__delay_file_scan(int dirfd, hop__delay_id id, hop__delay_scan *out)
{
    hop__delay_reader r;
    if (hop__delay_reader_open(dirfd, id, &r) != HOP_OK)
        return HOP_IO;
    *out = (hop__delay_scan){.mark = r.mark, .next_due = UINT64_MAX, .sorted = true};
    r.off = HOP__DELAY_HEADER_SIZE; /* a near file's mark may leave records before it */
    hop__delay_read res;
    hop__delay_rec rec;
    uint64_t at = r.off;
    bool first = true;
    while ((res = hop__delay_reader_next(&r, &rec)) == HOP__DELAY_READ_OK ||
           res == HOP__DELAY_READ_CORRUPT) {
        if (res == HOP__DELAY_READ_OK) {
            hop__free(rec.data);
            out->sorted = out->sorted && (first || rec.due_ms >= out->last_due);
            out->last_due = rec.due_ms;
            first = false;
            if (hop__delay_pending(id, r.mark, at, rec.due_ms)) {
                if (out->records++ == 0)
                    out->low = at;
                if (rec.due_ms < out->next_due)
                    out->next_due = rec.due_ms;
            }
        } else if (at >= r.mark.off) {
            out->corrupt++;
        }
        at = r.off;
    }
    out->size = r.size;
    hop_err err = HOP_OK;
    if (res == HOP__DELAY_READ_TORN) {
        if (hop__io_current->ftruncate(r.fd, (off_t)r.off) == 0)
            out->size = r.off;
    } else if (res == HOP__DELAY_READ_ERROR) {
        err = HOP_IO;
    }
    if (out->records == 0)
        out->low = out->size;
    out->done = out->records == 0;
    int saved = errno;
    hop__delay_reader_close(&r);
    errno = saved;
    return err;
}

int hop__delay_file_unlink(int dirfd, hop__delay_id id)
{
    char name[HOP__DELAY_NAME_SIZE];
    hop__delay_file_name(name, id);
    return hop__io_current->unlinkat(dirfd, name, 0);
}

int hop__delay_file_sync(int dirfd, hop__delay_id id)
{
    char name[HOP__DELAY_NAME_SIZE];
    hop__delay_file_name(name, id);
    int fd = hop__io_current->openat(dirfd, name, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int rc = hop__io_current->fdatasync(fd);
    int saved = errno;
    hop__io_current->close(fd);
    errno = saved;
    return rc;
}
