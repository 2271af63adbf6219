/* test_options.c - flags and their HOPPER_* environment twins: --help, bad
 * flags and values (exit 2 with a message), SIZE suffixes, the flag winning
 * over the environment, --durable and its HOPPER_DURABLE words, the data
 * directory (exit 1 when unusable), the listen address. */
#include "harness.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

/* Run hopper; check the exit code and that the output contains text. */
static void expect_run(const char *const *args, const char *const *env, int code, const char *text)
{
    int got = -2;
    char *output = NULL;
    assert_int_equal(hs_run(args, env, &got, &output), 0);
    if (got != code || strstr(output, text) == NULL)
        fail_msg("%s %s: exit %d (expected %d), output:\n%s", args[0] ? args[0] : "",
                 args[0] && args[1] ? args[1] : "", got, code, output);
    free(output);
}

static void test_help(void **state)
{
    (void)state;
    const char *long_form[] = {"--help", NULL};
    expect_run(long_form, NULL, 0, "Usage: hopper [flags]");
    expect_run(long_form, NULL, 0, "--max-wait SECONDS");
    expect_run(long_form, NULL, 0, "HOPPER_");
    expect_run(long_form, NULL, 0, "\n  --durable  ");
    expect_run(long_form, NULL, 0, "env HOPPER_DURABLE");
    const char *short_form[] = {"-h", NULL};
    expect_run(short_form, NULL, 0, "--memory-bytes SIZE");
}

static void test_bad_flags(void **state)
{
    (void)state;
    static const struct {
        const char *args[10];
        const char *message;
    } cases[] = {
        {{"--bogus", NULL}, "unknown flag '--bogus'"},
        {{"-x", NULL}, "unexpected argument '-x'"},
        {{"extra", NULL}, "unexpected argument 'extra'"},
        {{"--listen", NULL}, "--listen needs a value"},
        {{"--memory-bytes", "12X", NULL}, "--memory-bytes: '12X' is not a size"},
        {{"--memory-bytes", "-1", NULL}, "--memory-bytes: '-1'"},
        {{"--memory-bytes", "1.5M", NULL}, "--memory-bytes: '1.5M'"},
        {{"--memory-bytes", "1 M", NULL}, "--memory-bytes"},
        {{"--memory-bytes", "", NULL}, "--memory-bytes: '' is empty"},
        {{"--memory-bytes", "99999999999999999999", NULL}, "too large"},
        {{"--memory-bytes=1Q", NULL}, "--memory-bytes: '1Q'"},
        {{"--file-bytes", "0", NULL}, "--file-bytes: '0' is out of range"},
        {{"--max-disk-files", "-3", NULL}, "--max-disk-files"},
        {{"--max-message-bytes", "2GiB", NULL}, "--max-message-bytes: '2GiB' is out of range"},
        {{"--max-channels", "0", NULL}, "--max-channels: '0' is out of range"},
        {{"--max-wait", "-1", NULL}, "--max-wait: '-1'"},
        {{"--max-wait", "nan", NULL}, "--max-wait: 'nan'"},
        {{"--max-wait", "abc", NULL}, "--max-wait: 'abc'"},
        {{"--max-wait", "1e99", NULL}, "--max-wait: '1e99'"},
        {{"--threads", "0", NULL}, "--threads: '0' is out of range"},
        {{"--threads", "100000", NULL}, "--threads: '100000' is out of range"},
        {{"--listen", "localhost", NULL}, "--listen: 'localhost' is not HOST:PORT"},
        {{"--listen", "127.0.0.1:99999", NULL}, "bad port"},
        {{"--listen", "127.0.0.1:x", NULL}, "bad port"},
        {{"--listen", "::1:80", NULL}, "[ADDRESS]:PORT"},
        {{"--listen", "[::1:80", NULL}, "[IPv6]:PORT"},
        /* an empty label: refused by the resolver itself, with no query
         * sent (a real name would ask a DNS server, maybe slowly) */
        {{"--listen", "no..such.invalid:80", NULL}, "does not resolve"},
        {{"--max-disk-files", "0", "--memory-bytes", "1KiB", NULL}, "cannot hold one message"},
        {{"--durable=yes", NULL}, "--durable takes no value"},
        {{"--durable", "--max-disk-files", "0", NULL}, "--max-disk-files 0 allows none"},
        {{"--memory-limit", "0", NULL}, "--memory-limit: '0' is out of range"},
        {{"--memory-limit", "1MiB", "--memory-bytes", "2MiB", NULL},
         "--memory-bytes 2097152 is more than --memory-limit 1048576"},
        /* reserve 8 MiB + 16 x 8 KiB, and a file of 4 MiB */
        {{"--memory-limit", "8MiB", "--max-channels", "16", "--file-bytes", "4MiB", "--disk-limit",
          "12MiB", NULL},
         "give --disk-limit 12713984 or more"},
        {{"--durable", "--max-channels", "16", "--file-bytes", "4MiB", "--disk-limit", "4MiB",
          NULL},
         "(0: --durable) + 8192 per --max-channels 16"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        expect_run(cases[i].args, NULL, 2, cases[i].message);
        expect_run(cases[i].args, NULL, 2, "Try 'hopper --help'");
    }
}

static void test_bad_env(void **state)
{
    (void)state;
    const char *none[] = {NULL};
    const char *env1[] = {"HOPPER_MEMORY_BYTES=lots", NULL};
    expect_run(none, env1, 2, "HOPPER_MEMORY_BYTES: 'lots' is not a size");
    const char *env2[] = {"HOPPER_MAX_WAIT=-5", NULL};
    expect_run(none, env2, 2, "HOPPER_MAX_WAIT: '-5'");
    const char *env3[] = {"HOPPER_LISTEN=nowhere", NULL};
    expect_run(none, env3, 2, "HOPPER_LISTEN: 'nowhere'");
    /* a flag's variable takes the six words, exactly */
    const char *words[] = {"HOPPER_DURABLE=maybe", "HOPPER_DURABLE=TRUE", "HOPPER_DURABLE=2",
                           "HOPPER_DURABLE= yes"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        const char *env[] = {words[i], NULL};
        expect_run(none, env, 2, "is not one of 1, true, yes, 0, false or no");
    }
    const char *empty[] = {"HOPPER_DURABLE=", NULL};
    expect_run(none, empty, 2, "HOPPER_DURABLE: '' is empty");
    const char *memory_only[] = {"HOPPER_DURABLE=1", "HOPPER_MAX_DISK_FILES=0", NULL};
    expect_run(none, memory_only, 2, "--max-disk-files 0 allows none");
}

static json_t *get_limits(const hs_server *s)
{
    hs_reply r;
    assert_int_equal(hs_get(s, "/status", &r), 0);
    json_t *doc = json_loadb((const char *)r.body, r.len, 0, NULL);
    hs_reply_free(&r);
    assert_non_null(doc);
    json_t *limits = json_incref(json_object_get(doc, "limits"));
    json_decref(doc);
    return limits;
}

static long long limit(json_t *limits, const char *name)
{
    return json_integer_value(json_object_get(limits, name));
}

static void test_sizes_and_counts(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--memory-bytes",
                          "3M",
                          "--file-bytes",
                          "2KiB",
                          "--max-disk-files",
                          "7",
                          "--max-message-bytes",
                          "1K",
                          "--max-channels",
                          "5",
                          "--max-wait",
                          "2.5",
                          "--threads",
                          "3",
                          NULL};
    hs_start_ok(&s, args);
    json_t *l = get_limits(&s);
    assert_int_equal(limit(l, "memory_bytes"), 3 * 1024 * 1024);
    assert_int_equal(limit(l, "file_bytes"), 2048);
    assert_int_equal(limit(l, "max_disk_files"), 7);
    assert_int_equal(limit(l, "max_message_bytes"), 1024);
    assert_int_equal(limit(l, "max_channels"), 5);
    assert_int_equal(limit(l, "threads"), 3);
    assert_true(json_real_value(json_object_get(l, "max_wait_seconds")) == 2.5);
    json_decref(l);
    char body[1100];
    memset(body, 'k', sizeof body);
    hs_expect_post_bytes(&s, "k", body, 1024, NULL, 202);
    hs_expect_post_bytes(&s, "k", body, 1025, NULL, 413);
    hs_stop_ok(&s);

    const char *giga[] = {"--memory-limit",
                          "1G",
                          "--disk-limit",
                          "4GiB",
                          "--memory-bytes",
                          "1G",
                          "--file-bytes",
                          "2GiB",
                          "--max-message-bytes",
                          "1MiB",
                          NULL};
    hs_start_ok(&s, giga);
    l = get_limits(&s);
    assert_int_equal(limit(l, "memory_bytes"), 1LL << 30);
    assert_int_equal(limit(l, "memory_limit"), 1LL << 30);
    assert_int_equal(limit(l, "disk_limit"), 4LL << 30);
    assert_int_equal(limit(l, "file_bytes"), 2LL << 30);
    assert_int_equal(limit(l, "max_message_bytes"), 1 << 20);
    json_decref(l);
    hs_stop_ok(&s);
}

static void test_env_config_and_flag_wins(void **state)
{
    (void)state;
    hs_server s;
    const char *env[] = {"HOPPER_MAX_MESSAGE_BYTES=10", "HOPPER_MAX_CHANNELS=3", NULL};
    hs_start_env_ok(&s, NULL, env);
    hs_expect_post_bytes(&s, "e", "0123456789", 10, NULL, 202);
    hs_expect_post_bytes(&s, "e", "0123456789A", 11, NULL, 413);
    json_t *l = get_limits(&s);
    assert_int_equal(limit(l, "max_channels"), 3);
    json_decref(l);
    hs_stop_ok(&s);

    /* the flag wins, and a bad variable whose flag is given does not matter */
    const char *args[] = {"--max-message-bytes", "20", "--max-wait", "5", NULL};
    const char *env2[] = {"HOPPER_MAX_MESSAGE_BYTES=10", "HOPPER_MAX_WAIT=bogus", NULL};
    hs_start_env_ok(&s, args, env2);
    hs_expect_post_bytes(&s, "e", "0123456789ABCDE", 15, NULL, 202);
    l = get_limits(&s);
    assert_int_equal(limit(l, "max_message_bytes"), 20);
    json_decref(l);
    hs_stop_ok(&s);
}

/* The budget's defaults: --memory-limit 256MiB, --disk-limit 1GiB, and a
 * channel's --memory-bytes a quarter of --memory-limit, whichever way the
 * limit is given; the start log line says them and the reserve. */
static void test_budget_defaults(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    json_t *l = get_limits(&s);
    assert_int_equal(limit(l, "memory_limit"), 256LL << 20);
    assert_int_equal(limit(l, "memory_bytes"), 64LL << 20);
    assert_int_equal(limit(l, "disk_limit"), 1LL << 30);
    json_decref(l);
    /* reserve: 256 MiB + 1024 channels x 8 KiB */
    assert_true(hs_log_wait(&s, "disk-limit 1073741824 (276824064 of it the reserve", 0));
    hs_stop_ok(&s);

    const char *env[] = {"HOPPER_MEMORY_LIMIT=40MiB", NULL};
    hs_start_env_ok(&s, NULL, env);
    l = get_limits(&s);
    assert_int_equal(limit(l, "memory_limit"), 40LL << 20);
    assert_int_equal(limit(l, "memory_bytes"), 10LL << 20);
    json_decref(l);
    hs_stop_ok(&s);
}

/* limits.durable of a server started with args and env, which must log
 * "durable <logged>"; a message goes through it. */
static bool durable_of(const char *const *args, const char *const *env, const char *logged)
{
    hs_server s;
    hs_start_env_ok(&s, args, env);
    assert_true(hs_log_wait(&s, logged, 0));
    json_t *l = get_limits(&s);
    json_t *durable = json_object_get(l, "durable");
    assert_true(json_is_boolean(durable));
    bool value = json_is_true(durable);
    json_decref(l);
    hs_expect_post(&s, "d", "synced", 202);
    hs_expect_get(&s, "d", "0", "synced");
    hs_stop_ok(&s);
    return value;
}

static void test_durable(void **state)
{
    (void)state;
    assert_false(durable_of(NULL, NULL, "durable no"));
    /* a flag without a value: what follows is the next flag */
    const char *args[] = {"--durable", "--max-channels", "3", NULL};
    assert_true(durable_of(args, NULL, "max-channels 3, max-wait 60, threads"));
    static const struct {
        const char *env;
        bool value;
    } words[] = {{"HOPPER_DURABLE=1", true},      {"HOPPER_DURABLE=true", true},
                 {"HOPPER_DURABLE=yes", true},    {"HOPPER_DURABLE=0", false},
                 {"HOPPER_DURABLE=false", false}, {"HOPPER_DURABLE=no", false}};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        const char *env[] = {words[i].env, NULL};
        if (durable_of(NULL, env, words[i].value ? "durable yes" : "durable no") != words[i].value)
            fail_msg("%s", words[i].env);
    }
    /* the flag wins over a "no" in the environment */
    const char *flag[] = {"--durable", NULL};
    const char *no[] = {"HOPPER_DURABLE=no", NULL};
    assert_true(durable_of(flag, no, "durable yes"));
}

static void test_data_dir(void **state)
{
    (void)state;
    char base[] = "/tmp/hopper-test-dd-XXXXXX";
    assert_non_null(mkdtemp(base));
    char file[100], below_file[200], nested[200];
    snprintf(file, sizeof file, "%s/a-file", base);
    snprintf(below_file, sizeof below_file, "%s/sub", file);
    snprintf(nested, sizeof nested, "%s/x/y/z", base);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);

    /* not creatable (a path through a regular file): exit 1, before listening */
    const char *bad[] = {"--listen", "127.0.0.1:0", "--data-dir", below_file, NULL};
    expect_run(bad, NULL, 1, "cannot create --data-dir");
    const char *not_dir[] = {"--listen", "127.0.0.1:0", "--data-dir", file, NULL};
    expect_run(not_dir, NULL, 1, "--data-dir");

    /* created with its parents */
    hs_server s;
    const char *args[] = {"--data-dir", nested, NULL};
    hs_start_ok(&s, args);
    hs_expect_post(&s, "c", "x", 202);
    struct stat st;
    assert_int_equal(stat(nested, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    hs_stop_ok(&s);

    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    assert_int_equal(system(cmd), 0);
}

static void test_port_in_use(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    char listen[64], dir[] = "/tmp/hopper-test-pu-XXXXXX";
    assert_non_null(mkdtemp(dir));
    snprintf(listen, sizeof listen, "127.0.0.1:%d", s.port);
    const char *args[] = {"--listen", listen, "--data-dir", dir, NULL};
    expect_run(args, NULL, 1, "cannot start the HTTP server on 127.0.0.1:");
    hs_remove_tree(dir); /* with the hopper.lock it was given */
    hs_stop_ok(&s);
}

static void test_ipv6_listen(void **state)
{
    (void)state;
    int probe = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool have_v6 = probe >= 0 && bind(probe, (struct sockaddr *)&a, sizeof a) == 0;
    if (probe >= 0)
        close(probe);
    if (!have_v6)
        skip();
    hs_server s;
    const char *args[] = {"--listen", "[::1]:0", NULL};
    hs_start_ok(&s, args);
    assert_true(hs_log_wait(&s, "listening on [::1]:", HS_PATIENCE_MS));
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    a.sin6_port = htons((uint16_t)s.port);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    char buf[512];
    const char *body;
    assert_int_equal(hs_read_response(fd, buf, sizeof buf, HS_PATIENCE_MS, &body), 200);
    assert_string_equal(body, "ok");
    close(fd);
    hs_stop_ok(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_bad_flags),
        cmocka_unit_test(test_bad_env),
        cmocka_unit_test(test_sizes_and_counts),
        cmocka_unit_test(test_env_config_and_flag_wins),
        cmocka_unit_test(test_budget_defaults),
        cmocka_unit_test(test_durable),
        cmocka_unit_test(test_data_dir),
        cmocka_unit_test(test_port_in_use),
        cmocka_unit_test(test_ipv6_listen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
