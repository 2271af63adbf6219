/* forward_sign.h - signing forwarded requests the Standard Webhooks way
 * (https://www.standardwebhooks.com): webhook-id, webhook-timestamp and
 * webhook-signature "v1,<base64 of HMAC-SHA256(key, id.timestamp.body)>",
 * so that a receiver can check a request came from this hopper and was not
 * replayed long after. HMAC-SHA256 and base64 are nettle's. */
#ifndef HOPPER_SERVER_FORWARD_SIGN_H
#define HOPPER_SERVER_FORWARD_SIGN_H

#include <stdbool.h>
#include <stddef.h>

/* Longest key accepted, in bytes once decoded. */
#define FORWARD_SIGN_KEY_MAX 256
#define FORWARD_SIGN_KEY_MAX_TEXT "256"
/* "v1," and the base64 of 32 bytes, and NUL. */
#define FORWARD_SIGNATURE_SIZE (3 + 44 + 1)

typedef struct forward_signer {
    unsigned char key[FORWARD_SIGN_KEY_MAX];
    size_t key_len;
} forward_signer;

/* Read the key from path: "whsec_<base64>" (the form Standard Webhooks
 * libraries take) is decoded, anything else is the key's bytes; a trailing
 * newline is dropped either way. True, or false with why[0..why_size). */
bool forward_signer_load(const char *path, forward_signer *out, char *why, size_t why_size);

/* The key of text[0..len) (one line, its newline already dropped), read
 * as forward_signer_load() reads a file: "whsec_<base64>" decoded, else the
 * bytes as they are. verify.c reads the secrets of --verify this way too,
 * so that one key file serves a hopper that signs and one that verifies.
 * True, or false with *why (static text). */
bool forward_signer_parse(const char *text, size_t len, forward_signer *out, const char **why);

/* HMAC-SHA256 under s's key of prefix[0..prefix_len) followed by
 * body[0..len): what a signature is over once its scheme's prefix is put
 * in front (Standard Webhooks "id.timestamp.", Stripe "timestamp.",
 * GitHub none). OUT: digest. */
#define FORWARD_DIGEST_SIZE 32
void forward_signer_digest(const forward_signer *s, const char *prefix, size_t prefix_len,
                           const void *body, size_t len, unsigned char digest[FORWARD_DIGEST_SIZE]);

/* The webhook-signature value for message id (at most FORWARD_ID_MAX
 * characters: a message id has 32) at timestamp (seconds since the epoch)
 * of body[0..len). OUT: out. */
#define FORWARD_ID_MAX 64
void forward_sign(const forward_signer *s, const char *id, long long timestamp, const void *body,
                  size_t len, char out[FORWARD_SIGNATURE_SIZE]);

#endif
