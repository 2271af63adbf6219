/* dispatch.h - one request's way through its phases (request.h): made when
 * MHD reads its request line, each call of the access handler handed to
 * the handler of its phase and route, and its end. http.c's MHD callbacks
 * are its only callers. */
#ifndef HOPPER_SERVER_DISPATCH_H
#define HOPPER_SERVER_DISPATCH_H

#include "request.h"

#include <microhttpd.h>
#include <stddef.h>

/* A new request for target (the raw request-target, copied), reading
 * server (borrowed: it must outlive the request). NULL if out of memory.
 * Room for the base request only: dispatch_step() grows it to its route's
 * request once routed. */
request *dispatch_new(const server_context *server, const char *target);

/* One call of MHD's access handler for *reqp (method, upload_data and
 * *upload_data_size as MHD passes them; the body consumed or dropped sets
 * *upload_data_size to 0). The first call (headers) may move the request
 * as it grows it for its route: *reqp is then the new address, which MHD
 * must hand back from then on. Returns what the access handler returns. */
enum MHD_Result dispatch_step(request **reqp, struct MHD_Connection *conn, const char *method,
                              const char *upload_data, size_t *upload_data_size);

/* MHD's completion callback for req (toe: how the request ended): the
 * route's handler frees what req holds and settles its messages, then req
 * is freed. */
void dispatch_end(request *req, enum MHD_RequestTerminationCode toe);

#endif
