/* errors.c - the one table of client-visible errors (see errors.h). */
#include "errors.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

typedef struct api_error_row {
    int hop;
    unsigned int status;
    const char *code;
    const char *message;
} api_error_row;

static const api_error_row rows[] = {[API_OK] = {HOP_OK, 200, "ok", "success"},
#define API__ERROR_ROW(id, hop, status, code, message) [API_##id] = {hop, status, code, message},
                                     API_ERRORS(API__ERROR_ROW)
#undef API__ERROR_ROW
};

#define ROW_COUNT (sizeof rows / sizeof rows[0])

static const api_error_row *row_of(api_error err)
{
    return (size_t)err < ROW_COUNT ? &rows[err] : &rows[API_INTERNAL];
}

api_error api_error_of_hop(hop_err err)
{
    for (size_t i = 0; i < ROW_COUNT; i++) {
        if (rows[i].hop == (int)err)
            return (api_error)i;
    }
    return API_INTERNAL;
}

api_error api_error_of_send(hop_err err, int err_no)
{
    if (err == HOP_NOSPACE || (err == HOP_IO && (err_no == ENOSPC || err_no == EDQUOT)))
        return API_STORAGE_FULL;
    return api_error_of_hop(err);
}

unsigned int api_error_status(api_error err)
{
    return row_of(err)->status;
}

const char *api_error_code(api_error err)
{
    return row_of(err)->code;
}

struct MHD_Response *api_error_response(api_error err, const char *message)
{
    const api_error_row *row = row_of(err);
    json_t *body = json_object();
    if (body == NULL)
        return NULL;
    json_object_set_new(body, "error", json_string(row->code));
    json_object_set_new(body, "message", json_string(message ? message : row->message));
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (text == NULL)
        return NULL;
    /* jansson allocates with malloc (the default), so MHD may free() it */
    struct MHD_Response *response =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (response == NULL) {
        free(text);
        return NULL;
    }
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    return response;
}
