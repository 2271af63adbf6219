/* fuzz_queue_file.c - libFuzzer harness of the recovery of a channel
 * directory: queue files (record.c framing, queue_file.c reading) and the
 * consumed journal (journal.c), as persist.c finds them at open. A data
 * directory with a damaged file is untrusted input.
 *
 * Input: pieces separated by SEPARATOR. Piece 0 is written as
 * consumed.hqc (left out when empty), each further piece as a queue file,
 * named after the seq of its file header when that header is valid and the
 * name is not taken yet (so a real directory packed this way opens as it
 * was), else after a number of its own. At most MAX_FILES files.
 *
 * Each run: write the directory, hop_channel_open() it, hop_recv() with
 * timeout 0 until empty, hop_free() each message, close; open again, which
 * must find nothing (everything was consumed), close, remove the directory.
 * Checked besides crashes, leaks (LSan), hangs and UB:
 *   - every message handed out is the payload of a record of the input
 *     whose magic, header crc, length and payload crc are all valid: bytes
 *     that failed their checksum are never delivered;
 *   - no more messages than such records;
 *   - open and close succeed (damage is skipped, not fatal), and hop_recv()
 *     fails only with HOP_IO/EIO, its way of saying a damaged record was
 *     skipped, and stops when the records are read;
 *   - the second open holds no message. */
#include "channel.h"
#include "journal.h"
#include "queue_file.h"
#include "record.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SEPARATOR "HOPFUZZ/"
#define MAX_FILES 16
#define FIRST_SEQ ((uint64_t)1 << 62)
#define CHANNEL "ch"

static char data_dir[256];
static char chan_dir[300];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Abort with a message: libFuzzer reports it as a crash and keeps the input. */
static void fail(const char *what)
{
    fprintf(stderr, "fuzz_queue_file: %s\n", what);
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    if (getenv("HOPPER_FUZZ_LOG") == NULL)
        hop_set_log(NULL, NULL); /* damage is logged at every run: too loud */
    /* tmpfs when there is one: the channel syncs its journal at every open */
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(data_dir, sizeof data_dir, "%s/hopper-fuzz-XXXXXX", base);
    if (mkdtemp(data_dir) == NULL)
        fail("mkdtemp");
    snprintf(chan_dir, sizeof chan_dir, "%s/%s", data_dir, CHANNEL);
    return 0;
}

static void remove_channel_dir(void)
{
    DIR *d = opendir(chan_dir);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            unlinkat(dirfd(d), e->d_name, 0);
    closedir(d);
    if (rmdir(chan_dir) != 0)
        fail("rmdir of the channel directory");
}

static void write_file(const char *name, const uint8_t *p, size_t n)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s", chan_dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || write(fd, p, n) != (ssize_t)n || close(fd) != 0)
        fail("writing an input file");
}

static bool seq_taken(const uint64_t *used, size_t n, uint64_t seq)
{
    for (size_t i = 0; i < n; i++)
        if (used[i] == seq)
            return true;
    return false;
}

typedef struct piece {
    const uint8_t *p;
    size_t n;
} piece;

/* Split data at SEPARATOR into at most 1 + MAX_FILES pieces (the last one
 * takes the rest). Returns the count. */
static size_t split(const uint8_t *data, size_t size, piece *out)
{
    size_t count = 0, sep = strlen(SEPARATOR);
    const uint8_t *p = data, *end = data + size;
    while (count < MAX_FILES) {
        const uint8_t *s = memmem(p, (size_t)(end - p), SEPARATOR, sep);
        if (s == NULL)
            break;
        out[count++] = (piece){p, (size_t)(s - p)};
        p = s + sep;
    }
    out[count++] = (piece){p, (size_t)(end - p)};
    return count;
}

/* True if msg[0..len) is the payload of a fully valid record somewhere in
 * one of the files. */
static bool is_valid_record(const piece *files, size_t nfiles, const void *msg, size_t len)
{
    for (size_t f = 0; f < nfiles; f++) {
        const uint8_t *p = files[f].p;
        size_t n = files[f].n;
        for (size_t off = 0; off + HOP__RECORD_HEADER_SIZE <= n; off++) {
            uint32_t rlen, crc;
            if (!hop__record_header_decode(p + off, &rlen, &crc) || rlen != len ||
                n - off - HOP__RECORD_HEADER_SIZE < rlen)
                continue;
            const uint8_t *payload = p + off + HOP__RECORD_HEADER_SIZE;
            if (hop__record_verify(crc, payload, rlen) && memcmp(payload, msg, len) == 0)
                return true;
        }
    }
    return false;
}

/* Records with a valid header and payload anywhere in the files: an upper
 * bound of what may be delivered. */
static size_t count_valid_records(const piece *files, size_t nfiles)
{
    size_t count = 0;
    for (size_t f = 0; f < nfiles; f++) {
        const uint8_t *p = files[f].p;
        size_t n = files[f].n;
        for (size_t off = 0; off + HOP__RECORD_HEADER_SIZE <= n; off++) {
            uint32_t rlen, crc;
            if (hop__record_header_decode(p + off, &rlen, &crc) &&
                n - off - HOP__RECORD_HEADER_SIZE >= rlen &&
                hop__record_verify(crc, p + off + HOP__RECORD_HEADER_SIZE, rlen))
                count++;
        }
    }
    return count;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    piece pieces[1 + MAX_FILES];
    size_t npieces = split(data, size, pieces);
    const piece *files = pieces + 1;
    size_t nfiles = npieces - 1;

    if (mkdir(chan_dir, 0700) != 0)
        fail("mkdir of the channel directory");
    if (pieces[0].n > 0)
        write_file(HOP__JOURNAL_NAME, pieces[0].p, pieces[0].n);
    uint64_t used[MAX_FILES];
    for (size_t i = 0; i < nfiles; i++) {
        uint64_t seq;
        if (files[i].n < HOP__FILE_HEADER_SIZE || !hop__file_header_decode(files[i].p, &seq) ||
            seq_taken(used, i, seq)) {
            seq = FIRST_SEQ + 1000 + i;
            while (seq_taken(used, i, seq))
                seq++;
        }
        used[i] = seq;
        char name[HOP__QFILE_NAME_SIZE];
        hop__qfile_name(seq, name);
        write_file(name, files[i].p, files[i].n);
    }

    hop_limits limits;
    hop_limits_default(&limits);
    hop_channel *ch;
    if (hop_channel_open(data_dir, CHANNEL, &limits, &ch) != HOP_OK)
        fail("open of a damaged directory failed");
    size_t delivered = 0, bound = count_valid_records(files, nfiles);
    /* a damaged record found by the reader is skipped with one HOP_IO
     * (EIO), so each call moves on by a record of 16 bytes or more */
    size_t calls_left = size / HOP__RECORD_HEADER_SIZE + 2;
    for (;;) {
        void *msg;
        size_t len;
        if (calls_left-- == 0)
            fail("hop_recv goes on after every record was read");
        hop_err err = hop_recv(ch, 0, &msg, &len);
        if (err == HOP_TIMEOUT)
            break;
        if (err == HOP_IO && errno == EIO)
            continue;
        if (err != HOP_OK) {
            fprintf(stderr, "hop_recv: %s\n", hop_err_name(err));
            fail("hop_recv failed");
        }
        if (!is_valid_record(files, nfiles, msg, len))
            fail("delivered bytes that are not a valid record of the input");
        hop_free(msg);
        if (++delivered > bound)
            fail("delivered more messages than the input has valid records");
    }
    if (hop_channel_close(ch) != HOP_OK)
        fail("close failed");

    /* everything was consumed: a second open must hand nothing out */
    if (hop_channel_open(data_dir, CHANNEL, &limits, &ch) != HOP_OK)
        fail("second open failed");
    void *msg;
    size_t len;
    if (hop_recv(ch, 0, &msg, &len) != HOP_TIMEOUT)
        fail("a consumed message came again after a clean close");
    if (hop_channel_close(ch) != HOP_OK)
        fail("second close failed");
    remove_channel_dir();
    return 0;
}
