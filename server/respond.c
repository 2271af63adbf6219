/* respond.c - the responses every request queues (see respond.h). */
#include "respond.h"

#include <stdlib.h>
#include <string.h>

enum MHD_Result respond_queue(const request *req, struct MHD_Connection *conn, unsigned int status,
                              struct MHD_Response *response)
{
    if (response == NULL)
        return MHD_NO; /* out of memory: drop the connection */
    if (atomic_load(&req->server->stopping))
        MHD_add_response_header(response, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result result = MHD_queue_response(conn, status, response);
    MHD_destroy_response(response);
    return result;
}

enum MHD_Result respond_static(const request *req, struct MHD_Connection *conn, unsigned int status,
                               const char *content_type, const char *text)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
    if (r && content_type)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    return respond_queue(req, conn, status, r);
}

enum MHD_Result respond_owned(const request *req, struct MHD_Connection *conn,
                              const char *content_type, char *text, size_t len)
{
    if (text == NULL)
        return respond_queue(req, conn, api_error_status(API_NOMEM),
                             api_error_response(API_NOMEM, NULL));
    struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    return respond_queue(req, conn, MHD_HTTP_OK, r);
}

enum MHD_Result respond_json(const request *req, struct MHD_Connection *conn, json_t *doc)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    return respond_owned(req, conn, "application/json", text, text ? strlen(text) : 0);
}

enum MHD_Result respond_no_content(const request *req, struct MHD_Connection *conn)
{
    return respond_static(req, conn, MHD_HTTP_NO_CONTENT, NULL, "");
}

enum MHD_Result respond_error(const request *req, struct MHD_Connection *conn, api_error err)
{
    const char *message = req->error == err ? req->message : NULL;
    struct MHD_Response *r = api_error_response(err, message);
    if (r && err == API_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, req->route.allow);
    /* RFC 6750: a 401 says which scheme to use, and whether the token
     * given was refused */
    if (r && err == API_UNAUTHORIZED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (r && err == API_INVALID_TOKEN)
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                "Bearer error=\"invalid_token\"");
    /* after a request whose end is unknown, what follows on the connection
     * cannot be told apart from it: no second request is read there */
    if (r && err == API_BAD_FRAMING)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    return respond_queue(req, conn, api_error_status(err), r);
}
