/* test_auth_file.c - the --auth-file parser (server/auth_file.c) and the
 * decision of server/auth.c, in process: the format's edge cases, the
 * glob match (jobs* is jobs and jobs.dead; jobs is not jobs2), the lookup
 * of a presented token, the Authorization header's forms, every route in
 * the class table, and the hook of signed channels. */
#include "auth.h"
#include "auth_file.h"
#include "hex.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* "HEX SCOPES" for token. */
static void line_of(const char *token, const char *scopes, char *out, size_t size)
{
    uint8_t digest[AUTH_DIGEST_SIZE];
    auth_digest(token, strlen(token), digest);
    char hex[2 * AUTH_DIGEST_SIZE + 1];
    hex_encode(digest, sizeof digest, hex);
    snprintf(out, size, "%s %s", hex, scopes);
}

static auth_set *parse_ok(const char *text)
{
    auth_set *set = NULL;
    char why[256] = "";
    if (!auth_file_parse(text, strlen(text), "f", &set, why, sizeof why))
        fail_msg("refused: %s\n%s", why, text);
    return set;
}

/* text must be refused with why beginning with message. */
static void parse_refused(const char *text, size_t len, const char *message)
{
    auth_set *set = (auth_set *)1; /* must stay untouched */
    char why[256] = "";
    assert_false(auth_file_parse(text, len, "f", &set, why, sizeof why));
    assert_ptr_equal(set, (auth_set *)1);
    if (strncmp(why, message, strlen(message)) != 0)
        fail_msg("why '%s', expected '%s...'", why, message);
}

static void test_glob(void **state)
{
    (void)state;
    assert_true(auth_glob_match("jobs*", "jobs"));
    assert_true(auth_glob_match("jobs*", "jobs.dead"));
    assert_true(auth_glob_match("jobs*", "jobs2"));
    assert_false(auth_glob_match("jobs*", "job"));
    assert_false(auth_glob_match("jobs*", "Jobs"));
    assert_true(auth_glob_match("jobs", "jobs"));
    assert_false(auth_glob_match("jobs", "jobs2"));
    assert_false(auth_glob_match("jobs", "jobs.dead"));
    assert_false(auth_glob_match("jobs", "job"));
    assert_true(auth_glob_match("*", "a"));
    assert_true(auth_glob_match("*", "x.dead"));
    assert_false(auth_glob_match("a.*", "a"));
    assert_true(auth_glob_match("a.*", "a.b"));
}

static void test_parse_and_find(void **state)
{
    (void)state;
    char a[256], b[256], text[1024];
    line_of("alpha", "send:jobs*\treceive:jobs  # alpha's", a, sizeof a);
    line_of("beta", "metrics admin:*", b, sizeof b);
    snprintf(text, sizeof text, "# header\n\n   \n%s\r\n\t%s", a, b); /* no final newline */
    auth_set *set = parse_ok(text);
    assert_int_equal(set->token_count, 2);
    assert_int_equal(set->scope_count, 4);

    uint8_t digest[AUTH_DIGEST_SIZE];
    auth_digest("alpha", 5, digest);
    const auth_token *t = auth_set_find(set, digest);
    assert_non_null(t);
    assert_int_equal(t->line, 4);
    assert_true(auth_token_grants(set, t, AUTH_SCOPE_SEND, "jobs.dead"));
    assert_true(auth_token_grants(set, t, AUTH_SCOPE_RECEIVE, "jobs"));
    assert_false(auth_token_grants(set, t, AUTH_SCOPE_RECEIVE, "jobs.dead"));
    assert_false(auth_token_grants(set, t, AUTH_SCOPE_ADMIN, "jobs"));
    assert_false(auth_token_grants(set, t, AUTH_SCOPE_METRICS, ""));
    auth_digest("beta", 4, digest);
    t = auth_set_find(set, digest);
    assert_non_null(t);
    assert_int_equal(t->line, 5);
    assert_true(auth_token_grants(set, t, AUTH_SCOPE_METRICS, ""));
    assert_true(auth_token_grants(set, t, AUTH_SCOPE_ADMIN, "anything"));
    assert_false(auth_token_grants(set, t, AUTH_SCOPE_SEND, "anything"));
    auth_digest("gamma", 5, digest);
    assert_null(auth_set_find(set, digest));
    auth_digest("alph", 4, digest);
    assert_null(auth_set_find(set, digest));
    auth_set_free(set);

    /* an empty file, and one of comments, hold no token: every token is
     * refused */
    set = parse_ok("");
    assert_int_equal(set->token_count, 0);
    assert_null(auth_set_find(set, digest));
    auth_set_free(set);
    set = parse_ok("# nothing yet\n\n");
    assert_int_equal(set->token_count, 0);
    auth_set_free(set);
}

static void test_refused(void **state)
{
    (void)state;
    char good[256], text[1024];
    line_of("t", "send:a", good, sizeof good);
    const char *hash = good; /* its first 64 characters */
    static const struct {
        const char *fmt;
        const char *why;
    } cases[] = {
        {"%.64s", "f:1: the token has no scope"},
        {"%.63s send:a", "f:1: the first field is 63 characters"},
        {"%.64s0 send:a", "f:1: the first field is 65 characters"},
        {"%.62sXY send:a", "f:1: the first field is not 64 lowercase"},
        {"#\n%.64s send", "f:2: send needs a channel"},
        {"%.64s send:", "f:1: send: has no channel"},
        {"%.64s send:a b", "f:1: 'b' is no scope"},
        {"%.64s Send:a", "f:1: 'Send:a' is no scope"},
        {"%.64s send:**", "f:1: send:**: a channel is letters"},
        {"%.64s send:a*b", "f:1: send:a*b: a channel is letters"},
        {"%.64s send:.", "f:1: send:. is not a channel name"},
        {"%.64s send:..", "f:1: send:.. is not a channel name"},
        {"%.64s metrics:*", "f:1: metrics takes no channel"},
        {"%1$.64s send:a\n\n%1$.64s receive:b", "f:3: the same token as line 1"},
        {"%.64s send:a\rb", "f:1: holds a NUL or carriage return"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(text, sizeof text, cases[i].fmt, hash);
        parse_refused(text, strlen(text), cases[i].why);
    }
    /* a NUL inside a line */
    snprintf(text, sizeof text, "%.64s send:a", hash);
    text[66] = '\0';
    parse_refused(text, 72, "f:1: holds a NUL");
    /* names up to 128 characters, and a prefix of 128 and its '*' */
    char name[140];
    memset(name, 'n', 128);
    name[128] = '\0';
    snprintf(text, sizeof text, "%.64s send:%s receive:%s*", hash, name, name);
    auth_set_free(parse_ok(text));
    snprintf(text, sizeof text, "%.64s send:%sn", hash, name);
    parse_refused(text, strlen(text), "f:1: send: the channel is longer than 128");
    /* scopes per token */
    size_t n = (size_t)snprintf(text, sizeof text, "%.64s", hash);
    for (int i = 0; i <= AUTH_FILE_MAX_SCOPES; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, " metrics");
    parse_refused(text, n, "f:1: more than 64 scopes");
}

/* auth_decide() for kind on channel with an Authorization value. */
static auth_verdict decide(const auth_set *set, route_kind kind, const char *channel,
                           const char *authorization)
{
    auth_question q = {.kind = kind, .channel = channel, .authorization = authorization};
    const auth_token *who;
    return auth_decide(set, &q, &who);
}

static void test_decide(void **state)
{
    (void)state;
    char line[256];
    line_of("tok", "send:jobs* receive:orders", line, sizeof line);
    auth_set *set = parse_ok(line);
    /* the header's forms */
    assert_int_equal(decide(set, ROUTE_POST, "jobs", "Bearer tok"), AUTH_ALLOWED);
    assert_int_equal(decide(set, ROUTE_POST, "jobs", "bearer   tok  "), AUTH_ALLOWED);
    assert_int_equal(decide(set, ROUTE_POST, "jobs", NULL), AUTH_NO_TOKEN);
    assert_int_equal(decide(set, ROUTE_POST, "jobs", "Basic dG9rOg=="), AUTH_NO_TOKEN);
    assert_int_equal(decide(set, ROUTE_POST, "jobs", "Bearertok"), AUTH_NO_TOKEN);
    assert_int_equal(decide(set, ROUTE_POST, "jobs", "Bearer "), AUTH_BAD_TOKEN);
    assert_int_equal(decide(set, ROUTE_POST, "jobs", "Bearer tok2"), AUTH_BAD_TOKEN);
    assert_int_equal(decide(set, ROUTE_POST, "jobs", "Bearer to"), AUTH_BAD_TOKEN);
    /* scopes against routes */
    assert_int_equal(decide(set, ROUTE_POST, "jobs.dead", "Bearer tok"), AUTH_ALLOWED);
    assert_int_equal(decide(set, ROUTE_GET, "jobs", "Bearer tok"), AUTH_NO_SCOPE);
    assert_int_equal(decide(set, ROUTE_GET, "orders", "Bearer tok"), AUTH_ALLOWED);
    assert_int_equal(decide(set, ROUTE_ACK, "orders2", "Bearer tok"), AUTH_NO_SCOPE);
    assert_int_equal(decide(set, ROUTE_PURGE, "orders", "Bearer tok"), AUTH_NO_SCOPE);
    assert_int_equal(decide(set, ROUTE_STATUS, "", "Bearer tok"), AUTH_NO_SCOPE);
    assert_int_equal(decide(set, ROUTE_WHOAMI, "", "Bearer tok"), AUTH_ALLOWED);
    assert_int_equal(decide(set, ROUTE_WHOAMI, "", NULL), AUTH_NO_TOKEN);
    assert_int_equal(decide(set, ROUTE_HEALTHZ, "", NULL), AUTH_ALLOWED);
    assert_int_equal(decide(set, ROUTE_READYZ, "", "Bearer nope"), AUTH_ALLOWED);
    assert_int_equal(decide(set, ROUTE_ERROR, "", NULL), AUTH_NO_TOKEN);
    /* --public-metrics */
    auth_question q = {.kind = ROUTE_METRICS, .channel = "", .public_metrics = true};
    const auth_token *who;
    assert_int_equal(auth_decide(set, &q, &who), AUTH_ALLOWED);
    /* a signed channel's POST needs no token, and nothing else is eased */
    q = (auth_question){.kind = ROUTE_POST, .channel = "hooks", .signed_channel = true};
    assert_int_equal(auth_decide(set, &q, &who), AUTH_ALLOWED);
    q.kind = ROUTE_GET;
    assert_int_equal(auth_decide(set, &q, &who), AUTH_NO_TOKEN);
    /* without a set everything is allowed */
    assert_int_equal(decide(NULL, ROUTE_DELETE, "jobs", NULL), AUTH_ALLOWED);
    auth_set_free(set);
}

static void test_every_route_has_a_class(void **state)
{
    (void)state;
    for (int kind = 0; kind < ROUTE_KINDS; kind++)
        if (auth_class_of((route_kind)kind) == AUTH_UNLISTED)
            fail_msg("route kind %d has no class in auth.c", kind);
    assert_int_equal(auth_class_of(ROUTE_KINDS), AUTH_UNLISTED);
    assert_int_equal(auth_class_of(ROUTE_POST), AUTH_SEND);
    assert_int_equal(auth_class_of(ROUTE_REDRIVE), AUTH_ADMIN);
    assert_int_equal(auth_class_of(ROUTE_PEEK), AUTH_RECEIVE);
    assert_int_equal(auth_class_of(ROUTE_LIST), AUTH_METRICS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_glob),
        cmocka_unit_test(test_parse_and_find),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_decide),
        cmocka_unit_test(test_every_route_has_a_class),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
