/* memory_bench.c - does the server's memory stay bounded while a backlog
 * far larger than its memory settings builds up with no consumer (part 5
 * of bench/README.md)?
 *
 * Three scenarios, each on a fresh server on 127.0.0.1 (data in a temporary
 * directory under /tmp, removed afterwards):
 *
 *   one channel     1 GiB into one channel under --memory-bytes 16MiB:
 *                   configured memory 16 MiB;
 *   100 channels    1 GiB spread evenly over 100 channels under
 *                   --memory-bytes 1MiB (a channel): configured 100 MiB,
 *                   inside the default --memory-limit (256 MiB);
 *   1000 channels   1 GiB spread evenly over 1000 channels under one
 *                   --memory-limit 64MiB (--max-channels 1000; a channel's
 *                   --memory-bytes at its default, a quarter of that):
 *                   configured 64 MiB, the server-wide budget the bound.
 *
 * Every server also gets --disk-limit of twice the pushed MiB + 512 MiB: room
 * for the push and the reserve (--memory-limit + 8 KiB a channel) it makes.
 *
 * In each, 4 producers (a thread and a keep-alive connection each) POST
 * every message while nothing consumes, so all but the configured memory
 * goes to queue files; then 4 consumers (one per channel when there are
 * fewer; each drains its channels one after another) long-poll (GET
 * ?wait=5) until every message is back, and a last GET ?wait=0 on each
 * channel must find it empty. A sampler thread reads the server's VmRSS
 * every 100 ms from the moment it listens until a moment after the drain
 * ends. A peak shorter than 100 ms can fall between two samples (the memory
 * part of the one-channel drain takes about 25 ms here), so the peak figure
 * is the higher of the highest sample and VmHWM, which the kernel records
 * before it unmaps memory. Both come from the kernel's batched RSS counters
 * and are approximate by a few hundred KiB. The target: that peak, push and
 * drain alike, below the configured memory plus 16 MiB under channel caps
 * (32 and 116 MiB, the issue's) or plus 32 MiB under --memory-limit (96 MiB:
 * the fixed overhead outside the budget that the README plans for). RSS
 * excludes the page cache, so queue file pages the kernel keeps do not
 * count: they are the kernel's to drop. When the push ends, memory is
 * fullest: the budget's memory_bytes is read then (GET /status, whose JSON
 * of 1000 channels adds about 3.5 MiB to the drain's RSS and peak there).
 *
 * Bodies are 64 KiB, 16,384 of them to the GiB, rounded up to a multiple of
 * the streams (16,400 for 100 channels: 164 each; 17,000 for 1000: 17 each,
 * 1062.5 MiB): below the default --max-message-bytes (1 MiB), large enough
 * that 1 GiB takes few requests, small enough that memory holds many (about
 * 250 in 16 MiB, 15 in a 1 MiB channel, 1000 in 64 MiB) so the bound is
 * tested with full memory, not one message. 64 KiB is also below glibc's
 * initial mmap threshold (128 KiB), so the server's buffers come from the
 * malloc heaps, where fragmentation and per-thread arenas would show.
 *
 * Messages travel in streams: 4 in the one channel, one a producer; one a
 * channel with 100 or 1000 (stream s is producer s % 4's, in channel
 * s % channels). A body names its stream and sequence number, then carries
 * bytes that depend on both; the consumer of a channel checks that each
 * stream's messages come back complete, byte for byte, in order and once.
 * A loss, a duplicate, a reordering, a damaged byte or a time limit
 * (RUN_TIMEOUT_S a phase) stops the benchmark with exit 1.
 *
 * With --plot FILE.svg the samples are written to FILE.dat and drawn by
 * gnuplot (when installed: Debian's gnuplot-nox) as RSS against time, one
 * line a scenario with its limit as a dashed line, from the run with the
 * highest peak. The figures are the highest peak over --runs runs and the
 * median push and drain rates. Needs 2 GiB free under /tmp (checked).
 *
 * Usage: hopper-bench-memory [--hopper PATH] [--runs N] [--mebibytes N]
 *                            [--plot FILE.svg] [--rows]
 * --mebibytes is what each scenario pushes (1024, the GiB, by
 * default, rounded up as above; smaller for a quick check). --rows prints
 * only the summary rows of bench/run's table. */
#include "bench_http.h"
#include "bench_server.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>

#define PROG "hopper-bench-memory"
#define BODY_BYTES (64 * 1024)
#define PRODUCERS 4
#define CONSUMERS 4
#define MAX_RUNS 5
#define RUN_TIMEOUT_S 600 /* each of push and drain */
#define WAIT_S 5
#define SAMPLE_MS 100
/* Seconds sampled after the drain: free heap memory goes back every 10 s
 * (server/main.c), so the last sample shows what an idle server keeps. */
#define AFTER_S 12
#define DISK_MARGIN ((uint64_t)1 << 30)
#define MIB (1024.0 * 1024.0)
/* Bytes a body's pattern is taken from, at an offset set by stream and seq */
#define PATTERN_BYTES (BODY_BYTES + 4096)
#define MAX_FLAGS 6

typedef struct scenario {
    const char *what; /* for the tables */
    int channels;
    const char *flags;     /* what bounds its memory, words between single spaces */
    double configured_mib; /* the memory those flags allow */
    double headroom_mib;   /* the target: peak RSS below configured_mib plus this */
} scenario;

static const scenario scenarios[] = {
    {"one channel", 1, "--memory-bytes 16MiB", 16, 16},
    {"100 channels", 100, "--memory-bytes 1MiB", 100, 16},
    {"1000 channels", 1000, "--memory-limit 64MiB --max-channels 1000", 64, 32},
};
#define SCENARIOS ((int)(sizeof scenarios / sizeof scenarios[0]))
static const char *const colors[SCENARIOS] = {"#1f77b4", "#d62728", "#2ca02c"};

static const char *bin = HOPPER_BIN;
static unsigned char pattern[PATTERN_BYTES];

/* ---- bodies ---- */

static void pattern_init(void)
{
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (size_t i = 0; i < PATTERN_BYTES; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
        pattern[i] = (unsigned char)x;
    }
}

/* The body of message seq of stream s: a readable prefix naming both, then
 * pattern bytes from an offset that depends on both. */
static void make_body(unsigned char *out, int s, int seq)
{
    int n = snprintf((char *)out, 32, "st%04d sq%06d ", s, seq);
    size_t off = ((size_t)s * 131 + (size_t)seq * 17) % (PATTERN_BYTES - BODY_BYTES);
    memcpy(out + n, pattern + off, BODY_BYTES - (size_t)n);
}

/* ---- one scenario on one server ---- */

typedef struct sample {
    double t;  /* seconds since the server listened */
    long kib;  /* VmRSS */
    int phase; /* PHASE_* */
} sample;

enum { PHASE_IDLE, PHASE_PUSH, PHASE_DRAIN, PHASE_DONE };

typedef struct run {
    const scenario *sc;
    int port;
    int streams, per_stream; /* stream s goes to channel s % channels, producer s % PRODUCERS */
    double deadline;
    pthread_barrier_t start;
    atomic_int failures;
    char error[256];
    pthread_mutex_t error_lock;

    bench_server *server;
    double t0;
    atomic_int phase;
    sample *samples; /* the sampler's until it is joined */
    size_t nsamples, cap;
} run;

typedef struct worker {
    run *r;
    int id;
    pthread_t thread;
} worker;

static void fail(run *r, const char *msg, int ch, int s, int seq)
{
    pthread_mutex_lock(&r->error_lock);
    if (r->error[0] == 0)
        snprintf(r->error, sizeof r->error, "%s (channel %d, stream %d, message %d)", msg, ch, s,
                 seq);
    pthread_mutex_unlock(&r->error_lock);
    atomic_fetch_add(&r->failures, 1);
}

static bool stopped(run *r, int ch, int s, int seq)
{
    if (atomic_load(&r->failures))
        return true;
    if (bench_now() > r->deadline) {
        fail(r, "stopped: time limit", ch, s, seq);
        return true;
    }
    return false;
}

static void *producer(void *arg)
{
    worker *w = arg;
    run *r = w->r;
    unsigned char *body = malloc(BODY_BYTES);
    char path[64];
    bench_conn c;
    bench_response resp;
    if (bench_conn_open(&c, r->port) != 0)
        fail(r, "connect", -1, -1, 0);
    pthread_barrier_wait(&r->start);
    for (int seq = 0; c.fd >= 0 && seq < r->per_stream; seq++) {
        for (int s = w->id; c.fd >= 0 && s < r->streams; s += PRODUCERS) {
            int ch = s % r->sc->channels;
            if (stopped(r, ch, s, seq))
                goto out;
            snprintf(path, sizeof path, "/channels/mem-%04d", ch);
            make_body(body, s, seq);
            if (bench_conn_request(&c, "POST", path, body, BODY_BYTES, &resp) != 0 ||
                resp.status != 202)
                fail(r, "POST not answered 202", ch, s, seq);
        }
    }
out:
    bench_conn_close(&c);
    free(body);
    return NULL;
}

/* Takes every message of channel ch on c, checking each against the next
 * one expected of its stream; then the channel must be empty. */
static void drain_channel(run *r, bench_conn *c, int ch, int *next, unsigned char *want)
{
    char path[64];
    bench_response resp;
    int expected = 0;
    for (int s = ch; s < r->streams; s += r->sc->channels)
        expected += r->per_stream;
    snprintf(path, sizeof path, "/channels/mem-%04d?wait=%d", ch, WAIT_S);
    for (int got = 0; got < expected;) {
        if (stopped(r, ch, -1, got))
            return;
        if (bench_conn_request(c, "GET", path, NULL, 0, &resp) != 0) {
            fail(r, "GET failed", ch, -1, got);
            return;
        }
        if (resp.status == 204)
            continue; /* nothing within the wait: poll again */
        int s = -1, seq = -1;
        char head[32] = "";
        if (resp.status == 200 && resp.body_len == BODY_BYTES)
            memcpy(head, resp.body, sizeof head - 1);
        if (resp.status != 200 || resp.body_len != BODY_BYTES ||
            sscanf(head, "st%4d sq%6d", &s, &seq) != 2 || s < 0 || s >= r->streams ||
            s % r->sc->channels != ch) {
            fail(r, "received something that is no message of this channel", ch, s, seq);
            return;
        }
        make_body(want, s, next[s]);
        if (memcmp(resp.body, want, BODY_BYTES) != 0) {
            fail(r, "received a message other than its stream's next one, or a damaged one", ch, s,
                 next[s]);
            return;
        }
        next[s]++, got++;
    }
    snprintf(path, sizeof path, "/channels/mem-%04d?wait=0", ch);
    if (bench_conn_request(c, "GET", path, NULL, 0, &resp) != 0 || resp.status != 204)
        fail(r, "the channel still held a message after all were received", ch, -1, expected);
}

static void *consumer(void *arg)
{
    worker *w = arg;
    run *r = w->r;
    int consumers = r->sc->channels < CONSUMERS ? r->sc->channels : CONSUMERS;
    int *next = calloc((size_t)r->streams, sizeof *next);
    unsigned char *want = malloc(BODY_BYTES);
    bench_conn c;
    if (bench_conn_open(&c, r->port) != 0)
        fail(r, "connect", -1, -1, 0);
    pthread_barrier_wait(&r->start);
    for (int ch = w->id; c.fd >= 0 && ch < r->sc->channels && !atomic_load(&r->failures);
         ch += consumers)
        drain_channel(r, &c, ch, next, want);
    bench_conn_close(&c);
    free(want);
    free(next);
    return NULL;
}

static void *sampler(void *arg)
{
    run *r = arg;
    struct timespec tick;
    clock_gettime(CLOCK_MONOTONIC, &tick);
    for (;;) {
        int phase = atomic_load(&r->phase);
        if (r->nsamples == r->cap) {
            size_t cap = r->cap ? r->cap * 2 : 4096;
            sample *m = realloc(r->samples, cap * sizeof *m);
            if (m == NULL)
                return NULL; /* the samples so far stay */
            r->samples = m, r->cap = cap;
        }
        r->samples[r->nsamples++] =
            (sample){bench_now() - r->t0, bench_server_rss_kib(r->server), phase};
        if (phase == PHASE_DONE)
            return NULL;
        tick.tv_nsec += SAMPLE_MS * 1000000L;
        if (tick.tv_nsec >= 1000000000L)
            tick.tv_sec++, tick.tv_nsec -= 1000000000L;
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &tick, NULL);
    }
}

/* Runs producers (or consumers) to the end; seconds taken. */
static double run_phase(run *r, void *(*fn)(void *), int threads)
{
    worker w[PRODUCERS > CONSUMERS ? PRODUCERS : CONSUMERS];
    pthread_barrier_init(&r->start, NULL, (unsigned)threads + 1);
    r->deadline = bench_now() + RUN_TIMEOUT_S;
    for (int i = 0; i < threads; i++) {
        w[i] = (worker){.r = r, .id = i};
        pthread_create(&w[i].thread, NULL, fn, &w[i]);
    }
    pthread_barrier_wait(&r->start);
    double t0 = bench_now();
    for (int i = 0; i < threads; i++)
        pthread_join(w[i].thread, NULL);
    double secs = bench_now() - t0;
    pthread_barrier_destroy(&r->start);
    if (atomic_load(&r->failures)) {
        bench_server_stop(r->server); /* and its data: nothing is left behind */
        bench_die(PROG, "%s: %s", r->sc->what, r->error);
    }
    return secs;
}

typedef struct figures {
    double pushed_mib;                              /* bodies, rounded up to whole streams */
    double idle_mib, push_peak_mib, drain_peak_mib; /* the samples' highest */
    double hwm_push_mib, hwm_mib;                   /* VmHWM when the push ended, at the end */
    double peak_mib;                                /* the higher of VmHWM and the samples */
    double push_mibs, drain_mibs;                   /* MiB/s of bodies */
    double budget_mib, disk_mib; /* the budget's memory_bytes and disk_bytes when the push ended */
    double drain_start;          /* seconds since the server listened */
    double after_mib;            /* the last sample, AFTER_S after the drain */
    sample *samples;
    size_t nsamples;
} figures;

/* The number after "key": in text, in MiB; -1 if it is not there. */
static double field_mib(const char *text, const char *key)
{
    const char *at = strstr(text, key);
    return at ? strtod(at + strlen(key), NULL) / MIB : -1;
}

/* The budget's memory_bytes and disk_bytes from the server's /status. */
static void read_budget(int port, double *memory_mib, double *disk_mib)
{
    bench_conn c;
    bench_response resp;
    *memory_mib = *disk_mib = -1;
    if (bench_conn_open(&c, port) != 0)
        return;
    char *doc = NULL;
    if (bench_conn_request(&c, "GET", "/status", NULL, 0, &resp) == 0 && resp.status == 200 &&
        (doc = malloc(resp.body_len + 1)) != NULL) {
        memcpy(doc, resp.body, resp.body_len);
        doc[resp.body_len] = 0;
        char *budget = strstr(doc, "\"budget\":");
        char *end = budget ? strchr(budget, '}') : NULL; /* the budget object nests none */
        if (end) {
            *end = 0;
            *memory_mib = field_mib(budget, "\"memory_bytes\":");
            *disk_mib = field_mib(budget, "\"disk_bytes\":");
        }
    }
    free(doc);
    bench_conn_close(&c);
}

/* The highest samples of each phase, the last one and the peak. */
static void sum_up(figures *f, const run *r, long hwm_push, long hwm)
{
    long idle = 0, push_peak = 0, drain_peak = 0;
    for (size_t i = 0; i < r->nsamples; i++) {
        long k = r->samples[i].kib;
        if (r->samples[i].phase == PHASE_IDLE && k > idle)
            idle = k;
        if (r->samples[i].phase == PHASE_PUSH && k > push_peak)
            push_peak = k;
        if (r->samples[i].phase >= PHASE_DRAIN && k > drain_peak)
            drain_peak = k;
    }
    f->idle_mib = idle / 1024.0;
    f->after_mib = r->nsamples ? r->samples[r->nsamples - 1].kib / 1024.0 : 0;
    f->push_peak_mib = push_peak / 1024.0;
    f->drain_peak_mib = drain_peak / 1024.0;
    f->hwm_push_mib = hwm_push / 1024.0;
    f->hwm_mib = hwm / 1024.0;
    long peak = hwm > push_peak ? hwm : push_peak;
    f->peak_mib = (peak > drain_peak ? peak : drain_peak) / 1024.0;
    f->samples = r->samples;
    f->nsamples = r->nsamples;
}

/* Starts the server of sc: its flags, and a --disk-limit that holds the
 * push and the reserve many times over (see the top). */
static void start_server(bench_server *s, const scenario *sc, double pushed_mib)
{
    char disk_limit[32], flags[256];
    snprintf(disk_limit, sizeof disk_limit, "%.0fMiB", 2 * pushed_mib + 512);
    snprintf(flags, sizeof flags, "%s", sc->flags);
    const char *args[MAX_FLAGS + 3] = {"--disk-limit", disk_limit};
    int n = 2;
    for (char *p = flags; *p && n < MAX_FLAGS + 2; n++) {
        args[n] = p;
        p += strcspn(p, " ");
        if (*p)
            *p++ = 0;
    }
    bench_server_start(s, bin, args);
}

static void run_scenario(figures *f, const scenario *sc, int mebibytes)
{
    run r = {.sc = sc};
    pthread_mutex_init(&r.error_lock, NULL);
    r.streams = sc->channels > PRODUCERS ? sc->channels : PRODUCERS;
    long messages = (long)mebibytes * 1024 * 1024 / BODY_BYTES;
    r.per_stream = (int)((messages + r.streams - 1) / r.streams);
    f->pushed_mib = (double)r.per_stream * r.streams * BODY_BYTES / MIB;

    bench_server s;
    start_server(&s, sc, f->pushed_mib);
    r.port = s.port;
    r.server = &s;
    r.t0 = bench_now();
    pthread_t sampling;
    pthread_create(&sampling, NULL, sampler, &r);
    struct timespec settle = {0, 300 * 1000000L}; /* a few idle samples first */
    nanosleep(&settle, NULL);

    atomic_store(&r.phase, PHASE_PUSH);
    double push = run_phase(&r, producer, PRODUCERS);
    long hwm_push = bench_server_status_kib(&s, "VmHWM");
    read_budget(s.port, &f->budget_mib, &f->disk_mib);
    f->drain_start = bench_now() - r.t0;
    atomic_store(&r.phase, PHASE_DRAIN);
    int consumers = sc->channels < CONSUMERS ? sc->channels : CONSUMERS;
    double drain = run_phase(&r, consumer, consumers);
    struct timespec after = {AFTER_S, 0}; /* and after, to show what memory is kept */
    nanosleep(&after, NULL);
    atomic_store(&r.phase, PHASE_DONE);
    pthread_join(sampling, NULL);
    long hwm = bench_server_status_kib(&s, "VmHWM");
    bench_server_stop(&s);
    if (hwm_push == 0 || hwm == 0)
        bench_die(PROG, "cannot read VmHWM of the server");
    f->push_mibs = f->pushed_mib / push;
    f->drain_mibs = f->pushed_mib / drain;
    sum_up(f, &r, hwm_push, hwm);
}

/* ---- the plot ---- */

/* Writes the samples of worst[] to dat. */
static void write_samples(const char *dat, const figures *worst)
{
    FILE *f = fopen(dat, "w");
    if (f == NULL)
        bench_die(PROG, "cannot write %s", dat);
    fprintf(f,
            "# " PROG ": server VmRSS every %d ms; one block a scenario\n"
            "# seconds since the server listened, RSS MiB, phase (0 idle 1 push 2 drain)\n",
            SAMPLE_MS);
    for (int i = 0; i < SCENARIOS; i++) {
        fprintf(f, "%s# %s, %s\n", i ? "\n\n" : "", scenarios[i].what, scenarios[i].flags);
        for (size_t k = 0; k < worst[i].nsamples; k++)
            fprintf(f, "%.2f %.2f %d\n", worst[i].samples[k].t, worst[i].samples[k].kib / 1024.0,
                    worst[i].samples[k].phase);
    }
    if (fclose(f) != 0)
        bench_die(PROG, "cannot write %s", dat);
}

/* The plot command: a line a scenario and its target, dashed. */
static void plot_lines(FILE *g, const char *dat)
{
    fprintf(g, "plot ");
    for (int i = 0; i < SCENARIOS; i++) {
        const scenario *sc = &scenarios[i];
        double limit = sc->configured_mib + sc->headroom_mib;
        fprintf(g,
                "'%s' index %d using 1:2 with lines lw 2 lc rgb '%s' title '%s, %s: %.0f MiB "
                "configured, target < %.0f MiB', %.0f with lines dt 2 lw 1.5 lc rgb "
                "'%s' notitle, ",
                dat, i, colors[i], sc->what, sc->flags, sc->configured_mib, limit, limit,
                colors[i]);
    }
    fprintf(g, "NaN with lines dt 3 lc rgb 'gray40' title 'the drain begins (dotted, one per "
               "scenario)'\n");
}

/* Writes the samples of worst[] to FILE.dat and has gnuplot draw svg. */
static void plot(const char *svg, const figures *worst, int mebibytes)
{
    char dat[4096];
    size_t n = strlen(svg);
    if (n > 4 && strcmp(svg + n - 4, ".svg") == 0)
        n -= 4;
    snprintf(dat, sizeof dat, "%.*s.dat", (int)n, svg);
    write_samples(dat, worst);
    if (system("command -v gnuplot >/dev/null 2>&1") != 0) {
        fprintf(stderr,
                PROG ": gnuplot is not installed (apt-get install gnuplot-nox): "
                     "no plot; the samples are in %s\n",
                dat);
        return;
    }
    double ymax = 0; /* a little room above the highest limit */
    for (int i = 0; i < SCENARIOS; i++)
        if (scenarios[i].configured_mib + scenarios[i].headroom_mib > ymax)
            ymax = scenarios[i].configured_mib + scenarios[i].headroom_mib;
    ymax = 20 * (int)(ymax * 1.1 / 20 + 1);
    FILE *g = popen("gnuplot", "w");
    if (g == NULL)
        bench_die(PROG, "cannot run gnuplot");
    fprintf(g,
            "set terminal svg size 1080,640 dynamic font 'sans,13' background rgb 'white'\n"
            "set output '%s'\n"
            "set title \"hopper server RSS while %d MiB is pushed with no consumer, then "
            "drained\\n(sampled every %d ms; dashed: each scenario's target)\"\n"
            "set xlabel 'seconds since the server started' offset 0,0.4\n"
            "set ylabel 'resident set size (MiB)'\n"
            "set grid\nset key below left Left reverse spacing 1.1\nset yrange [0:%.0f]\n",
            svg, mebibytes, SAMPLE_MS, ymax);
    for (int i = 0; i < SCENARIOS; i++)
        fprintf(g, "set arrow from %.2f, graph 0 to %.2f, graph 1 nohead dt 3 lc rgb '%s'\n",
                worst[i].drain_start, worst[i].drain_start, colors[i]);
    plot_lines(g, dat);
    if (pclose(g) != 0)
        bench_die(PROG, "gnuplot failed to draw %s", svg);
    fprintf(stderr, PROG ": plot in %s, samples in %s\n", svg, dat);
}

/* ---- main ---- */

typedef struct options {
    int runs, mebibytes;
    const char *plot_path;
    bool rows_only;
} options;

static void parse_args(options *o, int argc, char **argv)
{
    *o = (options){.runs = 1, .mebibytes = 1024};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--hopper") == 0 && i + 1 < argc)
            bin = argv[++i];
        else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            o->runs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--mebibytes") == 0 && i + 1 < argc)
            o->mebibytes = atoi(argv[++i]);
        else if (strcmp(argv[i], "--plot") == 0 && i + 1 < argc)
            o->plot_path = argv[++i];
        else if (strcmp(argv[i], "--rows") == 0)
            o->rows_only = true;
        else {
            fprintf(stderr, "usage: " PROG " [--hopper PATH] [--runs N] [--mebibytes N] "
                            "[--plot FILE.svg] [--rows]\n");
            exit(2);
        }
    }
    if (o->runs < 1 || o->runs > MAX_RUNS || o->mebibytes < 16 || o->mebibytes > 16384)
        bench_die(PROG, "--runs must be 1..%d and --mebibytes 16..16384", MAX_RUNS);
    if (o->plot_path && (strchr(o->plot_path, '\'') || strchr(o->plot_path, '"')))
        bench_die(PROG, "--plot: a path without quotes, please"); /* gnuplot quotes it */
}

static void check_disk(int mebibytes)
{
    struct statvfs v;
    uint64_t need = (uint64_t)mebibytes << 20;
    need = need + DISK_MARGIN > ((uint64_t)2 << 30) ? need + DISK_MARGIN : (uint64_t)2 << 30;
    if (statvfs("/tmp", &v) != 0)
        bench_die(PROG, "cannot read the free space of /tmp");
    uint64_t avail = (uint64_t)v.f_bavail * v.f_frsize;
    if (avail < need)
        bench_die(PROG, "/tmp has %.1f GiB free; the queue files of one scenario need %.1f GiB",
                  avail / MIB / 1024, need / MIB / 1024);
}

/* Runs every scenario runs times into all[scenario][run], printing a line
 * a run unless only the rows are wanted. */
static void run_all(figures all[][MAX_RUNS], const options *o)
{
    if (!o->rows_only)
        printf("%s: %d MiB (rounded up) of %d KiB bodies per scenario, %d producers, no "
               "consumer until the push ends; RSS every %d ms; %d run%s\n\nMiB: RSS idle, "
               "highest sample pushing, draining, VmHWM at push end, at the end; the budget's "
               "memory_bytes and disk_bytes at push end\n\n"
               "%4s %-13s %6s %10s %10s %9s %9s %10s %7s %8s %10s %11s\n",
               PROG, o->mebibytes, BODY_BYTES / 1024, PRODUCERS, SAMPLE_MS, o->runs,
               o->runs > 1 ? "s" : "", "run", "scenario", "idle", "push peak", "drain peak",
               "HWM push", "HWM end", "configured", "budget", "on disk", "push MiB/s",
               "drain MiB/s");
    for (int r = 0; r < o->runs; r++)
        for (int i = 0; i < SCENARIOS; i++) {
            check_disk(o->mebibytes);
            figures *f = &all[i][r];
            run_scenario(f, &scenarios[i], o->mebibytes);
            if (o->rows_only)
                continue;
            printf("%4d %-13s %6.1f %10.1f %10.1f %9.1f %9.1f %10.0f %7.1f %8.0f %10.0f %11.0f\n",
                   r, scenarios[i].what, f->idle_mib, f->push_peak_mib, f->drain_peak_mib,
                   f->hwm_push_mib, f->hwm_mib, scenarios[i].configured_mib, f->budget_mib,
                   f->disk_mib, f->push_mibs, f->drain_mibs);
            fflush(stdout);
        }
}

/* The rows of scenario i over its runs into rows; its run with the highest
 * peak into *worst. */
static void summarize(int i, figures *runs, const options *o, char rows[3][640], figures *worst)
{
    const scenario *sc = &scenarios[i];
    double push_peak = 0, drain_peak = 0, peak = 0, budget = 0;
    double pr[MAX_RUNS], dr[MAX_RUNS], ar[MAX_RUNS];
    *worst = runs[0];
    for (int r = 0; r < o->runs; r++) {
        figures *f = &runs[r];
        push_peak = f->push_peak_mib > push_peak ? f->push_peak_mib : push_peak;
        drain_peak = f->drain_peak_mib > drain_peak ? f->drain_peak_mib : drain_peak;
        peak = f->peak_mib > peak ? f->peak_mib : peak;
        budget = f->budget_mib > budget ? f->budget_mib : budget;
        if (f->peak_mib > worst->peak_mib)
            *worst = *f;
        pr[r] = f->push_mibs, dr[r] = f->drain_mibs, ar[r] = f->after_mib;
    }
    double limit = sc->configured_mib + sc->headroom_mib;
    const char *met = peak < limit ? "met" : "NOT MET";
    double mpr = bench_median(pr, o->runs), mdr = bench_median(dr, o->runs);
    if (!o->rows_only)
        printf("%-13s %10.1f %10.1f %9.1f %10.0f %7.1f %9.0f %-8s %10.0f %11.0f\n", sc->what,
               push_peak, drain_peak, peak, sc->configured_mib, budget, limit, met, mpr, mdr);
    snprintf(rows[0], 640,
             "| 5 memory | %.0f MiB into %s, %s (%.0f MiB configured), no consumer, then "
             "drained: peak RSS (VmHWM or a sample if higher; highest %d ms samples while "
             "pushing / while draining; the budget's memory_bytes when the push ended)%s | "
             "%.1f MiB (%.1f / %.1f; %.1f) | | | < %.0f MiB %s |",
             runs[0].pushed_mib, sc->what, sc->flags, sc->configured_mib, SAMPLE_MS,
             o->runs > 1 ? ", highest of the runs" : "", peak, push_peak, drain_peak, budget, limit,
             met);
    int consumers = sc->channels < CONSUMERS ? sc->channels : CONSUMERS;
    snprintf(rows[1], 640,
             "| 5 memory | %s: push with %d producers / drain with %d consumer%s, every "
             "message checked | %.0f / %.0f MiB/s | | | |",
             sc->what, PRODUCERS, consumers, consumers > 1 ? "s" : "", mpr, mdr);
    snprintf(rows[2], 640,
             "| 5 memory | %s: RSS %d s after the drain, idle (free heap memory goes back "
             "every 10 s) | %.1f MiB | %.1f MiB (before the push) | | |",
             sc->what, AFTER_S, bench_median(ar, o->runs), runs[0].idle_mib);
}

int main(int argc, char **argv)
{
    options o;
    parse_args(&o, argc, argv);
    signal(SIGPIPE, SIG_IGN);
    check_disk(o.mebibytes);
    pattern_init();

    static figures all[SCENARIOS][MAX_RUNS];
    figures worst[SCENARIOS];
    run_all(all, &o);
    if (!o.rows_only)
        printf("\n%-13s %10s %10s %9s %10s %7s %9s %-8s %10s %11s\n", "scenario", "push peak",
               "drain peak", "peak", "configured", "budget", "target <", "", "push MiB/s",
               "drain MiB/s");
    char rows[SCENARIOS][3][640];
    for (int i = 0; i < SCENARIOS; i++)
        summarize(i, all[i], &o, rows[i], &worst[i]);
    if (!o.rows_only)
        printf(
            "\n| part | what | hopper | baseline | ratio | target |\n|---|---|---|---|---|---|\n");
    for (int i = 0; i < SCENARIOS; i++)
        printf("%s\n%s\n%s\n", rows[i][0], rows[i][1], rows[i][2]);
    fflush(stdout);
    if (o.plot_path)
        plot(o.plot_path, worst, o.mebibytes);
    for (int i = 0; i < SCENARIOS; i++)
        for (int r = 0; r < o.runs; r++)
            free(all[i][r].samples);
    return 0;
}
