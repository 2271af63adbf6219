/* pause.c - pausing and resuming a channel (see pause.h): the state
 * written to disk first, then the channel's GETs and forwarder told. */
#include "pause.h"

#include "forward.h"
#include "log.h"
#include "longpoll.h"
#include "pause_file.h"
#include "respond.h"

#include <jansson.h>
#include <pthread.h>
#include <string.h>

/* One change at a time, so that the file on disk and the flag in memory
 * end in the same state when pause and resume race. */
static pthread_mutex_t changing = PTHREAD_MUTEX_INITIALIZER;

/* Find the channel; never create it. */
static void pause_begin(request *req, struct MHD_Connection *conn)
{
    (void)conn;
    request_find_channel(req);
}

/* Make req's channel paused or not: on disk, then in memory. 0 or the
 * errno value of writing the state (nothing changed then). */
static int change(request *req, bool paused)
{
    registry_entry *e = req->entry;
    const char *name = req->route.name;
    pthread_mutex_lock(&changing);
    int err = pause_file_write(req->server->options.data_dir, name, paused);
    if (err == 0 && atomic_load(&e->paused) != paused) {
        if (paused) {
            longpoll_pause(e);
            forward_pause(e);
        } else {
            longpoll_resume(e);
            forward_resume(e);
        }
        log_info("channel %s %s", name, paused ? "paused" : "resumed");
    }
    pthread_mutex_unlock(&changing);
    if (err != 0)
        log_error("channel %s: cannot be %s: %s", name, paused ? "paused" : "resumed",
                  strerror(err));
    return err;
}

static enum MHD_Result answer(request *req, struct MHD_Connection *conn, bool paused)
{
    if (change(req, paused) != 0)
        return respond_error(req, conn, API_IO);
    json_t *doc = json_object();
    json_object_set_new(doc, "channel", json_string(req->route.name));
    json_object_set_new(doc, "paused", json_boolean(paused));
    return respond_json(req, conn, doc);
}

static enum MHD_Result pause_finish(request *req, struct MHD_Connection *conn)
{
    return answer(req, conn, true);
}

static enum MHD_Result resume_finish(request *req, struct MHD_Connection *conn)
{
    return answer(req, conn, false);
}

const request_handler pause_handler = {.begin = pause_begin, .finish = pause_finish};
const request_handler resume_handler = {.begin = pause_begin, .finish = resume_finish};
