/* stream.c - GET /channels/NAME as a Server-Sent Events stream (see
 * stream.h): the request's begin and finish, the content reader that is
 * the stream's state machine, and the end that settles what it held. */
#include "stream.h"

#include "budget.h"
#include "forward.h"
#include "giveback.h"
#include "log.h"
#include "query.h"
#include "respond.h"
#include "sse_event.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* The size MHD is asked to read in: an advice, events may be larger. */
#define STREAM_BLOCK_SIZE (16 * 1024)

static uint64_t heartbeat_ms = STREAM_HEARTBEAT_MS;
static atomic_uint_fast64_t open_streams;

static stream_request *stream_of(request *req)
{
    return (stream_request *)req;
}

void stream_open(void)
{
    const char *text = getenv(STREAM_HEARTBEAT_ENV);
    char *end;
    unsigned long long ms = text ? strtoull(text, &end, 10) : 0;
    if (text && *end == '\0' && ms > 0)
        heartbeat_ms = ms;
}

uint64_t stream_count(void)
{
    return atomic_load(&open_streams);
}

bool stream_wanted(struct MHD_Connection *conn)
{
    const char *accept = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
    size_t n = strlen(STREAM_CONTENT_TYPE);
    for (const char *p = accept; p && *p; p++)
        if (strncasecmp(p, STREAM_CONTENT_TYPE, n) == 0)
            return true;
    return false;
}

/* ---- the wait for a lease: STREAM_HELD_BACK ---- */

static stream_request *of_retry(timer_item *it)
{
    return (stream_request *)((char *)it - offsetof(stream_request, retry));
}

/* The timer's callback: a held-back stream tries again. */
static void on_retry(timer_item *it)
{
    MHD_resume_connection(of_retry(it)->conn);
}

void stream_stop_all(void)
{
    timer_expire_all(on_retry); /* waiting ones: longpoll_stop_waiting() */
}

static bool stopping(const stream_request *s)
{
    return atomic_load(&s->base.server->stopping);
}

/* Suspend s for STREAM_LEASE_RETRY_MS; MHD's "no data yet". */
static ssize_t hold_back(stream_request *s)
{
    MHD_suspend_connection(s->conn);
    s->phase = STREAM_HELD_BACK;
    if (!timer_add(&s->retry, STREAM_LEASE_RETRY_MS))
        MHD_resume_connection(s->conn); /* out of memory: try again at once */
    else if (stopping(s))
        timer_update(&s->retry, 0); /* stream_stop_all() may have come first */
    return 0;
}

/* ---- handing output to MHD: STREAM_SENDING ---- */

/* The output's last byte is handed to MHD: its message is consumed (a
 * leased one stays leased), and s is idle. */
static void output_handed(stream_request *s)
{
    if (s->msg)
        hop_free(s->msg);
    s->msg = NULL;
    s->receipt[0] = '\0';
    free(s->event);
    s->event = NULL;
    s->out = NULL;
    budget_release(s->charged);
    s->charged = 0;
    s->phase = STREAM_IDLE;
}

/* As much of the output as fits into buf[0..max). */
static ssize_t send_more(stream_request *s, char *buf, size_t max)
{
    size_t n = s->out_len - s->sent;
    if (n > max)
        n = max;
    memcpy(buf, s->out + s->sent, n);
    s->sent += n;
    if (s->sent == s->out_len)
        output_handed(s);
    return (ssize_t)n;
}

/* Begin handing out[0..len) (static, or s->event) to MHD. */
static ssize_t start_output(stream_request *s, const char *out, size_t len, char *buf, size_t max)
{
    s->out = out;
    s->out_len = len;
    s->sent = 0;
    s->phase = STREAM_SENDING;
    return send_more(s, buf, max);
}

static ssize_t start_comment(stream_request *s, const char *comment, char *buf, size_t max)
{
    return start_output(s, comment, strlen(comment), buf, max);
}

static ssize_t close_stream(stream_request *s)
{
    s->phase = STREAM_CLOSING;
    return MHD_CONTENT_READER_END_OF_STREAM;
}

/* ---- taking messages: STREAM_IDLE, STREAM_WAITING ---- */

static ssize_t next_message(stream_request *s, char *buf, size_t max);

/* Lease msg for s if s is leased: true, or false with msg given back. OUT:
 * *result, what the read returns then. */
static bool hold_for_lease(stream_request *s, void *msg, size_t len, ssize_t *result)
{
    if (s->lease_ms == 0)
        return true;
    api_error held = lease_hold(s->base.entry, msg);
    if (held == API_OK) {
        lease_new_receipt(s->receipt);
        return true;
    }
    giveback_unsent(s->base.entry, msg, len); /* never take what cannot be leased */
    *result = held == API_LEASE_LIMIT ? hold_back(s) : MHD_CONTENT_READER_END_WITH_ERROR;
    return false;
}

/* msg (taken from s's channel) as the next event: made, leased if s is,
 * and handed to MHD as far as buf has room. */
static ssize_t start_event(stream_request *s, void *msg, size_t len, char *buf, size_t max)
{
    registry_entry *e = s->base.entry;
    ssize_t result;
    if (!hold_for_lease(s, msg, len, &result))
        return result;
    bool leased = s->lease_ms > 0;
    char *text;
    size_t text_len;
    sse_event_result made =
        sse_event_format(msg, len, leased ? s->receipt : NULL, &text, &text_len);
    if (made == SSE_EVENT_MALFORMED) {
        log_error("channel %s: dropped a stored message with a malformed envelope",
                  hop_channel_name(e->ch));
        hop_free(msg);
        s->receipt[0] = '\0';
        return next_message(s, buf, max);
    }
    if (made != SSE_EVENT_OK ||
        (leased && lease_grant(e, msg, len, s->lease_ms, s->receipt) != API_OK)) {
        if (made == SSE_EVENT_OK)
            free(text);
        giveback_unsent(e, msg, len);
        s->receipt[0] = '\0';
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    /* leased, the table has msg now: the event is a copy */
    s->msg = leased ? NULL : msg;
    s->msg_len = len;
    s->event = text;
    s->charged = text_len + (leased ? 0 : hop_message_cost(len));
    budget_charge(s->charged);
    return start_output(s, text, text_len, buf, max);
}

/* STREAM_IDLE: take the next message, or wait for one (suspended) until
 * the heartbeat is due. */
static ssize_t next_message(stream_request *s, char *buf, size_t max)
{
    if (stopping(s))
        return close_stream(s);
    if (longpoll_client_gone(s->conn))
        return MHD_CONTENT_READER_END_WITH_ERROR; /* take nothing for nobody */
    void *msg = NULL;
    size_t len = 0;
    hop_err err = HOP_OK;
    longpoll_rearm(&s->lp);
    switch (longpoll_begin(&s->lp, s->base.entry, heartbeat_ms, &msg, &len, &err)) {
    case LONGPOLL_GOT:
        return start_event(s, msg, len, buf, max);
    case LONGPOLL_SUSPENDED:
        s->phase = STREAM_WAITING;
        return 0; /* MHD's "no data yet": the wait's end resumes the connection */
    case LONGPOLL_EMPTY:
        return close_stream(s); /* only when the server stops */
    case LONGPOLL_FAILED:
        if (err == HOP_CLOSED)
            return close_stream(s);
        break;
    }
    return MHD_CONTENT_READER_END_WITH_ERROR;
}

/* STREAM_WAITING, resumed: how the wait ended. */
static ssize_t after_wait(stream_request *s, char *buf, size_t max)
{
    void *msg = NULL;
    size_t len = 0;
    switch (longpoll_take(&s->lp, &msg, &len)) {
    case LONGPOLL_READY:
        if (longpoll_client_gone(s->conn)) { /* went away after the message came */
            giveback_unsent(s->base.entry, msg, len);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        return start_event(s, msg, len, buf, max);
    case LONGPOLL_GONE:
        return MHD_CONTENT_READER_END_WITH_ERROR; /* its message is back already */
    case LONGPOLL_TIMED_OUT:
        if (stopping(s))
            return close_stream(s);
        return start_comment(s, SSE_KEEPALIVE_COMMENT, buf, max);
    case LONGPOLL_CLOSED:
        return close_stream(s);
    case LONGPOLL_IDLE:
        return next_message(s, buf, max);
    case LONGPOLL_WAITING:
        break; /* resumed while still waiting: never */
    }
    return MHD_CONTENT_READER_END_WITH_ERROR;
}

/* MHD's content reader: the next bytes of the stream into buf[0..max). */
static ssize_t on_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    stream_request *s = cls;
    switch (s->phase) {
    case STREAM_OPENING:
        return start_comment(s, SSE_OPENING_COMMENT, buf, max);
    case STREAM_SENDING:
        return send_more(s, buf, max);
    case STREAM_WAITING:
        return after_wait(s, buf, max);
    case STREAM_HELD_BACK:
    case STREAM_IDLE:
        return next_message(s, buf, max);
    case STREAM_CLOSING:
        break;
    }
    return MHD_CONTENT_READER_END_OF_STREAM;
}

/* ---- the request ---- */

static void stream_begin(request *req, struct MHD_Connection *conn)
{
    stream_request *s = stream_of(req);
    s->conn = conn;
    longpoll_init(&s->lp, conn);
    timer_item_init(&s->retry, on_retry);
    if (!query_lease(req, conn, &s->lease_ms))
        return;
    if (forward_is_forwarded(req->route.name)) {
        request_fail(req, API_FORWARDED, NULL); /* its messages are the forwarder's */
        return;
    }
    request_open_channel(req);
}

/* A small send buffer for conn's socket (STREAM_SEND_BUFFER); left as
 * it is if that fails. */
static void limit_send_buffer(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    int size = STREAM_SEND_BUFFER;
    if (info)
        setsockopt(info->connect_fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
}

static enum MHD_Result stream_finish(request *req, struct MHD_Connection *conn)
{
    stream_request *s = stream_of(req);
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK_SIZE, on_read, s, NULL);
    if (r == NULL)
        return respond_error(req, conn, API_NOMEM);
    if (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, STREAM_CONTENT_TYPE) != MHD_YES ||
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache") != MHD_YES) {
        MHD_destroy_response(r);
        return respond_error(req, conn, API_NOMEM);
    }
    limit_send_buffer(conn);
    s->counted = true;
    atomic_fetch_add(&open_streams, 1);
    atomic_fetch_add(&req->entry->streams_open, 1);
    return respond_queue(req, conn, MHD_HTTP_OK, r);
}

/* The connection ended with an event not wholly handed to MHD: its
 * message goes back, unsent if none of it went out, else as a failed
 * delivery (its count grows). */
static void give_back_event(stream_request *s)
{
    registry_entry *e = s->base.entry;
    bool partly = s->sent > 0;
    void *msg;
    size_t len;
    if (s->receipt[0] && partly)
        lease_release(e, s->receipt, 0); /* it may have ended already */
    else if (s->receipt[0] && lease_revoke(e, s->receipt, &msg, &len))
        giveback_unsent(e, msg, len);
    else if (s->msg && partly)
        giveback_unconsumed(e, s->msg, s->msg_len, s->base.server->options.max_deliveries);
    else if (s->msg)
        giveback_unsent(e, s->msg, s->msg_len);
    s->msg = NULL;
    s->receipt[0] = '\0';
}

static void stream_end(request *req, enum MHD_RequestTerminationCode toe)
{
    (void)toe; /* what was wholly handed to MHD is consumed whatever the end */
    stream_request *s = stream_of(req);
    timer_cancel(&s->retry);
    void *msg;
    size_t len;
    longpoll_end(&s->lp, &msg, &len);
    if (msg)
        giveback_unsent(req->entry, msg, len); /* arrived, but never sent */
    if (s->phase == STREAM_SENDING)
        give_back_event(s);
    free(s->event);
    budget_release(s->charged);
    if (s->counted) {
        atomic_fetch_sub(&open_streams, 1);
        atomic_fetch_sub(&req->entry->streams_open, 1);
    }
}

const request_handler stream_handler = {
    .begin = stream_begin,
    .finish = stream_finish,
    .end = stream_end,
};
