/* harness.h - drive the real hopper binary in tests: start it on a free
 * loopback port with a fresh data directory (or again on the one an earlier
 * run left), talk to it with libcurl or raw sockets, stop it with a signal
 * and check how it exited.
 *
 * Everything goes to 127.0.0.1 only, and every call is bounded in time. */
#ifndef HOPPER_TESTS_SERVER_HARNESS_H
#define HOPPER_TESTS_SERVER_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* How long a test waits at most for something that must happen: a count in
 * /status, a line in the log, a response that is due. It only bounds a
 * hang: the waits return as soon as the condition holds, so a passing test
 * never waits this long, however slow or loaded the machine is (ASan, CI
 * running other tests beside). Never use a sleep to let the server "catch
 * up": wait for what it is meant to have done. */
#define HS_PATIENCE_MS 30000

/* 1 when this file is compiled with AddressSanitizer or ThreadSanitizer
 * (and so, in this build, the server too): its memory is then the
 * sanitizer's, shadow and quarantine, not what the server's code uses.
 * GCC says so with __SANITIZE_*__, clang with __has_feature(). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HS_UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define HS_UNDER_SANITIZER 1
#endif
#endif
#ifndef HS_UNDER_SANITIZER
#define HS_UNDER_SANITIZER 0
#endif

typedef struct hs_server {
    pid_t pid;
    int port;
    char dir[256];      /* its --data-dir */
    bool own_dir;       /* dir is hs_start()'s temporary one, removed by hs_stop() */
    char log_path[512]; /* everything the server wrote to stderr */
    int err_fd;         /* read end of its stderr */
    bool forwarding;
    unsigned long forwarder; /* pthread_t of the stderr -> log file thread */
} hs_server;

/* Start hopper --listen 127.0.0.1:0 --data-dir <new temp dir> followed by
 * args (NULL-terminated, may be NULL), with the extra environment entries
 * env ("NAME=value", NULL-terminated, may be NULL; inherited HOPPER_*
 * variables are dropped, and an entry of env replaces the inherited
 * variable of its name). Waits for its "listening on" line to learn the
 * port. 0 on success; -1 with the reason (and the server's output)
 * printed. */
int hs_start(hs_server *s, const char *const *args);
int hs_start_env(hs_server *s, const char *const *args, const char *const *env);

/* Start hopper as hs_start() does, but on dir: a data directory that the
 * caller made and removes (hs_make_dir(), hs_remove_tree()). hs_stop()
 * leaves it as the server left it, so the next hs_start_in() on it sees
 * what a restart sees. A "--listen" in args wins over 127.0.0.1:0, so a
 * restart can take the port the first run was given. */
int hs_start_in(hs_server *s, const char *dir, const char *const *args);
/* hs_start_in() with extra environment entries, as hs_start_env(). */
int hs_start_in_env(hs_server *s, const char *dir, const char *const *args, const char *const *env);

/* A new empty directory /tmp/hopper-test-XXXXXX; dir has room for 64
 * characters at least. 0, or -1 with the reason printed. */
int hs_make_dir(char *dir, size_t size);
/* Remove dir and everything below it (rm -rf); "" does nothing. */
void hs_remove_tree(const char *dir);

/* Send sig (SIGTERM in hs_stop) and wait up to 20 s for the exit. Returns the
 * exit code, or -1 if it died of a signal or had to be killed. Removes the
 * data directory if it is hs_start()'s temporary one. Prints the server log
 * when the exit code is not 0, and removes it when it is 0 (unless
 * HOPPER_TEST_KEEP_LOGS is set). */
int hs_stop(hs_server *s);
int hs_stop_with(hs_server *s, int sig);

/* True once the server log holds text, polling up to timeout_ms. */
bool hs_log_wait(hs_server *s, const char *text, int timeout_ms);

/* A response. body is NUL-terminated beyond len for convenience. */
typedef struct hs_reply {
    long status;
    unsigned char *body;
    size_t len;
    char content_type[1200]; /* "" when absent */
    char *headers;           /* the raw header block */
    double seconds;          /* time the request took */
    double uploaded;         /* body bytes curl sent */
} hs_reply;
void hs_reply_free(hs_reply *r);
/* The value of header name (case-insensitive) into out; false if absent. */
bool hs_header(const hs_reply *r, const char *name, char *out, size_t size);
/* How many header lines of r are named name (case-insensitive). */
size_t hs_header_count(const hs_reply *r, const char *name);

/* One request over a fresh connection. path includes any query and is sent
 * as is (no dot-segment squashing). body may be NULL (no body); for POST a
 * NULL content_type sends none. 0 on a transport success (any status). */
int hs_request(const hs_server *s, const char *method, const char *path, const void *body,
               size_t len, const char *content_type, hs_reply *out);
int hs_get(const hs_server *s, const char *path, hs_reply *out);
int hs_post(const hs_server *s, const char *path, const void *body, size_t len,
            const char *content_type, hs_reply *out);
/* POST with more request headers: headers is NULL-terminated, each entry a
 * curl header line ("Name: value"; "Name;" sends Name with an empty value). */
int hs_post_headers(const hs_server *s, const char *path, const void *body, size_t len,
                    const char *content_type, const char *const *headers, hs_reply *out);
/* method path with more request headers (as hs_post_headers()); body may
 * be NULL (no body). */
int hs_request_headers(const hs_server *s, const char *method, const char *path, const void *body,
                       size_t len, const char *content_type, const char *const *headers,
                       hs_reply *out);
/* POST with "Expect: 100-continue": the body is sent only if the server
 * asks for it. curl waits 20 s for the "100 Continue", not its default 1 s,
 * so a server that neither answers nor asks shows in r.uploaded and
 * r.seconds however slow the machine is. */
int hs_post_expect(const hs_server *s, const char *path, const void *body, size_t len,
                   hs_reply *out);
/* hs_post_expect() with more request headers (as hs_post_headers()). */
int hs_post_expect_headers(const hs_server *s, const char *path, const void *body, size_t len,
                           const char *const *headers, hs_reply *out);
/* POST with Transfer-Encoding: chunked (no Content-Length). */
int hs_post_chunked(const hs_server *s, const char *path, const void *body, size_t len,
                    hs_reply *out);

/* A GET on a thread of its own, for a request that waits (a long poll)
 * while the test goes on. hs_get_begin() starts it (0, or -1 if no thread
 * could be made); hs_get_end() waits for it to finish, bounded as every
 * request is, and returns what hs_get() returned; the reply is g->reply
 * (the caller frees it). */
typedef struct hs_pending_get {
    const hs_server *s;
    char path[1024];
    hs_reply reply;
    int rc;
    unsigned long thread; /* pthread_t */
} hs_pending_get;
int hs_get_begin(hs_pending_get *g, const hs_server *s, const char *path);
int hs_get_end(hs_pending_get *g);

/* Shorthands that return the status (-1 on transport failure). */
long hs_post_text(const hs_server *s, const char *channel, const char *text);
/* GET /channels/<channel>?wait=<wait>; the body is copied into out (NUL-
 * terminated, truncated to size). */
long hs_get_text(const hs_server *s, const char *channel, const char *wait, char *out, size_t size);

/* True if r is status with the JSON error body {"error": code, "message":
 * <string>} and Content-Type application/json; prints what differs. */
bool hs_is_error(const hs_reply *r, long status, const char *code);

/* A number from GET /status: channels.<channel>.<field>; -1 if absent. */
long long hs_status_value(const hs_server *s, const char *channel, const char *field);
/* Poll GET /status until channels.<channel>.<field> is value, up to
 * timeout_ms. Returns the last value seen (value on success). */
long long hs_await_status_value(const hs_server *s, const char *channel, const char *field,
                                long long value, int timeout_ms);
/* The value of the /metrics sample name{channel="<channel>"} (channel
 * NULL: the sample without labels); -1 if absent. */
long long hs_metric_value(const hs_server *s, const char *name, const char *channel);
/* GET /status: budget.<field> as an integer; -1 if absent. */
long long hs_budget_value(const hs_server *s, const char *field);

/* Mount a tmpfs of size (a mount option, "16k") at dir/name, a new
 * directory. 0, or -1 where mounting is not allowed (said on stderr: the
 * caller skips). OUT: mnt. Unmount with umount2(mnt, MNT_DETACH);
 * hs_dir_teardown() unmounts <dir>/HS_TMPFS_NAME. */
#define HS_TMPFS_NAME "mnt"
int hs_mount_tmpfs(const char *dir, const char *name, const char *size, char *mnt, size_t mnt_size);

/* A TCP socket connected to the server; -1 on failure. */
int hs_connect(const hs_server *s);
/* The local port of the connected socket fd; -1 on failure. */
int hs_local_port(int fd);
/* Wait up to timeout_ms until the server's kernel has taken in the close
 * (FIN) or reset (RST) of each of the n client connections whose local
 * ports are given: the server's end is in CLOSE_WAIT or gone from
 * /proc/net/tcp. Only then can the server know the client is gone; before,
 * a response written to it counts as delivered. True when all have. */
bool hs_await_server_saw_close(const hs_server *s, const int *client_ports, size_t n,
                               int timeout_ms);
/* Read from fd until the peer closes or timeout_ms pass; returns bytes read
 * into buf (NUL-terminated). */
size_t hs_read_all(int fd, char *buf, size_t size, int timeout_ms);

/* Read one HTTP response from fd (headers, then Content-Length bytes of
 * body) into buf, NUL-terminated, waiting up to timeout_ms. Returns its
 * status, or -1. OUT: *body, where the body starts in buf. */
int hs_read_response(int fd, char *buf, size_t size, int timeout_ms, const char **body);

/* Send a raw GET of path over a connection whose receive window is small
 * (set before connecting) and read until the status line of the response
 * has come: a body larger than the kernel's buffers can then not have been
 * written whole, so closing now (hs_reset) cuts it short. Returns the
 * socket, or -1 with the reason printed. OUT: *status, the response's. */
int hs_get_stalled(const hs_server *s, const char *path, int *status);
/* Close fd with a reset (RST) instead of a FIN. */
void hs_reset(int fd);
/* True once the server has closed fd (end of file or a reset), within
 * timeout_ms; anything it sent before is read and dropped. */
bool hs_closed_by_server(int fd, int timeout_ms);
/* Send all of text on fd, which must succeed (cmocka). */
void hs_send_all(int fd, const char *text);

/* Run hopper with args and env (as for hs_start_env, but nothing is added)
 * and wait up to HS_PATIENCE_MS. OUT: *exit_code (-1 if killed), *output
 * (stdout and stderr together; new, free()). 0 if it ran. */
int hs_run(const char *const *args, const char *const *env, int *exit_code, char **output);
/* hs_run with command (NULL-terminated, its first element an absolute path)
 * in front of the hopper command line: a program that runs it, such as
 * setpriv running it as another user. */
int hs_run_as(const char *const *command, const char *const *args, const char *const *env,
              int *exit_code, char **output);

/* Seconds of CLOCK_MONOTONIC. */
double hs_now(void);

/* A KiB field of /proc/PID/status, e.g. "VmRSS" or "VmHWM" (the peak RSS
 * so far); -1 if unreadable. */
long hs_proc_status_kib(pid_t pid, const char *field);

/* cmocka setup and teardown: *state is a new directory (a char[256] path)
 * for servers started with hs_start_in(), removed with all in it after
 * (a tmpfs mounted at <dir>/HS_TMPFS_NAME unmounted first). */
int hs_dir_setup(void **state);
int hs_dir_teardown(void **state);

/* ---- assertions (harness_expect.c) ----
 * These check with cmocka: when what they check does not hold they fail
 * the test with a message that says what differed (after freeing the
 * reply they held); they return only when it all held. A request they
 * send must get an answer. */

/* hs_start(), hs_start_env(), hs_start_in(), hs_start_in_env() that must
 * start the server. */
void hs_start_ok(hs_server *s, const char *const *args);
void hs_start_env_ok(hs_server *s, const char *const *args, const char *const *env);
void hs_start_in_ok(hs_server *s, const char *dir, const char *const *args);
void hs_start_in_env_ok(hs_server *s, const char *dir, const char *const *args,
                        const char *const *env);
/* hs_stop() that must see the exit code 0. */
void hs_stop_ok(hs_server *s);
/* SIGTERM; the server's log must then hold line (what the shutdown
 * reports) and the exit code be 0. */
void hs_stop_saying(hs_server *s, const char *line);

/* POST text (text/plain) to /channels/<channel>: the status must be status. */
void hs_expect_post(const hs_server *s, const char *channel, const char *text, long status);
/* POST body[0..len) with Content-Type content_type (NULL: none) to
 * /channels/<channel>: the status must be status. */
void hs_expect_post_bytes(const hs_server *s, const char *channel, const void *body, size_t len,
                          const char *content_type, long status);
/* POST body[0..len) with content_type to path: the JSON error of status
 * and code (hs_is_error). */
void hs_expect_post_error(const hs_server *s, const char *path, const void *body, size_t len,
                          const char *content_type, long status, const char *code);
/* GET /channels/<channel>?wait=<wait>: 200 with exactly text as body. */
void hs_expect_get(const hs_server *s, const char *channel, const char *wait, const char *text);
/* GET /channels/<channel>?wait=0: 200 with exactly body[0..len), and
 * Content-Type content_type unless that is NULL. */
void hs_expect_message(const hs_server *s, const char *channel, const void *body, size_t len,
                       const char *content_type);
/* GET /channels/<channel>?wait=<wait>, with &lease=<lease> unless lease is
 * NULL: 204, nothing to hand out. */
void hs_expect_nothing(const hs_server *s, const char *channel, const char *wait,
                       const char *lease);
/* method path without a body: the status must be status. */
void hs_expect_request(const hs_server *s, const char *method, const char *path, long status);
/* method path without a body: the JSON error of status and code. */
void hs_expect_error(const hs_server *s, const char *method, const char *path, long status,
                     const char *code);
/* hs_await_status_value() with HS_PATIENCE_MS that must see value. */
void hs_await_status_ok(const hs_server *s, const char *channel, const char *field,
                        long long value);

/* A waiting GET, with hs_pending_get: hs_get_begin() that must start its
 * thread; then wait until channel counts n waiting GETs (g's among them),
 * and if it does not, end g and fail; hs_get_end() whose GET must have
 * been answered with status. g->reply is then the caller's to free. */
void hs_get_begin_ok(hs_pending_get *g, const hs_server *s, const char *path);
void hs_get_await_waiting(hs_pending_get *g, const char *channel, long long n);
void hs_get_end_ok(hs_pending_get *g, long status);

/* ---- leases (harness_expect.c) ---- */

/* A receipt is HS_RECEIPT_LEN lowercase hex digits. */
#define HS_RECEIPT_LEN 32
bool hs_is_receipt(const char *text);
/* The Hopper-Delivery-Count of r; -1 if absent or not a number. */
long hs_delivery_count(const hs_reply *r);
/* A message id (Hopper-Message-Id) is HS_MESSAGE_ID_LEN lowercase hex
 * digits, as a receipt is. */
#define HS_MESSAGE_ID_LEN 32
bool hs_is_message_id(const char *text);
/* The Hopper-Message-Id of r into id; it must be there, exactly once, and
 * be a message id (else the test fails, r freed). */
void hs_expect_message_id(hs_reply *r, char id[HS_MESSAGE_ID_LEN + 1]);
/* GET /channels/<channel>?wait=<wait>, with &lease=<lease> unless lease is
 * NULL, into out (the caller frees it); it must be answered. Returns the
 * status. */
long hs_get_leased(const hs_server *s, const char *channel, const char *wait, const char *lease,
                   hs_reply *out);
/* Take the next message of channel under a lease (hs_get_leased): it must
 * be 200 with body (text), Content-Type content_type (NULL: not checked),
 * handed out for the count-th time, with a receipt, copied to receipt
 * (may be NULL). */
void hs_expect_leased(const hs_server *s, const char *channel, const char *wait, const char *lease,
                      const char *body, const char *content_type, long count,
                      char receipt[HS_RECEIPT_LEN + 1]);
/* method on /channels/<channel>/messages/<receipt>, followed by
 * /<action> unless action is NULL (it may carry a query), into out (the
 * caller frees it); it must be answered. Returns the status. */
long hs_on_receipt(const hs_server *s, const char *method, const char *channel, const char *receipt,
                   const char *action, hs_reply *out);
/* Acknowledge (DELETE), release (POST .../release) or extend (POST
 * .../extend?lease=<lease>) a receipt: the status must be status and,
 * unless code is NULL, the JSON error code; a 204 has no body. */
void hs_expect_ack(const hs_server *s, const char *channel, const char *receipt, long status,
                   const char *code);
void hs_expect_release(const hs_server *s, const char *channel, const char *receipt, long status,
                       const char *code);
void hs_expect_extend(const hs_server *s, const char *channel, const char *receipt,
                      const char *lease, long status, const char *code);

#endif
