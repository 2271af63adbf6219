/* bench_server.h - start the real hopper binary for a benchmark: on
 * 127.0.0.1 port 0 in a fresh temporary data directory, the real port read
 * back from its log; sample its RSS; stop it and remove the directory. */
#ifndef HOPPER_BENCH_SERVER_H
#define HOPPER_BENCH_SERVER_H

#include <stddef.h>
#include <sys/types.h>

typedef struct bench_server {
    pid_t pid;
    int port;
    char dir[64]; /* the temporary directory; the data directory is dir/data */
} bench_server;

/* Starts bin with --listen 127.0.0.1:0 --data-dir DIR/data and the extra
 * flags in args (NULL-terminated, may be NULL). Exits the benchmark with a
 * message if the server does not listen within 30 s. */
void bench_server_start(bench_server *s, const char *bin, const char *const *args);

/* SIGTERM, wait (it must exit 0), and start bin again with args on the
 * same data directory; returns once it listens again. */
void bench_server_restart(bench_server *s, const char *bin, const char *const *args);

/* SIGTERM, wait, remove the temporary directory. Servers not stopped
 * when the benchmark exits (bench_die() included) are stopped then. */
void bench_server_stop(bench_server *s);

/* A KiB field of the server's /proc/PID/status, such as "VmHWM" (its
 * peak RSS so far), or 0 if unreadable. */
long bench_server_status_kib(const bench_server *s, const char *field);

/* The server's resident set size in KiB (VmRSS), or 0 if unreadable. */
long bench_server_rss_kib(const bench_server *s);

/* Sum of every sample of metric (e.g. "hopper_channel_disk_bytes") in the
 * server's /metrics; -1 if it could not be read. */
double bench_server_metric(const bench_server *s, const char *metric);

/* The same sum over a /metrics text already read (len bytes at text);
 * 0 when metric has no sample there. */
double bench_metrics_sum(const char *text, size_t len, const char *metric);

/* Shared helpers of the benchmark programs. */
double bench_now(void);
void bench_die(const char *prog, const char *fmt, ...);
double bench_median(double *v, int n);                  /* sorts v */
double bench_percentile(double *v, size_t n, double p); /* sorts v; p in 0..100 */

#endif
