/* fuzz_name.c - libFuzzer harness of channel names: hop_name_valid()
 * (core/src/name.c), the only guard between a name and the file system,
 * and the server's reading of /channels/NAME[/...] (server/target.c: the
 * first raw segment, percent-decoded on its own).
 *
 * Input: what follows "/channels/" in a request-target, up to '?'. Checked:
 *   - a name hop_name_valid() accepts is 1..HOP_NAME_MAX bytes of
 *     [A-Za-z0-9._-] and not "." or "..";
 *   - a name target_channel_name() accepts passes hop_name_valid(), has no
 *     '/' and no NUL (so no %2F or %00 got through), is not "." or ".."
 *     (nor %2E%2E), and is at most HOP_NAME_MAX bytes; it is exactly the
 *     percent-decoding of the raw segment by an independent decoder here;
 *   - the segment ends at the first '/' of the input, or at its end;
 *   - target_decode_path() stops at '?' and never grows the path. */
#include "fuzz_text.h"
#include "target.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_name: %s\n", what);
    abort();
}

static bool name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

static void check_valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > HOP_NAME_MAX)
        fail("accepted a name of a bad length");
    for (size_t i = 0; i < n; i++)
        if (!name_char((unsigned char)name[i]))
            fail("accepted a name with a character outside [A-Za-z0-9._-]");
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        fail("accepted . or ..");
}

static int hex(unsigned char c)
{
    const char *digits = "0123456789abcdef", *p;
    if (c >= 'A' && c <= 'F')
        c = (unsigned char)(c - 'A' + 'a');
    return c != '\0' && (p = strchr(digits, c)) != NULL ? (int)(p - digits) : -1;
}

/* RFC 3986 percent-decoding of in[0..n), leaving a bad escape as it is.
 * OUT: out (room for n bytes). Returns the decoded length. */
static size_t reference_decode(const uint8_t *in, size_t n, uint8_t *out)
{
    size_t j = 0;
    for (size_t i = 0; i < n;) {
        if (in[i] == '%' && n - i >= 3 && hex(in[i + 1]) >= 0 && hex(in[i + 2]) >= 0) {
            out[j++] = (uint8_t)(hex(in[i + 1]) * 16 + hex(in[i + 2]));
            i += 3;
        } else {
            out[j++] = in[i++];
        }
    }
    return j;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* the input as a C string, as the core gets names */
    char *text = fuzz_text(data, size);
    if (text == NULL)
        return 0;
    if (hop_name_valid(text))
        check_valid_name(text);

    /* the server's path: rest may hold any byte, NUL included */
    char name[HOP_NAME_MAX + 1];
    size_t segment = SIZE_MAX;
    bool ok = target_channel_name((const char *)data, size, name, &segment);
    const uint8_t *slash = memchr(data, '/', size);
    if (segment != (slash ? (size_t)(slash - data) : size))
        fail("the name segment does not end at the first '/'");
    if (ok) {
        check_valid_name(name);
        if (!hop_name_valid(name) || strchr(name, '/') != NULL)
            fail("accepted a name hop_name_valid() refuses");
        uint8_t *decoded = malloc(segment + 1);
        if (decoded == NULL)
            fail("out of memory");
        size_t n = reference_decode(data, segment, decoded);
        if (n != strlen(name) || memcmp(decoded, name, n) != 0)
            fail("the name is not the percent-decoding of its segment");
        free(decoded);
    }

    /* the whole path, up to '?' */
    size_t len = SIZE_MAX;
    char *path = target_decode_path(text, &len);
    if (path) {
        if (len > strcspn(text, "?") || path[len] != '\0')
            fail("target_decode_path grew the path or did not terminate it");
        free(path);
    }
    free(text);
    return 0;
}
