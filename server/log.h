/* log.h - the server's one-line, timestamped event log on stderr.
 *
 * One line per event worth knowing (start, stop, channel created, channel
 * full, I/O errors), never one per request. The core library's own log
 * lines are routed here too, so the whole process writes one format. */
#ifndef HOPPER_SERVER_LOG_H
#define HOPPER_SERVER_LOG_H

#include "hopper/hopper.h"

/* Write "<UTC time> <level> <message>\n" to stderr in one write(2), so lines
 * from different threads never interleave. */
void log_msg(hop_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_info(...) log_msg(HOP_LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(HOP_LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(HOP_LOG_ERROR, __VA_ARGS__)

/* Route the core library's log lines (hop_set_log) into log_msg(). */
void log_route_core(void);

#endif
