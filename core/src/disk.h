/* disk.h - the disk part of a channel: its queue files, oldest first, and
 * the counts that say what they hold. The files of one channel are appended
 * to, read and removed here; the byte format is record.c's, one file's I/O
 * is queue_file.c's.
 *
 * The disk part knows nothing of the channel around it: it does not lock,
 * wake receivers or schedule syncs. Each function says which of the
 * channel's locks its caller holds:
 *   state   the channel's `lock`, which guards the fields marked so;
 *   writer  the channel's `write_lock`: one appender at a time;
 *   reader  the channel's `read_lock`: one reader or remover at a time.
 * And each returns what it did (records published, files finished, a
 * descriptor to close), for the caller to act on: announce, dispatch, queue
 * a sync, remove files once the state lock is dropped.
 *
 * An append is planned (room reserved), written (no lock but the writer's),
 * then published (readable now), staged (durable: readable once synced), or
 * on failure rolled back and cancelled. A read of the next record is
 * reserved, read (no lock but the reader's), then committed.
 *
 * The bytes the files take on disk are counted on the disk side of the
 * channel's budget (limits->budget, if any): a plan reserves what its run
 * will write, a roll back or a cut gives back what it took off again, a
 * removed file gives back its size, recovery counts what it adopts, and
 * the journal (persist.c) counts through hop__disk_count(). The disk part
 * keeps the sum, and gives it all back when it is released. */
#ifndef HOP_DISK_H
#define HOP_DISK_H

#include "hopper/hopper.h"

#include "array.h"
#include "message.h"
#include "queue_file.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hop__disk {
    /* First, so that they share a cache line with the limits the channel
     * puts just before: every memory send reads them (hop__disk_empty()). */
    size_t records;   /* state: published records not read yet */
    size_t pending;   /* state: records being appended (durable: or waiting for their sync) */
    atomic_bool busy; /* records or pending, as a hint read without the lock */

    const hop_limits *limits; /* the channel's (borrowed) */
    const char *name;         /* the channel's, for log lines (borrowed) */
    int dirfd;                /* the channel directory, flock'ed; -1 when memory only (owned) */

    hop__qfile *head, *tail;  /* state: the files, oldest first */
    hop__qfile *write_file;   /* state: the file being appended to (the tail), or NULL */
    size_t files;             /* state: files in the list plus files being created */
    uint64_t bytes;           /* state: published bytes of the files in the list */
    uint64_t records_corrupt; /* state: records skipped as corrupt (hop_stats) */
    uint64_t next_seq;        /* writer: the number of the next file */
    hop__qreader reader;      /* reader */
    hop__array unremoved;     /* reader: hop__unremoved, consumed files that could not be
                                 removed; the journal goes on naming them (persist.c) */
    _Atomic uint64_t counted; /* any lock: bytes of the channel's files and journal counted on
                                 the budget's disk side */
} hop__disk;

/* A consumed file that could not be removed: it stays counted. */
typedef struct hop__unremoved {
    uint64_t seq;
    uint64_t bytes; /* what it takes on disk */
} hop__unremoved;

/* Where one record was appended: its file, its offset, the offset after it. */
typedef struct hop__disk_span {
    hop__qfile *file;
    uint64_t start, end;
} hop__disk_span;

/* A run of appends, from hop__disk_append_plan() to its publication or
 * cancellation: the caller's, on its stack. */
typedef struct hop__disk_run {
    size_t records;      /* records the run appends */
    size_t new_files;    /* files it may start, reserved against max_disk_files */
    hop__qfile *first;   /* the file it appends to first; NULL: it starts a new one */
    uint64_t first_end;  /* where first ended before the run: a roll back cuts it there */
    hop__qfile *current; /* the file the next record goes to; NULL: a new one */
    hop__qfile *created, *created_tail; /* the files started, chained by next */
    bool torn;                          /* first holds junk after first_end: it must be sealed */
    uint64_t bytes;                     /* what it reserved on the budget's disk side */
} hop__disk_run;

/* A read of the next record, from reservation to commit: the caller's. */
typedef struct hop__disk_read {
    hop__qfile *file;
    uint64_t off;            /* where the record begins */
    uint64_t avail;          /* the file's published size when reserved */
    size_t records;          /* the file's published records when reserved */
    hop__read_result result; /* hop__disk_read_record() */
    hop__msg *msg;           /* HOP__READ_OK: the message (new) */
    uint64_t next;           /* the offset after the record */
    int err_no;              /* errno of a failed read, EIO for a corrupt record */
    hop__qfile *finished;    /* files found finished, for hop__disk_remove() */
} hop__disk_read;

/* ---- the whole ---- */

/* An empty disk part for a channel with limits and name (both borrowed, they
 * must outlive d), without a directory. */
void hop__disk_init(hop__disk *d, const hop_limits *limits, const char *name);
/* Free the list (the files stay on disk), the reader and close the
 * directory, which releases its flock. Everything counted on the budget's
 * disk side is given back: the files count only while the channel is
 * open. */
void hop__disk_release(hop__disk *d);

/* Count bytes more, or fewer, on the budget's disk side for the channel,
 * whatever its limit: the journal's growth and rewrites, the file written
 * at close. Any lock. */
void hop__disk_count(hop__disk *d, uint64_t bytes);
void hop__disk_uncount(hop__disk *d, uint64_t bytes);

/* True if nothing is on disk or on its way there: sends may go to memory.
 * State lock held. */
static inline bool hop__disk_empty(const hop__disk *d)
{
    return d->records == 0 && d->pending == 0;
}

/* Add f, a file found at open, at the end of the list; it is counted, and
 * its bytes (written and junk) on the budget's disk side. */
void hop__disk_adopt(hop__disk *d, hop__qfile *f);
/* Sends go on appending to the newest file while it has room, rather than
 * start a new one at every open. If it cannot be opened for writing, or
 * holds junk, it stays sealed. At open, single-threaded. */
void hop__disk_reopen_tail(hop__disk *d);

/* ---- finished files ---- */

/* Take the files at the head that are finished (nothing left to read,
 * nothing in flight or waiting for a sync, and sealed or empty at the
 * tail) off the list and chain them on *finished. State and reader locks
 * held. */
void hop__disk_detach_finished(hop__disk *d, hop__qfile **finished);
/* Remove the files of finished, giving back their bytes. One that cannot
 * be removed is logged and remembered in unremoved, and stays counted.
 * Reader lock held, state lock not. Free them afterwards, without locks,
 * with hop__qfile_free_list(): the last close of a removed file makes the
 * kernel drop its cached pages (and, on a file system mounted with
 * discard, wait for the device), which must not hold up the channel. */
void hop__disk_remove(hop__disk *d, hop__qfile *finished);
/* Try again to remove the files in unremoved. Reader lock held. */
void hop__disk_retry_unremoved(hop__disk *d);
/* Remember file seq of bytes, found consumed at open and not removable,
 * in unremoved, so that the journal goes on saying so; it is counted.
 * False if out of memory (nothing changed). At open, single-threaded. */
bool hop__disk_keep_unremoved(hop__disk *d, uint64_t seq, uint64_t bytes);

/* ---- appending ---- */

/* Plan appending msgs[0..n) as one run: count the files it will start and
 * the bytes it will write. HOP_OK: room for them is reserved (files and
 * pending count them, the budget's disk side the bytes). HOP_FULL: they
 * would pass max_disk_files; HOP_NOSPACE: the bytes do not fit on the
 * budget's disk side; nothing changed either way. State lock held, and
 * the writer's. OUT: *run. */
hop_err hop__disk_append_plan(hop__disk *d, const hop_buf *msgs, size_t n, hop__disk_run *run);
/* Append one record of the run, starting a new file when there is none to
 * append to. Writer lock held alone. OUT: *span, where it went (may be
 * NULL). HOP_IO (errno set) or HOP_NOMEM: the caller rolls the run back. */
hop_err hop__disk_append_write(hop__disk *d, hop__disk_run *run, const void *data, size_t len,
                               hop__disk_span *span);
/* The run is written, not durable: the files it filled need their write
 * descriptors no more; close them. Writer lock held alone (nobody frees a
 * file of a run that is not published). */
void hop__disk_append_close_full(hop__disk *d, hop__disk_run *run);
/* The run is written: its new files join the list, its records are
 * readable now, full files are sealed. State and writer locks held. */
void hop__disk_append_publish(hop__disk *d, hop__disk_run *run);
/* The run is written, durable: its new files join the list, full files are
 * sealed, and its records stay unreadable (and pending) until their sync
 * publishes them with hop__disk_publish_synced(). State and writer locks. */
void hop__disk_append_stage(hop__disk *d, hop__disk_run *run);
/* A write of the run failed: cut the file it began in back to where the run
 * began, and remove the files it started; what they do not take on disk
 * any more is given back to the budget. Writer lock held alone. */
void hop__disk_append_roll_back(hop__disk *d, hop__disk_run *run);
/* After the roll back: the room reserved is given up, and a file left with
 * junk after its end is sealed. Returns a descriptor to close once the
 * state lock is dropped, or -1. State and writer locks held. */
int hop__disk_append_cancel(hop__disk *d, hop__disk_run *run);

/* ---- a file moved in whole (move.c) ---- */

/* Room for one more file of bytes, made elsewhere, to join the list as
 * the newest: a file is counted (HOP_FULL past max_disk_files) and bytes
 * on the budget's disk side (HOP_NOSPACE); nothing changed then. OUT:
 * *seq, the number it takes. State and writer locks held. */
hop_err hop__disk_move_plan(hop__disk *d, uint64_t bytes, uint64_t *seq);
/* The move planned did not happen: its room is given back (its number
 * stays unused). State and writer locks held. */
void hop__disk_move_cancel(hop__disk *d, uint64_t bytes);
/* The file planned (seq) is in the directory now, synced, holding records
 * whole records in its bytes: f (allocated zeroed by the caller, taken)
 * describes it and joins the list as the newest file, sealed, its records
 * readable. The file appended to so far is sealed, so that later appends
 * go after it. State and writer locks held, nothing pending. */
void hop__disk_move_adopt(hop__disk *d, hop__qfile *f, uint64_t seq, uint64_t bytes,
                          size_t records);

/* ---- durable records, after their sync ---- */

/* The record at span is synced: it is readable now. State lock held. */
void hop__disk_publish_synced(hop__disk *d, const hop__disk_span *span);
/* The write descriptor of f if f needs it no more (sealed, every record
 * synced), taken from f; else -1. Close it once the state lock is dropped.
 * State lock held. */
int hop__disk_take_synced_fd(hop__qfile *f);
/* The sync of f failed: cut what f holds past its published size, giving
 * it back to the budget. False (logged) if it cannot be cut: those records
 * stay whole in the file, as junk that stays counted. Writer lock held
 * alone. */
bool hop__disk_cut_unsynced(hop__disk *d, hop__qfile *f);
/* A record appended to f was refused (its sync failed): it is pending no
 * more, and f, which can no longer be trusted, is sealed. State lock. */
void hop__disk_refuse(hop__disk *d, hop__qfile *f);

/* ---- reading ---- */

/* Reserve the next unread record: OUT rd->file, off, avail, records.
 * False if every published record was read. State and reader locks. */
bool hop__disk_read_reserve(hop__disk *d, hop__disk_read *rd);
/* Read the reserved record: OUT rd->result, msg, next, err_no. Reader lock
 * held alone. */
void hop__disk_read_record(hop__disk *d, hop__disk_read *rd);
/* Account for the record read: the read position moves on, finished files
 * are chained on rd->finished. HOP_OK: rd->msg is handed out (its file
 * counts it in flight until hop__disk_consumed()). HOP_IO: a read error
 * (nothing consumed, errno in rd->err_no) or a corrupt record, which is
 * skipped, logged and counted. HOP_NOMEM: nothing consumed. State and
 * reader locks held. */
hop_err hop__disk_read_commit(hop__disk *d, hop__disk_read *rd);
/* Free the read-ahead buffer while nothing is left to read (it is taken
 * again when needed). Reader lock held. */
void hop__disk_reader_release(hop__disk *d);
/* A record of f handed out is consumed. True if the oldest file is finished
 * now, for hop__disk_detach_finished() (which needs the reader lock too)
 * to take. State lock held. */
bool hop__disk_consumed(hop__disk *d, hop__qfile *f);

/* ---- peeking (peek.c) ---- */

/* A walk over the unread records without reading them for good: where it
 * is. The caller's; start it zeroed. */
typedef struct hop__disk_cursor {
    hop__qfile *file; /* the file it is in; NULL before the first */
    uint64_t off;     /* where its next record begins */
    uint64_t avail;   /* the file's published size when it looked last */
    size_t skip_next; /* the first of the file's skips not behind off */
} hop__disk_cursor;

/* Move c on to where unread records are: further in its file if more was
 * published there, else the next file with unread records. False if
 * there are none. Nothing but c changes. State and reader locks held. */
bool hop__disk_cursor_next(const hop__disk *d, hop__disk_cursor *c);
/* Read the record at c and move c past it (past the rest of what the file
 * had published for HOP__READ_UNFRAMED; not for HOP__READ_IO or
 * HOP__READ_NOMEM), as a receiver would, but nothing is consumed, counted
 * or logged. OUT: *msg (new) on HOP__READ_OK. Reader lock held alone. */
hop__read_result hop__disk_cursor_read(hop__disk *d, hop__disk_cursor *c, hop__msg **msg);

/* ---- purging (purge.c) ---- */

/* The oldest file if a purge may remove it: none of its records waits for
 * a sync (those files are the newest ones). NULL otherwise. State, reader
 * and writer locks held. */
hop__qfile *hop__disk_purge_candidate(const hop__disk *d);
/* f, the oldest file, was removed from the directory: take it off the list
 * and drop its unread records. Returns how many. Its descriptors and its
 * bytes on the budget's disk side go with hop__disk_purge_forget(). State,
 * reader and writer locks held. */
size_t hop__disk_purge_detach(hop__disk *d, hop__qfile *f);
/* Give back what f, detached, counted on the budget's disk side, and free
 * it. Reader and writer locks held, state lock not. */
void hop__disk_purge_forget(hop__disk *d, hop__qfile *f);
/* The files left after a purge wait for syncs: their published records
 * not read yet are dropped (read to their published end, so that what the
 * syncs publish next is all they hold). Returns how many records were
 * dropped. State, reader and writer locks held. */
size_t hop__disk_purge_rest(hop__disk *d);
/* The flights were cut off (flight.c): no record of any file is in flight
 * any more, so files wait for none to be consumed. State and reader
 * locks held. */
void hop__disk_forget_in_flight(hop__disk *d);

#endif
