/* soak_workers.c - the soak's load: the producer and the consumer threads. */
#include "soak.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- producers ---- */

void *producer_main(void *arg)
{
    producer *p = arg;
    uint64_t rng = opt.seed ^ (0x1000 + p->id) * 0x9E3779B97F4A7C15ull;
    unsigned char *body = malloc(MAX_MESSAGE_BYTES);
    client c = {.post = true};
    char path[64], url[128], type[256], what[128];
    if (body == NULL) {
        fault("producer %u: out of memory", p->id);
        goto out;
    }
    while (atomic_load(&phase) < PHASE_FINAL) {
        gate_pass(&c);
        if (atomic_load(&phase) == PHASE_DRAIN)
            sleep_ms(rng_range(&rng, 10, 100));
        uint64_t seq = p->next_seq++;
        if (seq % CHUNK_SEQS == 0) {
            seq_chunk *chunk = seq / CHUNK_SEQS < MAX_CHUNKS ? calloc(1, sizeof *chunk) : NULL;
            if (chunk == NULL) {
                fault("producer %u: no room to record seq %" PRIu64, p->id, seq);
                break;
            }
            atomic_store_explicit(&p->chunks[seq / CHUNK_SEQS], chunk, memory_order_release);
        }
        seq_chunk *chunk = chunk_of(p, seq);
        unsigned char *state = &chunk->state[seq % CHUNK_SEQS];
        uint32_t channel = message_channel(&rng);
        size_t len = message_size(&rng);
        make_message(body, len, p->id, channel, seq);
        snprintf(path, sizeof path, "/channels/soak-%u", channel);
        snprintf(url, sizeof url, "http://127.0.0.1:%d%s", c.port, path);
        snprintf(what, sizeof what, "POST %s (producer %u seq %" PRIu64 ", %zu bytes)", path, p->id,
                 seq, len);
        curl_easy_setopt(c.curl, CURLOPT_URL, url);
        curl_easy_setopt(c.curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c.curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        long status = client_perform(&c, what, type, sizeof type);
        if (status == 202) {
            *state = SEQ_ACCEPTED;
            p->accepted++;
            p->accepted_bytes += len;
        } else if (status == 507) {
            *state = SEQ_REFUSED;
            p->refused++;
            atomic_fetch_add(&refused_total, 1);
            if (c.len != len || memcmp(c.body, body, len) != 0)
                fault("%s: 507 without the payload (%zu bytes back)", what, c.len);
            else if (strcmp(type, "application/octet-stream") != 0)
                fault("%s: 507 with Content-Type '%s'", what, type);
            else
                p->refused_returned++;
            sleep_ms(rng_range(&rng, 5, 50)); /* room for the other channels */
        } else {
            *state = SEQ_UNKNOWN; /* stored or not: a fault either way */
            if (status >= 0)
                fault("%s: status %ld", what, status);
            client_connect(&c, c.port, c.generation);
            sleep_ms(100);
        }
    }
out:
    client_release(&c);
    free(c.body);
    free(body);
    worker_exit();
    return NULL;
}

/* ---- consumers ---- */

/* Where a consumer goes next: half the time the channel with the most
 * messages at the last look at /status, else any. */
static uint32_t next_channel(uint64_t *rng)
{
    if (splitmix(rng) % 2 == 0)
        return (uint32_t)rng_range(rng, 0, (unsigned long long)opt.channels - 1);
    uint32_t best = 0;
    for (int i = 1; i < opt.channels; i++)
        if (atomic_load(&backlog[i]) > atomic_load(&backlog[best]))
            best = (uint32_t)i;
    return best;
}

void *consumer_main(void *arg)
{
    consumer *k = arg;
    uint64_t rng = opt.seed ^ (0x2000 + k->id) * 0x9E3779B97F4A7C15ull;
    unsigned char *expect = malloc(MAX_MESSAGE_BYTES);
    client c = {.post = false};
    char path[64], url[128], type[256], what[128];
    if (expect == NULL) {
        fault("consumer %u: out of memory", k->id);
        goto out;
    }
    /* consumer 0 waits on the quiet channel only: long polls that a POST wakes */
    bool waiter = k->id == 0 && opt.channels >= 3;
    uint32_t channel = waiter ? (uint32_t)opt.channels - 1 : k->id % (uint32_t)opt.channels;
    unsigned stay = (unsigned)rng_range(&rng, 1, STAY_MAX); /* messages before a move */
    int now;
    while ((now = atomic_load(&phase)) != PHASE_STOP) {
        gate_pass(&c);
        if (now == PHASE_FLOOD && !waiter)
            sleep_ms(rng_range(&rng, 20, 200));
        snprintf(path, sizeof path, "/channels/soak-%u?wait=%s", channel,
                 now == PHASE_FINAL ? FINAL_GET_WAIT : GET_WAIT);
        snprintf(url, sizeof url, "http://127.0.0.1:%d%s", c.port, path);
        snprintf(what, sizeof what, "consumer %u: GET %s", k->id, path);
        curl_easy_setopt(c.curl, CURLOPT_URL, url);
        curl_easy_setopt(c.curl, CURLOPT_HTTPGET, 1L);
        double asked = hs_now();
        long status = client_perform(&c, what, type, sizeof type);
        bool waited = hs_now() - asked >= WAITED_S;
        k->gets++;
        if (status == 200) {
            if (strcmp(type, "application/octet-stream") != 0)
                fault("%s: Content-Type '%s'", what, type);
            take(k, channel, c.body, c.len, expect);
            if (!waiter && (--stay == 0 || waited)) {
                channel = next_channel(&rng);
                stay = (unsigned)rng_range(&rng, 1, STAY_MAX);
            }
        } else if (status == 204) {
            k->empty++;
            if (!waiter) {
                channel = next_channel(&rng);
                stay = (unsigned)rng_range(&rng, 1, STAY_MAX);
            }
        } else {
            if (status >= 0)
                fault("%s: status %ld", what, status);
            client_connect(&c, c.port, c.generation);
            sleep_ms(100);
        }
    }
out:
    client_release(&c);
    free(c.body);
    free(expect);
    worker_exit();
    return NULL;
}
