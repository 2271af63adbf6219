/* hopper.h - libhopper: an unbounded FIFO channel that holds a bounded number
 * of bytes in RAM and pages the overflow to append-only queue files on disk.
 *
 * This header is the library's whole public surface. A channel is a named
 * FIFO of opaque byte messages:
 *
 *   - Sends go to memory while the memory budget (hop_limits.memory_bytes)
 *     has room and nothing is waiting on disk; after that they are appended to
 *     queue files in <data_dir>/<name>/ until the disk is drained again, so
 *     order is strict across memory and disk.
 *   - Every accepted message is received exactly once, byte-identical, unless
 *     the receiver gives it back with hop_requeue() or hop_purge() drops it.
 *   - When memory is full and a new queue file would exceed
 *     hop_limits.max_disk_files, hop_send() returns HOP_FULL and leaves the
 *     caller's buffer untouched; when the disk side of a shared budget
 *     (hop_budget_set_disk()) has no room for the record, HOP_NOSPACE.
 *
 * Threads: every function may be called from any thread, at the same time,
 * on the same channel, except hop_channel_close(), which must be the last
 * call on a channel (receivers blocked in hop_recv() and armed waiters are
 * woken with HOP_CLOSED; nothing else may be running on it). Durable
 * channels are served by a few library threads that run while one is open.
 * A channel belongs to the process that opened it: after fork() the child
 * must not use (or close) its parent's channels, and may open its own.
 *
 * Errors: every function that can fail returns a hop_err. A failing call
 * leaves the channel and the caller's data as they were. On HOP_IO, errno
 * holds the cause.
 *
 * Restarts: a channel keeps its messages across close and open.
 *   - hop_channel_close() writes the messages still in memory to a queue
 *     file that is read before the others, and records how far the queue
 *     files were consumed, so the next hop_channel_open() of the same
 *     directory finds every message, in order, and none that was consumed.
 *   - A crash (the process killed, the machine losing power) loses the
 *     messages that were only in memory; everything in a queue file is
 *     recovered. A torn last record is cut off; a damaged record is skipped,
 *     logged and counted (records_corrupt_total), never handed out.
 *   - With hop_limits.durable, every message is in a queue file and synced
 *     before hop_send() returns HOP_OK, so a crash loses no accepted message.
 *   - A message taken from a queue file counts as consumed once the receiver
 *     hop_free()s it. One still held (or given back) when the process dies
 *     is received again after the restart: at-least-once for that window.
 */
#ifndef HOPPER_HOPPER_H
#define HOPPER_HOPPER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HOP_VERSION "0.1.0"

/* The error vocabulary: one list makes the enum, hop_strerror() and
 * hop_err_name(). */
#define HOP_ERRORS(X)                                                                              \
    X(OK, "success")                                                                               \
    X(FULL, "memory and disk queue files are full")                                                \
    X(TIMEOUT, "no message arrived in time")                                                       \
    X(TOO_BIG, "message is larger than max_message_bytes")                                         \
    X(INVALID, "invalid argument")                                                                 \
    X(IO, "input/output error")                                                                    \
    X(NOMEM, "out of memory")                                                                      \
    X(CLOSED, "channel is closed")                                                                 \
    X(NOSPACE, "the disk budget is used up")

typedef enum hop_err {
#define HOP__ERR_ENUM(name, text) HOP_##name,
    HOP_ERRORS(HOP__ERR_ENUM)
#undef HOP__ERR_ENUM
} hop_err;

/* A sentence describing err ("unknown error" for values outside the enum). */
const char *hop_strerror(hop_err err);
/* The enum name without prefix, e.g. "FULL" ("UNKNOWN" outside the enum). */
const char *hop_err_name(hop_err err);

/* A budget of memory and disk that several channels share (see
 * hop_budget_new() and hop_budget_set_disk()). */
typedef struct hop_budget hop_budget;

/* Limits of one channel. */
typedef struct hop_limits {
    size_t memory_bytes;      /* bytes of messages, bookkeeping included, held in RAM */
    size_t file_bytes;        /* a queue file is sealed once it holds this many bytes */
    size_t max_disk_files;    /* queue files that may exist at once; 0 = memory only;
                                 SIZE_MAX = no limit */
    size_t max_message_bytes; /* largest message accepted, 1 .. HOP_MAX_MESSAGE_BYTES */
    bool durable;             /* every message goes to a queue file and is synced (fdatasync)
                                 before hop_send() returns HOP_OK; concurrent senders share
                                 syncs. memory_bytes is then unused: receivers read the
                                 files. Needs max_disk_files > 0. */
    hop_budget *budget;       /* NULL, or a budget shared with other channels (borrowed: it
                                 must outlive the channel and the messages it held) */
} hop_limits;

/* A memory budget: RAM that the messages of every channel opened with it
 * (limits.budget) may hold together, counted as memory_bytes counts
 * (hop_message_cost()). Each channel's own memory_bytes stays a cap inside
 * it. A send that finds the budget used up goes to the channel's queue
 * files, in order, as when the channel's own memory is full (a channel
 * with max_disk_files 0 answers HOP_FULL), and hop_hold() answers HOP_FULL.
 * Counted: messages in a channel's memory, messages held with hop_hold(),
 * the read-ahead buffer of a channel reading its queue files (64 KiB if
 * the budget has room for it, else 512 bytes counted anyway, so reading
 * goes on), and what the application counts with hop_budget_charge() and
 * hop_budget_reserve(); not counted: messages a receiver took and did not
 * hold. A message given back with hop_requeue() is counted again even past
 * the limit: the budget is passed at most by the cost of the messages
 * receivers had taken out, the small read buffers and the application's
 * charges, never by new sends.
 * hop_budget_new(): HOP_INVALID if memory_bytes is 0 or out is NULL,
 * HOP_NOMEM. Free it only once no channel opened with it is open and no
 * message held from one is left. */
hop_err hop_budget_new(size_t memory_bytes, hop_budget **out);
void hop_budget_free(hop_budget *budget);
/* Bytes counted now, and the limit (0 for NULL). */
size_t hop_budget_used(const hop_budget *budget);
size_t hop_budget_limit(const hop_budget *budget);

/* RAM the application holds for the channels' sake (a request body being
 * received, a message being sent to a client), counted against the memory
 * side. hop_budget_charge() always counts bytes, even past the limit;
 * hop_budget_reserve() counts them only if they fit under it (true) and
 * else changes nothing (false); hop_budget_release() gives back bytes
 * charged or reserved before. A NULL budget counts nothing (reserve says
 * true). */
void hop_budget_charge(hop_budget *budget, size_t bytes);
bool hop_budget_reserve(hop_budget *budget, size_t bytes);
void hop_budget_release(hop_budget *budget, size_t bytes);

/* The disk side: the bytes that the queue files and journals of every
 * channel opened with budget take on disk, together (their sizes, st_size;
 * files a channel does not know are not counted). It counts whenever a
 * channel has a budget, and bounds them once disk_bytes is set (0 = no
 * bound, the default). Call before opening channels on it. HOP_INVALID if
 * budget is NULL.
 *   - A send that goes to queue files reserves the bytes it adds (record
 *     headers and payloads, the header of a new file) before it writes;
 *     if they do not fit it fails with HOP_NOSPACE and stores nothing (a
 *     batch: none of it). HOP_FULL, the channel's own max_disk_files,
 *     comes first when both apply. A send to memory does not count here.
 *   - A queue file gives back its size when it is removed, once consumed
 *     (one that cannot be removed stays counted); a failed write gives
 *     back what it cut off again.
 *   - Counted whatever the limit, so that consuming never fails for the
 *     budget: the journal of consumed records (so the disk side may be
 *     passed by what journals grow between their rewrites: at most 256 KiB
 *     a channel while rewrites succeed), what hop_channel_open() recovers,
 *     and what hop_channel_close() writes from memory.
 *   - A channel counts its files only while it is open: hop_channel_close()
 *     gives back everything it counted (its files stay on disk), and the
 *     next open counts them again. */
hop_err hop_budget_set_disk(hop_budget *budget, uint64_t disk_bytes);
/* Files the application keeps beside the channels' (the server's key
 * logs), counted on the disk side like a journal: always, even past the
 * bound, so that it can be counted exactly; hop_budget_disk_release()
 * gives back what was charged. A NULL budget counts nothing. */
void hop_budget_disk_charge(hop_budget *budget, uint64_t bytes);
void hop_budget_disk_release(hop_budget *budget, uint64_t bytes);
/* Bytes counted now on the disk side (0 for NULL). */
uint64_t hop_budget_disk_used(const hop_budget *budget);
/* The disk bound (0 for NULL or no bound). */
uint64_t hop_budget_disk_limit(const hop_budget *budget);

/* Largest value max_message_bytes may take (1 GiB). */
#define HOP_MAX_MESSAGE_BYTES ((size_t)1 << 30)

/* Bytes a message of len bytes counts against memory_bytes: the payload plus
 * the bookkeeping that holds it. */
size_t hop_message_cost(size_t len);

/* Fill *limits with the defaults: 64 MiB memory, 64 MiB files, 64 files,
 * 1 MiB messages, not durable, no shared budget. Start from these (or from
 * a zeroed struct): a field left unset, budget above all, is garbage. */
void hop_limits_default(hop_limits *limits);

/* HOP_OK if the limits can make a channel, else HOP_INVALID: file_bytes is 0
 * while disk files are allowed, max_message_bytes is 0 or above
 * HOP_MAX_MESSAGE_BYTES, or the channel is memory only and a largest message
 * would not fit in memory_bytes, or durable is set without disk files. */
hop_err hop_limits_check(const hop_limits *limits);

/* True if name is a valid channel name: 1..128 characters of
 * [A-Za-z0-9._-], and not "." or "..". Such a name is always a single,
 * harmless path component. */
bool hop_name_valid(const char *name);
#define HOP_NAME_MAX 128

typedef struct hop_channel hop_channel;

/* Open channel name with its queue files under <data_dir>/<name>/, and
 * recover the messages an earlier open left there (see "Restarts" above).
 * data_dir is created if missing (one level); it may be NULL only when
 * limits->max_disk_files is 0 (the channel then keeps nothing across a
 * close). The channel directory is locked (flock) so that two openers, in
 * this process or another, cannot share it; a second open gets HOP_IO with
 * errno EWOULDBLOCK. Files the channel does not know (other names, queue
 * files of another format version) are left alone and logged. Recovery
 * truncates a torn last record and skips damaged records (logged, counted);
 * sends go on appending to the newest recovered file while it has room.
 * limits is copied; NULL means hop_limits_default(). Limits may differ from
 * the earlier open's: recovered files count against max_disk_files, and
 * sends are refused as full until enough of them are drained; with a
 * budget, they and the journal are counted on its disk side, even past its
 * bound.
 * OUT: *out, the new channel, on HOP_OK; untouched otherwise.
 * Errors: HOP_INVALID (bad name, limits or NULL out), HOP_IO (errno says
 * why: EACCES, ENOSPC, EWOULDBLOCK, ...; nothing was changed on disk unless
 * a torn tail was cut off), HOP_NOMEM. */
hop_err hop_channel_open(const char *data_dir, const char *name, const hop_limits *limits,
                         hop_channel **out);

/* Close and free the channel: receivers blocked in hop_recv() return
 * HOP_CLOSED, armed waiters are called with HOP_CLOSED; the messages in
 * memory are written, in order, to a queue file that the next open reads
 * first, and synced; how far the files were consumed is recorded. Messages
 * a receiver still holds are not consumed: if they came from a queue file
 * they are received again after the next open (hop_free() of them after
 * close only frees memory). HOP_OK, or HOP_IO (errno set, logged) if the
 * messages in memory could not be written: they are lost. Memory-only
 * channels (no data_dir) discard what they hold. The channel is freed
 * either way, and gives back all it counted in its budget, the bytes of
 * its files too (they stay on disk; the next open counts them again).
 * NULL is a no-op returning HOP_OK. */
hop_err hop_channel_close(hop_channel *ch);

/* Close ch to every call without freeing it: receivers blocked in
 * hop_recv() return HOP_CLOSED and armed waiters are called with
 * HOP_CLOSED; from then on sends, receives and holds answer HOP_CLOSED and
 * delayed messages are no longer handed on. The messages stay where they
 * are (hop_channel_close() still writes memory to disk). For an owner that
 * must turn a channel's users away before it can close it: the close comes
 * when the last of them is done. Idempotent; not concurrently with
 * hop_channel_close() of ch. NULL is a no-op. */
void hop_channel_shut(hop_channel *ch);

/* Remove the directory of channel name under data_dir if the channel holds
 * no message (after recovering it as an open would): for a server that keeps
 * channels only while they hold something. Must not race with an open of
 * the same channel. HOP_OK: removed, or there was none. HOP_INVALID: a bad
 * name or data_dir, or the channel holds messages (nothing changed).
 * HOP_IO: errno says why (EWOULDBLOCK: open elsewhere; ENOTEMPTY: files the
 * channel does not know are in it, and stay). HOP_NOMEM. */
hop_err hop_channel_remove(const char *data_dir, const char *name);

/* The channel's name (borrowed, lives as long as the channel). */
const char *hop_channel_name(const hop_channel *ch);

/* Append a copy of data[0..len) to the channel. data may be NULL if len is 0.
 * Errors: HOP_TOO_BIG (len > max_message_bytes), HOP_FULL (memory and disk
 * files exhausted), HOP_NOSPACE (memory full and the budget's disk side
 * has no room for the record), HOP_IO (writing the queue file failed;
 * nothing was stored), HOP_NOMEM, HOP_CLOSED, HOP_INVALID. On any error
 * nothing was stored and data is untouched. */
hop_err hop_send(hop_channel *ch, const void *data, size_t len);

/* A message to send: data[0..len). */
typedef struct hop_buf {
    const void *data;
    size_t len;
} hop_buf;

/* Send msgs[0..n) as one: all are stored, in order and one after another
 * (no other send lands between them), or none is. They go to memory when
 * all of them fit there (and nothing is on disk), else all to queue files.
 * Durable channels: HOP_OK once all are synced. Errors as hop_send(), for
 * the whole batch: HOP_TOO_BIG if any is too big, HOP_FULL or HOP_NOSPACE
 * if they do not all fit; on any error nothing was stored. n 0 is HOP_OK. */
hop_err hop_send_batch(hop_channel *ch, const hop_buf *msgs, size_t n);

/* A durable send that does not block the caller: an event loop sends and
 * goes on, and learns later whether the message is on disk. The record is
 * written before this returns (data is not used after), and then synced
 * with the other sends of its channel by one of the library's sync
 * threads, which calls fn(arg, err, err_no) once: HOP_OK, it is synced and
 * receivers see it; HOP_IO (err_no the errno), it was not stored. fn runs
 * without channel locks held and may call any hopper function except
 * closing that channel; close waits until every fn of its channel ran.
 * HOP_OK: fn will be called. Errors (fn is not called), as hop_send():
 * HOP_TOO_BIG, HOP_FULL, HOP_NOSPACE, HOP_IO, HOP_NOMEM, HOP_CLOSED,
 * HOP_INVALID (also when the channel is not durable or fn is NULL). */
typedef void (*hop_sent_fn)(void *arg, hop_err err, int err_no);
hop_err hop_send_async(hop_channel *ch, const void *data, size_t len, hop_sent_fn fn, void *arg);

/* hop_send_batch() on a durable channel without blocking, as
 * hop_send_async(): fn is called once for the whole batch (HOP_OK: all
 * are synced; else none was stored). n must be at least 1. */
hop_err hop_send_batch_async(hop_channel *ch, const hop_buf *msgs, size_t n, hop_sent_fn fn,
                             void *arg);

/* hop_send_batch_async(), except that when no sync of the channel is under
 * way and the last one served a single sender, the calling thread makes it
 * at once (one round, which settles what others queued meanwhile too:
 * their fn run on this thread) and returns with *synced true: the outcome
 * is the return value (HOP_IO with errno: not stored) and fn is not
 * called. Otherwise *synced is false and fn is called as for
 * hop_send_batch_async(). For an event loop that may block one sync long:
 * a lone sender that waits for each answer then costs one sync and no
 * hand-off between threads, while several share the library's syncs. */
hop_err hop_send_batch_lead(hop_channel *ch, const hop_buf *msgs, size_t n, hop_sent_fn fn,
                            void *arg, bool *synced);

/* Take the oldest message. timeout_ms: 0 polls, -1 waits forever.
 * OUT: *data (new, release with hop_free() or give back with hop_requeue())
 * and *len on HOP_OK; both untouched otherwise.
 * Errors: HOP_TIMEOUT (nothing arrived in time), HOP_CLOSED, HOP_NOMEM,
 * HOP_IO (a queue file could not be read, or held a corrupt record: that
 * record is skipped, counted in records_corrupt_total, and never handed
 * out; the next call goes on with the next record), HOP_INVALID. */
hop_err hop_recv(hop_channel *ch, int timeout_ms, void **data, size_t *len);

/* Take up to max of the oldest messages there are now, in order, without
 * waiting: as hop_recv(ch, 0, ...) called until it returns anything but
 * HOP_OK or max were taken, except that receivers on other threads wait
 * for the queue files once a batch, not once a message. OUT: data[0..*n)
 * and lens[0..*n), each released as from hop_recv(). HOP_OK with *n >= 1;
 * HOP_TIMEOUT with *n 0 (nothing there); an error of hop_recv() met before
 * any message was taken (met after one: HOP_OK with those before it, and
 * the next call meets it); HOP_INVALID (max 0 or a NULL argument). */
hop_err hop_recv_batch(hop_channel *ch, size_t max, void **data, size_t *lens, size_t *n);

/* Called by hop_peek() for each message, oldest first: data[0..len) is
 * borrowed, valid only during the call. Return false to stop. It runs with
 * locks of the channel held (the reader's, and for messages in memory the
 * state lock): it must be quick and must not call hopper functions on
 * that channel, nor hop_free() or hop_requeue() of its messages. */
typedef bool (*hop_peek_fn)(void *arg, const void *data, size_t len);
/* Show up to max of the oldest ready messages of ch to fn, in the order
 * hop_recv() would return them (messages given back at the head first,
 * then the queue, whether in memory or in queue files), WITHOUT consuming,
 * holding, requeuing or reordering anything: a hop_recv() after it returns
 * exactly what it would have returned without it. Delayed messages
 * (hop_send_at) and messages out with receivers are not shown. A corrupt
 * record in a queue file is passed over, as hop_recv() skips it (but not
 * counted: the receiver that skips it counts it). Concurrent receivers
 * wait while it reads queue files; memory may be received from and sent
 * to between its memory part and its file part. Memory: records read from
 * queue files go through a bounded buffer (the channel's read-ahead), never
 * the whole queue; what is read is charged to the channel's budget while
 * it is held, like any read, and given back after. OUT: *shown (may be
 * NULL), how many fn saw. HOP_IO (errno set) if a queue file cannot be read
 * (what was shown stays shown); HOP_NOMEM; HOP_CLOSED; HOP_INVALID for ch
 * NULL or fn NULL. */
hop_err hop_peek(hop_channel *ch, size_t max, hop_peek_fn fn, void *arg, size_t *shown);

/* Give a message taken by hop_recv() back to the head of its channel, ahead
 * of everything that was never taken; among messages given back, it lines
 * up in the order they were first taken, whatever order they come back in.
 * Always takes ownership of data,
 * which must be exactly what hop_recv() returned on this channel. A requeued
 * message goes to memory even past memory_bytes: its bytes were already in
 * RAM, held by the caller. Errors: HOP_INVALID (len is not the length
 * hop_recv() returned: the message goes back with its original length),
 * HOP_CLOSED (the message is freed). */
hop_err hop_requeue(hop_channel *ch, void *data, size_t len);

/* Drop every message of ch: messages given back at the head, the memory
 * buffer, every queue file, and delayed messages (hop_send_at). Messages
 * out with receivers at the time (received, held, or read ahead and
 * handed out) are not counted and not brought back: freeing one later
 * only frees its memory (a hold still ends as usual), and
 * hop_requeue()/hop_requeue_at() of one drops it (HOP_OK). Sends after the
 * purge start a fresh queue, in order; durable sends still waiting for
 * their sync when it runs are not dropped. Blocked receivers are not
 * woken. Crash safety: queue files are removed oldest first and the
 * journal is rewritten so that a crash in the middle leaves at worst the
 * newest queue files, whole and in order (never a message twice, never a
 * record of a removed file); on a durable channel the purge is synced
 * before it returns. Budget: memory and disk counters drop by what was
 * removed. OUT: *purged (may be NULL), the messages dropped (delayed ones
 * included), also on failure. HOP_IO (errno set) if a file could not be
 * removed: what was removed stays removed, the rest is intact and
 * counted (a delay file that cannot be removed stops the purge before the
 * channel's own messages). HOP_NOMEM (the journal could not be
 * rewritten), HOP_CLOSED, HOP_INVALID for ch NULL. */
hop_err hop_purge(hop_channel *ch, uint64_t *purged);

/* The most messages one hop_move() takes. */
#define HOP_MOVE_MAX 1024

/* Move msgs[0..n), messages the caller received from `from` (hop_recv()
 * and the like) and still has (their payloads may have been changed in
 * place, not their lengths), to the tail of `to`, in that order, as one
 * step a crash cannot split: after a crash each of them is in exactly one
 * of the two channels, if it was in a queue file of `from` (one only in
 * its memory is lost by a crash as any such message; once moved it is in
 * a queue file of `to`). They go to a new queue file of `to`, synced
 * whether `to` is durable or not; messages sent to `to` after the call
 * come after them. Both channels need a directory, on one file system.
 * HOP_OK: the messages are consumed from `from` and freed. Otherwise they
 * are still the caller's (to give back with hop_requeue()) and neither
 * channel changed: HOP_FULL (`to` is at max_disk_files), HOP_NOSPACE (the
 * budget's disk side), HOP_IO (errno set; also while an earlier move
 * from `from` is not journalled as consumed: the next open settles it),
 * HOP_NOMEM, HOP_CLOSED, HOP_INVALID (n is 0 or above HOP_MOVE_MAX,
 * from == to, a channel without a directory, or a message not received
 * from `from`). Moves of the library run one at a time. */
hop_err hop_move(hop_channel *from, hop_channel *to, void *const *msgs, size_t n);

/* Delayed messages. A message sent with a due time in the future waits on
 * disk, apart from the queue files, until the library's wall clock
 * (hop_now_ms()) reaches it; then it joins the channel as hop_send() would
 * have put it there (hop_requeue_at(): at the head, as hop_requeue()), never
 * earlier and normally within 50 ms. Messages due at the same time keep
 * the order they were delayed in. Waiting ones take no RAM each: they are
 * counted in hop_stats.delayed and delayed_bytes, and their bytes count
 * with the queue files' against the channel's max_disk_files x file_bytes
 * and the budget's disk side. They survive hop_channel_close() and a crash
 * (due times are absolute); those handed on just before a crash (at most
 * a batch of 64) may be handed on again after it (at-least-once for that
 * moment). A memory-only
 * channel cannot delay (HOP_FULL). Due times are ms since the epoch;
 * one not in the future is an immediate hop_send() (hop_requeue()).
 *
 * hop_send_at(): as hop_send(), due at due_ms. Durable channels: the
 * message is synced before HOP_OK. Errors as hop_send(): HOP_FULL (the
 * channel's disk capacity is used up), HOP_NOSPACE (the budget's disk
 * side), HOP_IO, HOP_TOO_BIG, HOP_NOMEM, HOP_INVALID; nothing stored. */
hop_err hop_send_at(hop_channel *ch, const void *data, size_t len, uint64_t due_ms);
/* hop_send_batch() due at due_ms: all of msgs or none, in order. */
hop_err hop_send_batch_at(hop_channel *ch, const hop_buf *msgs, size_t n, uint64_t due_ms);
/* Give a message taken by hop_recv() back to the head of its channel at
 * due_ms (a delayed hop_requeue()). HOP_OK: data is taken (a message from
 * a queue file is consumed there: its copy waits in the schedule). On any
 * error data is still the caller's (to hop_requeue() or hop_free()):
 * HOP_INVALID (not a message, or len is not its length), HOP_FULL,
 * HOP_NOSPACE, HOP_IO, HOP_NOMEM. On a durable channel it comes back to
 * the tail, durably: the head of a channel lives in memory. */
hop_err hop_requeue_at(hop_channel *ch, void *data, size_t len, uint64_t due_ms);

/* The wall clock of due times, ms since the epoch (CLOCK_REALTIME unless
 * replaced). */
uint64_t hop_now_ms(void);
/* Tests: read the time from fn(arg) instead (NULL restores the system
 * clock). Time should not go backwards. After moving it, call
 * hop_clock_moved(): it wakes the library's scheduler and returns once
 * every delayed message due at the new time was handed on (or refused,
 * to be tried again 100 ms later). */
typedef uint64_t (*hop_clock_fn)(void *arg);
void hop_set_clock(hop_clock_fn fn, void *arg);
void hop_clock_moved(void);

/* Count a message taken from ch (by hop_recv(), hop_recv_or_arm() or a
 * waiter) against ch's memory_bytes for as long as the receiver holds it:
 * for a receiver that keeps messages a while (a lease), so that they still
 * take room. hop_free() or hop_requeue() ends it. Errors: HOP_FULL (the
 * held messages would count more than memory_bytes; one is always
 * allowed), HOP_INVALID (not a message, of another channel, or held
 * already), HOP_CLOSED, HOP_NOMEM; nothing changes then. */
hop_err hop_hold(hop_channel *ch, void *data);

/* Release a message from hop_recv(): it is consumed. A message read from a
 * queue file is marked consumed on disk here, so that it does not come back
 * after a restart; this must happen before its channel is closed (after,
 * it only frees memory). NULL is a no-op. */
void hop_free(void *data);
/* hop_free() each of data[0..n), in that order (NULL entries are skipped).
 * Messages of one channel read from its queue files are marked consumed
 * together: one pass under the channel's locks and one journal write for up
 * to 64 of them, where hop_free() makes one each. */
void hop_free_all(void *const *data, size_t n);

/* Counters and gauges of one channel, read at one instant. */
typedef struct hop_stats {
    size_t messages;                /* messages held, memory and disk */
    size_t memory_messages;         /* of which in memory */
    size_t memory_bytes;            /* bytes counted against memory_bytes */
    size_t disk_messages;           /* of which in queue files, not yet read */
    size_t disk_bytes;              /* bytes of the queue files that exist */
    size_t disk_files;              /* queue files that exist */
    size_t waiting_receivers;       /* blocked hop_recv() calls plus armed waiters */
    uint64_t sent_total;            /* messages accepted by hop_send() */
    uint64_t received_total;        /* messages handed out, requeued ones again */
    uint64_t requeued_total;        /* messages given back by hop_requeue() */
    uint64_t rejected_full_total;   /* hop_send() calls refused with HOP_FULL */
    uint64_t io_errors_total;       /* calls that failed with HOP_IO */
    uint64_t records_corrupt_total; /* queue file records skipped as corrupt */
    size_t in_flight;               /* messages read from queue files, handed out and not yet
                                       hop_free()d or given back */
    size_t held;                    /* messages held with hop_hold() */
    size_t held_bytes;              /* what they count against memory_bytes */
    uint64_t recovered_total;       /* messages found in queue files when the channel opened */
    uint64_t syncs_total;           /* syncs made for durable sends: fdatasync of queue files,
                                       fsync of the directory for a new file */
    size_t delayed;                 /* messages waiting for their due time (hop_send_at()) */
    size_t delayed_bytes;           /* bytes of the files they wait in */
} hop_stats;

/* OUT: *stats, a consistent snapshot of ch. */
void hop_channel_stats(hop_channel *ch, hop_stats *stats);

/* Waiting without a thread: a hop_waiter is a one-shot, re-armable
 * subscription for the next message of a channel. It lets a server such as
 * an event loop keep thousands of receivers waiting on many channels with no
 * thread each.
 *
 * fn is called at most once per arming, from whichever thread made a message
 * available (a sender, hop_requeue()) or from hop_channel_close(), never with
 * a channel lock held, so it may call any hopper function except closing
 * that channel. The callbacks of one channel run one at a time, in one
 * delivery loop: a callback that gives its message back with hop_requeue()
 * (its receiver has gone) does not recurse, the loop hands the message to
 * the next armed waiter. With err HOP_OK fn owns the message (data, len)
 * exactly as after hop_recv(); with HOP_CLOSED data is NULL. A waiter must
 * not be freed or re-armed while its callback may still run. */
typedef struct hop_waiter hop_waiter;
typedef void (*hop_ready_fn)(void *arg, hop_err err, void *data, size_t len);

/* OUT: *out, a new idle waiter that will call fn(arg, ...). */
hop_err hop_waiter_new(hop_ready_fn fn, void *arg, hop_waiter **out);
/* Free an idle waiter (never armed, delivered, or cancelled). NULL is a no-op. */
void hop_waiter_free(hop_waiter *w);

/* Take the oldest message now if there is one, else arm w on ch.
 * HOP_OK: *data and *len hold a message as from hop_recv(); w stays idle.
 * HOP_TIMEOUT: nothing was ready; w is armed and its callback will run
 * exactly once later, unless hop_waiter_cancel() disarms it first. Armed
 * waiters of a channel are served in the order they were armed.
 * Other errors as for hop_recv(); w stays idle. */
hop_err hop_recv_or_arm(hop_channel *ch, hop_waiter *w, void **data, size_t *len);

/* Disarm w. True: it was armed and now is idle, its callback will not run.
 * False: it was not armed, or its callback has been claimed (it ran, is
 * running, or is about to run). Must not race with closing w's channel. */
bool hop_waiter_cancel(hop_waiter *w);

/* Logging: the library logs events worth knowing (stale files removed, I/O
 * errors, corrupt records) through one process-wide function. The default
 * writes "hopper: <channel>: <message>" lines to stderr; NULL silences it. */
typedef enum hop_log_level { HOP_LOG_INFO, HOP_LOG_WARN, HOP_LOG_ERROR } hop_log_level;
typedef void (*hop_log_fn)(void *arg, hop_log_level level, const char *channel,
                           const char *message);
void hop_set_log(hop_log_fn fn, void *arg);

#ifdef __cplusplus
}
#endif
#endif
