/* verify.h - webhook signatures checked at the door: the --verify rules
 * (NAME=SCHEME:SECRET_FILE, NAME a channel or a prefix ending in '*'), the
 * secrets each rule reads from its file at start, and which channel a rule
 * covers. A POST to a covered channel is stored only if its signature
 * (verify_schemes.h) is good under one of the rule's secrets; else it is
 * refused 401 bad_signature with its body back (post.c). */
#ifndef HOPPER_SERVER_VERIFY_H
#define HOPPER_SERVER_VERIFY_H

#include "forward_sign.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Rules --verify may give. */
#define VERIFY_RULES_MAX 64
/* Secrets one file may hold (one a line: more than one while rotating). */
#define VERIFY_SECRETS_MAX 16
/* Largest secret file read. */
#define VERIFY_FILE_MAX (64 * 1024)

typedef enum verify_scheme {
    VERIFY_GITHUB,   /* X-Hub-Signature-256 */
    VERIFY_STRIPE,   /* Stripe-Signature */
    VERIFY_STANDARD, /* Standard Webhooks: webhook-id, -timestamp, -signature */
} verify_scheme;

typedef struct verify_rule {
    const char *name; /* borrowed from the parsed text, not NUL-terminated */
    size_t name_len;  /* a trailing '*' included */
    bool prefix;      /* name ends in '*': every channel that begins with the rest */
    verify_scheme scheme;
    const char *path;     /* the secret file, NUL-terminated; new */
    forward_signer *keys; /* the secrets, as forward_signer_parse() reads them; new */
    size_t key_count;     /* 1..VERIFY_SECRETS_MAX */
} verify_rule;

typedef struct verify_rules {
    verify_rule items[VERIFY_RULES_MAX];
    size_t count;
} verify_rules;

/* Add the entries of text to r: one "NAME=SCHEME:SECRET_FILE", or several
 * separated by blanks (the HOPPER_VERIFY form). SCHEME is github, stripe or
 * standard-webhooks; SECRET_FILE is read now: one secret a line (a
 * trailing CR dropped, empty lines skipped), at least one, each at most
 * FORWARD_SIGN_KEY_MAX bytes (for standard-webhooks "whsec_<base64>" is
 * decoded, as --forward-secret's; github and stripe use the bytes as
 * they are). NAME is borrowed from text. True on success; else
 * why[0..why_size) says what is wrong (and which file), and r may hold
 * some of the entries. */
bool verify_rules_add(verify_rules *r, const char *text, char *why, size_t why_size);

/* The rule covering channel (the first that matches, in the order given;
 * a prefix matches NAME.dead too), or NULL. */
const verify_rule *verify_match(const verify_rules *r, const char *channel);

/* True if a POST to channel must carry a good signature. */
bool verify_covers(const verify_rules *r, const char *channel);

/* "github", "stripe" or "standard-webhooks". */
const char *verify_scheme_name(verify_scheme scheme);

/* Free what verify_rules_add() read (the secrets); r is then empty. */
void verify_rules_free(verify_rules *r);

/* Refusals for a bad signature on a channel that did not exist (and was
 * not made: a refused POST makes no channel). Those on channels that
 * exist are counted on the channel (registry.h). */
void verify_count_failure_without_channel(void);
uint64_t verify_failures_without_channel(void);

#endif
