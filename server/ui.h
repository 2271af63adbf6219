/* ui.h - the dashboard (issue 19), public like /healthz: GET or HEAD
 *   /             the page (server/ui/index.html)
 *   /ui/NAME      its script and style sheet; another NAME is 404 not_found
 * Built into the binary (ui_assets.h); each answer has Cache-Control:
 * no-cache, an ETag (If-None-Match: 304), X-Content-Type-Options: nosniff
 * and a Content-Security-Policy that lets the page load nothing but its
 * own files and call nothing but this server. The page holds no data: it
 * reads /status and the channel routes like any client. */
#ifndef HOPPER_SERVER_UI_H
#define HOPPER_SERVER_UI_H

#include "request.h"

extern const request_handler ui_handler;

#endif
