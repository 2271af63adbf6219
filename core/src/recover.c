/* recover.c - opening a channel's directory: it is created if missing and
 * locked (flock), and what an earlier open left in it is recovered.
 *
 * The journal (journal.c) says which records were consumed. Every queue
 * file of this format version is framed (record.c has the rules): a torn
 * tail is cut off, damaged ranges are skipped (logged, counted), and the
 * records neither consumed nor damaged are the channel's messages, read in
 * file number order. New sends go on appending to the newest file while it
 * has room; the others are sealed. Files that are fully consumed are
 * removed (one that cannot be stays named consumed in the journal);
 * anything else in the directory (other names, other format versions) is
 * left alone and logged. Then the journal is rewritten to match
 * (persist.c).
 */
#include "recover.h"

#include "alloc.h"
#include "array.h"
#include "delay_file.h"
#include "disk.h"
#include "io.h"
#include "journal.h"
#include "move_file.h"
#include "log.h"
#include "persist.h"
#include "queue_file.h"
#include "record.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* The number of a new channel's first queue file: a close writes what
 * memory holds to a file numbered below the oldest (persist.c), so there
 * is room below. */
#define FIRST_SEQ ((uint64_t)1 << 62)

/* Create dir (one level) if missing and open it. Returns the fd or -1. */
static int open_dir_at(int at, const char *path)
{
    if (mkdirat(at, path, 0700) != 0 && errno != EEXIST)
        return -1;
    return openat(at, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* A queue file found in the directory. */
typedef struct found {
    uint64_t seq;
    int fd;
    uint64_t size;
} found;

typedef enum verdict {
    FILE_OURS,    /* a queue file of this version: recover it */
    FILE_EMPTY,   /* ours, cut short while being created: holds no record */
    FILE_FOREIGN, /* leave it alone */
    FILE_ERROR,   /* it cannot be read (errno set): the open fails */
} verdict;

/* Look at queue file name (number seq). OUT: *fd open for reading and
 * *size, when FILE_OURS. */
static verdict classify(hop_channel *ch, const char *name, uint64_t seq, int *fd, uint64_t *size)
{
    int rfd = hop__io_current->openat(ch->disk.dirfd, name, O_RDONLY | O_NOFOLLOW, 0);
    if (rfd < 0 && errno == ELOOP) {
        hop__log(HOP_LOG_WARN, ch->name, "%s is a symbolic link: left alone", name);
        return FILE_FOREIGN;
    }
    if (rfd < 0)
        return FILE_ERROR;
    struct stat st;
    unsigned char header[HOP__FILE_HEADER_SIZE], expect[HOP__FILE_HEADER_SIZE];
    hop__file_header_encode(expect, seq);
    ssize_t n = -1;
    if (fstat(rfd, &st) != 0) {
        n = -1;
    } else if (!S_ISREG(st.st_mode)) {
        hop__io_current->close(rfd);
        hop__log(HOP_LOG_WARN, ch->name, "%s is not a regular file: left alone", name);
        return FILE_FOREIGN;
    } else {
        do
            n = hop__io_current->pread(rfd, header, sizeof header, 0);
        while (n < 0 && errno == EINTR);
    }
    if (n < 0) {
        int saved = errno;
        hop__io_current->close(rfd);
        errno = saved;
        return FILE_ERROR;
    }
    if (n < (ssize_t)sizeof header && memcmp(header, expect, (size_t)n) == 0) {
        hop__io_current->close(rfd);
        return FILE_EMPTY; /* a crash while its header was written */
    }
    if (n == (ssize_t)sizeof header && memcmp(header, expect, sizeof header) == 0) {
        *fd = rfd;
        *size = (uint64_t)st.st_size;
        return FILE_OURS;
    }
    hop__io_current->close(rfd);
    if (n == (ssize_t)sizeof header && hop__file_header_other_version(header))
        hop__log(HOP_LOG_WARN, ch->name, "queue file %s is of another format version: left alone",
                 name);
    else
        hop__log(HOP_LOG_WARN, ch->name, "%s is not a queue file of this channel: left alone",
                 name);
    return FILE_FOREIGN;
}

static int by_seq(const void *a, const void *b)
{
    const found *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* One entry of the directory: a queue file of this version goes on list
 * (open for reading); one cut short at creation is removed; anything else
 * is logged and left alone. *max_seq is raised to its number. HOP_IO (a
 * queue file that cannot be read, logged; errno set) or HOP_NOMEM. */
static hop_err list_entry(hop_channel *ch, const char *name, hop__array *list, uint64_t *max_seq)
{
    uint64_t seq;
    hop__delay_id delayed;
    if (!hop__qfile_parse_name(name, &seq)) {
        if (name[0] != '.' && strcmp(name, HOP__JOURNAL_NAME) != 0 &&
            !hop__delay_file_parse_name(name, &delayed)) /* schedule.c's */
            hop__log(HOP_LOG_WARN, ch->name, "unknown file %s: left alone", name);
        return HOP_OK;
    }
    if (seq > *max_seq)
        *max_seq = seq; /* a foreign one's number is not reused either */
    found fo = {seq, -1, 0};
    switch (classify(ch, name, seq, &fo.fd, &fo.size)) {
    case FILE_EMPTY:
        if (hop__qfile_unlink(ch->disk.dirfd, seq) == 0)
            hop__log(HOP_LOG_INFO, ch->name, "removed %s, cut short when it was created", name);
        return HOP_OK;
    case FILE_FOREIGN:
        return HOP_OK;
    case FILE_ERROR:
        hop__log(HOP_LOG_ERROR, ch->name, "cannot read queue file %s: %s", name, strerror(errno));
        return HOP_IO;
    case FILE_OURS:
        break;
    }
    if (!hop__array_push(list, &fo, sizeof fo)) {
        hop__io_current->close(fo.fd);
        return HOP_NOMEM;
    }
    return HOP_OK;
}

/* The queue files of this version in the directory, by number. Removes
 * the ones cut short at creation. OUT: *out (new), *n, *max_seq (the
 * highest number seen, foreign files' too). */
static hop_err list_files(hop_channel *ch, found **out, size_t *n, uint64_t *max_seq)
{
    int fd = dup(ch->disk.dirfd);
    if (fd < 0)
        return HOP_IO;
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return HOP_IO;
    }
    hop__array list = {0};
    hop_err err = HOP_OK;
    *max_seq = 0;
    struct dirent *e;
    while (err == HOP_OK && (e = readdir(d)) != NULL)
        err = list_entry(ch, e->d_name, &list, max_seq);
    int saved = errno;
    closedir(d);
    errno = saved;
    found *files = list.items;
    if (err != HOP_OK) {
        for (size_t i = 0; i < list.count; i++)
            hop__io_current->close(files[i].fd);
        hop__array_release(&list);
        return err;
    }
    if (list.count)
        qsort(files, list.count, sizeof *files, by_seq);
    *out = files;
    *n = list.count;
    return HOP_OK;
}

/* What the framing of one file finds, given what the journal says. */
typedef struct framing {
    hop_channel *ch;
    uint64_t seq;
    uint64_t start;          /* records before this offset are consumed */
    const hop__jentry *done; /* this file's DONE entries, by offset */
    size_t ndone, done_next;
    uint64_t first;   /* the first unconsumed record, UINT64_MAX if none yet */
    size_t records;   /* unconsumed records */
    hop__array skips; /* hop__skip: the ranges beyond first */
    size_t gaps;
    bool nomem;
} framing;

static void add_skip(framing *fr, uint64_t off, uint64_t to, bool consumed)
{
    if (fr->first == UINT64_MAX)
        return; /* before the first unconsumed record: the read starts past it */
    hop__skip skip = {off, to, consumed};
    if (!hop__array_push(&fr->skips, &skip, sizeof skip))
        fr->nomem = true;
}

static void on_frame(void *arg, uint64_t off, uint64_t next, bool gap)
{
    framing *fr = arg;
    if (gap) {
        fr->gaps++;
        hop__log(HOP_LOG_ERROR, fr->ch->name,
                 "queue file %020" PRIu64 ".hq: %" PRIu64 " damaged byte(s) at offset %" PRIu64
                 " skipped",
                 fr->seq, next - off, off);
        add_skip(fr, off, next, false);
        return;
    }
    while (fr->done_next < fr->ndone && fr->done[fr->done_next].off < off)
        fr->done_next++;
    bool consumed =
        off < fr->start || (fr->done_next < fr->ndone && fr->done[fr->done_next].off == off);
    if (consumed) {
        add_skip(fr, off, next, true);
        return;
    }
    if (fr->first == UINT64_MAX)
        fr->first = off;
    fr->records++;
}

/* Frame file fo, given what the journal js says of it. OUT: *fr (its
 * skips are the caller's to release, also on error) and *valid_end, where
 * its last whole record ends. HOP_IO (errno set) or HOP_NOMEM, logged. */
static hop_err frame_file(hop_channel *ch, const hop__jstate *js, const found *fo, framing *fr,
                          uint64_t *valid_end)
{
    *fr = (framing){.ch = ch, .seq = fo->seq, .first = UINT64_MAX};
    fr->start = hop__journal_start_of(js, fo->seq);
    size_t i = 0;
    while (i < js->ndone && js->done[i].seq < fo->seq)
        i++;
    fr->done = js->ndone ? js->done + i : NULL; /* no journal: done is NULL, and NULL + 0 is UB */
    while (i < js->ndone && js->done[i].seq == fo->seq)
        i++, fr->ndone++;

    *valid_end = HOP__FILE_HEADER_SIZE;
    hop_err err = HOP_OK;
    if (fr->start != UINT64_MAX)
        err = hop__qfile_frame(fo->fd, HOP__FILE_HEADER_SIZE, fo->size, HOP_MAX_MESSAGE_BYTES,
                               on_frame, fr, valid_end);
    if (err == HOP_OK && fr->nomem)
        err = HOP_NOMEM;
    if (err != HOP_OK) {
        int saved = errno;
        hop__log(HOP_LOG_ERROR, ch->name, "reading queue file %020" PRIu64 ".hq: %s", fo->seq,
                 err == HOP_IO ? strerror(saved) : hop_strerror(err));
        errno = saved;
    }
    return err;
}

/* Cut what follows the last whole record of file seq, at valid_end: a
 * record torn by a crash while it was appended. Logged either way; false
 * if it could not be cut. */
static bool cut_torn_tail(hop_channel *ch, uint64_t seq, uint64_t size, uint64_t valid_end)
{
    char name[HOP__QFILE_NAME_SIZE];
    hop__qfile_name(seq, name);
    int wfd = hop__io_current->openat(ch->disk.dirfd, name, O_WRONLY, 0);
    bool cut = wfd >= 0 && hop__io_current->ftruncate(wfd, (off_t)valid_end) == 0;
    int saved = errno;
    if (wfd >= 0)
        hop__io_current->close(wfd);
    hop__log(cut ? HOP_LOG_WARN : HOP_LOG_ERROR, ch->name,
             "queue file %s: torn tail of %" PRIu64 " byte(s) at offset %" PRIu64 " %s%s", name,
             size - valid_end, valid_end,
             cut ? "cut off" : "left (cannot cut: ", cut ? "" : strerror(saved));
    return cut;
}

/* The file framed as fr, whose records end at valid_end (followed by
 * junk bytes of a torn tail that could not be cut), joins the channel,
 * sealed; its skips are taken. */
static hop_err adopt(hop_channel *ch, const found *fo, framing *fr, uint64_t valid_end,
                     uint64_t junk)
{
    hop__qfile *f = hop__calloc(1, sizeof *f);
    if (f == NULL)
        return HOP_NOMEM;
    f->seq = fo->seq;
    f->write_fd = -1;
    f->read_fd = -1; /* the reader opens it when it gets there */
    f->size = f->written = valid_end;
    f->junk = junk;
    f->records = fr->records;
    f->read_off = fr->first;
    f->sealed = true;
    f->skips = fr->skips;
    fr->skips = (hop__array){0};
    hop__disk_adopt(&ch->disk, f);
    ch->recovered_total += f->records;
    return HOP_OK;
}

/* Recover file fo into the channel's list, or remove it if it holds
 * nothing unconsumed. Takes fo->fd. */
static hop_err recover_file(hop_channel *ch, const hop__jstate *js, found *fo)
{
    framing fr;
    uint64_t valid_end;
    hop_err err = frame_file(ch, js, fo, &fr, &valid_end);
    int saved = errno;
    hop__io_current->close(fo->fd);
    if (err == HOP_OK) {
        ch->disk.records_corrupt += fr.gaps;
        if (fr.records == 0) {
            if (hop__qfile_unlink(ch->disk.dirfd, fo->seq) != 0) {
                /* the journal must go on saying it is consumed (persist.c) */
                hop__log(HOP_LOG_WARN, ch->name,
                         "cannot remove consumed queue file %020" PRIu64 ".hq: %s", fo->seq,
                         strerror(errno));
                if (!hop__disk_keep_unremoved(&ch->disk, fo->seq, fo->size))
                    err = HOP_NOMEM;
            }
        } else {
            bool torn = valid_end < fo->size;
            if (torn && cut_torn_tail(ch, fo->seq, fo->size, valid_end))
                torn = false;
            err = adopt(ch, fo, &fr, valid_end, torn ? fo->size - valid_end : 0);
        }
        saved = errno;
    }
    hop__array_release(&fr.skips);
    errno = saved;
    return err;
}

static hop_err recover(hop_channel *ch)
{
    hop__io_current->unlinkat(ch->disk.dirfd, HOP__JOURNAL_TMP_NAME, 0); /* a rewrite cut short */
    hop__jstate js;
    hop_err err = hop__journal_read(ch->disk.dirfd, &js);
    if (err != HOP_OK)
        return err;
    if (js.damaged || js.torn)
        hop__log(HOP_LOG_WARN, ch->name,
                 "journal: %zu damaged entr%s%s ignored (messages consumed before may come "
                 "again)",
                 js.damaged, js.damaged == 1 ? "y" : "ies", js.torn ? " and a torn tail" : "");

    found *files = NULL;
    size_t n = 0;
    uint64_t max_seq = 0;
    err = list_files(ch, &files, &n, &max_seq);
    size_t i = 0;
    for (; err == HOP_OK && i < n; i++)
        err = recover_file(ch, &js, &files[i]);
    int saved = errno;
    for (; i < n; i++)
        hop__io_current->close(files[i].fd);
    hop__free(files);
    hop__journal_state_release(&js);
    ch->disk.next_seq = max_seq >= FIRST_SEQ ? max_seq + 1 : FIRST_SEQ;
    if (err != HOP_OK) {
        errno = saved;
        return err;
    }
    if (ch->disk.records)
        hop__log(HOP_LOG_INFO, ch->name, "recovered %zu message(s) in %zu queue file(s)",
                 ch->disk.records, ch->disk.files);
    hop__disk_reopen_tail(&ch->disk);
    return hop__persist_rewrite(ch);
}

hop_err hop__recover_open(hop_channel *ch, const char *data_dir)
{
    int top = open_dir_at(AT_FDCWD, data_dir);
    if (top < 0)
        return HOP_IO;
    ch->disk.dirfd = open_dir_at(top, ch->name);
    int saved = errno;
    close(top);
    errno = saved;
    if (ch->disk.dirfd < 0)
        return HOP_IO;
    if (flock(ch->disk.dirfd, LOCK_EX | LOCK_NB) != 0)
        return HOP_IO;
    hop_err err = hop__move_recover(ch->disk.dirfd, ch->name); /* before the journal is read */
    if (err != HOP_OK)
        return err;
    return recover(ch);
}
