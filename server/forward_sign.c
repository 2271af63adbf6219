/* forward_sign.c - Standard Webhooks signatures (see forward_sign.h). */
#include "forward_sign.h"

#include <errno.h>
#include <nettle/base64.h>
#include <nettle/hmac.h>
#include <stdio.h>
#include <string.h>

#define SECRET_PREFIX "whsec_"

/* Decode base64 text[0..len) into out (at most FORWARD_SIGN_KEY_MAX).
 * Returns the bytes, or 0 if it is not base64 or too long. */
static size_t decode_base64(const char *text, size_t len, unsigned char *out)
{
    if (BASE64_DECODE_LENGTH(len) > FORWARD_SIGN_KEY_MAX)
        return 0;
    struct base64_decode_ctx ctx;
    base64_decode_init(&ctx);
    size_t n = FORWARD_SIGN_KEY_MAX;
    if (!base64_decode_update(&ctx, &n, out, len, text) || !base64_decode_final(&ctx))
        return 0;
    return n;
}

bool forward_signer_parse(const char *text, size_t len, forward_signer *out, const char **why)
{
    size_t prefix = strlen(SECRET_PREFIX);
    if (len == 0) {
        *why = "the key is empty";
        return false;
    }
    if (len > prefix && memcmp(text, SECRET_PREFIX, prefix) == 0) {
        out->key_len = decode_base64(text + prefix, len - prefix, out->key);
        *why = "what follows whsec_ is not base64";
        return out->key_len > 0;
    }
    if (len > FORWARD_SIGN_KEY_MAX) {
        *why = "the key is longer than " FORWARD_SIGN_KEY_MAX_TEXT " bytes";
        return false;
    }
    memcpy(out->key, text, len);
    out->key_len = len;
    return true;
}

bool forward_signer_load(const char *path, forward_signer *out, char *why, size_t why_size)
{
    char text[2 * FORWARD_SIGN_KEY_MAX + 16];
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        snprintf(why, why_size, "cannot read %s: %s", path, strerror(errno));
        return false;
    }
    size_t len = fread(text, 1, sizeof text, f);
    bool too_long = len == sizeof text;
    fclose(f);
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        len--;
    if (too_long) {
        snprintf(why, why_size, "%s: the key is too long", path);
        return false;
    }
    const char *wrong;
    if (!forward_signer_parse(text, len, out, &wrong)) {
        snprintf(why, why_size, "%s: %s", path, wrong);
        return false;
    }
    return true;
}

void forward_signer_digest(const forward_signer *s, const char *prefix, size_t prefix_len,
                           const void *body, size_t len, unsigned char digest[FORWARD_DIGEST_SIZE])
{
    struct hmac_sha256_ctx ctx;
    hmac_sha256_set_key(&ctx, s->key_len, s->key);
    hmac_sha256_update(&ctx, prefix_len, (const uint8_t *)prefix);
    hmac_sha256_update(&ctx, len, body);
    hmac_sha256_digest(&ctx, FORWARD_DIGEST_SIZE, digest);
}

void forward_sign(const forward_signer *s, const char *id, long long timestamp, const void *body,
                  size_t len, char out[FORWARD_SIGNATURE_SIZE])
{
    char prefix[FORWARD_ID_MAX + 32];
    int n = snprintf(prefix, sizeof prefix, "%s.%lld.", id, timestamp);
    uint8_t digest[FORWARD_DIGEST_SIZE];
    forward_signer_digest(s, prefix, (size_t)n, body, len, digest);
    memcpy(out, "v1,", 3);
    base64_encode_raw(out + 3, sizeof digest, digest);
    out[3 + BASE64_ENCODE_RAW_LENGTH(sizeof digest)] = '\0';
}
