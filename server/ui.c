/* ui.c - the dashboard's files, served from the binary (see ui.h). */
#include "ui.h"

#include "respond.h"
#include "target.h"
#include "ui_assets.h"

#include <stdlib.h>
#include <string.h>

/* Nothing but this server's own files and calls: the page renders data
 * with textContent, and this is the second line of defence. */
#define UI_CSP                                                                                     \
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "                \
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

/* The asset of target's path (the query ignored); NULL if none. */
static const ui_asset *asset_of(const char *target)
{
    size_t len;
    char *path = target_decode_path(target, &len);
    const ui_asset *found = NULL;
    for (size_t i = 0; path && i < ui_asset_count && !found; i++)
        if (len == strlen(ui_assets[i].path) && memcmp(path, ui_assets[i].path, len) == 0)
            found = &ui_assets[i];
    free(path);
    return found;
}

static void ui_begin(request *req, struct MHD_Connection *conn)
{
    (void)conn;
    if (asset_of(req->target) == NULL)
        request_fail(req, API_NOT_FOUND, NULL);
}

/* The headers every answer of an asset has, 200 or 304. */
static void add_headers(struct MHD_Response *r, const ui_asset *a)
{
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, a->etag);
    MHD_add_response_header(r, "Content-Security-Policy", UI_CSP);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
}

/* 304 when the client's copy is current (If-None-Match names the ETag or
 * is "*"), else 200 with the file. */
static enum MHD_Result ui_finish(request *req, struct MHD_Connection *conn)
{
    const ui_asset *a = asset_of(req->target); /* not NULL: ui_begin() checked */
    if (a == NULL)
        return respond_error(req, conn, API_NOT_FOUND);
    const char *match =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
    bool current = match && (strcmp(match, "*") == 0 || strstr(match, a->etag) != NULL);
    struct MHD_Response *r =
        current ? MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT)
                : MHD_create_response_from_buffer(a->size, (void *)a->data, MHD_RESPMEM_PERSISTENT);
    if (r == NULL)
        return MHD_NO;
    add_headers(r, a);
    if (!current)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, a->content_type);
    return respond_queue(req, conn, current ? MHD_HTTP_NOT_MODIFIED : MHD_HTTP_OK, r);
}

const request_handler ui_handler = {.begin = ui_begin, .finish = ui_finish};
