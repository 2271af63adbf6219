/* test_model.c - a model-based property test of core/src/channel.c and
 * core/src/persist.c: random sequences of send, recv, requeue, stats, close
 * and reopen, and crash and reopen, over random small limits (a tenth of
 * them durable), each result checked against a plain FIFO. A crash keeps
 * what is on disk and loses what was only in memory; a message read from
 * disk and held by the receiver at a crash or a close comes back first.
 * A third of the seeds share a budget with a neighbour channel: what it
 * counts, memory and disk, is checked after every operation, and half of
 * them bound its disk side, so that sends meet HOP_NOSPACE.
 *
 * Seeds 1..HOPPER_MODEL_SEEDS (default 1000) run HOPPER_MODEL_OPS (default
 * 300) operations each; HOPPER_SEED=<n> replays seed n alone. A failure
 * names its seed and operation. */
#include "test_util.h"

#include "channel.h"
#include "io.h"
#include "queue_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The model: what the channel holds, oldest first, in a deque. */
typedef struct entry {
    uint64_t id;
    size_t len;
    bool requeued; /* in memory past the limit, as hop_requeue() allows */
    bool on_disk;  /* its record is in a queue file: it survives a crash */
} entry;

typedef struct model {
    entry *e;
    size_t cap, head, tail;
} model;

typedef struct run {
    uint64_t seed;
    int op;
    const char *what;
    hop_limits limits;
    model m;
    hop_channel *ch;
    char chan_dir[PATH_MAX];
    const char *data_dir;
    char name[32];
    /* a message taken and not yet given back */
    void *hand;
    size_t hand_len;
    entry hand_entry;
    uint64_t next_id, sent, received, requeued, full; /* since the last open */
    uint64_t reopens, crashes;
    unsigned char *buf;
    /* A third of the seeds share a budget with a neighbour channel (memory
     * only) that takes and gives back room between the operations; its own
     * generator, so the operations of the seed stay the same. */
    hop_budget *budget;
    hop_channel *neighbour;
    tu_rng brng;
} run;

/* HOPPER_MODEL_TRACE=1 prints every operation (best with HOPPER_SEED). */
static bool trace;
/* Sends refused with HOP_NOSPACE over all seeds: the run must meet some. */
static uint64_t nospace_total;

#define CHECK(r, cond)                                                                             \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fail_msg("seed %llu, op %d (%s): check failed at line %d: %s\n"                        \
                     "  limits memory %zu file %zu files %zu message %zu durable %d\n"             \
                     "  replay with HOPPER_SEED=%llu",                                             \
                     (unsigned long long)(r)->seed, (r)->op, (r)->what, __LINE__, #cond,           \
                     (r)->limits.memory_bytes, (r)->limits.file_bytes, (r)->limits.max_disk_files, \
                     (r)->limits.max_message_bytes, (int)(r)->limits.durable,                      \
                     (unsigned long long)(r)->seed);                                               \
    } while (0)

static size_t model_size(const model *m)
{
    return m->tail - m->head;
}

/* Bytes that requeued messages hold in memory beyond the limit at most. */
static size_t model_requeued_cost(const model *m)
{
    size_t sum = 0;
    for (size_t i = m->head; i < m->tail; i++)
        if (m->e[i].requeued)
            sum += hop_message_cost(m->e[i].len);
    return sum;
}

static bool payload_ok(run *r, const void *data, size_t len, const entry *want)
{
    if (len != want->len)
        return false;
    tu_fill_id(r->buf, len, want->id);
    return memcmp(data, r->buf, len) == 0;
}

static size_t random_len(run *r, tu_rng *rng)
{
    size_t max = r->limits.max_message_bytes;
    uint64_t pick = tu_range(rng, 0, 99);
    if (pick < 5)
        return 0;
    if (pick < 10)
        return (size_t)tu_range(rng, 1, max < 7 ? max : 7);
    if (pick < 40)
        return (size_t)tu_range(rng, 0, max < 64 ? max : 64);
    if (pick < 95) { /* log-uniform: every scale up to max, large ones too */
        int bits = 0;
        while (bits < 62 && ((size_t)1 << (bits + 1)) <= max)
            bits++;
        size_t top = (size_t)1 << tu_range(rng, 0, (uint64_t)bits + 1);
        return (size_t)tu_range(rng, top / 2, top > max ? max : top);
    }
    if (pick < 97)
        return max;
    return max + 1; /* too big */
}

/* True if the budget's disk side surely has room for a record of len
 * bytes, in a new file even: no limit, or used bytes were disk_pre. */
static bool disk_room(const run *r, uint64_t disk_pre, size_t len)
{
    uint64_t limit = hop_budget_disk_limit(r->budget);
    return limit == 0 || disk_pre + TU_RECORD_SIZE(len) + TU_FILE_HEADER <= limit;
}

/* After a send: the disk side counted exactly what the queue files grew
 * by (grew; nothing if the send did not go there, or was refused), and a
 * send stored there stayed under the limit (so one whose record did not
 * fit even without a new file was refused). */
static void check_send_disk(run *r, bool to_disk, uint64_t disk_pre, uint64_t grew)
{
    if (r->budget == NULL)
        return;
    uint64_t used = hop_budget_disk_used(r->budget), limit = hop_budget_disk_limit(r->budget);
    CHECK(r, used == disk_pre + (to_disk ? grew : 0));
    CHECK(r, !to_disk || limit == 0 || used <= limit);
}

static void op_send(run *r, tu_rng *rng)
{
    size_t len = random_len(r, rng);
    r->what = "send";
    uint64_t id = r->next_id++;
    tu_fill_id(r->buf, len, id);
    hop_stats pre = tu_stats(r->ch);
    size_t budget_pre = hop_budget_used(r->budget);
    uint64_t disk_pre = hop_budget_disk_used(r->budget);
    hop_err err = hop_send(r->ch, r->buf, len);
    hop_stats post = tu_stats(r->ch);
    if (trace)
        print_message("op %d: send id %llu len %zu -> %s (memory %zu/%zu disk %zu msgs %zu files "
                      "%zu bytes)\n",
                      r->op, (unsigned long long)id, len, hop_err_name(err), post.memory_messages,
                      post.memory_bytes, post.disk_messages, post.disk_files, post.disk_bytes);
    size_t cost = hop_message_cost(len);
    const hop_limits *l = &r->limits;
    bool budget_fits = r->budget == NULL || budget_pre + cost <= hop_budget_limit(r->budget);
    bool memory_fits = !l->durable && pre.disk_messages == 0 &&
                       pre.memory_bytes + cost <= l->memory_bytes && budget_fits;

    if (len > l->max_message_bytes) {
        CHECK(r, err == HOP_TOO_BIG);
    } else if (memory_fits) {
        CHECK(r, err == HOP_OK); /* room in memory and nothing on disk */
        CHECK(r, post.memory_messages == pre.memory_messages + 1);
        CHECK(r, post.memory_bytes == pre.memory_bytes + cost);
        CHECK(r, post.disk_bytes == pre.disk_bytes);
    } else if (pre.disk_files < l->max_disk_files) {
        /* a file can always be started, if the budget's disk side has room */
        CHECK(r, err == HOP_OK || (err == HOP_NOSPACE && !disk_room(r, disk_pre, len)));
    } else {
        /* every allowed file exists (recovered ones may be more): only the
         * newest one, if it is still open, takes it */
        CHECK(r, err == HOP_OK || err == HOP_FULL ||
                     (err == HOP_NOSPACE && !disk_room(r, disk_pre, len)));
    }
    check_send_disk(r, err == HOP_OK && !memory_fits, disk_pre, post.disk_bytes - pre.disk_bytes);
    if (err == HOP_OK && !memory_fits) {
        uint64_t grew = post.disk_bytes - pre.disk_bytes;
        CHECK(r, post.disk_messages == pre.disk_messages + 1);
        CHECK(r, post.memory_bytes == pre.memory_bytes);
        CHECK(r, grew == TU_RECORD_SIZE(len) || grew == TU_RECORD_SIZE(len) + TU_FILE_HEADER);
        CHECK(r, post.disk_files == pre.disk_files + (grew > TU_RECORD_SIZE(len)));
        CHECK(r, post.disk_files <= l->max_disk_files || grew == TU_RECORD_SIZE(len));
    }
    if (err == HOP_OK) {
        CHECK(r, r->m.tail < r->m.cap);
        r->m.e[r->m.tail++] = (entry){id, len, false, !memory_fits};
        r->sent++;
    } else {
        /* refused: nothing changed, and the buffer is as it was */
        CHECK(r, post.messages == pre.messages);
        CHECK(r, post.memory_bytes == pre.memory_bytes);
        CHECK(r, post.disk_bytes == pre.disk_bytes);
        CHECK(r, post.disk_files == pre.disk_files);
        tu_fill_id(r->buf + len + 1, len, id);
        CHECK(r, memcmp(r->buf, r->buf + len + 1, len) == 0);
        if (err == HOP_FULL)
            r->full++;
        nospace_total += err == HOP_NOSPACE;
    }
}

static void op_recv(run *r, tu_rng *rng)
{
    r->what = "recv";
    void *data = NULL;
    size_t len = 0;
    hop_err err = hop_recv(r->ch, 0, &data, &len);
    if (trace)
        print_message("op %d: recv -> %s len %zu\n", r->op, hop_err_name(err), len);
    if (model_size(&r->m) == 0) {
        CHECK(r, err == HOP_TIMEOUT);
        return;
    }
    CHECK(r, err == HOP_OK);
    entry want = r->m.e[r->m.head++];
    CHECK(r, payload_ok(r, data, len, &want));
    r->received++;
    CHECK(r, tu_stats(r->ch).in_flight ==
                 (size_t)want.on_disk + (size_t)(r->hand && r->hand_entry.on_disk));
    if (r->hand == NULL && tu_range(rng, 0, 2) == 0) {
        r->hand = data;
        r->hand_len = len;
        r->hand_entry = want;
    } else {
        hop_free(data);
    }
}

static void op_requeue(run *r, tu_rng *rng)
{
    r->what = "requeue";
    if (r->hand == NULL)
        return;
    bool wrong = tu_range(rng, 0, 9) == 0;
    hop_err err = hop_requeue(r->ch, r->hand, wrong ? r->hand_len + 1 : r->hand_len);
    if (trace)
        print_message("op %d: requeue id %llu -> %s\n", r->op, (unsigned long long)r->hand_entry.id,
                      hop_err_name(err));
    CHECK(r, err == (wrong ? HOP_INVALID : HOP_OK)); /* back either way */
    CHECK(r, r->m.head > 0);
    r->hand_entry.requeued = true;
    r->m.e[--r->m.head] = r->hand_entry;
    r->hand = NULL;
    r->requeued++;
}

static void op_stats(run *r)
{
    r->what = "stats";
    hop_stats s = tu_stats(r->ch);
    const hop_limits *l = &r->limits;
    CHECK(r, s.messages == model_size(&r->m));
    CHECK(r, s.memory_messages + s.disk_messages == s.messages);
    CHECK(r, s.sent_total == r->sent);
    CHECK(r, s.received_total == r->received);
    CHECK(r, s.requeued_total == r->requeued);
    CHECK(r, s.rejected_full_total == r->full);
    CHECK(r, s.io_errors_total == 0);
    CHECK(r, s.records_corrupt_total == 0);
    CHECK(r, s.waiting_receivers == 0);
    CHECK(r, s.memory_bytes <= l->memory_bytes + model_requeued_cost(&r->m));
    CHECK(r, s.in_flight == (r->hand && r->hand_entry.on_disk ? 1u : 0u));
    /* the files on disk are the ones the stats count */
    uint64_t seqs[64], sizes[64], total = 0;
    int n = tu_list_qfiles(r->chan_dir, seqs, sizes, 64);
    CHECK(r, n == (int)s.disk_files);
    for (int i = 0; i < n; i++) {
        CHECK(r, i == 0 || seqs[i] > seqs[i - 1]);
        total += sizes[i];
    }
    CHECK(r, total == s.disk_bytes);
}

/* The budget counts exactly what the two channels hold: on the memory
 * side their messages, and the read-ahead buffer of the channel while it
 * has records to read (full size, or the small one when the budget had no
 * room for that); on the disk side every file in the channel's directory,
 * queue files and journal (the neighbour has none). After every
 * operation. */
static void check_budget(run *r)
{
    if (r->budget == NULL)
        return;
    hop_stats s = tu_stats(r->ch), ns = tu_stats(r->neighbour);
    size_t messages = s.memory_bytes + s.held_bytes + ns.memory_bytes + ns.held_bytes;
    size_t used = hop_budget_used(r->budget);
    CHECK(r, used >= messages);
    size_t read_ahead = used - messages;
    CHECK(r, read_ahead == 0 || (s.disk_messages > 0 && (read_ahead == HOP__READ_BUFFER ||
                                                         read_ahead == HOP__READ_BUFFER_SMALL)));
    CHECK(r, hop_budget_disk_used(r->budget) == tu_dir_bytes(r->chan_dir));
}

/* The neighbour sharing the budget sends or takes one message. */
static void op_neighbour(run *r)
{
    r->what = "neighbour";
    if (tu_range(&r->brng, 0, 1) == 0) {
        unsigned char small[64];
        size_t len = (size_t)tu_range(&r->brng, 8, sizeof small);
        tu_fill_id(small, len, 0);
        size_t before = hop_budget_used(r->budget);
        hop_err err = hop_send(r->neighbour, small, len);
        /* its own memory is the budget's size: only the budget can refuse */
        bool fits = before + hop_message_cost(len) <= hop_budget_limit(r->budget);
        CHECK(r, err == (fits ? HOP_OK : HOP_FULL));
        CHECK(r, hop_budget_used(r->budget) == before + (fits ? hop_message_cost(len) : 0));
    } else {
        void *data;
        size_t len;
        if (hop_recv(r->neighbour, 0, &data, &len) == HOP_OK)
            hop_free(data);
    }
}

/* For a third of the seeds: a budget shared with a memory-only neighbour
 * channel, of at least one largest message; for half of them its disk
 * side is bounded too, to a few largest records (the journal counts
 * there too). */
static void budget_open(run *r, uint64_t seed)
{
    r->brng = (tu_rng){seed * 0xD1B54A32D192ED03ull + 1};
    if (seed % 3 != 0)
        return;
    size_t biggest = hop_message_cost(r->limits.max_message_bytes);
    size_t limit = (size_t)tu_range(&r->brng, biggest, 3 * biggest + 8 * hop_message_cost(64));
    CHECK(r, hop_budget_new(limit, &r->budget) == HOP_OK);
    if (tu_range(&r->brng, 0, 1) == 0) {
        uint64_t record = TU_RECORD_SIZE(r->limits.max_message_bytes);
        uint64_t disk = tu_range(&r->brng, record + TU_FILE_HEADER, 8 * record + 512);
        CHECK(r, hop_budget_set_disk(r->budget, disk) == HOP_OK);
    }
    hop_limits n = {.memory_bytes = limit, .max_message_bytes = 64, .budget = r->budget};
    if (n.memory_bytes < hop_message_cost(64))
        n.memory_bytes = hop_message_cost(64);
    CHECK(r, hop_channel_open(NULL, "neighbour", &n, &r->neighbour) == HOP_OK);
    r->limits.budget = r->budget;
}

static void budget_close(run *r)
{
    if (r->budget == NULL)
        return;
    CHECK(r, hop_channel_close(r->neighbour) == HOP_OK);
    CHECK(r, hop_budget_used(r->budget) == 0); /* both closed: nothing counted */
    CHECK(r, hop_budget_disk_used(r->budget) == 0);
    hop_budget_free(r->budget);
}

/* Close (or crash) and open again with the same limits. */
static void op_reopen(run *r, bool crash)
{
    r->what = crash ? "crash and reopen" : "close and reopen";
    /* What comes back: a held message read from disk first, then on a
     * clean close everything, on a crash what was on disk. */
    model kept = r->m;
    kept.e = calloc(r->m.cap, sizeof *kept.e);
    CHECK(r, kept.e != NULL);
    kept.head = kept.tail = r->m.head;
    if (r->hand && r->hand_entry.on_disk) {
        kept.head--;
        kept.e[kept.head] = r->hand_entry;
    }
    for (size_t i = r->m.head; i < r->m.tail; i++)
        if (!crash || r->m.e[i].on_disk)
            kept.e[kept.tail++] = r->m.e[i];
    if (trace)
        print_message("op %d: %s: %zu of %zu kept\n", r->op, r->what, model_size(&kept),
                      model_size(&r->m) + (r->hand != NULL));
    if (crash)
        hop__channel_abandon(r->ch);
    else
        CHECK(r, hop_channel_close(r->ch) == HOP_OK);
    if (r->hand) {
        hop_free(r->hand); /* after the close: it only frees memory */
        r->hand = NULL;
    }
    free(r->m.e);
    r->m = kept;
    for (size_t i = r->m.head; i < r->m.tail; i++) {
        r->m.e[i].requeued = false;
        r->m.e[i].on_disk = true; /* a clean close wrote memory to disk */
    }
    CHECK(r, hop_channel_open(r->data_dir, r->name, &r->limits, &r->ch) == HOP_OK);
    hop_stats s = tu_stats(r->ch);
    CHECK(r, s.messages == model_size(&r->m));
    CHECK(r, s.disk_messages == model_size(&r->m));
    CHECK(r, s.recovered_total == model_size(&r->m));
    r->sent = r->received = r->requeued = r->full = 0;
    if (crash)
        r->crashes++;
    else
        r->reopens++;
}

static void drain_and_check(run *r)
{
    r->what = "final drain";
    if (r->hand) {
        hop_free(r->hand);
        r->hand = NULL;
    }
    while (model_size(&r->m) > 0) {
        void *data;
        size_t len;
        CHECK(r, hop_recv(r->ch, 0, &data, &len) == HOP_OK);
        entry want = r->m.e[r->m.head++];
        CHECK(r, payload_ok(r, data, len, &want));
        hop_free(data);
    }
    void *data;
    size_t len;
    CHECK(r, hop_recv(r->ch, 0, &data, &len) == HOP_TIMEOUT);
    hop_stats s = tu_stats(r->ch);
    CHECK(r, s.messages == 0);
    CHECK(r, s.memory_bytes == 0);
    CHECK(r, s.disk_files == 0);
    CHECK(r, s.disk_bytes == 0);
    uint64_t seqs[16];
    int n = tu_list_qfiles(r->chan_dir, seqs, NULL, 16);
    CHECK(r, n <= 0); /* every drained file deleted */
}

static hop_limits random_limits(tu_rng *rng)
{
    hop_limits l = {0}; /* budget NULL, as every field not set below */
    uint64_t kind = tu_range(rng, 0, 99);
    if (kind < 10)
        l.max_message_bytes = (size_t)tu_range(rng, 1, 16);
    else if (kind < 90)
        l.max_message_bytes = (size_t)tu_range(rng, 17, 2000);
    else
        l.max_message_bytes = (size_t)tu_range(rng, 60000, 140000); /* past the read buffer */
    size_t typical = hop_message_cost(l.max_message_bytes / 4);
    l.memory_bytes = (size_t)tu_range(rng, 0, 8 * typical);
    l.file_bytes = (size_t)tu_range(rng, 1, 4 * TU_RECORD_SIZE(l.max_message_bytes) + 16);
    l.max_disk_files = (size_t)tu_range(rng, 1, 4);
    l.durable = false;
    uint64_t mode = tu_range(rng, 0, 9);
    if (mode == 0) { /* memory only (while running: close still writes) */
        l.max_disk_files = 0;
        l.memory_bytes =
            hop_message_cost(l.max_message_bytes) + (size_t)tu_range(rng, 0, 4 * typical);
    } else if (mode == 1) {
        l.durable = true;
    }
    return l;
}

static void run_seed(const char *data_dir, uint64_t seed, int ops)
{
    tu_rng rng = {seed * 0x9E3779B97F4A7C15ull};
    run *r = calloc(1, sizeof *r);
    assert_non_null(r);
    r->seed = seed;
    r->what = "open";
    r->limits = random_limits(&rng);
    r->m.cap = (size_t)ops * 2 + 2;
    r->m.e = calloc(r->m.cap, sizeof *r->m.e);
    r->m.head = r->m.tail = (size_t)ops + 1; /* room for requeues at the head */
    r->buf = malloc(2 * (r->limits.max_message_bytes + 2));
    assert_non_null(r->m.e);
    assert_non_null(r->buf);
    snprintf(r->name, sizeof r->name, "s%llu", (unsigned long long)seed);
    r->data_dir = data_dir;
    tu_join(r->chan_dir, data_dir, r->name);
    budget_open(r, seed);
    CHECK(r, hop_channel_open(data_dir, r->name, &r->limits, &r->ch) == HOP_OK);

    for (r->op = 0; r->op < ops; r->op++) {
        if (r->budget && tu_range(&r->brng, 0, 2) == 0)
            op_neighbour(r);
        uint64_t pick = tu_range(&rng, 0, 99);
        if (pick < 46)
            op_send(r, &rng);
        else if (pick < 80)
            op_recv(r, &rng);
        else if (pick < 90)
            op_requeue(r, &rng);
        else if (pick < 98)
            op_stats(r);
        else if (pick < 99)
            op_reopen(r, false);
        else
            op_reopen(r, true);
        check_budget(r);
    }
    op_stats(r);
    drain_and_check(r);
    hop_channel_close(r->ch);
    budget_close(r);
    tu_rmtree(r->chan_dir);
    free(r->buf);
    free(r->m.e);
    free(r);
}

static long env_long(const char *name, long fallback)
{
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 10) : fallback;
}

/* Syncs that return at once: this test is about what the channel hands out,
 * not about stable storage, and real syncs would make it take minutes. */
static int no_sync(int fd)
{
    (void)fd;
    return 0;
}

static void test_random_sequences_match_fifo_model(void **state)
{
    tu_dir *d = *state;
    hop_set_log(NULL, NULL);
    hop__io fast = hop__io_system;
    fast.fdatasync = no_sync;
    fast.fsync = no_sync;
    hop__io_set(&fast);
    int ops = (int)env_long("HOPPER_MODEL_OPS", 300);
    trace = env_long("HOPPER_MODEL_TRACE", 0) != 0;
    const char *replay = getenv("HOPPER_SEED");
    if (replay && *replay) {
        uint64_t seed = strtoull(replay, NULL, 10);
        print_message("replaying seed %llu\n", (unsigned long long)seed);
        run_seed(d->data, seed, ops);
        return;
    }
    long seeds = env_long("HOPPER_MODEL_SEEDS", 1000);
    int64_t t0 = tu_now_ms();
    for (long seed = 1; seed <= seeds; seed++)
        run_seed(d->data, (uint64_t)seed, ops);
    print_message("%ld seeds x %d ops in %lld ms, %llu sends refused for the disk budget\n", seeds,
                  ops, (long long)(tu_now_ms() - t0), (unsigned long long)nospace_total);
    if (seeds >= 100)
        assert_true(nospace_total > 0);
    hop__io_set(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_random_sequences_match_fifo_model, tu_dir_setup,
                                        tu_dir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
