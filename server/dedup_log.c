/* dedup_log.c - the key log's file (format and recovery in dedup_log.h). */
#include "dedup_log.h"

#include "hash.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const unsigned char magic[4] = {'H', 'P', 'D', 'K'};

static void put_u16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static void header_of(unsigned char out[DEDUP_LOG_HEADER_BYTES])
{
    memset(out, 0, DEDUP_LOG_HEADER_BYTES);
    memcpy(out, magic, sizeof magic);
    out[4] = DEDUP_LOG_VERSION;
}

/* The checksum of a record whose bytes from 4 on are rest[0..len). */
static uint32_t checksum(const unsigned char *rest, size_t len)
{
    return (uint32_t)hash_bytes(HASH_FNV1A_OFFSET, rest, len);
}

/* Encode the record of key[0..len) at accepted_ms into out (room for
 * DEDUP_LOG_RECORD_BYTES(len)). Returns its size. */
static size_t encode(unsigned char *out, const char *key, size_t len, uint64_t accepted_ms)
{
    put_u16(out + 4, (uint16_t)len);
    put_u64(out + 6, accepted_ms);
    memcpy(out + DEDUP_LOG_RECORD_HEADER, key, len);
    size_t total = DEDUP_LOG_RECORD_HEADER + len;
    put_u32(out, checksum(out + 4, total - 4));
    return total;
}

bool dedup_log_init(dedup_log *log, const char *dir)
{
    *log = (dedup_log){.fd = -1};
    return (log->dir = strdup(dir)) != NULL;
}

static int open_dir(const dedup_log *log)
{
    return open(log->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* Read records from in (past its header) until the end or the first one
 * that is not valid. OUT: *valid_end, the offset after the last valid one. */
static bool read_records(FILE *in, dedup_log_each each, void *arg, dedup_log_found *found,
                         uint64_t *valid_end)
{
    unsigned char rec[DEDUP_LOG_RECORD_HEADER + DEDUP_MAX_KEY];
    *valid_end = DEDUP_LOG_HEADER_BYTES;
    while (fread(rec, 1, DEDUP_LOG_RECORD_HEADER, in) == DEDUP_LOG_RECORD_HEADER) {
        size_t len = (size_t)get_le(rec + 4, 2);
        if (len == 0 || len > DEDUP_MAX_KEY ||
            fread(rec + DEDUP_LOG_RECORD_HEADER, 1, len, in) != len)
            break;
        if (checksum(rec + 4, DEDUP_LOG_RECORD_HEADER - 4 + len) != (uint32_t)get_le(rec, 4))
            break;
        if (!each(arg, (const char *)rec + DEDUP_LOG_RECORD_HEADER, len, get_le(rec + 6, 8)))
            return false;
        found->records++;
        *valid_end += DEDUP_LOG_RECORD_BYTES(len);
    }
    return true;
}

int dedup_log_read(const dedup_log *log, const char *name, dedup_log_each each, void *arg,
                   dedup_log_found *found)
{
    *found = (dedup_log_found){0};
    int dirfd = open_dir(log);
    if (dirfd < 0)
        return errno;
    int fd = openat(dirfd, DEDUP_LOG_NAME, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    int err = fd < 0 && errno != ENOENT ? errno : 0;
    close(dirfd);
    if (fd < 0)
        return err;
    found->exists = true;
    FILE *in = fdopen(fd, "rb");
    if (in == NULL) {
        err = errno;
        close(fd);
        return err;
    }
    unsigned char header[DEDUP_LOG_HEADER_BYTES] = {0}, expect[DEDUP_LOG_HEADER_BYTES];
    header_of(expect);
    uint64_t valid_end = 0;
    bool ok = true;
    if (fread(header, 1, sizeof header, in) == sizeof header &&
        memcmp(header, expect, sizeof header) == 0)
        ok = read_records(in, each, arg, found, &valid_end);
    else if (memcmp(header, magic, sizeof magic) == 0 && header[4] != DEDUP_LOG_VERSION)
        log_warn("channel %s: key log of version %u, not %u: its keys are not read", name,
                 header[4], DEDUP_LOG_VERSION);
    if (!ok)
        err = ENOMEM;
    else if (ferror(in))
        err = EIO;
    found->valid_bytes = valid_end;
    struct stat st;
    if (err == 0 && fstat(fd, &st) == 0 && (uint64_t)st.st_size > valid_end) {
        found->dropped_bytes = (uint64_t)st.st_size - valid_end;
        log_warn("channel %s: key log %s/%s: %" PRIu64 " byte(s) after %" PRIu64
                 " valid record(s) dropped (a write cut short, or damage)",
                 name, log->dir, DEDUP_LOG_NAME, found->dropped_bytes, found->records);
    }
    fclose(in);
    return err;
}

/* Write all of buf[0..len) to fd. 0, or an errno value. */
static int write_all(int fd, const unsigned char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Sync the directory of log, so that a created or renamed file stays. */
static int sync_dir(const dedup_log *log)
{
    int dirfd = open_dir(log);
    if (dirfd < 0)
        return errno;
    int err = fsync(dirfd) == 0 ? 0 : errno;
    close(dirfd);
    return err;
}

/* Open the log for appending, created with its header if it is not there
 * (or is only a header cut short). 0, or an errno value. */
static int open_for_append(dedup_log *log)
{
    int dirfd = open_dir(log);
    if (dirfd < 0)
        return errno;
    int fd =
        openat(dirfd, DEDUP_LOG_NAME, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    int err = fd < 0 ? errno : 0;
    close(dirfd);
    if (fd < 0)
        return err;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        err = errno;
        close(fd);
        return err;
    }
    log->bytes = (uint64_t)st.st_size;
    if (log->bytes < DEDUP_LOG_HEADER_BYTES) {
        unsigned char header[DEDUP_LOG_HEADER_BYTES];
        header_of(header);
        if ((err = ftruncate(fd, 0) == 0 ? 0 : errno) == 0)
            err = write_all(fd, header, sizeof header);
        if (err == 0)
            err = sync_dir(log);
        if (err != 0) {
            close(fd);
            return err;
        }
        log->bytes = DEDUP_LOG_HEADER_BYTES;
        log->records = 0;
        log->unsynced = true;
    }
    log->fd = fd;
    return 0;
}

int dedup_log_append(dedup_log *log, const char *key, size_t len, uint64_t accepted_ms, bool sync)
{
    int err = log->fd < 0 ? open_for_append(log) : 0;
    if (err != 0)
        return err;
    unsigned char rec[DEDUP_LOG_RECORD_HEADER + DEDUP_MAX_KEY];
    size_t n = encode(rec, key, len, accepted_ms);
    if ((err = write_all(log->fd, rec, n)) != 0) {
        /* a record cut short would hide the ones appended after it */
        if (ftruncate(log->fd, (off_t)log->bytes) != 0)
            log_warn("key log %s/%s: a record cut short stays (%s): the keys appended after "
                     "it are lost at the next start",
                     log->dir, DEDUP_LOG_NAME, strerror(errno));
        return err;
    }
    log->bytes += n;
    log->records++;
    log->unsynced = true;
    return sync ? dedup_log_sync(log) : 0;
}

int dedup_log_sync(dedup_log *log)
{
    if (log->fd < 0 || !log->unsynced)
        return 0;
    if (fdatasync(log->fd) != 0)
        return errno;
    log->unsynced = false;
    return 0;
}

int dedup_log_rewrite_begin(const dedup_log *log, dedup_log_rewrite *rw)
{
    *rw = (dedup_log_rewrite){0};
    int dirfd = open_dir(log);
    if (dirfd < 0)
        return errno;
    int fd = openat(dirfd, DEDUP_LOG_TMP_NAME,
                    O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    int err = fd < 0 ? errno : 0;
    close(dirfd);
    if (fd < 0)
        return err;
    if ((rw->out = fdopen(fd, "wb")) == NULL) {
        err = errno;
        close(fd);
        return err;
    }
    unsigned char header[DEDUP_LOG_HEADER_BYTES];
    header_of(header);
    if (fwrite(header, 1, sizeof header, rw->out) != sizeof header)
        rw->error = errno ? errno : EIO;
    rw->bytes = DEDUP_LOG_HEADER_BYTES;
    return 0;
}

void dedup_log_rewrite_add(dedup_log_rewrite *rw, const char *key, size_t len, uint64_t accepted_ms)
{
    unsigned char rec[DEDUP_LOG_RECORD_HEADER + DEDUP_MAX_KEY];
    size_t n = encode(rec, key, len, accepted_ms);
    if (rw->error == 0 && fwrite(rec, 1, n, rw->out) != n)
        rw->error = errno ? errno : EIO;
    rw->bytes += n;
    rw->records++;
}

/* Finish writing the temporary file: flushed, synced, closed. */
static int finish_tmp(dedup_log_rewrite *rw)
{
    int err = rw->error;
    if (err == 0 && fflush(rw->out) != 0)
        err = errno;
    if (err == 0 && fdatasync(fileno(rw->out)) != 0)
        err = errno;
    if (fclose(rw->out) != 0 && err == 0)
        err = errno;
    rw->out = NULL;
    return err;
}

int dedup_log_rewrite_end(dedup_log *log, dedup_log_rewrite *rw)
{
    int err = finish_tmp(rw);
    int dirfd = open_dir(log);
    if (dirfd < 0 && err == 0)
        err = errno;
    if (err == 0 && rw->records == 0) {
        unlinkat(dirfd, DEDUP_LOG_TMP_NAME, 0);
        err = unlinkat(dirfd, DEDUP_LOG_NAME, 0) == 0 || errno == ENOENT ? 0 : errno;
    } else if (err == 0) {
        err = renameat(dirfd, DEDUP_LOG_TMP_NAME, dirfd, DEDUP_LOG_NAME) == 0 ? 0 : errno;
    }
    if (err != 0 && dirfd >= 0)
        unlinkat(dirfd, DEDUP_LOG_TMP_NAME, 0);
    if (err == 0 && fsync(dirfd) != 0)
        err = errno;
    if (dirfd >= 0)
        close(dirfd);
    if (err != 0)
        return err;
    if (log->fd >= 0)
        close(log->fd); /* the old file: its records are in the new one */
    log->fd = -1;       /* opened again by the next append */
    log->bytes = rw->records ? rw->bytes : 0;
    log->records = rw->records;
    log->unsynced = false;
    return 0;
}

void dedup_log_close(dedup_log *log)
{
    if (log->fd >= 0) {
        dedup_log_sync(log); /* a clean stop keeps the keys even without --durable */
        close(log->fd);
    }
    log->fd = -1;
    free(log->dir);
    log->dir = NULL;
}

int dedup_log_remove(dedup_log *log)
{
    if (log->fd >= 0)
        close(log->fd);
    log->fd = -1;
    int err = 0;
    int dirfd = open_dir(log);
    if (dirfd < 0)
        err = errno;
    else if (unlinkat(dirfd, DEDUP_LOG_NAME, 0) != 0 && errno != ENOENT)
        err = errno;
    if (dirfd >= 0)
        close(dirfd);
    free(log->dir);
    log->dir = NULL;
    return err;
}
