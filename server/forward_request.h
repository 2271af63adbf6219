/* forward_request.h - one forwarding attempt as an HTTP request: POST URL
 * with the message's body, its Content-Type and kept headers byte for
 * byte, hopper's Hopper-* headers and, with a key, the Standard Webhooks
 * signature; and what the answer said (status, Retry-After). The
 * engine that runs the requests is forward.c. */
#ifndef HOPPER_SERVER_FORWARD_REQUEST_H
#define HOPPER_SERVER_FORWARD_REQUEST_H

#include "envelope.h"
#include "forward_sign.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FORWARD_CHANNEL_HEADER "Hopper-Channel"
#define FORWARD_RECEIVED_AT_HEADER "Hopper-Received-At"

/* What the requests of a channel share. */
typedef struct forward_target {
    const char *url;              /* NUL-terminated */
    const char *channel;          /* the channel's name */
    double timeout;               /* seconds an attempt may take, connecting included */
    const char *ca_file;          /* a CA to trust besides the system's, or NULL */
    const forward_signer *signer; /* or NULL: unsigned */
} forward_target;

/* Header lines of a request at most: the kept ones, Content-Type, hopper's
 * four, "Expect:" and the signature's three. */
#define FORWARD_MAX_LINES (ENVELOPE_MAX_HEADERS + 9)

/* One request in progress, and what is kept from one request to the next:
 * the easy handle, set up once (making one per attempt cost a third of the
 * forwarding thread's time, setting its options again a tenth), and the
 * memory the header lines are written in (allocating each line cost as much
 * again). */
typedef struct forward_request {
    CURL *easy;         /* NULL until the first request */
    uint32_t count;     /* this attempt's delivery count: 1 + failed ones */
    double retry_after; /* seconds the answer's Retry-After asked for; < 0: none */
    /* the header lines: nodes of a curl_slist that libcurl only reads,
     * pointing into text; not made by curl_slist_append, so never given to
     * curl_slist_free_all */
    struct curl_slist lines[FORWARD_MAX_LINES];
    char *text;
    size_t text_size, text_used;
    size_t nlines;
} forward_request;

/* Make r (zeroed, or ended) the request that forwards msg[0..len) (a
 * stored envelope, borrowed until forward_request_end()) to t, the same t
 * for every request of r. private goes to CURLINFO_PRIVATE. False if the
 * envelope is damaged (*bad set) or out of memory (*bad clear); r is ended
 * then. */
bool forward_request_begin(forward_request *r, const forward_target *t, const void *msg, size_t len,
                           void *private, bool *bad);

/* The request is over (its easy handle out of any multi handle); what it
 * kept stays for the next one. */
void forward_request_end(forward_request *r);

/* Free what is kept too. */
void forward_request_free(forward_request *r);

#endif
