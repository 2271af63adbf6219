/* test_auth.c - bearer tokens (--auth-file, server/auth.c) against the real
 * server: every route class refuses no token (401), a wrong token (401
 * invalid_token) and a token without its scope (403), and lets the right
 * one through, by a glob scope and by an exact one; /healthz and /readyz
 * stay public; /whoami; --public-metrics; SIGHUP reloads (a good file, a
 * bad one); a malformed file stops the start with exit 2 naming its line;
 * "hopper token"; a refused POST stores nothing and is refused before its
 * body is sent; no token ever reaches the log. */
#include "harness.h"

#include "auth_file.h"
#include "hex.h"

#include <jansson.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

/* The tokens of the file most tests use, each lacking one thing. */
#define T_ALL "tok-all"               /* every scope */
#define T_NO_SEND "tok-no-send"       /* all but send */
#define T_NO_RECEIVE "tok-no-receive" /* all but receive */
#define T_NO_ADMIN "tok-no-admin"     /* all but admin */
#define T_NO_METRICS "tok-no-metrics" /* all but metrics */
#define T_JOBS "tok-jobs"             /* jobs* only: a glob */
#define T_ORDERS "tok-orders"         /* orders only: exact */
#define T_METRICS "tok-metrics"       /* metrics only */
#define T_WRONG "tok-unknown"         /* in no file */

static const struct {
    const char *token, *scopes;
} standard[] = {
    {T_ALL, "send:* receive:* admin:* metrics"},
    {T_NO_SEND, "receive:* admin:* metrics"},
    {T_NO_RECEIVE, "send:* admin:* metrics"},
    {T_NO_ADMIN, "send:* receive:* metrics"},
    {T_NO_METRICS, "send:* receive:* admin:*"},
    {T_JOBS, "send:jobs* receive:jobs*   admin:jobs*  # a glob"},
    {T_ORDERS, "send:orders\treceive:orders admin:orders"},
    {T_METRICS, "metrics"},
};

/* "HEX SCOPES\n" for token into line. */
static void file_line(const char *token, const char *scopes, char *line, size_t size)
{
    uint8_t digest[AUTH_DIGEST_SIZE];
    auth_digest(token, strlen(token), digest);
    char hex[2 * AUTH_DIGEST_SIZE + 1];
    hex_encode(digest, sizeof digest, hex);
    snprintf(line, size, "%s %s\n", hex, scopes);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* The standard file at dir/auth (path out). */
static void write_standard(const char *dir, char *path, size_t size)
{
    char text[4096] = "# tokens of test_auth.c\n\n", line[512];
    for (size_t i = 0; i < sizeof standard / sizeof standard[0]; i++) {
        file_line(standard[i].token, standard[i].scopes, line, sizeof line);
        strcat(text, line);
    }
    snprintf(path, size, "%s/auth", dir);
    write_file(path, text);
}

/* dir/data, made if missing (static: one at a time). */
static const char *data_dir(const char *dir)
{
    static char data[600];
    snprintf(data, sizeof data, "%s/data", dir);
    mkdir(data, 0700);
    return data;
}

/* Start the server in dir (state) with the standard file and more args. */
static void start_standard(hs_server *s, const char *dir, const char *extra)
{
    char path[512];
    write_standard(dir, path, sizeof path);
    const char *args[] = {"--auth-file", path, extra, NULL};
    hs_start_in_ok(s, data_dir(dir), args);
}

/* method path (body: a small text for a POST) with token (NULL: none). */
static void request(const hs_server *s, const char *method, const char *path, const char *token,
                    hs_reply *r)
{
    char header[256];
    snprintf(header, sizeof header, "Authorization: Bearer %s", token ? token : "");
    const char *headers[] = {header, NULL};
    bool post_to_channel = strcmp(method, "POST") == 0 && strncmp(path, "/channels/", 10) == 0 &&
                           strpbrk(path + 10, "/?") == NULL;
    const char *body = post_to_channel ? "payload" : NULL;
    assert_int_equal(hs_request_headers(s, method, path, body, body ? strlen(body) : 0,
                                        body ? "text/plain" : NULL, token ? headers : NULL, r),
                     0);
}

/* method path with token must be answered status (and code, unless NULL). */
static void expect_status(const hs_server *s, const char *method, const char *path,
                          const char *token, long status, const char *code)
{
    hs_reply r;
    request(s, method, path, token, &r);
    bool ok = code ? hs_is_error(&r, status, code) : r.status == status;
    if (!ok) {
        long got = r.status;
        hs_reply_free(&r);
        fail_msg("%s %s with %s: %ld, expected %ld %s", method, path, token ? token : "no token",
                 got, status, code ? code : "");
    }
    char value[128] = "";
    bool has = hs_header(&r, "WWW-Authenticate", value, sizeof value);
    hs_reply_free(&r);
    if (status == 401 && token == NULL)
        assert_string_equal(value, "Bearer");
    else if (status == 401)
        assert_string_equal(value, "Bearer error=\"invalid_token\"");
    else
        assert_false(has);
}

/* The refusals of method path: no token, a wrong one, and each token of
 * lacking (NULL-terminated), which lack its scope. */
static void expect_refusals(const hs_server *s, const char *method, const char *path,
                            const char *const *lacking)
{
    expect_status(s, method, path, NULL, 401, "unauthorized");
    expect_status(s, method, path, T_WRONG, 401, "invalid_token");
    expect_status(s, method, path, "", 401, "invalid_token"); /* "Bearer " and nothing */
    for (size_t i = 0; lacking[i]; i++)
        expect_status(s, method, path, lacking[i], 403, "forbidden");
}

#define FAKE_RECEIPT "0123456789abcdef0123456789abcdef"

/* Every route of a channel: refused without its scope, on channel name. */
static void refusals_of_channel(const hs_server *s, const char *name)
{
    const char *no_send[] = {T_NO_SEND, T_METRICS, T_ORDERS, NULL};
    const char *no_receive[] = {T_NO_RECEIVE, T_METRICS, T_ORDERS, NULL};
    const char *no_admin[] = {T_NO_ADMIN, T_METRICS, T_ORDERS, NULL};
    char path[256];
    snprintf(path, sizeof path, "/channels/%s", name);
    expect_refusals(s, "POST", path, no_send);
    expect_refusals(s, "GET", path, no_receive);
    expect_refusals(s, "DELETE", path, no_admin);
    static const struct {
        const char *method, *suffix;
        int scope; /* 0 receive, 1 admin */
    } actions[] = {
        {"GET", "/messages?max=5", 0},
        {"GET", "?wait=0&max=3", 0},
        {"DELETE", "/messages/" FAKE_RECEIPT, 0},
        {"POST", "/messages/" FAKE_RECEIPT "/extend?lease=5", 0},
        {"POST", "/messages/" FAKE_RECEIPT "/release", 0},
        {"DELETE", "/messages", 1},
        {"POST", "/redrive", 1},
        {"POST", "/pause", 1},
        {"POST", "/resume", 1},
    };
    for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++) {
        snprintf(path, sizeof path, "/channels/%s%s", name, actions[i].suffix);
        expect_refusals(s, actions[i].method, path, actions[i].scope ? no_admin : no_receive);
    }
}

/* The receipt of a leased GET of name with token. */
static void lease_one(const hs_server *s, const char *name, const char *token, char *receipt)
{
    char path[256];
    snprintf(path, sizeof path, "/channels/%s?wait=0&lease=30", name);
    hs_reply r;
    request(s, "GET", path, token, &r);
    assert_int_equal(r.status, 200);
    assert_true(hs_header(&r, "Hopper-Receipt", receipt, HS_RECEIPT_LEN + 1));
    hs_reply_free(&r);
}

/* Every route of channel name, in an order where each succeeds, with
 * token: all pass. */
static void allowed_on_channel(const hs_server *s, const char *name, const char *token)
{
    char path[256], receipt[HS_RECEIPT_LEN + 1];
#define AT(suffix) (snprintf(path, sizeof path, "/channels/%s%s", name, suffix), path)
    expect_status(s, "POST", AT(""), token, 202, NULL);
    expect_status(s, "GET", AT("/messages"), token, 200, NULL);
    lease_one(s, name, token, receipt);
    char action[128];
    snprintf(action, sizeof action, "/messages/%s/extend?lease=30", receipt);
    expect_status(s, "POST", AT(action), token, 204, NULL);
    snprintf(action, sizeof action, "/messages/%s/release", receipt);
    expect_status(s, "POST", AT(action), token, 204, NULL);
    lease_one(s, name, token, receipt);
    snprintf(action, sizeof action, "/messages/%s", receipt);
    expect_status(s, "DELETE", AT(action), token, 204, NULL);
    expect_status(s, "GET", AT("?wait=0"), token, 204, NULL);
    expect_status(s, "POST", AT("/pause"), token, 200, NULL);
    expect_status(s, "POST", AT("/resume"), token, 200, NULL);
    if (strstr(name, ".dead")) /* past the token, to the route's own answer */
        expect_status(s, "POST", AT("/redrive"), token, 400, "bad_name");
    else
        expect_status(s, "POST", AT("/redrive"), token, 404, "no_channel"); /* no NAME.dead */
    expect_status(s, "DELETE", AT("/messages"), token, 200, NULL);
    expect_status(s, "DELETE", AT(""), token, 200, NULL);
#undef AT
}

static void test_channel_routes(void **state)
{
    hs_server s;
    start_standard(&s, *state, NULL);
    refusals_of_channel(&s, "jobs");
    refusals_of_channel(&s, "orders2");
    /* a glob scope: jobs* is jobs and jobs.dead; an exact one: orders */
    allowed_on_channel(&s, "jobs", T_JOBS);
    allowed_on_channel(&s, "jobs.dead", T_JOBS);
    allowed_on_channel(&s, "orders", T_ORDERS);
    allowed_on_channel(&s, "anything", T_ALL);
    /* ... and nothing beyond */
    expect_status(&s, "POST", "/channels/orders2", T_ORDERS, 403, "forbidden");
    expect_status(&s, "POST", "/channels/job", T_JOBS, 403, "forbidden");
    expect_status(&s, "GET", "/channels/orders?wait=0", T_JOBS, 403, "forbidden");
    hs_stop_ok(&s);
}

static void test_metrics_routes(void **state)
{
    hs_server s;
    start_standard(&s, *state, NULL);
    const char *paths[] = {"/status", "/metrics", "/channels", "/channels?prefix=jobs"};
    const char *lacking[] = {T_NO_METRICS, T_JOBS, T_ORDERS, NULL};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        expect_refusals(&s, "GET", paths[i], lacking);
        expect_status(&s, "GET", paths[i], T_METRICS, 200, NULL);
        expect_status(&s, "HEAD", paths[i], T_METRICS, 200, NULL);
        expect_status(&s, "HEAD", paths[i], NULL, 401, NULL);
    }
    /* public: the probes, with or without a token, even a wrong one */
    const char *probes[] = {"/healthz", "/readyz"};
    for (size_t i = 0; i < 2; i++) {
        expect_status(&s, "GET", probes[i], NULL, 200, NULL);
        expect_status(&s, "GET", probes[i], T_WRONG, 200, NULL);
    }
    /* a path with no route is a 404 for token holders only */
    expect_status(&s, "GET", "/nowhere", NULL, 401, "unauthorized");
    expect_status(&s, "GET", "/nowhere", T_METRICS, 404, "not_found");
    expect_status(&s, "PUT", "/channels/jobs", T_WRONG, 401, "invalid_token");
    hs_stop_ok(&s);
}

static void test_public_metrics(void **state)
{
    hs_server s;
    start_standard(&s, *state, "--public-metrics");
    expect_status(&s, "GET", "/status", NULL, 200, NULL);
    expect_status(&s, "GET", "/metrics", NULL, 200, NULL);
    expect_status(&s, "GET", "/channels?prefix=a", NULL, 200, NULL);
    /* the channels stay closed */
    expect_status(&s, "POST", "/channels/jobs", NULL, 401, "unauthorized");
    expect_status(&s, "GET", "/channels/jobs", NULL, 401, "unauthorized");
    expect_status(&s, "GET", "/whoami", NULL, 401, "unauthorized");
    hs_stop_ok(&s);
}

/* GET /whoami with token: 200 and its JSON, new (json_decref). */
static json_t *whoami(const hs_server *s, const char *token)
{
    hs_reply r;
    request(s, "GET", "/whoami", token, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "application/json");
    json_t *doc = json_loadb((const char *)r.body, r.len, 0, NULL);
    hs_reply_free(&r);
    assert_non_null(doc);
    return doc;
}

static void test_whoami(void **state)
{
    hs_server s;
    start_standard(&s, *state, NULL);
    expect_refusals(&s, "GET", "/whoami", (const char *[]){NULL});
    json_t *doc = whoami(&s, T_JOBS);
    char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    /* line 8: a comment and a blank line, then the sixth token */
    assert_string_equal(text,
                        "{\"auth\":true,\"line\":8,\"scopes\":[\"send:jobs*\",\"receive:jobs*\","
                        "\"admin:jobs*\"]}");
    free(text);
    json_decref(doc);
    doc = whoami(&s, T_METRICS);
    assert_int_equal(json_array_size(json_object_get(doc, "scopes")), 1);
    assert_string_equal(json_string_value(json_array_get(json_object_get(doc, "scopes"), 0)),
                        "metrics");
    json_decref(doc);
    hs_stop_ok(&s);

    /* without --auth-file: no token needed, and it says so */
    hs_start_ok(&s, NULL);
    doc = whoami(&s, NULL);
    text = json_dumps(doc, JSON_COMPACT);
    assert_string_equal(text, "{\"auth\":false}");
    free(text);
    json_decref(doc);
    expect_status(&s, "POST", "/channels/jobs", NULL, 202, NULL);
    hs_stop_ok(&s);
}

/* The messages of channel name in GET /channels (T_ALL); -1 if no such
 * channel. */
static long long messages_of(const hs_server *s, const char *name)
{
    hs_reply r;
    request(s, "GET", "/channels", T_ALL, &r);
    assert_int_equal(r.status, 200);
    json_t *doc = json_loadb((const char *)r.body, r.len, 0, NULL);
    hs_reply_free(&r);
    assert_non_null(doc);
    long long n = -1;
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(doc, "channels"), i, c)
    {
        if (strcmp(json_string_value(json_object_get(c, "name")), name) == 0)
            n = json_integer_value(json_object_get(c, "messages"));
    }
    json_decref(doc);
    return n;
}

/* POST body with Expect: 100-continue and token (NULL: none). */
static void post_expect(const hs_server *s, const char *path, const char *body, size_t len,
                        const char *token, hs_reply *r)
{
    char header[128];
    snprintf(header, sizeof header, "Authorization: Bearer %s", token);
    const char *headers[] = {header, NULL};
    assert_int_equal(hs_post_expect_headers(s, path, body, len, token ? headers : NULL, r), 0);
}

static void test_refused_stores_nothing(void **state)
{
    hs_server s;
    start_standard(&s, *state, NULL);
    /* refused POSTs make no channel, and add nothing to one that exists */
    expect_status(&s, "POST", "/channels/fresh", NULL, 401, "unauthorized");
    expect_status(&s, "POST", "/channels/fresh", T_WRONG, 401, "invalid_token");
    expect_status(&s, "POST", "/channels/fresh", T_NO_SEND, 403, "forbidden");
    assert_int_equal(messages_of(&s, "fresh"), -1);
    expect_status(&s, "POST", "/channels/orders", T_ORDERS, 202, NULL);
    expect_status(&s, "POST", "/channels/orders", T_JOBS, 403, "forbidden");
    expect_status(&s, "POST", "/channels/orders", NULL, 401, "unauthorized");
    assert_int_equal(messages_of(&s, "orders"), 1);

    /* decided before the body: a client that waits for 100 Continue is
     * answered without sending a byte of it */
    size_t len = 900 * 1024;
    char *body = malloc(len);
    assert_non_null(body);
    memset(body, 'b', len);
    const char *tokens[] = {NULL, T_WRONG, T_NO_SEND};
    const long statuses[] = {401, 401, 403};
    for (size_t i = 0; i < 3; i++) {
        hs_reply r;
        post_expect(&s, "/channels/orders", body, len, tokens[i], &r);
        long status = r.status;
        double uploaded = r.uploaded;
        hs_reply_free(&r);
        assert_int_equal(status, statuses[i]);
        assert_true(uploaded == 0);
    }
    hs_reply r; /* the right token: the body goes, the message is stored */
    post_expect(&s, "/channels/orders", body, len, T_ORDERS, &r);
    long status = r.status;
    double uploaded = r.uploaded;
    hs_reply_free(&r);
    free(body);
    assert_int_equal(status, 202);
    assert_true(uploaded == (double)len);
    assert_int_equal(messages_of(&s, "orders"), 2);
    hs_stop_ok(&s);
}

/* True if the file at path holds text. */
static bool file_holds(const char *path, const char *text)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, text) != NULL;
}

static void test_tokens_not_logged(void **state)
{
    hs_server s;
    start_standard(&s, *state, NULL);
    expect_status(&s, "POST", "/channels/jobs", T_JOBS, 202, NULL);
    expect_status(&s, "POST", "/channels/jobs", T_WRONG, 401, "invalid_token");
    expect_status(&s, "GET", "/nowhere/" T_WRONG, T_WRONG, 401, "invalid_token");
    expect_status(&s, "GET", "/whoami", T_ALL, 200, NULL);
    assert_true(hs_log_wait(&s, "channel jobs created", HS_PATIENCE_MS));
    assert_false(file_holds(s.log_path, T_JOBS));
    assert_false(file_holds(s.log_path, "tok-unknown"));
    assert_false(file_holds(s.log_path, T_ALL));
    hs_stop_ok(&s);
}

/* ---- reloads ---- */

/* Put text in force at path: written beside it and renamed over it, as an
 * editor or a configuration tool would, then SIGHUP; wait for the log to
 * say logged. */
static void reload(hs_server *s, const char *path, const char *text, const char *logged)
{
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.new", path);
    write_file(tmp, text);
    assert_int_equal(rename(tmp, path), 0);
    assert_int_equal(kill(s->pid, SIGHUP), 0);
    if (!hs_log_wait(s, logged, HS_PATIENCE_MS))
        fail_msg("no '%s' in the log after SIGHUP", logged);
}

static void test_reload(void **state)
{
    const char *dir = *state;
    char path[512], line[512], text[2048];
    snprintf(path, sizeof path, "%s/auth", dir);
    file_line("old-token", "send:*", text, sizeof text);
    write_file(path, text);
    const char *args[] = {"--auth-file", path, NULL};
    hs_server s;
    hs_start_in_ok(&s, data_dir(dir), args);
    expect_status(&s, "POST", "/channels/a", "old-token", 202, NULL);
    expect_status(&s, "POST", "/channels/a", "new-token", 401, "invalid_token");

    /* a good file: the new token in, the old one out */
    file_line("new-token", "send:a metrics", text, sizeof text);
    file_line("other-token", "receive:a", line, sizeof line);
    strcat(text, line);
    reload(&s, path, text, "SIGHUP: 2 token(s) in force");
    expect_status(&s, "POST", "/channels/a", "new-token", 202, NULL);
    expect_status(&s, "GET", "/channels/a?wait=0", "other-token", 200, NULL);
    expect_status(&s, "POST", "/channels/a", "old-token", 401, "invalid_token");

    /* a bad file: the tokens in force stay, and the log says why */
    file_line("newer-token", "send:*", text, sizeof text);
    strcat(text, "this line is wrong\n");
    reload(&s, path, text, "the tokens in force are kept");
    char where[600];
    snprintf(where, sizeof where, "%s:2: the first field is 4 characters", path);
    assert_true(hs_log_wait(&s, where, HS_PATIENCE_MS));
    assert_true(hs_log_wait(&s, "error SIGHUP", HS_PATIENCE_MS));
    expect_status(&s, "POST", "/channels/a", "new-token", 202, NULL);
    expect_status(&s, "POST", "/channels/a", "newer-token", 401, "invalid_token");
    expect_status(&s, "GET", "/healthz", NULL, 200, NULL);

    /* a file that went away: likewise */
    assert_int_equal(unlink(path), 0);
    assert_int_equal(kill(s.pid, SIGHUP), 0);
    assert_true(hs_log_wait(&s, "cannot read", HS_PATIENCE_MS));
    expect_status(&s, "GET", "/channels/a?wait=0", "other-token", 200, NULL);
    /* and SIGTERM still stops it cleanly */
    hs_stop_ok(&s);
}

/* A request in flight when the file is reloaded keeps the set it was
 * decided with, to its end: a GET /whoami whose body comes only after a
 * reload has removed its token still answers with that token's scopes
 * (and, under ASan, reads no freed set). */
static void test_reload_in_flight(void **state)
{
    const char *dir = *state;
    char path[512], text[1024];
    snprintf(path, sizeof path, "%s/auth", dir);
    file_line("old-token", "receive:kept", text, sizeof text);
    write_file(path, text);
    const char *args[] = {"--auth-file", path, NULL};
    hs_server s;
    hs_start_in_ok(&s, data_dir(dir), args);
    int fd = hs_connect(&s);
    assert_true(fd >= 0);
    static const char head[] = "GET /whoami HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               "Authorization: Bearer old-token\r\nContent-Length: 5\r\n"
                               "Expect: 100-continue\r\n\r\n";
    assert_int_equal(write(fd, head, strlen(head)), (ssize_t)strlen(head));
    /* "100 Continue" comes once the first call, which decides, is over */
    char buf[4096];
    const char *body = NULL;
    assert_int_equal(hs_read_response(fd, buf, sizeof buf, HS_PATIENCE_MS, &body), 100);
    file_line("new-token", "metrics", text, sizeof text);
    reload(&s, path, text, "SIGHUP: 1 token(s) in force");
    expect_status(&s, "GET", "/whoami", "old-token", 401, "invalid_token");
    assert_int_equal(write(fd, "hello", 5), 5);
    assert_int_equal(hs_read_response(fd, buf, sizeof buf, HS_PATIENCE_MS, &body), 200);
    assert_non_null(strstr(body, "\"scopes\":[\"receive:kept\"]"));
    close(fd);
    hs_stop_ok(&s);
}

/* ---- malformed files ---- */

/* Run hopper with args and env: it must exit code with text in its output. */
static void expect_run(const char *const *args, const char *const *env, int code, const char *text)
{
    int got = -2;
    char *output = NULL;
    assert_int_equal(hs_run(args, env, &got, &output), 0);
    if (got != code || strstr(output, text) == NULL)
        fail_msg("exit %d (expected %d, with '%s'), output:\n%s", got, code, text, output);
    free(output);
}

static void test_malformed(void **state)
{
    const char *dir = *state;
    char hash[80], path[512];
    file_line("t", "", hash, sizeof hash);
    hash[64] = '\0';
    char upper[80];
    snprintf(upper, sizeof upper, "%s", hash);
    for (char *p = upper; *p; p++)
        *p = (char)(*p >= 'a' && *p <= 'f' ? *p - 32 : *p);
    static const struct {
        const char *fmt; /* %1$s: a good hash */
        const char *message;
    } cases[] = {
        {"%1$.63s send:a\n", ":1: the first field is 63 characters"},
        {"# c\n\n%1$s send:a\n%1$.60sabcz metrics\n", ":4: the first field is not 64 lowercase"},
        {"%1$s\n", ":1: the token has no scope"},
        {"%1$s   # only a comment\n", ":1: the token has no scope"},
        {"%1$s bogus:a\n", ":1: 'bogus:a' is no scope"},
        {"%1$s send:\n", ":1: send: has no channel"},
        {"%1$s send:a/b\n", ":1: send:a/b: a channel is letters"},
        {"%1$s receive:a*b\n", ":1: receive:a*b: a channel is letters"},
        {"%1$s admin:..\n", ":1: admin:.. is not a channel name"},
        {"%1$s metrics:jobs\n", ":1: metrics takes no channel"},
        {"%1$s receive\n", ":1: receive needs a channel"},
        {"%1$s send:a\n%1$s metrics\n", ":2: the same token as line 1"},
        {"\n\n%1$s send:a\r\n%1$.64s\r metrics\n", ":4: holds a NUL or carriage return"},
        {"this-is-a-token send:a\n", ":1: the first field is 15 characters"},
    };
    snprintf(path, sizeof path, "%s/auth", dir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[1024], where[600];
        snprintf(text, sizeof text, cases[i].fmt, hash);
        write_file(path, text);
        const char *args[] = {"--data-dir", data_dir(dir), "--auth-file", path, NULL};
        snprintf(where, sizeof where, "%s%s", path, cases[i].message);
        expect_run(args, NULL, 2, where);
    }
    char text[200], where[600];
    snprintf(text, sizeof text, "%s send:a\n", upper);
    write_file(path, text);
    const char *args[] = {"--data-dir", data_dir(dir), "--auth-file", path, NULL};
    expect_run(args, NULL, 2, "auth:1: the first field is not 64 lowercase hex digits");
    /* the environment twin, and a file that is not there */
    char env_entry[600];
    snprintf(env_entry, sizeof env_entry, "HOPPER_AUTH_FILE=%s", path);
    const char *data_only[] = {"--data-dir", data_dir(dir), NULL};
    const char *env[] = {env_entry, NULL};
    expect_run(data_only, env, 2, "auth:1: the first field is not 64");
    const char *missing[] = {"--auth-file", "/nonexistent/auth", NULL};
    snprintf(where, sizeof where, "/nonexistent/auth: cannot read");
    expect_run(missing, NULL, 2, where);
    /* a kept Authorization header would hand the tokens to receivers */
    snprintf(text, sizeof text, "%s send:a\n", hash);
    write_file(path, text);
    const char *kept[] = {"--auth-file", path, "--keep-headers", "X-A,Auth*", NULL};
    expect_run(kept, NULL, 2, "--keep-headers keeps Authorization");
}

static void test_env_file(void **state)
{
    const char *dir = *state;
    char path[512], entry[600];
    write_standard(dir, path, sizeof path);
    snprintf(entry, sizeof entry, "HOPPER_AUTH_FILE=%s", path);
    const char *env[] = {entry, "HOPPER_PUBLIC_METRICS=yes", NULL};
    hs_server s;
    hs_start_in_env_ok(&s, data_dir(dir), NULL, env);
    expect_status(&s, "POST", "/channels/jobs", NULL, 401, "unauthorized");
    expect_status(&s, "POST", "/channels/jobs", T_JOBS, 202, NULL);
    expect_status(&s, "GET", "/metrics", NULL, 200, NULL);
    hs_stop_ok(&s);
}

/* ---- hopper token ---- */

/* Run "hopper token": OUT the token and the file line it printed. */
static void new_token(char *token, size_t token_size, char *line, size_t line_size)
{
    const char *args[] = {"token", NULL};
    int code = -2;
    char *output = NULL;
    assert_int_equal(hs_run(args, NULL, &code, &output), 0);
    assert_int_equal(code, 0);
    char *nl = strchr(output, '\n');
    assert_non_null(nl);
    *nl = '\0';
    snprintf(token, token_size, "%s", output);
    snprintf(line, line_size, "%s", nl + 1);
    free(output);
    /* exactly two lines */
    nl = strchr(line, '\n');
    assert_non_null(nl);
    assert_string_equal(nl, "\n");
    *nl = '\0';
}

static void test_token_command(void **state)
{
    const char *dir = *state;
    char token[128], line[512], token2[128], line2[512];
    new_token(token, sizeof token, line, sizeof line);
    new_token(token2, sizeof token2, line2, sizeof line2);
    /* 32 random bytes in base64url without padding: 43 characters */
    assert_int_equal(strlen(token), 43);
    assert_int_equal(
        strspn(token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), 43);
    assert_string_not_equal(token, token2);
    /* the line: the token's SHA-256 in hex, then the placeholder scopes */
    char expected[512];
    file_line(token, "send:CHANGE-ME receive:CHANGE-ME", expected, sizeof expected);
    assert_memory_equal(line, expected, strlen(expected) - 1);
    assert_null(strstr(line, token));

    /* pasted as it is, it loads, and the token is the one it admits */
    char path[512];
    snprintf(path, sizeof path, "%s/auth", dir);
    strcat(line, "\n");
    strcat(line, line2);
    write_file(path, line);
    const char *args[] = {"--auth-file", path, NULL};
    hs_server s;
    hs_start_in_ok(&s, data_dir(dir), args);
    json_t *doc = whoami(&s, token);
    assert_int_equal(json_integer_value(json_object_get(doc, "line")), 1);
    json_decref(doc);
    doc = whoami(&s, token2);
    assert_int_equal(json_integer_value(json_object_get(doc, "line")), 2);
    json_decref(doc);
    expect_status(&s, "POST", "/channels/CHANGE-ME", token, 202, NULL);
    expect_status(&s, "POST", "/channels/jobs", token, 403, "forbidden");
    hs_stop_ok(&s);

    const char *extra[] = {"token", "more", NULL};
    expect_run(extra, NULL, 2, "takes no arguments");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_channel_routes, hs_dir_setup, hs_dir_teardown),
        cmocka_unit_test_setup_teardown(test_metrics_routes, hs_dir_setup, hs_dir_teardown),
        cmocka_unit_test_setup_teardown(test_public_metrics, hs_dir_setup, hs_dir_teardown),
        cmocka_unit_test_setup_teardown(test_whoami, hs_dir_setup, hs_dir_teardown),
        cmocka_unit_test_setup_teardown(test_refused_stores_nothing, hs_dir_setup, hs_dir_teardown),
        cmocka_unit_test_setup_teardown(test_tokens_not_logged, hs_dir_setup, hs_dir_teardown),
        cmocka_unit_test_setup_teardown(test_reload, hs_dir_setup, hs_dir_teardown),
        cmocka_unit_test_setup_teardown(test_reload_in_flight, hs_dir_setup, hs_dir_teardown),
        cmocka_unit_test_setup_teardown(test_malformed, hs_dir_setup, hs_dir_teardown),
        cmocka_unit_test_setup_teardown(test_env_file, hs_dir_setup, hs_dir_teardown),
        cmocka_unit_test_setup_teardown(test_token_command, hs_dir_setup, hs_dir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
