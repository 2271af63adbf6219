/* receiver.h - an HTTP server inside the test process that hopper forwards
 * to (--forward NAME=URL): it listens on 127.0.0.1 on a free port, records
 * every request it is sent (method, path, headers in order, body, times)
 * and answers as the test scripted: a status with headers and a body, after
 * a hang if asked, or a connection closed without an answer. It can be taken
 * down (connection refused) and brought up again on the same port.
 *
 * It speaks plain HTTP (rc_start()), or HTTPS with a certificate the test
 * gives (rc_start_tls()); everything else is the same in both modes.
 *
 * Each connection has a thread of its own (a hang holds up only its own
 * request), so several requests can be in flight at once; they are counted.
 * All functions are thread-safe. Times are seconds of CLOCK_MONOTONIC, the
 * clock of hs_now(). */
#ifndef HOPPER_TESTS_SERVER_RECEIVER_H
#define HOPPER_TESTS_SERVER_RECEIVER_H

#include <stdbool.h>
#include <stddef.h>

typedef struct rc_receiver rc_receiver;

/* What the receiver does with one request, once its body has come in. */
typedef struct rc_answer {
    int status;          /* the status code; 0 means 200 */
    const char *headers; /* response header lines "Name: value", separated by
                          * '\n', or NULL: e.g. "Retry-After: 1" */
    const char *body;    /* response body (text), or NULL: none */
    int hang_ms;         /* wait this long before answering (or closing); a
                          * hang ends early, closing, when the receiver goes down */
    bool close;          /* close the connection without any answer */
} rc_answer;

/* One request as it came in. Header names are as the client spelled them,
 * values as libmicrohttpd gives them: the whitespace after the colon
 * dropped, the rest as sent. */
typedef struct rc_header {
    char *name;
    char *value;
} rc_header;

typedef struct rc_request {
    char method[16];
    char *path; /* without the query */
    rc_header *headers;
    size_t header_count;
    unsigned char *body; /* NUL-terminated beyond body_len for convenience */
    size_t body_len;
    double arrived;  /* when its header block had come */
    double answered; /* when its answer was sent, or it was closed without
                      * one; 0 while it is in flight */
    int status;      /* the status it was answered with; 0 if closed */
} rc_request;

/* Start a receiver on 127.0.0.1 on a free port below the ephemeral range
 * (so that no socket bound to port 0 takes it while the receiver is down),
 * answering 200 (empty body) unless told otherwise. 0 with OUT: *out (free
 * with rc_stop()); -1 with the reason printed. */
int rc_start(rc_receiver **out);
/* rc_start(), but speaking HTTPS only: cert_pem is the server certificate
 * (PEM text, the chain to the CA may follow it) and key_pem its private key
 * (PEM text, unencrypted); both are copied. rc_up() brings it up with the
 * same ones. -1 with the reason printed also if libmicrohttpd was built
 * without TLS: check rc_tls_supported() first to skip instead. */
int rc_start_tls(rc_receiver **out, const char *cert_pem, const char *key_pem);
/* Whether this libmicrohttpd can do TLS (MHD_FEATURE_TLS). */
bool rc_tls_supported(void);
/* Take it down: the port is closed (connecting is refused), open
 * connections are closed, hanging requests end without an answer. What it
 * recorded and its script are kept. Does nothing if it is down. */
void rc_down(rc_receiver *r);
/* Bring it up again on the same port. 0, or -1 with the reason printed. */
int rc_up(rc_receiver *r);
/* rc_down() and free everything; r may be NULL. */
void rc_stop(rc_receiver *r);

/* "http://127.0.0.1:PORT", or "https://127.0.0.1:PORT" in TLS mode
 * (borrowed, lives as long as r). */
const char *rc_url(const rc_receiver *r);
int rc_port(const rc_receiver *r);

/* The answer to every request once the queue of one-shot answers is empty
 * (a is copied). */
void rc_set_default(rc_receiver *r, const rc_answer *a);
/* Append a one-shot answer: requests take them in the order they come in,
 * one each, before falling back on the default (a is copied). */
void rc_push_answer(rc_receiver *r, const rc_answer *a);
/* rc_push_answer() of a plain status, n times. */
void rc_push_status(rc_receiver *r, int status, int n);
/* One-shot answers not yet taken. */
size_t rc_pending_answers(rc_receiver *r);

/* Requests recorded so far. A request is recorded once its body has come
 * in, before it is answered. */
size_t rc_count(rc_receiver *r);
/* Wait up to timeout_ms until n requests have been recorded; true if they
 * have. */
bool rc_wait_requests(rc_receiver *r, size_t n, int timeout_ms);
/* Wait up to timeout_ms until n requests have been answered (or closed);
 * true if they have. */
bool rc_wait_answered(rc_receiver *r, size_t n, int timeout_ms);
/* Request i (0 = the first recorded; borrowed, valid until rc_stop()); NULL
 * if there is no such request. Its fields answered and status change when
 * it is answered: read them after rc_wait_answered(). */
const rc_request *rc_request_at(rc_receiver *r, size_t i);
/* The value of the first header of req named name (ASCII case-insensitive),
 * borrowed; NULL if absent. */
const char *rc_header_value(const rc_request *req, const char *name);
/* How many headers of req are named name. */
size_t rc_header_count(const rc_request *req, const char *name);

/* Requests in flight now (recorded, not yet answered), and the most there
 * ever were at once. */
int rc_in_flight(rc_receiver *r);
int rc_max_in_flight(rc_receiver *r);

/* Seconds of CLOCK_MONOTONIC. */
double rc_now(void);

/* cmocka setup and teardown: *state is a started receiver, stopped after. */
int rc_setup(void **state);
int rc_teardown(void **state);

#endif
