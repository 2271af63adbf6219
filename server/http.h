/* http.h - the HTTP face of hopper: the MHD daemon, started and stopped.
 * Its requests are dispatch.c's (request.h: phases; route.h: paths). */
#ifndef HOPPER_SERVER_HTTP_H
#define HOPPER_SERVER_HTTP_H

#include "options.h"
#include "tls.h"

#include <stdbool.h>

/* Start listening as o says (o is copied) and log "serving SCHEME:
 * listening on ADDR:PORT" with the real port: https with tls (borrowed
 * until http_stop(); tls_load() checked it), plain http with NULL. False
 * (logged) if the daemon cannot start. */
bool http_start(const server_options *o, const tls_files *tls);

/* Graceful stop, in steps (main.c runs them in this order):
 * quiesce: new connections are closed at once; responses from now on
 *          close theirs.
 * drain: wait up to timeout_ms for requests in progress to finish.
 * stop: close all connections and stop the daemon. */
void http_quiesce(void);
void http_drain(unsigned timeout_ms);
void http_stop(void);

#endif
