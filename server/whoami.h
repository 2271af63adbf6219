/* whoami.h - GET /whoami: what the token presented may do, as JSON:
 *   {"auth": true, "line": N, "scopes": ["send:jobs*", "metrics"]}
 * (line: where the --auth-file gives the token), or {"auth": false}
 * when the server runs without --auth-file. It needs a valid token (auth.h)
 * but no particular scope. */
#ifndef HOPPER_SERVER_WHOAMI_H
#define HOPPER_SERVER_WHOAMI_H

#include "request.h"

extern const request_handler whoami_handler;

#endif
