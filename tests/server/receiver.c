/* receiver.c - the scripted HTTP receiver of the forwarding tests (see
 * receiver.h), on libmicrohttpd with a thread per connection.
 *
 * A request's life: MHD calls on_request() with its header block (a new
 * building state is made and the headers copied), then with each piece of
 * its body, then once more with nothing: the request is recorded, takes its
 * answer from the script, hangs if told to, and is answered or its
 * connection closed (MHD_NO). on_completed() then marks it answered and
 * frees the building state, also for a request whose connection died
 * before it was recorded.
 *
 * In TLS mode (rc_start_tls()) the daemon is the same with MHD_USE_TLS and
 * the certificate and key given as PEM text (libmicrohttpd's GnuTLS does the
 * handshake); rc_up() starts it again with the same ones. */
#include "receiver.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A hang checks this often whether the receiver is going down. */
#define HANG_SLICE_MS 5
/* rc_up() tries to bind the port this long (a closed port is normally free
 * at once: MHD sets SO_REUSEADDR, and no socket bound to port 0 gets it:
 * fixed_port()). */
#define REBIND_PATIENCE_MS 5000
/* The receiver listens on a random port from here up to the ephemeral
 * range, tried this many times (another receiver may have it). */
#define FIXED_PORT_MIN 10000
#define PORT_TRIES 50
/* An idle connection is closed after this long (hopper keeps them alive). */
#define IDLE_TIMEOUT_S 120

/* An answer owned by the receiver (rc_answer's strings copied). */
typedef struct script_answer {
    rc_answer a;
    struct script_answer *next;
} script_answer;

struct rc_receiver {
    pthread_mutex_t lock;
    pthread_cond_t changed; /* a request recorded or answered */
    struct MHD_Daemon *daemon;
    int port;
    char url[64];
    char *cert_pem, *key_pem; /* TLS mode: copies of what rc_start_tls() got;
                               * NULL: plain HTTP */
    atomic_bool going_down;   /* ends hangs while rc_down() stops the daemon */

    rc_answer fallback; /* the default answer (owned strings) */
    script_answer *first, *last;
    size_t pending;

    rc_request **requests;
    size_t count, cap, answered;
    int in_flight, max_in_flight;
};

/* The state of one request while MHD handles it. */
typedef struct building {
    rc_request *req; /* new until recorded, then the receiver's */
    bool recorded;
    int status; /* of its answer; 0: closed */
    size_t body_cap;
} building;

double rc_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *copy_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static rc_answer answer_copy(const rc_answer *a)
{
    rc_answer c = *a;
    c.headers = copy_or_null(a->headers);
    c.body = copy_or_null(a->body);
    return c;
}

static void answer_release(rc_answer *a)
{
    free((char *)a->headers);
    free((char *)a->body);
    a->headers = a->body = NULL;
}

static void request_free(rc_request *req)
{
    if (req == NULL)
        return;
    for (size_t i = 0; i < req->header_count; i++) {
        free(req->headers[i].name);
        free(req->headers[i].value);
    }
    free(req->headers);
    free(req->path);
    free(req->body);
    free(req);
}

/* ---- building a request ---- */

static enum MHD_Result add_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    (void)kind;
    rc_request *req = cls;
    rc_header *h = realloc(req->headers, (req->header_count + 1) * sizeof *h);
    if (h == NULL)
        return MHD_NO;
    req->headers = h;
    h[req->header_count].name = strdup(key);
    h[req->header_count].value = strdup(value ? value : "");
    req->header_count++;
    return MHD_YES;
}

/* A building state for a request whose header block just came. NULL if
 * out of memory. */
static building *building_new(struct MHD_Connection *c, const char *url, const char *method)
{
    building *b = calloc(1, sizeof *b);
    rc_request *req = calloc(1, sizeof *req);
    if (b == NULL || req == NULL) {
        free(b);
        free(req);
        return NULL;
    }
    req->arrived = rc_now();
    snprintf(req->method, sizeof req->method, "%s", method);
    req->path = strdup(url);
    req->body = calloc(1, 1);
    MHD_get_connection_values(c, MHD_HEADER_KIND, add_header, req);
    b->req = req;
    return b;
}

static bool body_append(building *b, const char *data, size_t n)
{
    rc_request *req = b->req;
    if (req->body_len + n + 1 > b->body_cap) {
        size_t cap = b->body_cap ? b->body_cap : 1024;
        while (cap < req->body_len + n + 1)
            cap *= 2;
        unsigned char *p = realloc(req->body, cap);
        if (p == NULL)
            return false;
        req->body = p;
        b->body_cap = cap;
    }
    memcpy(req->body + req->body_len, data, n);
    req->body_len += n;
    req->body[req->body_len] = '\0';
    return true;
}

/* ---- recording and answering ---- */

/* Record b's request and take its answer from the script. OUT: *a (owned
 * strings, release with answer_release()). */
static void record(rc_receiver *r, building *b, rc_answer *a)
{
    pthread_mutex_lock(&r->lock);
    if (r->count == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        rc_request **p = realloc(r->requests, cap * sizeof *p);
        if (p == NULL)
            abort(); /* a test cannot go on with requests unrecorded */
        r->requests = p;
        r->cap = cap;
    }
    r->requests[r->count++] = b->req;
    b->recorded = true;
    if (++r->in_flight > r->max_in_flight)
        r->max_in_flight = r->in_flight;
    script_answer *s = r->first;
    if (s) {
        r->first = s->next;
        if (r->first == NULL)
            r->last = NULL;
        r->pending--;
        *a = s->a; /* its strings move to *a */
        free(s);
    } else {
        *a = answer_copy(&r->fallback);
    }
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->lock);
}

/* Sleep ms, or less if the receiver goes down. */
static void hang(rc_receiver *r, int ms)
{
    double until = rc_now() + ms / 1000.0;
    while (!atomic_load(&r->going_down) && rc_now() < until)
        usleep(HANG_SLICE_MS * 1000);
}

/* Queue a response with a's status, headers and body. */
static enum MHD_Result respond(struct MHD_Connection *c, const rc_answer *a)
{
    const char *body = a->body ? a->body : "";
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (resp == NULL)
        return MHD_NO;
    for (const char *line = a->headers; line && *line;) {
        size_t len = strcspn(line, "\n");
        char buf[1024];
        snprintf(buf, sizeof buf, "%.*s", (int)len, line);
        char *colon = strchr(buf, ':');
        if (colon) {
            *colon = '\0';
            const char *value = colon + 1;
            while (*value == ' ')
                value++;
            MHD_add_response_header(resp, buf, value);
        }
        line += len;
        if (*line == '\n')
            line++;
    }
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)(a->status ? a->status : 200), resp);
    MHD_destroy_response(resp);
    return ok;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    rc_receiver *r = cls;
    building *b = *con_cls;
    if (b == NULL) {
        b = building_new(c, url, method);
        *con_cls = b;
        return b ? MHD_YES : MHD_NO;
    }
    if (*upload_data_size > 0) {
        bool ok = body_append(b, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return ok ? MHD_YES : MHD_NO;
    }
    rc_answer a;
    record(r, b, &a);
    if (a.hang_ms > 0)
        hang(r, a.hang_ms);
    enum MHD_Result result = MHD_NO;
    if (!a.close && !atomic_load(&r->going_down)) {
        result = respond(c, &a);
        b->status = a.status ? a.status : 200;
    }
    answer_release(&a);
    return result;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)c;
    rc_receiver *r = cls;
    building *b = *con_cls;
    if (b == NULL)
        return;
    *con_cls = NULL;
    if (!b->recorded) {
        request_free(b->req);
        free(b);
        return;
    }
    pthread_mutex_lock(&r->lock);
    b->req->answered = rc_now();
    b->req->status = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? b->status : 0;
    r->answered++;
    r->in_flight--;
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->lock);
    free(b);
}

/* ---- the daemon ---- */

/* Start MHD on 127.0.0.1:port (0: a free one), speaking TLS if r has a
 * certificate. NULL on failure. */
static struct MHD_Daemon *daemon_start(rc_receiver *r, int port)
{
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION;
    struct MHD_OptionItem tls[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, r->cert_pem},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, r->key_pem},
        {MHD_OPTION_END, 0, NULL},
    };
    if (r->cert_pem)
        flags |= MHD_USE_TLS;
    return MHD_start_daemon(flags, 0, NULL, NULL, on_request, r, MHD_OPTION_SOCK_ADDR, &addr,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, r,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_S,
                            MHD_OPTION_ARRAY, r->cert_pem ? tls : &tls[2], MHD_OPTION_END);
}

/* A random port below the kernel's ephemeral range: a port the kernel never
 * hands to a socket bound to port 0 or to a client, so while the receiver
 * is down (rc_down()) no other test's server can take it. */
static int fixed_port(void)
{
    int low = 32768, high;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%d %d", &low, &high) != 2)
            low = 32768;
        fclose(f);
    }
    if (low <= FIXED_PORT_MIN + 1000) /* an unusual range: let the kernel choose */
        return 0;
    static atomic_uint seed;
    unsigned x =
        atomic_fetch_add(&seed, 1) + (unsigned)getpid() * 2654435761u + (unsigned)(rc_now() * 1e6);
    return FIXED_PORT_MIN + (int)(x % (unsigned)(low - FIXED_PORT_MIN));
}

bool rc_tls_supported(void)
{
    return MHD_is_feature_supported(MHD_FEATURE_TLS) == MHD_YES;
}

/* rc_start(), or rc_start_tls() when cert_pem is not NULL. */
static int start(rc_receiver **out, const char *cert_pem, const char *key_pem)
{
    *out = NULL;
    if (cert_pem && !rc_tls_supported()) {
        fprintf(stderr, "receiver: this libmicrohttpd has no TLS\n");
        return -1;
    }
    rc_receiver *r = calloc(1, sizeof *r);
    if (r == NULL)
        return -1;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->changed, NULL);
    atomic_init(&r->going_down, false);
    r->fallback.status = 200;
    if (cert_pem &&
        ((r->cert_pem = strdup(cert_pem)) == NULL || (r->key_pem = strdup(key_pem)) == NULL)) {
        rc_stop(r);
        return -1;
    }
    for (int i = 0; i < PORT_TRIES && r->daemon == NULL; i++)
        r->daemon = daemon_start(r, fixed_port());
    const union MHD_DaemonInfo *info =
        r->daemon ? MHD_get_daemon_info(r->daemon, MHD_DAEMON_INFO_BIND_PORT) : NULL;
    if (info == NULL || info->port == 0) {
        fprintf(stderr, "receiver: cannot listen on 127.0.0.1%s\n",
                cert_pem ? " with TLS (is the certificate and key PEM that fit?)" : "");
        rc_stop(r);
        return -1;
    }
    r->port = info->port;
    snprintf(r->url, sizeof r->url, "%s://127.0.0.1:%d", cert_pem ? "https" : "http", r->port);
    *out = r;
    return 0;
}

int rc_start(rc_receiver **out)
{
    return start(out, NULL, NULL);
}

int rc_start_tls(rc_receiver **out, const char *cert_pem, const char *key_pem)
{
    return start(out, cert_pem, key_pem);
}

void rc_down(rc_receiver *r)
{
    pthread_mutex_lock(&r->lock);
    struct MHD_Daemon *d = r->daemon;
    r->daemon = NULL;
    pthread_mutex_unlock(&r->lock);
    if (d == NULL)
        return;
    atomic_store(&r->going_down, true);
    MHD_stop_daemon(d); /* joins every connection's thread */
    atomic_store(&r->going_down, false);
}

int rc_up(rc_receiver *r)
{
    pthread_mutex_lock(&r->lock);
    bool up = r->daemon != NULL;
    pthread_mutex_unlock(&r->lock);
    if (up)
        return 0;
    struct MHD_Daemon *d = NULL;
    double deadline = rc_now() + REBIND_PATIENCE_MS / 1000.0;
    while ((d = daemon_start(r, r->port)) == NULL && rc_now() < deadline)
        usleep(20000);
    if (d == NULL) {
        fprintf(stderr, "receiver: cannot listen on 127.0.0.1:%d again\n", r->port);
        return -1;
    }
    pthread_mutex_lock(&r->lock);
    r->daemon = d;
    pthread_mutex_unlock(&r->lock);
    return 0;
}

void rc_stop(rc_receiver *r)
{
    if (r == NULL)
        return;
    rc_down(r);
    for (size_t i = 0; i < r->count; i++)
        request_free(r->requests[i]);
    free(r->requests);
    while (r->first) {
        script_answer *s = r->first;
        r->first = s->next;
        answer_release(&s->a);
        free(s);
    }
    answer_release(&r->fallback);
    free(r->cert_pem);
    free(r->key_pem);
    pthread_cond_destroy(&r->changed);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

const char *rc_url(const rc_receiver *r)
{
    return r->url;
}

int rc_port(const rc_receiver *r)
{
    return r->port;
}

/* ---- the script ---- */

void rc_set_default(rc_receiver *r, const rc_answer *a)
{
    rc_answer c = answer_copy(a);
    pthread_mutex_lock(&r->lock);
    rc_answer old = r->fallback;
    r->fallback = c;
    pthread_mutex_unlock(&r->lock);
    answer_release(&old);
}

void rc_push_answer(rc_receiver *r, const rc_answer *a)
{
    script_answer *s = calloc(1, sizeof *s);
    if (s == NULL)
        abort(); /* a test cannot go on with a script cut short */
    s->a = answer_copy(a);
    pthread_mutex_lock(&r->lock);
    if (r->last)
        r->last->next = s;
    else
        r->first = s;
    r->last = s;
    r->pending++;
    pthread_mutex_unlock(&r->lock);
}

void rc_push_status(rc_receiver *r, int status, int n)
{
    for (int i = 0; i < n; i++)
        rc_push_answer(r, &(rc_answer){.status = status});
}

size_t rc_pending_answers(rc_receiver *r)
{
    pthread_mutex_lock(&r->lock);
    size_t n = r->pending;
    pthread_mutex_unlock(&r->lock);
    return n;
}

/* ---- what was recorded ---- */

size_t rc_count(rc_receiver *r)
{
    pthread_mutex_lock(&r->lock);
    size_t n = r->count;
    pthread_mutex_unlock(&r->lock);
    return n;
}

/* Wait up to timeout_ms until *counter >= n (counter: a field of r). */
static bool wait_for(rc_receiver *r, const size_t *counter, size_t n, int timeout_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&r->lock);
    int rc = 0;
    while (*counter < n && rc == 0)
        rc = pthread_cond_timedwait(&r->changed, &r->lock, &until);
    bool reached = *counter >= n;
    pthread_mutex_unlock(&r->lock);
    return reached;
}

bool rc_wait_requests(rc_receiver *r, size_t n, int timeout_ms)
{
    return wait_for(r, &r->count, n, timeout_ms);
}

bool rc_wait_answered(rc_receiver *r, size_t n, int timeout_ms)
{
    return wait_for(r, &r->answered, n, timeout_ms);
}

const rc_request *rc_request_at(rc_receiver *r, size_t i)
{
    pthread_mutex_lock(&r->lock);
    const rc_request *req = i < r->count ? r->requests[i] : NULL;
    pthread_mutex_unlock(&r->lock);
    return req;
}

const char *rc_header_value(const rc_request *req, const char *name)
{
    for (size_t i = 0; i < req->header_count; i++) {
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    }
    return NULL;
}

size_t rc_header_count(const rc_request *req, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < req->header_count; i++)
        n += strcasecmp(req->headers[i].name, name) == 0;
    return n;
}

int rc_in_flight(rc_receiver *r)
{
    pthread_mutex_lock(&r->lock);
    int n = r->in_flight;
    pthread_mutex_unlock(&r->lock);
    return n;
}

int rc_max_in_flight(rc_receiver *r)
{
    pthread_mutex_lock(&r->lock);
    int n = r->max_in_flight;
    pthread_mutex_unlock(&r->lock);
    return n;
}

int rc_setup(void **state)
{
    rc_receiver *r;
    if (rc_start(&r) != 0)
        return -1;
    *state = r;
    return 0;
}

int rc_teardown(void **state)
{
    rc_stop(*state);
    return 0;
}
