/* options.h - the command line and its HOPPER_* environment twins: the one
 * place the server's flags, their defaults and their parsing live. */
#ifndef HOPPER_SERVER_OPTIONS_H
#define HOPPER_SERVER_OPTIONS_H

#include "hopper/hopper.h"
#include "keep_headers.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

typedef struct server_options {
    const char *listen;                  /* as given, e.g. "127.0.0.1:8080" */
    struct sockaddr_storage listen_addr; /* listen, resolved */
    socklen_t listen_addr_len;
    const char *data_dir; /* borrowed from argv, environ or the defaults table */
    size_t memory_bytes;  /* per channel */
    size_t file_bytes;
    size_t max_disk_files; /* per channel; 0 = memory only */
    size_t max_message_bytes;
    size_t max_channels;
    double max_wait;       /* seconds */
    double max_lease;      /* seconds: the longest ?lease= */
    size_t max_deliveries; /* 0: no limit */
    unsigned threads;
    bool durable; /* a 202 means the message is in a queue file and synced */
    /* --keep-headers: the request headers a POST stores with its message
     * besides Content-Type; items point into argv or environ */
    keep_headers keep_headers;
} server_options;

typedef enum options_result {
    OPTIONS_OK,    /* *out is filled in */
    OPTIONS_HELP,  /* --help: usage was printed to stdout; exit 0 */
    OPTIONS_ERROR, /* a message was printed to stderr; exit 2 */
} options_result;

/* Fill *out from argv, then from HOPPER_<FLAG> environment variables for
 * flags not given, then from the defaults. */
options_result options_parse(int argc, char **argv, server_options *out);

/* The limits every channel gets from o: the server's, with room for the
 * envelope (envelope.h) in max_message_bytes. OUT: *out. */
void options_core_limits(const server_options *o, hop_limits *out);

/* Parse a number of seconds, decimal with an optional fraction or exponent,
 * from the whole of text: 0 <= value <= max, finite. False for anything else
 * (empty, junk, sign, nan, inf, hexadecimal, out of range). OUT: *seconds. */
bool options_parse_seconds(const char *text, double max, double *seconds);

#endif
