/* delay_util.c - see delay_util.h. */
#include "delay_util.h"

#include "io.h"

#include <dirent.h>
#include <stdatomic.h>
#include <string.h>

static _Atomic uint64_t now_ms;

static uint64_t moved_clock(void *arg)
{
    (void)arg;
    return atomic_load(&now_ms);
}

uint64_t du_now(void)
{
    return atomic_load(&now_ms);
}

void du_move_to(uint64_t ms)
{
    atomic_store(&now_ms, DU_BASE + ms);
    hop_clock_moved();
}

int du_setup(void **state)
{
    atomic_store(&now_ms, DU_BASE);
    hop_set_clock(moved_clock, NULL);
    return tu_dir_setup(state);
}

int du_teardown(void **state)
{
    hop__io_set(NULL);
    hop_set_clock(NULL, NULL);
    return tu_dir_teardown(state);
}

void du_recv_text(hop_channel *ch, const char *text)
{
    void *data;
    size_t len;
    hop_err err = hop_recv(ch, 0, &data, &len);
    if (err != HOP_OK)
        fail_msg("expected \"%s\", got %s", text, hop_err_name(err));
    if (len != strlen(text) || memcmp(data, text, len) != 0)
        fail_msg("expected \"%s\", got \"%.*s\"", text, (int)len, (char *)data);
    hop_free(data);
}

void du_recv_none(hop_channel *ch)
{
    void *data;
    size_t len;
    assert_int_equal(hop_recv(ch, 0, &data, &len), HOP_TIMEOUT);
}

int du_count_delay_files(const tu_dir *d)
{
    DIR *dir = opendir(d->chan);
    assert_non_null(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL)
        n += strncmp(e->d_name, "delay-", 6) == 0;
    closedir(dir);
    return n;
}
