/* options_table.h - the flags' table: their names, kinds, defaults, ranges
 * and help (options_table.c), read by the parser (options.c). Internal to
 * options.c; the rest of the server reads server_options (options.h). */
#ifndef HOPPER_SERVER_OPTIONS_TABLE_H
#define HOPPER_SERVER_OPTIONS_TABLE_H

#include <stddef.h>

typedef enum option_kind {
    KIND_ADDRESS,  /* HOST:PORT or [IPv6]:PORT */
    KIND_PATH,     /* any non-empty text */
    KIND_SIZE,     /* bytes, or with K/KiB/M/MiB/G/GiB (powers of 1024) */
    KIND_COUNT,    /* a plain non-negative integer */
    KIND_SECONDS,  /* options_parse_seconds() */
    KIND_FLAG,     /* no value on the command line; BOOLEAN_WORDS in the environment */
    KIND_HEADERS,  /* keep_headers_parse(); may be empty */
    KIND_FORWARDS, /* forward_rules_add(); the flag may be given again, adding entries */
    KIND_VERIFIES, /* verify_rules_add(); the flag may be given again, adding entries */
} option_kind;

/* What a KIND_FLAG's environment variable may say. */
#define BOOLEAN_WORDS "1, true, yes, 0, false or no"

typedef struct option_spec {
    const char *flag;       /* without the leading "--" */
    const char *value_name; /* for --help; NULL for a KIND_FLAG */
    const char *def;        /* default, as text; NULL: computed (options.c) */
    option_kind kind;
    size_t min, max; /* range of SIZE, COUNT and SECONDS values */
    const char *help;
} option_spec;

/* Largest --max-wait: a day, far beyond any sensible long poll, and small
 * enough for the millisecond arithmetic of the timer. */
#define MAX_WAIT_LIMIT 86400
#define MAX_WAIT_TEXT "86400"
/* Longest --dedup-window: 30 days. */
#define DEDUP_WINDOW_LIMIT 2592000
#define DEDUP_MAX_KEYS_LIMIT 10000000
/* Largest --max-delay: a year. */
#define MAX_DELAY_LIMIT 31536000
#define MAX_THREADS 1024
#define MAX_CHANNELS_LIMIT 1000000
#define MAX_CONNECTIONS_LIMIT 1000000
/* The default --memory-bytes is this fraction of --memory-limit: one busy
 * channel cannot take all the RAM from the others, and four busy ones can
 * still use all of it. */
#define MEMORY_BYTES_SHARE 4

enum {
    OPT_LISTEN,
    OPT_DATA_DIR,
    OPT_MEMORY_LIMIT,
    OPT_DISK_LIMIT,
    OPT_MEMORY_BYTES,
    OPT_FILE_BYTES,
    OPT_MAX_DISK_FILES,
    OPT_MAX_MESSAGE_BYTES,
    OPT_MAX_CHANNELS,
    OPT_MAX_WAIT,
    OPT_THREADS,
    OPT_DURABLE,
    OPT_KEEP_HEADERS,
    OPT_MAX_LEASE,
    OPT_MAX_DELIVERIES,
    OPT_MAX_AGE,
    OPT_MAX_CONNECTIONS,
    OPT_IDLE_TIMEOUT,
    OPT_MAX_DELAY,
    OPT_RETRY_DELAY,
    OPT_RETRY_DELAY_MAX,
    OPT_FORWARD,
    OPT_FORWARD_TIMEOUT,
    OPT_FORWARD_MAX_ATTEMPTS,
    OPT_FORWARD_RETRY_MIN,
    OPT_FORWARD_RETRY_MAX,
    OPT_FORWARD_CONCURRENCY,
    OPT_FORWARD_SECRET,
    OPT_FORWARD_CA,
    OPT_DEDUP_HEADER,
    OPT_DEDUP_WINDOW,
    OPT_DEDUP_MAX_KEYS,
    OPT_AUTH_FILE,
    OPT_PUBLIC_METRICS,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_VERIFY,
    OPT_COUNT
};

extern const option_spec option_specs[OPT_COUNT];
/* Printed by --help after the flags. */
extern const char *const option_help_tail;

#endif
