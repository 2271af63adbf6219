/* timestamp.h - a UTC time as RFC 3339 text with milliseconds, e.g.
 * "2026-12-03T17:05:09.123Z": the one format of log lines,
 * Hopper-Received-At and Hopper-Dead-Reason. */
#ifndef HOPPER_SERVER_TIMESTAMP_H
#define HOPPER_SERVER_TIMESTAMP_H

#include <stdint.h>

#define TIMESTAMP_TEXT_SIZE 32

/* The text of ms (milliseconds since the epoch). OUT: out. */
void timestamp_text(uint64_t ms, char out[TIMESTAMP_TEXT_SIZE]);

#endif
