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
/* Note that the record of f at off was consumed (an append to the
 * journal, which is rewritten when it has grown). Without locks. */
void hop__persist_consumed(hop_channel *ch, uint64_t seq, uint64_t off);
/* Note now, in the journal, that the record of file seq at off is
 * consumed: for a record that stays whole in its file although its sender
 * was told it was not stored. Takes journal_lock (so may be called with
 * write_lock or read_lock held, not lock). HOP_IO (errno set) if it could
 * not be written, or there is no journal. */
hop_err hop__persist_note_consumed(hop_channel *ch, uint64_t seq, uint64_t off);
/* At close, single-threaded: write what memory holds, rewrite the journal,
 * and let go of the in-flight records. */
hop_err hop__persist_close(hop_channel *ch);

#endif
