/* forward.c - the forwarding engine (see forward.h): forwarders, their
 * slots, the thread and its libcurl multi handle. The HTTP request of an
 * attempt is forward_request.c's. */
#include "forward.h"

#include "budget.h"
#include "envelope.h"
#include "expiry.h"
#include "forward_request.h"
#include "giveback.h"
#include "log.h"
#include "timestamp.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* The longest the thread sleeps without a reason to wake: a bound on how
 * late a stop or a lost wake-up is noticed. */
#define IDLE_MS 1000
/* Consecutive failures from which a channel is "failing", not "retrying". */
#define FAILING_AFTER 3
/* Wait after a channel could not be read (an I/O error), before trying again. */
#define READ_RETRY_S 1.0
/* Threads, each with its own multi handle; slot i of every channel is
 * thread i % THREADS's. One thread spent 25 us of CPU per 1 KiB message
 * (libcurl, malloc, the kernel's loopback), so a channel with 16 slots was
 * bound by one core; two use both. A channel with one slot (FIFO) is one
 * thread's. */
#define THREADS 2

typedef struct forwarder forwarder;

/* A slot: at most one message, from its take to its end. */
typedef struct slot {
    forwarder *fw;
    int thread; /* the thread that runs its attempts */
    void *msg;  /* NULL: empty */
    size_t len;
    uint64_t taken;    /* the forwarder's count of takes when it was taken: the order */
    double not_before; /* backoff: no attempt before this (monotonic seconds) */
    double started;
    bool in_flight;
    forward_request req;
} slot;

struct forwarder {
    registry_entry *entry;
    char url[FORWARD_URL_MAX + 1];
    forward_target target;
    hop_waiter *waiter;
    forwarder *next;
    /* F.lock: the order of takes, read errors, what the waiter delivers,
     * and what /status reads */
    uint64_t takes;
    double read_again;       /* after a read error: not before this */
    double next_at[THREADS]; /* when each thread's earliest backoff ends, 0: none */
    void *inbox;
    size_t inbox_len;
    bool armed;
    bool missed; /* a thread found nothing while armed was set: wake it */
    forward_status st;
    slot slots[FORWARD_MAX_CONCURRENCY];
};

static struct {
    const server_options *o;
    forward_signer signer;
    CURLM *multi[THREADS];
    pthread_t thread[THREADS];
    atomic_bool started;
    pthread_mutex_t lock;
    forwarder *all; /* lock: every forwarder, newest first */
    atomic_bool stop_taking, stop;
    uint64_t deadline_ms; /* lock: when the stop cuts attempts off */
} F = {.lock = PTHREAD_MUTEX_INITIALIZER};

const double forward_buckets[FORWARD_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                 0.5,   1,    2.5,   5,    10,  30};

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

uint64_t forward_now_ms(void)
{
    return (uint64_t)(now_s() * 1000);
}

static double random_unit(void)
{
    uint32_t r = 0;
    if (getrandom(&r, sizeof r, 0) != sizeof r)
        r = (uint32_t)rand();
    return (double)r / 4294967296.0;
}

/* ---- attaching channels ---- */

bool forward_is_forwarded(const char *name)
{
    return F.o && forward_rules_match(&F.o->forward, name) != NULL;
}

/* The URL without user:password@, for /status and the log (cut to size). */
static void strip_credentials(const char *url, char *out, size_t size)
{
    const char *host = strstr(url, "://");
    host = host ? host + 3 : url;
    const char *at = strchr(host, '@');
    const char *slash = strchr(host, '/');
    bool creds = at && (slash == NULL || at < slash);
    size_t scheme = (size_t)(host - url), n = 0;
    const char *parts[2] = {url, creds ? at + 1 : host};
    size_t lens[2] = {scheme, strlen(parts[1])};
    for (int i = 0; i < 2; i++) {
        size_t take = lens[i] < size - 1 - n ? lens[i] : size - 1 - n;
        memcpy(out + n, parts[i], take);
        n += take;
    }
    out[n] = '\0';
}

static void wake_all(void)
{
    for (int t = 0; t < THREADS; t++)
        curl_multi_wakeup(F.multi[t]);
}

/* The waiter's callback, on whatever thread sent the message: it goes to
 * the forwarder's inbox, and the thread is woken to start it. */
static void on_ready(void *arg, hop_err err, void *data, size_t len)
{
    forwarder *fw = arg;
    pthread_mutex_lock(&F.lock);
    fw->armed = false;
    fw->missed = false; /* every thread is woken */
    if (err == HOP_OK) {
        fw->inbox = data;
        fw->inbox_len = len;
    }
    /* under the lock: once a stop has seen armed false, nothing here runs */
    wake_all();
    pthread_mutex_unlock(&F.lock);
}

void forward_attach(registry_entry *e)
{
    const char *name = hop_channel_name(e->ch);
    const forward_rule *rule =
        atomic_load(&F.started) ? forward_rules_match(&F.o->forward, name) : NULL;
    if (rule == NULL)
        return;
    forwarder *fw = calloc(1, sizeof *fw);
    if (fw == NULL || hop_waiter_new(on_ready, fw, &fw->waiter) != HOP_OK) {
        log_error("channel %s: out of memory: it is not forwarded", name);
        free(fw);
        return;
    }
    fw->entry = e;
    snprintf(fw->url, sizeof fw->url, "%.*s", (int)rule->url_len, rule->url);
    fw->target = (forward_target){fw->url, name, F.o->forward_timeout, F.o->forward_ca,
                                  F.o->forward_secret ? &F.signer : NULL};
    strip_credentials(fw->url, fw->st.target, sizeof fw->st.target);
    fw->st.state = "ok";
    for (size_t i = 0; i < F.o->forward_concurrency; i++) {
        fw->slots[i].fw = fw;
        fw->slots[i].thread = (int)(i % THREADS);
    }
    pthread_mutex_lock(&F.lock);
    e->forwarder = fw;
    fw->next = F.all;
    F.all = fw;
    pthread_mutex_unlock(&F.lock);
    log_info("channel %s forwarded to %s", name, fw->st.target);
    wake_all();
}

/* ---- taking messages into slots ---- */

/* Into the empty slot s: the inbox's message, or the channel's oldest now
 * (else the waiter is armed), numbered in the order of takes. False if
 * there is none now. The inbox's may have expired: take() checks. */
static bool take_any(forwarder *fw, slot *s)
{
    pthread_mutex_lock(&F.lock);
    bool have = fw->inbox != NULL, wait = fw->armed;
    if (atomic_load(&fw->entry->paused)) {
        /* nothing is taken, nor armed for, until forward_resume() wakes us;
         * an inbox message stays there */
        pthread_mutex_unlock(&F.lock);
        return false;
    }
    if (have) {
        s->msg = fw->inbox;
        s->len = fw->inbox_len;
        s->taken = ++fw->takes;
        fw->inbox = NULL;
    } else if (!wait && now_s() >= fw->read_again) {
        fw->armed = true; /* before arming: the callback may run at once */
    } else {
        wait = true;
        fw->missed = fw->missed || fw->armed;
    }
    pthread_mutex_unlock(&F.lock);
    if (have || wait)
        return have;
    hop_err err = expiry_recv_or_arm(fw->entry, fw->waiter, &s->msg, &s->len);
    if (err == HOP_TIMEOUT)
        return false; /* armed: its callback wakes every thread */
    pthread_mutex_lock(&F.lock);
    fw->armed = false;
    if (err == HOP_OK)
        s->taken = ++fw->takes;
    /* a thread that found armed set meanwhile went to sleep without a
     * message, and no callback will wake it: this does */
    bool wake = fw->missed;
    fw->missed = false;
    if (err != HOP_OK && err != HOP_CLOSED)
        fw->read_again = now_s() + READ_RETRY_S; /* logged by the core */
    pthread_mutex_unlock(&F.lock);
    if (wake)
        wake_all();
    return err == HOP_OK;
}

void forward_pause(registry_entry *e)
{
    pthread_mutex_lock(&F.lock);
    forwarder *fw = e->forwarder;
    void *msg = NULL;
    size_t len = 0;
    if (fw && fw->armed && hop_waiter_cancel(fw->waiter))
        fw->armed = false; /* else its callback runs: the message goes to the inbox */
    if (fw && fw->inbox) {
        msg = fw->inbox; /* taken last, so the oldest the channel had */
        len = fw->inbox_len;
        fw->inbox = NULL;
    }
    pthread_mutex_unlock(&F.lock);
    if (msg)
        giveback_unsent(e, msg, len); /* outside F.lock: giving back may call on_ready() */
}

void forward_resume(registry_entry *e)
{
    if (e->forwarder && atomic_load(&F.started))
        wake_all(); /* the threads fill its slots again */
}

/* take_any() of a message that has not expired: expired ones are dropped
 * (expiry.h), never forwarded. */
static bool take(forwarder *fw, slot *s)
{
    while (take_any(fw, s)) {
        if (!expiry_drop_if_expired(fw->entry, s->msg, s->len))
            return true;
        s->msg = NULL;
    }
    return false;
}

/* Fill thread t's empty slots of fw, oldest message first, unless
 * stopping. */
static void fill(forwarder *fw, int t)
{
    for (size_t i = (size_t)t; i < F.o->forward_concurrency && !atomic_load(&F.stop_taking);
         i += THREADS) {
        slot *s = &fw->slots[i];
        if (s->msg)
            continue;
        if (!take(fw, s))
            break;
        s->not_before = 0;
        budget_charge(hop_message_cost(s->len)); /* in RAM until its end */
    }
}

/* The slot's message is done with: its RAM leaves the budget. */
static void empty(slot *s)
{
    budget_release(hop_message_cost(s->len));
    s->msg = NULL;
    s->len = 0;
}

/* ---- attempts ---- */

/* What an attempt came to, for the counts and the log. */
typedef enum outcome { OUTCOME_OK, OUTCOME_RETRY, OUTCOME_DEAD } outcome;

static void note_outcome(forwarder *fw, double took, long status, const char *error,
                         const char *why, outcome how);

/* Begin the attempt of s now. A damaged message is dropped (logged), and
 * one that expired while it waited for a retry (expiry.h). Returns false
 * if the slot was emptied so: it is to be filled again at once. */
static bool begin(slot *s)
{
    forwarder *fw = s->fw;
    bool bad = false;
    if (expiry_drop_if_expired(fw->entry, s->msg, s->len)) {
        empty(s);
        return false;
    }
    if (!forward_request_begin(&s->req, &fw->target, s->msg, s->len, s, &bad)) {
        if (bad) {
            log_error("channel %s: dropped a stored message with a malformed envelope",
                      fw->target.channel);
            hop_free(s->msg);
            empty(s);
            return false;
        }
        s->not_before = now_s() + READ_RETRY_S; /* out of memory: later */
        return true;
    }
    curl_multi_add_handle(F.multi[s->thread], s->req.easy);
    s->in_flight = true;
    s->started = now_s();
    return true;
}

/* Start every attempt that may start now. Returns when the earliest
 * backoff of fw ends (0: none). OUT: *wake_in, seconds until then (kept if
 * sooner). */
static double begin_ready(forwarder *fw, int t, double now, double *wake_in)
{
    double next = 0;
    for (size_t i = (size_t)t; i < F.o->forward_concurrency; i += THREADS) {
        slot *s = &fw->slots[i];
        if (s->msg == NULL || s->in_flight)
            continue;
        if (s->not_before <= now) {
            if (!begin(s))
                *wake_in = 0; /* emptied: fill it in the next round */
            continue;
        }
        if (next == 0 || s->not_before < next)
            next = s->not_before;
        if (s->not_before - now < *wake_in)
            *wake_in = s->not_before - now;
    }
    return next;
}

/* Seconds to wait before the next attempt after `failed` failed ones;
 * retry_after < 0 if the answer gave none. */
static double backoff(uint32_t failed, double retry_after)
{
    double lo = F.o->forward_retry_min, hi = F.o->forward_retry_max;
    if (retry_after >= 0)
        return retry_after < lo ? lo : retry_after > hi ? hi : retry_after;
    double cap = lo * (failed < 30 ? (double)(1u << failed) : 1e9);
    if (cap > hi)
        cap = hi;
    if (cap < lo)
        cap = lo;
    return lo + random_unit() * (cap - lo);
}

/* Why an attempt failed, for Hopper-Dead-Reason and /status. */
static void failure_text(long status, CURLcode code, char *out, size_t size)
{
    if (code == CURLE_OK)
        snprintf(out, size, "%ld", status);
    else if (code == CURLE_OPERATION_TIMEDOUT)
        snprintf(out, size, "timeout");
    else
        snprintf(out, size, "%s", curl_easy_strerror(code));
}

/* The attempt of s failed after took seconds (status 0: no answer). To
 * NAME.dead if the receiver said never, or attempts ran out; else a
 * backoff. */
static void failed(slot *s, double took, long status, CURLcode code, double retry_after)
{
    forwarder *fw = s->fw;
    char why[96], reason[200], when[TIMESTAMP_TEXT_SIZE];
    failure_text(status, code, why, sizeof why);
    uint32_t count = s->req.count; /* this attempt's */
    bool never =
        code == CURLE_OK && status >= 400 && status < 500 && status != 408 && status != 429;
    const char *error = code == CURLE_OK ? NULL : why;
    if (never || count >= F.o->forward_max_attempts) {
        timestamp_text(hop_now_ms(), when);
        snprintf(reason, sizeof reason, "%s after %" PRIu32 " attempt(s), %s", why, count, when);
        if (giveback_dead(fw->entry, s->msg, s->len, reason)) {
            note_outcome(fw, took, status, error, why, OUTCOME_DEAD);
            empty(s);
            return;
        }
    }
    note_outcome(fw, took, status, error, why, OUTCOME_RETRY);
    envelope_set_returns(s->msg, s->len, count); /* the next attempt is count + 1 */
    bool honoured = code == CURLE_OK && (status == 429 || status == 503);
    s->not_before = now_s() + backoff(count, honoured ? retry_after : -1);
}

/* An attempt ended: consume, retry or move on. */
static void finished(slot *s, CURLcode code)
{
    long status = 0;
    curl_easy_getinfo(s->req.easy, CURLINFO_RESPONSE_CODE, &status);
    double retry_after = s->req.retry_after, took = now_s() - s->started;
    curl_multi_remove_handle(F.multi[s->thread], s->req.easy);
    forward_request_end(&s->req);
    s->in_flight = false;
    if (code == CURLE_OK && status >= 200 && status < 300) {
        note_outcome(s->fw, took, status, NULL, NULL, OUTCOME_OK);
        hop_free(s->msg); /* consumed: the receiver has it */
        empty(s);
        return;
    }
    failed(s, took, status, code, retry_after);
}

/* Count an outcome and its duration (took seconds); log when a channel
 * starts failing and when it is ok again, never per attempt. why: the
 * failure, for the log. */
static void note_outcome(forwarder *fw, double took, long status, const char *error,
                         const char *why, outcome how)
{
    size_t b = 0;
    while (b < FORWARD_BUCKETS && took > forward_buckets[b])
        b++;
    pthread_mutex_lock(&F.lock);
    forward_status *st = &fw->st;
    st->buckets[b]++;
    st->duration_sum += took;
    bool was_ok = strcmp(st->state, "ok") == 0;
    uint64_t failures = st->consecutive_failures;
    st->last_status = status;
    if (error)
        snprintf(st->last_error, sizeof st->last_error, "%s", error);
    else
        st->last_error[0] = '\0';
    if (how == OUTCOME_OK) {
        st->attempts_ok++;
        st->consecutive_failures = 0;
        st->state = "ok";
    } else {
        *(how == OUTCOME_DEAD ? &st->attempts_dead : &st->attempts_retry) += 1;
        st->consecutive_failures++;
        st->state = st->consecutive_failures >= FAILING_AFTER ? "failing" : "retrying";
    }
    pthread_mutex_unlock(&F.lock);
    if (how == OUTCOME_OK && !was_ok)
        log_info("channel %s: forwarding to %s recovered after %" PRIu64 " failed attempt(s)",
                 fw->target.channel, st->target, failures);
    else if (how != OUTCOME_OK && was_ok)
        log_warn("channel %s: forwarding to %s failing (%s)", fw->target.channel, st->target, why);
}

/* ---- the thread ---- */

/* Act on every attempt of thread t that ended. Returns how many did. */
static int reap(int t)
{
    CURLMsg *m;
    int left, ended = 0;
    while ((m = curl_multi_info_read(F.multi[t], &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        slot *s = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
        finished(s, m->data.result);
        ended++;
    }
    return ended;
}

/* One round over the forwarders for thread t: take, begin. Returns how
 * long the thread may sleep, in ms. */
static int round_trip(int t)
{
    double now = now_s(), wake_in = IDLE_MS / 1000.0;
    pthread_mutex_lock(&F.lock);
    forwarder *list = F.all;
    pthread_mutex_unlock(&F.lock);
    for (forwarder *fw = list; fw; fw = fw->next) {
        fill(fw, t);
        double next = 0;
        if (!atomic_load(&F.stop_taking))
            next = begin_ready(fw, t, now, &wake_in);
        if (fw->next_at[t] != next) { /* only this thread writes it */
            pthread_mutex_lock(&F.lock);
            fw->next_at[t] = next;
            pthread_mutex_unlock(&F.lock);
        }
    }
    return (int)(wake_in * 1000) + 1;
}

static bool in_flight(int t)
{
    pthread_mutex_lock(&F.lock);
    forwarder *list = F.all; /* nodes are never unlinked while the thread runs */
    pthread_mutex_unlock(&F.lock);
    for (forwarder *fw = list; fw; fw = fw->next)
        for (size_t i = (size_t)t; i < F.o->forward_concurrency; i += THREADS)
            if (fw->slots[i].in_flight)
                return true;
    return false;
}

static void *run(void *arg)
{
    int t = (int)(intptr_t)arg, running = 0;
    CURLM *multi = F.multi[t];
    while (!atomic_load(&F.stop) || (in_flight(t) && forward_now_ms() < F.deadline_ms)) {
        int sleep_ms = round_trip(t);
        curl_multi_perform(multi, &running);
        /* an attempt that ended (in this perform, or before) empties its
         * slot or begins a backoff: go round again at once, never sleep on
         * it, so that the next message or the backoff's end is not late */
        if (reap(t) > 0)
            continue;
        curl_multi_poll(multi, NULL, 0, sleep_ms < IDLE_MS ? sleep_ms : IDLE_MS, NULL);
    }
    return NULL;
}

/* Make the multi handles and start the threads. False (logged) if not. */
static bool start_threads(void)
{
    for (int t = 0; t < THREADS; t++) {
        if ((F.multi[t] = curl_multi_init()) == NULL) {
            log_error("cannot start forwarding: libcurl failed to initialise");
            return false;
        }
    }
    for (int t = 0; t < THREADS; t++) {
        if (pthread_create(&F.thread[t], NULL, run, (void *)(intptr_t)t) != 0) {
            log_error("cannot start the forwarding threads");
            atomic_store(&F.stop, true);
            for (int u = 0; u < t; u++) {
                curl_multi_wakeup(F.multi[u]);
                pthread_join(F.thread[u], NULL);
            }
            return false;
        }
    }
    return true;
}

bool forward_start(const server_options *o)
{
    F.o = o;
    if (o->forward.count == 0)
        return true;
    char why[512];
    if (o->forward_secret && !forward_signer_load(o->forward_secret, &F.signer, why, sizeof why)) {
        log_error("--forward-secret: %s", why);
        return false;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !start_threads()) {
        for (int t = 0; t < THREADS; t++)
            if (F.multi[t])
                curl_multi_cleanup(F.multi[t]);
        return false;
    }
    atomic_store(&F.started, true);
    return true;
}

void forward_stop_taking(void)
{
    atomic_store(&F.stop_taking, true);
    if (atomic_load(&F.started))
        wake_all();
}

/* Back to the head of its channel: every slot's message, newest first, and
 * the inbox's before them (it was taken last). */
static void give_back(forwarder *fw)
{
    if (!hop_waiter_cancel(fw->waiter)) {
        /* not armed, or its callback is claimed: wait until it has run */
        pthread_mutex_lock(&F.lock);
        while (fw->armed) {
            pthread_mutex_unlock(&F.lock);
            struct timespec ms = {0, 1000000};
            nanosleep(&ms, NULL);
            pthread_mutex_lock(&F.lock);
        }
        pthread_mutex_unlock(&F.lock);
    }
    if (fw->inbox)
        giveback_unsent(fw->entry, fw->inbox, fw->inbox_len);
    for (;;) {
        slot *newest = NULL;
        for (size_t i = 0; i < F.o->forward_concurrency; i++) {
            slot *s = &fw->slots[i];
            if (s->msg && (newest == NULL || s->taken > newest->taken))
                newest = s;
        }
        if (newest == NULL)
            break;
        if (newest->in_flight) {
            curl_multi_remove_handle(F.multi[newest->thread], newest->req.easy);
            forward_request_end(&newest->req);
            newest->in_flight = false;
        }
        giveback_unsent(fw->entry, newest->msg, newest->len);
        budget_release(hop_message_cost(newest->len));
        newest->msg = NULL;
    }
    for (size_t i = 0; i < F.o->forward_concurrency; i++)
        forward_request_free(&fw->slots[i].req);
}

void forward_stop(uint64_t deadline_ms)
{
    if (!atomic_load(&F.started))
        return;
    forward_stop_taking();
    F.deadline_ms = deadline_ms;
    atomic_store(&F.stop, true);
    wake_all();
    for (int t = 0; t < THREADS; t++)
        pthread_join(F.thread[t], NULL);
    atomic_store(&F.started, false);
    for (forwarder *fw = F.all, *next; fw; fw = next) {
        next = fw->next;
        give_back(fw);
        fw->entry->forwarder = NULL;
        hop_waiter_free(fw->waiter);
        free(fw);
    }
    F.all = NULL;
    for (int t = 0; t < THREADS; t++)
        curl_multi_cleanup(F.multi[t]);
    curl_global_cleanup();
}

bool forward_describe(const registry_entry *e, forward_status *out)
{
    pthread_mutex_lock(&F.lock);
    forwarder *fw = e->forwarder;
    if (fw) {
        *out = fw->st;
        double now = now_s(), left = 0;
        for (int t = 0; t < THREADS; t++)
            if (fw->next_at[t] > now && (left == 0 || fw->next_at[t] - now < left))
                left = fw->next_at[t] - now;
        out->next_attempt_seconds = left;
    }
    pthread_mutex_unlock(&F.lock);
    return fw != NULL;
}
