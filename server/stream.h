/* stream.h - GET /channels/NAME[?lease=L] with Accept: text/event-stream:
 * the connection stays open and each message goes out as a Server-Sent
 * Event (sse_event.h) as it becomes available.
 *
 * A stream is a 200 text/event-stream response whose body MHD asks for
 * piece by piece (a content reader callback). Its phases:
 *   STREAM_OPENING   queued: the first read answers the opening comment
 *   STREAM_IDLE      nothing held: a read takes the next message (then
 *                    SENDING) or, with none, suspends the connection on a
 *                    longpoll (longpoll.h) whose deadline is the heartbeat
 *                    (WAITING), and returns 0 bytes (MHD's "no data yet")
 *   STREAM_WAITING   suspended; the first read after the resume sees how
 *                    the wait ended: a message (SENDING), the heartbeat
 *                    (the keepalive comment, SENDING), the client gone
 *                    (the message back, the stream ends), the stop
 *   STREAM_HELD_BACK suspended for STREAM_LEASE_RETRY_MS: with ?lease=,
 *                    the channel's leases fill its memory or the budget,
 *                    so the stream takes nothing it could not lease
 *   STREAM_SENDING   one event (or comment) being handed to MHD, as much
 *                    per read as MHD has room for; its message held
 *                    until the last byte is handed over: then consumed
 *                    (or, leased, left to its lease) -> IDLE
 *   STREAM_CLOSING   the server stops, or the channel closed: the next
 *                    read ends the response
 *
 * Backpressure: MHD reads only when its send buffer has room, and a
 * stream takes a message only in a read, one at a time: at most one
 * event is taken from the channel and not yet handed to MHD; a slow
 * client leaves the rest in the channel. The socket's send buffer is
 * made small (STREAM_SEND_BUFFER), so that the events written and not yet
 * read stay few too: those are what a vanished client loses.
 *
 * Delivery: at most once. A message is consumed once its event is handed
 * to MHD; an event in MHD's or the kernel's buffers when the client
 * vanishes is lost. One not (wholly) handed over when the connection ends
 * goes back to the head of its channel (giveback.h): unsent if none of it
 * went out, else as a failed delivery. With ?lease=L each message is
 * leased as by GET ?lease=L and its event carries the receipt: the
 * at-least-once way.
 *
 * The stop: stream_stop_all() (after http_quiesce(), with
 * longpoll_stop_waiting()) ends every stream at its next read, a waiting
 * one at once; an event half sent is finished first. */
#ifndef HOPPER_SERVER_STREAM_H
#define HOPPER_SERVER_STREAM_H

#include "lease.h"
#include "longpoll.h"
#include "request.h"
#include "timer.h"

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A comment line goes out after this long without an event. */
#define STREAM_HEARTBEAT_MS 15000
/* For tests only: this environment variable, read once at start
 * (stream_open()), replaces STREAM_HEARTBEAT_MS (milliseconds, > 0). */
#define STREAM_HEARTBEAT_ENV "HOPPER_SSE_HEARTBEAT_MS"
/* The stream's socket send buffer (SO_SNDBUF; Linux doubles it): the
 * kernel then holds at most about twice this of a stream's events, where
 * autotuning would let it take megabytes of a slow client's. */
#define STREAM_SEND_BUFFER (32 * 1024)
/* How long a leased stream waits before it tries to lease again. */
#define STREAM_LEASE_RETRY_MS 1000
#define STREAM_CONTENT_TYPE "text/event-stream"

typedef enum stream_phase {
    STREAM_OPENING = 0,
    STREAM_IDLE,
    STREAM_WAITING,
    STREAM_HELD_BACK,
    STREAM_SENDING,
    STREAM_CLOSING,
} stream_phase;

typedef struct stream_request {
    request base;
    stream_phase phase;
    uint64_t lease_ms; /* ?lease=, 0: not leased */
    struct MHD_Connection *conn;
    longpoll lp;      /* the wait for a message; initialised by begin */
    timer_item retry; /* STREAM_HELD_BACK's end */
    bool counted;     /* counted in the open streams */
    /* SENDING: out[sent..out_len) still to hand to MHD */
    const char *out; /* event (owned: event != NULL) or a static comment */
    char *event;
    size_t out_len, sent;
    void *msg; /* SENDING, not leased: the event's message, until its last byte */
    size_t msg_len;
    char receipt[LEASE_RECEIPT_LEN + 1]; /* SENDING, leased: the event's lease; "" */
    size_t charged;                      /* bytes charged to the budget (budget.h) */
} stream_request;

extern const request_handler stream_handler;

/* True if conn's request asks for a stream: its Accept names
 * text/event-stream. */
bool stream_wanted(struct MHD_Connection *conn);

/* Read STREAM_HEARTBEAT_ENV. Call once before HTTP starts. */
void stream_open(void);

/* Shutdown: every stream ends (see above). */
void stream_stop_all(void);

/* Streams open now, server-wide. */
uint64_t stream_count(void);

#endif
