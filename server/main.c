/* main.c - hopper's startup and shutdown: options, data directory, channel
 * registry with the channels the data directory holds, the timer of waits
 * and leases, HTTP daemon; then wait for SIGTERM or SIGINT (SIGHUP, with
 * --auth-file, reloads the tokens meanwhile) and stop
 * gracefully: HTTP first (messages of unfinished GETs go back to their
 * channels), then the timer and the leases, then the reserve file (its room
 * is for what comes next), then the channels (their messages are written
 * to disk), then the budget and the data dir lock.
 *
 * Exit codes: 0 after a clean stop or --help, 1 when the server cannot
 * start (TLS certificate or key, data directory, no room for the reserve,
 * a channel in it, listen address) or when a stop could not write the
 * messages in memory to disk (they are lost, and the log says how many), 2
 * for a bad flag or value or a malformed --auth-file. "hopper token" is a
 * subcommand (token.h). */
#include "auth_store.h"
#include "budget.h"
#include "datadir.h"
#include "expiry.h"
#include "dedup.h"
#include "forward.h"
#include "hopper/hopper.h"
#include "http.h"
#include "lease.h"
#include "log.h"
#include "longpoll.h"
#include "options.h"
#include "registry.h"
#include "reserve.h"
#include "status.h"
#include "stream.h"
#include "timer.h"
#include "tls.h"
#include "token.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

/* How long in-flight requests (uploads, answers being written) may take to
 * finish once the server is told to stop: well inside the 10 s a container
 * runtime usually grants before SIGKILL. */
#define SHUTDOWN_DRAIN_MS 5000

/* How often free heap memory goes back to the system. A burst that filled
 * every channel's memory leaves that memory free but mapped once drained:
 * glibc returns only the top of a heap by itself, so without this an idle
 * server would keep its peak RSS (100 MiB after the memory benchmark's 100
 * channels). malloc_trim() releases the free pages inside the heaps too. */
#define TRIM_INTERVAL_S 10

#define MMAP_THRESHOLD_BYTES (128 * 1024) /* glibc's default before it adapts */

/* Blocks of 128 KiB and more (large messages, a /metrics text) come from
 * mmap and go back to the system when freed. By default glibc raises this
 * threshold to the size of any such block once freed, and from then on
 * serves them from the heap: a /metrics of 1000 channels (1 MB) left freed,
 * touched holes there, new connections' 32 KiB buffers landed in them, and
 * 10,000 waiting GETs took 98 MiB instead of 62 (hopper-bench-longpoll
 * --scrape; 66 MiB with this). The cost: 1 MB messages kept in memory went
 * about 15% slower (wrk, 8 connections). */
static void pin_mmap_threshold(void)
{
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
}

static void log_starting(const server_options *o)
{
    log_info("hopper %s starting: data-dir %s, memory-limit %zu, disk-limit %" PRIu64 " (%" PRIu64
             " of it the reserve for a clean stop), memory-bytes %zu, file-bytes "
             "%zu, max-disk-files %zu, max-message-bytes %zu, max-channels %zu, max-wait %g, "
             "threads %u, durable %s, scheme %s, --verify rules %zu",
             HOP_VERSION, o->data_dir, o->memory_limit, o->disk_limit, options_reserve_bytes(o),
             o->memory_bytes, o->file_bytes, o->max_disk_files, o->max_message_bytes,
             o->max_channels, o->max_wait, o->threads, o->durable ? "yes" : "no",
             o->tls_cert ? "https" : "http", o->verify.count);
}

/* Block the stop signals, and SIGHUP when there is an --auth-file to
 * reload (without one SIGHUP keeps its old effect), before any thread
 * starts, so every thread inherits the mask and only sigtimedwait() in
 * wait_for_stop() sees them: no handler runs in an arbitrary thread. A
 * write to a closed socket must not kill us. OUT: *stop_signals. */
static void block_stop_signals(sigset_t *stop_signals)
{
    sigemptyset(stop_signals);
    sigaddset(stop_signals, SIGTERM);
    sigaddset(stop_signals, SIGINT);
    if (auth_store_enabled())
        sigaddset(stop_signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* SIGHUP: the --auth-file again. A refused file leaves the tokens as they
 * were, and says why. */
static void reload_tokens(void)
{
    char why[512];
    size_t tokens = 0;
    if (auth_store_reload(&tokens, why, sizeof why))
        log_info("SIGHUP: %zu token(s) in force", tokens);
    else
        log_error("SIGHUP: the tokens in force are kept: %s", why);
}

/* Wait for one of stop_signals, giving free heap memory back every
 * TRIM_INTERVAL_S and reloading the tokens on SIGHUP meanwhile, and log
 * it. */
static void wait_for_stop(const sigset_t *stop_signals)
{
    int sig;
    const struct timespec trim_interval = {.tv_sec = TRIM_INTERVAL_S};
    while ((sig = sigtimedwait(stop_signals, NULL, &trim_interval)) < 0 || sig == SIGHUP) {
        if (sig == SIGHUP) {
            reload_tokens();
        } else if (errno == EAGAIN) {
            malloc_trim(0);
            budget_log_tick();
        }
    }
    log_info("stopping on %s", sig == SIGINT ? "SIGINT" : "SIGTERM");
}

/* True if addr is a loopback address (127/8, ::1, or 127/8 mapped). */
static bool is_loopback(const struct sockaddr_storage *addr)
{
    if (addr->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)addr)->sin_addr.s_addr) >> 24) == 127;
    const struct in6_addr *a6 = &((const struct sockaddr_in6 *)addr)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a6) || (IN6_IS_ADDR_V4MAPPED(a6) && a6->s6_addr[12] == 127);
}

/* The tokens of --auth-file in force, or a warning when anyone who can
 * reach the address may do anything. False (printed) for a file that
 * cannot be read or is malformed. */
static bool open_tokens(const server_options *o)
{
    char why[512];
    if (o->auth_file == NULL) {
        if (!is_loopback(&o->listen_addr))
            log_warn("no --auth-file, and %s is not a loopback address: whoever can reach it "
                     "may send, take and delete messages",
                     o->listen);
        return true;
    }
    if (!auth_store_open(o->auth_file, why, sizeof why)) {
        fprintf(stderr, "hopper: --auth-file: %s\n", why);
        return false;
    }
    log_info("tokens: %s in force; every request but /healthz and /readyz needs one%s",
             o->auth_file, o->public_metrics ? " (and but /status, /metrics, GET /channels)" : "");
    return true;
}

/* The graceful stop of HTTP: no new connections, every waiting GET
 * answered 204 now, every stream ended (stream.h), requests in progress
 * given SHUTDOWN_DRAIN_MS. */
static void stop_http(void)
{
    http_quiesce();
    longpoll_stop_waiting();
    stream_stop_all();
    http_drain(SHUTDOWN_DRAIN_MS);
    http_stop();
}

/* The stop of HTTP and of forwarding, side by side: forwarding attempts in
 * flight get the same SHUTDOWN_DRAIN_MS as requests, from the signal on. */
static void stop_traffic(void)
{
    uint64_t deadline = forward_now_ms() + SHUTDOWN_DRAIN_MS;
    forward_stop_taking();
    stop_http();
    forward_stop(deadline); /* messages of attempts cut off go back to their channels */
}

/* The budget, and the registry whose channels are opened on it. False
 * (logged) if out of memory; nothing is left open then. */
static bool open_budget_and_registry(const server_options *o)
{
    if (!budget_open(o)) {
        log_error("out of memory");
        return false;
    }
    dedup_configure(&(dedup_config){.window_ms = (uint64_t)(o->dedup_window * 1000),
                                    .max_keys = o->dedup_max_keys,
                                    .durable = o->durable});
    hop_limits limits;
    options_core_limits(o, &limits);
    limits.budget = budget_get();
    if (!registry_open(o->data_dir, &limits, o->max_channels)) {
        log_error("out of memory");
        budget_close();
        return false;
    }
    return true;
}

/* Open the registry with the channels the data directory holds. False
 * (logged) if hopper cannot start; registry_close() closes what opened. */
static bool recover_channels(void)
{
    const char *const *channels;
    size_t channel_count = datadir_channels(&channels);
    return registry_recover(channels, channel_count);
}

/* The lease table, with the redelivery backoff of the options. */
static void leases_open(const server_options *o)
{
    giveback_backoff backoff = {options_seconds_ms(o->retry_delay),
                                options_seconds_ms(o->retry_delay_max)};
    lease_open(o->max_deliveries, &backoff);
}

/* Stop what takes messages and close every channel and the budget.
 * Returns how many messages were lost (registry_close()). */
static size_t close_channels(void)
{
    forward_stop(0);   /* if HTTP never started */
    expiry_close();    /* nothing takes messages any more: the drops not logged yet */
    reserve_release(); /* the room for what memory holds, just before it is written */
    size_t lost = registry_close();
    budget_close();
    return lost;
}

/* Run a subcommand, or read the options of the server. -1 with *o filled
 * in when the server is to run; else the exit code. */
static int read_command(int argc, char **argv, server_options *o)
{
    if (argc > 1 && strcmp(argv[1], "token") == 0)
        return token_main(argc, argv);
    switch (options_parse(argc, argv, o)) {
    case OPTIONS_OK:
        return -1;
    case OPTIONS_HELP:
        return 0;
    case OPTIONS_ERROR:
        break;
    }
    return 2;
}

/* Run the server as o says, with tls (NULL: plain HTTP), until a stop
 * signal; the exit code. */
static int serve(const server_options *o, const tls_files *tls)
{
    if (!datadir_open(o->data_dir))
        return 1;
    sigset_t stop_signals;
    block_stop_signals(&stop_signals);

    int status = 1;
    size_t lost = 0;
    if (!reserve_open(o->data_dir, options_reserve_bytes(o)))
        goto out_datadir;
    if (!open_budget_and_registry(o))
        goto out_reserve;
    expiry_open((uint64_t)(o->max_age * 1000.0 + 0.5)); /* before anything takes messages */
    if (!forward_start(o))
        goto out_registry;
    if (!recover_channels())
        goto out_registry;
    if (!timer_start()) {
        log_error("cannot start the timer thread");
        goto out_registry;
    }
    leases_open(o);
    status_init(o);
    stream_open();
    if (!http_start(o, tls))
        goto out_timer;
    wait_for_stop(&stop_signals);
    stop_traffic();
    status = 0;
out_timer:
    timer_stop();  /* no wait or lease ends by its deadline from here on */
    lease_close(); /* leased messages back to their channels, before these close */
out_registry:
    lost = close_channels();
out_reserve:
    reserve_release();
out_datadir:
    datadir_close();
    if (lost > 0) {
        /* a supervisor must see it: not a clean stop */
        log_error("stopped: %zu message(s) LOST (see above)", lost);
        return 1;
    }
    if (status == 0)
        log_info("stopped");
    return status;
}

int main(int argc, char **argv)
{
    server_options o;
    int code = read_command(argc, argv, &o);
    if (code >= 0)
        return code;
    log_route_core();
    pin_mmap_threshold();
    log_starting(&o);
    int status = 2;
    if (open_tokens(&o)) {
        tls_files tls;
        status = 1;
        if (o.tls_cert == NULL || tls_load(o.tls_cert, o.tls_key, &tls)) {
            status = serve(&o, o.tls_cert ? &tls : NULL);
            if (o.tls_cert)
                tls_free(&tls);
        }
        auth_store_close(); /* no request is left to hold the tokens */
    }
    verify_rules_free(&o.verify);
    return status;
}
