/* schedule_purge.c - a channel's delayed messages all dropped at once
 * (hop_purge()): their delay files removed and the index emptied. */
#include "schedule_purge.h"

#include "budget.h"
#include "schedule_index.h"

#include <errno.h>

/* True while a hand-on works on a file of s (it drops s->lock while it
 * hands a batch on, and finds its file's entry again after). s->lock
 * held. */
static bool handing_on(const hop__schedule *s)
{
    const hop__sfile *f = s->files.items;
    for (size_t i = 0; i < s->files.count; i++)
        if (f[i].promoting)
            return true;
    return false;
}

hop_err hop__schedule_purge(hop_channel *ch, uint64_t *dropped)
{
    *dropped = 0;
    hop__schedule *s = ch->schedule;
    if (s == NULL)
        return HOP_OK;
    pthread_mutex_lock(&s->lock);
    while (handing_on(s)) /* the entry it comes back to must still be there */
        pthread_cond_wait(&s->handed, &s->lock);
    hop_err err = HOP_OK;
    while (s->files.count > 0) {
        hop__sfile *f = (hop__sfile *)s->files.items + s->files.count - 1;
        if (hop__delay_file_unlink(s->dirfd, f->id) != 0 && errno != ENOENT) {
            hop__schedule_io_error(ch, "removing delay file");
            err = HOP_IO;
            break;
        }
        *dropped += f->records;
        s->records -= f->records;
        s->bytes -= f->bytes;
        hop__budget_disk_release(ch->limits.budget, f->bytes);
        hop__sfile_drop(s, f);
    }
    s->retry_at = 0;
    hop__schedule_reschedule(s);
    int saved = errno;
    pthread_mutex_unlock(&s->lock);
    errno = saved;
    return err;
}
