/* test_scale.c - three hopper instances behind a real nginx configured with
 * the repository's docker/nginx/hopper-shards.conf.template (the ports
 * filled in here): each channel always lands on the same instance, the
 * channels spread over all three, long polls and 507 with its payload
 * behave through the proxy as they do directly, and when one instance
 * stops only its channels fail, until it is back with its messages.
 *
 * Everything listens on 127.0.0.1; nginx runs in the foreground from a
 * temporary prefix and is stopped at the end of each test. */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define INSTANCES 3
#define CHANNELS 60

typedef struct stack {
    hs_server hopper[INSTANCES];
    char dirs[INSTANCES][256]; /* their data directories, kept across restarts */
    char prefix[256];          /* nginx's */
    pid_t nginx;
    hs_server proxy; /* only .port: where requests go through nginx */
} stack;

/* A port that was free a moment ago. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* Copy the template to path with ${NAME} replaced by the values given. */
static void fill_template(const char *path, const char *names[], const char *values[], size_t n)
{
    FILE *in = fopen(SHARDS_TEMPLATE, "r");
    assert_non_null(in);
    FILE *out = fopen(path, "w");
    assert_non_null(out);
    char line[1024];
    while (fgets(line, sizeof line, in)) {
        char *p = line;
        for (;;) {
            char *at = strstr(p, "${");
            if (at == NULL) {
                fputs(p, out);
                break;
            }
            fwrite(p, 1, (size_t)(at - p), out);
            char *end = strchr(at, '}');
            assert_non_null(end);
            bool known = false;
            for (size_t i = 0; i < n; i++)
                if ((size_t)(end - at - 2) == strlen(names[i]) &&
                    strncmp(at + 2, names[i], strlen(names[i])) == 0) {
                    fputs(values[i], out);
                    known = true;
                }
            if (!known)
                fail_msg("template variable %.*s not filled", (int)(end - at + 1), at);
            p = end + 1;
        }
    }
    fclose(in);
    assert_int_equal(fclose(out), 0);
}

/* True once something accepts connections on port, within timeout_ms. */
static bool port_open(int port, int timeout_ms)
{
    double give_up = hs_now() + timeout_ms / 1000.0;
    while (hs_now() < give_up) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
        close(fd);
        if (ok)
            return true;
        struct timespec tick = {0, 20 * 1000000L};
        nanosleep(&tick, NULL);
    }
    return false;
}

/* The nginx running now, stopped at exit too: a failed assertion leaves
 * the test before stack_down(). */
static pid_t running_nginx;

static void kill_nginx(void)
{
    if (running_nginx > 0) {
        kill(running_nginx, SIGTERM); /* the master stops its workers */
        waitpid(running_nginx, NULL, 0);
        running_nginx = 0;
    }
}

static bool start_nginx(stack *st)
{
    static bool registered;
    if (!registered)
        registered = atexit(kill_nginx) == 0;
    kill_nginx(); /* one a failed test left */
    int port = free_port();
    assert_true(port > 0);
    char listen[32], h[INSTANCES][32], shards[512], conf[512];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    for (int i = 0; i < INSTANCES; i++)
        snprintf(h[i], sizeof h[i], "127.0.0.1:%d", st->hopper[i].port);
    const char *names[] = {"LISTEN", "HOPPER_1", "HOPPER_2", "HOPPER_3"};
    const char *values[] = {listen, h[0], h[1], h[2]};
    snprintf(shards, sizeof shards, "%s/shards.conf", st->prefix);
    fill_template(shards, names, values, 4);
    snprintf(conf, sizeof conf, "%s/nginx.conf", st->prefix);
    FILE *f = fopen(conf, "w");
    assert_non_null(f);
    fprintf(f,
            "daemon off;\nworker_processes 1;\npid %s/nginx.pid;\nerror_log %s/error.log;\n"
            "events { worker_connections 1024; }\n"
            "http {\n    access_log off;\n    client_body_temp_path %s;\n"
            "    proxy_temp_path %s;\n    fastcgi_temp_path %s;\n    uwsgi_temp_path %s;\n"
            "    scgi_temp_path %s;\n    include %s;\n}\n",
            st->prefix, st->prefix, st->prefix, st->prefix, st->prefix, st->prefix, st->prefix,
            shards);
    assert_int_equal(fclose(f), 0);
    st->nginx = fork();
    assert_true(st->nginx >= 0);
    if (st->nginx == 0) {
        execl(NGINX_BIN, NGINX_BIN, "-p", st->prefix, "-c", conf, "-e", "stderr", (char *)NULL);
        _exit(127);
    }
    running_nginx = st->nginx;
    st->proxy.port = port;
    if (port_open(port, HS_PATIENCE_MS))
        return true;
    kill(st->nginx, SIGKILL);
    waitpid(st->nginx, NULL, 0);
    return false; /* the port was taken meanwhile: the caller tries another */
}

static void stack_up(stack *st, const char *const *args)
{
    memset(st, 0, sizeof *st);
    for (int i = 0; i < INSTANCES; i++) {
        assert_int_equal(hs_make_dir(st->dirs[i], sizeof st->dirs[i]), 0);
        assert_int_equal(hs_start_in(&st->hopper[i], st->dirs[i], args), 0);
    }
    assert_int_equal(hs_make_dir(st->prefix, sizeof st->prefix), 0);
    bool up = false;
    for (int attempt = 0; attempt < 3 && !up; attempt++)
        up = start_nginx(st);
    assert_true(up);
}

static void stack_down(stack *st)
{
    kill(st->nginx, SIGTERM);
    int status;
    waitpid(st->nginx, &status, 0);
    running_nginx = 0;
    for (int i = 0; i < INSTANCES; i++) {
        if (st->hopper[i].pid > 0)
            assert_int_equal(hs_stop(&st->hopper[i]), 0);
        hs_remove_tree(st->dirs[i]);
    }
    hs_remove_tree(st->prefix);
}

/* The instance that holds channel (it exists there), or -1 if none; fails
 * if more than one does. */
static int owner(const stack *st, const char *channel)
{
    int found = -1;
    for (int i = 0; i < INSTANCES; i++) {
        if (st->hopper[i].pid <= 0)
            continue;
        if (hs_status_value(&st->hopper[i], channel, "sent_total") >= 0) {
            if (found >= 0)
                fail_msg("channel %s is on instances %d and %d", channel, found, i);
            found = i;
        }
    }
    return found;
}

static void test_channels_stick_and_spread(void **state)
{
    (void)state;
    stack st;
    stack_up(&st, NULL);
    int per_instance[INSTANCES] = {0};
    char channel[32], text[64], got[64];
    for (int c = 0; c < CHANNELS; c++) {
        snprintf(channel, sizeof channel, "shard-%d", c);
        for (int k = 0; k < 3; k++) {
            snprintf(text, sizeof text, "%s #%d", channel, k);
            assert_int_equal(hs_post_text(&st.proxy, channel, text), 202);
        }
        int o = owner(&st, channel);
        assert_true(o >= 0);
        assert_int_equal(hs_status_value(&st.hopper[o], channel, "messages"), 3);
        per_instance[o]++;
    }
    printf("%d channels over 3 instances: %d / %d / %d\n", CHANNELS, per_instance[0],
           per_instance[1], per_instance[2]);
    for (int i = 0; i < INSTANCES; i++)
        assert_true(per_instance[i] > 0);
    /* the same name percent-encoded is the same channel, on the same shard */
    assert_int_equal(hs_post_text(&st.proxy, "sh%61rd-0", "shard-0 #3"), 202);
    /* and each comes back whole and in order through the proxy */
    for (int c = 0; c < CHANNELS; c++) {
        snprintf(channel, sizeof channel, "shard-%d", c);
        for (int k = 0; k < (c == 0 ? 4 : 3); k++) {
            snprintf(text, sizeof text, "%s #%d", channel, k);
            assert_int_equal(hs_get_text(&st.proxy, channel, "0", got, sizeof got), 200);
            assert_string_equal(got, text);
        }
        assert_int_equal(hs_get_text(&st.proxy, channel, "0", got, sizeof got), 204);
    }
    stack_down(&st);
}

static void test_long_poll_through_the_proxy(void **state)
{
    (void)state;
    stack st;
    stack_up(&st, NULL);
    /* a wait that runs out: hopper's 204, not a proxy timeout */
    hs_reply r;
    assert_int_equal(hs_get(&st.proxy, "/channels/idle?wait=1", &r), 0);
    assert_int_equal(r.status, 204);
    assert_true(r.seconds >= 0.9 && r.seconds < 10);
    hs_reply_free(&r);
    /* a waiting GET woken by a POST, both through the proxy */
    hs_pending_get g;
    assert_int_equal(hs_get_begin(&g, &st.proxy, "/channels/wake?wait=20"), 0);
    double give_up = hs_now() + HS_PATIENCE_MS / 1000.0;
    int o = -1;
    while (hs_now() < give_up &&
           (o < 0 || hs_status_value(&st.hopper[o], "wake", "waiting_receivers") != 1)) {
        o = owner(&st, "wake");
        struct timespec tick = {0, 10 * 1000000L};
        nanosleep(&tick, NULL);
    }
    assert_true(o >= 0);
    double t0 = hs_now();
    assert_int_equal(hs_post_text(&st.proxy, "wake", "good morning"), 202);
    assert_int_equal(hs_get_end(&g), 0);
    printf("wake-up through nginx: %.1f ms after the POST began\n", (hs_now() - t0) * 1000);
    assert_int_equal(g.reply.status, 200);
    assert_string_equal((const char *)g.reply.body, "good morning");
    hs_reply_free(&g.reply);
    stack_down(&st);
}

static void test_507_with_its_payload_through_the_proxy(void **state)
{
    (void)state;
    stack st;
    const char *args[] = {"--memory-bytes", "8KiB", "--max-message-bytes", "1KiB",
                          "--max-disk-files", "0", NULL};
    stack_up(&st, args);
    unsigned char payload[1000];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (unsigned char)(i * 37 + 11); /* every byte value, NULs too */
    hs_reply r = {0};
    int accepted = 0;
    for (int i = 0; i < 100; i++) {
        hs_reply_free(&r);
        memset(&r, 0, sizeof r);
        assert_int_equal(
            hs_post(&st.proxy, "/channels/tiny", payload, sizeof payload, "image/x-test", &r), 0);
        if (r.status != 202)
            break;
        accepted++;
    }
    assert_int_equal(r.status, 507);
    assert_true(accepted > 0);
    assert_int_equal(r.len, sizeof payload);
    assert_memory_equal(r.body, payload, sizeof payload);
    assert_string_equal(r.content_type, "image/x-test");
    char value[64];
    assert_true(hs_header(&r, "Retry-After", value, sizeof value));
    assert_true(hs_header(&r, "Hopper-Error", value, sizeof value));
    assert_string_equal(value, "full");
    hs_reply_free(&r);
    printf("507 after %d accepted, its 1000-byte payload back through nginx\n", accepted);
    stack_down(&st);
}

static void test_a_stopped_instance_fails_only_its_channels(void **state)
{
    (void)state;
    stack st;
    stack_up(&st, NULL);
    int owners[CHANNELS];
    char channel[32];
    for (int c = 0; c < CHANNELS; c++) {
        snprintf(channel, sizeof channel, "part-%d", c);
        assert_int_equal(hs_post_text(&st.proxy, channel, "before"), 202);
        owners[c] = owner(&st, channel);
        assert_true(owners[c] >= 0);
    }
    const int down = owners[0];
    int port = st.hopper[down].port;
    assert_int_equal(hs_stop(&st.hopper[down]), 0); /* its messages go to its disk */
    int failed = 0, served = 0;
    for (int c = 0; c < CHANNELS; c++) {
        snprintf(channel, sizeof channel, "part-%d", c);
        long status = hs_post_text(&st.proxy, channel, "during");
        if (owners[c] == down) {
            if (status < 500)
                fail_msg("%s (on the stopped instance) answered %ld", channel, status);
            failed++;
        } else {
            assert_int_equal(status, 202);
            served++;
        }
    }
    printf("instance %d stopped: %d channels failed (502), %d served\n", down, failed, served);
    /* nothing was moved to another instance */
    for (int c = 0; c < CHANNELS; c++) {
        snprintf(channel, sizeof channel, "part-%d", c);
        if (owners[c] == down)
            assert_int_equal(owner(&st, channel), -1);
    }
    /* back on the same port and data directory: its channels work again,
     * with what they held */
    char listen[32];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    const char *args[] = {"--listen", listen, NULL};
    assert_int_equal(hs_start_in(&st.hopper[down], st.dirs[down], args), 0);
    char got[32];
    for (int c = 0; c < CHANNELS; c++) {
        snprintf(channel, sizeof channel, "part-%d", c);
        long status = -1;
        double give_up = hs_now() + HS_PATIENCE_MS / 1000.0;
        while (status != 200 && hs_now() < give_up) /* nginx reconnects */
            status = hs_get_text(&st.proxy, channel, "0", got, sizeof got);
        assert_int_equal(status, 200);
        assert_string_equal(got, "before");
    }
    stack_down(&st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_channels_stick_and_spread),
        cmocka_unit_test(test_long_poll_through_the_proxy),
        cmocka_unit_test(test_507_with_its_payload_through_the_proxy),
        cmocka_unit_test(test_a_stopped_instance_fails_only_its_channels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
