/* journal.h - the consumed-records journal of a channel: which records of
 * its queue files have been consumed, so that a restart hands out none of
 * them again. The format and the recovery rules are in journal.c. */
#ifndef HOP_JOURNAL_H
#define HOP_JOURNAL_H

#include "hopper/hopper.h"

#include <stddef.h>
#include <stdint.h>

#define HOP__JOURNAL_NAME "consumed.hqc"
#define HOP__JOURNAL_TMP_NAME "consumed.hqc.tmp"
#define HOP__JOURNAL_HEADER_SIZE 16
#define HOP__JOURNAL_ENTRY_SIZE 32

typedef enum hop__jkind {
    HOP__J_START = 1, /* records of file seq before off are consumed */
    HOP__J_DONE = 2,  /* the record of file seq at off is consumed */
} hop__jkind;

typedef struct hop__jentry {
    uint32_t kind; /* hop__jkind */
    uint64_t seq;  /* queue file */
    uint64_t off;  /* record offset (START: UINT64_MAX = the whole file) */
} hop__jentry;

/* The journal of what was consumed as the recovery reads it. */
typedef struct hop__jstate {
    hop__jentry *starts; /* START entries, by seq, one per seq (the last one written) */
    size_t nstarts;
    hop__jentry *done; /* DONE entries, by (seq, off), no duplicates */
    size_t ndone;
    size_t damaged; /* entries that failed their checks and were ignored */
    bool torn;      /* the file ended inside an entry */
} hop__jstate;

/* Read the journal in dirfd (none is an empty journal). OUT: *out; release
 * with hop__journal_state_release(). HOP_IO (errno set) or HOP_NOMEM leave
 * *out empty. */
hop_err hop__journal_read(int dirfd, hop__jstate *out);
void hop__journal_state_release(hop__jstate *s);

/* Where file seq's consumption starts: the START offset, or 0 when the
 * journal has no START for it (nothing consumed but its DONE records). */
uint64_t hop__journal_start_of(const hop__jstate *s, uint64_t seq);

/* Replace the journal of dirfd with one holding entries, atomically: a
 * temporary file is written and synced, renamed over the journal, and the
 * directory synced. OUT: *fd, the new journal open for appending, and *size,
 * its length. On error the old journal is as it was (and *fd untouched). */
hop_err hop__journal_rewrite(int dirfd, const hop__jentry *entries, size_t n, int *fd,
                             uint64_t *size);

/* The most entries hop__journal_append() writes at once. */
#define HOP__JOURNAL_APPEND_MAX 64

/* Append e[0..n) (n at most HOP__JOURNAL_APPEND_MAX) to the journal fd
 * whose length is *size, in one write; *size grows on HOP_OK. HOP_IO: errno
 * set, none counts as written; what was written of them is cut off again
 * (if that fails, a partial entry is ignored by the reader and overwritten
 * by the next append, whole ones merely repeat). */
hop_err hop__journal_append(int fd, uint64_t *size, const hop__jentry *e, size_t n);

#endif
