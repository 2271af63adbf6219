/* delay_file.h - one file of a channel's schedule of delayed messages
 * (delay_file.c, whose top describes the byte format): its name, appending
 * a record, reading records in order, the progress mark, the scan at open.
 * Knows nothing of the channel: schedule.c decides which file a message
 * goes to and when a file is promoted. */
#ifndef HOP_DELAY_FILE_H
#define HOP_DELAY_FILE_H

#include "hopper/hopper.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HOP__DELAY_HEADER_SIZE 32
#define HOP__DELAY_RECORD_HEADER_SIZE 24
/* The version this library writes; it reads version 1 too. */
#define HOP__DELAY_VERSION 2
/* The spans of due times the kinds of file hold, [start, start + span),
 * and the slot: a file's records are handed on slot by slot, each when it
 * ends. */
#define HOP__DELAY_WINDOW_MS 60000u
#define HOP__DELAY_NEAR_MS 1000u
#define HOP__DELAY_SLOT_MS 50u
/* Room for a file name, with its terminating NUL. */
#define HOP__DELAY_NAME_SIZE 40

/* The kinds of file, by the letter in their names. */
typedef enum hop__delay_kind_of_file {
    HOP__DELAY_WINDOW = 'w', /* 60 s of due times, split into near files 1 s before it begins */
    HOP__DELAY_NEAR = 'n',   /* 1 s of due times, 20 slots (version 2) */
    HOP__DELAY_SLOT = 's',   /* 50 ms of due times, one slot (version 1 only: read, not written) */
} hop__delay_kind_of_file;

/* Where a delayed message goes when it is due. */
typedef enum hop__delay_kind {
    HOP__DELAY_TAIL = 1, /* sent: the tail of the channel */
    HOP__DELAY_HEAD = 2, /* given back: the head */
} hop__delay_kind;

/* Which file: its kind and the start of its span. */
typedef struct hop__delay_id {
    char kind;      /* a hop__delay_kind_of_file */
    uint64_t start; /* ms since the epoch, a multiple of the span */
} hop__delay_id;

/* The slot of due within file id: 0 for a window (its records are moved
 * in file order, not by slot); for due outside the span, the first or
 * last slot. */
unsigned hop__delay_slot_of(hop__delay_id id, uint64_t due_ms);
/* The end of that slot: when a record due at due_ms is handed on. */
uint64_t hop__delay_slot_end(hop__delay_id id, uint64_t due_ms);

/* OUT: out, the file name of id. */
void hop__delay_file_name(char out[HOP__DELAY_NAME_SIZE], hop__delay_id id);
/* True if name is a delay file's name; OUT: *id. */
bool hop__delay_file_parse_name(const char *name, hop__delay_id *id);

/* One message to append: due at due_ms, of kind, data[0..len). */
typedef struct hop__delay_rec {
    uint64_t due_ms;
    hop__delay_kind kind;
    void *data; /* reading: new, the caller frees it with hop__free() */
    size_t len;
} hop__delay_rec;

/* Append recs[0..n) (borrowed) to file id of dirfd, in order, creating it
 * (with its header) when it does not exist; durable: synced before this
 * returns (and the directory when the file was created). OUT: *added, the
 * bytes the file grew by. HOP_IO (errno set): nothing was stored, the file
 * is cut back to where it was (or removed if this call created it). */
hop_err hop__delay_file_append(int dirfd, hop__delay_id id, const hop__delay_rec *recs, size_t n,
                               bool durable, uint64_t *added);

/* Bytes a record of len bytes takes in a file. */
static inline uint64_t hop__delay_record_size(size_t len)
{
    return HOP__DELAY_RECORD_HEADER_SIZE + (uint64_t)len;
}

/* The progress mark of a file: every record of a slot before `slot` was
 * handed on, and of slot `slot` those at offsets before `off`; none of a
 * later slot. A window has one slot: the records before off were moved. */
typedef struct hop__delay_mark {
    unsigned slot;
    uint64_t off;
} hop__delay_mark;

/* Whether the record at off, due at due_ms, of file id is still to be
 * handed on by mark m. */
bool hop__delay_pending(hop__delay_id id, hop__delay_mark m, uint64_t off, uint64_t due_ms);

/* A file read from an offset on, through a buffer (a near file is read
 * once a slot: one read a pass, not two a record). */
typedef struct hop__delay_reader {
    int fd;
    uint64_t off;         /* the next record; the mark's offset at open */
    uint64_t size;        /* the file's size when opened (the caller may raise it) */
    hop__delay_mark mark; /* as found at open */
    unsigned char *buf;   /* NULL until the first read */
    uint64_t buf_at;      /* the offset of buf[0] */
    size_t buf_len;       /* bytes in buf */
} hop__delay_reader;

typedef enum hop__delay_read {
    HOP__DELAY_READ_OK,      /* a record: rec filled, off moved past it */
    HOP__DELAY_READ_END,     /* no more records */
    HOP__DELAY_READ_CORRUPT, /* a record with a bad checksum: off moved past it */
    HOP__DELAY_READ_TORN,    /* the rest of the file is no whole record */
    HOP__DELAY_READ_ERROR,   /* a read failed or out of memory (errno set) */
} hop__delay_read;

/* Open file id of dirfd for reading from its progress mark's offset.
 * HOP_IO (errno set; EINVAL: not a delay file of a version this library
 * reads) or HOP_OK. */
hop_err hop__delay_reader_open(int dirfd, hop__delay_id id, hop__delay_reader *r);
/* The next record. OUT: *rec on HOP__DELAY_READ_OK. */
hop__delay_read hop__delay_reader_next(hop__delay_reader *r, hop__delay_rec *rec);
/* Write the progress mark m (one aligned 8-byte write: a crash leaves the
 * old mark or the new one). false: errno set. */
bool hop__delay_reader_mark(hop__delay_reader *r, hop__delay_mark m);
void hop__delay_reader_close(hop__delay_reader *r);

/* What the scan at open found in a file. */
typedef struct hop__delay_scan {
    uint64_t records;     /* whole records still to be handed on */
    uint64_t size;        /* the file's size, after a torn tail was cut */
    uint64_t corrupt;     /* records skipped as corrupt */
    bool done;            /* nothing is left to hand on: the file may go */
    hop__delay_mark mark; /* its progress mark */
    uint64_t low;         /* the offset of the first record still to go (size if none) */
    uint64_t next_due;    /* the earliest due time of those (UINT64_MAX if none) */
    uint64_t last_due;    /* the due time of the last record */
    bool sorted;          /* due times never fall from one record to the next */
} hop__delay_scan;

/* Read file id whole: count the records still to be handed on by its mark
 * and cut a torn tail off. HOP_IO (errno set; EINVAL for a file of a
 * version this library does not read or a bad header, which is left
 * alone). */
hop_err hop__delay_file_scan(int dirfd, hop__delay_id id, hop__delay_scan *out);

/* fdatasync file id; 0 or -1 (errno). */
int hop__delay_file_sync(int dirfd, hop__delay_id id);

/* Remove file id; 0 or -1 (errno). */
int hop__delay_file_unlink(int dirfd, hop__delay_id id);

#endif
