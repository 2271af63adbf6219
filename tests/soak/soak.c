/* soak.c - a bounded soak of the real hopper binary: many producers and
 * consumers, random message sizes across the memory/disk boundary and into
 * 507, a graceful restart half-way, and at the end proof that every 202 was
 * received exactly once in per-producer order, that every 507 returned its
 * payload byte for byte, and that the server's RSS stayed under the
 * configured memory plus RSS_HEADROOM_MIB.
 *
 * Usage: soak [--seconds N] [--seed N] [--producers N] [--consumers N]
 *             [--channels N]
 * (environment: HOPPER_SOAK_SECONDS, HOPPER_SOAK_SEED; a flag wins). The
 * default is 180 s, 60 s under AddressSanitizer or ThreadSanitizer (CI runs
 * the suite again in a sanitizer build; a minute there keeps its time
 * down, and the load is paced, not CPU-bound, so it still does about as
 * many cycles a second as a normal build). The default seed
 * is the time; it is printed, and --seed replays the same message sizes,
 * channels and pauses (not the same interleaving: threads race). Exit 0
 * when nothing went wrong, 1 with every fault printed (the first 50).
 *
 * Design
 * - One server, 127.0.0.1 only, with small limits so the load crosses them:
 *   --memory-bytes 256KiB --file-bytes 1MiB --max-disk-files 4
 *   --max-message-bytes 256KiB, CHANNELS channels ("soak-0"...).
 * - PRODUCERS threads POST and CONSUMERS threads GET ?wait=0.5, each over
 *   one keep-alive connection (a libcurl easy handle per thread, reused).
 *   A consumer stays on a channel for 1..STAY_MAX messages, then (or on a
 *   204, or when its GET had to wait) moves: half the time to the channel
 *   that held the most messages at the last look at /status, else to any.
 *   So the consumers follow the backlog and no channel starves. Consumer 0
 *   stays on the last, quiet channel (2% of the messages), where most GETs
 *   wait and a POST wakes them.
 *   Every request has a timeout (REQUEST_TIMEOUT_MS); every loop ends at the
 *   deadline or a bound of its own.
 * - A message: a 40-byte header (magic, producer, channel, seq, length, a
 *   64-bit checksum over the whole body) and then bytes drawn from (run
 *   seed, producer, seq), so a consumer rebuilds the exact body it should
 *   have got and compares every byte. Sizes: log-uniform 40 B..64 KiB; 3%
 *   64..256 KiB; 0.5% exactly --max-message-bytes. The smallest message is
 *   the header (40 bytes), not 1 byte: each one must carry its seq. Half of
 *   the messages go to channel 0, 2% to the quiet one, the rest spread
 *   evenly, so channels fill at different rates.
 * - A producer numbers its messages 0, 1, 2, ...: one POST per number. 202:
 *   accepted. 507: the body must be the payload sent, byte for byte, with
 *   its Content-Type; the number is recorded as refused and never sent
 *   again (the next message takes the next number, after 5..50 ms), so a
 *   producer's accepted numbers have gaps. Any other status or a transport
 *   error is a fault.
 * - Phases, chosen by the main thread from /status (polled every 250 ms):
 *   FLOOD: consumers pause 20..200 ms between GETs, so channels fill, go to
 *   disk and answer 507; it ends FLOOD_AFTER_507_S after the first 507 of
 *   the phase (at most FLOOD_MAX_S). DRAIN: producers pause 10..100 ms
 *   between POSTs and consumers run flat out until no channel has a queue
 *   file (at most DRAIN_MAX_S). Adapting to what the server shows, rather
 *   than fixed times, makes every cycle cross memory -> disk -> 507 -> back
 *   however fast the machine is (ASan, a loaded CI box).
 * - Restart: at the first end of a FLOOD past half-time (channels full, in
 *   memory and on disk) every thread parks between requests, the server
 *   gets SIGTERM (exit 0 expected) and starts again on the same data
 *   directory; /status must show as many messages as before. Then the load
 *   goes on over new connections. (A run too short to reach that restarts
 *   after the producers stop, so every run restarts once.)
 * - Checks. A consumer verifies every byte of each message and that from
 *   each (producer, channel) it sees increasing numbers: GETs take the
 *   oldest, so one consumer's view of a producer's FIFO is a subsequence.
 *   Exactly once is checked on the union: a received-count per (producer,
 *   seq); a second receipt is a fault at once. At the end the producers
 *   stop, the consumers drain until /status shows every channel empty, a
 *   GET ?wait=0 on each channel must be 204, and then every accepted number
 *   must have been received once and every refused one never. A fault
 *   ends the load early; the drain and these checks still run.
 * - RSS: VmRSS of the server sampled every 100 ms and each server's VmHWM
 *   (the kernel's peak) before it is stopped; the peak must stay under
 *   CHANNELS x --memory-bytes + RSS_HEADROOM_MIB (why that constant: at its
 *   definition). Not asserted under a sanitizer, whose shadow memory and
 *   quarantine are the process's memory; everything else is.
 * - The last line is the summary, e.g. "soak: 180 s, 8 producers, ...". */
#include "harness.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* HS_UNDER_SANITIZER (harness.h) knows GCC's and clang's ways of saying so. */
#define UNDER_SANITIZER HS_UNDER_SANITIZER

/* ---- the run's shape ---- */

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

/* ---- the message format ----
 *
 * offset size
 *  0      8   magic "hopsoak1"
 *  8      4   producer, little-endian
 * 12      4   channel index
 * 16      8   seq
 * 24      8   length of the whole body
 * 32      8   checksum: body_hash() of the body with these 8 bytes zero
 * 40      -   bytes from fill_stream(run seed, producer, seq)
 */
#define HEADER_BYTES 40
static const char MAGIC[8] = {'h', 'o', 'p', 's', 'o', 'a', 'k', '1'};

static uint64_t splitmix(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A 64-bit hash of body[0..len) with bytes 32..40 taken as zero. */
static uint64_t body_hash(const unsigned char *body, size_t len)
{
    uint64_t h = 0x6A09E667F3BCC909ull ^ len;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w = i == 32 ? 0 : get64(body + i);
        h ^= w * 0x9E3779B97F4A7C15ull;
        h = (h << 31 | h >> 33) * 0xBF58476D1CE4E5B9ull;
    }
    uint64_t tail = 0;
    for (size_t k = 0; i + k < len; k++)
        tail |= (uint64_t)body[i + k] << (8 * k);
    h ^= tail * 0x94D049BB133111EBull;
    return splitmix(&h);
}

static uint64_t run_seed;

/* Message (producer, channel, seq) of len bytes (len >= HEADER_BYTES) into
 * out. */
static void make_message(unsigned char *out, size_t len, uint32_t producer, uint32_t channel,
                         uint64_t seq)
{
    memcpy(out, MAGIC, 8);
    put32(out + 8, producer);
    put32(out + 12, channel);
    put64(out + 16, seq);
    put64(out + 24, len);
    put64(out + 32, 0);
    uint64_t state = run_seed ^ ((uint64_t)producer << 48) ^ (seq * 0xD1B54A32D192ED03ull);
    size_t i = HEADER_BYTES;
    for (; i + 8 <= len; i += 8)
        put64(out + i, splitmix(&state));
    uint64_t last = splitmix(&state);
    for (size_t k = 0; i < len; i++, k++)
        out[i] = (unsigned char)(last >> (8 * k));
    put64(out + 32, body_hash(out, len));
}

/* ---- faults ---- */

static atomic_long faults;

static void fault(const char *fmt, ...)
{
    long n = atomic_fetch_add(&faults, 1) + 1;
    if (n > MAX_FAULTS_PRINTED)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "soak: FAULT %ld: %s\n", n, line);
}

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

/* ---- the run ---- */

typedef struct options {
    long seconds;
    uint64_t seed;
    int producers, consumers, channels;
} options;

static options opt;
static producer *producers;
static consumer *consumers;

enum { PHASE_FLOOD, PHASE_DRAIN, PHASE_FINAL, PHASE_STOP };
static atomic_int phase;
static atomic_ullong refused_total;        /* for the main thread: 507s so far */
static atomic_llong backlog[MAX_CHANNELS]; /* messages in each channel, from /status */

/* The gate: the main thread closes it to park every worker between two
 * requests (for the restart), and opens it with a new generation, whose
 * port the workers then use over new connections. */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_closed;
static int parked, workers_alive;
static unsigned generation;
static int server_port;

/* The server the RSS sampler reads (0: none) and the peaks seen. */
static pthread_mutex_t rss_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t rss_pid;
static long rss_peak_kib, rss_samples;
static atomic_bool sampler_stop;

static unsigned long long rng_range(uint64_t *rng, unsigned long long lo, unsigned long long hi)
{
    return lo + splitmix(rng) % (hi - lo + 1);
}

static void sleep_ms(unsigned long long ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Near log-uniform in [lo, hi]: a power of two, then uniform inside it. */
static size_t log_uniform(uint64_t *rng, size_t lo, size_t hi)
{
    for (;;) {
        int lo_bit = 63 - __builtin_clzll(lo), hi_bit = 63 - __builtin_clzll(hi);
        int bit = (int)rng_range(rng, (unsigned)lo_bit, (unsigned)hi_bit);
        size_t base = (size_t)1 << bit;
        size_t v = base + (size_t)(splitmix(rng) % base);
        if (v >= lo && v <= hi)
            return v;
    }
}

static size_t message_size(uint64_t *rng)
{
    unsigned long long r = splitmix(rng) % 1000;
    if (r < 5)
        return MAX_MESSAGE_BYTES;
    if (r < 35)
        return log_uniform(rng, 64 * 1024, MAX_MESSAGE_BYTES);
    return log_uniform(rng, HEADER_BYTES, 64 * 1024);
}

/* Half of the messages to channel 0; with 3 channels or more, 2% to the
 * last (quiet) one; the rest spread evenly over the others. */
static uint32_t message_channel(uint64_t *rng)
{
    unsigned long long r = splitmix(rng) % 100;
    if (opt.channels == 1 || r < 50)
        return 0;
    if (opt.channels >= 3 && r < 52)
        return (uint32_t)opt.channels - 1;
    return (uint32_t)rng_range(rng, 1,
                               (unsigned long long)opt.channels - (opt.channels >= 3 ? 2 : 1));
}

/* ---- HTTP over one keep-alive connection per thread ---- */

typedef struct client {
    CURL *curl;
    struct curl_slist *headers;
    bool post;
    unsigned generation;
    int port;
    unsigned char *body;
    size_t len, cap;
} client;

static size_t on_body(char *data, size_t size, size_t n, void *userdata)
{
    client *c = userdata;
    size_t add = size * n;
    if (c->len + add > c->cap) {
        size_t cap = c->cap ? c->cap : 4096;
        while (cap < c->len + add)
            cap *= 2;
        unsigned char *p = realloc(c->body, cap);
        if (p == NULL)
            return 0;
        c->body = p;
        c->cap = cap;
    }
    memcpy(c->body + c->len, data, add);
    c->len += add;
    return add;
}

static void client_release(client *c)
{
    if (c->curl)
        curl_easy_cleanup(c->curl);
    curl_slist_free_all(c->headers);
    c->curl = NULL;
    c->headers = NULL;
}

/* A new handle (so a new connection) for the server on port. */
static void client_connect(client *c, int port, unsigned gen)
{
    client_release(c);
    c->curl = curl_easy_init();
    if (c->curl == NULL) {
        fault("curl_easy_init failed");
        return;
    }
    c->port = port;
    c->generation = gen;
    c->headers = curl_slist_append(NULL, "Expect:");
    if (c->post)
        c->headers = curl_slist_append(c->headers, "Content-Type: application/octet-stream");
    curl_easy_setopt(c->curl, CURLOPT_PROXY, "");
    curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, (long)REQUEST_TIMEOUT_MS);
    curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)HS_PATIENCE_MS);
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, c);
}

/* One request; the body is in c->body[0..c->len). Returns the status, or -1
 * on a transport error (a fault, reported here). */
static long client_perform(client *c, const char *what, char *content_type, size_t type_size)
{
    if (c->curl == NULL)
        return -1;
    c->len = 0;
    CURLcode rc = curl_easy_perform(c->curl);
    if (rc != CURLE_OK) {
        fault("%s: %s", what, curl_easy_strerror(rc));
        return -1;
    }
    long status = 0;
    char *type = NULL;
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(c->curl, CURLINFO_CONTENT_TYPE, &type);
    snprintf(content_type, type_size, "%s", type ? type : "");
    return status;
}

/* Park while the gate is closed; then reconnect if the server changed. */
static void gate_pass(client *c)
{
    pthread_mutex_lock(&gate_lock);
    if (gate_closed) {
        parked++;
        pthread_cond_broadcast(&gate_cond);
        while (gate_closed)
            pthread_cond_wait(&gate_cond, &gate_lock);
        parked--;
    }
    unsigned gen = generation;
    int port = server_port;
    pthread_mutex_unlock(&gate_lock);
    if (c->curl == NULL || gen != c->generation)
        client_connect(c, port, gen);
}

static void worker_exit(void)
{
    pthread_mutex_lock(&gate_lock);
    workers_alive--;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
}

/* Close the gate and wait until every live worker has parked. */
static bool gate_close(void)
{
    pthread_mutex_lock(&gate_lock);
    gate_closed = true;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 2 * HS_PATIENCE_MS / 1000;
    bool ok = true;
    while (ok && parked < workers_alive)
        ok = pthread_cond_timedwait(&gate_cond, &gate_lock, &until) == 0;
    ok = parked >= workers_alive;
    pthread_mutex_unlock(&gate_lock);
    return ok;
}

static void gate_open(int port)
{
    pthread_mutex_lock(&gate_lock);
    generation++;
    server_port = port;
    gate_closed = false;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
}

/* ---- producers ---- */

static seq_chunk *chunk_of(producer *p, uint64_t seq)
{
    if (seq / CHUNK_SEQS >= MAX_CHUNKS)
        return NULL;
    return atomic_load_explicit(&p->chunks[seq / CHUNK_SEQS], memory_order_acquire);
}

static void *producer_main(void *arg)
{
    producer *p = arg;
    uint64_t rng = opt.seed ^ (0x1000 + p->id) * 0x9E3779B97F4A7C15ull;
    unsigned char *body = malloc(MAX_MESSAGE_BYTES);
    client c = {.post = true};
    char path[64], url[128], type[256], what[128];
    if (body == NULL) {
        fault("producer %u: out of memory", p->id);
        goto out;
    }
    while (atomic_load(&phase) < PHASE_FINAL) {
        gate_pass(&c);
        if (atomic_load(&phase) == PHASE_DRAIN)
            sleep_ms(rng_range(&rng, 10, 100));
        uint64_t seq = p->next_seq++;
        if (seq % CHUNK_SEQS == 0) {
            seq_chunk *chunk = seq / CHUNK_SEQS < MAX_CHUNKS ? calloc(1, sizeof *chunk) : NULL;
            if (chunk == NULL) {
                fault("producer %u: no room to record seq %" PRIu64, p->id, seq);
                break;
            }
            atomic_store_explicit(&p->chunks[seq / CHUNK_SEQS], chunk, memory_order_release);
        }
        seq_chunk *chunk = chunk_of(p, seq);
        unsigned char *state = &chunk->state[seq % CHUNK_SEQS];
        uint32_t channel = message_channel(&rng);
        size_t len = message_size(&rng);
        make_message(body, len, p->id, channel, seq);
        snprintf(path, sizeof path, "/channels/soak-%u", channel);
        snprintf(url, sizeof url, "http://127.0.0.1:%d%s", c.port, path);
        snprintf(what, sizeof what, "POST %s (producer %u seq %" PRIu64 ", %zu bytes)", path, p->id,
                 seq, len);
        curl_easy_setopt(c.curl, CURLOPT_URL, url);
        curl_easy_setopt(c.curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c.curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        long status = client_perform(&c, what, type, sizeof type);
        if (status == 202) {
            *state = SEQ_ACCEPTED;
            p->accepted++;
            p->accepted_bytes += len;
        } else if (status == 507) {
            *state = SEQ_REFUSED;
            p->refused++;
            atomic_fetch_add(&refused_total, 1);
            if (c.len != len || memcmp(c.body, body, len) != 0)
                fault("%s: 507 without the payload (%zu bytes back)", what, c.len);
            else if (strcmp(type, "application/octet-stream") != 0)
                fault("%s: 507 with Content-Type '%s'", what, type);
            else
                p->refused_returned++;
            sleep_ms(rng_range(&rng, 5, 50)); /* room for the other channels */
        } else {
            *state = SEQ_UNKNOWN; /* stored or not: a fault either way */
            if (status >= 0)
                fault("%s: status %ld", what, status);
            client_connect(&c, c.port, c.generation);
            sleep_ms(100);
        }
    }
out:
    client_release(&c);
    free(c.body);
    free(body);
    worker_exit();
    return NULL;
}

/* ---- consumers ---- */

static void take(consumer *k, uint32_t channel, const unsigned char *body, size_t len,
                 unsigned char *expect)
{
    if (len < HEADER_BYTES || memcmp(body, MAGIC, 8) != 0) {
        fault("consumer %u: channel %u: a %zu-byte body that is no soak message", k->id, channel,
              len);
        return;
    }
    uint32_t pid = get32(body + 8), ch = get32(body + 12);
    uint64_t seq = get64(body + 16), stated = get64(body + 24);
    if (pid >= (uint32_t)opt.producers || ch != channel || stated != len ||
        stated > MAX_MESSAGE_BYTES) {
        fault("consumer %u: channel %u: header says producer %u channel %u length %" PRIu64
              ", got %zu bytes",
              k->id, channel, pid, ch, stated, len);
        return;
    }
    make_message(expect, len, pid, ch, seq);
    if (get64(body + 32) != body_hash(body, len) || memcmp(body, expect, len) != 0) {
        fault("consumer %u: channel %u: producer %u seq %" PRIu64 ": %zu bytes differ from "
              "what was sent (checksum %s)",
              k->id, channel, pid, seq, len,
              get64(body + 32) == body_hash(body, len) ? "matches" : "wrong");
        return;
    }
    seq_chunk *chunk = chunk_of(&producers[pid], seq);
    if (chunk == NULL) {
        fault("consumer %u: producer %u seq %" PRIu64 " was never sent", k->id, pid, seq);
        return;
    }
    int64_t *last = &k->last_seq[pid * (uint32_t)opt.channels + ch];
    if ((int64_t)seq <= *last)
        fault("consumer %u: channel %u: producer %u seq %" PRIu64 " after seq %" PRId64
              " (out of order)",
              k->id, channel, pid, seq, *last);
    else
        *last = (int64_t)seq;
    unsigned before = atomic_fetch_add(&chunk->received[seq % CHUNK_SEQS], 1);
    if (before != 0)
        fault("consumer %u: producer %u seq %" PRIu64 " received %u times", k->id, pid, seq,
              before + 1);
    k->received++;
    k->received_bytes += len;
}

/* Where a consumer goes next: half the time the channel with the most
 * messages at the last look at /status, else any. */
static uint32_t next_channel(uint64_t *rng)
{
    if (splitmix(rng) % 2 == 0)
        return (uint32_t)rng_range(rng, 0, (unsigned long long)opt.channels - 1);
    uint32_t best = 0;
    for (int i = 1; i < opt.channels; i++)
        if (atomic_load(&backlog[i]) > atomic_load(&backlog[best]))
            best = (uint32_t)i;
    return best;
}

static void *consumer_main(void *arg)
{
    consumer *k = arg;
    uint64_t rng = opt.seed ^ (0x2000 + k->id) * 0x9E3779B97F4A7C15ull;
    unsigned char *expect = malloc(MAX_MESSAGE_BYTES);
    client c = {.post = false};
    char path[64], url[128], type[256], what[128];
    if (expect == NULL) {
        fault("consumer %u: out of memory", k->id);
        goto out;
    }
    /* consumer 0 waits on the quiet channel only: long polls that a POST wakes */
    bool waiter = k->id == 0 && opt.channels >= 3;
    uint32_t channel = waiter ? (uint32_t)opt.channels - 1 : k->id % (uint32_t)opt.channels;
    unsigned stay = (unsigned)rng_range(&rng, 1, STAY_MAX); /* messages before a move */
    int now;
    while ((now = atomic_load(&phase)) != PHASE_STOP) {
        gate_pass(&c);
        if (now == PHASE_FLOOD && !waiter)
            sleep_ms(rng_range(&rng, 20, 200));
        snprintf(path, sizeof path, "/channels/soak-%u?wait=%s", channel,
                 now == PHASE_FINAL ? FINAL_GET_WAIT : GET_WAIT);
        snprintf(url, sizeof url, "http://127.0.0.1:%d%s", c.port, path);
        snprintf(what, sizeof what, "consumer %u: GET %s", k->id, path);
        curl_easy_setopt(c.curl, CURLOPT_URL, url);
        curl_easy_setopt(c.curl, CURLOPT_HTTPGET, 1L);
        double asked = hs_now();
        long status = client_perform(&c, what, type, sizeof type);
        bool waited = hs_now() - asked >= WAITED_S;
        k->gets++;
        if (status == 200) {
            if (strcmp(type, "application/octet-stream") != 0)
                fault("%s: Content-Type '%s'", what, type);
            take(k, channel, c.body, c.len, expect);
            if (!waiter && (--stay == 0 || waited)) {
                channel = next_channel(&rng);
                stay = (unsigned)rng_range(&rng, 1, STAY_MAX);
            }
        } else if (status == 204) {
            k->empty++;
            if (!waiter) {
                channel = next_channel(&rng);
                stay = (unsigned)rng_range(&rng, 1, STAY_MAX);
            }
        } else {
            if (status >= 0)
                fault("%s: status %ld", what, status);
            client_connect(&c, c.port, c.generation);
            sleep_ms(100);
        }
    }
out:
    client_release(&c);
    free(c.body);
    free(expect);
    worker_exit();
    return NULL;
}

/* ---- the server: /status and RSS ---- */

typedef struct channel_view {
    long long messages, in_flight, disk_files;
} channel_view;

/* GET /status into view[0..channels); a channel not there yet counts as
 * empty. False if /status did not answer. */
static bool status_read(const hs_server *s, channel_view *view)
{
    hs_reply r;
    memset(view, 0, sizeof *view * (size_t)opt.channels);
    if (hs_get(s, "/status", &r) != 0 || r.status != 200) {
        hs_reply_free(&r);
        return false;
    }
    json_error_t error;
    json_t *root = json_loadb((const char *)r.body, r.len, 0, &error);
    hs_reply_free(&r);
    if (root == NULL)
        return false;
    json_t *channels = json_object_get(root, "channels");
    for (int i = 0; i < opt.channels; i++) {
        char name[32];
        snprintf(name, sizeof name, "soak-%d", i);
        json_t *ch = json_object_get(channels, name);
        view[i].messages = json_integer_value(json_object_get(ch, "messages"));
        view[i].in_flight = json_integer_value(json_object_get(ch, "in_flight"));
        view[i].disk_files = json_integer_value(json_object_get(ch, "disk_files"));
    }
    json_decref(root);
    return true;
}

static void rss_note(long kib)
{
    if (kib > rss_peak_kib)
        rss_peak_kib = kib;
}

static void *sampler_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&sampler_stop)) {
        pthread_mutex_lock(&rss_lock);
        if (rss_pid > 0) {
            long kib = hs_proc_status_kib(rss_pid, "VmRSS");
            if (kib > 0) {
                rss_note(kib);
                rss_samples++;
            }
        }
        pthread_mutex_unlock(&rss_lock);
        sleep_ms(100);
    }
    return NULL;
}

static void rss_watch(pid_t pid)
{
    pthread_mutex_lock(&rss_lock);
    rss_pid = pid;
    pthread_mutex_unlock(&rss_lock);
}

/* Note the server's VmHWM (its peak so far), then stop it: exit 0 expected. */
static bool server_stop(hs_server *s)
{
    pthread_mutex_lock(&rss_lock);
    rss_note(hs_proc_status_kib(s->pid, "VmHWM"));
    pthread_mutex_unlock(&rss_lock);
    int code = hs_stop(s);
    rss_watch(0);
    if (code != 0)
        fault("the server exited %d on SIGTERM, not 0", code);
    return code == 0;
}

static bool server_start(hs_server *s, const char *dir)
{
    const char *args[] = {SERVER_ARGS, NULL};
    if (hs_start_in(s, dir, args) != 0) {
        fault("the server did not start on %s", dir);
        return false;
    }
    rss_watch(s->pid);
    return true;
}

static long long total_messages(const channel_view *view)
{
    long long n = 0;
    for (int i = 0; i < opt.channels; i++)
        n += view[i].messages;
    return n;
}

/* Park the workers, stop the server, start it on the same directory: it
 * must come back with as many messages as it held. */
static bool restart(hs_server *s, const char *dir, double start)
{
    channel_view before[MAX_CHANNELS], after[MAX_CHANNELS];
    if (!gate_close()) {
        fault("restart: the workers did not park within %d s", 2 * HS_PATIENCE_MS / 1000);
        return false;
    }
    bool ok = status_read(s, before);
    if (!ok)
        fault("restart: /status did not answer before the stop");
    long long disk = 0;
    for (int i = 0; i < opt.channels; i++)
        disk += before[i].disk_files;
    double t0 = hs_now();
    ok = server_stop(s) && ok;
    ok = ok && server_start(s, dir);
    if (ok && !status_read(s, after)) {
        fault("restart: /status did not answer after the start");
        ok = false;
    }
    if (ok && total_messages(after) != total_messages(before))
        fault("restart: %lld messages before the stop, %lld after the start",
              total_messages(before), total_messages(after));
    if (ok)
        printf("soak: restart at %.0f s: %lld messages (%lld queue files) kept across a stop "
               "and start (%.1f s)\n",
               hs_now() - start, total_messages(after), disk, hs_now() - t0);
    fflush(stdout);
    gate_open(s->port);
    return ok;
}

/* ---- options ---- */

static bool parse_number(const char *text, unsigned long long max, unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v > max || text[0] == '-')
        return false;
    *out = v;
    return true;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: soak [--seconds N] [--seed N] [--producers N] [--consumers N] "
            "[--channels N]\n"
            "environment: HOPPER_SOAK_SECONDS, HOPPER_SOAK_SEED (a flag wins)\n"
            "default: %d s, seed from the clock, %d producers, %d consumers, %d channels\n",
            DEFAULT_SECONDS, DEFAULT_PRODUCERS, DEFAULT_CONSUMERS, DEFAULT_CHANNELS);
}

/* 0 to run, 1 for --help, 2 for a bad argument. */
static int parse_options(int argc, char **argv)
{
    unsigned long long v;
    opt.seconds = DEFAULT_SECONDS;
    opt.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    opt.producers = DEFAULT_PRODUCERS;
    opt.consumers = DEFAULT_CONSUMERS;
    opt.channels = DEFAULT_CHANNELS;
    const char *env = getenv("HOPPER_SOAK_SECONDS");
    if (env && *env) {
        if (!parse_number(env, 1000000, &v) || v == 0) {
            fprintf(stderr, "soak: HOPPER_SOAK_SECONDS=%s is not a number of seconds\n", env);
            return 2;
        }
        opt.seconds = (long)v;
    }
    env = getenv("HOPPER_SOAK_SEED");
    if (env && *env) {
        if (!parse_number(env, UINT64_MAX, &v)) {
            fprintf(stderr, "soak: HOPPER_SOAK_SEED=%s is not a number\n", env);
            return 2;
        }
        opt.seed = v;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 1;
        }
        struct {
            const char *name;
            unsigned long long min, max;
        } const flags[] = {{"--seconds", 1, 1000000},
                           {"--seed", 0, UINT64_MAX},
                           {"--producers", 1, MAX_THREADS},
                           {"--consumers", 1, MAX_THREADS},
                           {"--channels", 1, MAX_CHANNELS}};
        size_t f = 0;
        while (f < sizeof flags / sizeof flags[0] && strcmp(argv[i], flags[f].name) != 0)
            f++;
        if (f == sizeof flags / sizeof flags[0] || i + 1 == argc ||
            !parse_number(argv[i + 1], flags[f].max, &v) || v < flags[f].min) {
            fprintf(stderr, "soak: bad argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
        i++;
        switch (f) {
        case 0:
            opt.seconds = (long)v;
            break;
        case 1:
            opt.seed = v;
            break;
        case 2:
            opt.producers = (int)v;
            break;
        case 3:
            opt.consumers = (int)v;
            break;
        default:
            opt.channels = (int)v;
            break;
        }
    }
    return 0;
}

/* ---- the end: every seq accounted for ---- */

typedef struct totals {
    unsigned long long accepted, refused, refused_returned, accepted_bytes;
    unsigned long long received, received_bytes, gets, empty, lost, unknown;
} totals;

static void account(totals *t)
{
    memset(t, 0, sizeof *t);
    for (int i = 0; i < opt.producers; i++) {
        producer *p = &producers[i];
        t->accepted += p->accepted;
        t->refused += p->refused;
        t->refused_returned += p->refused_returned;
        t->accepted_bytes += p->accepted_bytes;
        for (uint64_t seq = 0; seq < p->next_seq; seq++) {
            seq_chunk *chunk = chunk_of(p, seq);
            if (chunk == NULL)
                break;
            unsigned got = atomic_load(&chunk->received[seq % CHUNK_SEQS]);
            unsigned char state = chunk->state[seq % CHUNK_SEQS];
            if (state == SEQ_ACCEPTED && got == 0) {
                t->lost++;
                fault("producer %d seq %" PRIu64 ": 202, never received", i, seq);
            } else if (state == SEQ_REFUSED && got != 0) {
                fault("producer %d seq %" PRIu64 ": 507, yet received", i, seq);
            } else if (state == SEQ_UNSENT && got != 0) {
                fault("producer %d seq %" PRIu64 ": never sent, yet received", i, seq);
            } else if (state == SEQ_UNKNOWN) {
                t->unknown++;
            }
        }
    }
    for (int i = 0; i < opt.consumers; i++) {
        t->received += consumers[i].received;
        t->received_bytes += consumers[i].received_bytes;
        t->gets += consumers[i].gets;
        t->empty += consumers[i].empty;
    }
}

int main(int argc, char **argv)
{
    switch (parse_options(argc, argv)) {
    case 0:
        break;
    case 1:
        return 0;
    default:
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    run_seed = opt.seed;
    printf("soak: seed %" PRIu64 " (replay: --seed %" PRIu64 "), %ld s, %d producers, %d "
           "consumers, %d channels, server "
           "--memory-bytes 256KiB --file-bytes 1MiB "
           "--max-disk-files 4 --max-message-bytes 256KiB%s\n",
           opt.seed, opt.seed, opt.seconds, opt.producers, opt.consumers, opt.channels,
           UNDER_SANITIZER ? " (sanitizer build: RSS not asserted)" : "");
    curl_global_init(CURL_GLOBAL_DEFAULT);

    char dir[256];
    hs_server s;
    if (hs_make_dir(dir, sizeof dir) != 0)
        return 1;
    pthread_t sampler;
    pthread_create(&sampler, NULL, sampler_main, NULL);
    if (!server_start(&s, dir)) {
        atomic_store(&sampler_stop, true);
        pthread_join(sampler, NULL);
        hs_remove_tree(dir);
        return 1;
    }
    channel_view view[MAX_CHANNELS];
    status_read(&s, view); /* the harness's curl setup, before any thread */

    producers = calloc((size_t)opt.producers, sizeof *producers);
    consumers = calloc((size_t)opt.consumers, sizeof *consumers);
    if (producers == NULL || consumers == NULL) {
        fprintf(stderr, "soak: out of memory\n");
        return 1;
    }
    server_port = s.port;
    workers_alive = opt.producers + opt.consumers;
    atomic_store(&phase, PHASE_FLOOD);
    for (int i = 0; i < opt.consumers; i++) {
        consumers[i].id = (uint32_t)i;
        consumers[i].last_seq = malloc(sizeof(int64_t) * (size_t)(opt.producers * opt.channels));
        for (int j = 0; j < opt.producers * opt.channels; j++)
            consumers[i].last_seq[j] = -1;
        pthread_create(&consumers[i].thread, NULL, consumer_main, &consumers[i]);
    }
    for (int i = 0; i < opt.producers; i++) {
        producers[i].id = (uint32_t)i;
        pthread_create(&producers[i].thread, NULL, producer_main, &producers[i]);
    }

    /* The phases, until the deadline. */
    double start = hs_now(), deadline = start + (double)opt.seconds;
    double phase_start = start, first_507 = 0, next_progress = start + PROGRESS_EVERY_S;
    unsigned long long refused_at_phase = 0;
    long long max_disk_files = 0;
    int cycles = 0;
    bool restarted = false, server_up = true;
    while (server_up && hs_now() < deadline && atomic_load(&faults) == 0) {
        usleep(STATUS_POLL_US);
        double now = hs_now();
        if (!status_read(&s, view)) {
            fault("/status did not answer");
            break;
        }
        long long disk = 0;
        for (int i = 0; i < opt.channels; i++) {
            disk += view[i].disk_files;
            atomic_store(&backlog[i], view[i].messages);
            if (view[i].disk_files > max_disk_files)
                max_disk_files = view[i].disk_files;
        }
        if (atomic_load(&phase) == PHASE_FLOOD) {
            if (first_507 == 0 && atomic_load(&refused_total) > refused_at_phase)
                first_507 = now;
            if ((first_507 > 0 && now - first_507 >= FLOOD_AFTER_507_S) ||
                now - phase_start >= FLOOD_MAX_S) {
                if (!restarted && now - start >= opt.seconds / 2.0) {
                    server_up = restart(&s, dir, start);
                    restarted = true;
                }
                atomic_store(&phase, PHASE_DRAIN);
                phase_start = hs_now();
            }
        } else if ((disk == 0 && now - phase_start >= DRAIN_MIN_S) ||
                   now - phase_start >= DRAIN_MAX_S) {
            atomic_store(&phase, PHASE_FLOOD);
            cycles++;
            phase_start = now;
            first_507 = 0;
            refused_at_phase = atomic_load(&refused_total);
        }
        if (now >= next_progress) {
            pthread_mutex_lock(&rss_lock);
            double peak = rss_peak_kib / 1024.0;
            pthread_mutex_unlock(&rss_lock);
            printf("soak: %.0f s: %d cycles, %llu refused so far, %lld messages queued, "
                   "peak RSS %.1f MiB\n",
                   now - start, cycles, atomic_load(&refused_total), total_messages(view), peak);
            next_progress += PROGRESS_EVERY_S;
        }
    }
    double load_seconds = hs_now() - start;

    /* The producers stop; the consumers take everything left. */
    atomic_store(&phase, PHASE_FINAL);
    for (int i = 0; i < opt.producers; i++)
        pthread_join(producers[i].thread, NULL);
    if (server_up && !restarted) {
        server_up = restart(&s, dir, start);
        restarted = true;
    }
    double drain_deadline = hs_now() + FINAL_DRAIN_S;
    bool empty = false;
    while (server_up && !empty && hs_now() < drain_deadline) {
        usleep(STATUS_POLL_US);
        if (status_read(&s, view)) {
            empty = true;
            for (int i = 0; i < opt.channels; i++)
                empty = empty && view[i].messages == 0 && view[i].in_flight == 0;
        }
    }
    if (server_up && !empty)
        fault("the channels still hold %lld messages after %.0f s of draining",
              total_messages(view), FINAL_DRAIN_S);
    atomic_store(&phase, PHASE_STOP);
    for (int i = 0; i < opt.consumers; i++)
        pthread_join(consumers[i].thread, NULL);
    for (int i = 0; server_up && i < opt.channels; i++) {
        char path[64];
        snprintf(path, sizeof path, "/channels/soak-%d?wait=0", i);
        hs_reply r;
        if (hs_get(&s, path, &r) != 0 || r.status != 204)
            fault("GET %s after the drain: %ld, not 204", path, r.status);
        hs_reply_free(&r);
    }
    if (server_up)
        server_stop(&s);
    atomic_store(&sampler_stop, true);
    pthread_join(sampler, NULL);

    totals t;
    account(&t);
    if (t.refused_returned != t.refused)
        fault("%llu of %llu 507s did not return their payload", t.refused - t.refused_returned,
              t.refused);
    if (t.received != t.accepted)
        fault("%llu accepted, %llu received", t.accepted, t.received);
    if (t.refused == 0)
        fault("no POST was refused with 507: the load never filled a channel");
    if (max_disk_files == 0)
        fault("no channel ever had a queue file: the load never crossed memory to disk");
    double bound_mib = opt.channels * (MEMORY_BYTES / 1048576.0) + RSS_HEADROOM_MIB;
    double peak_mib = rss_peak_kib / 1024.0;
    if (!UNDER_SANITIZER && peak_mib > bound_mib)
        fault("peak RSS %.1f MiB over the bound %.1f MiB", peak_mib, bound_mib);

    long total_faults = atomic_load(&faults);
    printf("soak: %llu POSTs (%llu refused), %llu GETs (%llu answered 204), %.1f MiB received\n",
           t.accepted + t.refused + t.unknown, t.refused, t.gets, t.empty,
           t.received_bytes / 1048576.0);
    printf("soak: %.0f s, %d producers, %d consumers, %d channels, seed %" PRIu64 ": %llu "
           "accepted (%.1f MiB), %llu received once in order, %llu refused with payload "
           "returned, %d flood/drain cycles, up to %lld queue files a channel, %s, peak RSS "
           "%.1f MiB (bound %.1f MiB%s, %ld samples), %ld faults\n",
           load_seconds, opt.producers, opt.consumers, opt.channels, opt.seed, t.accepted,
           t.accepted_bytes / 1048576.0, t.received, t.refused_returned, cycles, max_disk_files,
           restarted ? "1 restart" : "no restart", peak_mib, bound_mib,
           UNDER_SANITIZER ? ", not asserted under a sanitizer" : "", rss_samples, total_faults);

    if (total_faults == 0 || getenv("HOPPER_TEST_KEEP_LOGS") == NULL)
        hs_remove_tree(dir);
    else
        fprintf(stderr, "soak: data directory kept: %s\n", dir);
    for (int i = 0; i < opt.producers; i++)
        for (size_t c = 0; c < MAX_CHUNKS && producers[i].chunks[c]; c++)
            free(producers[i].chunks[c]);
    for (int i = 0; i < opt.consumers; i++)
        free(consumers[i].last_seq);
    free(producers);
    free(consumers);
    curl_global_cleanup();
    return total_faults == 0 ? 0 : 1;
}
