/* log.c - hop_set_log() and the default stderr logger. */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

static void log_stderr(void *arg, hop_log_level level, const char *channel, const char *message)
{
    (void)arg;
    static const char *const names[] = {"info", "warn", "error"};
    fprintf(stderr, "hopper: %s: %s%s%s\n", names[level], channel ? channel : "",
            channel ? ": " : "", message);
}

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static hop_log_fn log_fn = log_stderr;
static void *log_arg;

void hop_set_log(hop_log_fn fn, void *arg)
{
    pthread_mutex_lock(&log_lock);
    log_fn = fn;
    log_arg = arg;
    pthread_mutex_unlock(&log_lock);
}

void hop__log(hop_log_level level, const char *channel, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&log_lock);
    hop_log_fn fn = log_fn;
    void *arg = log_arg;
    pthread_mutex_unlock(&log_lock);
    if (fn)
        fn(arg, level, channel, line);
}
