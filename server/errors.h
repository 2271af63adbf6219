/* errors.h - the server's error vocabulary: ONE table that gives every error
 * the client can see its HTTP status, its JSON code and a default message,
 * and says which core hop_err it stands for. Error bodies are always
 * {"error": "<code>", "message": "<text>"} (the 507 of a POST is the one
 * exception: it returns the caller's payload, see http.c). */
#ifndef HOPPER_SERVER_ERRORS_H
#define HOPPER_SERVER_ERRORS_H

#include "hopper/hopper.h"

#include <microhttpd.h>

/* X(id, hop_err it stands for or NO_HOP_ERR, HTTP status, code, default message) */
#define NO_HOP_ERR (-1)
#define API_ERRORS(X)                                                                              \
    X(BAD_NAME, NO_HOP_ERR, 400, "bad_name",                                                       \
      "a channel name is 1 to 128 characters of [A-Za-z0-9._-], not \".\" or \"..\"")              \
    X(BAD_FRAMING, NO_HOP_ERR, 400, "bad_request",                                                 \
      "the request's length is ambiguous (repeated Content-Length, Content-Length with "           \
      "Transfer-Encoding, a Transfer-Encoding other than chunked, or a header name with "          \
      "spaces): the connection is closed")                                                         \
    X(BAD_WAIT, NO_HOP_ERR, 400, "bad_wait",                                                       \
      "wait must be a number of seconds from 0 to the server's --max-wait")                        \
    X(BAD_CONTENT_TYPE, NO_HOP_ERR, 400, "bad_content_type",                                       \
      "the Content-Type header is longer than 1024 bytes")                                         \
    X(TOO_MANY_HEADERS, NO_HOP_ERR, 400, "too_many_headers",                                       \
      "the request has more headers to keep than a message can store")                             \
    X(INVALID, HOP_INVALID, 500, "internal", "the server rejected its own request to the core")    \
    X(NOT_FOUND, NO_HOP_ERR, 404, "not_found", "no such path")                                     \
    X(NO_CHANNEL, NO_HOP_ERR, 404, "no_channel", "no channel of that name exists")                 \
    X(BAD_PREFIX, NO_HOP_ERR, 400, "bad_prefix",                                                   \
      "prefix must be at most 128 characters of [A-Za-z0-9._-]")                                   \
    X(BAD_MAX, NO_HOP_ERR, 400, "bad_max", "max must be a whole number from 1 to 1000")            \
    X(BAD_BATCH, NO_HOP_ERR, 400, "bad_batch", "the multipart/mixed body is malformed")            \
    X(BAD_TTL, NO_HOP_ERR, 400, "bad_ttl",                                                         \
      "ttl must be a number of seconds above 0 and at most 315360000")                             \
    X(BAD_LEASE, NO_HOP_ERR, 400, "bad_lease",                                                     \
      "lease must be a number of seconds from 1 to the server's --max-lease")                      \
    X(BAD_DELAY, NO_HOP_ERR, 400, "bad_delay",                                                     \
      "delay (or Hopper-Delay) must be a number of seconds from 0 to the server's --max-delay, "   \
      "the same in both when both are given")                                                      \
    X(UNKNOWN_RECEIPT, NO_HOP_ERR, 404, "unknown_receipt",                                         \
      "no lease of this channel has that receipt")                                                 \
    X(LEASE_ENDED, NO_HOP_ERR, 410, "lease_ended",                                                 \
      "the lease ended: acknowledged, released, or expired (the message was given back)")          \
    X(FORWARDED, NO_HOP_ERR, 409, "forwarded",                                                     \
      "this channel is forwarded to a URL (--forward): read NAME.dead instead")                    \
    X(DELETE_FORWARDED, NO_HOP_ERR, 409, "forwarded",                                              \
      "this channel is forwarded to a URL (--forward): it cannot be deleted while the server "     \
      "forwards it")                                                                               \
    X(BAD_KEY, NO_HOP_ERR, 400, "bad_idempotency_key",                                             \
      "an Idempotency-Key (or --dedup-header) is 1 to 256 bytes")                                  \
    X(DUPLICATE_PENDING, NO_HOP_ERR, 409, "duplicate_pending",                                     \
      "a POST with the same key is being stored: try again to learn its outcome")                  \
    X(BAD_SIGNATURE, NO_HOP_ERR, 401, "bad_signature",                                             \
      "the webhook signature (--verify) is missing, malformed, stale or wrong")                    \
    X(METHOD_NOT_ALLOWED, NO_HOP_ERR, 405, "method_not_allowed",                                   \
      "this path does not support that method")                                                    \
    X(UNAUTHORIZED, NO_HOP_ERR, 401, "unauthorized",                                               \
      "this request needs a token: Authorization: Bearer TOKEN (see --auth-file)")                 \
    X(INVALID_TOKEN, NO_HOP_ERR, 401, "invalid_token",                                             \
      "the bearer token is not one of the server's --auth-file")                                   \
    X(FORBIDDEN, NO_HOP_ERR, 403, "forbidden", "this token's scopes do not allow this request")    \
    X(TOO_BIG, HOP_TOO_BIG, 413, "too_big", "the message is larger than --max-message-bytes")      \
    X(FULL, HOP_FULL, 507, "full", "the channel's memory and disk files are full")                 \
    X(STORAGE_FULL, HOP_NOSPACE, 507, "storage_full",                                              \
      "the server's --disk-limit is used up, or the file system is full: the message could not "   \
      "be stored")                                                                                 \
    X(IO, HOP_IO, 500, "io_error", "an input/output error occurred; see the server log")           \
    X(NOMEM, HOP_NOMEM, 503, "out_of_memory", "the server is out of memory")                       \
    X(CLOSED, HOP_CLOSED, 503, "shutting_down", "the server is shutting down")                     \
    X(LEASE_LIMIT, NO_HOP_ERR, 503, "lease_limit",                                                 \
      "the channel's leased messages fill --memory-bytes: acknowledge or release some first")      \
    X(TOO_MANY_CHANNELS, NO_HOP_ERR, 503, "too_many_channels",                                     \
      "creating this channel would exceed --max-channels")                                         \
    X(INTERNAL, NO_HOP_ERR, 500, "internal", "unexpected internal error")

typedef enum api_error {
    API_OK = 0,
#define API__ERROR_ENUM(id, hop, status, code, message) API_##id,
    API_ERRORS(API__ERROR_ENUM)
#undef API__ERROR_ENUM
} api_error;

/* The api_error a core error stands for: API_OK for HOP_OK, API_INTERNAL for
 * errors the table does not list (HOP_TIMEOUT is not an error to clients). */
api_error api_error_of_hop(hop_err err);

/* The api_error of a send that returned err with errno err_no: HOP_NOSPACE
 * (the disk budget is used up) and HOP_IO because the file system is full
 * (ENOSPC, EDQUOT) are API_STORAGE_FULL, a 507 the client may retry; any
 * other I/O error stays API_IO. */
api_error api_error_of_send(hop_err err, int err_no);

unsigned int api_error_status(api_error err);
/* The JSON code, e.g. "bad_name" (static string). */
const char *api_error_code(api_error err);

/* Build the JSON error response for err. message NULL means the table's
 * default text. NULL if out of memory. The caller queues and destroys it. */
struct MHD_Response *api_error_response(api_error err, const char *message);

#endif
