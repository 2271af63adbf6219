/* bench_server.c - the hopper process a benchmark measures (bench_server.h). */
#include "bench_server.h"

#include "bench_http.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ARGS 48
#define MAX_RUNNING 8

/* Servers started and not yet stopped: bench_die() (any exit) stops them
 * and removes their data, so a failed benchmark leaves nothing behind. */
static bench_server *running[MAX_RUNNING];

static void stop_running(void)
{
    for (int i = 0; i < MAX_RUNNING; i++)
        if (running[i])
            bench_server_stop(running[i]);
}

static void track(bench_server *s, bench_server *was)
{
    static bool registered;
    if (!registered)
        registered = atexit(stop_running) == 0;
    for (int i = 0; i < MAX_RUNNING; i++)
        if (running[i] == was) {
            running[i] = s;
            return;
        }
}
#define LISTEN_PREFIX "listening on 127.0.0.1:"

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void bench_die(const char *prog, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, by_value);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double bench_percentile(double *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, by_value);
    /* nearest rank */
    size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return v[rank - 1];
}

static void spawn(bench_server *s, const char *bin, const char *const *args);

void bench_server_start(bench_server *s, const char *bin, const char *const *args)
{
    snprintf(s->dir, sizeof s->dir, "/tmp/hopper-bench-XXXXXX");
    if (mkdtemp(s->dir) == NULL)
        bench_die("bench", "mkdtemp: %s", strerror(errno));
    spawn(s, bin, args);
}

void bench_server_restart(bench_server *s, const char *bin, const char *const *args)
{
    track(NULL, s);
    kill(s->pid, SIGTERM);
    int status;
    waitpid(s->pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        bench_die("bench", "the server did not stop cleanly");
    spawn(s, bin, args);
}

/* Start bin on s->dir/data with args; return once it listens. */
static void spawn(bench_server *s, const char *bin, const char *const *args)
{
    char data_dir[128];
    snprintf(data_dir, sizeof data_dir, "%s/data", s->dir);
    const char *argv[MAX_ARGS] = {bin, "--listen", "127.0.0.1:0", "--data-dir", data_dir};
    int argc = 5;
    for (int i = 0; args && args[i] && argc < MAX_ARGS - 1; i++)
        argv[argc++] = args[i];
    argv[argc] = NULL;

    int pipefd[2];
    if (pipe(pipefd) != 0)
        bench_die("bench", "pipe: %s", strerror(errno));
    s->pid = fork();
    if (s->pid < 0)
        bench_die("bench", "fork: %s", strerror(errno));
    if (s->pid == 0) {
        dup2(pipefd[1], 2);
        close(pipefd[0]);
        close(pipefd[1]);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(pipefd[1]);
    FILE *log = fdopen(pipefd[0], "r");
    char line[512];
    s->port = 0;
    double deadline = bench_now() + 30;
    while (s->port == 0 && bench_now() < deadline && fgets(line, sizeof line, log)) {
        char *at = strstr(line, LISTEN_PREFIX);
        if (at)
            s->port = atoi(at + strlen(LISTEN_PREFIX));
    }
    if (s->port == 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
        bench_die("bench", "%s did not start listening", bin);
    }
    /* keep draining its log so it never blocks on a full pipe; the log
     * goes on to our stderr only for warnings and errors */
    if (fork() == 0) {
        while (fgets(line, sizeof line, log))
            if (strstr(line, " warn ") || strstr(line, " error "))
                fputs(line, stderr);
        _exit(0);
    }
    fclose(log);
    track(s, NULL);
}

void bench_server_stop(bench_server *s)
{
    if (s->pid <= 0)
        return;
    track(NULL, s);
    kill(s->pid, SIGTERM);
    int status;
    waitpid(s->pid, &status, 0);
    s->pid = 0;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench: could not remove %s\n", s->dir);
}

long bench_server_status_kib(const bench_server *s, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)s->pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = strlen(field);
    long kib = 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            kib = strtol(line + n + 1, NULL, 10);
            break;
        }
    fclose(f);
    return kib;
}

long bench_server_rss_kib(const bench_server *s)
{
    return bench_server_status_kib(s, "VmRSS");
}

double bench_metrics_sum(const char *text, size_t len, const char *metric)
{
    double sum = 0;
    size_t n = strlen(metric);
    const char *end = text + len;
    for (const char *p = text; p < end;) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            eol = end;
        if ((size_t)(eol - p) > n && strncmp(p, metric, n) == 0 && (p[n] == '{' || p[n] == ' ')) {
            const char *sp = eol;
            while (sp > p && sp[-1] != ' ')
                sp--;
            sum += strtod(sp, NULL);
        }
        p = eol + 1;
    }
    return sum;
}

double bench_server_metric(const bench_server *s, const char *metric)
{
    bench_conn c;
    bench_response r;
    if (bench_conn_open(&c, s->port) != 0)
        return -1;
    double sum = -1;
    if (bench_conn_request(&c, "GET", "/metrics", NULL, 0, &r) == 0 && r.status == 200)
        sum = bench_metrics_sum(r.body, r.body_len, metric);
    bench_conn_close(&c);
    return sum;
}
