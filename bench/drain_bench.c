/* drain_bench.c - end-to-end throughput over HTTP, memory path against disk
 * path (parts 2 and 3 of bench/README.md).
 *
 * Each run starts two servers on 127.0.0.1 side by side: one with the
 * default limits (every message stays in memory) and one with
 * --memory-bytes small enough that most messages go through queue files
 * (20 KiB a channel: the 50 channels hold 1000 KiB in memory between them).
 * On each server:
 *
 *   preload   50 producers (a thread and a keep-alive connection each) POST
 *             100,000 messages of 100 bytes, 2,000 to each of 50 channels;
 *   drain     then 50 consumers long-poll (GET ?wait=5), one per channel,
 *             until every message is back;
 *   live      then, on 50 fresh channels, 50 producers and 50 consumers run
 *             at the same time.
 *
 * Every body names its channel and sequence number and carries a pattern
 * derived from them; a consumer checks that it receives exactly the
 * expected next message, so a loss, a duplicate, a reordering or a damaged
 * byte stops the benchmark with an error. The figures are messages per
 * second, median of --runs runs; the order of the two servers alternates
 * between runs. Every request goes to 127.0.0.1 and every run is bounded in
 * count and time (RUN_TIMEOUT_S).
 *
 * Usage: hopper-bench-drain [--hopper PATH] [--runs N] [--messages N]
 *                           [--disk-memory-bytes SIZE] [--rows]
 * --rows prints only the summary rows of bench/run's table. */
#include "bench_http.h"
#include "bench_server.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "hopper-bench-drain"
#define CHANNELS 50
#define BODY_BYTES 100
#define MAX_RUNS 15
#define RUN_TIMEOUT_S 120
#define WAIT_S 5

static const char *bin = HOPPER_BIN;

/* The body of message seq of channel ch: a readable prefix, then bytes that
 * depend on both, so a message of another channel or position never
 * matches. */
static void make_body(char *out, int ch, int seq)
{
    int n = snprintf(out, BODY_BYTES, "c%02d s%07d ", ch, seq);
    for (int i = n; i < BODY_BYTES; i++)
        out[i] = (char)('a' + (unsigned)(i * 7 + ch * 13 + seq * 31) % 26);
}

typedef struct phase {
    int port;
    const char *prefix; /* channel names are PREFIX-NN */
    int per_channel;
    double deadline;
    pthread_barrier_t start;
    atomic_int failures;
    char error[256];
    pthread_mutex_t error_lock;
} phase;

typedef struct worker {
    phase *ph;
    int ch;
    pthread_t thread;
} worker;

static void fail(phase *ph, const char *msg, int ch, int seq)
{
    pthread_mutex_lock(&ph->error_lock);
    if (ph->error[0] == 0)
        snprintf(ph->error, sizeof ph->error, "%s (channel %d, message %d)", msg, ch, seq);
    pthread_mutex_unlock(&ph->error_lock);
    atomic_fetch_add(&ph->failures, 1);
}

static void *producer(void *arg)
{
    worker *w = arg;
    phase *ph = w->ph;
    char path[64], body[BODY_BYTES];
    snprintf(path, sizeof path, "/channels/%s-%02d", ph->prefix, w->ch);
    bench_conn c;
    bench_response r;
    if (bench_conn_open(&c, ph->port) != 0)
        fail(ph, "connect", w->ch, 0);
    pthread_barrier_wait(&ph->start);
    for (int seq = 0; c.fd >= 0 && seq < ph->per_channel; seq++) {
        if (atomic_load(&ph->failures) || bench_now() > ph->deadline) {
            fail(ph, "stopped: time limit or another failure", w->ch, seq);
            break;
        }
        make_body(body, w->ch, seq);
        if (bench_conn_request(&c, "POST", path, body, sizeof body, &r) != 0 || r.status != 202)
            fail(ph, "POST not answered 202", w->ch, seq);
    }
    bench_conn_close(&c);
    return NULL;
}

static void *consumer(void *arg)
{
    worker *w = arg;
    phase *ph = w->ph;
    char path[64], want[BODY_BYTES];
    snprintf(path, sizeof path, "/channels/%s-%02d?wait=%d", ph->prefix, w->ch, WAIT_S);
    bench_conn c;
    bench_response r;
    if (bench_conn_open(&c, ph->port) != 0)
        fail(ph, "connect", w->ch, 0);
    pthread_barrier_wait(&ph->start);
    for (int seq = 0; c.fd >= 0 && seq < ph->per_channel;) {
        if (atomic_load(&ph->failures) || bench_now() > ph->deadline) {
            fail(ph, "stopped: time limit or another failure", w->ch, seq);
            break;
        }
        if (bench_conn_request(&c, "GET", path, NULL, 0, &r) != 0) {
            fail(ph, "GET failed", w->ch, seq);
            break;
        }
        if (r.status == 204)
            continue; /* nothing yet: poll again */
        make_body(want, w->ch, seq);
        if (r.status != 200 || r.body_len != BODY_BYTES || memcmp(r.body, want, BODY_BYTES) != 0) {
            fail(ph, "received a message other than the next one sent", w->ch, seq);
            break;
        }
        seq++;
    }
    bench_conn_close(&c);
    return NULL;
}

/* Runs producers and/or consumers on every channel; messages per second. */
static double run_phase(int port, const char *prefix, int per_channel, bool produce, bool consume)
{
    phase ph = {.port = port, .prefix = prefix, .per_channel = per_channel};
    pthread_mutex_init(&ph.error_lock, NULL);
    worker prod[CHANNELS], cons[CHANNELS];
    unsigned threads = (produce ? CHANNELS : 0) + (consume ? CHANNELS : 0);
    pthread_barrier_init(&ph.start, NULL, threads + 1);
    ph.deadline = bench_now() + RUN_TIMEOUT_S;
    for (int i = 0; i < CHANNELS; i++) {
        prod[i] = (worker){.ph = &ph, .ch = i};
        cons[i] = (worker){.ph = &ph, .ch = i};
        if (produce)
            pthread_create(&prod[i].thread, NULL, producer, &prod[i]);
        if (consume)
            pthread_create(&cons[i].thread, NULL, consumer, &cons[i]);
    }
    pthread_barrier_wait(&ph.start);
    double t0 = bench_now();
    for (int i = 0; i < CHANNELS; i++) {
        if (produce)
            pthread_join(prod[i].thread, NULL);
        if (consume)
            pthread_join(cons[i].thread, NULL);
    }
    double secs = bench_now() - t0;
    pthread_barrier_destroy(&ph.start);
    if (atomic_load(&ph.failures))
        bench_die(PROG, "%s: %s", prefix, ph.error);
    return (double)per_channel * CHANNELS / secs;
}

typedef struct figures {
    double preload, drain, live, disk_share;
} figures;

static void run_server(figures *f, const char *const *args, int per_channel, int run)
{
    bench_server s;
    bench_server_start(&s, bin, args);
    char prefix[32];
    snprintf(prefix, sizeof prefix, "r%d", run);
    f->preload = run_phase(s.port, prefix, per_channel, true, false);
    /* how much of the backlog sits in queue files rather than memory */
    double disk = bench_server_metric(&s, "hopper_channel_disk_bytes");
    double mem = bench_server_metric(&s, "hopper_channel_memory_bytes");
    f->disk_share = disk >= 0 && mem >= 0 && disk + mem > 0 ? disk / (disk + mem) : -1;
    f->drain = run_phase(s.port, prefix, per_channel, false, true);
    snprintf(prefix, sizeof prefix, "r%d-live", run);
    f->live = run_phase(s.port, prefix, per_channel, true, true);
    bench_server_stop(&s);
}

int main(int argc, char **argv)
{
    int runs = 3, messages = 100000;
    const char *disk_memory = "20KiB";
    bool rows_only = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--hopper") == 0 && i + 1 < argc)
            bin = argv[++i];
        else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--messages") == 0 && i + 1 < argc)
            messages = atoi(argv[++i]);
        else if (strcmp(argv[i], "--disk-memory-bytes") == 0 && i + 1 < argc)
            disk_memory = argv[++i];
        else if (strcmp(argv[i], "--rows") == 0)
            rows_only = true;
        else {
            fprintf(stderr, "usage: " PROG " [--hopper PATH] [--runs N] [--messages N] "
                            "[--disk-memory-bytes SIZE] [--rows]\n");
            return 2;
        }
    }
    if (runs < 1 || runs > MAX_RUNS || messages < CHANNELS)
        bench_die(PROG, "--runs must be 1..%d and --messages at least %d", MAX_RUNS, CHANNELS);
    signal(SIGPIPE, SIG_IGN);
    int per_channel = messages / CHANNELS;
    const char *mem_args[] = {NULL};
    const char *disk_args[] = {"--memory-bytes", disk_memory, NULL};
    double pm[MAX_RUNS], dm[MAX_RUNS], lm[MAX_RUNS], pd[MAX_RUNS], dd[MAX_RUNS], ld[MAX_RUNS];
    double share[MAX_RUNS];
    if (!rows_only)
        printf("%s: %d messages of %d bytes over %d channels, %d consumers; median of %d runs\n"
               "disk path: --memory-bytes %s a channel\n\n"
               "%4s %-7s %12s %12s %12s %10s\n",
               PROG, per_channel * CHANNELS, BODY_BYTES, CHANNELS, CHANNELS, runs, disk_memory,
               "run", "path", "preload/s", "drain/s", "live/s", "on disk");
    for (int r = 0; r < runs; r++) {
        figures m, d;
        if (r % 2 == 0) {
            run_server(&m, mem_args, per_channel, r);
            run_server(&d, disk_args, per_channel, r);
        } else {
            run_server(&d, disk_args, per_channel, r);
            run_server(&m, mem_args, per_channel, r);
        }
        pm[r] = m.preload, dm[r] = m.drain, lm[r] = m.live;
        pd[r] = d.preload, dd[r] = d.drain, ld[r] = d.live;
        share[r] = d.disk_share;
        if (!rows_only) {
            printf("%4d %-7s %12.0f %12.0f %12.0f %9.0f%%\n", r, "memory", m.preload, m.drain,
                   m.live, m.disk_share * 100);
            printf("%4d %-7s %12.0f %12.0f %12.0f %9.0f%%\n", r, "disk", d.preload, d.drain, d.live,
                   d.disk_share * 100);
            fflush(stdout);
        }
    }
    double mpm = bench_median(pm, runs), mdm = bench_median(dm, runs), mlm = bench_median(lm, runs);
    double mpd = bench_median(pd, runs), mdd = bench_median(dd, runs), mld = bench_median(ld, runs);
    double msh = bench_median(share, runs);
    if (!rows_only)
        printf(
            "\n| part | what | hopper | baseline | ratio | target |\n|---|---|---|---|---|---|\n");
    printf("| 2 drain | preload: %d producers POST %d x %d B to %d channels | %.0f msg/s | | | |\n",
           CHANNELS, per_channel * CHANNELS, BODY_BYTES, CHANNELS, mpm);
    printf("| 2 drain | drain: %d long-polling consumers, each message checked once, in order "
           "| %.0f msg/s | | | |\n",
           CHANNELS, mdm);
    printf("| 2 drain | produce and consume at once (%d + %d) | %.0f msg/s | | | |\n", CHANNELS,
           CHANNELS, mlm);
    printf("| 3 disk | preload, --memory-bytes %s a channel (%.0f%% of the backlog in queue files) "
           "| %.0f msg/s | %.0f msg/s (memory) | %.2fx | |\n",
           disk_memory, msh * 100, mpd, mpm, mpd / mpm);
    printf("| 3 disk | drain through queue files | %.0f msg/s | %.0f msg/s (memory) | %.2fx "
           "| >= 0.5x %s |\n",
           mdd, mdm, mdd / mdm, mdd / mdm >= 0.5 ? "met" : "NOT MET");
    printf("| 3 disk | produce and consume at once | %.0f msg/s | %.0f msg/s (memory) | %.2fx | "
           "|\n",
           mld, mlm, mld / mlm);
    return 0;
}
