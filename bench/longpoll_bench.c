/* longpoll_bench.c - long-poll capacity (part 4 of bench/README.md): how many
 * idle waiting GETs one server holds, what they cost in memory, and how fast
 * a waiting GET wakes when a message arrives.
 *
 * Each run starts a fresh server on 127.0.0.1 and:
 *
 *   hold     opens --connections (10,000) non-blocking sockets, each sending
 *            GET /channels/lp-NNNNN?wait=60, spread evenly over --channels
 *            (1000) channels, so 10 wait on each. They connect in batches of
 *            BATCH; after each batch the benchmark waits (bounded) until the
 *            server has accepted them all, watching the accept queue of its
 *            listening socket in /proc/net/tcp, so the listen backlog never
 *            overflows. (Not by polling /metrics: with 1000 channels a scrape
 *            builds about 1 MB, and 40 scrapes during the connect phase left
 *            enough freed, touched heap under the new connections to raise
 *            the RSS figure from about 62 to 102 MiB.) A connect that fails
 *            or a connection reset before any answer is retried
 *            (MAX_ATTEMPTS in all) and counted. The connections are held
 *            once the server's hopper_channel_waiting_receivers sum (from
 *            /metrics) reaches --connections and no socket has been answered
 *            or closed; the figure is what that sum reached (within
 *            HOLD_TIMEOUT_S).
 *   memory   the server's VmRSS with all of them waiting, read after that
 *            scrape (the table shows it before the scrape too).
 *   wake     POSTs one message to each of --posts (100) channels spread over
 *            the channels, one at a time over one keep-alive connection.
 *            The time is taken just before the POST is written; one thread
 *            running an epoll loop over all the waiting sockets takes the
 *            time at which a complete response is read. Wake-up latency =
 *            response arrival - POST start. The next POST begins once both
 *            its 202 and the wake-up are in, so each latency is measured on
 *            its own. Exactly one waiter of each posted channel must answer,
 *            200 with that channel's body, and no other socket may receive
 *            anything or be closed; anything else stops the benchmark.
 *
 * The sockets are connected by the main thread over the same epoll set
 * before the wake thread takes it over: that keeps the connect phase simple
 * (it waits on the accept queue between batches) and still one loop for all.
 *
 * The benchmark raises its descriptor limit (soft to hard; as root the hard
 * limit too, where allowed) to what both it and the server need: the
 * server inherits ours and keeps 128 descriptors and 4 per --max-channels
 * for its files (server/http.c connection_limit()). It exits with a
 * message if the limit stays too low.
 *
 * Each run also reports the server's RSS before any connection (the idle
 * server), so the cost per waiter beyond it, and the kernel's memory while
 * they wait, both ends on this machine: slab (/proc/meminfo) and TCP
 * buffers (/proc/net/sockstat).
 *
 * --nchan PORT --nchan-pids "PID..." measures an nginx with the nchan
 * module instead (bench/longpoll-limit starts it): subscribers at
 * /sub/lp-NNNNN, posts to /pub/lp-NNNNN. A publish wakes every subscriber
 * of its channel, not one: all must get it, and the post's latency is its
 * first wake-up.
 *
 * The figures are the medians of --runs runs (held: the worst run). Every
 * request goes to 127.0.0.1; every phase is bounded in count and time; all
 * sockets are closed and the server stopped (SIGTERM) at the end of a run.
 *
 * Usage: hopper-bench-longpoll [--hopper PATH] [--runs N] [--connections N]
 *                              [--channels N] [--max-channels N] [--posts N]
 *                              [--scrape] [--rows | --figures]
 *                              [--nchan PORT --nchan-pids "PID..."]
 * --rows prints only the summary rows of bench/run's table; --figures one
 * line of name=value medians (for scripts). --max-channels is hopper's
 * (default the larger of --channels and 1024). --scrape reads
 * /metrics after every batch of connects, as a monitored server would see
 * (far more often than a Prometheus would: a worst case for its heap). */
#include "bench_http.h"
#include "bench_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PROG "hopper-bench-longpoll"
#define MAX_RUNS 15
#define BATCH 250            /* connects in flight at once */
#define BATCH_CATCH_UP_S 5.0 /* longest wait for the server to take a batch */
#define CONNECT_TIMEOUT_S 60 /* the whole connect phase */
#define HOLD_TIMEOUT_S 30.0  /* for the waiting count to reach --connections */
#define WAKE_TIMEOUT_S 5.0   /* for one POST's 202 and its wake-up */
#define QUIET_AFTER_S 0.2    /* after the last wake-up, for stray answers */
#define MAX_ATTEMPTS 3       /* connects of one waiter */
#define WAIT_SECONDS 60
#define RESPONSE_MAX 2048
#define BODY_BYTES 48
#define MAX_CONNECTIONS 100000
/* Descriptors hopper keeps for its files (server/http.c FD_RESERVE_FIXED,
 * FD_PER_CHANNEL), and what this benchmark keeps for its own. */
#define SERVER_FD_FIXED 128
#define SERVER_FD_PER_CHANNEL 4
#define OWN_FDS 64
#define MAX_NGINX_PIDS 16

static const char *bin = HOPPER_BIN;
static bool scrape_each_batch; /* --scrape: a monitored server */
/* --nchan PORT --nchan-pids "PID...": measure an nginx with the nchan
 * module already running there (bench/longpoll-limit starts it) instead of
 * a hopper: subscribers GET /sub/lp-NNNNN, posts go to /pub/lp-NNNNN, the
 * waiting count is nchan_stub_status's "subscribers" at /nchan_status, and
 * the RSS is the sum of the processes named. */
static int server_max_channels; /* --max-channels: hopper's; 0: max(--channels, 1024) */
static int nchan_port;
static pid_t nchan_pids[MAX_NGINX_PIDS];
static int nchan_npids;

typedef enum conn_state {
    CONN_CONNECTING,
    CONN_WAITING,  /* request written, nothing received */
    CONN_ANSWERED, /* a complete response arrived */
    CONN_FAILED,   /* could not connect in MAX_ATTEMPTS */
    CONN_BROKEN,   /* closed, reset or sent garbage after the request */
} conn_state;

typedef struct waiter {
    int fd;
    int channel;
    int attempts;
    conn_state state;
    bool extra; /* bytes beyond the first response */
    int status;
    double answered_at;
    char *buf; /* received bytes, RESPONSE_MAX, allocated on the first byte */
    size_t len;
    size_t body_off, body_len; /* of the response in buf */
} waiter;

typedef struct run_state {
    int port, n, channels, epfd;
    waiter *w;
    bool connecting; /* the connect phase: a reset before any answer is retried */
    int retries;     /* connects and resets retried */
    pthread_mutex_t lock;
    pthread_cond_t answered; /* a waiter was answered, or broke */
    int answers;             /* under lock */
    atomic_bool quit;
} run_state;

static void channel_path(char *out, size_t cap, int channel, bool wait)
{
    if (nchan_port)
        snprintf(out, cap, "/%s/lp-%05d", wait ? "sub" : "pub", channel);
    else if (wait)
        snprintf(out, cap, "/channels/lp-%05d?wait=%d", channel, WAIT_SECONDS);
    else
        snprintf(out, cap, "/channels/lp-%05d", channel);
}

/* The one message posted to channel in run: names both. */
static void make_body(char *out, int channel, int run)
{
    int n = snprintf(out, BODY_BYTES, "wake lp-%05d run %d ", channel, run);
    for (int i = n; i < BODY_BYTES; i++)
        out[i] = (char)('a' + (unsigned)(i * 7 + channel * 13 + run * 31) % 26);
}

/* ---- the waiting sockets ---- */

/* Begins a non-blocking connect of w; false (w->fd -1) if it failed at once. */
static bool waiter_connect(run_state *rs, uint32_t index)
{
    waiter *w = &rs->w[index];
    w->attempts++;
    w->state = CONN_CONNECTING;
    w->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (w->fd < 0)
        bench_die(PROG, "socket: %s", strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)rs->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(w->fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS) {
        close(w->fd);
        w->fd = -1;
        return false;
    }
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP, .data.u32 = index};
    if (epoll_ctl(rs->epfd, EPOLL_CTL_ADD, w->fd, &ev) != 0)
        bench_die(PROG, "epoll_ctl: %s", strerror(errno));
    return true;
}

/* Connect failed or the server reset the connection before answering:
 * again, up to MAX_ATTEMPTS. Returns true while w is still connecting. */
static bool waiter_retry(run_state *rs, uint32_t index)
{
    waiter *w = &rs->w[index];
    if (w->fd >= 0)
        close(w->fd); /* also leaves the epoll set */
    w->fd = -1;
    while (w->attempts < MAX_ATTEMPTS) {
        rs->retries++;
        if (waiter_connect(rs, index))
            return true;
    }
    w->state = CONN_FAILED;
    return false;
}

/* The connect of w completed (or failed): write the GET. Returns true if w
 * is now waiting, false if it is still connecting (retried) or failed. */
static bool waiter_send(run_state *rs, uint32_t index)
{
    waiter *w = &rs->w[index];
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)
        return waiter_retry(rs, index), false;
    char path[64], req[256];
    channel_path(path, sizeof path, w->channel, true);
    size_t n = bench_format_request(req, sizeof req, "GET", path, NULL, 0);
    if (write(w->fd, req, n) != (ssize_t)n) /* a fresh socket takes 60 bytes */
        return waiter_retry(rs, index), false;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = index};
    if (epoll_ctl(rs->epfd, EPOLL_CTL_MOD, w->fd, &ev) != 0)
        bench_die(PROG, "epoll_ctl: %s", strerror(errno));
    w->state = CONN_WAITING;
    return true;
}

static void note_answer(run_state *rs)
{
    pthread_mutex_lock(&rs->lock);
    rs->answers++;
    pthread_cond_signal(&rs->answered);
    pthread_mutex_unlock(&rs->lock);
}

/* Bytes (or a close) arrived on a waiting or answered socket. */
static void waiter_read(run_state *rs, uint32_t index)
{
    waiter *w = &rs->w[index];
    if (w->buf == NULL && (w->buf = malloc(RESPONSE_MAX)) == NULL)
        bench_die(PROG, "out of memory");
    ssize_t r = read(w->fd, w->buf + w->len, RESPONSE_MAX - w->len);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (r <= 0 || w->len + (size_t)r >= RESPONSE_MAX) {
        bool unanswered = w->state == CONN_WAITING && w->len == 0;
        epoll_ctl(rs->epfd, EPOLL_CTL_DEL, w->fd, NULL);
        if (unanswered && r <= 0 && rs->connecting && w->attempts < MAX_ATTEMPTS) {
            waiter_retry(rs, index); /* reset before the wait began: connect again */
            return;
        }
        w->state = CONN_BROKEN;
        note_answer(rs);
        return;
    }
    w->len += (size_t)r;
    if (w->state == CONN_ANSWERED) {
        w->extra = true;
        note_answer(rs);
        return;
    }
    bench_response resp;
    long used = bench_parse_response(w->buf, w->len, &resp);
    if (used == 0)
        return;
    w->answered_at = bench_now();
    if (used < 0) {
        w->state = CONN_BROKEN;
    } else {
        w->state = CONN_ANSWERED;
        w->status = resp.status;
        w->body_off = (size_t)(resp.body - w->buf);
        w->body_len = resp.body_len;
        w->extra = (size_t)used < w->len;
    }
    note_answer(rs);
}

/* One round of the epoll loop: up to timeout_ms for events. */
static void pump(run_state *rs, int timeout_ms)
{
    struct epoll_event ev[256];
    int n = epoll_wait(rs->epfd, ev, 256, timeout_ms);
    for (int i = 0; i < n; i++) {
        uint32_t index = ev[i].data.u32;
        conn_state state = rs->w[index].state;
        if (state == CONN_CONNECTING)
            waiter_send(rs, index);
        else if (state == CONN_WAITING || state == CONN_ANSWERED)
            waiter_read(rs, index);
    }
}

static void *wake_thread(void *arg)
{
    run_state *rs = arg;
    while (!atomic_load(&rs->quit))
        pump(rs, 20);
    return NULL;
}

/* ---- one run ---- */

typedef struct figures {
    int held;
    double connect_s, rss_idle_mib, rss_before_mib, rss_mib;
    double socket_kib; /* kernel TCP buffer memory (both ends) while they wait */
    double slab_kib;   /* kernel slab memory (sockets, epoll items, ...) while they wait */
    double p50_ms, p99_ms, max_ms;
    int retries;
} figures;

static int count_state(const run_state *rs, conn_state state)
{
    int k = 0;
    for (int i = 0; i < rs->n; i++)
        k += rs->w[i].state == state;
    return k;
}

/* The listening socket on port: OUT *queued, connections the kernel has
 * completed and the server has not yet accepted. False if /proc/net/tcp
 * does not show it. */
static bool accept_queue(int port, long *queued)
{
    FILE *f = fopen("/proc/net/tcp", "r");
    if (f == NULL)
        return false;
    char line[256];
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        unsigned local_port, state;
        unsigned long tx, rx;
        if (sscanf(line, " %*d: %*x:%x %*x:%*x %x %lx:%lx", &local_port, &state, &tx, &rx) == 4 &&
            state == 0x0A && (int)local_port == port) {
            *queued = (long)rx; /* for a listening socket: its accept queue */
            found = true;
        }
    }
    fclose(f);
    return found;
}

/* Connects every waiter, a batch at a time; returns the seconds it took. */
static double connect_all(run_state *rs)
{
    double t0 = bench_now(), give_up = t0 + CONNECT_TIMEOUT_S;
    for (int start = 0; start < rs->n; start += BATCH) {
        int end = start + BATCH < rs->n ? start + BATCH : rs->n;
        for (int i = start; i < end; i++) {
            rs->w[i].channel = i % rs->channels;
            if (!waiter_connect(rs, (uint32_t)i))
                waiter_retry(rs, (uint32_t)i);
        }
        int pending = end - start;
        while (pending > 0 && bench_now() < give_up) {
            pump(rs, 100);
            pending = 0;
            for (int i = start; i < end; i++)
                pending += rs->w[i].state == CONN_CONNECTING;
        }
        if (pending > 0)
            bench_die(PROG, "connect phase took over %d s", CONNECT_TIMEOUT_S);
        /* let the server accept the batch before the next one */
        double until = bench_now() + BATCH_CATCH_UP_S;
        long queued = 0;
        while (bench_now() < until) {
            if (!accept_queue(rs->port, &queued)) {
                pump(rs, 20); /* cannot see it: a pause instead */
                break;
            }
            if (queued == 0)
                break;
            pump(rs, 2);
        }
        if (scrape_each_batch) {
            bench_server probe = {.port = rs->port};
            bench_server_metric(&probe, "hopper_channels");
        }
    }
    return bench_now() - t0;
}

/* The kernel's TCP buffer memory in KiB, /proc/net/sockstat's "TCP: ...
 * mem PAGES" (every socket of the machine), or -1. */
static double tcp_mem_kib(void)
{
    FILE *f = fopen("/proc/net/sockstat", "r");
    if (f == NULL)
        return -1;
    char line[256];
    double kib = -1;
    while (fgets(line, sizeof line, f)) {
        const char *mem = strstr(line, " mem ");
        if (strncmp(line, "TCP:", 4) == 0 && mem)
            kib = atof(mem + 5) * (double)sysconf(_SC_PAGESIZE) / 1024.0;
    }
    fclose(f);
    return kib;
}

/* The kernel's slab memory in KiB (/proc/meminfo Slab: socket structures,
 * their inodes and dentries, epoll items; the whole machine), or -1. */
static double slab_kib(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (f == NULL)
        return -1;
    char line[256];
    double kib = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "Slab:", 5) == 0)
            kib = atof(line + 5);
    fclose(f);
    return kib;
}

/* What is measured: the server's RSS in KiB (hopper's, or the sum of the
 * nginx processes), and its waiting count (-1 if unreadable). */
static long target_rss_kib(const bench_server *s)
{
    if (!nchan_port)
        return bench_server_rss_kib(s);
    long sum = 0;
    for (int i = 0; i < nchan_npids; i++) {
        bench_server one = {.pid = nchan_pids[i]};
        sum += bench_server_rss_kib(&one);
    }
    return sum;
}

static double target_waiting(const bench_server *s)
{
    if (!nchan_port)
        return bench_server_metric(s, "hopper_channel_waiting_receivers");
    bench_conn c;
    bench_response r;
    if (bench_conn_open(&c, s->port) != 0)
        return -1;
    double n = -1;
    if (bench_conn_request(&c, "GET", "/nchan_status", NULL, 0, &r) == 0 && r.status == 200) {
        char text[1024];
        size_t len = r.body_len < sizeof text - 1 ? r.body_len : sizeof text - 1;
        memcpy(text, r.body, len);
        text[len] = '\0';
        const char *p = strstr(text, "subscribers:");
        if (p)
            n = atof(p + strlen("subscribers:"));
    }
    bench_conn_close(&c);
    return n;
}

static void run_once(figures *f, int n, int channels, int posts, int run)
{
    char max_channels[32];
    snprintf(max_channels, sizeof max_channels, "%d",
             server_max_channels ? server_max_channels
             : channels > 1024   ? channels
                                 : 1024);
    const char *args[] = {"--max-channels", max_channels, NULL};
    bench_server s = {.port = nchan_port};
    if (!nchan_port)
        bench_server_start(&s, bin, args);
    f->rss_idle_mib = (double)target_rss_kib(&s) / 1024.0;
    double socket_idle_kib = tcp_mem_kib(), slab_idle_kib = slab_kib();

    run_state rs = {.port = s.port, .n = n, .channels = channels};
    rs.w = calloc((size_t)n, sizeof *rs.w);
    if (rs.w == NULL)
        bench_die(PROG, "out of memory");
    for (int i = 0; i < n; i++)
        rs.w[i].fd = -1;
    pthread_mutex_init(&rs.lock, NULL);
    pthread_cond_init(&rs.answered, NULL);
    if ((rs.epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
        bench_die(PROG, "epoll_create1: %s", strerror(errno));

    /* hold */
    rs.connecting = true;
    f->connect_s = connect_all(&rs);
    /* the server's RSS is read before and after the scrape that shows all
     * waiting: building /metrics (about 1 KB a channel) leaves its own mark */
    f->rss_before_mib = (double)target_rss_kib(&s) / 1024.0;
    double waiting = -1, until = bench_now() + HOLD_TIMEOUT_S;
    while (bench_now() < until) {
        waiting = target_waiting(&s);
        if (waiting >= n)
            break;
        pump(&rs, 100);
        f->rss_before_mib = (double)target_rss_kib(&s) / 1024.0;
    }
    pump(&rs, 0);
    f->retries = rs.retries;
    f->held = (int)waiting;
    int failed = count_state(&rs, CONN_FAILED), broken = count_state(&rs, CONN_BROKEN);
    int early = count_state(&rs, CONN_ANSWERED);
    if (failed || broken || early)
        fprintf(stderr,
                "%s: run %d: %d could not connect, %d closed, %d answered before any "
                "message\n",
                PROG, run, failed, broken, early);
    if (f->held > n - failed - broken - early)
        f->held = n - failed - broken - early;

    rs.connecting = false;

    /* memory */
    f->rss_mib = (double)target_rss_kib(&s) / 1024.0;
    f->socket_kib = tcp_mem_kib() - socket_idle_kib;
    f->slab_kib = slab_kib() - slab_idle_kib;

    /* wake: the sockets already answered or closed (reported above) take
     * no part */
    for (int i = 0; i < n; i++)
        if (rs.w[i].state == CONN_ANSWERED || rs.w[i].state == CONN_BROKEN) {
            close(rs.w[i].fd);
            rs.w[i].fd = -1;
            rs.w[i].state = CONN_FAILED;
        }
    rs.answers = 0;
    pthread_t thread;
    if (pthread_create(&thread, NULL, wake_thread, &rs) != 0)
        bench_die(PROG, "pthread_create failed");
    int *posted_at = malloc((size_t)channels * sizeof *posted_at); /* channel -> post */
    double *started = malloc((size_t)posts * sizeof *started);
    double *latency = malloc((size_t)posts * sizeof *latency);
    if (posted_at == NULL || started == NULL || latency == NULL)
        bench_die(PROG, "out of memory");
    for (int c = 0; c < channels; c++)
        posted_at[c] = -1;
    /* hopper hands a message to one waiter; nchan publishes it to every
     * subscriber of the channel: the answers each post brings */
    int *per_channel = calloc((size_t)channels, sizeof *per_channel);
    if (per_channel == NULL)
        bench_die(PROG, "out of memory");
    for (int i = 0; i < n; i++)
        per_channel[rs.w[i].channel] += rs.w[i].state == CONN_WAITING;
    int due = 0;
    bench_conn pc;
    if (bench_conn_open(&pc, s.port) != 0)
        bench_die(PROG, "cannot connect to post: %s", strerror(errno));
    char path[64], body[BODY_BYTES];
    for (int p = 0; p < posts; p++) {
        int channel = (int)((long)p * channels / posts);
        posted_at[channel] = p;
        due += nchan_port ? per_channel[channel] : 1;
        channel_path(path, sizeof path, channel, false);
        make_body(body, channel, run);
        bench_response r;
        started[p] = bench_now();
        if (bench_conn_request(&pc, "POST", path, body, sizeof body, &r) != 0 ||
            !(r.status == 202 || (nchan_port && r.status == 201)))
            bench_die(PROG, "run %d: POST to channel %d not answered 202", run, channel);
        double give_up = bench_now() + WAKE_TIMEOUT_S;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += (time_t)WAKE_TIMEOUT_S;
        pthread_mutex_lock(&rs.lock);
        while (rs.answers < due && bench_now() < give_up)
            pthread_cond_timedwait(&rs.answered, &rs.lock, &ts);
        int answers = rs.answers;
        pthread_mutex_unlock(&rs.lock);
        if (answers < due)
            bench_die(PROG, "run %d: no waiter of channel %d woke within %.0f s", run, channel,
                      WAKE_TIMEOUT_S);
    }
    nanosleep(&(struct timespec){.tv_nsec = (long)(QUIET_AFTER_S * 1e9)}, NULL);
    atomic_store(&rs.quit, true);
    pthread_join(thread, NULL);
    bench_conn_close(&pc);
    double left = target_waiting(&s);

    /* check: one waiter of each posted channel (nchan: every one), with its
     * body; nothing else. A post's latency is its first wake-up. */
    int woke = 0;
    int *woken = calloc((size_t)channels, sizeof *woken); /* channel -> waiters answered */
    if (woken == NULL)
        bench_die(PROG, "out of memory");
    for (int p = 0; p < posts; p++)
        latency[p] = -1;
    char want[BODY_BYTES];
    for (int i = 0; i < n; i++) {
        waiter *w = &rs.w[i];
        if (w->state != CONN_ANSWERED && w->state != CONN_BROKEN)
            continue;
        int p = posted_at[w->channel];
        if (w->state == CONN_BROKEN || w->extra)
            bench_die(PROG,
                      "run %d: a waiter of channel %d was closed or got more than one "
                      "response",
                      run, w->channel);
        if (p < 0)
            bench_die(PROG, "run %d: a waiter of channel %d (not posted to) got status %d", run,
                      w->channel, w->status);
        if (woken[w->channel]++ > 0 && !nchan_port)
            bench_die(PROG, "run %d: two waiters of channel %d woke", run, w->channel);
        make_body(want, w->channel, run);
        if (w->status != 200 || w->body_len != BODY_BYTES ||
            memcmp(w->buf + w->body_off, want, BODY_BYTES) != 0)
            bench_die(PROG, "run %d: a waiter of channel %d got status %d, not its message", run,
                      w->channel, w->status);
        double t = w->answered_at - started[p];
        if (latency[p] < 0 || t < latency[p])
            latency[p] = t;
        woke++;
    }
    if (woke != due)
        bench_die(PROG, "run %d: %d waiters woke, %d expected", run, woke, due);
    if (left != f->held - due)
        fprintf(stderr, "%s: run %d: %.0f still waiting after the wake-ups, expected %d\n", PROG,
                run, left, f->held - due);
    free(woken);
    free(per_channel);
    for (int p = 0; p < posts; p++)
        latency[p] *= 1000;
    f->p50_ms = bench_percentile(latency, (size_t)posts, 50);
    f->p99_ms = bench_percentile(latency, (size_t)posts, 99);
    f->max_ms = latency[posts - 1];

    /* the server answers the rest 204 as it stops; then our sockets go */
    if (!nchan_port)
        bench_server_stop(&s);
    for (int i = 0; i < n; i++) {
        if (rs.w[i].fd >= 0)
            close(rs.w[i].fd);
        free(rs.w[i].buf);
    }
    close(rs.epfd);
    pthread_cond_destroy(&rs.answered);
    pthread_mutex_destroy(&rs.lock);
    free(rs.w);
    free(posted_at);
    free(started);
    free(latency);
}

/* Our descriptor limit up to what n sockets need here and in the server
 * (which inherits it and keeps SERVER_FD_FIXED and SERVER_FD_PER_CHANNEL
 * for each of max_channels for its files); exits if it cannot. */
static void raise_fd_limit(int n, int max_channels)
{
    rlim_t need = (rlim_t)n + OWN_FDS;
    if (!nchan_port)
        need += SERVER_FD_FIXED + (rlim_t)max_channels * SERVER_FD_PER_CHANNEL;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        bench_die(PROG, "getrlimit: %s", strerror(errno));
    rl.rlim_cur = rl.rlim_max;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
        /* the hard limit too: allowed to root (CAP_SYS_RESOURCE) */
        struct rlimit raised = {need, need};
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
            rl = raised;
    }
    setrlimit(RLIMIT_NOFILE, &rl); /* checked below */
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        bench_die(PROG, "getrlimit: %s", strerror(errno));
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
        bench_die(PROG,
                  "the file descriptor limit is %llu and could not be raised; %d connections "
                  "need %llu (the server keeps some for its files, server/http.c): raise "
                  "`ulimit -Hn` (root with CAP_SYS_RESOURCE can) or use fewer --connections",
                  (unsigned long long)rl.rlim_cur, n, (unsigned long long)need);
}

/* "PID PID ..." into nchan_pids; false if none or too many. */
static bool parse_pids(const char *text)
{
    char *end;
    for (const char *p = text; *p;) {
        long pid = strtol(p, &end, 10);
        if (end == p || pid <= 0 || nchan_npids == MAX_NGINX_PIDS)
            return false;
        nchan_pids[nchan_npids++] = (pid_t)pid;
        for (p = end; *p == ' ' || *p == ','; p++)
            ;
    }
    return nchan_npids > 0;
}

int main(int argc, char **argv)
{
    int runs = 3, n = 10000, channels = 1000, posts = 100;
    bool rows_only = false, figures_only = false;
    const char *pids = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--hopper") == 0 && i + 1 < argc)
            bin = argv[++i];
        else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--connections") == 0 && i + 1 < argc)
            n = atoi(argv[++i]);
        else if (strcmp(argv[i], "--channels") == 0 && i + 1 < argc)
            channels = atoi(argv[++i]);
        else if (strcmp(argv[i], "--posts") == 0 && i + 1 < argc)
            posts = atoi(argv[++i]);
        else if (strcmp(argv[i], "--rows") == 0)
            rows_only = true;
        else if (strcmp(argv[i], "--figures") == 0)
            figures_only = true;
        else if (strcmp(argv[i], "--scrape") == 0)
            scrape_each_batch = true;
        else if (strcmp(argv[i], "--max-channels") == 0 && i + 1 < argc)
            server_max_channels = atoi(argv[++i]);
        else if (strcmp(argv[i], "--nchan") == 0 && i + 1 < argc)
            nchan_port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--nchan-pids") == 0 && i + 1 < argc)
            pids = argv[++i];
        else {
            fprintf(stderr,
                    "usage: " PROG " [--hopper PATH] [--runs N] [--connections N] "
                    "[--channels N] [--max-channels N] [--posts N] [--scrape] [--rows | --figures] "
                    "[--nchan PORT --nchan-pids \"PID...\"]\n");
            return 2;
        }
    }
    if (runs < 1 || runs > MAX_RUNS)
        bench_die(PROG, "--runs must be 1..%d", MAX_RUNS);
    if (n < 1 || n > MAX_CONNECTIONS)
        bench_die(PROG, "--connections must be 1..%d", MAX_CONNECTIONS);
    if (channels < 1 || channels > 99999 || posts < 1 || posts > channels || posts > n)
        bench_die(PROG, "--channels must be 1..99999 and --posts 1..min(channels, connections)");
    if (nchan_port && (nchan_port > 65535 || pids == NULL || !parse_pids(pids)))
        bench_die(PROG, "--nchan needs a port and --nchan-pids, the nginx processes");
    signal(SIGPIPE, SIG_IGN);
    if (server_max_channels && server_max_channels < channels)
        bench_die(PROG, "--max-channels must be at least --channels");
    raise_fd_limit(n, server_max_channels ? server_max_channels
                      : channels > 1024   ? channels
                                          : 1024);

    figures f[MAX_RUNS];
    double rss[MAX_RUNS], idle[MAX_RUNS], sock[MAX_RUNS], slab[MAX_RUNS], p50[MAX_RUNS],
        p99[MAX_RUNS], max[MAX_RUNS];
    int held = n;
    bool table = !rows_only && !figures_only;
    if (table)
        printf("%s: %d idle GET ?wait=%d over %d channels, then 1 POST to each of %d; "
               "median of %d runs%s\n\n"
               "%4s %8s %9s %8s %9s %11s %9s %9s %9s %9s %9s\n",
               PROG, n, WAIT_SECONDS, channels, posts, runs, nchan_port ? " (nginx nchan)" : "",
               "run", "held", "connect", "retries", "idle MiB", "pre-scrape", "RSS MiB", "KiB/wait",
               "p50 ms", "p99 ms", "max ms");
    for (int r = 0; r < runs; r++) {
        run_once(&f[r], n, channels, posts, r);
        rss[r] = f[r].rss_mib, p50[r] = f[r].p50_ms, p99[r] = f[r].p99_ms, max[r] = f[r].max_ms;
        idle[r] = f[r].rss_idle_mib, sock[r] = f[r].socket_kib, slab[r] = f[r].slab_kib;
        if (f[r].held < held)
            held = f[r].held;
        if (table) {
            printf("%4d %8d %8.1fs %8d %9.1f %11.1f %9.1f %9.2f %9.2f %9.2f %9.2f\n", r, f[r].held,
                   f[r].connect_s, f[r].retries, f[r].rss_idle_mib, f[r].rss_before_mib,
                   f[r].rss_mib,
                   (f[r].rss_mib - f[r].rss_idle_mib) * 1024 / (f[r].held > 0 ? f[r].held : 1),
                   f[r].p50_ms, f[r].p99_ms, f[r].max_ms);
            fflush(stdout);
        }
    }
    double mrss = bench_median(rss, runs), m50 = bench_median(p50, runs);
    double m99 = bench_median(p99, runs), mmax = bench_median(max, runs);
    double midle = bench_median(idle, runs), msock = bench_median(sock, runs);
    double mslab = bench_median(slab, runs);
    double per_waiter = (mrss - midle) * 1024 / (held > 0 ? held : 1);
    if (figures_only) {
        /* for bench/longpoll-limit: one line of name=value */
        printf("held=%d connections=%d idle_mib=%.1f rss_mib=%.1f per_waiter_kib=%.2f "
               "socket_kib=%.0f slab_kib=%.0f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
               held, n, midle, mrss, per_waiter, msock, mslab, m50, m99, mmax);
        return 0;
    }
    if (table)
        printf(
            "\nper waiter beyond the idle server: %.2f KiB; while they wait, kernel TCP "
            "buffers (both ends, /proc/net/sockstat) %.0f KiB and slab (/proc/meminfo) %.0f "
            "KiB\n"
            "\n| part | what | hopper | baseline | ratio | target |\n|---|---|---|---|---|---|\n",
            per_waiter, msock, mslab);
    printf("| 4 long-poll | idle GET ?wait=%d held, %d over %d channels (worst run) | %d of %d | | "
           "| all held %s |\n",
           WAIT_SECONDS, n, channels, held, n, held == n ? "met" : "NOT MET");
    printf("| 4 long-poll | server RSS with all %d waiting | %.1f MiB | | | < 64 MiB %s |\n", n,
           mrss, mrss < 64 ? "met" : "NOT MET");
    printf("| 4 long-poll | wake-up latency p50 / p99 / max, POST start to response, %d "
           "channels | %.2f / %.2f / %.2f ms | | | p99 < 10 ms %s |\n",
           posts, m50, m99, mmax, m99 < 10 ? "met" : "NOT MET");
    return 0;
}
