/* test_util.c - helpers shared by the core tests (see test_util.h). */
#include "test_util.h"

#include "queue_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void tu_tmpdir(char path[PATH_MAX])
{
    const char *base = getenv("TMPDIR");
    if (base == NULL || base[0] == '\0')
        base = "/tmp";
    snprintf(path, PATH_MAX, "%s/hopper-core-XXXXXX", base);
    if (mkdtemp(path) == NULL) {
        perror("mkdtemp");
        abort();
    }
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void tu_rmtree(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void tu_join(char out[PATH_MAX], const char *path, const char *name)
{
    if (snprintf(out, PATH_MAX, "%s/%s", path, name) >= PATH_MAX)
        abort(); /* test paths are short */
}

int tu_list_qfiles(const char *dir, uint64_t *seqs, uint64_t *sizes, int max)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        uint64_t seq;
        if (!hop__qfile_parse_name(e->d_name, &seq) || n >= max)
            continue;
        /* insertion sort: listings are short */
        int i = n++;
        while (i > 0 && seqs[i - 1] > seq) {
            seqs[i] = seqs[i - 1];
            i--;
        }
        seqs[i] = seq;
    }
    closedir(d);
    if (sizes) {
        for (int i = 0; i < n; i++) {
            char name[HOP__QFILE_NAME_SIZE], path[PATH_MAX];
            struct stat st;
            hop__qfile_name(seqs[i], name);
            tu_join(path, dir, name);
            sizes[i] = stat(path, &st) == 0 ? (uint64_t)st.st_size : UINT64_MAX;
        }
    }
    return n;
}

/* Entries of dir whose names keep says yes to; -1 if dir cannot be read. */
static int count_entries(const char *dir, bool (*keep)(const char *name))
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += keep(e->d_name);
    closedir(d);
    return n;
}

static bool is_qfile(const char *name)
{
    return strlen(name) == 23 && strcmp(name + 20, ".hq") == 0;
}

static bool is_entry(const char *name)
{
    return strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

int tu_count_qfiles(const char *dir)
{
    return count_entries(dir, is_qfile);
}

int tu_count_entries(const char *dir)
{
    return count_entries(dir, is_entry);
}

uint64_t tu_dir_bytes(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    uint64_t total = 0;
    struct dirent *e;
    struct stat st;
    while ((e = readdir(d)) != NULL)
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
            total += (uint64_t)st.st_size;
    closedir(d);
    return total;
}

bool tu_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

void tu_write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, data, len) != (ssize_t)len) {
        perror(path);
        abort();
    }
    close(fd);
}

void tu_flip_byte(const char *path, uint64_t offset, unsigned char mask)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    unsigned char b;
    if (fd < 0 || pread(fd, &b, 1, (off_t)offset) != 1) {
        perror(path);
        abort();
    }
    b ^= mask;
    if (pwrite(fd, &b, 1, (off_t)offset) != 1) {
        perror(path);
        abort();
    }
    close(fd);
}

static uint64_t mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

void tu_fill(void *buf, size_t len, uint64_t key)
{
    unsigned char *p = buf;
    uint64_t state = mix(key ^ ((uint64_t)len << 40));
    for (size_t i = 0; i < len; i++) {
        if (i % 8 == 0)
            state = mix(state);
        p[i] = (unsigned char)(state >> (8 * (i % 8)));
    }
}

bool tu_check(const void *buf, size_t len, uint64_t key)
{
    const unsigned char *p = buf;
    uint64_t state = mix(key ^ ((uint64_t)len << 40));
    for (size_t i = 0; i < len; i++) {
        if (i % 8 == 0)
            state = mix(state);
        if (p[i] != (unsigned char)(state >> (8 * (i % 8))))
            return false;
    }
    return true;
}

void tu_fill_id(void *buf, size_t len, uint64_t id)
{
    unsigned char *p = buf;
    if (len < 8) {
        tu_fill(p, len, id);
        return;
    }
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(id >> (8 * i));
    tu_fill(p + 8, len - 8, id);
}

uint64_t tu_id_of(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    if (len < 8)
        return UINT64_MAX;
    uint64_t id = 0;
    for (int i = 0; i < 8; i++)
        id |= (uint64_t)p[i] << (8 * i);
    return tu_check(p + 8, len - 8, id) ? id : UINT64_MAX;
}

uint64_t tu_rand(tu_rng *r)
{
    r->s += 0x9E3779B97F4A7C15ull;
    uint64_t z = r->s;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t tu_range(tu_rng *r, uint64_t lo, uint64_t hi)
{
    if (hi <= lo)
        return lo;
    uint64_t span = hi - lo + 1;
    return span == 0 ? tu_rand(r) : lo + tu_rand(r) % span;
}

int64_t tu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tu_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- captured log ---- */

#define LOG_KEEP 64

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_lines[LOG_KEEP][512];
static int log_lines_n;

static void log_capture(void *arg, hop_log_level level, const char *channel, const char *message)
{
    (void)arg;
    (void)level;
    (void)channel;
    pthread_mutex_lock(&log_lock);
    if (log_lines_n < LOG_KEEP)
        snprintf(log_lines[log_lines_n++], sizeof log_lines[0], "%s", message);
    if (getenv("HOPPER_TEST_LOG"))
        fprintf(stderr, "hopper log: %s\n", message);
    pthread_mutex_unlock(&log_lock);
}

void tu_log_capture(void)
{
    pthread_mutex_lock(&log_lock);
    log_lines_n = 0;
    pthread_mutex_unlock(&log_lock);
    hop_set_log(log_capture, NULL);
}

bool tu_log_contains(const char *needle)
{
    bool found = false;
    pthread_mutex_lock(&log_lock);
    for (int i = 0; i < log_lines_n && !found; i++)
        found = strstr(log_lines[i], needle) != NULL;
    pthread_mutex_unlock(&log_lock);
    return found;
}

hop_limits tu_limits(size_t memory_bytes, size_t file_bytes, size_t max_disk_files,
                     size_t max_message_bytes)
{
    hop_limits l = {
        .memory_bytes = memory_bytes,
        .file_bytes = file_bytes,
        .max_disk_files = max_disk_files,
        .max_message_bytes = max_message_bytes,
    };
    return l;
}

int tu_dir_setup(void **state)
{
    tu_dir *d = calloc(1, sizeof *d);
    if (d == NULL)
        return -1;
    tu_tmpdir(d->data);
    tu_join(d->chan, d->data, "ch");
    tu_log_capture();
    *state = d;
    return 0;
}

int tu_dir_teardown(void **state)
{
    tu_dir *d = *state;
    if (d) {
        tu_rmtree(d->data);
        free(d);
    }
    return 0;
}

hop_channel *tu_open(const tu_dir *d, hop_limits l)
{
    hop_channel *ch = NULL;
    hop_err err = hop_channel_open(d->data, "ch", &l, &ch);
    if (err != HOP_OK)
        fail_msg("open: %s (errno %d)", hop_err_name(err), errno);
    return ch;
}

hop_stats tu_stats(hop_channel *ch)
{
    hop_stats s;
    memset(&s, 0xA5, sizeof s);
    hop_channel_stats(ch, &s);
    return s;
}
