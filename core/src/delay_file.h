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
#define HOP__DELAY_VERSION 1
/* The span of due times a coarse file (a window) and a fine file (a slot)
 * hold: [start, start + span). */
#define HOP__DELAY_WINDOW_MS 60000u
#define HOP__DELAY_SLOT_MS 50u
/* Room for a file name, with its terminating NUL. */
#define HOP__DELAY_NAME_SIZE 40

/* Where a delayed message goes when it is due. */
typedef enum hop__delay_kind {
    HOP__DELAY_TAIL = 1, /* sent: the tail of the channel */
    HOP__DELAY_HEAD = 2, /* given back: the head */
} hop__delay_kind;

/* Which file: a coarse window or a fine slot, by the start of its span. */
typedef struct hop__delay_id {
    bool fine;
    uint64_t start; /* ms since the epoch, a multiple of the span */
} hop__delay_id;

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

/* A file read from its progress mark on. */
typedef struct hop__delay_reader {
    int fd;
    uint64_t off;  /* the next record */
    uint64_t size; /* the file's size when opened */
} hop__delay_reader;

typedef enum hop__delay_read {
    HOP__DELAY_READ_OK,      /* a record: rec filled, off moved past it */
    HOP__DELAY_READ_END,     /* no more records */
    HOP__DELAY_READ_CORRUPT, /* a record with a bad checksum: off moved past it */
    HOP__DELAY_READ_TORN,    /* the rest of the file is no whole record */
    HOP__DELAY_READ_ERROR,   /* a read failed or out of memory (errno set) */
} hop__delay_read;

/* Open file id of dirfd for reading from its progress mark. HOP_IO (errno
 * set; EINVAL: not a delay file of this version) or HOP_OK. */
hop_err hop__delay_reader_open(int dirfd, hop__delay_id id, hop__delay_reader *r);
/* The next record. OUT: *rec on HOP__DELAY_READ_OK. */
hop__delay_read hop__delay_reader_next(hop__delay_reader *r, hop__delay_rec *rec);
/* Write the progress mark: every record before off was handed on. false:
 * errno set. */
bool hop__delay_reader_mark(hop__delay_reader *r, uint64_t off);
void hop__delay_reader_close(hop__delay_reader *r);

/* What the scan at open found in a file. */
typedef struct hop__delay_scan {
    uint64_t records; /* whole records after the progress mark */
    uint64_t size;    /* the file's size, after a torn tail was cut */
    uint64_t corrupt; /* records skipped as corrupt */
    bool done;        /* nothing is left to hand on: the file may go */
} hop__delay_scan;

/* Count the records of file id after its progress mark and cut a torn
 * tail off. HOP_IO (errno set; EINVAL for a file of another version or a
 * bad header, which is left alone). */
hop_err hop__delay_file_scan(int dirfd, hop__delay_id id, hop__delay_scan *out);

/* fdatasync file id; 0 or -1 (errno). */
int hop__delay_file_sync(int dirfd, hop__delay_id id);

/* Remove file id; 0 or -1 (errno). */
int hop__delay_file_unlink(int dirfd, hop__delay_id id);

#endif
