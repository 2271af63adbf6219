/* target.c - the request-target parsing the server does itself (see
 * target.h). Every byte of a target is the client's: nothing here trusts a
 * length it did not compute. */
#include "target.h"

#include "hex.h"

#include <stdlib.h>
#include <string.h>

/* Percent-decode in[0..n) into out, which has room for n + 1 bytes; a '%'
 * not followed by two hex digits stays as it is. Returns the decoded
 * length; out[that] is NUL. */
static size_t percent_decode(const char *in, size_t n, char *out)
{
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (in[i] == '%' && i + 2 < n && (hi = hex_digit(in[i + 1])) >= 0 &&
            (lo = hex_digit(in[i + 2])) >= 0) {
            out[j++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[j++] = in[i];
        }
    }
    out[j] = '\0';
    return j;
}

char *target_decode_path(const char *target, size_t *len)
{
    size_t n = strcspn(target, "?");
    char *out = malloc(n + 1);
    if (out == NULL)
        return NULL;
    *len = percent_decode(target, n, out);
    return out;
}

/* Decoding shrinks at most threefold ("%41" -> "A"), so a raw segment
 * longer than this decodes to more than HOP_NAME_MAX bytes. */
#define RAW_NAME_MAX (3 * HOP_NAME_MAX)

bool target_channel_name(const char *rest, size_t rest_len, char out[HOP_NAME_MAX + 1],
                         size_t *segment_len)
{
    const char *slash = memchr(rest, '/', rest_len);
    size_t raw_len = slash ? (size_t)(slash - rest) : rest_len;
    *segment_len = raw_len;
    if (raw_len > RAW_NAME_MAX)
        return false;
    char name[RAW_NAME_MAX + 1];
    size_t name_len = percent_decode(rest, raw_len, name);
    if (name_len > HOP_NAME_MAX || memchr(name, '\0', name_len) != NULL || !hop_name_valid(name))
        return false;
    memcpy(out, name, name_len + 1);
    return true;
}

bool target_parse_count(const char *value, size_t max, size_t *n)
{
    size_t v = 0;
    if (value == NULL || value[0] == '\0')
        return false;
    for (const char *p = value; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        unsigned d = (unsigned)(*p - '0');
        if (d > max || v > (max - d) / 10)
            return false; /* v * 10 + d > max, without overflowing */
        v = v * 10 + d;
    }
    if (v == 0)
        return false;
    *n = v;
    return true;
}
