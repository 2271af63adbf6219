/* verify_header.h - the signature headers webhook senders attach, parsed:
 * pure functions of the header's text, no keys, no clock (verify_schemes.c
 * checks what they give; tests/fuzz/fuzz_verify_*.c fuzz them).
 *
 *   GitHub             X-Hub-Signature-256: sha256=<64 hex digits>
 *   Stripe             Stripe-Signature: t=<seconds>,v1=<64 hex>[,v1=...][,v0=...]
 *   Standard Webhooks  webhook-signature: v1,<base64 of 32 bytes>[ v1,...]
 *                      webhook-timestamp: <seconds>, webhook-id: <text>
 *
 * Each is strict: a value that is not exactly the documented form is
 * malformed (false), which the caller answers as a bad signature. */
#ifndef HOPPER_SERVER_VERIFY_HEADER_H
#define HOPPER_SERVER_VERIFY_HEADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An HMAC-SHA256, in bytes. */
#define VERIFY_DIGEST_SIZE 32
/* Signatures one header may carry that are looked at; more are malformed.
 * Senders put one per secret they sign with: one, two while rotating. */
#define VERIFY_SIGNATURES_MAX 8
/* Longest webhook-id taken (it is signed, so it is read whole). */
#define VERIFY_ID_MAX 256

typedef struct verify_signatures {
    int64_t timestamp; /* Stripe's t=; unset by the other parsers */
    unsigned char digests[VERIFY_SIGNATURES_MAX][VERIFY_DIGEST_SIZE];
    size_t count; /* 1..VERIFY_SIGNATURES_MAX once parsed */
} verify_signatures;

/* X-Hub-Signature-256 value[0..len): "sha256=" and 64 hex digits (either
 * case), nothing else. OUT: digest. */
bool verify_header_github(const char *value, size_t len, unsigned char digest[VERIFY_DIGEST_SIZE]);

/* Stripe-Signature value[0..len): comma-separated KEY=VALUE items (blanks
 * around an item allowed); exactly one t (decimal seconds, as
 * verify_header_timestamp()), at least one v1 (64 hex digits each, at most
 * VERIFY_SIGNATURES_MAX); items of other keys (v0, the test-mode scheme)
 * are ignored. An item without '=' or with an empty key is malformed.
 * OUT: *out (timestamp and the v1 digests). */
bool verify_header_stripe(const char *value, size_t len, verify_signatures *out);

/* webhook-signature value[0..len): entries separated by spaces, each
 * "VERSION,SIGNATURE"; v1 entries must be the standard base64 (padded) of
 * 32 bytes, at most VERIFY_SIGNATURES_MAX of them, and there must be one;
 * entries of other versions (v1a, asymmetric) are ignored. OUT: *out (the
 * v1 digests; timestamp untouched). */
bool verify_header_standard(const char *value, size_t len, verify_signatures *out);

/* A timestamp header or item: 1 to 18 decimal digits, seconds since the
 * epoch. OUT: *seconds. */
bool verify_header_timestamp(const char *value, size_t len, int64_t *seconds);

/* webhook-id value[0..len): 1 to VERIFY_ID_MAX visible ASCII characters
 * (0x21..0x7e), as the id it signs must be read back exactly. */
bool verify_header_webhook_id(const char *value, size_t len);

#endif
