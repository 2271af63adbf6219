/* test_restart.c - what a restart keeps: messages in memory and on disk
 * survive SIGTERM in order, byte for byte, with their Content-Type, and
 * consumed ones do not come back; 20 stop/starts under load lose and
 * duplicate nothing; with --durable a kill -9 loses no message that got
 * 202; a torn last record and a flipped byte in a queue file cost one
 * message each, never wrong bytes; a message keeps its id and the time it
 * was accepted (stored in the queue file). And the server's part of starting on
 * an existing data directory: every channel in it is opened (and logged)
 * before the listener, too many channels or one that cannot be opened
 * stop the start with exit 1, --max-disk-files 0 still keeps messages.
 *
 * Each test has its own data directory (a fixture), which outlives the
 * servers started on it and is removed afterwards. */
#include "envelope.h"
#include "harness.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

/* Small memory and small files, so that a few dozen messages lie both in
 * memory and in several queue files. */
#define PAGING_ARGS "--memory-bytes", "8KiB", "--file-bytes", "4KiB"

/* ---- numbered messages: body, Content-Type ---- */

static const char *const content_types[] = {"text/plain", "application/json", NULL,
                                            "application/x-hopper-test; charset=utf-8"};
#define TYPE_COUNT (sizeof content_types / sizeof content_types[0])
#define MAX_BODY 800

/* Message i's body: "m<5 digits>|" and then 30 to 729 bytes that depend on
 * i, zeros and high bytes among them. OUT: body. Returns the length. */
static size_t body_of(int i, unsigned char body[MAX_BODY])
{
    size_t len = 7 + 30 + (size_t)(i * 37 % 700);
    snprintf((char *)body, MAX_BODY, "m%05d|", i);
    for (size_t k = 7; k < len; k++)
        body[k] = (unsigned char)(i * 31 + k * 7);
    return len;
}

static const char *type_of(int i)
{
    return content_types[(size_t)i % TYPE_COUNT];
}

static void post_message(const hs_server *s, const char *channel, int i)
{
    unsigned char body[MAX_BODY];
    size_t len = body_of(i, body);
    hs_expect_post_bytes(s, channel, body, len, type_of(i), 202);
}

/* GET the next message of channel: it must be message i, byte for byte,
 * with its Content-Type. */
static void expect_message(const hs_server *s, const char *channel, int i)
{
    unsigned char body[MAX_BODY];
    size_t len = body_of(i, body);
    const char *type = type_of(i) ? type_of(i) : ENVELOPE_DEFAULT_CONTENT_TYPE;
    hs_expect_message(s, channel, body, len, type);
}

/* ---- queue files, read as the core writes them ----
 * A file: 16-byte header ("HOPQ", u32 version, u64 seq), then records of a
 * 16-byte header (u32 magic, u32 payload length, u32 payload crc32c, u32
 * header crc32c) and the payload: the server's envelope, then the body.
 * Integers little-endian. */

#define QFILE_HEADER 16
#define RECORD_HEADER 16
#define RECORD_MAGIC 0x52504F48u

typedef struct record_at {
    long offset; /* of the record header */
    uint32_t len;
    int message; /* the number of the message it holds, -1 if none */
} record_at;

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The message number in a record's payload (an envelope). */
static int message_of(const unsigned char *payload, size_t len)
{
    envelope env;
    int i = -1;
    if (envelope_decode(payload, len, &env) && env.body_len >= 7 && env.body[0] == 'm')
        i = atoi((const char *)env.body + 1);
    return i;
}

/* Read path and list its records. OUT: out[0..max). Returns how many. */
static size_t read_records(const char *path, record_at *out, size_t max)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static unsigned char data[1 << 20];
    size_t size = fread(data, 1, sizeof data, f);
    fclose(f);
    assert_true(size >= QFILE_HEADER && memcmp(data, "HOPQ", 4) == 0);
    size_t n = 0;
    for (size_t off = QFILE_HEADER; off + RECORD_HEADER <= size && n < max;) {
        uint32_t len = le32(data + off + 4);
        assert_int_equal(le32(data + off), RECORD_MAGIC);
        assert_true(off + RECORD_HEADER + len <= size);
        out[n++] = (record_at){(long)off, len, message_of(data + off + RECORD_HEADER, len)};
        off += RECORD_HEADER + len;
    }
    return n;
}

/* The payload of record r of path into out, which has room for r.len. */
static void read_payload(const char *path, record_at r, unsigned char *out)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, r.offset + RECORD_HEADER, SEEK_SET), 0);
    assert_int_equal(fread(out, 1, r.len, f), r.len);
    fclose(f);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(a, b); /* rows of a char[][64] */
}

/* The queue files of channel in dir, sorted by name (which is by sequence
 * number). OUT: paths[0..max). Returns how many. */
static size_t queue_files(const char *dir, const char *channel, char paths[][512], size_t max)
{
    char cdir[400];
    snprintf(cdir, sizeof cdir, "%s/%s", dir, channel);
    DIR *d = opendir(cdir);
    assert_non_null(d);
    char names[64][64];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < max && n < 64) {
        size_t len = strlen(e->d_name);
        if (len == 23 && strcmp(e->d_name + 20, ".hq") == 0)
            memcpy(names[n++], e->d_name, len + 1);
    }
    closedir(d);
    qsort(names, n, sizeof names[0], by_name);
    for (size_t i = 0; i < n; i++)
        snprintf(paths[i], 512, "%.400s/%.63s", cdir, names[i]);
    return n;
}

/* ---- tests that need only the server ---- */

/* mkdir dir/name, a channel directory. */
static void make_channel_dir(const char *dir, const char *name)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(mkdir(path, 0700), 0);
}

/* Run hopper on dir with extra arguments (NULL-terminated, at most four)
 * and expect it not to start: exit 1, before listening, with every one of
 * texts (NULL-terminated) in its output. */
static void expect_no_start(const char *dir, const char *const *extra, const char *const *texts)
{
    const char *args[9] = {"--listen", "127.0.0.1:0", "--data-dir", dir};
    for (size_t i = 0; extra && extra[i]; i++) {
        assert_true(i < 4);
        args[4 + i] = extra[i];
    }
    int code = -2;
    char *output = NULL;
    assert_int_equal(hs_run(args, NULL, &code, &output), 0);
    bool ok = code == 1 && strstr(output, "listening on") == NULL;
    for (size_t i = 0; texts[i]; i++)
        ok = ok && strstr(output, texts[i]) != NULL;
    if (!ok)
        fail_msg("exit %d (expected 1 with '%s'), output:\n%s", code, texts[0], output);
    free(output);
}

static void test_too_many_channels_refuse_the_start(void **state)
{
    const char *dir = *state;
    hs_server s;
    hs_start_in_ok(&s, dir, NULL);
    hs_expect_post(&s, "a", "x", 202);
    hs_expect_post(&s, "b", "x", 202);
    hs_expect_post(&s, "c", "x", 202);
    hs_stop_ok(&s);
    make_channel_dir(dir, "empty"); /* empty channels do not count */
    const char *two[] = {"--max-channels", "2", NULL};
    const char *says[] = {"holds more than --max-channels 2 channels with messages",
                          "raise --max-channels", NULL};
    expect_no_start(dir, two, says);
    /* exactly enough is enough */
    const char *three[] = {"--max-channels", "3", NULL};
    hs_start_in_ok(&s, dir, three);
    assert_true(hs_log_wait(&s, "recovered 3 channel(s) with 3 message(s)", 0));
    assert_true(hs_log_wait(&s, "1 empty one(s) removed", 0));
    assert_int_equal(hs_status_value(&s, "c", "messages"), 1);
    hs_expect_post(&s, "d", "x", 503); /* and no more */
    hs_stop_ok(&s);
}

static void test_channel_that_cannot_be_opened_refuses_the_start(void **state)
{
    const char *dir = *state;
    make_channel_dir(dir, "jobs");
    /* another process holds the channel directory's lock */
    char path[400];
    snprintf(path, sizeof path, "%s/jobs", dir);
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX), 0);
    const char *says[] = {"channel jobs cannot be recovered from", "locked by another process",
                          NULL};
    expect_no_start(dir, NULL, says);
    close(fd);
}

/* --max-disk-files 0 uses no queue file while running, but a clean stop
 * still writes what memory holds, and the next start finds it. */
static void test_memory_only_keeps_messages_across_a_stop(void **state)
{
    const char *dir = *state;
    hs_server s;
    const char *args[] = {"--max-disk-files", "0", NULL};
    hs_start_in_ok(&s, dir, args);
    hs_expect_post(&s, "mem", "kept", 202);
    assert_int_equal(hs_status_value(&s, "mem", "disk_files"), 0);
    hs_stop_saying(&s, "channel mem: 1 message(s) kept on disk");
    hs_start_in_ok(&s, dir, args);
    assert_true(hs_log_wait(&s, "channel mem recovered: 1 message(s)", 0));
    hs_expect_get(&s, "mem", "0", "kept");
    /* The recovered file goes once the GET's record is consumed, which is
     * when its response is done: the client may read the body before. */
    hs_await_status_ok(&s, "mem", "disk_files", 0);
    hs_expect_post(&s, "mem", "again", 202); /* memory again */
    assert_int_equal(hs_status_value(&s, "mem", "disk_files"), 0);
    hs_stop_ok(&s);
}

static void test_recovery_comes_before_the_listener(void **state)
{
    const char *dir = *state;
    hs_server s;
    hs_start_in_ok(&s, dir, NULL);
    hs_expect_post(&s, "early", "x", 202);
    hs_expect_post(&s, "late", "y", 202);
    hs_stop_ok(&s);
    hs_start_in_ok(&s, dir, NULL);
    /* the log up to "listening on" is in the file once hs_start_in returns */
    assert_true(hs_log_wait(&s, "channel early recovered: ", 0));
    assert_true(hs_log_wait(&s, "channel late recovered: ", 0));
    assert_true(hs_log_wait(&s, "recovered 2 channel(s) with ", 0));
    assert_int_equal(hs_status_value(&s, "early", "in_flight"), 0);
    assert_true(hs_status_value(&s, "late", "recovered") >= 0);
    hs_stop_ok(&s);
}

/* Milliseconds since the epoch, of the wall clock the server stamps
 * messages with. */
static uint64_t wall_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
}

/* GET the next message of channel (under a lease when lease is not NULL):
 * it must be body (text), handed out for the count-th time. OUT: id. */
static void get_with_id(const hs_server *s, const char *channel, const char *lease,
                        const char *body, long count, char id[HS_MESSAGE_ID_LEN + 1])
{
    hs_reply r;
    assert_int_equal(hs_get_leased(s, channel, "0", lease, &r), 200);
    assert_string_equal((char *)r.body, body);
    assert_int_equal(hs_delivery_count(&r), count);
    hs_expect_message_id(&r, id);
    hs_reply_free(&r);
}

/* Check the queue file a stop wrote for channel "ids": version 3
 * envelopes of bodies[0..3), with ids[], accepted within [before, after],
 * the two parts of one batch at the same time, each handed out once. */
static void expect_stored_ids(const char *dir, const char *const *bodies,
                              char ids[][HS_MESSAGE_ID_LEN + 1], uint64_t before, uint64_t after)
{
    char paths[4][512];
    assert_int_equal(queue_files(dir, "ids", paths, 4), 1);
    record_at records[4];
    assert_int_equal(read_records(paths[0], records, 4), 3);
    uint64_t received[3];
    for (int i = 0; i < 3; i++) {
        unsigned char payload[256];
        assert_true(records[i].len <= sizeof payload);
        read_payload(paths[0], records[i], payload);
        envelope env;
        assert_true(envelope_decode(payload, records[i].len, &env));
        assert_int_equal(env.version, ENVELOPE_VERSION);
        assert_int_equal(env.returns, 1); /* the lease the stop ended */
        assert_int_equal(env.body_len, strlen(bodies[i]));
        assert_memory_equal(env.body, bodies[i], env.body_len);
        char text[ENVELOPE_ID_TEXT_SIZE];
        envelope_id_text(&env, text);
        assert_string_equal(text, ids[i]);
        received[i] = env.received_ms;
        assert_true(received[i] >= before && received[i] <= after);
    }
    assert_true(received[1] == received[2]); /* one batch, one time */
}

/* A message is given its id and its time when it is accepted, a single
 * POST and each part of a batch POST; both are stored in the queue file a
 * stop writes, and the id is the one every GET shows, before and after a
 * restart. */
static void test_message_ids_survive_a_restart(void **state)
{
    const char *dir = *state;
    hs_server s;
    hs_start_in_ok(&s, dir, NULL);
    uint64_t before = wall_ms();
    hs_expect_post(&s, "ids", "single", 202);
    const char *batch = "--b\r\n\r\npart 1\r\n--b\r\n\r\npart 2\r\n--b--\r\n";
    hs_expect_post_bytes(&s, "ids", batch, strlen(batch), "multipart/mixed; boundary=b", 202);
    uint64_t after = wall_ms();
    const char *const bodies[] = {"single", "part 1", "part 2"};
    char ids[3][HS_MESSAGE_ID_LEN + 1], again[HS_MESSAGE_ID_LEN + 1];
    for (int i = 0; i < 3; i++) { /* leased: the stop gives them back */
        get_with_id(&s, "ids", "60", bodies[i], 1, ids[i]);
        for (int k = 0; k < i; k++)
            assert_string_not_equal(ids[k], ids[i]);
    }
    hs_stop_ok(&s);
    expect_stored_ids(dir, bodies, ids, before, after);
    hs_start_in_ok(&s, dir, NULL);
    for (int i = 0; i < 3; i++) {
        get_with_id(&s, "ids", NULL, bodies[i], 2, again);
        assert_string_equal(again, ids[i]);
    }
    hs_stop_ok(&s);
}

/* ---- tests that need the core's recovery ---- */

static void test_messages_survive_sigterm(void **state)
{
    const char *dir = *state;
    enum { SENT = 60, TAKEN = 10 };
    const char *args[] = {PAGING_ARGS, NULL};
    hs_server s;
    hs_start_in_ok(&s, dir, args);
    for (int i = 0; i < SENT; i++)
        post_message(&s, "keep", i);
    for (int i = 0; i < TAKEN; i++)
        expect_message(&s, "keep", i);
    /* the setup does what it is for: messages in memory and in files */
    assert_true(hs_status_value(&s, "keep", "memory_bytes") > 0);
    assert_true(hs_status_value(&s, "keep", "disk_files") > 1);
    hs_stop_saying(&s, "channel keep: 50 message(s) kept on disk");

    hs_start_in_ok(&s, dir, args);
    assert_true(hs_log_wait(&s, "channel keep recovered: 50 message(s), ", 0));
    assert_true(hs_log_wait(&s, "recovered 1 channel(s) with 50 message(s)", 0));
    assert_int_equal(hs_status_value(&s, "keep", "messages"), SENT - TAKEN);
    assert_int_equal(hs_status_value(&s, "keep", "recovered"), SENT - TAKEN);
    for (int i = TAKEN; i < SENT; i++)
        expect_message(&s, "keep", i);
    hs_expect_nothing(&s, "keep", "0", NULL);
    hs_stop_ok(&s);

    /* consumed stays consumed, however often it restarts */
    hs_start_in_ok(&s, dir, args);
    assert_true(hs_log_wait(&s, "1 empty one(s) removed", 0));
    hs_expect_nothing(&s, "keep", "0", NULL);
    hs_stop_ok(&s);
}

/* The restart loop: a producer and a consumer thread run while the main
 * thread stops and starts the server LOOP_RESTARTS times on one port. */
enum { LOOP_RESTARTS = 20, LOOP_MAX = 5000 };

typedef enum outcome {
    NOT_SENT,
    ACCEPTED, /* 202 */
    REFUSED,  /* another status: not stored */
    UNKNOWN,  /* no answer: after a clean stop not stored; after kill -9 either */
} outcome;

typedef struct loop {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int port;
    unsigned generation; /* one more at each start */
    bool stop_sending, producer_done;
    unsigned char outcome[LOOP_MAX];
    int sent, accepted;
    unsigned char times_received[LOOP_MAX];
    int received, last_received, out_of_order, strangers;
    bool consumer_gave_up;
} loop;

/* After a failed request: wait (under L->lock) for the next start. */
static void await_next_start(loop *L, unsigned generation)
{
    while (L->generation == generation && !L->stop_sending)
        pthread_cond_wait(&L->changed, &L->lock);
}

static void *loop_producer(void *arg)
{
    loop *L = arg;
    hs_server s = {.port = L->port};
    for (int i = 0; i < LOOP_MAX; i++) {
        pthread_mutex_lock(&L->lock);
        bool stop = L->stop_sending;
        unsigned generation = L->generation;
        pthread_mutex_unlock(&L->lock);
        if (stop)
            break;
        char body[32];
        int len = snprintf(body, sizeof body, "loop-%05d", i);
        hs_reply r;
        int rc = hs_post(&s, "/channels/loop", body, (size_t)len, "text/plain", &r);
        outcome o = rc != 0 ? UNKNOWN : r.status == 202 ? ACCEPTED : REFUSED;
        hs_reply_free(&r);
        pthread_mutex_lock(&L->lock);
        L->outcome[i] = (unsigned char)o;
        L->sent = i + 1;
        L->accepted += o == ACCEPTED;
        pthread_cond_broadcast(&L->changed);
        if (o == UNKNOWN)
            await_next_start(L, generation);
        pthread_mutex_unlock(&L->lock);
    }
    return NULL;
}

static void *loop_consumer(void *arg)
{
    loop *L = arg;
    hs_server s = {.port = L->port};
    double deadline = hs_now() + 2 * HS_PATIENCE_MS / 1000.0;
    for (;;) {
        pthread_mutex_lock(&L->lock);
        bool producer_done = L->producer_done;
        unsigned generation = L->generation;
        pthread_mutex_unlock(&L->lock);
        if (hs_now() > deadline) {
            L->consumer_gave_up = true;
            break;
        }
        hs_reply r;
        int rc = hs_get(&s, "/channels/loop?wait=0.5", &r);
        long status = rc == 0 ? r.status : -1;
        int n = -1;
        if (status == 200 && r.len == 10 && memcmp(r.body, "loop-", 5) == 0)
            n = atoi((const char *)r.body + 5);
        hs_reply_free(&r);
        pthread_mutex_lock(&L->lock);
        if (status == 200 && (n < 0 || n >= LOOP_MAX)) {
            L->strangers++;
        } else if (status == 200) {
            L->times_received[n]++;
            L->received++;
            L->out_of_order += n <= L->last_received;
            L->last_received = n;
            pthread_cond_broadcast(&L->changed);
        } else if (status != 204) {
            await_next_start(L, generation);
        }
        pthread_mutex_unlock(&L->lock);
        if (status == 204 && producer_done)
            break; /* everything sent has been asked for: the channel is empty */
    }
    return NULL;
}

/* Wait until both threads made progress since the last restart. */
static void await_progress(loop *L, int accepted, int received)
{
    double deadline = hs_now() + HS_PATIENCE_MS / 1000.0;
    pthread_mutex_lock(&L->lock);
    while ((L->accepted < accepted || L->received < received) && hs_now() < deadline) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 50 * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&L->changed, &L->lock, &until);
    }
    bool ok = L->accepted >= accepted && L->received >= received;
    pthread_mutex_unlock(&L->lock);
    if (!ok)
        fail_msg("no progress: %d accepted (wanted %d), %d received (wanted %d)", L->accepted,
                 accepted, L->received, received);
}

static void test_restart_loop_under_load(void **state)
{
    const char *dir = *state;
    static loop L;
    memset(&L, 0, sizeof L);
    pthread_mutex_init(&L.lock, NULL);
    pthread_cond_init(&L.changed, NULL);
    L.last_received = -1;

    hs_server s;
    const char *first[] = {"--memory-bytes", "8KiB", "--file-bytes", "16KiB", NULL};
    hs_start_in_ok(&s, dir, first);
    /* The same port at every start, so the threads need not be told a new
     * one (the listener sets SO_REUSEADDR). Port 0 picked it; another
     * process could take it between a stop and a start, very rarely. */
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", s.port);
    const char *again[] = {"--memory-bytes", "8KiB", "--file-bytes", "16KiB", "--listen",
                           listen,           NULL};
    L.port = s.port;
    L.generation = 1;
    pthread_t producer, consumer;
    assert_int_equal(pthread_create(&producer, NULL, loop_producer, &L), 0);
    assert_int_equal(pthread_create(&consumer, NULL, loop_consumer, &L), 0);

    for (int r = 0; r < LOOP_RESTARTS; r++) {
        pthread_mutex_lock(&L.lock);
        int accepted = L.accepted, received = L.received;
        pthread_mutex_unlock(&L.lock);
        await_progress(&L, accepted + 20, received + 10);
        hs_stop_ok(&s);
        hs_start_in_ok(&s, dir, again);
        pthread_mutex_lock(&L.lock);
        L.generation++;
        pthread_cond_broadcast(&L.changed);
        pthread_mutex_unlock(&L.lock);
    }
    /* load on the last run too */
    pthread_mutex_lock(&L.lock);
    int accepted = L.accepted, received = L.received;
    pthread_mutex_unlock(&L.lock);
    await_progress(&L, accepted + 20, received + 10);
    pthread_mutex_lock(&L.lock);
    L.stop_sending = true;
    pthread_cond_broadcast(&L.changed);
    pthread_mutex_unlock(&L.lock);
    pthread_join(producer, NULL);
    pthread_mutex_lock(&L.lock);
    L.producer_done = true;
    pthread_mutex_unlock(&L.lock);
    pthread_join(consumer, NULL);
    hs_stop_ok(&s);

    /* A clean stop answers every POST it stores (one that begins while
     * stopping is refused), so a POST without an answer was not stored:
     * it must not arrive, or its client, retrying, would make a duplicate. */
    int unknown = 0;
    for (int i = 0; i < L.sent; i++) {
        int times = L.times_received[i];
        if (L.outcome[i] == ACCEPTED && times != 1)
            fail_msg("message %d got 202 and arrived %d times", i, times);
        if (L.outcome[i] != ACCEPTED && times != 0)
            fail_msg("message %d got no 202 (%s) and arrived %d times", i,
                     L.outcome[i] == UNKNOWN ? "no answer" : "refused", times);
        unknown += L.outcome[i] == UNKNOWN;
    }
    for (int i = L.sent; i < LOOP_MAX; i++)
        assert_int_equal(L.times_received[i], 0);
    print_message("restart loop: %d restarts, %d sent, %d accepted, %d without an answer, %d "
                  "received\n",
                  LOOP_RESTARTS, L.sent, L.accepted, unknown, L.received);
    assert_false(L.consumer_gave_up);
    assert_int_equal(L.out_of_order, 0);
    assert_int_equal(L.strangers, 0);
    pthread_cond_destroy(&L.changed);
    pthread_mutex_destroy(&L.lock);
}

/* The kill -9 burst: SENDERS threads post numbered messages to a durable
 * server, optionally with a consumer taking them, until it is killed. */
enum { SENDERS = 8, PER_SENDER = 1000, KILL_AFTER = 300 };
#define BURST_ID(sender, i) ((sender)*PER_SENDER + (i))

typedef struct burst {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int port;
    int accepted;
    unsigned char outcome[SENDERS * PER_SENDER];
    int before[SENDERS * PER_SENDER]; /* ids the consumer received before the kill */
    int before_count;
} burst;

typedef struct sender_arg {
    burst *b;
    int sender;
} sender_arg;

static void *burst_sender(void *arg)
{
    sender_arg *a = arg;
    burst *b = a->b;
    hs_server s = {.port = b->port};
    for (int i = 0; i < PER_SENDER; i++) {
        char body[32];
        int len = snprintf(body, sizeof body, "d%d-%04d", a->sender, i);
        hs_reply r;
        int rc = hs_post(&s, "/channels/burst", body, (size_t)len, "text/plain", &r);
        outcome o = rc != 0 ? UNKNOWN : r.status == 202 ? ACCEPTED : REFUSED;
        hs_reply_free(&r);
        pthread_mutex_lock(&b->lock);
        b->outcome[BURST_ID(a->sender, i)] = (unsigned char)o;
        b->accepted += o == ACCEPTED;
        pthread_cond_broadcast(&b->changed);
        pthread_mutex_unlock(&b->lock);
        if (o == UNKNOWN)
            break; /* killed */
    }
    return NULL;
}

/* The id in a "d<sender>-<i>" body, or -1. */
static int burst_id(const hs_reply *r)
{
    int sender, i;
    char end;
    if (r->len >= 16 || sscanf((const char *)r->body, "d%d-%d%c", &sender, &i, &end) != 2 ||
        sender < 0 || sender >= SENDERS || i < 0 || i >= PER_SENDER)
        return -1;
    return BURST_ID(sender, i);
}

static void *burst_consumer(void *arg)
{
    burst *b = arg;
    hs_server s = {.port = b->port};
    for (int n = 0; n < SENDERS * PER_SENDER; n++) {
        hs_reply r;
        int rc = hs_get(&s, "/channels/burst?wait=1", &r);
        int id = rc == 0 && r.status == 200 ? burst_id(&r) : -1;
        bool stop = rc != 0 || (r.status != 200 && r.status != 204);
        hs_reply_free(&r);
        if (stop)
            break; /* killed */
        if (id >= 0) {
            pthread_mutex_lock(&b->lock);
            b->before[b->before_count++] = id;
            pthread_mutex_unlock(&b->lock);
        }
    }
    return NULL;
}

static void kill_during_a_burst(const char *dir, bool consume)
{
    static burst b;
    memset(&b, 0, sizeof b);
    pthread_mutex_init(&b.lock, NULL);
    pthread_cond_init(&b.changed, NULL);
    const char *args[] = {"--durable", "--file-bytes", "16KiB", NULL};
    hs_server s;
    hs_start_in_ok(&s, dir, args);
    b.port = s.port;
    pthread_t senders[SENDERS], consumer;
    sender_arg sargs[SENDERS];
    for (int t = 0; t < SENDERS; t++) {
        sargs[t] = (sender_arg){&b, t};
        assert_int_equal(pthread_create(&senders[t], NULL, burst_sender, &sargs[t]), 0);
    }
    if (consume)
        assert_int_equal(pthread_create(&consumer, NULL, burst_consumer, &b), 0);

    double deadline = hs_now() + HS_PATIENCE_MS / 1000.0;
    pthread_mutex_lock(&b.lock);
    while (b.accepted < KILL_AFTER && hs_now() < deadline) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec++;
        pthread_cond_timedwait(&b.changed, &b.lock, &until);
    }
    pthread_mutex_unlock(&b.lock);
    long long syncs = hs_status_value(&s, "burst", "syncs_total");
    hs_stop_with(&s, SIGKILL);
    for (int t = 0; t < SENDERS; t++)
        pthread_join(senders[t], NULL);
    if (consume)
        pthread_join(consumer, NULL);
    assert_true(b.accepted >= KILL_AFTER);

    static unsigned char times[SENDERS * PER_SENDER];
    memset(times, 0, sizeof times);
    int last[SENDERS];
    for (int t = 0; t < SENDERS; t++)
        last[t] = -1;
    int duplicates = 0;
    /* what the consumer took before the kill, then what the restart has */
    for (int k = 0; k < b.before_count; k++) {
        int id = b.before[k];
        times[id]++;
        assert_true(id % PER_SENDER > last[id / PER_SENDER]);
        last[id / PER_SENDER] = id % PER_SENDER;
    }
    hs_start_in_ok(&s, dir, args);
    for (int n = 0; n <= SENDERS * PER_SENDER; n++) {
        hs_reply r;
        assert_int_equal(hs_get(&s, "/channels/burst?wait=0", &r), 0);
        long status = r.status;
        int id = status == 200 ? burst_id(&r) : -1;
        hs_reply_free(&r);
        if (status == 204)
            break;
        if (status != 200 || id < 0)
            fail_msg("after the restart: status %ld, id %d", status, id);
        if (times[id]++ > 0) {
            /* only the consumer's last message can have been on its way at
             * the kill: given to it, not yet marked consumed */
            duplicates++;
            if (!consume || b.before_count == 0 || id != b.before[b.before_count - 1])
                fail_msg("message d%d-%04d came twice", id / PER_SENDER, id % PER_SENDER);
        } else if (id % PER_SENDER <= last[id / PER_SENDER]) {
            fail_msg("message d%d-%04d came out of order", id / PER_SENDER, id % PER_SENDER);
        } else {
            last[id / PER_SENDER] = id % PER_SENDER;
        }
    }
    hs_stop_ok(&s);

    int accepted = 0, unknown = 0, unknown_arrived = 0;
    for (int id = 0; id < SENDERS * PER_SENDER; id++) {
        if (b.outcome[id] == ACCEPTED && times[id] == 0)
            fail_msg("message d%d-%04d got 202 and was lost", id / PER_SENDER, id % PER_SENDER);
        if (b.outcome[id] != ACCEPTED && b.outcome[id] != UNKNOWN && times[id] > 0)
            fail_msg("message d%d-%04d was never accepted, and came", id / PER_SENDER,
                     id % PER_SENDER);
        accepted += b.outcome[id] == ACCEPTED;
        unknown += b.outcome[id] == UNKNOWN;
        unknown_arrived += b.outcome[id] == UNKNOWN && times[id] > 0;
    }
    print_message("kill -9 %s a consumer: %d accepted (%lld syncs), %d received before the "
                  "kill, %d without an answer (%d of them arrived), %d came twice\n",
                  consume ? "with" : "without", accepted, syncs, b.before_count, unknown,
                  unknown_arrived, duplicates);
    assert_true(syncs > 0); /* --durable did sync */
    assert_true(duplicates <= 1);
    pthread_cond_destroy(&b.changed);
    pthread_mutex_destroy(&b.lock);
}

static void test_durable_kill_during_a_burst(void **state)
{
    kill_during_a_burst(*state, false);
}

static void test_durable_kill_while_consuming(void **state)
{
    kill_during_a_burst(*state, true);
}

/* Send SENT paging messages to channel, stop cleanly, and return the
 * queue files left. */
enum { DAMAGE_SENT = 40 };

static size_t fill_and_stop(const char *dir, const char *channel, char paths[][512], size_t max)
{
    const char *args[] = {PAGING_ARGS, NULL};
    hs_server s;
    hs_start_in_ok(&s, dir, args);
    for (int i = 0; i < DAMAGE_SENT; i++)
        post_message(&s, channel, i);
    hs_stop_ok(&s);
    size_t n = queue_files(dir, channel, paths, max);
    assert_true(n > 0);
    return n;
}

/* Start again and expect every message but lost, in order. */
static hs_server expect_all_but(const char *dir, const char *channel, int lost)
{
    const char *args[] = {PAGING_ARGS, NULL};
    hs_server s;
    hs_start_in_ok(&s, dir, args);
    for (int i = 0; i < DAMAGE_SENT; i++) {
        if (i != lost)
            expect_message(&s, channel, i);
    }
    hs_expect_nothing(&s, channel, "0", NULL);
    return s;
}

static void test_torn_tail_costs_one_message(void **state)
{
    const char *dir = *state;
    char paths[64][512];
    size_t files = fill_and_stop(dir, "torn", paths, 64);
    const char *newest = paths[files - 1];
    record_at records[256];
    size_t n = read_records(newest, records, 256);
    assert_true(n > 0);
    record_at last = records[n - 1];
    assert_true(last.message >= 0);
    /* cut the last record in the middle of its payload, as a crash can */
    assert_int_equal(truncate(newest, last.offset + RECORD_HEADER + last.len / 2), 0);

    hs_server s = expect_all_but(dir, "torn", last.message);
    if (!hs_log_wait(&s, "trunc", 0) && !hs_log_wait(&s, "torn", 0))
        fail_msg("the log does not mention the torn record of %s", newest);
    hs_stop_ok(&s);
}

static void test_flipped_byte_skips_one_message(void **state)
{
    const char *dir = *state;
    char paths[64][512];
    size_t files = fill_and_stop(dir, "flip", paths, 64);
    /* the file with the most records, and a record in its middle */
    record_at records[256], best[256];
    size_t best_n = 0, best_file = 0;
    for (size_t f = 0; f < files; f++) {
        size_t n = read_records(paths[f], records, 256);
        if (n > best_n) {
            memcpy(best, records, n * sizeof *records);
            best_n = n;
            best_file = f;
        }
    }
    assert_true(best_n >= 3);
    record_at victim = best[best_n / 2];
    assert_true(victim.message >= 0);
    FILE *f = fopen(paths[best_file], "r+b");
    assert_non_null(f);
    long at = victim.offset + RECORD_HEADER + victim.len / 2;
    assert_int_equal(fseek(f, at, SEEK_SET), 0);
    int c = fgetc(f);
    assert_int_equal(fseek(f, at, SEEK_SET), 0);
    fputc(c ^ 0x55, f);
    assert_int_equal(fclose(f), 0);

    hs_server s = expect_all_but(dir, "flip", victim.message);
    assert_int_equal(hs_metric_value(&s, "hopper_records_corrupt_total", "flip"), 1);
    hs_stop_ok(&s);
}

int main(void)
{
#define T(test) cmocka_unit_test_setup_teardown(test, hs_dir_setup, hs_dir_teardown)
    const struct CMUnitTest tests[] = {
        T(test_too_many_channels_refuse_the_start),
        T(test_channel_that_cannot_be_opened_refuses_the_start),
        T(test_memory_only_keeps_messages_across_a_stop),
        T(test_recovery_comes_before_the_listener),
        T(test_message_ids_survive_a_restart),
        /* these need the core's recovery */
        T(test_messages_survive_sigterm),
        T(test_restart_loop_under_load),
        T(test_durable_kill_during_a_burst),
        T(test_durable_kill_while_consuming),
        T(test_torn_tail_costs_one_message),
        T(test_flipped_byte_skips_one_message),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
