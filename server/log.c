/* log.c - timestamped one-line logs to stderr (see log.h). */
#include "log.h"

#include "timestamp.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static const char *level_name(hop_log_level level)
{
    switch (level) {
    case HOP_LOG_INFO:
        return "info";
    case HOP_LOG_WARN:
        return "warn";
    case HOP_LOG_ERROR:
        return "error";
    }
    return "info";
}

static void log_vmsg(hop_log_level level, const char *fmt, va_list ap)
{
    char line[1024];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    char when[TIMESTAMP_TEXT_SIZE];
    timestamp_text((uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000, when);
    size_t n = (size_t)snprintf(line, sizeof line, "%s %s ", when, level_name(level));
    int m = vsnprintf(line + n, sizeof line - n, fmt, ap);
    if (m < 0)
        m = 0;
    n += (size_t)m;
    if (n > sizeof line - 2)
        n = sizeof line - 2; /* truncated: still one whole line */
    line[n++] = '\n';
    /* one write per line: atomic for pipes up to PIPE_BUF, and unbuffered */
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w; /* nowhere to report a failing log */
}

void log_msg(hop_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, fmt, ap);
    va_end(ap);
}

static void core_log(void *arg, hop_log_level level, const char *channel, const char *message)
{
    (void)arg;
    if (channel)
        log_msg(level, "channel %s: %s", channel, message);
    else
        log_msg(level, "%s", message);
}

void log_route_core(void)
{
    hop_set_log(core_log, NULL);
}
