/* verify_header.c - parsing the signature headers of webhook senders (see
 * verify_header.h). Every function reads value[0..len) and nothing past
 * it: the value need not be NUL-terminated. */
#include "verify_header.h"

#include "hex.h"

#include <nettle/base64.h>
#include <string.h>

#define GITHUB_PREFIX "sha256="
#define TIMESTAMP_DIGITS_MAX 18 /* below INT64_MAX, whatever the digits */
/* The padded base64 of VERIFY_DIGEST_SIZE bytes. */
#define DIGEST_BASE64_LEN 44

bool verify_header_github(const char *value, size_t len, unsigned char digest[VERIFY_DIGEST_SIZE])
{
    size_t prefix = strlen(GITHUB_PREFIX);
    if (len != prefix + 2 * VERIFY_DIGEST_SIZE || memcmp(value, GITHUB_PREFIX, prefix) != 0)
        return false;
    return hex_decode(value + prefix, VERIFY_DIGEST_SIZE, digest);
}

bool verify_header_timestamp(const char *value, size_t len, int64_t *seconds)
{
    if (len == 0 || len > TIMESTAMP_DIGITS_MAX)
        return false;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (value[i] < '0' || value[i] > '9')
            return false;
        v = v * 10 + (value[i] - '0');
    }
    *seconds = v;
    return true;
}

bool verify_header_webhook_id(const char *value, size_t len)
{
    if (len == 0 || len > VERIFY_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)value[i] < 0x21 || (unsigned char)value[i] > 0x7e)
            return false;
    return true;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* One Stripe item text[0..len), blanks trimmed: t=, v1= or another key. */
static bool stripe_item(const char *text, size_t len, verify_signatures *out, bool *have_t)
{
    while (len > 0 && is_blank(text[0])) {
        text++;
        len--;
    }
    while (len > 0 && is_blank(text[len - 1]))
        len--;
    const char *eq = memchr(text, '=', len);
    if (eq == NULL || eq == text)
        return false;
    size_t key = (size_t)(eq - text), rest = len - key - 1;
    if (key == 1 && text[0] == 't') {
        if (*have_t)
            return false; /* which one was signed? */
        *have_t = true;
        return verify_header_timestamp(eq + 1, rest, &out->timestamp);
    }
    if (key == 2 && memcmp(text, "v1", 2) == 0) {
        if (rest != 2 * VERIFY_DIGEST_SIZE || out->count == VERIFY_SIGNATURES_MAX)
            return false;
        return hex_decode(eq + 1, VERIFY_DIGEST_SIZE, out->digests[out->count++]);
    }
    return true; /* v0 and keys to come */
}

bool verify_header_stripe(const char *value, size_t len, verify_signatures *out)
{
    bool have_t = false;
    out->count = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && value[i] != ',')
            continue;
        if (!stripe_item(value + start, i - start, out, &have_t))
            return false;
        start = i + 1;
    }
    return have_t && out->count > 0;
}

/* One v1 signature: the padded base64 of VERIFY_DIGEST_SIZE bytes. nettle
 * decodes leniently (it skips blanks, and takes unpadded input), so the
 * length and alphabet are checked here first. */
static bool decode_digest(const char *text, size_t len, unsigned char *digest)
{
    if (len != DIGEST_BASE64_LEN || text[len - 1] != '=' || text[len - 2] == '=')
        return false;
    for (size_t i = 0; i + 1 < len; i++) {
        char c = text[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '+' || c == '/';
        if (!ok)
            return false;
    }
    struct base64_decode_ctx ctx;
    base64_decode_init(&ctx);
    size_t n = VERIFY_DIGEST_SIZE;
    uint8_t room[VERIFY_DIGEST_SIZE + 2]; /* what the decoder may write */
    if (!base64_decode_update(&ctx, &n, room, len, text) || !base64_decode_final(&ctx) ||
        n != VERIFY_DIGEST_SIZE)
        return false;
    memcpy(digest, room, VERIFY_DIGEST_SIZE);
    return true;
}

/* One entry text[0..len) of webhook-signature. */
static bool standard_entry(const char *text, size_t len, verify_signatures *out)
{
    const char *comma = memchr(text, ',', len);
    if (comma == NULL || comma == text)
        return false;
    size_t version = (size_t)(comma - text), rest = len - version - 1;
    if (version != 2 || memcmp(text, "v1", 2) != 0)
        return true; /* v1a and versions to come */
    if (out->count == VERIFY_SIGNATURES_MAX)
        return false;
    return decode_digest(comma + 1, rest, out->digests[out->count++]);
}

bool verify_header_standard(const char *value, size_t len, verify_signatures *out)
{
    out->count = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && value[i] != ' ')
            continue;
        if (i > start && !standard_entry(value + start, i - start, out))
            return false;
        start = i + 1;
    }
    return out->count > 0;
}
