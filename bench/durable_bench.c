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
 *                              [--senders 1,8,64]
 * --messages is per run (default 8192), split between the senders. Every
 * request goes to 127.0.0.1; every run is bounded in count and time. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MESSAGE_BYTES 1024
#define MAX_SENDERS 256
#define MAX_RUNS 51
#define RUN_TIMEOUT_S 120

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "hopper-bench-durable: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    exit(1);
}

/* ---- one server ---- */

typedef struct server {
    pid_t pid;
    int port;
    char dir[64];
} server;

static void server_start(server *s, const char *bin, bool durable)
{
    snprintf(s->dir, sizeof s->dir, "/tmp/hopper-bench-XXXXXX");
    if (mkdtemp(s->dir) == NULL)
        die("mkdtemp: %s", strerror(errno));
    int pipefd[2];
    if (pipe(pipefd) != 0)
        die("pipe: %s", strerror(errno));
    s->pid = fork();
    if (s->pid < 0)
        die("fork: %s", strerror(errno));
    if (s->pid == 0) {
        dup2(pipefd[1], 2);
        close(pipefd[0]);
        close(pipefd[1]);
        char data_dir[128];
        snprintf(data_dir, sizeof data_dir, "%s/data", s->dir);
        execl(bin, bin, "--listen", "127.0.0.1:0", "--data-dir", data_dir,
              durable ? "--durable" : "--max-wait", durable ? NULL : "60", (char *)NULL);
        _exit(127);
    }
    close(pipefd[1]);
    /* read the log until "listening on 127.0.0.1:PORT" */
    FILE *log = fdopen(pipefd[0], "r");
    char line[512];
    s->port = 0;
    double deadline = now_s() + 30;
    while (s->port == 0 && now_s() < deadline && fgets(line, sizeof line, log)) {
        char *at = strstr(line, "listening on 127.0.0.1:");
        if (at)
            s->port = atoi(at + strlen("listening on 127.0.0.1:"));
    }
    if (s->port == 0)
        die("%s did not start listening", bin);
    /* keep draining its log so it never blocks on a full pipe */
    if (fork() == 0) {
        while (fgets(line, sizeof line, log))
            ;
        _exit(0);
    }
    fclose(log);
}

static void server_stop(server *s)
{
    kill(s->pid, SIGTERM);
    int status;
    waitpid(s->pid, &status, 0);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "hopper-bench-durable: could not remove %s\n", s->dir);
}

/* ---- senders ---- */

typedef struct run_ctx {
    int port;
    char channel[64];
    int per_sender;
    pthread_barrier_t start;
    double deadline;
    _Atomic int failures;
} run_ctx;

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

static void *sender(void *arg)
{
    run_ctx *r = arg;
    static const char payload[MESSAGE_BYTES] = {'x'};
    CURL *c = curl_easy_init();
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/channels/%s", r->port, r->channel);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/octet-stream");
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)sizeof payload);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    pthread_barrier_wait(&r->start);
    for (int i = 0; i < r->per_sender && now_s() < r->deadline; i++) {
        long code = 0;
        if (curl_easy_perform(c) != CURLE_OK ||
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK || code != 202)
            r->failures++;
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

/* The value of hopper_syncs_total for channel, from /metrics; -1 if absent. */
static double syncs_of(int port, const char *channel)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd,
             "curl -s http://127.0.0.1:%d/metrics | grep '^hopper_syncs_total{channel=\"%s\"}'",
             port, channel);
    FILE *p = popen(cmd, "r");
    char line[256];
    double v = -1;
    if (p && fgets(line, sizeof line, p)) {
        char *sp = strrchr(line, ' ');
        if (sp)
            v = atof(sp + 1);
    }
    if (p)
        pclose(p);
    return v;
}

/* One timed run: messages / seconds. */
static double run_once(int port, const char *channel, int senders, int messages)
{
    run_ctx r = {.port = port, .per_sender = messages / senders};
    snprintf(r.channel, sizeof r.channel, "%s", channel);
    pthread_barrier_init(&r.start, NULL, (unsigned)senders + 1);
    pthread_t t[MAX_SENDERS];
    r.deadline = now_s() + RUN_TIMEOUT_S;
    for (int i = 0; i < senders; i++)
        pthread_create(&t[i], NULL, sender, &r);
    pthread_barrier_wait(&r.start);
    double t0 = now_s();
    for (int i = 0; i < senders; i++)
        pthread_join(t[i], NULL);
    double secs = now_s() - t0;
    pthread_barrier_destroy(&r.start);
    if (r.failures)
        die("%s: some POSTs were not answered 202", channel);
    if (now_s() > r.deadline)
        die("%s: a run passed its time limit", channel);
    return (double)(r.per_sender * senders) / secs;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, by_value);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    const char *bin = HOPPER_BIN;
    int runs = 5, messages = 8192;
    int senders[16] = {1, 8, 64}, nsenders = 3;
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
        } else {
            fprintf(stderr, "usage: hopper-bench-durable [--hopper PATH] [--runs N] "
                            "[--messages N] [--senders 1,8,64]\n");
            return 2;
        }
    }
    if (runs < 1 || runs > MAX_RUNS || messages < 1)
        die("%s", "--runs must be 1..51 and --messages positive");
    for (int i = 0; i < nsenders; i++)
        if (senders[i] < 1 || senders[i] > MAX_SENDERS || senders[i] > messages)
            die("%s", "--senders must be 1..256 each, and at most --messages");

    curl_global_init(CURL_GLOBAL_DEFAULT);
    signal(SIGPIPE, SIG_IGN);
    server plain, durable;
    server_start(&plain, bin, false);
    server_start(&durable, bin, true);
    printf("hopper-bench-durable: %d-byte POSTs to one channel over 127.0.0.1, %d messages a run,\n"
           "median of %d runs; default and --durable servers side by side, runs alternating\n\n",
           MESSAGE_BYTES, messages, runs);
    printf("%8s %14s %14s %8s %12s\n", "senders", "default msg/s", "durable msg/s", "ratio",
           "syncs/msg");
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
            double s = syncs_of(durable.port, channel);
            syncs += s >= 0 ? s / (double)(messages / senders[k] * senders[k]) : 0;
        }
        double ma = median(a, runs), mb = median(b, runs);
        printf("%8d %14.0f %14.0f %7.2fx %12.3f\n", senders[k], ma, mb, mb / ma, syncs / runs);
        fflush(stdout);
    }
    server_stop(&plain);
    server_stop(&durable);
    curl_global_cleanup();
    return 0;
}
