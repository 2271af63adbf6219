/* persist.h - what of a channel survives a restart (persist.c): the
 * journal of consumed records, and the messages in memory written to disk
 * at close. */
#ifndef HOP_PERSIST_H
#define HOP_PERSIST_H

#include "channel_state.h"

/* Rewrite the journal from the state of ch (retrying first to remove the
 * files that could not be). At open and close, single-threaded. HOP_IO
 * (errno set) or HOP_NOMEM: the old journal is as it was. */
hop_err hop__persist_rewrite(hop_channel *ch);
/* Rewrite the journal while the channel is in use: write_lock, read_lock
 * and journal_lock held (they keep records from being appended, read or
 * consumed meanwhile); `lock` is taken only to read the state, so that
 * memory traffic does not wait for the I/O. Errors as
 * hop__persist_rewrite(). */
hop_err hop__persist_rewrite_locked(hop_channel *ch);
/* A record consumed: file seq, offset off. */
typedef struct hop__consumed {
    uint64_t seq, off;
} hop__consumed;

/* Note that the records c[0..n) (n at most HOP__JOURNAL_APPEND_MAX) were
 * consumed: one append to the journal, which is rewritten when it has
 * grown. A failure is logged and counted (the records may come again after
 * a restart). Without locks. */
void hop__persist_consumed(hop_channel *ch, const hop__consumed *c, size_t n);
/* Note now, in the journal, that the record of file seq at off is
 * consumed: for a record that stays whole in its file although its sender
 * was told it was not stored. Takes journal_lock (so may be called with
 * write_lock or read_lock held, not lock). HOP_IO (errno set) if it could
 * not be written, or there is no journal. */
hop_err hop__persist_note_consumed(hop_channel *ch, uint64_t seq, uint64_t off);
/* Sync the journal, so that what it notes as consumed survives a power
 * failure. Takes journal_lock. HOP_IO (errno set) if that fails or there
 * is no journal. */
hop_err hop__persist_sync(hop_channel *ch);
/* At close, single-threaded, with a directory: rewrite the journal, then
 * write the records receivers still have and the messages in memory, in
 * that order, to a synced file read before the others, and note the
 * records it repeats as consumed. Failures are logged: a journal that
 * cannot be rewritten is returned as is (HOP_IO or HOP_NOMEM) when nothing
 * had to be written; messages that cannot be written make HOP_IO (errno
 * set), and those only in memory are lost. */
hop_err hop__persist_close(hop_channel *ch);

#endif
