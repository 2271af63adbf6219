/* soak.h - what the soak's files share; private to tests/soak/, design atop soak.c. */
#ifndef HOPPER_TESTS_SOAK_SOAK_H
#define HOPPER_TESTS_SOAK_SOAK_H

#include "harness.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* HS_UNDER_SANITIZER (harness.h) knows GCC's and clang's ways of saying so. */
#define UNDER_SANITIZER HS_UNDER_SANITIZER

/* ---- the run's shape: all of its numbers, in one place ---- */

#define DEFAULT_SECONDS (UNDER_SANITIZER ? 60 : 180)
#define DEFAULT_PRODUCERS 8
#define DEFAULT_CONSUMERS 8
#define DEFAULT_CHANNELS 4
#define MAX_THREADS 64
#define MAX_CHANNELS 64

#define MEMORY_BYTES (256 * 1024)
#define MAX_MESSAGE_BYTES (256 * 1024)
#define SERVER_ARGS                                                                                \
    "--memory-bytes", "256KiB", "--file-bytes", "1MiB", "--max-disk-files", "4",                   \
        "--max-message-bytes", "256KiB"

/* What the server may hold in RSS beyond CHANNELS x --memory-bytes (1 MiB
 * here). Its parts: the process at rest, about 5 MiB (bench/README.md part
 * 5); the requests in flight, each holding its body while it is read,
 * stored or sent back with a 507 or a 200: 16 connections (24 with 16
 * producers) x 256 KiB x a few copies, an estimated 18 MiB at worst if all
 * carried the largest message at once; read buffers of queue files and
 * malloc's arenas.
 * 32 MiB covers that worst case with room, and stays far below what a
 * leak or an unbounded backlog in memory would reach over a run that moves
 * a gigabyte (0.85 to 1.25 GiB in 180 s here). Measured peaks (VmHWM and
 * 100 ms samples): 7.1 to 7.6 MiB in five 180 s runs with the defaults,
 * 8.5 MiB with 16 producers and 8 channels. */
#define RSS_HEADROOM_MIB 32

#define REQUEST_TIMEOUT_MS 60000
#define GET_WAIT "0.5"        /* seconds a consumer's GET waits: bounds a pause */
#define STAY_MAX 32           /* messages a consumer takes from a channel before it moves */
#define WAITED_S 0.010        /* a GET that took this long waited: its channel was empty */
#define FINAL_GET_WAIT "0.05" /* in the last drain, when most channels are empty */
#define STATUS_POLL_US 250000
#define FLOOD_AFTER_507_S 2.0
#define FLOOD_MAX_S 20.0
#define DRAIN_MIN_S 1.0
#define DRAIN_MAX_S 15.0
#define FINAL_DRAIN_S 120.0 /* the last drain: everything left, bounded */
#define PROGRESS_EVERY_S 30.0
#define MAX_FAULTS_PRINTED 50

/* ---- per-producer books: what became of each seq, and who received it ---- */

enum { SEQ_UNSENT, SEQ_ACCEPTED, SEQ_REFUSED, SEQ_UNKNOWN };

#define CHUNK_SEQS 65536
#define MAX_CHUNKS 16384 /* a billion seqs per producer: never reached */

typedef struct seq_chunk {
    _Atomic unsigned char received[CHUNK_SEQS]; /* consumers add */
    unsigned char state[CHUNK_SEQS];            /* the producer writes; read after join */
} seq_chunk;

typedef struct producer {
    uint32_t id;
    pthread_t thread;
    _Atomic(seq_chunk *) chunks[MAX_CHUNKS]; /* published by the producer, before the seq is sent */
    uint64_t next_seq;
    unsigned long long accepted, refused, refused_returned, accepted_bytes;
} producer;

typedef struct consumer {
    uint32_t id;
    pthread_t thread;
    int64_t *last_seq; /* [producer * channels + channel]: the last seq seen, -1 none */
    unsigned long long received, received_bytes, gets, empty;
} consumer;

/* ---- the run: soak.c ---- */

typedef struct options {
    long seconds;
    uint64_t seed;
    int producers, consumers, channels;
} options;

extern options opt;
extern producer *producers;
extern consumer *consumers;

enum { PHASE_FLOOD, PHASE_DRAIN, PHASE_FINAL, PHASE_STOP };
extern atomic_int phase;
extern atomic_ullong refused_total;        /* for the main thread: 507s so far */
extern atomic_llong backlog[MAX_CHANNELS]; /* messages in each channel, from /status */

/* Sleeps ms milliseconds, a signal or not. */
void sleep_ms(unsigned long long ms);

/* ---- the messages, the books, the faults: soak_message.c ---- */

extern uint64_t run_seed;  /* every message's bytes derive from it; main sets it first */
extern atomic_long faults; /* how many so far; any ends the load */

/* Prints the fault (the first MAX_FAULTS_PRINTED) and counts it; any thread. */
void fault(const char *fmt, ...);

/* The generator of every random choice: splitmix64 over *state. */
uint64_t splitmix(uint64_t *state);
/* Uniform in [lo, hi]. */
unsigned long long rng_range(uint64_t *rng, unsigned long long lo, unsigned long long hi);

void make_message(unsigned char *out, size_t len, uint32_t producer_id, uint32_t channel,
                  uint64_t seq);
/* A message's length and its channel, drawn as the top of soak.c says. */
size_t message_size(uint64_t *rng);
uint32_t message_channel(uint64_t *rng);

/* The chunk of p's books that holds seq; NULL if p has not published it
 * (or seq is past MAX_CHUNKS). */
seq_chunk *chunk_of(producer *p, uint64_t seq);
/* Consumer k got body[0..len) from channel: check it byte for byte and in
 * order, and count its receipt; a fault if anything is wrong. expect is
 * scratch of MAX_MESSAGE_BYTES. */
void take(consumer *k, uint32_t channel, const unsigned char *body, size_t len,
          unsigned char *expect);

typedef struct totals {
    unsigned long long accepted, refused, refused_returned, accepted_bytes;
    unsigned long long received, received_bytes, gets, empty, lost, unknown;
} totals;

/* After every worker has stopped: sums the books into *t (OUT), and a fault
 * for every seq whose fate and receipts disagree. */
void account(totals *t);

/* ---- HTTP over one keep-alive connection, and the gate: soak_client.c ---- */

/* One worker's connection; body[0..len) holds the last response body. */
typedef struct client {
    CURL *curl;
    struct curl_slist *headers;
    bool post;
    unsigned generation;
    int port;
    unsigned char *body;
    size_t len, cap;
} client;

/* Frees the handle (closing its connection), not the body buffer. */
void client_release(client *c);
void client_connect(client *c, int port, unsigned gen);
long client_perform(client *c, const char *what, char *content_type, size_t type_size);

/* Before any worker starts: the server's port and how many workers pass the
 * gate. */
void gate_init(int port, int workers);
void gate_pass(client *c);
/* A worker's last call: the gate stops waiting for it. */
void worker_exit(void);
/* False if the workers did not all park within 2 x HS_PATIENCE_MS. */
bool gate_close(void);
void gate_open(int port);

/* ---- the threads: soak_workers.c ---- */

/* pthread start routines; arg is the thread's producer or consumer. */
void *producer_main(void *arg);
void *consumer_main(void *arg);

#endif
