/* timestamp.c - RFC 3339 text of a time (see timestamp.h). */
#include "timestamp.h"

#include <stdio.h>
#include <time.h>

void timestamp_text(uint64_t ms, char out[TIMESTAMP_TEXT_SIZE])
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(out, TIMESTAMP_TEXT_SIZE, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, TIMESTAMP_TEXT_SIZE - n, ".%03uZ", (unsigned)(ms % 1000));
}
