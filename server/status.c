/* status.c - /status, /channels and /metrics from the registry and each
 * channel's hop_stats, read at the moment of the request. */
#include "status.h"

#include "budget.h"
#include "dedup.h"
#include "envelope.h"
#include "forward.h"
#include "hopper/hopper.h"
#include "purge.h"
#include "redrive.h"
#include "registry.h"
#include "stream.h"
#include "verify.h"

#include <inttypes.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static server_options limits;
static struct timespec started; /* CLOCK_MONOTONIC */

void status_init(const server_options *o)
{
    limits = *o;
    clock_gettime(CLOCK_MONOTONIC, &started);
}

static double uptime_seconds(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - started.tv_sec) + (double)(now.tv_nsec - started.tv_nsec) / 1e9;
}

/* One channel's numbers, all as uint64_t so the metrics table can point at
 * them. */
typedef struct sample {
    const char *name;
    uint64_t messages, memory_bytes, disk_bytes, disk_files, waiting_receivers, in_flight, leased,
        held_bytes, lease_expired_total, dead_lettered_total, delayed, delayed_bytes, expired_total,
        paused, streams;
    uint64_t sent_total, received_total, requeued_total, rejected_full_total,
        rejected_too_big_total, rejected_storage_full_total, io_errors_total, records_corrupt_total,
        recovered_total, syncs_total;
    uint64_t duplicates_total, dedup_keys, dedup_evicted_total, dedup_log_corrupt_total;
    uint64_t signature_failures_total;
    double oldest_age_seconds; /* of the message a GET would take next; 0 if none */
    bool forwarded;
    forward_status forward; /* if forwarded */
} sample;

/* hop_peek()'s callback for oldest_age(): the accept time of the first. */
static bool note_received(void *arg, const void *data, size_t len)
{
    uint64_t ttl;
    if (!envelope_times(data, len, (uint64_t *)arg, &ttl))
        *(uint64_t *)arg = 0;
    return false; /* one is enough */
}

/* How long ago the oldest ready message of ch was accepted, in seconds;
 * 0 when there is none, or it is of a release that stored no time. */
static double oldest_age(hop_channel *ch)
{
    uint64_t received = 0, now = hop_now_ms();
    if (hop_peek(ch, 1, note_received, &received, NULL) != HOP_OK || received == 0 ||
        received > now)
        return 0;
    return (double)(now - received) / 1000.0;
}

static void sample_of(registry_entry *e, sample *s)
{
    hop_stats st = {0}; /* fields a core does not fill stay 0 */
    hop_channel_stats(e->ch, &st);
    s->name = hop_channel_name(e->ch);
    s->messages = st.messages;
    s->memory_bytes = st.memory_bytes;
    s->disk_bytes = st.disk_bytes;
    s->disk_files = st.disk_files;
    /* the core's armed waiters, and those a pause holds back */
    s->waiting_receivers = st.waiting_receivers + atomic_load(&e->parked);
    s->paused = atomic_load(&e->paused);
    s->in_flight = st.in_flight;
    s->leased = st.held; /* the core holds exactly the leased messages */
    s->held_bytes = st.held_bytes;
    s->delayed = st.delayed;
    s->delayed_bytes = st.delayed_bytes;
    s->lease_expired_total = atomic_load(&e->lease_expired_total);
    s->dead_lettered_total = atomic_load(&e->dead_lettered_total);
    s->expired_total = atomic_load(&e->expired_total);
    s->streams = atomic_load(&e->streams_open);
    s->oldest_age_seconds = oldest_age(e->ch);
    s->sent_total = st.sent_total;
    s->received_total = st.received_total;
    s->requeued_total = st.requeued_total;
    s->rejected_full_total = st.rejected_full_total;
    s->rejected_too_big_total = atomic_load(&e->too_big_total);
    s->rejected_storage_full_total = atomic_load(&e->storage_full_total);
    s->signature_failures_total = atomic_load(&e->signature_failures_total);
    s->io_errors_total = st.io_errors_total;
    s->records_corrupt_total = st.records_corrupt_total;
    s->recovered_total = st.recovered_total;
    s->syncs_total = st.syncs_total;
    s->forwarded = forward_describe(e, &s->forward);
    dedup_stats d;
    dedup_read(e->dedup, &d);
    s->duplicates_total = d.duplicates_total;
    s->dedup_keys = d.keys;
    s->dedup_evicted_total = d.evicted_total;
    s->dedup_log_corrupt_total = d.log_corrupt_total;
}

/* The channels whose name starts with prefix ("": all), sorted by name.
 * OUT: *count. NULL (count 0) if none. */
static sample *samples_of(const char *prefix, size_t *count)
{
    registry_entry **list;
    size_t n = registry_list(&list), k = 0, prefix_len = strlen(prefix);
    sample *s = n ? calloc(n, sizeof *s) : NULL;
    for (size_t i = 0; s && i < n; i++)
        if (strncmp(hop_channel_name(list[i]->ch), prefix, prefix_len) == 0)
            sample_of(list[i], &s[k++]);
    registry_list_free(list, n);
    *count = k;
    return s;
}

/* All channels, sorted by name. OUT: *count. NULL (count 0) if none. */
static sample *samples(size_t *count)
{
    return samples_of("", count);
}

/* ---- /status ---- */

static json_t *json_u64(uint64_t v)
{
    return json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t)v);
}

/* The --verify rules: name, scheme and how many secrets (never a secret).
 * New array. */
static json_t *verify_json(void)
{
    json_t *list = json_array();
    for (size_t i = 0; i < limits.verify.count; i++) {
        const verify_rule *rule = &limits.verify.items[i];
        json_t *o = json_object();
        json_object_set_new(o, "name", json_stringn(rule->name, rule->name_len));
        json_object_set_new(o, "scheme", json_string(verify_scheme_name(rule->scheme)));
        json_object_set_new(o, "secrets", json_u64(rule->key_count));
        json_array_append_new(list, o);
    }
    return list;
}

static json_t *limits_json(void)
{
    json_t *o = json_object();
    json_object_set_new(o, "memory_limit", json_u64(limits.memory_limit));
    json_object_set_new(o, "disk_limit", json_u64(limits.disk_limit));
    json_object_set_new(o, "memory_bytes", json_u64(limits.memory_bytes));
    json_object_set_new(o, "file_bytes", json_u64(limits.file_bytes));
    json_object_set_new(o, "max_disk_files", json_u64(limits.max_disk_files));
    json_object_set_new(o, "max_message_bytes", json_u64(limits.max_message_bytes));
    json_object_set_new(o, "max_channels", json_u64(limits.max_channels));
    json_object_set_new(o, "max_wait_seconds", json_real(limits.max_wait));
    json_object_set_new(o, "max_lease_seconds", json_real(limits.max_lease));
    json_object_set_new(o, "max_deliveries", json_u64(limits.max_deliveries));
    json_object_set_new(o, "max_delay_seconds", json_real(limits.max_delay));
    json_object_set_new(o, "retry_delay_seconds", json_real(limits.retry_delay));
    json_object_set_new(o, "retry_delay_max_seconds", json_real(limits.retry_delay_max));
    json_object_set_new(o, "max_age_seconds", json_real(limits.max_age));
    json_object_set_new(o, "threads", json_u64(limits.threads));
    json_object_set_new(o, "durable", json_boolean(limits.durable));
    json_t *keep = json_array();
    for (size_t i = 0; i < limits.keep_headers.count; i++) {
        const keep_headers_item *item = &limits.keep_headers.items[i];
        json_array_append_new(keep, json_stringn(item->text, item->len));
    }
    json_object_set_new(o, "keep_headers", keep);
    json_object_set_new(o, "dedup_header",
                        limits.dedup_header ? json_string(limits.dedup_header) : json_null());
    json_object_set_new(o, "dedup_window_seconds", json_real(limits.dedup_window));
    json_object_set_new(o, "dedup_max_keys", json_u64(limits.dedup_max_keys));
    json_object_set_new(o, "tls", json_boolean(limits.tls_cert != NULL));
    json_object_set_new(o, "verify", verify_json());
    return o;
}

static json_t *budget_json(void)
{
    budget_numbers b;
    budget_read(&b);
    json_t *o = json_object();
    json_object_set_new(o, "memory_bytes", json_u64(b.memory_bytes));
    json_object_set_new(o, "memory_limit_bytes", json_u64(b.memory_limit));
    json_object_set_new(o, "disk_bytes", json_u64(b.disk_bytes));
    json_object_set_new(o, "disk_reserved_bytes", json_u64(b.disk_reserved));
    json_object_set_new(o, "disk_limit_bytes", json_u64(b.disk_limit));
    json_object_set_new(o, "filesystem_free_bytes", json_u64(b.fs_free_bytes));
    return o;
}

static json_t *forward_json(const forward_status *f)
{
    json_t *o = json_object();
    json_object_set_new(o, "target", json_string(f->target));
    json_object_set_new(o, "state", json_string(f->state));
    json_object_set_new(o, "last_status", json_u64((uint64_t)f->last_status));
    json_object_set_new(o, "last_error", json_string(f->last_error));
    json_object_set_new(o, "attempts_total",
                        json_u64(f->attempts_ok + f->attempts_retry + f->attempts_dead));
    json_object_set_new(o, "consecutive_failures", json_u64(f->consecutive_failures));
    json_object_set_new(o, "next_attempt_seconds", json_real(f->next_attempt_seconds));
    return o;
}

/* A channel's summary, the fields GET /channels and /status both give:
 * the one place to add a field both show. New object. */
static json_t *summary_json(const sample *s)
{
    json_t *o = json_object();
    json_object_set_new(o, "messages", json_u64(s->messages));
    json_object_set_new(o, "memory_bytes", json_u64(s->memory_bytes));
    json_object_set_new(o, "disk_bytes", json_u64(s->disk_bytes));
    json_object_set_new(o, "leased", json_u64(s->leased));
    json_object_set_new(o, "delayed", json_u64(s->delayed));
    json_object_set_new(o, "oldest_age_seconds",
                        json_real((double)(uint64_t)(s->oldest_age_seconds * 1000.0) / 1000.0));
    json_object_set_new(o, "waiting_receivers", json_u64(s->waiting_receivers));
    json_object_set_new(o, "paused", json_boolean(s->paused));
    json_object_set_new(o, "forwarded", json_boolean(s->forwarded));
    if (s->forwarded)
        json_object_set_new(o, "forward", forward_json(&s->forward));
    return o;
}

/* A channel in /status: its summary and every other number. */
static json_t *channel_json(const sample *s)
{
    json_t *o = summary_json(s);
    json_object_set_new(o, "disk_files", json_u64(s->disk_files));
    json_object_set_new(o, "delayed_bytes", json_u64(s->delayed_bytes));
    json_object_set_new(o, "sent_total", json_u64(s->sent_total));
    json_object_set_new(o, "received_total", json_u64(s->received_total));
    json_object_set_new(o, "requeued_total", json_u64(s->requeued_total));
    json_object_set_new(o, "rejected_full_total", json_u64(s->rejected_full_total));
    json_object_set_new(o, "rejected_too_big_total", json_u64(s->rejected_too_big_total));
    json_object_set_new(o, "rejected_storage_full_total", json_u64(s->rejected_storage_full_total));
    json_object_set_new(o, "io_errors_total", json_u64(s->io_errors_total));
    json_object_set_new(o, "records_corrupt_total", json_u64(s->records_corrupt_total));
    json_object_set_new(o, "streams", json_u64(s->streams));
    json_object_set_new(o, "in_flight", json_u64(s->in_flight));
    json_object_set_new(o, "leased_bytes", json_u64(s->held_bytes));
    json_object_set_new(o, "lease_expired_total", json_u64(s->lease_expired_total));
    json_object_set_new(o, "dead_lettered_total", json_u64(s->dead_lettered_total));
    json_object_set_new(o, "expired_total", json_u64(s->expired_total));
    json_object_set_new(o, "recovered", json_u64(s->recovered_total));
    json_object_set_new(o, "syncs_total", json_u64(s->syncs_total));
    json_object_set_new(o, "duplicates_total", json_u64(s->duplicates_total));
    json_object_set_new(o, "dedup_keys", json_u64(s->dedup_keys));
    json_object_set_new(o, "dedup_evicted_total", json_u64(s->dedup_evicted_total));
    json_object_set_new(o, "dedup_log_corrupt_total", json_u64(s->dedup_log_corrupt_total));
    json_object_set_new(o, "signature_failures_total", json_u64(s->signature_failures_total));
    return o;
}

char *status_json(void)
{
    size_t n;
    sample *s = samples(&n);
    json_t *doc = json_object();
    json_object_set_new(doc, "version", json_string(HOP_VERSION));
    json_object_set_new(doc, "uptime_seconds", json_real(uptime_seconds()));
    json_object_set_new(doc, "limits", limits_json());
    json_object_set_new(doc, "budget", budget_json());
    /* refusals for a bad signature on channels that did not exist (those
     * on a channel are its signature_failures_total) */
    json_object_set_new(doc, "signature_failures_without_channel_total",
                        json_u64(verify_failures_without_channel()));
    json_t *channels = json_object();
    for (size_t i = 0; i < n; i++)
        json_object_set_new(channels, s[i].name, channel_json(&s[i]));
    json_object_set_new(doc, "channels", channels);
    free(s);
    /* a failed allocation above leaves a member out; json_dumps then fails
     * only if doc itself is NULL */
    char *text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(9));
    json_decref(doc);
    return text;
}

/* ---- /channels ---- */

char *status_channels_json(const char *prefix)
{
    size_t n;
    sample *s = samples_of(prefix, &n);
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *o = summary_json(&s[i]);
        json_object_set_new(o, "name", json_string(s[i].name));
        json_array_append_new(list, o);
    }
    free(s);
    json_t *doc = json_object();
    json_object_set_new(doc, "channels", list);
    char *text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(9));
    json_decref(doc);
    return text;
}

/* ---- /metrics ---- */

typedef struct family {
    const char *name;
    const char *type;
    const char *help;
    size_t offset; /* of the uint64_t in sample */
} family;

static const family families[] = {
    {"hopper_messages_sent_total", "counter", "Messages accepted by POST.",
     offsetof(sample, sent_total)},
    {"hopper_messages_received_total", "counter",
     "Messages handed to GETs (a message given back and handed out again counts twice).",
     offsetof(sample, received_total)},
    {"hopper_messages_requeued_total", "counter",
     "Messages given back to the head of their channel because the response failed.",
     offsetof(sample, requeued_total)},
    {"hopper_io_errors_total", "counter", "Queue file operations that failed with an I/O error.",
     offsetof(sample, io_errors_total)},
    {"hopper_records_corrupt_total", "counter", "Queue file records skipped as corrupt.",
     offsetof(sample, records_corrupt_total)},
    {"hopper_messages_recovered_total", "counter",
     "Messages found in the channel's queue files when the server started.",
     offsetof(sample, recovered_total)},
    {"hopper_syncs_total", "counter", "Queue file syncs (fdatasync) made for --durable sends.",
     offsetof(sample, syncs_total)},
    {"hopper_messages_duplicate_total", "counter",
     "POSTs answered 200 duplicate: their key was accepted within --dedup-window.",
     offsetof(sample, duplicates_total)},
    {"hopper_dedup_evicted_total", "counter",
     "Keys forgotten inside --dedup-window because the channel held --dedup-max-keys.",
     offsetof(sample, dedup_evicted_total)},
    {"hopper_dedup_log_corrupt_total", "counter",
     "Key logs found damaged or cut short at start (what followed was dropped).",
     offsetof(sample, dedup_log_corrupt_total)},
    {"hopper_channel_dedup_keys", "gauge", "Keys of accepted POSTs the channel remembers.",
     offsetof(sample, dedup_keys)},
    {"hopper_channel_messages", "gauge", "Messages held, in memory and on disk.",
     offsetof(sample, messages)},
    {"hopper_channel_memory_bytes", "gauge", "Bytes held in memory, bookkeeping included.",
     offsetof(sample, memory_bytes)},
    {"hopper_channel_disk_bytes", "gauge", "Bytes of the queue files that exist.",
     offsetof(sample, disk_bytes)},
    {"hopper_channel_disk_files", "gauge", "Queue files that exist.", offsetof(sample, disk_files)},
    {"hopper_channel_delayed_messages", "gauge",
     "Messages waiting for their delay (?delay=, a delayed release, --retry-delay).",
     offsetof(sample, delayed)},
    {"hopper_channel_delayed_bytes", "gauge", "Bytes of the files the delayed messages wait in.",
     offsetof(sample, delayed_bytes)},
    {"hopper_channel_waiting_receivers", "gauge", "GETs waiting for a message.",
     offsetof(sample, waiting_receivers)},
    {"hopper_channel_paused", "gauge",
     "1 while the channel is paused (POST /channels/NAME/pause): GETs and forwarding take "
     "nothing.",
     offsetof(sample, paused)},
    {"hopper_channel_streams_open", "gauge",
     "Event streams open on the channel (GET with Accept: text/event-stream).",
     offsetof(sample, streams)},
    {"hopper_channel_in_flight_messages", "gauge",
     "Messages read from queue files and handed to a GET whose response is not yet complete.",
     offsetof(sample, in_flight)},
    {"hopper_channel_leased_messages", "gauge",
     "Messages handed out under a lease, not yet acknowledged, released or expired.",
     offsetof(sample, leased)},
    {"hopper_channel_leased_bytes", "gauge",
     "Bytes of leased messages, counted against --memory-bytes.", offsetof(sample, held_bytes)},
    {"hopper_lease_expired_total", "counter",
     "Leases that ended at their deadline (the message came back).",
     offsetof(sample, lease_expired_total)},
    {"hopper_messages_dead_lettered_total", "counter",
     "Messages moved to NAME.dead after --max-deliveries hand-outs.",
     offsetof(sample, dead_lettered_total)},
    {"hopper_signature_failures_total", "counter",
     "POSTs refused 401 bad_signature: missing, malformed, stale or wrong (--verify).",
     offsetof(sample, signature_failures_total)},
    {"hopper_messages_expired_total", "counter",
     "Messages dropped unsent, older than their TTL or --max-age when a receiver came to them.",
     offsetof(sample, expired_total)},
};

/* A label value in the text format: backslash, double quote and newline
 * escaped. Channel names never contain them, but the format is the format. */
static void put_label(FILE *out, const char *value)
{
    for (const char *p = value; *p; p++) {
        if (*p == '\\')
            fputs("\\\\", out);
        else if (*p == '"')
            fputs("\\\"", out);
        else if (*p == '\n')
            fputs("\\n", out);
        else
            fputc(*p, out);
    }
}

static void put_header(FILE *out, const char *name, const char *type, const char *help)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static uint64_t field(const sample *s, size_t offset)
{
    return *(const uint64_t *)((const char *)s + offset);
}

/* The server-wide budget: one gauge each, no labels. */
static void put_budget(FILE *out)
{
    budget_numbers b;
    budget_read(&b);
    const struct {
        const char *name, *help;
        uint64_t value;
    } gauges[] = {
        {"hopper_memory_bytes",
         "RAM counted against --memory-limit: messages of all channels, leased ones and ones "
         "being sent, request bodies.",
         b.memory_bytes},
        {"hopper_memory_limit_bytes", "--memory-limit.", b.memory_limit},
        {"hopper_disk_bytes", "Bytes of the queue files and journals of all channels.",
         b.disk_bytes},
        {"hopper_disk_reserved_bytes", "Bytes of the reserve file kept for a clean stop.",
         b.disk_reserved},
        {"hopper_disk_limit_bytes", "--disk-limit: queue files, journals and the reserve.",
         b.disk_limit},
        {"hopper_filesystem_free_bytes", "Bytes free on the data directory's file system.",
         b.fs_free_bytes},
    };
    for (size_t i = 0; i < sizeof gauges / sizeof gauges[0]; i++) {
        put_header(out, gauges[i].name, "gauge", gauges[i].help);
        fprintf(out, "%s %" PRIu64 "\n", gauges[i].name, gauges[i].value);
    }
}

/* One forwarded channel's duration histogram. */
static void put_histogram(FILE *out, const sample *s)
{
    const forward_status *f = &s->forward;
    uint64_t cumulative = 0;
    for (size_t b = 0; b <= FORWARD_BUCKETS; b++) {
        cumulative += f->buckets[b];
        fputs("hopper_forward_duration_seconds_bucket{channel=\"", out);
        put_label(out, s->name);
        if (b < FORWARD_BUCKETS)
            fprintf(out, "\",le=\"%g\"} %" PRIu64 "\n", forward_buckets[b], cumulative);
        else
            fprintf(out, "\",le=\"+Inf\"} %" PRIu64 "\n", cumulative);
    }
    fputs("hopper_forward_duration_seconds_sum{channel=\"", out);
    put_label(out, s->name);
    fprintf(out, "\"} %.6f\nhopper_forward_duration_seconds_count{channel=\"", f->duration_sum);
    put_label(out, s->name);
    fprintf(out, "\"} %" PRIu64 "\n", cumulative);
}

/* Forwarded channels: attempts by outcome, and how long attempts took. */
static void put_forward(FILE *out, const sample *s, size_t n)
{
    put_header(out, "hopper_forward_attempts_total", "counter",
               "Forwarding attempts: outcome=\"ok\" (2xx, consumed), \"retry\" (to be tried "
               "again) or \"dead\" (moved to NAME.dead).");
    for (size_t i = 0; i < n; i++) {
        static const char *const outcomes[] = {"ok", "retry", "dead"};
        const forward_status *f = &s[i].forward;
        const uint64_t values[] = {f->attempts_ok, f->attempts_retry, f->attempts_dead};
        for (size_t k = 0; s[i].forwarded && k < 3; k++) {
            fputs("hopper_forward_attempts_total{channel=\"", out);
            put_label(out, s[i].name);
            fprintf(out, "\",outcome=\"%s\"} %" PRIu64 "\n", outcomes[k], values[k]);
        }
    }
    put_header(out, "hopper_forward_duration_seconds", "histogram",
               "Seconds a forwarding attempt took, to its answer or its failure.");
    for (size_t i = 0; i < n; i++)
        if (s[i].forwarded)
            put_histogram(out, &s[i]);
}

/* The server-wide counts of purge.h and redrive.h. */
static void put_purges(FILE *out)
{
    purge_counts c;
    purge_read_counts(&c);
    put_header(out, "hopper_purges_total", "counter",
               "Purges (DELETE /channels/NAME/messages) since start.");
    fprintf(out, "hopper_purges_total %" PRIu64 "\n", c.purges);
    put_header(out, "hopper_channels_deleted_total", "counter",
               "Channels deleted (DELETE /channels/NAME) since start.");
    fprintf(out, "hopper_channels_deleted_total %" PRIu64 "\n", c.channels_deleted);
    put_header(out, "hopper_messages_purged_total", "counter",
               "Messages dropped by purges and deletes since start.");
    fprintf(out, "hopper_messages_purged_total %" PRIu64 "\n", c.messages_purged);
    uint64_t redrives, moved;
    redrive_read_counts(&redrives, &moved);
    put_header(out, "hopper_redrives_total", "counter",
               "Redrives (POST /channels/NAME/redrive) since start.");
    fprintf(out, "hopper_redrives_total %" PRIu64 "\n", redrives);
    put_header(out, "hopper_messages_redriven_total", "counter",
               "Messages moved from NAME.dead back to NAME by redrives since start.");
    fprintf(out, "hopper_messages_redriven_total %" PRIu64 "\n", moved);
}

/* The age of each channel's oldest ready message (a fraction: not in the
 * integer families). */
static void put_oldest_ages(FILE *out, const sample *s, size_t n)
{
    put_header(out, "hopper_channel_oldest_age_seconds", "gauge",
               "Seconds since the oldest ready message of the channel was accepted; 0 if none.");
    for (size_t i = 0; i < n; i++) {
        fprintf(out, "hopper_channel_oldest_age_seconds{channel=\"");
        put_label(out, s[i].name);
        fprintf(out, "\"} %.3f\n", s[i].oldest_age_seconds);
    }
}

char *status_metrics(size_t *len)
{
    char *text = NULL;
    FILE *out = open_memstream(&text, len);
    if (out == NULL)
        return NULL;
    size_t n;
    sample *s = samples(&n);

    put_header(out, "hopper_uptime_seconds", "gauge", "Seconds since the server started.");
    fprintf(out, "hopper_uptime_seconds %.3f\n", uptime_seconds());
    put_header(out, "hopper_channels", "gauge", "Channels that exist.");
    fprintf(out, "hopper_channels %zu\n", n);
    put_header(out, "hopper_streams_open", "gauge",
               "Event streams open (GET with Accept: text/event-stream).");
    fprintf(out, "hopper_streams_open %" PRIu64 "\n", stream_count());
    put_purges(out);
    put_budget(out);
    put_header(out, "hopper_signature_failures_without_channel_total", "counter",
               "POSTs refused 401 bad_signature to a channel that did not exist (and was not "
               "made); those to a channel are hopper_signature_failures_total.");
    fprintf(out, "hopper_signature_failures_without_channel_total %" PRIu64 "\n",
            verify_failures_without_channel());

    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
        put_header(out, families[f].name, families[f].type, families[f].help);
        for (size_t i = 0; i < n; i++) {
            fprintf(out, "%s{channel=\"", families[f].name);
            put_label(out, s[i].name);
            fprintf(out, "\"} %" PRIu64 "\n", field(&s[i], families[f].offset));
        }
    }

    put_header(out, "hopper_messages_rejected_total", "counter",
               "POSTs refused: reason=\"full\" (507: the channel's files), \"storage_full\" "
               "(507: --disk-limit or the file system) or \"too_big\" (413).");
    for (size_t i = 0; i < n; i++) {
        static const char *const reasons[] = {"full", "storage_full", "too_big"};
        const uint64_t values[] = {s[i].rejected_full_total, s[i].rejected_storage_full_total,
                                   s[i].rejected_too_big_total};
        for (size_t r = 0; r < 3; r++) {
            fputs("hopper_messages_rejected_total{channel=\"", out);
            put_label(out, s[i].name);
            fprintf(out, "\",reason=\"%s\"} %" PRIu64 "\n", reasons[r], values[r]);
        }
    }
    put_oldest_ages(out, s, n);
    put_forward(out, s, n);
    free(s);
    if (fclose(out) != 0) {
        free(text);
        return NULL;
    }
    return text;
}
