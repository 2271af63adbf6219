/* info.c - /healthz, /status, /channels and /metrics (see info.h). */
#include "info.h"

#include "budget.h"
#include "query.h"
#include "respond.h"
#include "status.h"

#include <stdatomic.h>
#include <string.h>

static enum MHD_Result healthz_finish(request *req, struct MHD_Connection *conn)
{
    return respond_static(req, conn, MHD_HTTP_OK, "text/plain", "ok");
}

/* 503 while hopper should not be sent messages, with why: it stops, or a
 * send of the largest message could find no room on disk. */
static enum MHD_Result readyz_finish(request *req, struct MHD_Connection *conn)
{
    static const char stopping[] = "{\"ready\":false,\"reason\":\"stopping\"}";
    static const char disk_limit[] = "{\"ready\":false,\"reason\":\"disk_limit\"}";
    static const char file_system[] = "{\"ready\":false,\"reason\":\"file_system\"}";
    const char *text = NULL;
    const char *full = budget_full_reason();
    if (atomic_load(&req->server->stopping))
        text = stopping;
    else if (full)
        text = strcmp(full, "disk_limit") == 0 ? disk_limit : file_system;
    if (text)
        return respond_static(req, conn, MHD_HTTP_SERVICE_UNAVAILABLE, "application/json", text);
    return respond_static(req, conn, MHD_HTTP_OK, "application/json", "{\"ready\":true}");
}

static enum MHD_Result status_finish(request *req, struct MHD_Connection *conn)
{
    char *text = status_json();
    return respond_owned(req, conn, "application/json", text, text ? strlen(text) : 0);
}

/* ?prefix= is checked before the body; the list made at the end. */
static void list_begin(request *req, struct MHD_Connection *conn)
{
    const char *prefix;
    query_prefix(req, conn, &prefix);
}

static enum MHD_Result list_finish(request *req, struct MHD_Connection *conn)
{
    const char *prefix = "";
    query_prefix(req, conn, &prefix); /* valid: list_begin() checked it */
    char *text = status_channels_json(prefix);
    return respond_owned(req, conn, "application/json", text, text ? strlen(text) : 0);
}

static enum MHD_Result metrics_finish(request *req, struct MHD_Connection *conn)
{
    size_t len = 0;
    char *text = status_metrics(&len);
    return respond_owned(req, conn, STATUS_METRICS_CONTENT_TYPE, text, len);
}

const request_handler healthz_handler = {.finish = healthz_finish};
const request_handler readyz_handler = {.finish = readyz_finish};
const request_handler status_handler = {.finish = status_finish};
const request_handler metrics_handler = {.finish = metrics_finish};
const request_handler list_handler = {.begin = list_begin, .finish = list_finish};
