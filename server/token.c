/* token.c - "hopper token" (see token.h). The token is printed once and
 * kept nowhere: the server stores its SHA-256 only. */
#include "token.h"

#include "auth_file.h"
#include "hex.h"
#include "random.h"

#include <nettle/base64.h>
#include <stdio.h>
#include <string.h>

/* The scopes printed with a new token: valid, so the line loads as it is,
 * but naming a channel no one uses, so it grants nothing by accident. */
#define TOKEN_SCOPE_HINT                                                                           \
    "send:CHANGE-ME receive:CHANGE-ME  # scopes: send:GLOB receive:GLOB admin:GLOB metrics"

/* bytes in base64url without padding. OUT: text, TOKEN_TEXT_LEN + 1. */
static void encode(const uint8_t bytes[TOKEN_RANDOM_BYTES], char text[TOKEN_TEXT_LEN + 1])
{
    char out[BASE64_ENCODE_LENGTH(TOKEN_RANDOM_BYTES) + BASE64_ENCODE_FINAL_LENGTH];
    struct base64_encode_ctx ctx;
    base64url_encode_init(&ctx);
    size_t n = base64_encode_update(&ctx, out, TOKEN_RANDOM_BYTES, bytes);
    n += base64_encode_final(&ctx, out + n);
    while (n > 0 && out[n - 1] == '=')
        n--;
    memcpy(text, out, n);
    text[n] = '\0';
}

int token_main(int argc, char **argv)
{
    (void)argv;
    if (argc > 2) {
        fputs("hopper: 'hopper token' takes no arguments\nTry 'hopper --help'.\n", stderr);
        return 2;
    }
    uint8_t bytes[TOKEN_RANDOM_BYTES];
    random_bytes(bytes, sizeof bytes);
    char token[TOKEN_TEXT_LEN + 1];
    encode(bytes, token);
    uint8_t digest[AUTH_DIGEST_SIZE];
    auth_digest(token, strlen(token), digest);
    char hex[2 * AUTH_DIGEST_SIZE + 1];
    hex_encode(digest, sizeof digest, hex);
    printf("%s\n%s %s\n", token, hex, TOKEN_SCOPE_HINT);
    return fflush(stdout) == 0 ? 0 : 1;
}
