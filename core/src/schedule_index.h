/* schedule_index.h - the state of a channel's schedule of delayed
 * messages, shared by the files that make it up: schedule.c (storing,
 * and the scheduler's call), schedule_split.c (a window into near files),
 * schedule_hand_on.c (a near file's slots into the channel) and
 * schedule_open.c (the files found at open). schedule_index.c keeps the
 * index: one small entry a delay file, none a message. */
#ifndef HOP_SCHEDULE_INDEX_H
#define HOP_SCHEDULE_INDEX_H

#include "array.h"
#include "channel_state.h"
#include "delay_file.h"
#include "scheduler.h"

#include <pthread.h>

#define HOP__SPLIT_AHEAD_MS 1000u /* a window is split this long before it begins */
#define HOP__RETRY_MS 100u        /* a refused hand-on is tried again after this */

/* One delay file of the index. */
typedef struct hop__sfile {
    hop__delay_id id;
    uint64_t records;     /* not handed on yet */
    uint64_t bytes;       /* its size */
    hop__delay_mark mark; /* its progress mark, as last written */
    uint64_t low;         /* no record before this offset is still to go */
    uint64_t next_due;    /* the earliest due time of those still to go; UINT64_MAX: none */
    uint64_t last_due;    /* the due time of the last record appended */
    uint64_t counted_to;  /* corrupt records before this offset were counted */
    bool sorted;          /* due times never fall from one record to the next */
    bool promoting;       /* being handed on (its records may still grow) */
} hop__sfile;

struct hop__schedule {
    pthread_mutex_t lock;
    pthread_cond_t handed; /* a hand-on ended: no file is promoting (schedule_purge.c) */
    hop_channel *ch;       /* borrowed */
    int dirfd;             /* the channel's (borrowed) */
    hop__array files;
    uint64_t records, bytes; /* the sums over files; bytes counted on the budget's disk side */
    uint64_t leaving;        /* of records, those being handed on now: no longer delayed */
    uint64_t corrupt;        /* records skipped as corrupt */
    uint64_t retry_at;       /* a refused hand-on is tried again then; 0: none */
    hop__sched_entry entry;
    bool registered; /* entry is the scheduler's */
};

/* The entry of file id, or NULL. */
hop__sfile *hop__sfile_find(hop__schedule *s, hop__delay_id id);
/* The entry of file id, added empty if missing; NULL if out of memory. */
hop__sfile *hop__sfile_get(hop__schedule *s, hop__delay_id id);
/* Drop f from the index (the pointers into it are stale then). */
void hop__sfile_drop(hop__schedule *s, hop__sfile *f);
/* recs[0..n) were appended to f, which grew by added bytes: count them. */
void hop__sfile_appended(hop__schedule *s, hop__sfile *f, const hop__delay_rec *recs, size_t n,
                         uint64_t added);
/* The file needing work first (none being handed on), or NULL; OUT: *at,
 * when (HOP__NEVER if none). */
hop__sfile *hop__sfile_earliest(hop__schedule *s, uint64_t *at);
/* File id has nothing left to hand on: remove it and give its bytes back
 * (if it cannot be removed, it is tried again). s->lock held. */
void hop__sfile_finished(hop__schedule *s, hop__delay_id id);

/* Register s with the scheduler if it is not. False: it could not be. */
bool hop__schedule_register(hop__schedule *s);
/* Tell the scheduler when s needs work next. s->lock held. */
void hop__schedule_reschedule(hop__schedule *s);
/* Count an I/O error of ch and log it (errno kept). */
void hop__schedule_io_error(hop_channel *ch, const char *what);

#endif
