/* redrive.c - moving a channel's dead letters back (see redrive.h). The
 * move goes in batches: up to BATCH messages taken from the head of
 * NAME.dead go to NAME with hop_move(), which a crash cannot split (each
 * message is in one of the two channels after it), one queue file and a
 * few syncs a batch. */
#include "redrive.h"

#include "envelope.h"
#include "expiry.h"
#include "giveback.h"
#include "log.h"
#include "query.h"
#include "respond.h"
#include "skip_corrupt.h"

#include <inttypes.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH 64
/* Room for NAME.dead (begin checks that it is a valid name). */
#define DEAD_NAME_SIZE (HOP_NAME_MAX + sizeof GIVEBACK_DEAD_SUFFIX)

static atomic_uint_fast64_t redrives, redriven;

void redrive_read_counts(uint64_t *count, uint64_t *moved)
{
    *count = atomic_load(&redrives);
    *moved = atomic_load(&redriven);
}

static void redrive_begin(request *req, struct MHD_Connection *conn)
{
    redrive_request *r = (redrive_request *)req;
    if (!query_max(req, conn, REDRIVE_MAX, &r->max))
        return;
    if (r->max == 0)
        r->max = REDRIVE_MAX;
    const char *name = req->route.name;
    size_t n = strlen(name), suffix = strlen(GIVEBACK_DEAD_SUFFIX);
    if ((n >= suffix && strcmp(name + n - suffix, GIVEBACK_DEAD_SUFFIX) == 0) ||
        n + suffix > HOP_NAME_MAX) {
        request_fail(req, API_BAD_NAME, "%s has no dead-letter channel to redrive from", name);
        return;
    }
    char dead[DEAD_NAME_SIZE];
    snprintf(dead, sizeof dead, "%s%s", name, GIVEBACK_DEAD_SUFFIX);
    registry_entry *d = registry_find(dead);
    if (d == NULL) {
        request_fail(req, API_NO_CHANNEL, "no channel %s exists", dead);
        return;
    }
    registry_put(d);
    request_open_channel(req); /* the channel the messages go back to */
}

/* Take up to want messages from the head of dead into msgs, their
 * delivery counts reset (the old ones in returns). Returns how many;
 * *err, what stopped it early. */
static size_t take(registry_entry *dead, void **msgs, size_t *lens, uint32_t *returns, size_t want,
                   hop_err *err)
{
    size_t n = 0;
    unsigned failed = 0;
    *err = HOP_OK;
    while (n < want) {
        hop_err e = expiry_recv(dead, &msgs[n], &lens[n]);
        if (e == HOP_OK) {
            envelope env;
            returns[n] = envelope_decode(msgs[n], lens[n], &env) ? env.returns : 0;
            envelope_set_returns(msgs[n], lens[n], 0);
            n++;
        } else if (!skip_corrupt(e, &failed)) {
            if (e != HOP_TIMEOUT)
                *err = e;
            break;
        }
    }
    return n;
}

/* Move up to max messages from dead to to. OUT: *moved. HOP_OK, or what
 * stopped it (the batch that was refused is back at the head of dead). */
static hop_err move(registry_entry *dead, registry_entry *to, size_t max, uint64_t *moved)
{
    void *msgs[BATCH];
    size_t lens[BATCH];
    uint32_t returns[BATCH];
    *moved = 0;
    while (*moved < max) {
        size_t want = max - *moved < BATCH ? max - *moved : BATCH;
        hop_err err;
        size_t n = take(dead, msgs, lens, returns, want, &err);
        /* one step a crash cannot split: consumed from dead, in to */
        hop_err sent = n ? hop_move(dead->ch, to->ch, msgs, n) : HOP_OK;
        for (size_t i = n; sent != HOP_OK && i-- > 0;) {
            envelope_set_returns(msgs[i], lens[i], returns[i]); /* as it was */
            giveback_unsent(dead, msgs[i], lens[i]);            /* back to the head, last first */
        }
        if (sent != HOP_OK)
            return sent;
        *moved += n;
        if (err != HOP_OK || n < want)
            return err;
    }
    return HOP_OK;
}

static enum MHD_Result redrive_finish(request *req, struct MHD_Connection *conn)
{
    redrive_request *r = (redrive_request *)req;
    char dead_name[DEAD_NAME_SIZE];
    snprintf(dead_name, sizeof dead_name, "%s%s", req->route.name, GIVEBACK_DEAD_SUFFIX);
    registry_entry *dead = registry_find(dead_name);
    if (dead == NULL) /* deleted meanwhile */
        return respond_error(req, conn, API_NO_CHANNEL);
    uint64_t moved;
    hop_err err = move(dead, req->entry, r->max, &moved);
    registry_put(dead);
    atomic_fetch_add(&redrives, 1);
    atomic_fetch_add(&redriven, moved);
    log_info("channel %s: %" PRIu64 " message(s) moved back from %s%s%s", req->route.name, moved,
             dead_name, err == HOP_OK ? "" : "; stopped: ", err == HOP_OK ? "" : hop_strerror(err));
    if (err != HOP_OK) {
        api_error api = api_error_of_hop(err);
        request_fail(req, api, "%" PRIu64 " message(s) moved, then %s refused: %s", moved,
                     req->route.name, hop_strerror(err));
        return respond_error(req, conn, api);
    }
    json_t *doc = json_object();
    json_object_set_new(doc, "channel", json_string(req->route.name));
    json_object_set_new(doc, "from", json_string(dead_name));
    json_object_set_new(doc, "moved", json_integer((json_int_t)moved));
    return respond_json(req, conn, doc);
}

const request_handler redrive_handler = {.begin = redrive_begin, .finish = redrive_finish};
