/* info.h - the paths that describe the server, GET or HEAD:
 *   /healthz  "ok" while the server runs (liveness)
 *   /readyz   200 while it takes messages; 503 with the reason while it
 *             stops or the disk budget or file system is full (readiness)
 *   /status   JSON: limits and every channel's numbers (status.h)
 *   /metrics  the same in the Prometheus text format
 *   /channels JSON: one summary per channel, ?prefix= filtering by name */
#ifndef HOPPER_SERVER_INFO_H
#define HOPPER_SERVER_INFO_H

#include "request.h"

extern const request_handler healthz_handler;
extern const request_handler readyz_handler;
extern const request_handler status_handler;
extern const request_handler metrics_handler;
extern const request_handler list_handler;

#endif
