/* status.h - the server's self-description: GET /status (JSON),
 * GET /channels (JSON, the list of channels) and GET /metrics (Prometheus
 * text format 0.0.4). */
#ifndef HOPPER_SERVER_STATUS_H
#define HOPPER_SERVER_STATUS_H

#include "options.h"

#include <stddef.h>

#define STATUS_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Remember the start time and the limits to report (o is copied). */
void status_init(const server_options *o);

/* The /status document: new, NUL-terminated, release with free(); NULL if
 * out of memory. */
char *status_json(void);

/* The GET /channels document, {"channels": [...]}: one object per channel
 * whose name starts with prefix (borrowed; "" for all), sorted by name,
 * with the channel's summary (the fields /status also gives). New,
 * release with free(); NULL if out of memory. */
char *status_channels_json(const char *prefix);

/* The /metrics text: new, release with free(); NULL if out of memory.
 * OUT: *len. */
char *status_metrics(size_t *len);

#endif
