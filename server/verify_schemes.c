/* verify_schemes.c - checking a request's signature under a --verify rule
 * (see verify_schemes.h). HMAC-SHA256 and the constant-time comparison are
 * nettle's. */
#include "verify_schemes.h"

#include "verify_header.h"

#include <inttypes.h>
#include <nettle/memops.h>
#include <stdio.h>
#include <string.h>

#define GITHUB_HEADER "X-Hub-Signature-256"
#define STRIPE_HEADER "Stripe-Signature"
#define STANDARD_ID "webhook-id"
#define STANDARD_TIMESTAMP "webhook-timestamp"
#define STANDARD_SIGNATURE "webhook-signature"

/* VERIFY_OK if one of sigs is the HMAC under one of rule's secrets of
 * prefix and body. Every pair is compared, whichever matches, so the time
 * taken says nothing of which did. */
static verify_result match_any(const verify_rule *rule, const verify_signatures *sigs,
                               const char *prefix, size_t prefix_len, const void *body, size_t len)
{
    bool matched = false;
    for (size_t k = 0; k < rule->key_count; k++) {
        unsigned char expected[VERIFY_DIGEST_SIZE];
        forward_signer_digest(&rule->keys[k], prefix, prefix_len, body, len, expected);
        for (size_t i = 0; i < sigs->count; i++)
            matched |= memeql_sec(expected, sigs->digests[i], VERIFY_DIGEST_SIZE) != 0;
    }
    return matched ? VERIFY_OK : VERIFY_MISMATCH;
}

/* The one value of header name. VERIFY_OK, VERIFY_MISSING or, when sent
 * more than once, VERIFY_MALFORMED. */
static verify_result one_header(verify_header_fn header, void *ctx, const char *name,
                                const char **value, size_t *len)
{
    unsigned count = header(ctx, name, value, len);
    return count == 0 ? VERIFY_MISSING : count > 1 ? VERIFY_MALFORMED : VERIFY_OK;
}

static bool fresh(int64_t timestamp, uint64_t now_ms)
{
    int64_t now = (int64_t)(now_ms / 1000);
    return timestamp >= now - VERIFY_TOLERANCE_S && timestamp <= now + VERIFY_TOLERANCE_S;
}

static verify_result check_github(const verify_rule *rule, verify_header_fn header, void *ctx,
                                  const void *body, size_t len)
{
    const char *value;
    size_t value_len;
    verify_result r = one_header(header, ctx, GITHUB_HEADER, &value, &value_len);
    if (r != VERIFY_OK)
        return r;
    verify_signatures sigs = {.count = 1};
    if (!verify_header_github(value, value_len, sigs.digests[0]))
        return VERIFY_MALFORMED;
    return match_any(rule, &sigs, "", 0, body, len);
}

static verify_result check_stripe(const verify_rule *rule, verify_header_fn header, void *ctx,
                                  const void *body, size_t len, uint64_t now_ms)
{
    const char *value;
    size_t value_len;
    verify_result r = one_header(header, ctx, STRIPE_HEADER, &value, &value_len);
    if (r != VERIFY_OK)
        return r;
    verify_signatures sigs;
    if (!verify_header_stripe(value, value_len, &sigs))
        return VERIFY_MALFORMED;
    if (!fresh(sigs.timestamp, now_ms))
        return VERIFY_STALE;
    char prefix[32];
    int n = snprintf(prefix, sizeof prefix, "%" PRId64 ".", sigs.timestamp);
    return match_any(rule, &sigs, prefix, (size_t)n, body, len);
}

static verify_result check_standard(const verify_rule *rule, verify_header_fn header, void *ctx,
                                    const void *body, size_t len, uint64_t now_ms)
{
    const char *id, *stamp, *signature;
    size_t id_len, stamp_len, signature_len;
    verify_result r = one_header(header, ctx, STANDARD_ID, &id, &id_len);
    if (r == VERIFY_OK)
        r = one_header(header, ctx, STANDARD_TIMESTAMP, &stamp, &stamp_len);
    if (r == VERIFY_OK)
        r = one_header(header, ctx, STANDARD_SIGNATURE, &signature, &signature_len);
    if (r != VERIFY_OK)
        return r;
    verify_signatures sigs;
    int64_t timestamp;
    if (!verify_header_webhook_id(id, id_len) ||
        !verify_header_timestamp(stamp, stamp_len, &timestamp) ||
        !verify_header_standard(signature, signature_len, &sigs))
        return VERIFY_MALFORMED;
    if (!fresh(timestamp, now_ms))
        return VERIFY_STALE;
    char prefix[VERIFY_ID_MAX + 32];
    int n = snprintf(prefix, sizeof prefix, "%.*s.%" PRId64 ".", (int)id_len, id, timestamp);
    return match_any(rule, &sigs, prefix, (size_t)n, body, len);
}

verify_result verify_check(const verify_rule *rule, verify_header_fn header, void *ctx,
                           const void *body, size_t len, uint64_t now_ms)
{
    switch (rule->scheme) {
    case VERIFY_GITHUB:
        return check_github(rule, header, ctx, body, len);
    case VERIFY_STRIPE:
        return check_stripe(rule, header, ctx, body, len, now_ms);
    case VERIFY_STANDARD:
        return check_standard(rule, header, ctx, body, len, now_ms);
    }
    return VERIFY_MALFORMED;
}

const char *verify_result_text(verify_result result)
{
    switch (result) {
    case VERIFY_OK:
        return "the signature is good";
    case VERIFY_MISSING:
        return "a signature header is missing";
    case VERIFY_MALFORMED:
        return "a signature header is malformed or repeated";
    case VERIFY_STALE:
        return "the signed timestamp is more than 5 minutes from the server's clock";
    case VERIFY_MISMATCH:
        return "no secret makes that signature";
    }
    return "?";
}
