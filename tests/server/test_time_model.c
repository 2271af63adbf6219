/* test_time_model.c - delayed messages (core/src/schedule.c) and expiry
 * (server/expiry.c) against a reference model, on a fake clock that the
 * test moves (hop_set_clock(), hop_clock_moved()) instead of sleeping.
 *
 * Each seed opens a real channel in a temp directory (a third of the seeds
 * durable, where given-back messages rejoin at the tail; a third with room
 * in memory for a few messages only, so that sends and hand-ons go to queue
 * files; a quarter with a server --max-age) and runs random steps: sends now or delayed (0 to 3
 * minutes, due times repeated, batches with one delay, bursts of more than
 * 64 messages due at one time), each an envelope
 * with or without a TTL accepted at the fake now; receives the way a GET
 * takes (expiry_recv(): expired ones dropped); releases now or delayed;
 * acks; clock moves (a few ms, to a 50-ms slot's end and a 60-s window's
 * split, to a pending due time's slot end, minutes); close and reopen. The
 * model predicts when each delayed message becomes receivable (the end of
 * its 50-ms slot, in slot order, FIFO within one), what a receive returns,
 * which messages expire, and what a close keeps (the messages receivers
 * hold that came from queue files first, then memory, then the unread
 * queue files; those taken from memory are the receiver's and gone). After
 * every step hop_stats (messages, memory_bytes, delayed, in_flight) and the
 * server's count of expired messages must agree with the model. At the
 * end the clock passes every due time, the channel is drained, and every
 * message must have had exactly one end: acknowledged, expired, or lost
 * with the receiver at a close; none received before it was due or after
 * its limit.
 *
 * Seeds 1..HOPPER_TIME_MODEL_SEEDS (default 300) of 200..400 steps;
 * HOPPER_SEED=<n> replays seed n alone; HOPPER_TIME_MODEL_TRACE=1 prints
 * every step. A failure names its seed and step. */
#include "envelope.h"
#include "expiry.h"
#include "registry.h"
#include "time_model.h"

#include "hopper/hopper.h"

#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define MAX_DELAY_MS 180000u
#define MAX_MSGS 4000 /* messages one seed may send, at most 4 a step */
#define MAX_HELD 64

/* A message the test has received and not yet acked or given back. */
typedef struct held {
    tm_msg m;
    void *data;
    size_t len;
} held;

/* How each message ended. */
typedef enum fate { F_OPEN, F_ACKED, F_EXPIRED, F_LOST } fate;

typedef struct run {
    uint64_t seed, rng;
    int step;
    const char *what;
    tm_model t; /* what the channel must hold */
    char dir[64];
    hop_channel *ch;
    held hand[MAX_HELD];
    size_t nheld;
    uint64_t next_id, expired;
    fate fates[MAX_MSGS + 1];
    uint64_t dues[8]; /* recent due times, to repeat */
    size_t ndues;
} run;

static _Atomic uint64_t fake_now = 1800000000000ull; /* ms; only ever moves forward */
static registry_entry entry;                         /* what expiry_recv() takes through */
static bool trace;

/* What all seeds exercised, printed at the end; each must have happened. */
static struct {
    uint64_t handed_on, to_head, same_slot, expired, restarts, came_back, lost, received;
    uint64_t memory_full; /* sends to a queue file for want of memory */
    uint64_t steps;
} seen;

#define CHECK(r, cond)                                                                             \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fail_msg("seed %llu, step %d (%s), now %llu: check failed at line %d: %s\n"            \
                     "  durable %d, max-age %llu; replay with HOPPER_SEED=%llu",                   \
                     (unsigned long long)(r)->seed, (r)->step, (r)->what,                          \
                     (unsigned long long)atomic_load(&fake_now), __LINE__, #cond,                  \
                     (int)(r)->t.durable, (unsigned long long)(r)->t.max_age,                      \
                     (unsigned long long)(r)->seed);                                               \
    } while (0)

static uint64_t clock_read(void *arg)
{
    (void)arg;
    return atomic_load(&fake_now);
}

static uint64_t now_ms(void)
{
    return atomic_load(&fake_now);
}

/* splitmix64 */
static uint64_t rnd(run *r)
{
    uint64_t z = (r->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t range(run *r, uint64_t lo, uint64_t hi)
{
    return lo + rnd(r) % (hi - lo + 1);
}

/* ---- messages ---- */

/* Bytes of body after the id of message id: lengths vary. */
static size_t pad_of(uint64_t id)
{
    return (size_t)(id * 37 % 97);
}

/* A new message accepted now, with ttl (0: none). */
static tm_msg msg_new(run *r, uint64_t ttl)
{
    tm_msg m = {.id = ++r->next_id, .received_at = now_ms(), .ttl = ttl};
    m.visible_at = m.received_at;
    m.len = envelope_prefix_size(NULL, 0) + 8 + pad_of(m.id);
    return m;
}

/* m as the server stores it: envelope, then its id and pad bytes. OUT:
 * *len. New. */
static unsigned char *msg_encode(const tm_msg *m, size_t *len)
{
    unsigned char id[ENVELOPE_ID_LEN] = {0};
    memcpy(id, &m->id, sizeof m->id);
    size_t prefix = envelope_prefix_size(NULL, 0);
    *len = prefix + 8 + pad_of(m->id);
    unsigned char *buf = malloc(*len);
    assert_non_null(buf);
    envelope_write_prefix(buf, NULL, 0, id, m->received_at, m->ttl);
    for (int i = 0; i < 8; i++)
        buf[prefix + i] = (unsigned char)(m->id >> (8 * i));
    for (size_t i = 0; i < pad_of(m->id); i++)
        buf[prefix + 8 + i] = (unsigned char)(m->id + i);
    return buf;
}

/* The id of a received message, checked byte by byte against what its
 * sender wrote; 0 if anything differs. */
static uint64_t msg_decode(const void *data, size_t len)
{
    envelope e;
    if (!envelope_decode(data, len, &e) || e.body_len < 8)
        return 0;
    uint64_t id = 0;
    for (int i = 0; i < 8; i++)
        id |= (uint64_t)e.body[i] << (8 * i);
    if (id == 0 || id > MAX_MSGS)
        return 0;
    tm_msg m = {.id = id, .received_at = e.received_ms, .ttl = e.ttl_ms};
    size_t want_len;
    unsigned char *want = msg_encode(&m, &want_len);
    bool same = want_len == len && memcmp(want, data, len) == 0;
    free(want);
    return same ? id : 0;
}

/* Remember due, to be used again: FIFO among equal due times. */
static void note_due(run *r, uint64_t due)
{
    if (r->ndues < 8)
        r->dues[r->ndues++] = due;
    else
        r->dues[rnd(r) % 8] = due;
}

static void set_fate(run *r, uint64_t id, fate f)
{
    CHECK(r, id >= 1 && id <= MAX_MSGS && r->fates[id] == F_OPEN);
    r->fates[id] = f;
}

/* ---- the channel ---- */

static void channel_open(run *r)
{
    hop_limits l;
    hop_limits_default(&l);
    l.durable = r->t.durable;
    l.memory_bytes = r->t.memory_bytes;
    l.file_bytes = 16 * 1024; /* a few queue files */
    l.max_disk_files = 4096;
    hop_err err = hop_channel_open(r->dir, "ch", &l, &r->ch);
    CHECK(r, err == HOP_OK);
    entry.ch = r->ch;
    hop_clock_moved(); /* anything the open scheduled has run */
}

static void check_stats(run *r)
{
    hop_stats s;
    hop_channel_stats(r->ch, &s);
    size_t flights = 0;
    for (size_t i = 0; i < r->nheld; i++)
        flights += r->hand[i].m.flight;
    CHECK(r, s.messages == r->t.nqueue);
    CHECK(r, s.memory_bytes == tm_memory_cost(&r->t));
    CHECK(r, s.delayed == r->t.ndelayed);
    CHECK(r, s.in_flight == flights);
    CHECK(r, atomic_load(&entry.expired_total) == r->expired);
}

/* ---- the steps ---- */

static uint64_t pick_ttl(run *r)
{
    switch (rnd(r) % 6) {
    case 0:
        return range(r, 1, 200);
    case 1:
        return range(r, 1000, 30000);
    case 2:
        return range(r, 30000, 240000);
    default:
        return 0;
    }
}

/* A delay: none, a few ms, seconds, up to 3 minutes, or a due time used
 * before (FIFO among equal due times). */
static uint64_t pick_due(run *r)
{
    uint64_t now = now_ms();
    switch (rnd(r) % 8) {
    case 0:
        return now;
    case 1:
        return now + range(r, 1, 100);
    case 2:
        return now + range(r, 100, 5000);
    case 3:
    case 4:
        return now + range(r, 5000, MAX_DELAY_MS);
    default:
        for (size_t i = 0; i < r->ndues; i++)
            if (r->dues[(i + r->step) % r->ndues] > now)
                return r->dues[(i + r->step) % r->ndues];
        return now + range(r, 1, MAX_DELAY_MS);
    }
}

static void step_send(run *r)
{
    r->what = "send";
    if (r->next_id >= MAX_MSGS)
        return;
    tm_msg m = msg_new(r, pick_ttl(r));
    uint64_t due = pick_due(r);
    size_t len;
    unsigned char *buf = msg_encode(&m, &len);
    CHECK(r, hop_send_at(r->ch, buf, len, due) == HOP_OK);
    free(buf);
    if (due <= now_ms()) {
        tm_send(&r->t, &m, 1);
    } else {
        tm_delay(&r->t, m, due, false);
        note_due(r, due);
    }
}

/* 2..4 messages with one TTL and one due time, all or none. */
static void step_batch(run *r)
{
    r->what = "batch";
    size_t n = (size_t)range(r, 2, 4);
    if (r->next_id + n > MAX_MSGS)
        return;
    uint64_t ttl = pick_ttl(r), due = pick_due(r);
    tm_msg m[4];
    hop_buf bufs[4];
    for (size_t i = 0; i < n; i++) {
        m[i] = msg_new(r, ttl);
        bufs[i].data = msg_encode(&m[i], &bufs[i].len);
    }
    CHECK(r, hop_send_batch_at(r->ch, bufs, n, due) == HOP_OK);
    for (size_t i = 0; i < n; i++) {
        free((void *)bufs[i].data);
        if (due > now_ms())
            tm_delay(&r->t, m[i], due, false);
    }
    if (due <= now_ms())
        tm_send(&r->t, m, n);
    else
        note_due(r, due);
}

/* Many messages due at one time, sent one by one: more than a hand-on
 * batch (64 records) and a split's checkpoint take. */
static void step_burst(run *r)
{
    r->what = "burst";
    size_t n = (size_t)range(r, 65, 130);
    uint64_t due = now_ms() + range(r, 1, MAX_DELAY_MS);
    if (r->next_id + n > MAX_MSGS)
        return;
    for (size_t i = 0; i < n; i++) {
        tm_msg m = msg_new(r, pick_ttl(r));
        size_t len;
        unsigned char *buf = msg_encode(&m, &len);
        CHECK(r, hop_send_at(r->ch, buf, len, due) == HOP_OK);
        free(buf);
        tm_delay(&r->t, m, due, false);
    }
    note_due(r, due);
}

/* A receive as a GET makes it: the expired messages on the way dropped. */
static void step_recv(run *r)
{
    r->what = "recv";
    if (r->nheld == MAX_HELD)
        return;
    void *data = NULL;
    size_t len = 0;
    hop_err err = expiry_recv(&entry, &data, &len);
    tm_msg want;
    bool some;
    while ((some = tm_take(&r->t, &want)) && tm_expired(&r->t, &want, now_ms())) {
        set_fate(r, want.id, F_EXPIRED);
        r->expired++;
        seen.expired++;
    }
    if (!some) {
        CHECK(r, err == HOP_TIMEOUT);
        return;
    }
    CHECK(r, err == HOP_OK);
    uint64_t id = msg_decode(data, len);
    if (trace)
        printf("    got %llu, want %llu\n", (unsigned long long)id, (unsigned long long)want.id);
    CHECK(r, id == want.id);
    CHECK(r, now_ms() >= want.visible_at);         /* never before it was due */
    CHECK(r, !expiry_passed(data, len, now_ms())); /* never past its limit */
    seen.received++;
    r->hand[r->nheld++] = (held){want, data, len};
}

static held take_held(run *r)
{
    size_t i = (size_t)(rnd(r) % r->nheld);
    held h = r->hand[i];
    r->hand[i] = r->hand[--r->nheld];
    return h;
}

/* Give a received message back now (to the head) or later. */
static void step_release(run *r)
{
    r->what = "release";
    if (r->nheld == 0)
        return;
    held h = take_held(r);
    uint64_t due = rnd(r) % 2 ? now_ms() : pick_due(r);
    CHECK(r, hop_requeue_at(r->ch, h.data, h.len, due) == HOP_OK);
    if (due <= now_ms()) {
        tm_requeue(&r->t, h.m);
    } else {
        h.m.flight = false; /* its record is consumed: its copy waits */
        tm_delay(&r->t, h.m, due, true);
        note_due(r, due);
    }
}

static void step_ack(run *r)
{
    r->what = "ack";
    if (r->nheld == 0)
        return;
    held h = take_held(r);
    hop_free(h.data);
    set_fate(r, h.m.id, F_ACKED);
}

/* Where the clock goes next: a few ms, the end of the current slot, the
 * split of the next window, the slot end of a pending message, the limit
 * of the oldest message, further. */
static uint64_t pick_move(run *r)
{
    uint64_t now = now_ms(), edge;
    int64_t off = (int64_t)range(r, 0, 2) - 1; /* just before, at, just after */
    switch (rnd(r) % 7) {
    case 0:
        return now + range(r, 1, 10);
    case 1:
        edge = tm_slot_end(now);
        break;
    case 2:
        edge = now - now % TM_WINDOW_MS + TM_WINDOW_MS - TM_SPLIT_AHEAD_MS;
        if (edge <= now + 1)
            edge += TM_WINDOW_MS;
        break;
    case 3:
        if (r->t.ndelayed == 0)
            return now + range(r, 50, 5000);
        edge = tm_slot_end(r->t.delayed[rnd(r) % r->t.ndelayed].due);
        break;
    case 4:
        if (r->t.nqueue == 0 || tm_limit(&r->t, &r->t.queue[0]) == 0)
            return now + range(r, 50, 5000);
        edge = r->t.queue[0].received_at + tm_limit(&r->t, &r->t.queue[0]); /* where it expires */
        break;
    case 5:
        return now + range(r, 50, 5000);
    default:
        return now + range(r, TM_WINDOW_MS, 5 * TM_WINDOW_MS);
    }
    uint64_t to = (uint64_t)((int64_t)edge + off);
    return to > now ? to : now;
}

static void step_tick(run *r)
{
    r->what = "tick";
    atomic_store(&fake_now, pick_move(r));
    hop_clock_moved();
    tm_hand_on(&r->t, now_ms());
}

/* Close and reopen: the messages receivers hold that came from queue
 * files come back first, in the order they were read; then memory; then
 * the unread records. Those taken from memory were the receiver's. */
static void step_restart(run *r)
{
    r->what = "restart";
    seen.restarts++;
    CHECK(r, hop_channel_close(r->ch) == HOP_OK);
    tm_msg back[MAX_HELD];
    size_t n = 0;
    while (r->nheld > 0) { /* the receivers' copies only free memory now */
        held h = take_held(r);
        hop_free(h.data);
        if (h.m.flight) {
            back[n++] = h.m;
            seen.came_back++;
        } else {
            set_fate(r, h.m.id, F_LOST);
            seen.lost++;
        }
    }
    tm_restart(&r->t, back, n);
    if (rnd(r) % 2) /* time passes while it is closed: what fell due is handed on at the open */
        atomic_store(&fake_now, pick_move(r));
    channel_open(r);
    tm_hand_on(&r->t, now_ms());
}

/* ---- a seed ---- */

/* Where the seeds' directories go: /dev/shm when there is one, since the
 * model checks order and time, not what a crash keeps, and syncs on a
 * real disk would make each durable seed take half a second; else
 * $TMPDIR or /tmp. */
static const char *temp_root(void)
{
    if (access("/dev/shm", W_OK | X_OK) == 0)
        return "/dev/shm";
    const char *t = getenv("TMPDIR");
    return t && *t && strlen(t) < 24 ? t : "/tmp";
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* The steps and how often each is taken, in hundredths. */
static const struct {
    unsigned weight;
    void (*fn)(run *r);
} STEPS[] = {{22, step_send}, {8, step_batch}, {25, step_recv}, {8, step_release},
             {12, step_ack},  {21, step_tick}, {1, step_burst}, {3, step_restart}};

static void run_steps(run *r, int steps)
{
    for (r->step = 1; r->step <= steps; r->step++) {
        uint64_t op = rnd(r) % 100;
        size_t i = 0;
        while (op >= STEPS[i].weight)
            op -= STEPS[i++].weight;
        STEPS[i].fn(r);
        if (trace)
            printf("  step %d %s: now %llu queue %zu delayed %zu held %zu\n", r->step, r->what,
                   (unsigned long long)now_ms(), r->t.nqueue, r->t.ndelayed, r->nheld);
        check_stats(r);
    }
}

/* Ack what is held, pass every due time, take everything: what the model
 * says, then nothing; every message has ended exactly once. */
static void drain(run *r)
{
    r->what = "drain";
    while (r->nheld > 0)
        step_ack(r);
    r->what = "drain";
    uint64_t last = now_ms();
    for (size_t i = 0; i < r->t.ndelayed; i++)
        if (tm_slot_end(r->t.delayed[i].due) > last)
            last = tm_slot_end(r->t.delayed[i].due);
    atomic_store(&fake_now, last);
    hop_clock_moved();
    tm_hand_on(&r->t, now_ms());
    CHECK(r, r->t.ndelayed == 0);
    do {
        step_recv(r);
        r->what = "drain";
        while (r->nheld > 0)
            step_ack(r);
        r->what = "drain";
        check_stats(r);
    } while (r->t.nqueue > 0);
    step_recv(r); /* nothing left: HOP_TIMEOUT */
    r->what = "drain";
    check_stats(r);
    for (uint64_t id = 1; id <= r->next_id; id++)
        CHECK(r, r->fates[id] != F_OPEN);
}

static void run_seed(uint64_t seed)
{
    run *r = calloc(1, sizeof *r);
    assert_non_null(r);
    r->seed = r->rng = seed;
    r->what = "open";
    r->t.durable = seed % 3 == 0;
    /* memory fills: after a few messages, or within a burst (a hand-on batch fits) */
    r->t.memory_bytes = 64 << 20;
    if (seed % 3 == 2)
        r->t.memory_bytes = seed % 2 ? range(r, 300, 1500) : range(r, 8000, 24000);
    r->t.max_age = seed % 4 == 1 ? range(r, 20000, 200000) : 0;
    expiry_open(r->t.max_age);
    atomic_store(&entry.expired_total, 0);
    atomic_fetch_add(&fake_now, range(r, 1, 2 * TM_WINDOW_MS)); /* any phase of slot and window */
    snprintf(r->dir, sizeof r->dir, "%s/hopper-time-model-XXXXXX", temp_root());
    CHECK(r, mkdtemp(r->dir) != NULL);
    channel_open(r);
    int steps = (int)range(r, 200, 400);
    if (trace)
        printf("seed %llu: durable %d max-age %llu steps %d\n", (unsigned long long)seed,
               (int)r->t.durable, (unsigned long long)r->t.max_age, steps);
    run_steps(r, steps);
    drain(r);
    CHECK(r, hop_channel_close(r->ch) == HOP_OK);
    entry.ch = NULL;
    seen.handed_on += r->t.handed_on;
    seen.to_head += r->t.to_head;
    seen.same_slot += r->t.same_slot;
    seen.memory_full += r->t.memory_full;
    seen.steps += (uint64_t)steps;
    nftw(r->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(r);
}

static uint64_t env_u64(const char *name, uint64_t fallback)
{
    const char *v = getenv(name);
    return v && *v ? strtoull(v, NULL, 10) : fallback;
}

static void test_time_model(void **state)
{
    (void)state;
    uint64_t one = env_u64("HOPPER_SEED", 0);
    uint64_t seeds = env_u64("HOPPER_TIME_MODEL_SEEDS", 300);
    trace = env_u64("HOPPER_TIME_MODEL_TRACE", 0) != 0;
    hop_set_log(NULL, NULL);
    hop_set_clock(clock_read, NULL);
    for (uint64_t s = one ? one : 1; s <= (one ? one : seeds); s++)
        run_seed(s);
    printf("time model: %llu steps, %llu received, %llu delayed handed on (%llu to the head, "
           "%llu in a slot with others), %llu expired, %llu restarts (%llu held came back, "
           "%llu lost), %llu sends past full memory\n",
           (unsigned long long)seen.steps, (unsigned long long)seen.received,
           (unsigned long long)seen.handed_on, (unsigned long long)seen.to_head,
           (unsigned long long)seen.same_slot, (unsigned long long)seen.expired,
           (unsigned long long)seen.restarts, (unsigned long long)seen.came_back,
           (unsigned long long)seen.lost, (unsigned long long)seen.memory_full);
    if (one == 0) { /* the full run must reach every case */
        assert_true(seen.to_head > 0 && seen.same_slot > 0 && seen.expired > 0);
        assert_true(seen.came_back > 0 && seen.lost > 0 && seen.memory_full > 0);
    }
    hop_set_clock(NULL, NULL);
    expiry_open(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
