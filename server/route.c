/* route.c - the routing table of the HTTP API (see route.h). */
#include "route.h"

#include "target.h"

#include <stdlib.h>
#include <string.h>

#define CHANNELS_PREFIX "/channels/"
#define MESSAGES_SEGMENT "/messages/"
#define UI_PREFIX "/ui/"

/* What each method does on one path: its route, or ROUTE_ERROR (0, what
 * designated initializers leave) for a method that is not allowed. */
typedef struct resource {
    route_kind by_method[METHOD_COUNT];
    const char *allow; /* the Allow header of a 405: the methods above */
} resource;

/* The paths that describe the server. */
static const struct {
    const char *path;
    resource methods;
} info_paths[] = {
    {"/healthz", {{[METHOD_GET] = ROUTE_HEALTHZ, [METHOD_HEAD] = ROUTE_HEALTHZ}, "GET, HEAD"}},
    {"/readyz", {{[METHOD_GET] = ROUTE_READYZ, [METHOD_HEAD] = ROUTE_READYZ}, "GET, HEAD"}},
    {"/status", {{[METHOD_GET] = ROUTE_STATUS, [METHOD_HEAD] = ROUTE_STATUS}, "GET, HEAD"}},
    {"/metrics", {{[METHOD_GET] = ROUTE_METRICS, [METHOD_HEAD] = ROUTE_METRICS}, "GET, HEAD"}},
    {"/channels", {{[METHOD_GET] = ROUTE_LIST, [METHOD_HEAD] = ROUTE_LIST}, "GET, HEAD"}},
    {"/", {{[METHOD_GET] = ROUTE_UI, [METHOD_HEAD] = ROUTE_UI}, "GET, HEAD"}},
    {"/whoami", {{[METHOD_GET] = ROUTE_WHOAMI, [METHOD_HEAD] = ROUTE_WHOAMI}, "GET, HEAD"}},
};

/* /ui/ANYTHING: the dashboard's files, which its handler knows. */
static const resource ui_files = {{[METHOD_GET] = ROUTE_UI, [METHOD_HEAD] = ROUTE_UI}, "GET, HEAD"};

/* /channels/NAME */
static const resource channel = {
    {[METHOD_GET] = ROUTE_GET, [METHOD_POST] = ROUTE_POST, [METHOD_DELETE] = ROUTE_DELETE},
    "GET, POST, DELETE"};

/* What may follow /channels/NAME, but /messages/RECEIPT. */
static const struct {
    const char *action;
    resource methods;
} channel_actions[] = {
    {"/pause", {{[METHOD_POST] = ROUTE_PAUSE}, "POST"}},
    {"/resume", {{[METHOD_POST] = ROUTE_RESUME}, "POST"}},
    {"/messages", {{[METHOD_GET] = ROUTE_PEEK, [METHOD_DELETE] = ROUTE_PURGE}, "GET, DELETE"}},
    {"/redrive", {{[METHOD_POST] = ROUTE_REDRIVE}, "POST"}},
};

/* What may follow /channels/NAME/messages/RECEIPT. */
static const struct {
    const char *action;
    resource methods;
} receipt_actions[] = {
    {"", {{[METHOD_DELETE] = ROUTE_ACK}, "DELETE"}},
    {"/extend", {{[METHOD_POST] = ROUTE_EXTEND}, "POST"}},
    {"/release", {{[METHOD_POST] = ROUTE_RELEASE}, "POST"}},
};

route_method route_method_of(const char *method)
{
    static const struct {
        const char *name;
        route_method method;
    } methods[] = {
        {"GET", METHOD_GET},
        {"HEAD", METHOD_HEAD},
        {"POST", METHOD_POST},
        {"DELETE", METHOD_DELETE},
    };
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (strcmp(method, methods[i].name) == 0)
            return methods[i].method;
    return METHOD_OTHER;
}

static bool path_is(const char *path, size_t len, const char *literal)
{
    return len == strlen(literal) && memcmp(path, literal, len) == 0;
}

/* The route of method on r, or a 405 with r's Allow header. */
static void choose(route *out, const resource *r, route_method method)
{
    out->kind = r->by_method[method];
    if (out->kind == ROUTE_ERROR) {
        out->error = API_METHOD_NOT_ALLOWED;
        out->allow = r->allow;
    }
}

/* rest[0..len): what follows /messages/, RECEIPT[/ACTION]. */
static void route_receipt(route *out, const char *rest, size_t len, route_method method)
{
    const char *slash = memchr(rest, '/', len);
    size_t receipt_len = slash ? (size_t)(slash - rest) : len;
    if (receipt_len > LEASE_RECEIPT_LEN) {
        out->error = API_UNKNOWN_RECEIPT;
        return;
    }
    memcpy(out->receipt, rest, receipt_len);
    out->receipt[receipt_len] = '\0';
    const char *action = rest + receipt_len;
    size_t action_len = len - receipt_len;
    for (size_t i = 0; i < sizeof receipt_actions / sizeof receipt_actions[0]; i++) {
        if (path_is(action, action_len, receipt_actions[i].action)) {
            choose(out, &receipt_actions[i].methods, method);
            return;
        }
    }
    /* another action: 404, as set by route_parse() */
}

/* rest[0..len): what follows /channels/ in the raw target, up to '?':
 * NAME, NAME/pause, NAME/resume or NAME/messages/RECEIPT[/ACTION]. */
static void route_channel(route *out, const char *rest, size_t len, route_method method)
{
    size_t segment_len;
    if (!target_channel_name(rest, len, out->name, &segment_len)) {
        out->error = API_BAD_NAME;
        return;
    }
    if (segment_len == len) {
        choose(out, &channel, method);
        return;
    }
    const char *after = rest + segment_len;
    size_t left = len - segment_len, messages = strlen(MESSAGES_SEGMENT);
    for (size_t i = 0; i < sizeof channel_actions / sizeof channel_actions[0]; i++) {
        if (path_is(after, left, channel_actions[i].action)) {
            choose(out, &channel_actions[i].methods, method);
            return;
        }
    }
    if (left <= messages || memcmp(after, MESSAGES_SEGMENT, messages) != 0) {
        out->error = API_BAD_NAME; /* a '/' in the name, as far as a client can tell */
        return;
    }
    route_receipt(out, after + messages, left - messages, method);
}

void route_parse(const char *target, route_method method, route *out)
{
    out->kind = ROUTE_ERROR;
    out->error = API_NOT_FOUND; /* unless a rule below matches */
    out->allow = NULL;
    out->name[0] = '\0';
    out->receipt[0] = '\0';
    size_t len;
    char *path = target_decode_path(target, &len);
    if (path == NULL) {
        out->error = API_NOMEM;
        return;
    }
    for (size_t i = 0; i < sizeof info_paths / sizeof info_paths[0]; i++)
        if (path_is(path, len, info_paths[i].path))
            choose(out, &info_paths[i].methods, method);
    size_t ui_prefix = strlen(UI_PREFIX);
    if (len > ui_prefix && memcmp(path, UI_PREFIX, ui_prefix) == 0)
        choose(out, &ui_files, method);
    /* /channels/ must be there both decoded and raw: the name is read from
     * the raw target */
    size_t prefix = strlen(CHANNELS_PREFIX), raw_len = strcspn(target, "?");
    if (len >= prefix && memcmp(path, CHANNELS_PREFIX, prefix) == 0 && raw_len >= prefix &&
        memcmp(target, CHANNELS_PREFIX, prefix) == 0)
        route_channel(out, target + prefix, raw_len - prefix, method);
    free(path);
}
