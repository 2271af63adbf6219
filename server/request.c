/* request.c - what every request does the same way: refuse itself with an
 * error, and find or make its channel (see request.h). */
#include "request.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void request_fail(request *req, api_error err, const char *fmt, ...)
{
    req->phase = REQUEST_REFUSED;
    req->error = err;
    free(req->message);
    req->message = NULL;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&req->message, fmt, ap) < 0)
            req->message = NULL; /* out of memory: the table's message */
        va_end(ap);
    }
}

bool request_open_channel(request *req)
{
    api_error err = registry_get(req->route.name, &req->entry);
    if (err == API_TOO_MANY_CHANNELS)
        request_fail(req, err, "creating channel %s would exceed --max-channels (%zu)",
                     req->route.name, req->server->options.max_channels);
    else if (err != API_OK)
        request_fail(req, err, NULL);
    return err == API_OK;
}

bool request_find_channel(request *req)
{
    if ((req->entry = registry_find(req->route.name)) == NULL)
        request_fail(req, API_NO_CHANNEL, "no channel %s exists", req->route.name);
    return req->entry != NULL;
}
