/* sse_client.h - a Server-Sent Events client over a raw socket for the
 * stream tests: it sends GET with Accept: text/event-stream, reads the
 * response head, undoes the chunked framing and cuts the body into SSE
 * blocks (an event, or a comment line). A raw socket, so that a test can
 * choose the receive buffer, stop reading, close or reset the connection,
 * and poll a hundred of them on one thread. */
#ifndef HOPPER_TESTS_SERVER_SSE_CLIENT_H
#define HOPPER_TESTS_SERVER_SSE_CLIENT_H

#include "harness.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct sse_client {
    int fd;
    int status;         /* of the response, once its head is read; 0 before */
    char head[4096];    /* the response head, NUL-terminated */
    unsigned char *raw; /* bytes read and not yet undone */
    size_t raw_len, raw_cap;
    char *body; /* the body so far, chunked framing undone */
    size_t body_len, body_cap;
    bool ended;    /* the last chunk, or the peer closed */
    bool finished; /* the last chunk came: the response ended cleanly */
} sse_client;

/* One block of the stream. */
typedef struct sse_block {
    bool comment; /* a comment line (": text"): text holds it */
    char text[128];
    char id[64];    /* an event: its id: line */
    char event[32]; /* its event: line */
    json_t *data;   /* its data: line parsed (new; json_decref()); NULL if not JSON */
} sse_block;

/* Open a stream on path; rcvbuf > 0 sets SO_RCVBUF before connecting.
 * Returns 0 and waits for nothing, or -1. */
int sse_open(sse_client *c, const hs_server *s, const char *path, int rcvbuf);
/* Read what has come, waiting up to timeout_ms for something. False once
 * the peer has closed or the response ended. */
bool sse_pump(sse_client *c, int timeout_ms);
/* The next block into b, reading up to timeout_ms for it. False if none
 * came (b untouched). */
bool sse_next(sse_client *c, sse_block *b, int timeout_ms);
/* The next event (comments skipped), as sse_next. */
bool sse_next_event(sse_client *c, sse_block *b, int timeout_ms);
/* A block taken from the bytes already read, without reading. */
bool sse_take(sse_client *c, sse_block *b);
void sse_block_free(sse_block *b);
/* Close with a FIN (sse_close) or a reset (sse_reset), and free. */
void sse_close(sse_client *c);
void sse_reset(sse_client *c);

#endif
