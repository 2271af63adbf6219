/* timed_bench.c - messages with times (issue 16): do delays and TTLs cost
 * throughput, and do a million pending delayed messages stay on disk?
 *
 * live     the drain benchmark's live phase (drain_bench.c): on a fresh
 *          server, 50 producers and 50 consumers (a thread and a keep-alive
 *          connection each) at the same time on 50 channels, 100,000
 *          messages of 100 bytes. Once plain; once mixed: 10% of the
 *          messages POSTed with ?delay= uniform in 0..2 s (in ms), 10% with
 *          ?ttl= short (--ttl), the rest plain. Plain and mixed alternate,
 *          each on its own server, --runs times; medians.
 * pending  1,000,000 messages of 100 bytes POSTed with ?delay=3600 by 8
 *          producers into 4 channels of a server started with
 *          --memory-limit 16MiB (and a --disk-limit that holds them): POST
 *          rate, VmRSS every 100 ms and VmHWM, /metrics' delayed messages
 *          and bytes, the data directory's size (du); then a restart on the
 *          same data: time until it listens and until every delayed message
 *          is counted again, RSS then, and a GET ?wait=0 on each channel
 *          must answer 204 (nothing delivered early).
 *
 * Which messages are delayed or carry a TTL, and each delay, follow from
 * the channel and sequence number; a body names both and the client's
 * monotonic time just before its POST was written, then carries bytes that
 * depend on them. A consumer checks each message byte for byte, at most
 * once, the plain and TTL ones in the order sent (delayed ones rejoin the
 * tail when due), a delayed one not before its POST time + delay (minus
 * EARLY_ALLOWANCE_S for the server's ms clock), and gets every message
 * without a TTL; then, once every producer is done, it takes what is left
 * (GET ?wait=0 until 204). TTL'd
 * messages received + the server's hopper_messages_expired_total (/metrics,
 * the counter /status shows as expired_total) must equal those sent. Any
 * failure, or a phase past RUN_TIMEOUT_S, stops the benchmark with exit 1.
 *
 * Rates: the producers' span (first POST to the last POST's answer; the
 * consumers run alongside: the share delivered by then is printed) and
 * the drain end (to the last delivery; in the mixed run up to 2 s more, a
 * delay's tail). The plain/mixed comparison uses the producers' span: the
 * tail is the delay asked for, not work the server could do faster.
 *
 * Usage: hopper-bench-timed [--hopper PATH] [--runs N] [--messages N]
 *                           [--ttl SECONDS] [--only delay|ttl] [--pending N]
 *                           [--rows]
 * --only delay (or ttl) makes the mixed run's 10% TTL'd (or delayed)
 * messages plain, to tell the two costs apart.
 * --runs 0 skips live, --pending 0 skips pending. --rows prints only the
 * summary rows of bench/run's table. Every request goes to 127.0.0.1. */
#include "bench_http.h"
#include "bench_server.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROG "hopper-bench-timed"
#define CHANNELS 50
#define BODY_BYTES 100
#define MAX_RUNS 15
#define RUN_TIMEOUT_S 300
#define WAIT_S 5
#define MAX_DELAY_MS 2000
#define EARLY_ALLOWANCE_S 0.002 /* the server's due time is in whole ms */
#define PENDING_CHANNELS 4
#define PENDING_PRODUCERS 8
#define PENDING_DELAY_S 3600
#define PENDING_FLAGS "--memory-limit", "16MiB", "--disk-limit", "4GiB"
#define SAMPLE_MS 100
#define RECOVERY_TIMEOUT_S 120

enum kind { KIND_PLAIN, KIND_DELAYED, KIND_TTL };

static const char *bin = HOPPER_BIN;
static bool with_delays = true, with_ttls = true; /* --only leaves one out */

static uint32_t mix(int ch, int seq)
{
    uint32_t x = (uint32_t)ch * 2654435761u ^ (uint32_t)seq * 2246822519u;
    x ^= x >> 15, x *= 0x2c1b3c6du, x ^= x >> 12, x *= 0x297a2d39u, x ^= x >> 15;
    return x;
}

/* In a mixed run 1 in 10 is delayed, 1 in 10 has a TTL. */
static enum kind kind_of(bool mixed, int ch, int seq)
{
    uint32_t r = mixed ? mix(ch, seq) % 10 : 9;
    return r == 0 && with_delays ? KIND_DELAYED : r == 1 && with_ttls ? KIND_TTL : KIND_PLAIN;
}

static int delay_ms_of(int ch, int seq)
{
    return (int)((mix(ch, seq) >> 8) % (MAX_DELAY_MS + 1));
}

/* The body of message seq of channel ch POSTed at sent (bench_now()). */
static void make_body(char *out, int ch, int seq, double sent)
{
    int n = snprintf(out, BODY_BYTES, "c%02d s%07d t%.6f ", ch, seq, sent);
    for (int i = n; i < BODY_BYTES; i++)
        out[i] = (char)('a' + (unsigned)(i * 7 + ch * 13 + seq * 31) % 26);
}

typedef struct phase {
    int port;
    const char *prefix; /* channel names are PREFIX-NN */
    int channels, per_worker;
    bool mixed;
    const char *ttl;   /* ?ttl= of the TTL'd messages */
    const char *query; /* if set, every POST's (pending) */
    double deadline, t0, posted_at;
    long delivered_when_posted;
    atomic_long delivered;
    atomic_int producing; /* producers not finished */
    pthread_barrier_t start;
    atomic_int failures;
    char error[256];
    pthread_mutex_t error_lock;
} phase;

typedef struct worker {
    phase *ph;
    int ch; /* producer id (channel ch % channels) or consumer's channel */
    pthread_t thread;
    double end;   /* the last POST answered or message received */
    long ttl_got; /* consumer: TTL'd messages received */
    double *late; /* consumer: delayed messages' receipt - due, seconds */
    size_t nlate;
} worker;

static void fail(phase *ph, const char *msg, int ch, int seq)
{
    pthread_mutex_lock(&ph->error_lock);
    if (ph->error[0] == 0)
        snprintf(ph->error, sizeof ph->error, "%s (channel %d, message %d)", msg, ch, seq);
    pthread_mutex_unlock(&ph->error_lock);
    atomic_fetch_add(&ph->failures, 1);
}

static bool stopped(phase *ph, int ch, int seq)
{
    if (atomic_load(&ph->failures) == 0 && bench_now() <= ph->deadline)
        return false;
    fail(ph, "stopped: time limit or another failure", ch, seq);
    return true;
}

static void post_path(char *path, size_t cap, const phase *ph, int ch, int seq)
{
    int n = snprintf(path, cap, "/channels/%s-%02d", ph->prefix, ch);
    enum kind k = kind_of(ph->mixed, ch, seq);
    if (ph->query)
        snprintf(path + n, cap - (size_t)n, "?%s", ph->query);
    else if (k == KIND_DELAYED)
        snprintf(path + n, cap - (size_t)n, "?delay=%.3f", delay_ms_of(ch, seq) / 1000.0);
    else if (k == KIND_TTL)
        snprintf(path + n, cap - (size_t)n, "?ttl=%s", ph->ttl);
}

static void *producer(void *arg)
{
    worker *w = arg;
    phase *ph = w->ph;
    int ch = w->ch % ph->channels;
    char path[96], body[BODY_BYTES];
    bench_conn c;
    bench_response r;
    if (bench_conn_open(&c, ph->port) != 0)
        fail(ph, "connect", ch, 0);
    pthread_barrier_wait(&ph->start);
    for (int seq = 0; c.fd >= 0 && seq < ph->per_worker && !stopped(ph, ch, seq); seq++) {
        post_path(path, sizeof path, ph, ch, seq);
        make_body(body, w->ch, seq, bench_now());
        if (bench_conn_request(&c, "POST", path, body, sizeof body, &r) != 0 || r.status != 202)
            fail(ph, "POST not answered 202", ch, seq);
    }
    w->end = bench_now();
    atomic_fetch_sub(&ph->producing, 1);
    bench_conn_close(&c);
    return NULL;
}

/* Checks one response of a consumer's GET. OUT: *last, *got (see consumer). */
static bool take(worker *w, const bench_response *r, char *seen, int *last, int *got)
{
    phase *ph = w->ph;
    int ch = -1, seq = -1, n = 0;
    double sent = 0, now = bench_now();
    char want[BODY_BYTES + 1];
    if (r->status == 200 && r->body_len == BODY_BYTES) {
        memcpy(want, r->body, BODY_BYTES);
        want[BODY_BYTES] = 0;
        sscanf(want, "c%d s%d t%lf %n", &ch, &seq, &sent, &n);
    }
    if (n == 0 || ch != w->ch || seq < 0 || seq >= ph->per_worker)
        return fail(ph, "received something not of this channel", w->ch, seq), false;
    make_body(want, ch, seq, sent);
    if (memcmp(want, r->body, BODY_BYTES) != 0 || seen[seq])
        return fail(ph, "a damaged or repeated message", ch, seq), false;
    seen[seq] = 1;
    enum kind k = kind_of(ph->mixed, ch, seq);
    if (k == KIND_DELAYED) {
        double due = sent + delay_ms_of(ch, seq) / 1000.0;
        if (now < due - EARLY_ALLOWANCE_S)
            return fail(ph, "a delayed message came early", ch, seq), false;
        w->late[w->nlate++] = now - due;
    } else if (seq < *last) {
        return fail(ph, "out of order", ch, seq), false;
    } else {
        *last = seq;
    }
    if (k == KIND_TTL)
        w->ttl_got++;
    else
        (*got)++;
    w->end = now;
    atomic_fetch_add(&ph->delivered, 1);
    return true;
}

static void *consumer(void *arg)
{
    worker *w = arg;
    phase *ph = w->ph;
    char path[64], sweep[64], *seen = calloc((size_t)ph->per_worker, 1);
    snprintf(path, sizeof path, "/channels/%s-%02d?wait=%d", ph->prefix, w->ch, WAIT_S);
    snprintf(sweep, sizeof sweep, "/channels/%s-%02d?wait=0", ph->prefix, w->ch);
    int expect = 0, got = 0, last = -1;
    for (int seq = 0; seq < ph->per_worker; seq++)
        expect += kind_of(ph->mixed, w->ch, seq) != KIND_TTL;
    bench_conn c;
    bench_response r;
    if (bench_conn_open(&c, ph->port) != 0 || seen == NULL)
        fail(ph, "connect", w->ch, 0);
    pthread_barrier_wait(&ph->start);
    /* every message without a TTL, then what is left of the TTL'd ones */
    while (c.fd >= 0 && got < expect && !stopped(ph, w->ch, got)) {
        if (bench_conn_request(&c, "GET", path, NULL, 0, &r) != 0)
            fail(ph, "GET failed", w->ch, got);
        else if (r.status != 204 && !take(w, &r, seen, &last, &got))
            break;
    }
    while (atomic_load(&ph->producing) > 0 && !stopped(ph, w->ch, got))
        nanosleep(&(struct timespec){0, 1000000L}, NULL); /* a TTL'd one may be POSTed last */
    while (c.fd >= 0 && !stopped(ph, w->ch, got)) {
        if (bench_conn_request(&c, "GET", sweep, NULL, 0, &r) != 0)
            fail(ph, "GET failed", w->ch, got);
        else if (r.status == 204 || !take(w, &r, seen, &last, &got))
            break;
    }
    bench_conn_close(&c);
    free(seen);
    return NULL;
}

/* Runs the workers from one barrier; producers are joined first, so
 * ph->posted_at and delivered_when_posted mark the end of the POSTs. */
static void run_workers(phase *ph, worker *prod, int nprod, worker *cons, int ncons)
{
    pthread_mutex_init(&ph->error_lock, NULL);
    pthread_barrier_init(&ph->start, NULL, (unsigned)(nprod + ncons + 1));
    ph->deadline = bench_now() + RUN_TIMEOUT_S;
    atomic_store(&ph->producing, nprod);
    for (int i = 0; i < nprod; i++)
        pthread_create(&prod[i].thread, NULL, producer, &prod[i]);
    for (int i = 0; i < ncons; i++)
        pthread_create(&cons[i].thread, NULL, consumer, &cons[i]);
    pthread_barrier_wait(&ph->start);
    ph->t0 = bench_now();
    for (int i = 0; i < nprod; i++)
        pthread_join(prod[i].thread, NULL);
    ph->posted_at = bench_now();
    ph->delivered_when_posted = atomic_load(&ph->delivered);
    for (int i = 0; i < ncons; i++)
        pthread_join(cons[i].thread, NULL);
    pthread_barrier_destroy(&ph->start);
    if (atomic_load(&ph->failures))
        bench_die(PROG, "%s: %s", ph->prefix, ph->error);
}

/* ---- live: plain against mixed ---- */

typedef struct figures {
    double post_rate, drain_rate, post_s, drain_s, caught_up; /* caught_up: share */
    double late_p50, late_p99, late_max;                      /* ms */
    long delayed, ttl_sent, ttl_got, expired;
} figures;

/* Waits (up to 3 s) for TTL'd received + expired to reach those sent. */
static long expired_total(const bench_server *s, long ttl_sent, long ttl_got)
{
    double expired = 0;
    for (double until = bench_now() + 3; bench_now() < until;) {
        expired = bench_server_metric(s, "hopper_messages_expired_total");
        if (ttl_got + (long)expired == ttl_sent)
            break;
        nanosleep(&(struct timespec){0, 50000000L}, NULL);
    }
    return (long)expired;
}

static void sum_late(figures *f, worker *cons, int n)
{
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += cons[i].nlate;
    double *all = malloc((total + 1) * sizeof *all);
    total = 0;
    for (int i = 0; i < n; i++) {
        memcpy(all + total, cons[i].late, cons[i].nlate * sizeof *all);
        total += cons[i].nlate;
        free(cons[i].late);
    }
    f->delayed = (long)total;
    f->late_p50 = bench_percentile(all, total, 50) * 1000;
    f->late_p99 = bench_percentile(all, total, 99) * 1000;
    f->late_max = bench_percentile(all, total, 100) * 1000;
    free(all);
}

static void run_live(figures *f, int per_channel, bool mixed, const char *ttl, int run)
{
    bench_server s;
    bench_server_start(&s, bin, NULL);
    char prefix[32];
    snprintf(prefix, sizeof prefix, "%s%d", mixed ? "mixed" : "plain", run);
    phase ph = {.port = s.port, .prefix = prefix, .channels = CHANNELS};
    ph.per_worker = per_channel, ph.mixed = mixed, ph.ttl = ttl;
    worker prod[CHANNELS], cons[CHANNELS];
    for (int i = 0; i < CHANNELS; i++) {
        prod[i] = (worker){.ph = &ph, .ch = i};
        cons[i] = (worker){.ph = &ph, .ch = i};
        cons[i].late = malloc((size_t)per_channel * sizeof(double));
    }
    run_workers(&ph, prod, CHANNELS, cons, CHANNELS);
    long messages = (long)per_channel * CHANNELS;
    *f = (figures){.post_s = ph.posted_at - ph.t0};
    for (int i = 0; i < CHANNELS; i++) {
        f->drain_s = cons[i].end - ph.t0 > f->drain_s ? cons[i].end - ph.t0 : f->drain_s;
        f->ttl_got += cons[i].ttl_got;
        for (int seq = 0; seq < per_channel; seq++)
            f->ttl_sent += kind_of(mixed, i, seq) == KIND_TTL;
    }
    f->post_rate = messages / f->post_s;
    f->caught_up = (double)ph.delivered_when_posted / (double)atomic_load(&ph.delivered);
    f->expired = expired_total(&s, f->ttl_sent, f->ttl_got);
    f->drain_rate = (double)atomic_load(&ph.delivered) / f->drain_s;
    sum_late(f, cons, CHANNELS);
    double left = bench_server_metric(&s, "hopper_channel_delayed_messages");
    double held = bench_server_metric(&s, "hopper_channel_messages");
    double sent = bench_server_metric(&s, "hopper_messages_sent_total");
    double received = bench_server_metric(&s, "hopper_messages_received_total");
    if (f->ttl_got + f->expired != f->ttl_sent || left != 0 || held != 0)
        bench_die(PROG,
                  "%s: TTL'd received %ld + expired %ld != sent %ld, or %.0f still delayed, or "
                  "%.0f held (server: sent %.0f, received %.0f)",
                  prefix, f->ttl_got, f->expired, f->ttl_sent, left, held, sent, received);
    bench_server_stop(&s);
}

static void print_live(const char *what, const figures *f, int run)
{
    printf("%4d %-6s %10.0f %7.2f %6.1f%% %10.0f %7.2f %7.1f/%.1f/%.1f %6ld %6ld/%ld\n", run, what,
           f->post_rate, f->post_s, f->caught_up * 100, f->drain_rate, f->drain_s, f->late_p50,
           f->late_p99, f->late_max, f->delayed, f->expired, f->ttl_sent);
    fflush(stdout);
}

static double pick(figures *f, int n, size_t offset, double *lo, double *hi)
{
    double v[MAX_RUNS];
    for (int i = 0; i < n; i++)
        v[i] = *(double *)((char *)&f[i] + offset);
    double m = bench_median(v, n);
    *lo = v[0], *hi = v[n - 1];
    return m;
}

static void live_rows(figures *plain, figures *mixed, int runs, const char *ttl, int messages)
{
    double plo, phi, mlo, mhi, dlo, dhi, elo, ehi, x, y;
    double p = pick(plain, runs, offsetof(figures, post_rate), &plo, &phi);
    double m = pick(mixed, runs, offsetof(figures, post_rate), &mlo, &mhi);
    double pd = pick(plain, runs, offsetof(figures, drain_rate), &dlo, &dhi);
    double md = pick(mixed, runs, offsetof(figures, drain_rate), &elo, &ehi);
    double ms = pick(mixed, runs, offsetof(figures, drain_s), &x, &y);
    double spread = (phi - plo) / p, ratio = m / p;
    char ttl_text[48];
    snprintf(ttl_text, sizeof ttl_text, "10%% ?ttl=%s", ttl);
    double l50 = pick(mixed, runs, offsetof(figures, late_p50), &x, &y);
    double l99 = pick(mixed, runs, offsetof(figures, late_p99), &x, &y);
    double lmax = pick(mixed, runs, offsetof(figures, late_max), &x, &y);
    double kept = pick(mixed, runs, offsetof(figures, caught_up), &x, &y);
    long ttl_sent = 0, emin = -1, emax = -1;
    for (int i = 0; i < runs; i++) {
        emin = emin < 0 || mixed[i].expired < emin ? mixed[i].expired : emin;
        emax = mixed[i].expired > emax ? mixed[i].expired : emax;
        ttl_sent = mixed[i].ttl_sent;
    }
    printf("| timed | live, plain: %d producers + %d consumers, %d x %d B, rate over the "
           "producers' span (min-max of %d) | %.0f msg/s (%.0f-%.0f) | | | |\n",
           CHANNELS, CHANNELS, messages, BODY_BYTES, runs, p, plo, phi);
    printf("| timed | live, mixed: %s%s%s, the rest plain; same rate (min-max) | %.0f msg/s "
           "(%.0f-%.0f) | %.0f msg/s (plain) | %.2fx | inside plain's min-max (spread %.0f%% of "
           "its median) %s |\n",
           with_delays ? "10% ?delay= 0-2 s" : "", with_delays && with_ttls ? ", " : "",
           with_ttls ? ttl_text : "", m, mlo, mhi, p, ratio, spread * 100,
           m >= plo && m <= phi ? "met" : "NOT MET");
    printf("| timed | mixed: share of all deliveries made by the time the last POST was "
           "answered (median; plain: 100%%) | %.1f%% | | | |\n",
           kept * 100);
    printf("| timed | live: rate to the last delivery (mixed: its delays' tail, %.2f s to the "
           "end) | %.0f msg/s (%.0f-%.0f) | %.0f msg/s (plain, %.0f-%.0f) | %.2fx | |\n",
           ms, md, elo, ehi, pd, dlo, dhi, md / pd);
    printf("| timed | mixed: delayed messages late by p50 / p99 / max (receipt - POST time - "
           "delay), none early | %.1f / %.1f / %.1f ms | | | never early met |\n",
           l50, l99, lmax);
    printf("| timed | mixed: TTL'd messages expired (hopper_messages_expired_total), received "
           "+ expired = sent, every other message once | %ld-%ld of %ld | | | all accounted met "
           "|\n",
           emin, emax, ttl_sent);
}

static void live(int runs, int messages, const char *ttl, bool rows_only)
{
    figures plain[MAX_RUNS], mixed[MAX_RUNS];
    int per_channel = messages / CHANNELS;
    if (!rows_only)
        printf("%s live: %d x %d B, %d channels, %d + %d; mixed: 10%% delayed 0-%d ms, 10%% "
               "?ttl=%s\n%4s %-6s %10s %7s %7s %10s %7s %17s %6s %6s\n",
               PROG, per_channel * CHANNELS, BODY_BYTES, CHANNELS, CHANNELS, CHANNELS, MAX_DELAY_MS,
               ttl, "run", "kind", "posted/s", "span s", "kept up", "deliv/s", "end s",
               "late p50/p99/max", "delayd", "expired");
    for (int r = 0; r < runs; r++)
        for (int k = 0; k < 2; k++) {
            bool m = (r + k) % 2 == 1;
            run_live(m ? &mixed[r] : &plain[r], per_channel, m, ttl, r);
            if (!rows_only)
                print_live(m ? "mixed" : "plain", m ? &mixed[r] : &plain[r], r);
        }
    live_rows(plain, mixed, runs, ttl, per_channel * CHANNELS);
}

/* ---- pending: a million delayed messages under --memory-limit 16MiB ---- */

typedef struct rss_sampler {
    const bench_server *s;
    double t0;
    atomic_int stop;
    long max_kib, last_kib;
    char trace[4096]; /* "t s: MiB" once a second */
    size_t used;
    pthread_t thread;
} rss_sampler;

static void *sample_rss(void *arg)
{
    rss_sampler *r = arg;
    for (int i = 0; !atomic_load(&r->stop); i++) {
        long kib = bench_server_rss_kib(r->s);
        r->max_kib = kib > r->max_kib ? kib : r->max_kib;
        r->last_kib = kib;
        if (i % 10 == 0 && r->used + 32 < sizeof r->trace)
            r->used += (size_t)snprintf(r->trace + r->used, sizeof r->trace - r->used,
                                        " %.0fs:%.1f", bench_now() - r->t0, kib / 1024.0);
        nanosleep(&(struct timespec){0, SAMPLE_MS * 1000000L}, NULL);
    }
    return NULL;
}

/* The size of dir in KiB (du -sk), or -1. */
static long du_kib(const char *dir)
{
    char cmd[160];
    long kib = -1;
    snprintf(cmd, sizeof cmd, "du -sk '%s'", dir);
    FILE *p = popen(cmd, "r");
    if (p && fscanf(p, "%ld", &kib) != 1)
        kib = -1;
    if (p)
        pclose(p);
    return kib;
}

/* Polls /metrics until want messages are delayed again; seconds, or -1. */
static double wait_delayed(const bench_server *s, double want)
{
    double t0 = bench_now();
    while (bench_now() - t0 < RECOVERY_TIMEOUT_S) {
        if (bench_server_metric(s, "hopper_channel_delayed_messages") == want)
            return bench_now() - t0;
        nanosleep(&(struct timespec){0, 10000000L}, NULL);
    }
    return -1;
}

/* How many channels answer a GET ?wait=0 with something other than 204. */
static int delivered_early(const bench_server *s)
{
    int early = 0;
    bench_conn c;
    bench_response r;
    char path[64];
    for (int ch = 0; ch < PENDING_CHANNELS; ch++) {
        snprintf(path, sizeof path, "/channels/pending-%02d?wait=0", ch);
        if (bench_conn_open(&c, s->port) != 0 ||
            bench_conn_request(&c, "GET", path, NULL, 0, &r) != 0 || r.status != 204)
            early++;
        bench_conn_close(&c);
    }
    return early;
}

typedef struct held {
    long posted, idle_kib, hwm_kib, sample_kib, du_kib, rss_after_kib, hwm_after_kib;
    double post_s, delayed, delayed_bytes, restart_s, counted_s;
    int early;
} held;

static void post_pending(held *h, bench_server *s, int messages, bool rows_only)
{
    char query[32];
    snprintf(query, sizeof query, "delay=%d", PENDING_DELAY_S);
    phase ph = {.port = s->port, .prefix = "pending", .channels = PENDING_CHANNELS};
    ph.per_worker = messages / PENDING_PRODUCERS, ph.query = query;
    worker prod[PENDING_PRODUCERS];
    for (int i = 0; i < PENDING_PRODUCERS; i++)
        prod[i] = (worker){.ph = &ph, .ch = i};
    rss_sampler rs = {.s = s, .t0 = bench_now()};
    h->idle_kib = bench_server_rss_kib(s);
    pthread_create(&rs.thread, NULL, sample_rss, &rs);
    run_workers(&ph, prod, PENDING_PRODUCERS, NULL, 0);
    atomic_store(&rs.stop, 1);
    pthread_join(rs.thread, NULL);
    h->posted = (long)ph.per_worker * PENDING_PRODUCERS;
    h->post_s = ph.posted_at - ph.t0;
    h->sample_kib = rs.max_kib;
    h->hwm_kib = bench_server_status_kib(s, "VmHWM");
    if (!rows_only)
        printf("%s pending: %ld POSTed in %.1f s; VmRSS (MiB) while posting:%s\n", PROG, h->posted,
               h->post_s, rs.trace);
}

static void pending(int messages, bool rows_only)
{
    const char *args[] = {PENDING_FLAGS, NULL};
    bench_server s;
    held h = {0};
    bench_server_start(&s, bin, args);
    post_pending(&h, &s, messages, rows_only);
    h.delayed = bench_server_metric(&s, "hopper_channel_delayed_messages");
    h.delayed_bytes = bench_server_metric(&s, "hopper_channel_delayed_bytes");
    char data[128];
    snprintf(data, sizeof data, "%s/data", s.dir);
    h.du_kib = du_kib(data);
    double t = bench_now();
    bench_server_restart(&s, bin, args);
    h.restart_s = bench_now() - t;
    h.counted_s = wait_delayed(&s, (double)h.posted);
    h.rss_after_kib = bench_server_rss_kib(&s);
    h.hwm_after_kib = bench_server_status_kib(&s, "VmHWM");
    h.early = delivered_early(&s);
    bench_server_stop(&s);
    printf("| timed | pending: %ld x %d B POSTed with ?delay=%d by %d producers into %d "
           "channels, --memory-limit 16MiB | %.0f msg/s (%.1f s) | | | |\n",
           h.posted, BODY_BYTES, PENDING_DELAY_S, PENDING_PRODUCERS, PENDING_CHANNELS,
           h.posted / h.post_s, h.post_s);
    printf("| timed | pending: peak RSS while posting (VmHWM; highest 100 ms sample; idle "
           "before) | %.1f MiB (%.1f; %.1f) | | | < 48 MiB (16 + 32) %s |\n",
           h.hwm_kib / 1024.0, h.sample_kib / 1024.0, h.idle_kib / 1024.0,
           h.hwm_kib < 48 * 1024 ? "met" : "NOT MET");
    printf("| timed | pending: /metrics delayed messages / delayed bytes; data directory (du) "
           "| %.0f / %.1f MiB; %.1f MiB | | | %ld delayed %s |\n",
           h.delayed, h.delayed_bytes / (1024.0 * 1024.0), h.du_kib / 1024.0, h.posted,
           h.delayed == (double)h.posted ? "met" : "NOT MET");
    printf("| timed | pending: restart on the same data (stop + start until it listens; then "
           "until all are counted delayed); RSS then (VmHWM) | %.2f s + %.2f s; %.1f MiB (%.1f) "
           "| | | all delayed, GET ?wait=0 204 on every channel %s |\n",
           h.restart_s, h.counted_s, h.rss_after_kib / 1024.0, h.hwm_after_kib / 1024.0,
           h.counted_s >= 0 && h.early == 0 ? "met" : "NOT MET");
}

int main(int argc, char **argv)
{
    int runs = 5, messages = 100000, pending_messages = 1000000;
    const char *ttl = "0.005";
    bool rows_only = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--hopper") == 0 && i + 1 < argc)
            bin = argv[++i];
        else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--messages") == 0 && i + 1 < argc)
            messages = atoi(argv[++i]);
        else if (strcmp(argv[i], "--ttl") == 0 && i + 1 < argc)
            ttl = argv[++i];
        else if (strcmp(argv[i], "--pending") == 0 && i + 1 < argc)
            pending_messages = atoi(argv[++i]);
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
            with_delays = strcmp(argv[++i], "delay") == 0;
            with_ttls = strcmp(argv[i], "ttl") == 0;
        } else if (strcmp(argv[i], "--rows") == 0)
            rows_only = true;
        else {
            fprintf(stderr, "usage: " PROG " [--hopper PATH] [--runs N] [--messages N] "
                            "[--ttl SECONDS] [--only delay|ttl] [--pending N] [--rows]\n");
            return 2;
        }
    }
    if (runs < 0 || runs > MAX_RUNS || messages < CHANNELS || pending_messages < 0)
        bench_die(PROG, "--runs must be 0..%d and --messages at least %d", MAX_RUNS, CHANNELS);
    signal(SIGPIPE, SIG_IGN);
    if (runs > 0)
        live(runs, messages, ttl, rows_only);
    if (pending_messages >= PENDING_PRODUCERS)
        pending(pending_messages, rows_only);
    return 0;
}
