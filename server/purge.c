/* purge.c - purging and deleting channels (see purge.h). */
#include "purge.h"

#include "forward.h"
#include "graveyard.h"
#include "lease.h"
#include "log.h"
#include "longpoll.h"
#include "respond.h"

#include <errno.h>
#include <stdatomic.h>
#include <inttypes.h>
#include <jansson.h>
#include <string.h>

static atomic_uint_fast64_t purges, channels_deleted, messages_purged;

void purge_read_counts(purge_counts *out)
{
    out->purges = atomic_load(&purges);
    out->channels_deleted = atomic_load(&channels_deleted);
    out->messages_purged = atomic_load(&messages_purged);
}

/* The channel of req, which must exist; never made. */
static void find_begin(request *req, struct MHD_Connection *conn)
{
    (void)conn;
    request_find_channel(req);
}

/* Drop everything e's channel holds, leased messages too. OUT: *n, how
 * many. */
static hop_err drop_all(registry_entry *e, uint64_t *n)
{
    uint64_t purged = 0;
    hop_err err = hop_purge(e->ch, &purged);
    purged += lease_drop_channel(e);
    *n = purged;
    atomic_fetch_add(&messages_purged, purged);
    return err;
}

/* 200 with {"channel": name, "purged": n}, and "deleted": true for a
 * DELETE of the channel. */
static enum MHD_Result answer(request *req, struct MHD_Connection *conn, uint64_t n, bool deleted)
{
    json_t *doc = json_object();
    json_object_set_new(doc, "channel", json_string(req->route.name));
    if (deleted)
        json_object_set_new(doc, "deleted", json_true());
    json_object_set_new(doc, "purged", json_integer((json_int_t)n));
    return respond_json(req, conn, doc);
}

static enum MHD_Result purge_finish(request *req, struct MHD_Connection *conn)
{
    uint64_t n;
    hop_err err = drop_all(req->entry, &n);
    atomic_fetch_add(&purges, 1);
    if (err != HOP_OK) {
        log_error("channel %s: purge stopped after %" PRIu64 " message(s): %s", req->route.name, n,
                  err == HOP_IO ? strerror(errno) : hop_strerror(err));
        return respond_error(req, conn, api_error_of_hop(err));
    }
    log_info("channel %s purged: %" PRIu64 " message(s) dropped", req->route.name, n);
    return answer(req, conn, n, false);
}

static void delete_begin(request *req, struct MHD_Connection *conn)
{
    (void)conn;
    if (forward_is_forwarded(req->route.name))
        request_fail(req, API_DELETE_FORWARDED, NULL);
    else
        find_begin(req, conn);
}

/* The order matters: the rename is the delete (a crash after it loses the
 * channel, before it keeps it whole); the name is free once it is unlisted;
 * then everyone using the channel is turned away (waiting GETs see
 * `deleted` and answer 204); the last of them closes it (registry_put). */
static enum MHD_Result delete_finish(request *req, struct MHD_Connection *conn)
{
    registry_entry *e = req->entry;
    char *gone = graveyard_bury(req->server->options.data_dir, req->route.name);
    if (gone == NULL) {
        if (errno == ENOENT) /* a DELETE at the same moment won */
            return respond_error(req, conn, API_NO_CHANNEL);
        log_error("channel %s: cannot be deleted: %s", req->route.name, strerror(errno));
        return respond_error(req, conn, API_IO);
    }
    if (!registry_unlist(e, gone))
        return respond_error(req, conn, API_NO_CHANNEL);
    uint64_t purged;
    drop_all(e, &purged); /* nothing for the close to write; a failure: the directory goes */
    hop_channel_shut(e->ch);
    longpoll_resume(e); /* GETs a pause held back end too: the channel is closed */
    atomic_fetch_add(&channels_deleted, 1);
    log_info("channel %s deleted: %" PRIu64 " message(s) dropped", req->route.name, purged);
    return answer(req, conn, purged, true);
}

const request_handler purge_handler = {.begin = find_begin, .finish = purge_finish};
const request_handler delete_handler = {.begin = delete_begin, .finish = delete_finish};
