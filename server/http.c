/* http.c - the MHD daemon: its callbacks, the accept policy, the connection
 * limit, and start and stop (see http.h). Each request is a dispatch.c
 * request from on_uri() to on_completed(); on_access() hands it every call.
 *
 * Request life: MHD calls on_uri() with the raw request-target as soon as
 * the request line is read; that creates the request, so the completion
 * callback is the one place it is freed. The access handler is then called
 * once with the headers, once per chunk of body, once more when the
 * request is complete, and again after a suspended request is resumed
 * (request.h names these phases). */
#include "http.h"

#include "dispatch.h"
#include "log.h"
#include "options_table.h"
#include "thread_conns.h"
#include "tls.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

/* Connections MHD may hold beyond --max-connections: those on_accept()
 * is about to close. Their descriptors are part of FD_RESERVE_FIXED.
 * (Idle connections are closed after --idle-timeout; suspended, waiting
 * GETs are not idle, MHD does not time them out.) */
#define ACCEPT_SLACK 64
/* Descriptors the server keeps for its own files out of the open-file
 * limit; the rest is for connections (connection_limit()).
 * FD_RESERVE_FIXED: ACCEPT_SLACK, plus 64 for everything not per channel:
 * the listen socket, MHD's epoll descriptors and inter-thread pipes or
 * eventfds, stdout/stderr and the log, the data dir and its lock file, the
 * reserve file, the timer's and forwarders' own descriptors, and the files
 * read now and then (--auth-file, TLS files, pause markers, the keys of
 * dedup while written). FD_PER_CHANNEL: what one open channel may hold at
 * once: its directory (locked) and its journal (consumed.hqc), held as long
 * as it is open, plus the queue file being written and the one being read
 * while it spills to disk. A forwarded channel also holds up to
 * --forward-concurrency sockets. */
#define FD_RESERVE_FIXED (ACCEPT_SLACK + 64)
#define FD_PER_CHANNEL 4
/* Fewest connections the server takes whatever the limit says. */
#define MIN_CONNECTIONS 16
#define LIMIT_LOG_INTERVAL_S 60

static struct {
    struct MHD_Daemon *daemon;
    server_context context;    /* what the requests read: options, stopping */
    atomic_bool started;       /* MHD messages are rate-limited from then on */
    atomic_size_t in_flight;   /* requests alive */
    atomic_size_t connections; /* open, from MHD's connection notifications */
    unsigned int max_connections;
} http;

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **req_cls)
{
    (void)cls;
    (void)url; /* decoded by MHD; route.c reads the raw target instead */
    (void)version;
    request *req = *req_cls;
    if (req == NULL)
        return MHD_NO; /* on_uri() ran out of memory */
    /* its first step may move it (dispatch.h): MHD keeps the new address */
    enum MHD_Result result = dispatch_step(&req, conn, method, upload_data, upload_data_size);
    *req_cls = req;
    return result;
}

/* One line when connections hit --max-connections, then at most one a
 * minute while they go on doing so. */
static void log_limit_reached(void)
{
    static atomic_llong last = -LIMIT_LOG_INTERVAL_S;
    static atomic_ulong refused;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    unsigned long n = atomic_fetch_add(&refused, 1) + 1;
    long long seen = atomic_load(&last);
    if (now.tv_sec - seen >= LIMIT_LOG_INTERVAL_S &&
        atomic_compare_exchange_strong(&last, &seen, (long long)now.tv_sec))
        log_warn("%u connections open, the --max-connections limit: new connections are "
                 "closed at once (%lu so far)",
                 http.max_connections, n);
}

/* The accept policy: once stopping, a new connection is closed as soon as
 * it is accepted. This is how the server stops taking connections, rather
 * than MHD_quiesce_daemon(): on an epoll daemon with internal threads (ours)
 * that races with the threads' own removal of the listen socket from their
 * epoll sets, and the loser calls MHD_PANIC ("Failed to remove listen FD
 * from epoll set"), aborting the process. Seen with libmicrohttpd 0.9.75 as
 * a SIGTERM that killed the server with SIGABRT about once in some thousand
 * stops. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    (void)cls;
    (void)addr;
    (void)addrlen;
    if (atomic_load(&http.context.stopping))
        return MHD_NO;
    /* At the limit a new connection is closed at once, so its client knows
     * and can come back later; left to MHD it would wait unseen in the
     * listen queue until some other connection ends. */
    if (atomic_load(&http.connections) >= http.max_connections) {
        log_limit_reached();
        return MHD_NO;
    }
    return MHD_YES;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    (void)cls;
    (void)conn;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        atomic_fetch_add(&http.connections, 1);
        thread_conns_started(socket_context);
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        atomic_fetch_sub(&http.connections, 1);
        thread_conns_closed(socket_context);
    }
}

/* MHD_OPTION_URI_LOG_CALLBACK: the raw target, before MHD decodes it. The
 * returned context reaches the access handler and the completion callback. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls;
    (void)conn;
    request *req = dispatch_new(&http.context, uri);
    if (req)
        atomic_fetch_add(&http.in_flight, 1);
    return req;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    request *req = *req_cls;
    if (req == NULL)
        return;
    *req_cls = NULL;
    dispatch_end(req, toe);
    atomic_fetch_sub(&http.in_flight, 1);
}

/* MHD's own messages: all of them while starting (why it cannot listen),
 * then at most one per MHD_LOG_INTERVAL seconds, since most are about one
 * bad client request and the log is not a per-request log. */
#define MHD_LOG_INTERVAL 10

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static time_t last;
    static unsigned long suppressed;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';

    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    pthread_mutex_lock(&lock);
    bool quiet = http.started && now.tv_sec - last < MHD_LOG_INTERVAL;
    unsigned long dropped = suppressed;
    if (quiet) {
        suppressed++;
    } else {
        last = now.tv_sec;
        suppressed = 0;
    }
    pthread_mutex_unlock(&lock);
    if (quiet)
        return;
    if (dropped)
        log_warn("http: %s (and %lu similar message(s) in the last %d s not shown)", line, dropped,
                 MHD_LOG_INTERVAL);
    else
        log_warn("http: %s", line);
}

/* ---- start and stop ---- */

/* Descriptors one open channel may hold under o (see FD_PER_CHANNEL). */
static rlim_t fd_per_channel(const server_options *o)
{
    return FD_PER_CHANNEL + (o->forward.count ? o->forward_concurrency : 0);
}

/* Raise the descriptor limit to its maximum and derive the connection limit
 * from it: what is left once the server's own files are provided for
 * (FD_RESERVE_FIXED, and fd_per_channel() for each of --max-channels),
 * with no other ceiling. A --max-connections beyond that is lowered to it
 * (with a warning), since connections past it would fail in accept()
 * instead of closing cleanly. */
static unsigned int connection_limit(const server_options *o)
{
    rlim_t limit = 1024;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        if (rl.rlim_cur < rl.rlim_max) {
            struct rlimit raised = {rl.rlim_max, rl.rlim_max};
            if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
                rl = raised;
        }
        limit = rl.rlim_cur;
    }
    rlim_t reserve = FD_RESERVE_FIXED + (rlim_t)o->max_channels * fd_per_channel(o);
    rlim_t most = MIN_CONNECTIONS;
    if (limit == RLIM_INFINITY)
        most = MAX_CONNECTIONS_LIMIT;
    else if (limit > reserve + MIN_CONNECTIONS)
        most = limit - reserve < MAX_CONNECTIONS_LIMIT ? limit - reserve : MAX_CONNECTIONS_LIMIT;
    log_info("open-file limit %llu, %llu of it kept for files (%d, and %llu for each of %zu "
             "channels): %llu left for connections",
             (unsigned long long)limit, (unsigned long long)reserve, FD_RESERVE_FIXED,
             (unsigned long long)fd_per_channel(o), o->max_channels, (unsigned long long)most);
    if (o->max_connections == 0)
        return (unsigned int)most;
    if (o->max_connections > most) {
        log_warn("--max-connections %zu is beyond what the open-file limit allows; using %llu",
                 o->max_connections, (unsigned long long)most);
        return (unsigned int)most;
    }
    return (unsigned int)o->max_connections;
}

/* "serving http: listening on ADDR:PORT" (or https), the real port: what
 * the tests and scripts wait for, the port last on the line. */
static void log_listening(const char *scheme)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(http.daemon, MHD_DAEMON_INFO_LISTEN_FD);
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (info && getsockname(info->listen_fd, (struct sockaddr *)&addr, &len) == 0) {
        if (addr.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&addr;
            inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
            port = ntohs(a->sin6_port);
            log_info("serving %s: listening on [%s]:%u", scheme, host, port);
            return;
        }
        struct sockaddr_in *a = (struct sockaddr_in *)&addr;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        port = ntohs(a->sin_port);
    }
    log_info("serving %s: listening on %s:%u", scheme, host, port);
}

/* The options of HTTPS for MHD_OPTION_ARRAY (tls NULL: none, plain HTTP).
 * OUT: items, room for 4. */
static void tls_options(const tls_files *tls, struct MHD_OptionItem *items)
{
    size_t n = 0;
    if (tls) {
        items[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, tls->cert_pem};
        items[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, tls->key_pem};
        items[n++] =
            (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)TLS_PRIORITIES};
    }
    items[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
}

bool http_start(const server_options *o, const tls_files *tls)
{
    http.context.options = *o;
    unsigned int connections = connection_limit(o);
    http.max_connections = connections;
    unsigned int flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    flags |= MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES ? MHD_USE_EPOLL : MHD_USE_AUTO;
    if (o->listen_addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (tls)
        flags |= MHD_USE_TLS;
    struct MHD_OptionItem tls_items[4];
    tls_options(tls, tls_items);
    /* the logger goes first so that MHD reports even option errors through it */
    // clang-format off
    http.daemon = MHD_start_daemon(
        flags, 0, on_accept, NULL, on_access, NULL,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
        MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&http.context.options.listen_addr,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, NULL,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        MHD_OPTION_THREAD_POOL_SIZE, o->threads > 1 ? o->threads : 0u, /* 1: no pool */
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
        /* room above our own limit (on_accept()), so that MHD takes the
         * connections we close rather than leave them queued */
        MHD_OPTION_CONNECTION_LIMIT, connections + ACCEPT_SLACK,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)ceil(o->idle_timeout),
        MHD_OPTION_ARRAY, tls_items,
        MHD_OPTION_END);
    // clang-format on
    if (http.daemon == NULL) {
        log_error("cannot start the HTTP server on %s", o->listen);
        return false;
    }
    atomic_store(&http.started, true);
    log_listening(tls ? "https" : "http");
    log_info("at most %u connections; idle ones closed after %g s", connections,
             ceil(o->idle_timeout));
    return true;
}

void http_quiesce(void)
{
    /* no MHD_quiesce_daemon(): see on_accept() */
    atomic_store(&http.context.stopping, true);
}

void http_drain(unsigned timeout_ms)
{
    struct timespec tick = {.tv_nsec = 10 * 1000000L};
    for (unsigned waited = 0; waited < timeout_ms; waited += 10) {
        if (atomic_load(&http.in_flight) == 0)
            return;
        nanosleep(&tick, NULL);
    }
    log_warn("%zu request(s) still in progress after %u ms; closing them",
             atomic_load(&http.in_flight), timeout_ms);
}

void http_stop(void)
{
    if (http.daemon)
        MHD_stop_daemon(http.daemon);
    http.daemon = NULL;
}
