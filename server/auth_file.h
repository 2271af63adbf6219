/* auth_file.h - the --auth-file: who may do what, as a set of tokens (their
 * SHA-256, never the tokens themselves) and the scopes each grants; its
 * parser, and the lookup of a presented token in constant time.
 *
 * The format, one token a line:
 *   # a comment; blank lines are ignored
 *   <64 lowercase hex digits: SHA-256 of the token> SCOPE [SCOPE...]  [# comment]
 * SCOPE is send:GLOB, receive:GLOB, admin:GLOB or metrics; GLOB is a channel
 * name, or a prefix of one ending in '*' ("jobs*" is jobs, jobs.dead,
 * jobs2, ...; "*" alone is every channel). Fields are separated by spaces
 * or tabs; a '#' that begins a field begins a comment to the end of the
 * line. A line that breaks any of this, or repeats the hash of an earlier
 * line, makes the whole file refused: there is no partly loaded file. */
#ifndef HOPPER_SERVER_AUTH_FILE_H
#define HOPPER_SERVER_AUTH_FILE_H

#include "hopper/hopper.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTH_DIGEST_SIZE 32                   /* SHA-256 */
#define AUTH_FILE_MAX_BYTES ((size_t)4 << 20) /* larger files are refused */
#define AUTH_FILE_MAX_TOKENS 100000           /* lines with a token */
#define AUTH_FILE_MAX_SCOPES 64               /* per token */
#define AUTH_GLOB_MAX (HOP_NAME_MAX + 1)      /* a name and its '*' */

typedef enum auth_scope_kind {
    AUTH_SCOPE_SEND,    /* POST to the channels of glob */
    AUTH_SCOPE_RECEIVE, /* take, look at, acknowledge, extend, release */
    AUTH_SCOPE_ADMIN,   /* purge, delete, redrive, pause, resume */
    AUTH_SCOPE_METRICS, /* /status, /metrics, the channel list; no glob */
    AUTH_SCOPE_KINDS
} auth_scope_kind;

typedef struct auth_scope {
    auth_scope_kind kind;
    char glob[AUTH_GLOB_MAX + 1]; /* "" for AUTH_SCOPE_METRICS */
} auth_scope;

typedef struct auth_token {
    uint8_t digest[AUTH_DIGEST_SIZE];
    size_t first_scope, scope_count; /* its scopes in the set's scopes[] */
    unsigned line;                   /* where the file gives it */
} auth_token;

/* A parsed file. Immutable once made; auth_store.c shares one between
 * requests with refs (the parser sets it to 1). */
typedef struct auth_set {
    auth_token *tokens;
    size_t token_count;
    auth_scope *scopes;
    size_t scope_count;
    atomic_size_t refs;
} auth_set;

/* Parse text[0..len) (borrowed; it may hold any bytes) as an auth file
 * called name in messages. True with *out a new set (auth_set_free());
 * else false, *out untouched, and why[0..why_size) "NAME:LINE: what is
 * wrong" (or "NAME: ..." for what is wrong with the whole file). */
bool auth_file_parse(const char *text, size_t len, const char *name, auth_set **out, char *why,
                     size_t why_size);

/* Read the file at path and parse it (auth_file_parse()). False with why
 * when it cannot be read or is refused; *out untouched then. */
bool auth_file_load(const char *path, auth_set **out, char *why, size_t why_size);

/* Free s and everything in it; NULL does nothing. */
void auth_set_free(auth_set *s);

/* The token of s whose digest is digest, or NULL. Every stored digest is
 * compared in full, in constant time (nettle's memeql_sec), whether or not
 * an earlier one matched: the time taken tells nothing about the hashes. */
const auth_token *auth_set_find(const auth_set *s, const uint8_t digest[AUTH_DIGEST_SIZE]);

/* True if token t of s has a scope of kind whose glob matches channel
 * (ignored for AUTH_SCOPE_METRICS). */
bool auth_token_grants(const auth_set *s, const auth_token *t, auth_scope_kind kind,
                       const char *channel);

/* True if glob (a channel name, or a prefix ending in '*') matches name. */
bool auth_glob_match(const char *glob, const char *name);

/* The word of kind in the file: "send", "receive", "admin", "metrics". */
const char *auth_scope_word(auth_scope_kind kind);

/* The SHA-256 of token[0..len). OUT: digest. */
void auth_digest(const char *token, size_t len, uint8_t digest[AUTH_DIGEST_SIZE]);

#endif
