/* main.c - hopper's startup and shutdown: options, data directory, channel
 * registry, long-poll timer, HTTP daemon; then wait for SIGTERM or SIGINT
 * and stop gracefully.
 *
 * Exit codes: 0 after a clean stop or --help, 1 when the server cannot
 * start (data directory, listen address), 2 for a bad flag or value. */
#include "envelope.h"
#include "hopper/hopper.h"
#include "http.h"
#include "log.h"
#include "longpoll.h"
#include "options.h"
#include "registry.h"
#include "status.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* How long in-flight requests (uploads, answers being written) may take to
 * finish once the server is told to stop: well inside the 10 s a container
 * runtime usually grants before SIGKILL. */
#define SHUTDOWN_DRAIN_MS 5000

/* mkdir -p dir. False with errno set. */
static bool make_dirs(const char *dir)
{
    char *path = strdup(dir);
    if (path == NULL)
        return false;
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST) {
            free(path);
            return false;
        }
        *p = '/';
    }
    bool ok = mkdir(path, 0755) == 0 || errno == EEXIST;
    int saved = errno;
    free(path);
    errno = saved;
    return ok;
}

/* Create the data directory and prove it writable by creating a file in it
 * (access() would say yes to root on a read-only file system). */
static bool prepare_data_dir(const char *dir)
{
    if (!make_dirs(dir)) {
        fprintf(stderr, "hopper: cannot create --data-dir '%s': %s\n", dir, strerror(errno));
        return false;
    }
    char probe[4096];
    if (snprintf(probe, sizeof probe, "%s/.hopper-probe-XXXXXX", dir) >= (int)sizeof probe) {
        fprintf(stderr, "hopper: --data-dir '%s' is too long\n", dir);
        return false;
    }
    int fd = mkstemp(probe);
    if (fd < 0) {
        fprintf(stderr, "hopper: --data-dir '%s' is not a writable directory: %s\n", dir,
                strerror(errno));
        return false;
    }
    close(fd);
    unlink(probe);
    return true;
}

int main(int argc, char **argv)
{
    server_options o;
    switch (options_parse(argc, argv, &o)) {
    case OPTIONS_OK:
        break;
    case OPTIONS_HELP:
        return 0;
    case OPTIONS_ERROR:
        return 2;
    }
    log_route_core();
    if (!prepare_data_dir(o.data_dir))
        return 1;

    /* Block the stop signals before any thread starts, so every thread
     * inherits the mask and only sigwait() below sees them: no handler runs
     * in an arbitrary thread. A write to a closed socket must not kill us. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    hop_limits limits = {.memory_bytes = o.memory_bytes,
                         .file_bytes = o.file_bytes,
                         .max_disk_files = o.max_disk_files,
                         .max_message_bytes = o.max_message_bytes + ENVELOPE_ALLOWANCE};
    int status = 1;
    if (!registry_open(o.data_dir, &limits, o.max_channels)) {
        log_error("out of memory");
        return 1;
    }
    if (!longpoll_timer_start()) {
        log_error("cannot start the long-poll timer thread");
        goto out_registry;
    }
    status_init(&o);
    log_info("hopper %s starting: data-dir %s, memory-bytes %zu, file-bytes %zu, max-disk-files "
             "%zu, max-message-bytes %zu, max-channels %zu, max-wait %g, threads %u",
             HOP_VERSION, o.data_dir, o.memory_bytes, o.file_bytes, o.max_disk_files,
             o.max_message_bytes, o.max_channels, o.max_wait, o.threads);
    if (!http_start(&o))
        goto out_timer;

    int sig = 0;
    while (sigwait(&stop_signals, &sig) != 0)
        ;
    log_info("stopping on %s", sig == SIGINT ? "SIGINT" : "SIGTERM");
    http_quiesce();          /* no new connections */
    longpoll_stop_waiting(); /* every waiting GET answers 204 now */
    http_drain(SHUTDOWN_DRAIN_MS);
    http_stop();
    status = 0;
out_timer:
    longpoll_timer_stop();
out_registry:
    registry_close();
    if (status == 0)
        log_info("stopped");
    return status;
}
