/* core_bench.c - libhopper throughput, measured against baselines compiled
 * into the same binary and run in the same process, so the ratios hold on a
 * noisy shared machine:
 *
 *   memory path  hopper channel (memory only) vs a plain mutex+condvar queue
 *                (our "stdlib mpsc"): one producer thread, one consumer thread.
 *   disk path    hopper channel with memory_bytes 0 (every message goes
 *                through a queue file, written and read back) vs raw
 *                sequential write() of the same messages to the same directory.
 *
 * Each figure is the median of --runs runs. Usage:
 *   hopper-bench-core [--runs N] [--scale F] [--dir DIR] [--rows]
 * --scale multiplies the message counts (0.1 for a quick look); --rows
 * prints only the summary rows of bench/run's table.
 */
#include "hopper/hopper.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, hop_err err)
{
    fprintf(stderr, "hopper-bench-core: %s: %s\n", what, hop_strerror(err));
    exit(1);
}

/* ---- the plain queue: what a careful programmer writes in 40 lines ---- */

typedef struct plain_node {
    struct plain_node *next;
    size_t len;
    unsigned char data[];
} plain_node;

typedef struct plain_queue {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    plain_node *head, *tail;
} plain_queue;

static void plain_send(plain_queue *q, const void *data, size_t len)
{
    plain_node *n = malloc(sizeof *n + len);
    if (n == NULL)
        abort();
    n->next = NULL;
    n->len = len;
    memcpy(n->data, data, len);
    pthread_mutex_lock(&q->lock);
    if (q->tail)
        q->tail->next = n;
    else
        q->head = n;
    q->tail = n;
    pthread_cond_signal(&q->cond);
    pthread_mutex_unlock(&q->lock);
}

static plain_node *plain_recv(plain_queue *q)
{
    pthread_mutex_lock(&q->lock);
    while (q->head == NULL)
        pthread_cond_wait(&q->cond, &q->lock);
    plain_node *n = q->head;
    q->head = n->next;
    if (q->head == NULL)
        q->tail = NULL;
    pthread_mutex_unlock(&q->lock);
    return n;
}

/* ---- one producer, one consumer ---- */

typedef struct job {
    size_t size, count;
    plain_queue *plain; /* exactly one of plain and ch is set */
    hop_channel *ch;
    unsigned char *payload;
} job;

static void *produce(void *arg)
{
    job *j = arg;
    for (size_t i = 0; i < j->count; i++) {
        if (j->plain) {
            plain_send(j->plain, j->payload, j->size);
            continue;
        }
        hop_err err;
        while ((err = hop_send(j->ch, j->payload, j->size)) == HOP_FULL)
            sched_yield(); /* only if the consumer lags past the whole budget */
        if (err != HOP_OK)
            die("hop_send", err);
    }
    return NULL;
}

static void consume(job *j)
{
    for (size_t i = 0; i < j->count; i++) {
        if (j->plain) {
            plain_node *n = plain_recv(j->plain);
            if (n->len != j->size)
                abort();
            free(n);
            continue;
        }
        void *data;
        size_t len;
        hop_err err = hop_recv(j->ch, -1, &data, &len);
        if (err != HOP_OK)
            die("hop_recv", err);
        if (len != j->size || memcmp(data, j->payload, len < 16 ? len : 16) != 0)
            abort();
        hop_free(data);
    }
}

/* Messages per second through one producer and one consumer. */
static double run_pair(job *j)
{
    pthread_t t;
    double t0 = now_s();
    pthread_create(&t, NULL, produce, j);
    consume(j);
    pthread_join(t, NULL);
    return (double)j->count / (now_s() - t0);
}

static double plain_rate(size_t size, size_t count, unsigned char *payload)
{
    plain_queue q = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, NULL};
    job j = {size, count, &q, NULL, payload};
    return run_pair(&j);
}

static double hopper_rate(const char *dir, size_t size, size_t count, unsigned char *payload,
                          bool disk)
{
    hop_limits l;
    hop_limits_default(&l);
    l.max_message_bytes = size > 0 ? size : 1;
    if (disk) {
        l.memory_bytes = 0; /* every message through a queue file */
        l.max_disk_files = SIZE_MAX;
    } else {
        l.memory_bytes = (size_t)1 << 30;
        l.max_disk_files = 0;
    }
    hop_channel *ch;
    hop_err err = hop_channel_open(dir, "bench", &l, &ch);
    if (err != HOP_OK)
        die("hop_channel_open", err);
    job j = {size, count, NULL, ch, payload};
    double rate = run_pair(&j);
    hop_channel_close(ch);
    return rate;
}

/* Messages per second of write() of each message to one file in dir. */
static double raw_write_rate(const char *dir, size_t size, size_t count, unsigned char *payload)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/raw-write.bin", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        perror(path);
        exit(1);
    }
    double t0 = now_s();
    for (size_t i = 0; i < count; i++) {
        if (write(fd, payload, size) != (ssize_t)size) {
            perror("write");
            exit(1);
        }
    }
    double rate = (double)count / (now_s() - t0);
    close(fd);
    unlink(path);
    return rate;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    int runs = 5;
    double scale = 1.0;
    const char *dir = NULL;
    bool rows_only = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--scale") == 0 && i + 1 < argc)
            scale = atof(argv[++i]);
        else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (strcmp(argv[i], "--rows") == 0)
            rows_only = true;
        else {
            fprintf(stderr, "usage: %s [--runs N] [--scale F] [--dir DIR] [--rows]\n", argv[0]);
            return 2;
        }
    }
    if (runs < 1 || runs > 100 || scale <= 0 || scale > 100) {
        fprintf(stderr, "hopper-bench-core: --runs 1..100, --scale (0, 100]\n");
        return 2;
    }
    char tmp[] = "/tmp/hopper-bench-XXXXXX";
    if (dir == NULL && (dir = mkdtemp(tmp)) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    hop_set_log(NULL, NULL);

    static const struct {
        size_t size, count;
    } cases[] = {{64, 1000000}, {1024, 300000}, {65536, 8192}};
    enum { NCASES = sizeof cases / sizeof cases[0] };
    double rows[NCASES][4]; /* plain, hopper memory, raw write, hopper disk */

    /* the human table goes to stdout, or to nowhere with --rows */
    FILE *human = rows_only ? fopen("/dev/null", "w") : stdout;
    if (human == NULL)
        human = stdout;
    fprintf(human, "hopper core benchmark: median of %d runs, dir %s\n\n", runs, dir);
    fprintf(human, "%-8s %10s | %14s %14s %7s | %12s %12s %7s\n", "size", "messages",
            "plain queue/s", "hopper mem/s", "ratio", "raw write MB/s", "hopper disk MB/s",
            "ratio");
    for (int c = 0; c < NCASES; c++) {
        size_t size = cases[c].size;
        size_t count = (size_t)((double)cases[c].count * scale);
        if (count < 10)
            count = 10;
        unsigned char *payload = malloc(size);
        for (size_t i = 0; i < size; i++)
            payload[i] = (unsigned char)(i * 31 + 7);
        double plain[100], mem[100], raw[100], disk[100];
        for (int r = 0; r < runs; r++) { /* interleaved, so drift hits both sides */
            plain[r] = plain_rate(size, count, payload);
            mem[r] = hopper_rate(dir, size, count, payload, false);
            raw[r] = raw_write_rate(dir, size, count, payload);
            disk[r] = hopper_rate(dir, size, count, payload, true);
        }
        double p = median(plain, runs), m = median(mem, runs);
        double w = median(raw, runs) * (double)size / 1e6,
               d = median(disk, runs) * (double)size / 1e6;
        fprintf(human, "%-8zu %10zu | %14.0f %14.0f %6.2fx | %14.1f %16.1f %6.2fx\n", size, count,
                p, m, p / m, w, d, d / w);
        fflush(human);
        rows[c][0] = p, rows[c][1] = m, rows[c][2] = w, rows[c][3] = d;
        free(payload);
    }
    fprintf(human,
            "\nmemory ratio = plain queue rate / hopper rate (target <= 1.15x: slower by at most "
            "15%%)\ndisk ratio   = hopper disk bandwidth / raw write bandwidth (target >= 0.50x "
            "at 64 KiB)\n\n| part | what | hopper | baseline | ratio | target |\n"
            "|---|---|---|---|---|---|\n");
    for (int c = 0; c < NCASES; c++)
        printf("| 6 core | memory path, %zu B, 1 producer + 1 consumer thread | %.0f msg/s | "
               "%.0f msg/s (mutex+condvar queue) | %.2fx | <= 1.15x %s |\n",
               cases[c].size, rows[c][1], rows[c][0], rows[c][0] / rows[c][1],
               rows[c][0] / rows[c][1] <= 1.15 ? "met" : "NOT MET");
    for (int c = 0; c < NCASES; c++) {
        double ratio = rows[c][3] / rows[c][2];
        printf("| 6 core | disk path (memory_bytes 0), %zu B | %.1f MB/s | %.1f MB/s (raw write) | "
               "%.2fx | %s |\n",
               cases[c].size, rows[c][3], rows[c][2], ratio,
               cases[c].size == 65536 ? (ratio >= 0.5 ? ">= 0.5x met" : ">= 0.5x NOT MET") : "");
    }
    if (human != stdout)
        fclose(human);
    char path[4096];
    snprintf(path, sizeof path, "%s/bench", dir);
    rmdir(path);
    if (dir == tmp)
        rmdir(dir);
    return 0;
}
