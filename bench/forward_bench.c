/* forward_bench.c - the hopper side of bench/forward (issue 15's forwarding
 * benchmark): how fast hopper's forwarding engine hands a backlog to a
 * receiver. A fresh hopper without forwarding takes --messages messages of
 * 1 KiB into channel fw from P senders (threads, one keep-alive connection
 * each); then it is restarted on the same data directory with --forward
 * fw=URL and --forward-concurrency N, and /metrics is read every 50 ms
 * until hopper_forward_attempts_total{channel="fw",outcome="ok"} reaches
 * --messages. The rate is messages / (time from the restart to then): a
 * backlog left while the receiver was down, the recovery at start counted
 * in, with no POSTs taking CPU from the engine. A run that has not
 * forwarded everything after --timeout seconds (default 300) stops there
 * and reports what it forwarded in that time. Any POST not answered 202,
 * any attempt with outcome retry or dead, or a message neither forwarded
 * nor still held fails the run.
 *
 * The receiver is not started here: bench/forward starts nginx (return
 * 204) and measures wrk against the same URL.
 *
 * Usage: hopper-bench-forward --target URL [--hopper PATH] [--concurrency N]
 *                             [--messages N] [--senders P] [--timeout S]
 *                             [--numbers]
 * Prints one line of what it measured; with --numbers only "MSG_PER_S
 * POST_SECONDS TOTAL_SECONDS FORWARDED MSG_PER_S" for bench/forward
 * (FORWARDED below --messages: the run timed out; the rate comes twice, where
 * an earlier version gave the rate after the POSTs). Every request goes to 127.0.0.1 (the
 * target must be local too); a run stops after --timeout seconds at the
 * latest. */
#include "bench_http.h"
#include "bench_server.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROG "hopper-bench-forward"
#define MESSAGE_BYTES 1024
#define MAX_SENDERS 64
#define POLL_S 0.05
#define MIN_DRAIN_S 0.5 /* shortest stretch after the POSTs whose rate is reported */
#define CHANNEL "fw"

typedef struct run_ctx {
    int port;
    int messages;
    int senders;
    pthread_barrier_t start;
    double deadline;
    atomic_int next;          /* the next message to send, shared by the senders */
    atomic_int failures;      /* POSTs not answered 202 */
    atomic_int finished;      /* senders done */
    _Atomic double posted_at; /* bench_now() when the last sender finished */
} run_ctx;

static void *sender(void *arg)
{
    run_ctx *r = arg;
    static const char payload[MESSAGE_BYTES] = {'x'};
    bench_conn c;
    bench_response resp;
    if (bench_conn_open(&c, r->port) != 0)
        r->failures++;
    pthread_barrier_wait(&r->start);
    while (c.fd >= 0 && atomic_fetch_add(&r->next, 1) < r->messages && bench_now() < r->deadline)
        if (bench_conn_request(&c, "POST", "/channels/" CHANNEL, payload, sizeof payload, &resp) !=
                0 ||
            resp.status != 202)
            r->failures++;
    bench_conn_close(&c);
    if (atomic_fetch_add(&r->finished, 1) + 1 == r->senders)
        r->posted_at = bench_now();
    return NULL;
}

/* The forwarding counters of channel fw, from one read of /metrics. */
typedef struct counts {
    double ok, retry, dead, held, sent; /* sent: recovered at the restart, all of the backlog */
} counts;

static bool read_counts(int port, counts *out)
{
    bench_conn c;
    bench_response r;
    if (bench_conn_open(&c, port) != 0)
        return false;
    bool got = bench_conn_request(&c, "GET", "/metrics", NULL, 0, &r) == 0 && r.status == 200;
    if (got) {
#define SUM(name) bench_metrics_sum(r.body, r.body_len, name)
        out->ok = SUM("hopper_forward_attempts_total{channel=\"" CHANNEL "\",outcome=\"ok\"}");
        out->retry =
            SUM("hopper_forward_attempts_total{channel=\"" CHANNEL "\",outcome=\"retry\"}");
        out->dead = SUM("hopper_forward_attempts_total{channel=\"" CHANNEL "\",outcome=\"dead\"}");
        out->held = SUM("hopper_channel_messages{channel=\"" CHANNEL "\"}");
        out->sent = SUM("hopper_messages_recovered_total{channel=\"" CHANNEL "\"}");
#undef SUM
    }
    bench_conn_close(&c);
    return got;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
    const char *bin = HOPPER_BIN, *target = NULL;
    int concurrency = 1, messages = 100000, senders = 8, timeout = 300;
    bool numbers = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--hopper") == 0 && i + 1 < argc) {
            bin = argv[++i];
        } else if (strcmp(argv[i], "--target") == 0 && i + 1 < argc) {
            target = argv[++i];
        } else if (strcmp(argv[i], "--concurrency") == 0 && i + 1 < argc) {
            concurrency = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--messages") == 0 && i + 1 < argc) {
            messages = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--senders") == 0 && i + 1 < argc) {
            senders = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            timeout = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--numbers") == 0) {
            numbers = true;
        } else {
            fprintf(stderr, "usage: " PROG " --target URL [--hopper PATH] [--concurrency N] "
                            "[--messages N] [--senders P] [--timeout S] [--numbers]\n");
            return 2;
        }
    }
    if (target == NULL || strncmp(target, "http://127.0.0.1:", 17) != 0)
        bench_die(PROG, "--target must be an http://127.0.0.1:PORT/ URL");
    if (messages < 1 || senders < 1 || senders > MAX_SENDERS || senders > messages || timeout < 1)
        bench_die(PROG, "--messages and --timeout must be positive, --senders 1..64 and at most "
                        "--messages");

    signal(SIGPIPE, SIG_IGN);
    char forward[2200], conc[16];
    snprintf(forward, sizeof forward, CHANNEL "=%s", target);
    snprintf(conc, sizeof conc, "%d", concurrency);
    /* First the backlog, with no forwarding: the senders' POSTs would
     * otherwise take the CPU the engine is measured on. Then a restart
     * with --forward on the same data directory: what the clock measures
     * is a backlog handed to a receiver that was down (the recovery of
     * the queue files counted in). */
    const char *const plain[] = {"--memory-limit", "256MiB", "--disk-limit", "2GiB", NULL};
    const char *const forwarding[] = {"--forward",    forward,          "--forward-concurrency",
                                      conc,           "--memory-limit", "256MiB",
                                      "--disk-limit", "2GiB",           NULL};
    bench_server s;
    bench_server_start(&s, bin, plain);

    run_ctx r = {.port = s.port, .messages = messages, .senders = senders};
    pthread_barrier_init(&r.start, NULL, (unsigned)senders + 1);
    pthread_t t[MAX_SENDERS];
    for (int i = 0; i < senders; i++)
        pthread_create(&t[i], NULL, sender, &r);
    r.deadline = bench_now() + timeout;
    double p0 = bench_now();
    pthread_barrier_wait(&r.start);
    for (int i = 0; i < senders; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&r.start);
    if (r.failures)
        bench_die(PROG, "%d POSTs were not answered 202", (int)r.failures);
    if (r.next < messages)
        bench_die(PROG, "the POSTs did not end within %d s", timeout);
    double posting = bench_now() - p0;

    double t0 = bench_now(), at = t0;
    bench_server_restart(&s, bin, forwarding);
    counts c = {0};
    while (c.ok < messages && at < t0 + timeout) {
        sleep_s(POLL_S);
        if (!read_counts(s.port, &c))
            bench_die(PROG, "could not read /metrics");
        at = bench_now();
        if (c.retry > 0 || c.dead > 0)
            bench_die(PROG, "forwarding attempts failed: %.0f retried, %.0f dead", c.retry, c.dead);
    }
    /* at the time limit up to `concurrency` messages are in the engine's
     * slots: taken from the channel, not yet answered */
    counts end;
    if (!read_counts(s.port, &end))
        bench_die(PROG, "could not read /metrics");
    double missing = end.sent - end.ok - end.held;
    if (end.sent != messages || end.ok > messages || missing < 0 || missing > concurrency ||
        end.retry != 0 || end.dead != 0)
        bench_die(PROG,
                  "at the end: %.0f recovered, %.0f forwarded (ok), %.0f retried, %.0f dead, "
                  "%.0f still held; expected %d recovered, all forwarded or held, none retried "
                  "or dead",
                  end.sent, end.ok, end.retry, end.dead, end.held, messages);
    bench_server_stop(&s);

    double total = at - t0;
    if (numbers)
        printf("%.0f %.3f %.3f %.0f %.0f\n", c.ok / total, posting, total, c.ok, c.ok / total);
    else
        printf(PROG ": --forward-concurrency %d: a backlog of %.0f of %d x %d B forwarded in "
                    "%.2f s from the restart (%.0f msg/s%s); posting it (%d senders, no "
                    "forwarding) took %.2f s\n",
               concurrency, c.ok, messages, MESSAGE_BYTES, total, c.ok / total,
               c.ok < messages ? ", time limit reached" : "", senders, posting);
    return 0;
}
