/* registry.h - the channels by name: those found in the data directory at
 * start, and those created on the first POST or GET of a name; kept until
 * deleted (DELETE /channels/NAME) or shutdown, never more than
 * --max-channels of them.
 *
 * Lifetime: an entry is counted. The registry holds one reference while
 * the name is listed; registry_get(), registry_find() and registry_list()
 * hand out one more each, which the user gives back with registry_put()
 * (a request when it ends, a lease when it ends). A deleted entry is
 * unlisted at once (the name is free again) and freed, its channel closed
 * and its directory removed, when the last reference goes. */
#ifndef HOPPER_SERVER_REGISTRY_H
#define HOPPER_SERVER_REGISTRY_H

#include "errors.h"
#include "hopper/hopper.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct registry_entry {
    hop_channel *ch;                         /* owned by the registry */
    atomic_uint_fast64_t too_big_total;      /* POSTs refused with 413 (the core never sees them) */
    atomic_uint_fast64_t storage_full_total; /* POSTs refused with 507 storage_full */
    atomic_uint_fast64_t signature_failures_total; /* POSTs refused 401 bad_signature (--verify) */
    atomic_bool refusing;                          /* the last send was refused as full */
    atomic_uint_fast64_t lease_expired_total;      /* leases that ended by their deadline */
    atomic_uint_fast64_t dead_lettered_total;      /* messages moved to <name>.dead */
    /* expiry.h: messages dropped as expired; of them not logged yet; when
     * the last line about them was logged (monotonic ms, 0: never) */
    atomic_uint_fast64_t expired_total, expired_unlogged, expired_logged_ms;
    atomic_uint_fast64_t streams_open; /* streams on the channel now (stream.h) */
    struct forwarder *forwarder;       /* forward.h's, or NULL: not forwarded */
    struct dedup_store *dedup;         /* dedup.h's keys, or NULL: dedup is off */
    /* Pause (POST /channels/NAME/pause): while paused, neither GETs nor
     * forwarding take messages. Set from pause_file.h at start; changed by
     * longpoll_pause() and longpoll_resume() under waiters_lock. */
    atomic_bool paused;
    pthread_mutex_t waiters_lock; /* guards paused's changes and waiters */
    struct longpoll *waiters;     /* longpoll.h's waiting GETs of the channel */
    atomic_uint_fast64_t parked;  /* of them, held back by the pause (not armed) */
    struct registry_entry *next;  /* hash bucket chain */
    atomic_uint refs;             /* see the top */
    atomic_bool deleted;          /* unlisted by a DELETE: its channel is shut */
    char *gone_dir;               /* deleted: its directory, renamed aside (graveyard.h); new */
} registry_entry;

/* Prepare an empty registry whose channels get limits (copied) and keep
 * their queue files under data_dir (borrowed, must outlive the registry).
 * False if out of memory. */
bool registry_open(const char *data_dir, const hop_limits *limits, size_t max_channels);

/* Open every channel in names (borrowed: count valid channel names, as
 * datadir_channels() lists them) with the messages it kept, before any
 * request comes: one log line per channel, saying what it recovered, and
 * one in all. A channel that holds nothing (no message, no key of
 * dedup.h inside its window, and not paused: pause_file.h) is not kept, and its directory
 * is removed (unless something else is in it): a request makes it again.
 * False (logged) if more than max_channels hold messages, or one cannot be
 * opened: hopper cannot start. The channels opened so far stay in the
 * registry; registry_close() closes them. */
bool registry_recover(const char *const *names, size_t count);

/* Close every channel and free the registry, logging per channel what
 * became of the messages it held: kept on disk for the next start, lost
 * (with why). Nothing else may use a channel any more. Returns how many
 * messages were lost: those in memory of a channel whose queue file could
 * not be written (a full disk, an I/O error). */
size_t registry_close(void);

/* The channel called name, created (and logged) if it does not exist yet.
 * name must satisfy hop_name_valid(). OUT: *out on API_OK, a reference
 * the caller gives back with registry_put(). Errors: API_TOO_MANY_CHANNELS,
 * or what opening the channel failed with (API_IO, API_NOMEM; logged). */
api_error registry_get(const char *name, registry_entry **out);

/* The channel called name if it exists (a reference, as above), else
 * NULL; never creates. */
registry_entry *registry_find(const char *name);

/* One more reference to e, which the caller holds one of already. */
void registry_hold(registry_entry *e);
/* Give back a reference; NULL is a no-op. The last one of a deleted
 * entry closes its channel (its messages are dropped), removes its
 * directory and frees it. */
void registry_put(registry_entry *e);

/* Unlist e (a reference the caller holds) for a DELETE, if it is still
 * listed: its name is free for a new channel from now on. gone_dir (taken)
 * is where its directory was moved. False: a concurrent DELETE unlisted it
 * first (gone_dir is freed). */
bool registry_unlist(registry_entry *e, char *gone_dir);

/* A snapshot of all entries, sorted by name. OUT: *out, a new array of
 * references the caller gives back with registry_list_free(). Returns the
 * count; 0 with *out NULL when empty or out of memory. */
size_t registry_list(registry_entry ***out);
void registry_list_free(registry_entry **list, size_t n);

/* Record the outcome of a send on e (api: what the client is told): logs
 * once when the channel starts refusing messages as full, and once when it
 * accepts again; counts refusals for want of disk (budget.h). */
void registry_note_send(registry_entry *e, api_error api);

#endif
