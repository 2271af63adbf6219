/* options_table.c - the flags' table (see options_table.h). Defaults are
 * text parsed like any other value, so what --help shows is what is used. */
#include "options_table.h"

#include "envelope.h"
#include "expiry.h"
#include "forward_rules.h"
#include "hopper/hopper.h"
#include "options.h"

#include <stdint.h>

const option_spec option_specs[OPT_COUNT] = {
    [OPT_LISTEN] = {"listen", "HOST:PORT", "127.0.0.1:8080", KIND_ADDRESS, 0, 0,
                    "address to listen on; [IPv6]:PORT for IPv6; port 0 picks a free port"},
    [OPT_DATA_DIR] = {"data-dir", "DIR", "./hopper-data", KIND_PATH, 0, 0,
                      "directory of the channels' queue files, created if missing"},
    [OPT_MEMORY_LIMIT] = {"memory-limit", "SIZE", "256MiB", KIND_SIZE, 1, SIZE_MAX,
                          "RAM of all channels' messages, leased and outgoing ones and request "
                          "bodies included; past it, sends go to queue files"},
    [OPT_DISK_LIMIT] = {"disk-limit", "SIZE", "1GiB", KIND_SIZE, 1, UINT64_MAX,
                        "disk of all channels' queue files and journals, and of the reserve for "
                        "a clean stop (--memory-limit + 8KiB per --max-channels); past it, 507"},
    [OPT_MEMORY_BYTES] = {"memory-bytes", "SIZE", NULL, KIND_SIZE, 0, SIZE_MAX,
                          "bytes of messages one channel may hold in memory, a cap inside "
                          "--memory-limit"},
    [OPT_FILE_BYTES] = {"file-bytes", "SIZE", "64MiB", KIND_SIZE, 1, SIZE_MAX,
                        "size at which a queue file is sealed and a new one begun"},
    [OPT_MAX_DISK_FILES] = {"max-disk-files", "N", "64", KIND_COUNT, 0, SIZE_MAX,
                            "queue files per channel; 0 keeps messages in memory only"},
    [OPT_MAX_MESSAGE_BYTES] = {"max-message-bytes", "SIZE", "1MiB", KIND_SIZE, 0,
                               HOP_MAX_MESSAGE_BYTES - ENVELOPE_ALLOWANCE,
                               "largest message accepted, body and kept headers (larger is 413)"},
    [OPT_MAX_CHANNELS] = {"max-channels", "N", "1024", KIND_COUNT, 1, MAX_CHANNELS_LIMIT,
                          "channels that may exist (a new name beyond is 503)"},
    [OPT_MAX_WAIT] = {"max-wait", "SECONDS", "60", KIND_SECONDS, 0, MAX_WAIT_LIMIT,
                      "longest ?wait= a GET may ask for"},
    [OPT_THREADS] = {"threads", "N", NULL, KIND_COUNT, 1, MAX_THREADS, "HTTP worker threads"},
    [OPT_DURABLE] = {"durable", NULL, "no", KIND_FLAG, 0, 0,
                     "202 only once the message is synced to a queue file"},
    [OPT_KEEP_HEADERS] = {"keep-headers", "LIST", "", KIND_HEADERS, 0, 0,
                          "request headers stored with each message and sent back on GET"},
    [OPT_MAX_LEASE] = {"max-lease", "SECONDS", "3600", KIND_SECONDS, 0, MAX_WAIT_LIMIT,
                       "longest ?lease= a GET or an extend may ask for"},
    [OPT_MAX_DELIVERIES] = {"max-deliveries", "N", "0", KIND_COUNT, 0, UINT32_MAX,
                            "a message handed out N times without being consumed goes to "
                            "NAME.dead; 0 = no limit"},
    [OPT_MAX_AGE] = {"max-age", "SECONDS", "0", KIND_SECONDS, 0, EXPIRY_MAX_SECONDS,
                     "a message accepted this long ago is dropped, not handed out (a POST's "
                     "?ttl= may say sooner); 0 = never"},
    [OPT_MAX_CONNECTIONS] = {"max-connections", "N", "0", KIND_COUNT, 0, MAX_CONNECTIONS_LIMIT,
                             "open connections at most; more are closed at once (0 = the "
                             "open-file limit less what the server keeps for its files)"},
    [OPT_IDLE_TIMEOUT] = {"idle-timeout", "SECONDS", "60", KIND_SECONDS, 1, MAX_WAIT_LIMIT,
                          "a connection that sends nothing for this long, in a request or "
                          "between two, is closed (a waiting GET is not idle)"},
    [OPT_MAX_DELAY] = {"max-delay", "SECONDS", "604800", KIND_SECONDS, 0, MAX_DELAY_LIMIT,
                       "longest ?delay= (or Hopper-Delay) a POST or a release may ask for"},
    [OPT_RETRY_DELAY] = {"retry-delay", "SECONDS", "0", KIND_SECONDS, 0, MAX_DELAY_LIMIT,
                         "a message whose lease ran out comes back after SECONDS x 2^(deliveries "
                         "- 1), at most --retry-delay-max; 0 = at once"},
    [OPT_RETRY_DELAY_MAX] = {"retry-delay-max", "SECONDS", "3600", KIND_SECONDS, 0, MAX_DELAY_LIMIT,
                             "longest wait before a message whose lease ran "
                             "out comes back"},
    [OPT_FORWARD] = {"forward", "NAME=URL", NULL, KIND_FORWARDS, 0, 0,
                     "POST every message of channel NAME (or of NAME*, a prefix) to URL; "
                     "again for more"},
    [OPT_FORWARD_TIMEOUT] = {"forward-timeout", "SECONDS", "30", KIND_SECONDS, 0, MAX_WAIT_LIMIT,
                             "a forwarding attempt without an answer this long is retried"},
    [OPT_FORWARD_MAX_ATTEMPTS] = {"forward-max-attempts", "N", "10", KIND_COUNT, 1, UINT32_MAX,
                                  "failed attempts after which a message goes to NAME.dead"},
    [OPT_FORWARD_RETRY_MIN] = {"forward-retry-min", "SECONDS", "1", KIND_SECONDS, 0, MAX_WAIT_LIMIT,
                               "shortest backoff before a retry"},
    [OPT_FORWARD_RETRY_MAX] = {"forward-retry-max", "SECONDS", "300", KIND_SECONDS, 0,
                               MAX_WAIT_LIMIT, "longest backoff before a retry (Retry-After too)"},
    [OPT_FORWARD_CONCURRENCY] = {"forward-concurrency", "N", "1", KIND_COUNT, 1,
                                 FORWARD_MAX_CONCURRENCY,
                                 "attempts in flight per forwarded channel; 1 keeps FIFO order"},
    [OPT_FORWARD_SECRET] = {"forward-secret", "FILE", NULL, KIND_PATH, 0, 0,
                            "sign forwarded requests (Standard Webhooks) with the key in FILE"},
    [OPT_FORWARD_CA] = {"forward-ca", "FILE", NULL, KIND_PATH, 0, 0,
                        "a CA certificate (PEM) trusted for https forwarding, besides the "
                        "system's"},
    [OPT_DEDUP_HEADER] = {"dedup-header", "NAME", NULL, KIND_PATH, 0, 0,
                          "a request header whose value keys a POST as Idempotency-Key does "
                          "(which is always honoured, and wins when both are sent), e.g. "
                          "X-GitHub-Delivery"},
    [OPT_DEDUP_WINDOW] = {"dedup-window", "SECONDS", "86400", KIND_SECONDS, 0, DEDUP_WINDOW_LIMIT,
                          "a POST whose key the channel accepted this recently is answered 200 "
                          "duplicate and not stored; 0 keeps no keys"},
    [OPT_DEDUP_MAX_KEYS] = {"dedup-max-keys", "N", "100000", KIND_COUNT, 1, DEDUP_MAX_KEYS_LIMIT,
                            "keys a channel keeps at most (up to 256 bytes each, counted in "
                            "--memory-limit); beyond, the oldest are forgotten"},
    [OPT_AUTH_FILE] = {"auth-file", "FILE", NULL, KIND_PATH, 0, 0,
                       "tokens (their SHA-256) and their scopes, one a line: every request but "
                       "/healthz and /readyz then needs Authorization: Bearer TOKEN; SIGHUP "
                       "reloads it; 'hopper token' makes a token"},
    [OPT_PUBLIC_METRICS] = {"public-metrics", NULL, "no", KIND_FLAG, 0, 0,
                            "with --auth-file, /status, /metrics and GET /channels need no "
                            "token"},
    [OPT_TLS_CERT] = {"tls-cert", "FILE", NULL, KIND_PATH, 0, 0,
                      "serve HTTPS (TLS 1.2 and 1.3) with the certificate chain in FILE (PEM); "
                      "needs --tls-key"},
    [OPT_TLS_KEY] = {"tls-key", "FILE", NULL, KIND_PATH, 0, 0,
                     "the private key (PEM) of --tls-cert; read at start only (rotate by "
                     "restarting)"},
    [OPT_VERIFY] = {"verify", "NAME=SCHEME:FILE", NULL, KIND_VERIFIES, 0, 0,
                    "a POST to channel NAME (or NAME*, a prefix) must be signed: SCHEME github, "
                    "stripe or standard-webhooks, secrets in FILE one a line; again for more"},
};

const char *const option_help_tail =
    "\n"
    "A flag wins over its environment variable. SIZE is a number of bytes,\n"
    "optionally followed by K, KiB, M, MiB, G or GiB (all powers of 1024).\n"
    "SECONDS may have a fraction. A flag without a value (--durable) is set in\n"
    "the environment with " BOOLEAN_WORDS ".\n"
    "LIST is comma-separated header names, or prefixes ending in *, matched\n"
    "case-insensitively, e.g. X-Hub-Signature-256,Stripe-Signature,X-GitHub-*.\n"
    "Content-Type is always kept. Kept header names and values count toward\n"
    "--max-message-bytes; a message stores at most " ENVELOPE_MAX_HEADERS_TEXT " headers,\n"
    "Content-Type included.\n"
    "--verify refuses a POST whose signature is missing, malformed, more than 5\n"
    "minutes from the server's clock (stripe, standard-webhooks) or made with\n"
    "none of FILE's secrets: 401 with Hopper-Error: bad_signature and the body\n"
    "back; nothing is stored. HOPPER_VERIFY takes entries separated by blanks.\n"
    "\n"
    "Without --tls-cert hopper speaks plain http://; with it, only https://.\n"
    "\n"
    "  POST /channels/NAME          store a message (202; 507 when full); ?delay=S\n"
    "                               (or Hopper-Delay: S) makes it visible after S seconds;\n"
    "                               ?ttl=S (or Hopper-TTL: S) drops it if not handed out\n"
    "                               within S seconds\n"
    "  GET  /channels/NAME?wait=S   take the oldest message (200), or 204 after S seconds\n"
    "  GET  /status, /metrics, /healthz, /readyz, /whoami\n"
    "\n"
    "hopper token prints a new random token and the --auth-file line for it.\n";
