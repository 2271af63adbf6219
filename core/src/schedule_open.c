/* schedule_open.c - a channel's schedule made at open from the delay files
 * in its directory (of this version or version 1: see delay_file.c), and
 * freed at close. */
#include "schedule_open.h"

#include "alloc.h"
#include "budget.h"
#include "log.h"
#include "schedule.h"
#include "schedule_index.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <unistd.h>

/* A delay file found at open: counted, or removed when handed on whole.
 * Files of a version this library does not read are left alone. s->lock
 * not needed (open). */
static hop_err adopt(hop__schedule *s, const char *name, hop__delay_id id)
{
    hop__delay_scan scan;
    if (hop__delay_file_scan(s->dirfd, id, &scan) != HOP_OK) {
        if (errno != EINVAL)
            return HOP_IO;
        hop__log(HOP_LOG_WARN, s->ch->name, "delay file %s of another format: left alone", name);
        return HOP_OK;
    }
    if (scan.corrupt)
        hop__log(HOP_LOG_WARN, s->ch->name, "%s: %" PRIu64 " corrupt record(s) will be skipped",
                 name, scan.corrupt);
    if (scan.done) {
        hop__delay_file_unlink(s->dirfd, id);
        return HOP_OK;
    }
    hop__sfile f = {
        .id = id,
        .records = scan.records,
        .bytes = scan.size,
        .mark = scan.mark,
        .low = scan.low,
        .next_due = scan.next_due,
        .last_due = scan.last_due,
        .counted_to = scan.size,
        .sorted = scan.sorted,
    };
    if (!hop__array_push(&s->files, &f, sizeof f))
        return HOP_NOMEM;
    hop__budget_disk_charge(s->ch->limits.budget, scan.size);
    s->corrupt += scan.corrupt; /* counted now: reading them again does not count */
    s->records += scan.records;
    s->bytes += scan.size;
    return HOP_OK;
}

static hop_err adopt_all(hop__schedule *s)
{
    int fd = dup(s->dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return HOP_IO;
    }
    rewinddir(d);
    hop_err err = HOP_OK;
    struct dirent *e;
    hop__delay_id id;
    while (err == HOP_OK && (e = readdir(d)) != NULL)
        if (hop__delay_file_parse_name(e->d_name, &id))
            err = adopt(s, e->d_name, id);
    int saved = errno;
    closedir(d);
    errno = saved;
    return err;
}

static void schedule_free(hop__schedule *s)
{
    hop__budget_disk_release(s->ch->limits.budget, s->bytes);
    hop__array_release(&s->files);
    pthread_cond_destroy(&s->handed);
    pthread_mutex_destroy(&s->lock);
    hop__free(s);
}

hop_err hop__schedule_open(hop_channel *ch)
{
    if (ch->disk.dirfd < 0)
        return HOP_OK;
    hop__schedule *s = hop__calloc(1, sizeof *s);
    if (s == NULL)
        return HOP_NOMEM;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->handed, NULL);
    s->ch = ch;
    s->dirfd = ch->disk.dirfd;
    s->entry.run = hop__schedule_run;
    s->entry.arg = s;
    hop_err err = adopt_all(s);
    if (err == HOP_OK && s->files.count > 0 && !hop__schedule_register(s))
        err = HOP_NOMEM;
    if (err != HOP_OK) {
        int saved = errno;
        schedule_free(s);
        errno = saved;
        return err;
    }
    if (s->records)
        hop__log(HOP_LOG_INFO, ch->name, "recovered %" PRIu64 " delayed message(s)", s->records);
    pthread_mutex_lock(&s->lock);
    hop__schedule_reschedule(s);
    pthread_mutex_unlock(&s->lock);
    ch->schedule = s;
    return HOP_OK;
}

void hop__schedule_close(hop_channel *ch)
{
    hop__schedule *s = ch->schedule;
    if (s == NULL)
        return;
    if (s->registered)
        hop__scheduler_remove(&s->entry);
    ch->schedule = NULL;
    schedule_free(s);
}
