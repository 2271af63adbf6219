/* datadir.c - the data directory's rules, its lock and its channel list (see
 * datadir.h). Everything here runs once, at start, before any thread. */
#include "datadir.h"

#include "graveyard.h"
#include "reserve.h"

#include "hopper/hopper.h"
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define LAYOUT_PREFIX "hopper data directory, layout "
#define STRINGIFY(x) #x
#define TEXT_OF(x) STRINGIFY(x)
#define LOCK_LINE LAYOUT_PREFIX TEXT_OF(DATADIR_LAYOUT)
/* The probe's name has a '+', which no channel name may have. */
#define PROBE_NAME "hopper+probe"
#define LOST_AND_FOUND "lost+found"

/* Names of directory entries, growing as needed. */
typedef struct name_list {
    char **names;
    size_t count, cap;
} name_list;

static struct {
    const char *path;
    int lock_fd;
    name_list channels;
} dd = {.lock_fd = -1};

static bool name_list_add(name_list *l, const char *name)
{
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **names = realloc(l->names, cap * sizeof *names);
        if (names == NULL)
            return false;
        l->names = names;
        l->cap = cap;
    }
    if ((l->names[l->count] = strdup(name)) == NULL)
        return false;
    l->count++;
    return true;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void name_list_sort(name_list *l)
{
    if (l->count > 1)
        qsort(l->names, l->count, sizeof *l->names, by_name);
}

static void name_list_free(name_list *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->names[i]);
    free(l->names);
    *l = (name_list){0};
}

/* mkdir -p path: parents 0755, path itself 0700 (it will hold messages).
 * False with errno set. */
static bool make_dirs(const char *path)
{
    char *p = strdup(path);
    if (p == NULL)
        return false;
    for (size_t n = strlen(p); n > 1 && p[n - 1] == '/';)
        p[--n] = '\0'; /* "dir/" is dir, and gets dir's mode */
    bool ok = true;
    for (char *slash = p + 1; ok && *slash; slash++) {
        if (*slash != '/')
            continue;
        *slash = '\0';
        ok = mkdir(p, 0755) == 0 || errno == EEXIST;
        *slash = '/';
    }
    ok = ok && (mkdir(p, 0700) == 0 || errno == EEXIST);
    int saved = errno;
    free(p);
    errno = saved;
    return ok;
}

/* Log that what (in the data directory; NULL for the directory itself)
 * belongs to owner, not to us. */
static void log_wrong_owner(const char *what, uid_t owner)
{
    unsigned me = (unsigned)geteuid();
    if (what == NULL)
        log_error("--data-dir %s is owned by uid %u, but hopper runs as uid %u: run hopper as "
                  "uid %u, or give the directory to uid %u (chown -R %u %s)",
                  dd.path, (unsigned)owner, me, (unsigned)owner, me, me, dd.path);
    else
        log_error("channel directory %s/%s is owned by uid %u, but hopper runs as uid %u: give "
                  "it to uid %u (chown -R %u %s/%s) or move it out of --data-dir",
                  dd.path, what, (unsigned)owner, me, me, me, dd.path, what);
}

/* Log why writing in the data directory failed (doing: what hopper was
 * writing), in words that say what to do about it. */
static void log_write_error(const char *doing, int err)
{
    switch (err) {
    case ENOSPC:
        log_error("no space left on device in --data-dir %s (%s): free some space", dd.path, doing);
        break;
    case EDQUOT:
        log_error("disk quota exceeded in --data-dir %s (%s): free some space or raise the quota",
                  dd.path, doing);
        break;
    case EROFS:
        log_error("--data-dir %s is on a read-only file system (%s): mount it read-write or "
                  "choose another --data-dir",
                  dd.path, doing);
        break;
    case EACCES:
    case EPERM:
        log_error("--data-dir %s is not writable by uid %u (%s: %s): let that user write "
                  "there (chmod u+rwx) or choose another --data-dir",
                  dd.path, (unsigned)geteuid(), doing, strerror(err));
        break;
    default:
        log_error("cannot write in --data-dir %s (%s): %s", dd.path, doing, strerror(err));
        break;
    }
}

/* What the scan found. */
typedef struct scan {
    bool has_lock;
    name_list channels; /* channel directories */
    name_list foreign;  /* everything else that is not ours */
} scan;

/* Sort the entries of dirfd into s. False (logged) if the directory cannot
 * be read or memory runs out. */
static bool scan_entries(int dirfd, scan *s)
{
    int fd = dup(dirfd); /* closedir() closes the descriptor it is given */
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        log_error("cannot read --data-dir %s: %s", dd.path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return false;
    }
    bool ok = true;
    struct dirent *e;
    while (ok && (errno = 0, e = readdir(d)) != NULL) {
        const char *name = e->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        /* lstat: a symbolic link is not a channel directory, whatever it
         * points at; what cannot be examined counts as foreign */
        struct stat st;
        bool known = fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
        bool is_dir = known && S_ISDIR(st.st_mode);
        bool is_file = known && S_ISREG(st.st_mode);
        if (is_file && strcmp(name, DATADIR_LOCK_NAME) == 0)
            s->has_lock = true;
        else if ((is_file && strcmp(name, PROBE_NAME) == 0) ||
                 (is_file && strcmp(name, RESERVE_NAME) == 0) ||
                 (is_dir && strcmp(name, LOST_AND_FOUND) == 0))
            continue; /* a probe left by a crash, our reserve; the file system's own */
        else if (is_dir && graveyard_holds(name))
            graveyard_remove(dd.path, name); /* a DELETE the last stop cut short */
        else if (is_dir && hop_name_valid(name) && !datadir_name_reserved(name))
            ok = name_list_add(&s->channels, name);
        else
            ok = name_list_add(&s->foreign, name);
    }
    if (ok && errno != 0) {
        log_error("cannot read --data-dir %s: %s", dd.path, strerror(errno));
        ok = false;
    } else if (!ok) {
        log_error("out of memory");
    }
    closedir(d);
    name_list_sort(&s->channels);
    name_list_sort(&s->foreign);
    return ok;
}

/* Rules 2 and 3 for the entries: foreign entries refuse a directory
 * without the lock file and are ignored in one with it; every channel
 * directory must be ours. */
static bool check_entries(int dirfd, const scan *s)
{
    if (!s->has_lock && s->foreign.count > 0) {
        log_error("--data-dir %s is not empty and has no %s, so it is not a hopper data "
                  "directory: '%s' is neither a channel directory nor lost+found. Nothing was "
                  "changed; choose an empty or new --data-dir",
                  dd.path, DATADIR_LOCK_NAME, s->foreign.names[0]);
        return false;
    }
    for (size_t i = 0; i < s->foreign.count; i++)
        log_warn("--data-dir %s: ignoring '%s', which is not a channel directory", dd.path,
                 s->foreign.names[i]);
    for (size_t i = 0; i < s->channels.count; i++) {
        struct stat st;
        const char *name = s->channels.names[i];
        if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            log_error("cannot examine channel directory %s/%s: %s", dd.path, name, strerror(errno));
            return false;
        }
        if (st.st_uid != geteuid()) {
            log_wrong_owner(name, st.st_uid);
            return false;
        }
    }
    if (!s->has_lock && s->channels.count > 0)
        log_info("--data-dir %s has %zu channel director%s and no %s (an earlier hopper): "
                 "adopting it",
                 dd.path, s->channels.count, s->channels.count == 1 ? "y" : "ies",
                 DATADIR_LOCK_NAME);
    return true;
}

/* The lock file fd is held: give it its line if it is empty (new, or left
 * empty by a crash), else check that its first line is LOCK_LINE. */
static bool check_layout(int fd)
{
    char text[128];
    ssize_t n = pread(fd, text, sizeof text - 1, 0);
    if (n < 0) {
        log_error("cannot read %s/%s: %s", dd.path, DATADIR_LOCK_NAME, strerror(errno));
        return false;
    }
    if (n == 0) {
        static const char line[] = LOCK_LINE "\n";
        errno = ENOSPC; /* the cause of a short write */
        if (pwrite(fd, line, sizeof line - 1, 0) != (ssize_t)(sizeof line - 1)) {
            log_write_error("writing " DATADIR_LOCK_NAME, errno);
            return false;
        }
        return true;
    }
    text[n] = '\0';
    text[strcspn(text, "\n")] = '\0';
    if (strcmp(text, LOCK_LINE) == 0)
        return true;
    if (strncmp(text, LAYOUT_PREFIX, strlen(LAYOUT_PREFIX)) == 0)
        log_error("--data-dir %s has %s, layout %s, which this hopper (%s, layout %d) cannot "
                  "read: run the hopper version that wrote it",
                  dd.path, DATADIR_LOCK_NAME, text + strlen(LAYOUT_PREFIX), HOP_VERSION,
                  DATADIR_LAYOUT);
    else
        log_error("%s/%s is not a hopper lock file (it begins '%.40s'): choose another "
                  "--data-dir",
                  dd.path, DATADIR_LOCK_NAME, text);
    return false;
}

/* Rule 4: open (creating it unless it exists) and flock the lock file,
 * keeping its descriptor in dd.lock_fd. A lock file this call created is
 * removed again if anything fails. */
static bool take_lock(int dirfd, bool exists)
{
    bool created = false;
    int fd = -1;
    if (!exists) {
        fd = openat(dirfd, DATADIR_LOCK_NAME, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                    0600);
        created = fd >= 0;
        exists = fd < 0 && errno == EEXIST; /* another hopper starting at the same moment */
    }
    if (exists)
        fd = openat(dirfd, DATADIR_LOCK_NAME, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        log_write_error(exists ? "opening " DATADIR_LOCK_NAME : "creating " DATADIR_LOCK_NAME,
                        errno);
        return false;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            log_error("data dir is in use by another hopper (pid unknown): %s/%s is locked; "
                      "stop that hopper, or give this one another --data-dir",
                      dd.path, DATADIR_LOCK_NAME);
        else
            log_error("cannot lock %s/%s: %s", dd.path, DATADIR_LOCK_NAME, strerror(errno));
        close(fd); /* a file this call created stays: the other hopper holds it */
        return false;
    }
    if (!check_layout(fd)) {
        if (created)
            unlinkat(dirfd, DATADIR_LOCK_NAME, 0);
        close(fd);
        return false;
    }
    dd.lock_fd = fd;
    return true;
}

/* Rule 5. */
static bool probe_writes(int dirfd)
{
    static const char page[DATADIR_PROBE_BYTES];
    const char *doing = "writing a probe file";
    int fd = openat(dirfd, PROBE_NAME, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        log_write_error(doing, errno);
        return false;
    }
    int err = 0;
    for (size_t done = 0; done < sizeof page && err == 0;) {
        ssize_t n = write(fd, page + done, sizeof page - done);
        if (n > 0)
            done += (size_t)n;
        else if (n == 0)
            err = ENOSPC;
        else if (errno != EINTR)
            err = errno;
    }
    if (err == 0 && fdatasync(fd) != 0) {
        err = errno;
        doing = "syncing a probe file";
    }
    close(fd);
    unlinkat(dirfd, PROBE_NAME, 0);
    if (err != 0) {
        log_write_error(doing, err);
        return false;
    }
    return true;
}

bool datadir_open(const char *path)
{
    dd.path = path;
    if (!make_dirs(path)) {
        log_error("cannot create --data-dir %s: %s", path, strerror(errno));
        return false;
    }
    int dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        log_error("cannot open --data-dir %s: %s", path, strerror(errno));
        return false;
    }
    struct stat st;
    scan s = {0};
    bool ok = fstat(dirfd, &st) == 0;
    if (!ok) {
        log_error("cannot examine --data-dir %s: %s", path, strerror(errno));
    } else if (st.st_uid != geteuid()) {
        log_wrong_owner(NULL, st.st_uid);
        ok = false;
    }
    ok = ok && scan_entries(dirfd, &s) && check_entries(dirfd, &s) &&
         take_lock(dirfd, s.has_lock) && probe_writes(dirfd);
    close(dirfd);
    name_list_free(&s.foreign);
    dd.channels = s.channels;
    if (!ok)
        datadir_close();
    return ok;
}

size_t datadir_channels(const char *const **names)
{
    *names = (const char *const *)dd.channels.names;
    return dd.channels.count;
}

bool datadir_name_reserved(const char *name)
{
    return strcmp(name, DATADIR_LOCK_NAME) == 0;
}

void datadir_close(void)
{
    if (dd.lock_fd >= 0)
        close(dd.lock_fd); /* releases the flock */
    dd.lock_fd = -1;
    name_list_free(&dd.channels);
}
