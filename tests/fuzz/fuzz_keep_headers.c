/* fuzz_keep_headers.c - libFuzzer harness of the --keep-headers list
 * (server/keep_headers.c) and of the match of request header names
 * against it.
 *
 * Input: the list up to the first '\n' (cut at a NUL, as argv is), then
 * header names, one per line, to match. Checked:
 *   - a parsed list has at most KEEP_HEADERS_MAX_ITEMS items, each a
 *     non-empty slice of the list without blanks at either end, whose
 *     prefix flag says whether it ends in '*', with no other '*';
 *   - a refused list comes with a NUL-terminated reason;
 *   - whatever the list, no hop-by-hop or framing header and no Hopper-*
 *     header ever matches, and each plain item matches its own name. */
#include "fuzz_text.h"
#include "keep_headers.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_keep_headers: %s\n", what);
    abort();
}

static const char *const never[] = {
    "Connection",
    "keep-alive",
    "Transfer-Encoding",
    "TE",
    "Trailer",
    "Upgrade",
    "Content-Length",
    "host",
    "Expect",
    "Proxy-Authorization",
    "proxy-x",
    "Hopper-Error",
    "hopper-receipt",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_text(data, size);
    if (text == NULL)
        return 0;
    char *names = strchr(text, '\n');
    if (names)
        *names++ = '\0';
    size_t list_len = strlen(text);

    static keep_headers k;
    char why[128];
    memset(why, 'x', sizeof why);
    if (!keep_headers_parse(text, &k, why, sizeof why)) {
        if (memchr(why, '\0', sizeof why) == NULL)
            fail("a refusal without a NUL-terminated reason");
        free(text);
        return 0;
    }
    if (k.count > KEEP_HEADERS_MAX_ITEMS)
        fail("too many items");
    for (size_t i = 0; i < k.count; i++) {
        const keep_headers_item *it = &k.items[i];
        if (it->len == 0 || it->text < text || it->text + it->len > text + list_len)
            fail("an item outside the list");
        if (it->text[0] == ' ' || it->text[0] == '\t' || it->text[it->len - 1] == ' ' ||
            it->text[it->len - 1] == '\t')
            fail("an item with blanks around it");
        if (it->prefix != (it->text[it->len - 1] == '*'))
            fail("prefix does not say whether the item ends in '*'");
        if (memchr(it->text, '*', it->len - it->prefix) != NULL)
            fail("a '*' inside an item");
        if (!it->prefix && !keep_headers_match(&k, it->text, it->len))
            fail("an item does not match its own name");
    }
    for (size_t i = 0; i < sizeof never / sizeof never[0]; i++)
        if (keep_headers_match(&k, never[i], strlen(never[i])))
            fail("a header that must never be kept matched");
    while (names && *names) {
        char *end = strchr(names, '\n');
        size_t len = end ? (size_t)(end - names) : strlen(names);
        keep_headers_match(&k, names, len);
        names = end ? end + 1 : NULL;
    }
    free(text);
    return 0;
}
