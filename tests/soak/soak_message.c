/* soak_message.c - the soak's messages, the per-producer books, faults, accounting. */
#include "soak.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- the message format ----
 *
 * offset size
 *  0      8   magic "hopsoak1"
 *  8      4   producer, little-endian
 * 12      4   channel index
 * 16      8   seq
 * 24      8   length of the whole body
 * 32      8   checksum: body_hash() of the body with these 8 bytes zero
 * 40      -   bytes from fill_stream(run seed, producer, seq)
 */
#define HEADER_BYTES 40
static const char MAGIC[8] = {'h', 'o', 'p', 's', 'o', 'a', 'k', '1'};

uint64_t splitmix(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A 64-bit hash of body[0..len) with bytes 32..40 taken as zero. */
static uint64_t body_hash(const unsigned char *body, size_t len)
{
    uint64_t h = 0x6A09E667F3BCC909ull ^ len;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w = i == 32 ? 0 : get64(body + i);
        h ^= w * 0x9E3779B97F4A7C15ull;
        h = (h << 31 | h >> 33) * 0xBF58476D1CE4E5B9ull;
    }
    uint64_t tail = 0;
    for (size_t k = 0; i + k < len; k++)
        tail |= (uint64_t)body[i + k] << (8 * k);
    h ^= tail * 0x94D049BB133111EBull;
    return splitmix(&h);
}

uint64_t run_seed;

/* Message (producer, channel, seq) of len bytes (len >= HEADER_BYTES) into
 * out. */
void make_message(unsigned char *out, size_t len, uint32_t producer_id, uint32_t channel,
                  uint64_t seq)
{
    memcpy(out, MAGIC, 8);
    put32(out + 8, producer_id);
    put32(out + 12, channel);
    put64(out + 16, seq);
    put64(out + 24, len);
    put64(out + 32, 0);
    uint64_t state = run_seed ^ ((uint64_t)producer_id << 48) ^ (seq * 0xD1B54A32D192ED03ull);
    size_t i = HEADER_BYTES;
    for (; i + 8 <= len; i += 8)
        put64(out + i, splitmix(&state));
    uint64_t last = splitmix(&state);
    for (size_t k = 0; i < len; i++, k++)
        out[i] = (unsigned char)(last >> (8 * k));
    put64(out + 32, body_hash(out, len));
}

/* ---- faults ---- */

atomic_long faults;

void fault(const char *fmt, ...)
{
    long n = atomic_fetch_add(&faults, 1) + 1;
    if (n > MAX_FAULTS_PRINTED)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "soak: FAULT %ld: %s\n", n, line);
}

/* ---- random choices: a message's size and channel ---- */

unsigned long long rng_range(uint64_t *rng, unsigned long long lo, unsigned long long hi)
{
    return lo + splitmix(rng) % (hi - lo + 1);
}

/* Near log-uniform in [lo, hi]: a power of two, then uniform inside it. */
static size_t log_uniform(uint64_t *rng, size_t lo, size_t hi)
{
    for (;;) {
        int lo_bit = 63 - __builtin_clzll(lo), hi_bit = 63 - __builtin_clzll(hi);
        int bit = (int)rng_range(rng, (unsigned)lo_bit, (unsigned)hi_bit);
        size_t base = (size_t)1 << bit;
        size_t v = base + (size_t)(splitmix(rng) % base);
        if (v >= lo && v <= hi)
            return v;
    }
}

size_t message_size(uint64_t *rng)
{
    unsigned long long r = splitmix(rng) % 1000;
    if (r < 5)
        return MAX_MESSAGE_BYTES;
    if (r < 35)
        return log_uniform(rng, 64 * 1024, MAX_MESSAGE_BYTES);
    return log_uniform(rng, HEADER_BYTES, 64 * 1024);
}

/* Half of the messages to channel 0; with 3 channels or more, 2% to the
 * last (quiet) one; the rest spread evenly over the others. */
uint32_t message_channel(uint64_t *rng)
{
    unsigned long long r = splitmix(rng) % 100;
    if (opt.channels == 1 || r < 50)
        return 0;
    if (opt.channels >= 3 && r < 52)
        return (uint32_t)opt.channels - 1;
    return (uint32_t)rng_range(rng, 1,
                               (unsigned long long)opt.channels - (opt.channels >= 3 ? 2 : 1));
}

/* ---- the books: a producer's seq, and a consumer's receipt ---- */

seq_chunk *chunk_of(producer *p, uint64_t seq)
{
    if (seq / CHUNK_SEQS >= MAX_CHUNKS)
        return NULL;
    return atomic_load_explicit(&p->chunks[seq / CHUNK_SEQS], memory_order_acquire);
}

void take(consumer *k, uint32_t channel, const unsigned char *body, size_t len,
          unsigned char *expect)
{
    if (len < HEADER_BYTES || memcmp(body, MAGIC, 8) != 0) {
        fault("consumer %u: channel %u: a %zu-byte body that is no soak message", k->id, channel,
              len);
        return;
    }
    uint32_t pid = get32(body + 8), ch = get32(body + 12);
    uint64_t seq = get64(body + 16), stated = get64(body + 24);
    if (pid >= (uint32_t)opt.producers || ch != channel || stated != len ||
        stated > MAX_MESSAGE_BYTES) {
        fault("consumer %u: channel %u: header says producer %u channel %u length %" PRIu64
              ", got %zu bytes",
              k->id, channel, pid, ch, stated, len);
        return;
    }
    make_message(expect, len, pid, ch, seq);
    if (get64(body + 32) != body_hash(body, len) || memcmp(body, expect, len) != 0) {
        fault("consumer %u: channel %u: producer %u seq %" PRIu64 ": %zu bytes differ from "
              "what was sent (checksum %s)",
              k->id, channel, pid, seq, len,
              get64(body + 32) == body_hash(body, len) ? "matches" : "wrong");
        return;
    }
    seq_chunk *chunk = chunk_of(&producers[pid], seq);
    if (chunk == NULL) {
        fault("consumer %u: producer %u seq %" PRIu64 " was never sent", k->id, pid, seq);
        return;
    }
    int64_t *last = &k->last_seq[pid * (uint32_t)opt.channels + ch];
    if ((int64_t)seq <= *last)
        fault("consumer %u: channel %u: producer %u seq %" PRIu64 " after seq %" PRId64
              " (out of order)",
              k->id, channel, pid, seq, *last);
    else
        *last = (int64_t)seq;
    unsigned before = atomic_fetch_add(&chunk->received[seq % CHUNK_SEQS], 1);
    if (before != 0)
        fault("consumer %u: producer %u seq %" PRIu64 " received %u times", k->id, pid, seq,
              before + 1);
    k->received++;
    k->received_bytes += len;
}

/* ---- the end: every seq accounted for ---- */

void account(totals *t)
{
    memset(t, 0, sizeof *t);
    for (int i = 0; i < opt.producers; i++) {
        producer *p = &producers[i];
        t->accepted += p->accepted;
        t->refused += p->refused;
        t->refused_returned += p->refused_returned;
        t->accepted_bytes += p->accepted_bytes;
        for (uint64_t seq = 0; seq < p->next_seq; seq++) {
            seq_chunk *chunk = chunk_of(p, seq);
            if (chunk == NULL)
                break;
            unsigned got = atomic_load(&chunk->received[seq % CHUNK_SEQS]);
            unsigned char state = chunk->state[seq % CHUNK_SEQS];
            if (state == SEQ_ACCEPTED && got == 0) {
                t->lost++;
                fault("producer %d seq %" PRIu64 ": 202, never received", i, seq);
            } else if (state == SEQ_REFUSED && got != 0) {
                fault("producer %d seq %" PRIu64 ": 507, yet received", i, seq);
            } else if (state == SEQ_UNSENT && got != 0) {
                fault("producer %d seq %" PRIu64 ": never sent, yet received", i, seq);
            } else if (state == SEQ_UNKNOWN) {
                t->unknown++;
            }
        }
    }
    for (int i = 0; i < opt.consumers; i++) {
        t->received += consumers[i].received;
        t->received_bytes += consumers[i].received_bytes;
        t->gets += consumers[i].gets;
        t->empty += consumers[i].empty;
    }
}
