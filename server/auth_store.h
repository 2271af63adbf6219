/* auth_store.h - the token set in force: loaded from --auth-file at start,
 * replaced as a whole when SIGHUP asks for a reload, and shared by the
 * requests that were decided with it.
 *
 * A reload parses the file into a new set and swaps the pointer under a
 * mutex; a request holds a reference to the set it was decided with
 * (auth_store_acquire()) until it ends, so the old set is freed only once
 * the last request that used it is over. A file that is refused leaves
 * the set in force as it was. */
#ifndef HOPPER_SERVER_AUTH_STORE_H
#define HOPPER_SERVER_AUTH_STORE_H

#include "auth_file.h"

#include <stdbool.h>
#include <stddef.h>

/* Load path (borrowed; kept for reloads) as the set in force. False, with
 * why[0..why_size), when it cannot be read or is malformed; nothing is in
 * force then. */
bool auth_store_open(const char *path, char *why, size_t why_size);

/* True once auth_store_open() succeeded: requests need tokens. */
bool auth_store_enabled(void);

/* Read the file of auth_store_open() again and put it in force. False,
 * with why, when it is refused: the set in force stays. OUT: *tokens, the
 * new set's count when true. */
bool auth_store_reload(size_t *tokens, char *why, size_t why_size);

/* A reference to the set in force (NULL when auth is off); give it back
 * with auth_store_release(). */
auth_set *auth_store_acquire(void);
void auth_store_release(auth_set *s);

/* Drop the set in force (at exit; requests are over). */
void auth_store_close(void);

#endif
