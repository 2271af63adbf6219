/* options.h - the command line and its HOPPER_* environment twins: the one
 * place the server's flags, their defaults and their parsing live. */
#ifndef HOPPER_SERVER_OPTIONS_H
#define HOPPER_SERVER_OPTIONS_H

#include "hopper/hopper.h"
#include "forward_rules.h"
#include "keep_headers.h"
#include "verify.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct server_options {
    const char *listen;                  /* as given, e.g. "127.0.0.1:8080" */
    struct sockaddr_storage listen_addr; /* listen, resolved */
    socklen_t listen_addr_len;
    const char *data_dir; /* borrowed from argv, environ or the defaults table */
    size_t memory_limit;  /* all channels together (hop_budget) */
    uint64_t disk_limit;  /* queue files and journals of all channels, and the reserve */
    size_t memory_bytes;  /* per channel */
    size_t file_bytes;
    size_t max_disk_files; /* per channel; 0 = memory only */
    size_t max_message_bytes;
    size_t max_channels;
    double max_wait;        /* seconds */
    double max_lease;       /* seconds: the longest ?lease= */
    size_t max_deliveries;  /* 0: no limit */
    double max_age;         /* seconds a message may be handed out after it was accepted; 0: ever */
    size_t max_connections; /* 0: from the open-file limit (http.c) */
    double idle_timeout;    /* seconds a connection may send nothing */
    double max_delay;       /* seconds: the longest ?delay= */
    double retry_delay;     /* seconds: the first backoff of a message whose lease ran out */
    double retry_delay_max; /* seconds: its longest backoff */
    unsigned threads;
    bool durable; /* a 202 means the message is in a queue file and synced */
    /* --keep-headers: the request headers a POST stores with its message
     * besides Content-Type; items point into argv or environ */
    keep_headers keep_headers;
    /* forwarding (forward.h) */
    forward_rules forward;       /* --forward entries; items point into argv or environ */
    double forward_timeout;      /* seconds an attempt may take */
    size_t forward_max_attempts; /* failed attempts before NAME.dead */
    double forward_retry_min;    /* seconds of backoff, at least */
    double forward_retry_max;    /* and at most */
    size_t forward_concurrency;  /* attempts in flight per channel */
    const char *forward_secret;  /* a key file to sign with, or NULL */
    const char *forward_ca;      /* a CA file to trust too, or NULL */
    /* duplicates refused (dedup.h) */
    const char *dedup_header; /* besides Idempotency-Key, or NULL */
    double dedup_window;      /* seconds a key is remembered; 0: no keys kept */
    size_t dedup_max_keys;    /* per channel; beyond, the oldest go */
    /* tokens (auth.h) */
    const char *auth_file; /* --auth-file, or NULL: no tokens needed */
    bool public_metrics;   /* /status, /metrics, GET /channels need no token */
    /* TLS (tls.h): both or neither */
    const char *tls_cert; /* a PEM certificate chain file, or NULL: plain HTTP */
    const char *tls_key;  /* its PEM private key file, or NULL */
    /* --verify entries (verify.h); names point into argv or environ, the
     * secrets are read at parse time (verify_rules_free()) */
    verify_rules verify;
} server_options;

/* Most attempts in flight --forward-concurrency allows per channel. */
#define FORWARD_MAX_CONCURRENCY 64

typedef enum options_result {
    OPTIONS_OK,    /* *out is filled in */
    OPTIONS_HELP,  /* --help: usage was printed to stdout; exit 0 */
    OPTIONS_ERROR, /* a message was printed to stderr; exit 2 */
} options_result;

/* Fill *out from argv, then from HOPPER_<FLAG> environment variables for
 * flags not given, then from the defaults. On OPTIONS_OK the caller
 * releases out->verify with verify_rules_free() once done; otherwise
 * nothing is left to release. */
options_result options_parse(int argc, char **argv, server_options *out);

/* The limits every channel gets from o: the server's, with room for the
 * envelope (envelope.h) in max_message_bytes. OUT: *out. */
void options_core_limits(const server_options *o, hop_limits *out);

/* Room on disk set aside for each channel by the reserve, on top of what
 * memory may hold: a stop writes one new queue file per channel (a block
 * at least) and rewrites its journal next to the old one. */
#define OPTIONS_RESERVE_PER_CHANNEL (8 * 1024)

/* The bytes set aside on disk for a clean stop (reserve.h): what memory may
 * hold (--memory-limit; nothing when --durable keeps every message in a
 * file anyway) plus OPTIONS_RESERVE_PER_CHANNEL per --max-channels. A
 * stop writes memory to disk even with --max-disk-files 0. */
uint64_t options_reserve_bytes(const server_options *o);

/* Parse a number of seconds, decimal with an optional fraction or exponent,
 * from the whole of text: 0 <= value <= max, finite. False for anything else
 * (empty, junk, sign, nan, inf, hexadecimal, out of range). OUT: *seconds. */
bool options_parse_seconds(const char *text, double max, double *seconds);
/* seconds (as options_parse_seconds() gives them) in whole milliseconds,
 * rounded. */
uint64_t options_seconds_ms(double seconds);

/* Parse a SIZE from the whole of text: decimal digits, optionally followed
 * by K, KiB, M, MiB, G or GiB (powers of 1024). NULL on success, OUT: *out;
 * else what is wrong, to follow the value in a message (*out untouched).
 * The range of a particular flag is checked by the caller. */
const char *options_parse_size(const char *text, uint64_t *out);

/* Parse a COUNT, decimal digits only, from the whole of text. NULL on
 * success, OUT: *out; else what is wrong (*out may have been written). */
const char *options_parse_count(const char *text, uint64_t *out);

#endif
