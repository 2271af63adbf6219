/* query.h - the query arguments requests read: ?wait= and ?max= of a GET,
 * ?lease= of a GET and of an extend, ?prefix= of GET /channels, ?delay= of a POST and a release,
 * ?ttl= of a POST (or their headers). Each reads one argument as MHD decoded it and checks it
 * against the server's options; a bad value refuses the request (request_fail) with its error of
 * errors.h. An argument without a value ("?wait") or with a decoded NUL is bad. */
#ifndef HOPPER_SERVER_QUERY_H
#define HOPPER_SERVER_QUERY_H

#include "request.h"

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ?wait=SECONDS, 0 to --max-wait; when absent QUERY_DEFAULT_WAIT_SECONDS
 * (held to --max-wait). OUT: *ms. False, req failed (API_BAD_WAIT), if bad. */
#define QUERY_DEFAULT_WAIT_SECONDS 30.0
bool query_wait(request *req, struct MHD_Connection *conn, uint64_t *ms);

/* ?max=N, 1 to limit (DELIVERY_MAX_BATCH for a GET or a peek). OUT: *max,
 * 0 when absent. False, req failed (API_BAD_MAX), if bad. */
bool query_max(request *req, struct MHD_Connection *conn, size_t limit, size_t *max);

/* ?lease=SECONDS, above 0 and at most --max-lease. OUT: *ms, 0 when
 * absent. False, req failed (API_BAD_LEASE), if bad. */
bool query_lease(request *req, struct MHD_Connection *conn, uint64_t *ms);

/* The same, for a request that must have it: absent is bad too. */
bool query_lease_required(request *req, struct MHD_Connection *conn, uint64_t *ms);
/* ?delay=SECONDS or the header Hopper-Delay: SECONDS (the same value when
 * both), 0 to --max-delay, of a POST or a release. OUT: *ms, 0 when
 * absent. False, req failed (API_BAD_DELAY), if bad. */
#define QUERY_DELAY_HEADER "Hopper-Delay"
bool query_delay(request *req, struct MHD_Connection *conn, uint64_t *ms);

/* ?ttl=SECONDS or the header Hopper-TTL: SECONDS (expiry.h), above 0 and
 * at most EXPIRY_MAX_SECONDS; both may be given if they say the same.
 * OUT: *ms, 0 when neither is given. False, req failed (API_BAD_TTL), if
 * one is bad or they differ. */
bool query_ttl(request *req, struct MHD_Connection *conn, uint64_t *ms);

/* ?prefix=P of GET /channels: at most HOP_NAME_MAX characters of the
 * alphabet of channel names ([A-Za-z0-9._-]), "" allowed. OUT: *prefix,
 * borrowed from MHD for as long as the request lives; "" when absent.
 * False, req failed (API_BAD_PREFIX), if bad. */
bool query_prefix(request *req, struct MHD_Connection *conn, const char **prefix);

#endif
