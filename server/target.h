/* target.h - what the server reads of a request-target itself, as pure
 * functions over the raw bytes (no MHD, no allocation but where said), so
 * that they can be tested and fuzzed on their own: the percent-decoding of
 * the path, the channel name of /channels/NAME[/...], and the whole-number
 * query values such as ?max=. MHD splits the query and decodes its values;
 * the seconds of ?wait= and ?lease= are options_parse_seconds(). */
#ifndef HOPPER_SERVER_TARGET_H
#define HOPPER_SERVER_TARGET_H

#include "hopper/hopper.h"

#include <stdbool.h>
#include <stddef.h>

/* The path of target (NUL-terminated, up to its first '?'), percent-decoded;
 * a '%' not followed by two hex digits stays as it is. New (free() it);
 * NULL if out of memory. OUT: *len (the result may hold NUL bytes). */
char *target_decode_path(const char *target, size_t *len);

/* The channel name of rest[0..rest_len), what follows "/channels/" in the
 * raw request-target up to '?': its first raw segment (up to '/'),
 * percent-decoded on its own, so that a decoded %2F cannot make a segment.
 * True if the decoded name is a valid channel name: no NUL, at most
 * HOP_NAME_MAX bytes, and hop_name_valid(). rest is borrowed.
 * OUT: *segment_len, the raw length of that segment (always: the rest of
 * the path begins there); out, the NUL-terminated name, only when true. */
bool target_channel_name(const char *rest, size_t rest_len, char out[HOP_NAME_MAX + 1],
                         size_t *segment_len);

/* Parse value (NUL-terminated, as MHD decoded it) as a whole number from
 * 1 to max: decimal digits only, no sign, no blanks. OUT: *n when true. */
bool target_parse_count(const char *value, size_t max, size_t *n);

#endif
