/* harness.c - start, stop and talk to the real hopper binary (see harness.h). */
#include "harness.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
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
#define REQUEST_TIMEOUT_MS 30000
#define EXPECT_100_TIMEOUT_MS 20000
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

/* environ without HOPPER_* plus extra: new array of borrowed strings. */
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
        if (strncmp(environ[i], "HOPPER_", 7) != 0)
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

/* ---- HTTP with libcurl ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

typedef struct growbuf {
    char *data;
    size_t len, cap;
} growbuf;

static size_t append(growbuf *b, const void *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (p == NULL)
            return 0;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    return append(userdata, ptr, size * nmemb);
}

typedef struct upload {
    const unsigned char *data;
    size_t len, off;
} upload;

static size_t on_read(char *buffer, size_t size, size_t nitems, void *userdata)
{
    upload *u = userdata;
    size_t n = size * nitems;
    if (n > u->len - u->off)
        n = u->len - u->off;
    if (n > 1000)
        n = 1000; /* several chunks */
    memcpy(buffer, u->data + u->off, n);
    u->off += n;
    return n;
}

static int perform(const hs_server *s, const char *method, const char *path, const void *body,
                   size_t len, const char *content_type, const char *const *extra_headers,
                   bool chunked, bool expect, hs_reply *out)
{
    pthread_once(&curl_once, curl_init);
    memset(out, 0, sizeof *out);
    CURL *c = curl_easy_init();
    if (c == NULL)
        return -1;
    char url[4096];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", s->port, path);
    growbuf data = {0}, headers = {0};
    struct curl_slist *hdrs = NULL;
    upload up = {body, len, 0};
    char type_header[1200];

    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(c, CURLOPT_PROXY, ""); /* straight to 127.0.0.1, whatever http_proxy says */
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)REQUEST_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_EXPECT_100_TIMEOUT_MS, (long)EXPECT_100_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &data);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &headers);
    /* no 100-continue round trip unless asked for */
    hdrs = curl_slist_append(hdrs, expect ? "Expect: 100-continue" : "Expect:");
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    if (body || chunked) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        if (chunked) {
            curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
            curl_easy_setopt(c, CURLOPT_READDATA, &up);
            hdrs = curl_slist_append(hdrs, "Transfer-Encoding: chunked");
        } else {
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        }
        if (content_type) {
            snprintf(type_header, sizeof type_header, "Content-Type: %s", content_type);
            hdrs = curl_slist_append(hdrs, type_header);
        } else {
            hdrs = curl_slist_append(hdrs, "Content-Type:"); /* drop curl's default */
        }
    }
    for (size_t i = 0; extra_headers && extra_headers[i]; i++)
        hdrs = curl_slist_append(hdrs, extra_headers[i]);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);

    double start = hs_now();
    CURLcode rc = curl_easy_perform(c);
    out->seconds = hs_now() - start;
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
        char *type = NULL;
        curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &type);
        if (type)
            snprintf(out->content_type, sizeof out->content_type, "%s", type);
        curl_off_t uploaded = 0;
        curl_easy_getinfo(c, CURLINFO_SIZE_UPLOAD_T, &uploaded);
        out->uploaded = (double)uploaded;
    } else {
        fprintf(stderr, "harness: %s %s: %s\n", method, path, curl_easy_strerror(rc));
    }
    if (data.data == NULL)
        append(&data, "", 0);
    out->body = (unsigned char *)data.data;
    out->len = data.len;
    out->headers = headers.data ? headers.data : strdup("");
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    return rc == CURLE_OK ? 0 : -1;
}

int hs_request(const hs_server *s, const char *method, const char *path, const void *body,
               size_t len, const char *content_type, hs_reply *out)
{
    return perform(s, method, path, body, len, content_type, NULL, false, false, out);
}

int hs_get(const hs_server *s, const char *path, hs_reply *out)
{
    return perform(s, "GET", path, NULL, 0, NULL, NULL, false, false, out);
}

int hs_post(const hs_server *s, const char *path, const void *body, size_t len,
            const char *content_type, hs_reply *out)
{
    return perform(s, "POST", path, body ? body : "", len, content_type, NULL, false, false, out);
}

int hs_post_headers(const hs_server *s, const char *path, const void *body, size_t len,
                    const char *content_type, const char *const *headers, hs_reply *out)
{
    return perform(s, "POST", path, body ? body : "", len, content_type, headers, false, false,
                   out);
}

int hs_post_chunked(const hs_server *s, const char *path, const void *body, size_t len,
                    hs_reply *out)
{
    return perform(s, "POST", path, body, len, "text/plain", NULL, true, false, out);
}

int hs_post_expect(const hs_server *s, const char *path, const void *body, size_t len,
                   hs_reply *out)
{
    return perform(s, "POST", path, body, len, "text/plain", NULL, false, true, out);
}

void hs_reply_free(hs_reply *r)
{
    free(r->body);
    free(r->headers);
    r->body = NULL;
    r->headers = NULL;
}

bool hs_header(const hs_reply *r, const char *name, char *out, size_t size)
{
    size_t n = strlen(name);
    for (const char *line = r->headers; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len > n && line[n] == ':' && strncasecmp(line, name, n) == 0) {
            const char *v = line + n + 1;
            while (*v == ' ')
                v++;
            size_t vlen = (size_t)(line + len - v);
            while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == ' '))
                vlen--;
            snprintf(out, size, "%.*s", (int)vlen, v);
            return true;
        }
        line = end ? end + 1 : NULL;
    }
    return false;
}

static void *pending_get_main(void *arg)
{
    hs_pending_get *g = arg;
    g->rc = hs_get(g->s, g->path, &g->reply);
    return NULL;
}

int hs_get_begin(hs_pending_get *g, const hs_server *s, const char *path)
{
    memset(g, 0, sizeof *g);
    g->s = s;
    g->rc = -1;
    snprintf(g->path, sizeof g->path, "%s", path);
    pthread_t t;
    if (pthread_create(&t, NULL, pending_get_main, g) != 0)
        return -1;
    g->thread = (unsigned long)t;
    return 0;
}

int hs_get_end(hs_pending_get *g)
{
    pthread_join((pthread_t)g->thread, NULL);
    return g->rc;
}

long hs_post_text(const hs_server *s, const char *channel, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "/channels/%s", channel);
    hs_reply r;
    long status = hs_post(s, path, text, strlen(text), "text/plain", &r) == 0 ? r.status : -1;
    hs_reply_free(&r);
    return status;
}

long hs_get_text(const hs_server *s, const char *channel, const char *wait, char *out, size_t size)
{
    char path[512];
    snprintf(path, sizeof path, "/channels/%s?wait=%s", channel, wait);
    hs_reply r;
    long status = hs_get(s, path, &r) == 0 ? r.status : -1;
    if (out && size)
        snprintf(out, size, "%.*s", (int)r.len, (const char *)r.body);
    hs_reply_free(&r);
    return status;
}

bool hs_is_error(const hs_reply *r, long status, const char *code)
{
    if (r->status != status) {
        fprintf(stderr, "expected status %ld, got %ld: %.*s\n", status, r->status, (int)r->len,
                (const char *)r->body);
        return false;
    }
    if (strncmp(r->content_type, "application/json", 16) != 0) {
        fprintf(stderr, "expected a JSON error, got Content-Type '%s'\n", r->content_type);
        return false;
    }
    json_error_t e;
    json_t *doc = json_loadb((const char *)r->body, r->len, 0, &e);
    const char *got = json_string_value(json_object_get(doc, "error"));
    bool ok = got && strcmp(got, code) == 0 && json_is_string(json_object_get(doc, "message"));
    if (!ok)
        fprintf(stderr, "expected error '%s', got body: %.*s\n", code, (int)r->len,
                (const char *)r->body);
    json_decref(doc);
    return ok;
}

long long hs_status_value(const hs_server *s, const char *channel, const char *field)
{
    hs_reply r;
    long long value = -1;
    if (hs_get(s, "/status", &r) == 0 && r.status == 200) {
        json_t *doc = json_loadb((const char *)r.body, r.len, 0, NULL);
        json_t *v =
            json_object_get(json_object_get(json_object_get(doc, "channels"), channel), field);
        if (json_is_integer(v))
            value = json_integer_value(v);
        json_decref(doc);
    }
    hs_reply_free(&r);
    return value;
}

long long hs_await_status_value(const hs_server *s, const char *channel, const char *field,
                                long long value, int timeout_ms)
{
    double deadline = hs_now() + timeout_ms / 1000.0;
    long long got;
    while ((got = hs_status_value(s, channel, field)) != value && hs_now() < deadline)
        usleep(10000);
    return got;
}

/* ---- raw sockets ---- */

int hs_local_port(int fd)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    if (getsockname(fd, (struct sockaddr *)&a, &len) != 0 || a.sin_family != AF_INET)
        return -1;
    return ntohs(a.sin_port);
}

/* How many of the ports still have a server end that has not seen the
 * client's FIN or RST: a line of /proc/net/tcp with local port server_port,
 * remote port one of them, in SYN_RECV (03), ESTABLISHED (01), FIN_WAIT1
 * (04) or FIN_WAIT2 (05). A reset socket leaves the table; a closed one
 * waits in CLOSE_WAIT (08) for the server to close it. */
static size_t server_ends_open(int server_port, const int *ports, size_t n)
{
    FILE *f = fopen("/proc/net/tcp", "r");
    if (f == NULL)
        return n;
    size_t open_ends = 0;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        unsigned local_port, remote_port, state;
        if (sscanf(line, " %*u: %*x:%x %*x:%x %x", &local_port, &remote_port, &state) != 3)
            continue; /* the header */
        bool unaware = state == 0x01 || state == 0x03 || state == 0x04 || state == 0x05;
        if ((int)local_port != server_port || !unaware)
            continue;
        for (size_t i = 0; i < n; i++) {
            if (ports[i] == (int)remote_port) {
                open_ends++;
                break;
            }
        }
    }
    fclose(f);
    return open_ends;
}

bool hs_await_server_saw_close(const hs_server *s, const int *client_ports, size_t n,
                               int timeout_ms)
{
    double deadline = hs_now() + timeout_ms / 1000.0;
    size_t open_ends;
    while ((open_ends = server_ends_open(s->port, client_ports, n)) > 0 && hs_now() < deadline)
        usleep(2000);
    if (open_ends > 0)
        fprintf(stderr, "harness: %zu of %zu closed connection(s) still open at the server\n",
                open_ends, n);
    return open_ends == 0;
}

int hs_connect(const hs_server *s)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int hs_get_stalled(const hs_server *s, const char *path, int *status)
{
    *status = -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char req[1200], head[64];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 || n >= (int)sizeof req ||
        send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        perror("harness: hs_get_stalled");
        close(fd);
        return -1;
    }
    size_t len = 0;
    while (len < 12) { /* "HTTP/1.1 200" */
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t got = poll(&p, 1, HS_PATIENCE_MS) == 1 ? recv(fd, head + len, 12 - len, 0) : -1;
        if (got <= 0) {
            fprintf(stderr, "harness: hs_get_stalled: no status line\n");
            close(fd);
            return -1;
        }
        len += (size_t)got;
    }
    head[len] = '\0';
    if (sscanf(head, "HTTP/1.1 %d", status) != 1)
        *status = -1;
    return fd;
}

void hs_reset(int fd)
{
    struct linger reset = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    close(fd);
}

size_t hs_read_all(int fd, char *buf, size_t size, int timeout_ms)
{
    size_t len = 0;
    double deadline = hs_now() + timeout_ms / 1000.0;
    while (len + 1 < size) {
        int left = (int)((deadline - hs_now()) * 1000);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, left) <= 0)
            break;
        ssize_t n = read(fd, buf + len, size - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    return len;
}

int hs_read_response(int fd, char *buf, size_t size, int timeout_ms, const char **body)
{
    size_t len = 0;
    double deadline = hs_now() + timeout_ms / 1000.0;
    buf[0] = '\0';
    *body = buf;
    while (len + 1 < size) {
        const char *end = strstr(buf, "\r\n\r\n");
        if (end) {
            const char *cl = strcasestr(buf, "\r\nContent-Length:");
            size_t want = cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
            if (len >= (size_t)(end + 4 - buf) + want) {
                int status = -1;
                *body = end + 4;
                return sscanf(buf, "HTTP/1.1 %d", &status) == 1 ? status : -1;
            }
        }
        int left = (int)((deadline - hs_now()) * 1000);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, left > 0 ? left : 0) <= 0)
            break;
        ssize_t n = read(fd, buf + len, size - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
    }
    return -1;
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
    hs_remove_tree(*state);
    free(*state);
    return 0;
}
