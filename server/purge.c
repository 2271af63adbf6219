/* purge.c - deleting channels (see purge.h). */
#include "purge.h"

#include "forward.h"
#include "graveyard.h"
#include "lease.h"
#include "log.h"
#include "longpoll.h"
#include "respond.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <string.h>

static void delete_begin(request *req, struct MHD_Connection *conn)
{
    (void)conn;
    if (forward_is_forwarded(req->route.name))
        request_fail(req, API_DELETE_FORWARDED, NULL);
    else if ((req->entry = registry_find(req->route.name)) == NULL)
        request_fail(req, API_NO_CHANNEL, NULL); /* a DELETE makes nothing */
}

/* 200 with {"channel": name, "deleted": true, "purged": n}. */
static enum MHD_Result answer_deleted(request *req, struct MHD_Connection *conn, uint64_t n)
{
    json_t *doc = json_object();
    json_object_set_new(doc, "channel", json_string(req->route.name));
    json_object_set_new(doc, "deleted", json_true());
    json_object_set_new(doc, "purged", json_integer((json_int_t)n));
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return respond_owned(req, conn, "application/json", text, text ? strlen(text) : 0);
}

/* The order matters: the rename is the delete (a crash after it loses the
 * channel, before it keeps it whole); the name is free once it is unlisted;
 * then everyone using the channel is turned away (waiting GETs see
 * `deleted` and answer 204); the last of them closes it (registry_put). */
static enum MHD_Result delete_finish(request *req, struct MHD_Connection *conn)
{
    registry_entry *e = req->entry;
    hop_stats st = {0};
    hop_channel_stats(e->ch, &st);
    char *gone = graveyard_bury(req->server->options.data_dir, req->route.name);
    if (gone == NULL) {
        if (errno == ENOENT) /* a DELETE at the same moment won */
            return respond_error(req, conn, API_NO_CHANNEL);
        log_error("channel %s: cannot be deleted: %s", req->route.name, strerror(errno));
        return respond_error(req, conn, API_IO);
    }
    if (!registry_unlist(e, gone))
        return respond_error(req, conn, API_NO_CHANNEL);
    hop_channel_shut(e->ch);
    longpoll_resume(e); /* GETs a pause held back end too: the channel is closed */
    size_t leased = lease_drop_channel(e);
    uint64_t purged = (uint64_t)st.messages + st.delayed + leased;
    log_info("channel %s deleted: %" PRIu64 " message(s) dropped", req->route.name, purged);
    return answer_deleted(req, conn, purged);
}

const request_handler delete_handler = {.begin = delete_begin, .finish = delete_finish};
