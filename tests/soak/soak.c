/* soak.c - the soak's run: options, the server, the phases, the restart, the checks.
 *
 * A bounded soak of the real hopper binary: many producers and consumers,
 * random message sizes across the memory/disk boundary and into 507, a
 * graceful restart half-way, and at the end proof that every 202 was
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
 *   definition, in soak.h). Not asserted under a sanitizer, whose shadow
 *   memory and quarantine are the process's memory; everything else is.
 * - The files: soak.c the run (the options, the server and its RSS, the
 *   phases, the restart, the checks at the end); soak_message.c the message
 *   format, the per-producer books and the accounting; soak_client.c HTTP
 *   over one keep-alive connection per thread, and the gate that parks the
 *   workers; soak_workers.c the producer and consumer threads; soak.h what
 *   they share, the run's numbers among it.
 * - The last line is the summary, e.g. "soak: 180 s, 8 producers, ...". */
#include "soak.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- the run ---- */

options opt;
producer *producers;
consumer *consumers;

atomic_int phase;
atomic_ullong refused_total;
atomic_llong backlog[MAX_CHANNELS];

/* The server the RSS sampler reads (0: none) and the peaks seen. */
static pthread_mutex_t rss_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t rss_pid;
static long rss_peak_kib, rss_samples;
static atomic_bool sampler_stop;

void sleep_ms(unsigned long long ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
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
    gate_init(s.port, opt.producers + opt.consumers);
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
