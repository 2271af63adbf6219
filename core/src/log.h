/* log.h - the library's one way to tell its embedder about events. */
#ifndef HOP_LOG_H
#define HOP_LOG_H

#include "hopper/hopper.h"

/* Format and pass a line to the function set by hop_set_log(). channel may
 * be NULL. */
void hop__log(hop_log_level level, const char *channel, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
