/* respond.h - queuing the responses of requests: fixed text, text made for
 * the request, 204, and the JSON errors of errors.h. Once the server is
 * stopping, every response closes its connection.
 *
 * Each returns what the access handler is to return: MHD_NO (drop the
 * connection) when the response cannot be made or queued. */
#ifndef HOPPER_SERVER_RESPOND_H
#define HOPPER_SERVER_RESPOND_H

#include "request.h"

#include <jansson.h>
#include <microhttpd.h>
#include <stddef.h>

/* Queue response (taken: destroyed here; NULL means out of memory) with
 * status on conn. */
enum MHD_Result respond_queue(const request *req, struct MHD_Connection *conn, unsigned int status,
                              struct MHD_Response *response);

/* status with text (static, borrowed for as long as MHD needs it) and
 * content_type (NULL: none). */
enum MHD_Result respond_static(const request *req, struct MHD_Connection *conn, unsigned int status,
                               const char *content_type, const char *text);

/* 200 with text[0..len) (malloc'ed, taken) and content_type. text NULL
 * means it could not be made: 503 out of memory. */
enum MHD_Result respond_owned(const request *req, struct MHD_Connection *conn,
                              const char *content_type, char *text, size_t len);

/* 200 with doc (taken: released here; NULL means out of memory) as compact
 * JSON: the small answers of the channel actions. */
enum MHD_Result respond_json(const request *req, struct MHD_Connection *conn, json_t *doc);

/* 204 No Content. */
enum MHD_Result respond_no_content(const request *req, struct MHD_Connection *conn);

/* The JSON error err, with req->message when req->error is err and it has
 * one; a 405 names req's Allow header; a 401 its WWW-Authenticate;
 * API_BAD_FRAMING closes the connection. */
enum MHD_Result respond_error(const request *req, struct MHD_Connection *conn, api_error err);

#endif
