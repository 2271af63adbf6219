/* durable_bench.c - what --durable costs over HTTP: the hopper server is
 * started twice on 127.0.0.1, once in the default mode and once with
 * --durable, and S concurrent senders (each a thread with its own
 * keep-alive connection) POST 1 KiB messages to one channel of each. Runs
 * of the two modes alternate, so both see the same machine; each figure is
 * the median of --runs runs, and the ratio is durable / default.
 *
 * With --durable a 202 means the message is on disk and fdatasync'd; the
 * senders of one channel share syncs (group commit), so the syncs per
 * message (read from /metrics) show how much sharing there was.
 *
 * Usage: hopper-bench-durable [--hopper PATH] [--runs N] [--messages N]
 *                              [--senders 1,8,64] [--rows]
 * --messages is per run (default 8192), split between the senders. Every
 * request goes to 127.0.0.1; every run is bounded in count and time. */
#include "bench_http.h"
#include "bench_server.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROG "hopper-bench-durable"
#define MESSAGE_BYTES 1024
#define MAX_SENDERS 256
#define MAX_RUNS 51
#define RUN_TIMEOUT_S 120

/* ---- senders ---- */

typedef struct run_ctx {
    int port;
    char channel[64];
    int per_sender;
    pthread_barrier_t start;
    double deadline;
    atomic_int failures;
} run_ctx;

static void *sender(void *arg)
{
    run_ctx *r = arg;
    static const char payload[MESSAGE_BYTES] = {'x'};
    char path[128];
    snprintf(path, sizeof path, "/channels/%s", r->channel);
    bench_conn c;
    bench_response resp;
    if (bench_conn_open(&c, r->port) != 0)
        r->failures++;
    pthread_barrier_wait(&r->start);
    for (int i = 0; c.fd >= 0 && i < r->per_sender && bench_now() < r->deadline; i++)
        if (bench_conn_request(&c, "POST", path, payload, sizeof payload, &resp) != 0 ||
            resp.status != 202)
            r->failures++;
    bench_conn_close(&c);
    return NULL;
}

/* The value of hopper_syncs_total for channel, from /metrics; -1 if absent. */
static double syncs_of(const bench_server *s, const char *channel)
{
    char metric[128];
    snprintf(metric, sizeof metric, "hopper_syncs_total{channel=\"%s\"}", channel);
    return bench_server_metric(s, metric);
}

/* One timed run: messages / seconds. */
static double run_once(int port, const char *channel, int senders, int messages)
{
    run_ctx r = {.port = port, .per_sender = messages / senders};
    snprintf(r.channel, sizeof r.channel, "%s", channel);
    pthread_barrier_init(&r.start, NULL, (unsigned)senders + 1);
    pthread_t t[MAX_SENDERS];
    r.deadline = bench_now() + RUN_TIMEOUT_S;
    for (int i = 0; i < senders; i++)
        pthread_create(&t[i], NULL, sender, &r);
    pthread_barrier_wait(&r.start);
    double t0 = bench_now();
    for (int i = 0; i < senders; i++)
        pthread_join(t[i], NULL);
    double secs = bench_now() - t0;
    pthread_barrier_destroy(&r.start);
    if (r.failures)
        bench_die(PROG, "%s: some POSTs were not answered 202", channel);
    if (bench_now() > r.deadline)
        bench_die(PROG, "%s: a run passed its time limit", channel);
    return (double)(r.per_sender * senders) / secs;
}

int main(int argc, char **argv)
{
    const char *bin = HOPPER_BIN;
    int runs = 5, messages = 8192;
    int senders[16] = {1, 8, 64}, nsenders = 3;
    bool rows_only = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--hopper") == 0 && i + 1 < argc) {
            bin = argv[++i];
        } else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            runs = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--messages") == 0 && i + 1 < argc) {
            messages = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--senders") == 0 && i + 1 < argc) {
            nsenders = 0;
            for (char *p = argv[++i]; *p && nsenders < 16; p++) {
                senders[nsenders++] = (int)strtol(p, &p, 10);
                if (*p != ',')
                    break;
            }
        } else if (strcmp(argv[i], "--rows") == 0) {
            rows_only = true;
        } else {
            fprintf(stderr, "usage: hopper-bench-durable [--hopper PATH] [--runs N] "
                            "[--messages N] [--senders 1,8,64] [--rows]\n");
            return 2;
        }
    }
    if (runs < 1 || runs > MAX_RUNS || messages < 1)
        bench_die(PROG, "--runs must be 1..51 and --messages positive");
    for (int i = 0; i < nsenders; i++)
        if (senders[i] < 1 || senders[i] > MAX_SENDERS || senders[i] > messages)
            bench_die(PROG, "--senders must be 1..256 each, and at most --messages");

    signal(SIGPIPE, SIG_IGN);
    static const char *const durable_args[] = {"--durable", NULL};
    bench_server plain, durable;
    bench_server_start(&plain, bin, NULL);
    bench_server_start(&durable, bin, durable_args);
    /* the human table goes to stdout, or to nowhere with --rows */
    FILE *human = rows_only ? fopen("/dev/null", "w") : stdout;
    if (human == NULL)
        human = stdout;
    fprintf(
        human,
        "hopper-bench-durable: %d-byte POSTs to one channel over 127.0.0.1, %d messages a run,\n"
        "median of %d runs; default and --durable servers side by side, runs alternating\n\n",
        MESSAGE_BYTES, messages, runs);
    fprintf(human, "%8s %14s %14s %8s %12s\n", "senders", "default msg/s", "durable msg/s", "ratio",
            "syncs/msg");
    double row[16][3]; /* default, durable, syncs a message */
    for (int k = 0; k < nsenders; k++) {
        double a[MAX_RUNS], b[MAX_RUNS], syncs = 0;
        for (int r = 0; r < runs; r++) {
            char channel[64];
            snprintf(channel, sizeof channel, "s%d-r%d", senders[k], r);
            /* alternate which mode goes first */
            if (r % 2 == 0) {
                a[r] = run_once(plain.port, channel, senders[k], messages);
                b[r] = run_once(durable.port, channel, senders[k], messages);
            } else {
                b[r] = run_once(durable.port, channel, senders[k], messages);
                a[r] = run_once(plain.port, channel, senders[k], messages);
            }
            double s = syncs_of(&durable, channel);
            syncs += s >= 0 ? s / (double)(messages / senders[k] * senders[k]) : 0;
        }
        double ma = bench_median(a, runs), mb = bench_median(b, runs);
        fprintf(human, "%8d %14.0f %14.0f %7.2fx %12.3f\n", senders[k], ma, mb, mb / ma,
                syncs / runs);
        fflush(human);
        row[k][0] = ma, row[k][1] = mb, row[k][2] = syncs / runs;
    }
    fprintf(human, "\n| part | what | hopper | baseline | ratio | target |\n"
                   "|---|---|---|---|---|---|\n");
    for (int k = 0; k < nsenders; k++)
        printf(
            "| durable | %d B POSTs, %d sender(s), --durable (%.3f syncs a message) | %.0f msg/s "
            "| %.0f msg/s (default) | %.2fx | %s |\n",
            MESSAGE_BYTES, senders[k], row[k][2], row[k][1], row[k][0], row[k][1] / row[k][0],
            senders[k] == 64 ? (row[k][1] / row[k][0] >= 0.5 ? ">= 0.5x met" : ">= 0.5x NOT MET")
                             : "");
    if (human != stdout)
        fclose(human);
    bench_server_stop(&plain);
    bench_server_stop(&durable);
    return 0;
}
