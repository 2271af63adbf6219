/* queue_file.h - one append-only queue file of a channel, and the buffered
 * reader that takes records out of it. The format is in record.c.
 *
 * Locking is the channel's business: a file has one writer at a time (the
 * channel's write lock) and one reader at a time (its read lock); the
 * fields marked "published" change under the channel's state lock. */
#ifndef HOP_QUEUE_FILE_H
#define HOP_QUEUE_FILE_H

#include "hopper/hopper.h"

#include "array.h"
#include "message.h"

#include <stdbool.h>
#include <stdint.h>

/* A range the reader jumps over: a record consumed in an earlier run, or
 * damaged bytes found by the recovery. */
typedef struct hop__skip {
    uint64_t off, to;
    bool consumed; /* a consumed record (the journal must keep saying so), not damage */
} hop__skip;

typedef struct hop__qfile {
    struct hop__qfile *next; /* the next newer file of the channel */
    uint64_t seq;
    int write_fd;        /* -1 once sealed (durable: once synced too); owned by the writer */
    int read_fd;         /* -1 until the reader opens it; owned by the reader */
    uint64_t size;       /* published: bytes of header and whole records */
    size_t records;      /* published: records to read in the file */
    uint64_t read_off;   /* reader: where the next record starts */
    size_t records_read; /* reader: records consumed or skipped */
    bool sealed;         /* published: no record will be appended any more */
    uint64_t written;    /* writer: end of the bytes appended, >= size; beyond size they
                            wait for their publication (durable: their sync) */
    uint64_t junk;       /* writer: bytes on disk past written that no record owns (a cut
                            that failed; the file is sealed); the budget counts written +
                            junk (disk.c) */
    size_t appended;     /* writer: records appended and not yet published or staged */
    bool dir_unsynced;   /* writer: created, its directory entry not synced yet */
    size_t unsynced;     /* published: records appended and waiting for their sync */
    size_t in_flight;    /* published: records handed out and not yet consumed */
    hop__array skips;    /* reader: hop__skip ranges to jump, by offset (found by the
                            recovery, or durable records refused after their append) */
    size_t skip_next;    /* reader: the first of skips not behind read_off */
} hop__qfile;

/* Name of queue file seq: 20 digits and ".hq". */
#define HOP__QFILE_NAME_SIZE 24
void hop__qfile_name(uint64_t seq, char out[HOP__QFILE_NAME_SIZE]);
/* True if name is a queue file name; OUT: *seq. */
bool hop__qfile_parse_name(const char *name, uint64_t *seq);

/* Create queue file seq in dirfd with its header written.
 * OUT: *out on HOP_OK. HOP_IO (errno set) or HOP_NOMEM leave no file. */
hop_err hop__qfile_create(int dirfd, uint64_t seq, hop__qfile **out);

/* Append one record at offset f->written. HOP_OK: OUT *end, the offset
 * after the record (the caller sets written and publishes it). HOP_IO:
 * nothing was appended; if the partial record could not be cut off again,
 * *torn is set and the file must be sealed at its published size. */
hop_err hop__qfile_append(hop__qfile *f, const void *payload, uint32_t len, uint64_t *end,
                          bool *torn);

/* Add a range for the reader to jump, beyond the ones f has. False if out
 * of memory (f unchanged). */
bool hop__qfile_add_skip(hop__qfile *f, uint64_t off, uint64_t to, bool consumed);

/* Close whatever descriptors f has open and free it (the file stays). */
void hop__qfile_free(hop__qfile *f);
/* hop__qfile_free() each file of the list chained by next from f. */
void hop__qfile_free_list(hop__qfile *f);

/* Remove queue file seq from dirfd; errors are returned, not logged. */
int hop__qfile_unlink(int dirfd, uint64_t seq);

/* What f takes on disk past written, from its size (fstat: a failed write
 * or cut left an unknown part behind): set as f->junk. Writer lock. */
void hop__qfile_measure_junk(hop__qfile *f);

/* The reader's read-ahead buffer, so small records cost one system call per
 * buffer, not two per record. It counts on the memory side of the
 * channel's budget: HOP__READ_BUFFER if that has room, else a buffer of
 * HOP__READ_BUFFER_SMALL counted anyway, so that reading goes on (records
 * too big for it are read straight into their message). */
typedef struct hop__qreader {
    unsigned char *buf;
    size_t cap;
    uint64_t seq;       /* file the buffer holds bytes of */
    uint64_t off;       /* file offset of buf[0] */
    size_t len;         /* valid bytes in buf */
    hop_budget *budget; /* where cap is counted while buf is held, or NULL (borrowed) */
} hop__qreader;

#define HOP__READ_BUFFER (64 * 1024)
#define HOP__READ_BUFFER_SMALL 512

/* An empty reader whose buffer will count in budget (NULL: none; borrowed,
 * it must outlive the reader). */
void hop__qreader_init(hop__qreader *r, hop_budget *budget);
/* Free the buffer and give back what it counted (it is allocated again
 * when needed). */
void hop__qreader_release(hop__qreader *r);

typedef enum hop__read_result {
    HOP__READ_OK,       /* *out holds the record's payload */
    HOP__READ_CORRUPT,  /* the record failed its checksum and was skipped */
    HOP__READ_UNFRAMED, /* no valid record header at read_off: skip to avail */
    HOP__READ_IO,       /* a system call failed (errno set); nothing consumed */
    HOP__READ_NOMEM,    /* nothing consumed */
} hop__read_result;

/* Read the record at off of a file whose published size is avail (> off),
 * opening f->read_fd if needed. Does not move read_off.
 * OUT: *out (HOP__READ_OK) and *next, the offset after the record (OK and
 * CORRUPT). max_len bounds a plausible length. */
hop__read_result hop__qreader_read(hop__qreader *r, int dirfd, hop__qfile *f, uint64_t off,
                                   uint64_t avail, size_t max_len, hop__msg **out, uint64_t *next);

/* Framing a file of an earlier run (the recovery rules are in record.c).
 * fn is called for each record, in file order, with its offset and the
 * offset after it, and for each damaged range (gap true) with where it
 * begins and where the next record begins. */
typedef void (*hop__frame_fn)(void *arg, uint64_t off, uint64_t next, bool gap);

/* Frame the file fd of size bytes, records from offset from on.
 * OUT: *valid_end, the end of the last whole record (or from): what follows
 * is a torn tail. HOP_IO (errno set) or HOP_NOMEM if reading failed. */
hop_err hop__qfile_frame(int fd, uint64_t from, uint64_t size, size_t max_len, hop__frame_fn fn,
                         void *arg, uint64_t *valid_end);

#endif
