/* info.c - /healthz, /status and /metrics (see info.h). */
#include "info.h"

#include "respond.h"
#include "status.h"

#include <string.h>

static enum MHD_Result healthz_finish(request *req, struct MHD_Connection *conn)
{
    return respond_static(req, conn, MHD_HTTP_OK, "text/plain", "ok");
}

static enum MHD_Result status_finish(request *req, struct MHD_Connection *conn)
{
    char *text = status_json();
    return respond_owned(req, conn, "application/json", text, text ? strlen(text) : 0);
}

static enum MHD_Result metrics_finish(request *req, struct MHD_Connection *conn)
{
    size_t len = 0;
    char *text = status_metrics(&len);
    return respond_owned(req, conn, STATUS_METRICS_CONTENT_TYPE, text, len);
}

const request_handler healthz_handler = {.finish = healthz_finish};
const request_handler status_handler = {.finish = status_finish};
const request_handler metrics_handler = {.finish = metrics_finish};
