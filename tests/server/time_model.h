/* time_model.h - the reference model test_time_model.c checks a channel
 * against: what a channel with delayed messages holds, in order, on a
 * clock the test moves, written from the core's documented rules (README,
 * hopper.h, core/src/schedule.c, recv.c, persist.c) and nothing else: no
 * hopper call, no file. Plain data; the test owns it and moves its clock. */
#ifndef HOPPER_TEST_TIME_MODEL_H
#define HOPPER_TEST_TIME_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The schedule's slot and window (core/src/delay_file.h, schedule.c): a
 * message due at D is handed on when its slot [D - D % SLOT, + SLOT) ends;
 * a window's coarse file is split SPLIT_AHEAD ms before it begins. */
#define TM_SLOT_MS 50u
#define TM_WINDOW_MS 60000u
#define TM_SPLIT_AHEAD_MS 1000u
/* Tail records of one slot handed on as one hop_send_batch() (schedule.c). */
#define TM_BATCH_RECORDS 64
/* Messages one model may hold, visible and delayed together. */
#define TM_MAX_MSGS 4096

/* A message as the model knows it. */
typedef struct tm_msg {
    uint64_t id;
    uint64_t received_at, ttl; /* as its envelope says (ttl 0: none) */
    uint64_t visible_at;       /* it may not be received before */
    size_t len;                /* bytes stored */
    bool disk;                 /* an unread record of a queue file */
    bool flight;               /* read from a queue file since the open, not consumed */
    uint64_t take;             /* order of its first take since the open; 0: none */
    uint64_t read;             /* order of its read from a queue file (flight) */
} tm_msg;

/* A delayed message, not handed on yet. */
typedef struct tm_pending {
    tm_msg m;
    uint64_t due;
    bool head; /* given back by hop_requeue_at() */
    uint64_t seq;
} tm_pending;

typedef struct tm_model {
    bool durable;              /* given-back messages rejoin at the tail */
    size_t memory_bytes;       /* the channel's limit */
    uint64_t max_age;          /* the server's --max-age in ms, 0: none */
    tm_msg queue[TM_MAX_MSGS]; /* visible, oldest first: memory, then unread queue files */
    size_t nqueue;
    tm_pending delayed[TM_MAX_MSGS];
    size_t ndelayed;
    uint64_t takes, reads, seq; /* the last take, read and delay numbers given */
    /* what happened, for the test's summary */
    uint64_t handed_on, to_head, same_slot, memory_full;
} tm_model;

/* When a message due at due becomes receivable. */
uint64_t tm_slot_end(uint64_t due);
/* The limit on m's age, its TTL or the max-age, the smaller; 0: none. */
uint64_t tm_limit(const tm_model *t, const tm_msg *m);
/* True if m is past its limit at now (expiry_passed()'s rule). */
bool tm_expired(const tm_model *t, const tm_msg *m, uint64_t now);
/* What the messages in memory count against memory_bytes. */
size_t tm_memory_cost(const tm_model *t);

/* m[0..n) join the tail as hop_send_batch() (or hop_send()) puts them. */
void tm_send(tm_model *t, const tm_msg *m, size_t n);
/* m goes back to memory as hop_requeue() puts it. */
void tm_requeue(tm_model *t, tm_msg m);
/* m waits until due (head: given back by hop_requeue_at()). */
void tm_delay(tm_model *t, tm_msg m, uint64_t due, bool head);
/* Hand on what is due at now, as the schedule does. */
void tm_hand_on(tm_model *t, uint64_t now);
/* The head of the queue, taken: OUT *m. False if the queue is empty. */
bool tm_take(tm_model *t, tm_msg *m);
/* The channel is closed and opened again; held[0..n) are the messages the
 * receivers held that came from queue files (flight). */
void tm_restart(tm_model *t, const tm_msg *held, size_t n);

#endif
