/* harness.c - start and stop the real hopper binary, run it to its exit,
 * its data directories and its log (see harness.h). The HTTP side is
 * harness_http.c, raw sockets harness_socket.c. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h> /* after the headers it needs */

#ifndef HOPPER_BIN
#error "HOPPER_BIN must name the hopper executable"
#endif

#define START_TIMEOUT_MS HS_PATIENCE_MS
#define STOP_TIMEOUT_MS 20000
#define RUN_TIMEOUT_MS HS_PATIENCE_MS

extern char **environ;

double hs_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

long hs_proc_status_kib(pid_t pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = strlen(field);
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            kib = strtol(line + n + 1, NULL, 10);
            break;
        }
    fclose(f);
    return kib;
}

/* ---- processes ---- */

/* Whether the environment entry entry ("NAME=value") sets the variable
 * of one of extra's entries. */
static bool set_in(const char *entry, const char *const *extra)
{
    size_t name_len = strcspn(entry, "=");
    for (size_t i = 0; extra && extra[i]; i++) {
        if (strncmp(extra[i], entry, name_len) == 0 && extra[i][name_len] == '=')
            return true;
    }
    return false;
}

/* environ without HOPPER_* and without the variables extra sets, then
 * extra: new array of borrowed strings. (A program sees the first of two
 * entries of a name: an inherited ASAN_OPTIONS would hide extra's.) */
static char **make_env(const char *const *extra)
{
    size_t n = 0, m = 0;
    while (environ[n])
        n++;
    while (extra && extra[m])
        m++;
    char **env = calloc(n + m + 1, sizeof *env);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(environ[i], "HOPPER_", 7) != 0 && !set_in(environ[i], extra))
            env[k++] = environ[i];
    }
    for (size_t i = 0; i < m; i++)
        env[k++] = (char *)extra[i];
    env[k] = NULL;
    return env;
}

/* argv: command..., HOPPER_BIN, pre..., args... (new array of borrowed
 * strings; each list NULL-terminated or NULL) */
static char **make_argv(const char *const *command, const char *const *pre, const char *const *args)
{
    const char *const *lists[] = {command, pre, args};
    size_t total = 2;
    for (size_t l = 0; l < 3; l++) {
        for (size_t i = 0; lists[l] && lists[l][i]; i++)
            total++;
    }
    char **argv = calloc(total, sizeof *argv);
    size_t k = 0;
    for (size_t l = 0; l < 3; l++) {
        if (l == 1)
            argv[k++] = (char *)HOPPER_BIN;
        for (size_t i = 0; lists[l] && lists[l][i]; i++)
            argv[k++] = (char *)lists[l][i];
    }
    return argv;
}

/* fork and exec with stdout and stderr into the pipe's write end. */
static pid_t spawn(char **argv, char **env, int out_fd)
{
    pid_t pid = fork();
    if (pid == 0) {
        /* a test that fails half-way (cmocka longjmps) leaves no server behind */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(out_fd, STDOUT_FILENO);
        dup2(out_fd, STDERR_FILENO);
        int null = open("/dev/null", O_RDONLY);
        if (null >= 0)
            dup2(null, STDIN_FILENO);
        execve(argv[0], argv, env);
        _exit(127);
    }
    return pid;
}

/* waitpid with a deadline; kills the child at the deadline. */
static int wait_exit(pid_t pid, int timeout_ms)
{
    int status = 0;
    double deadline = hs_now() + timeout_ms / 1000.0;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR)
            return -1;
        if (hs_now() > deadline) {
            fprintf(stderr, "harness: hopper (pid %d) did not exit in time; killing it\n",
                    (int)pid);
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        usleep(5000);
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    fprintf(stderr, "harness: hopper died of signal %d\n", WTERMSIG(status));
    return -1;
}

int hs_run_as(const char *const *command, const char *const *args, const char *const *env,
              int *exit_code, char **output)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    char **argv = make_argv(command, NULL, args);
    char **envp = make_env(env);
    pid_t pid = spawn(argv, envp, fds[1]);
    close(fds[1]);
    free(argv);
    free(envp);
    if (pid < 0) {
        close(fds[0]);
        return -1;
    }
    size_t cap = 65536;
    char *buf = malloc(cap);
    size_t len = hs_read_all(fds[0], buf, cap, RUN_TIMEOUT_MS);
    (void)len;
    close(fds[0]);
    *exit_code = wait_exit(pid, RUN_TIMEOUT_MS);
    *output = buf;
    return 0;
}

int hs_run(const char *const *args, const char *const *env, int *exit_code, char **output)
{
    return hs_run_as(NULL, args, env, exit_code, output);
}

/* What the forwarder needs, its own copy: the hs_server is the test's (on
 * its stack), and a failing assertion longjmps past hs_stop() and leaves
 * the forwarder running; reading through a pointer into that stack, it
 * took the next test's server output into the old log. */
typedef struct forward_arg {
    int err_fd;
    char log_path[512];
} forward_arg;

static void *forward_log(void *arg)
{
    forward_arg a = *(forward_arg *)arg;
    free(arg);
    int log = open(a.log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    char buf[4096];
    ssize_t n;
    while ((n = read(a.err_fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
        if (n > 0 && log >= 0 && write(log, buf, (size_t)n) != n)
            break;
    }
    if (log >= 0)
        close(log);
    return NULL;
}

/* Whether the server's log holds a sanitizer report ("WARNING:
 * ThreadSanitizer: data race", "ERROR: AddressSanitizer: ..."). */
static bool log_has_sanitizer_report(const hs_server *s)
{
    FILE *f = fopen(s->log_path, "r");
    if (f == NULL)
        return false;
    char line[1024];
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, "Sanitizer: ") != NULL;
    fclose(f);
    return found;
}

static void print_log(const hs_server *s)
{
    FILE *f = fopen(s->log_path, "r");
    if (f == NULL)
        return;
    fprintf(stderr, "---- %s ----\n", s->log_path);
    char line[1024];
    while (fgets(line, sizeof line, f))
        fputs(line, stderr);
    fprintf(stderr, "---- end ----\n");
    fclose(f);
}

/* Read the server's stderr into its log until the "listening on" line.
 * Returns the port, or -1. */
static int read_port(hs_server *s)
{
    int log = open(s->log_path, O_WRONLY | O_TRUNC | O_CREAT | O_CLOEXEC, 0644);
    char buf[8192];
    size_t len = 0;
    int port = -1;
    double deadline = hs_now() + START_TIMEOUT_MS / 1000.0;
    while (port < 0 && len < sizeof buf - 1) {
        int left = (int)((deadline - hs_now()) * 1000);
        struct pollfd p = {.fd = s->err_fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, left) <= 0)
            break;
        /* byte by byte: what follows the line is the forwarder's */
        ssize_t n = read(s->err_fd, buf + len, 1);
        if (n <= 0)
            break;
        if (log >= 0 && write(log, buf + len, 1) != 1)
            break;
        len++;
        buf[len] = '\0';
        if (buf[len - 1] != '\n')
            continue;
        const char *at = strstr(buf, "listening on ");
        if (at) {
            const char *colon = strrchr(at, ':');
            port = colon ? atoi(colon + 1) : -1;
        }
    }
    if (log >= 0)
        close(log);
    return port;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

int hs_mount_tmpfs(const char *dir, const char *name, const char *size, char *mnt, size_t mnt_size)
{
    char options[64];
    snprintf(options, sizeof options, "size=%s,mode=0700", size);
    snprintf(mnt, mnt_size, "%s/%s", dir, name);
    if (mkdir(mnt, 0700) != 0 || mount("tmpfs", mnt, "tmpfs", 0, options) != 0) {
        fprintf(stderr, "cannot mount a tmpfs at %s (%s): skipped\n", mnt, strerror(errno));
        return -1;
    }
    return 0;
}

void hs_remove_tree(const char *dir)
{
    if (dir[0])
        nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int hs_make_dir(char *dir, size_t size)
{
    snprintf(dir, size, "/tmp/hopper-test-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("harness: mkdtemp");
        return -1;
    }
    return 0;
}

/* Servers started and not yet stopped: a failing assertion longjmps past
 * hs_stop(), so what it leaves is killed and removed when the test exits. */
#define MAX_LIVE 64
static struct {
    pid_t pid;
    char dir[256];
} live[MAX_LIVE];

static void cleanup_live(void)
{
    for (int i = 0; i < MAX_LIVE; i++) {
        if (live[i].pid <= 0)
            continue;
        kill(live[i].pid, SIGKILL);
        waitpid(live[i].pid, NULL, 0);
        hs_remove_tree(live[i].dir);
        live[i].pid = 0;
    }
}

static void track(const hs_server *s)
{
    static bool registered;
    if (!registered) {
        atexit(cleanup_live);
        registered = true;
    }
    for (int i = 0; i < MAX_LIVE; i++) {
        if (live[i].pid <= 0) {
            live[i].pid = s->pid;
            snprintf(live[i].dir, sizeof live[i].dir, "%s", s->own_dir ? s->dir : "");
            return;
        }
    }
}

static void untrack(pid_t pid)
{
    for (int i = 0; i < MAX_LIVE; i++) {
        if (live[i].pid == pid)
            live[i].pid = 0;
    }
}

/* A test may hold a thousand raw connections at once (and curl's besides):
 * more than a soft limit of 1024 descriptors allows. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Start hopper on dir; own_dir: dir is ours to remove in hs_stop(). */
static int start(hs_server *s, const char *dir, bool own_dir, const char *const *args,
                 const char *const *env)
{
    static int serial;
    static pthread_once_t limit_once = PTHREAD_ONCE_INIT;
    pthread_once(&limit_once, raise_fd_limit);
    memset(s, 0, sizeof *s);
    s->pid = -1;
    s->err_fd = -1;
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    s->own_dir = own_dir;
    mkdir("logs", 0755);
    snprintf(s->log_path, sizeof s->log_path, "logs/%s-%d-%d.log", program_invocation_short_name,
             (int)getpid(), ++serial);

    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    const char *pre[] = {"--listen", "127.0.0.1:0", "--data-dir", s->dir, NULL};
    char **argv = make_argv(NULL, pre, args);
    char **envp = make_env(env);
    s->pid = spawn(argv, envp, fds[1]);
    close(fds[1]);
    free(argv);
    free(envp);
    s->err_fd = fds[0];
    if (s->pid < 0)
        return -1;
    track(s);
    s->port = read_port(s);
    pthread_t t;
    forward_arg *fa = malloc(sizeof *fa);
    if (fa) {
        fa->err_fd = s->err_fd;
        snprintf(fa->log_path, sizeof fa->log_path, "%s", s->log_path);
        if (pthread_create(&t, NULL, forward_log, fa) == 0) {
            s->forwarder = (unsigned long)t;
            s->forwarding = true;
        } else {
            free(fa);
        }
    }
    if (s->port <= 0) {
        fprintf(stderr, "harness: hopper did not report a port\n");
        hs_stop_with(s, SIGKILL);
        print_log(s); /* why it did not start */
        return -1;
    }
    return 0;
}

int hs_start_env(hs_server *s, const char *const *args, const char *const *env)
{
    char dir[sizeof s->dir];
    if (hs_make_dir(dir, sizeof dir) != 0)
        return -1;
    return start(s, dir, true, args, env);
}

int hs_start(hs_server *s, const char *const *args)
{
    return hs_start_env(s, args, NULL);
}

int hs_start_in(hs_server *s, const char *dir, const char *const *args)
{
    return start(s, dir, false, args, NULL);
}

int hs_start_in_env(hs_server *s, const char *dir, const char *const *args, const char *const *env)
{
    return start(s, dir, false, args, env);
}

int hs_stop_with(hs_server *s, int sig)
{
    int code = -1;
    if (s->pid > 0) {
        kill(s->pid, sig);
        code = wait_exit(s->pid, STOP_TIMEOUT_MS);
        untrack(s->pid);
        s->pid = -1;
    }
    if (s->forwarding) {
        pthread_join((pthread_t)s->forwarder, NULL);
        s->forwarding = false;
    }
    if (s->err_fd >= 0)
        close(s->err_fd);
    s->err_fd = -1;
    /* A sanitizer makes the exit code non-zero (TSan: 66 at exit), but a
     * server killed with SIGKILL never gets there: its report, printed when
     * the race happened, is in the log, and fails the test here. */
    bool killed_with_report = sig == SIGKILL && log_has_sanitizer_report(s);
    if ((code != 0 && sig != SIGKILL) || killed_with_report)
        print_log(s);
    else if (code == 0 && getenv("HOPPER_TEST_KEEP_LOGS") == NULL)
        unlink(s->log_path); /* clean run: nothing to look at */
    if (s->own_dir)
        hs_remove_tree(s->dir);
    s->dir[0] = '\0';
    if (killed_with_report)
        fail_msg("harness: a sanitizer report in hopper's log (printed above)");
    return code;
}

int hs_stop(hs_server *s)
{
    return hs_stop_with(s, SIGTERM);
}

bool hs_log_wait(hs_server *s, const char *text, int timeout_ms)
{
    double deadline = hs_now() + timeout_ms / 1000.0;
    do {
        FILE *f = fopen(s->log_path, "r");
        if (f) {
            char line[2048];
            bool found = false;
            while (!found && fgets(line, sizeof line, f))
                found = strstr(line, text) != NULL;
            fclose(f);
            if (found)
                return true;
        }
        usleep(10000);
    } while (hs_now() < deadline);
    return false;
}

int hs_dir_setup(void **state)
{
    char *dir = malloc(256);
    if (dir == NULL || hs_make_dir(dir, 256) != 0) {
        free(dir);
        return -1;
    }
    *state = dir;
    return 0;
}

int hs_dir_teardown(void **state)
{
    char mnt[300];
    snprintf(mnt, sizeof mnt, "%s/" HS_TMPFS_NAME, (const char *)*state);
    umount2(mnt, MNT_DETACH); /* a tmpfs of hs_mount_tmpfs() if any, first */
    hs_remove_tree(*state);
    free(*state);
    return 0;
}
