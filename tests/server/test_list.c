/* test_list.c - GET /channels: one summary per channel, sorted by name,
 * with exact counts of ready, leased, delayed messages and waiting GETs;
 * ?prefix= filtering and its 400; an empty server; HEAD; 405. */
#include "harness.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

/* The fields every entry has, and nothing else for a channel that is not
 * forwarded. */
static const char *const fields[] = {
    "name",    "messages",          "memory_bytes", "disk_bytes", "leased",
    "delayed", "waiting_receivers", "paused",       "forwarded",  "oldest_age_seconds"};
#define FIELD_COUNT (sizeof fields / sizeof fields[0])

/* GET path: 200 JSON {"channels": [...]}; returns the array's document
 * (new: json_decref() it). */
static json_t *get_list(const hs_server *s, const char *path)
{
    hs_reply r;
    assert_int_equal(hs_get(s, path, &r), 0);
    if (r.status != 200)
        fail_msg("GET %s: %ld %s", path, r.status, (const char *)r.body);
    assert_string_equal(r.content_type, "application/json");
    json_t *doc = json_loadb((const char *)r.body, r.len, 0, NULL);
    hs_reply_free(&r);
    assert_non_null(doc);
    assert_int_equal(json_object_size(doc), 1);
    assert_true(json_is_array(json_object_get(doc, "channels")));
    return doc;
}

/* The names the list of path holds, in its order, joined by ",". */
static void list_names(const hs_server *s, const char *path, char *out, size_t size)
{
    json_t *doc = get_list(s, path), *entry;
    size_t i, n = 0;
    out[0] = '\0';
    json_array_foreach(json_object_get(doc, "channels"), i, entry)
    {
        n += (size_t)snprintf(out + n, size - n, "%s%s", i ? "," : "",
                              json_string_value(json_object_get(entry, "name")));
        assert_true(n < size);
    }
    json_decref(doc);
}

static long long number(json_t *entry, const char *field)
{
    json_t *v = json_object_get(entry, field);
    if (!json_is_integer(v))
        fail_msg("%s is not an integer", field);
    return json_integer_value(v);
}

/* entry must have exactly the fields above with these values, and its
 * memory_bytes and disk_bytes must be what /status says. */
static void expect_entry(const hs_server *s, json_t *entry, const char *name, long long messages,
                         long long leased, long long delayed, long long waiting)
{
    assert_int_equal(json_object_size(entry), FIELD_COUNT);
    for (size_t i = 0; i < FIELD_COUNT; i++)
        if (json_object_get(entry, fields[i]) == NULL)
            fail_msg("%s: no field %s", name, fields[i]);
    assert_string_equal(json_string_value(json_object_get(entry, "name")), name);
    assert_int_equal(number(entry, "messages"), messages);
    assert_int_equal(number(entry, "leased"), leased);
    assert_int_equal(number(entry, "delayed"), delayed);
    assert_int_equal(number(entry, "waiting_receivers"), waiting);
    assert_int_equal(number(entry, "memory_bytes"), hs_status_value(s, name, "memory_bytes"));
    assert_int_equal(number(entry, "disk_bytes"), hs_status_value(s, name, "disk_bytes"));
    json_t *age = json_object_get(entry, "oldest_age_seconds");
    assert_true(json_is_real(age) && json_real_value(age) >= 0 && json_real_value(age) < 60);
    if (messages == 0)
        assert_true(json_real_value(age) == 0);
    assert_true(json_is_false(json_object_get(entry, "paused")));
    assert_true(json_is_false(json_object_get(entry, "forwarded")));
}

static void test_empty_server(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    json_t *doc = get_list(&s, "/channels");
    assert_int_equal(json_array_size(json_object_get(doc, "channels")), 0);
    json_decref(doc);
    doc = get_list(&s, "/channels?prefix=a");
    assert_int_equal(json_array_size(json_object_get(doc, "channels")), 0);
    json_decref(doc);
    hs_stop_ok(&s);
}

/* Channels made in no particular order, with known contents. */
static void test_fields_and_order(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    hs_expect_nothing(&s, "gamma", "0", NULL); /* made, empty */
    for (int i = 0; i < 3; i++)
        hs_expect_post(&s, "alpha", "a", 202);
    hs_reply r;
    assert_int_equal(hs_get_leased(&s, "alpha", "0", "60", &r), 200); /* one leased */
    hs_reply_free(&r);
    assert_int_equal(hs_post(&s, "/channels/beta?delay=60", "b", 1, "text/plain", &r), 0);
    assert_int_equal(r.status, 202);
    hs_reply_free(&r);
    hs_expect_post(&s, "beta", "b", 202);
    hs_pending_get g;
    hs_get_begin_ok(&g, &s, "/channels/gamma?wait=20");
    hs_get_await_waiting(&g, "gamma", 1);

    json_t *doc = get_list(&s, "/channels");
    json_t *list = json_object_get(doc, "channels");
    assert_int_equal(json_array_size(list), 3);
    expect_entry(&s, json_array_get(list, 0), "alpha", 2, 1, 0, 0);
    expect_entry(&s, json_array_get(list, 1), "beta", 1, 0, 1, 0);
    expect_entry(&s, json_array_get(list, 2), "gamma", 0, 0, 0, 1);
    /* the same one-byte bodies: alpha holds two in memory, beta one */
    long long alpha = number(json_array_get(list, 0), "memory_bytes");
    assert_true(alpha > 0);
    assert_int_equal(alpha, 2 * number(json_array_get(list, 1), "memory_bytes"));
    assert_int_equal(number(json_array_get(list, 2), "memory_bytes"), 0);
    json_decref(doc);

    hs_expect_post(&s, "gamma", "g", 202);
    hs_get_end_ok(&g, 200);
    hs_reply_free(&g.reply);
    hs_stop_ok(&s);
}

static void test_prefix(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    const char *names[] = {"b.x", "a-1", "ab", "a", "A", "abc", "b_y", "ba"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        hs_expect_post(&s, names[i], "x", 202);
    char got[256];
    list_names(&s, "/channels", got, sizeof got);
    assert_string_equal(got, "A,a,a-1,ab,abc,b.x,b_y,ba"); /* byte order */
    list_names(&s, "/channels?prefix=a", got, sizeof got);
    assert_string_equal(got, "a,a-1,ab,abc");
    list_names(&s, "/channels?prefix=ab", got, sizeof got);
    assert_string_equal(got, "ab,abc");
    list_names(&s, "/channels?prefix=abc", got, sizeof got);
    assert_string_equal(got, "abc");
    list_names(&s, "/channels?prefix=b.", got, sizeof got);
    assert_string_equal(got, "b.x");
    list_names(&s, "/channels?prefix=zz", got, sizeof got);
    assert_string_equal(got, "");
    list_names(&s, "/channels?prefix=", got, sizeof got);
    assert_string_equal(got, "A,a,a-1,ab,abc,b.x,b_y,ba");

    hs_expect_error(&s, "GET", "/channels?prefix=a%2Fb", 400, "bad_prefix");
    hs_expect_error(&s, "GET", "/channels?prefix=a%20b", 400, "bad_prefix");
    hs_expect_error(&s, "GET", "/channels?prefix=a%00", 400, "bad_prefix");
    hs_expect_error(&s, "GET", "/channels?prefix", 400, "bad_prefix");
    char path[256];
    int n = snprintf(path, sizeof path, "/channels?prefix=");
    for (int i = 0; i < 129; i++)
        path[n++] = 'a';
    path[n] = '\0';
    hs_expect_error(&s, "GET", path, 400, "bad_prefix");
    path[n - 1] = '\0'; /* 128: the longest name is a prefix */
    list_names(&s, path, got, sizeof got);
    assert_string_equal(got, "");
    hs_stop_ok(&s);
}

static void test_head_and_methods(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    hs_expect_post(&s, "one", "x", 202);
    hs_reply r;
    assert_int_equal(hs_request(&s, "HEAD", "/channels", NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, 0);
    assert_string_equal(r.content_type, "application/json");
    hs_reply_free(&r);
    const char *methods[] = {"POST", "DELETE", "PUT"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        hs_expect_error(&s, methods[i], "/channels", 405, "method_not_allowed");
        assert_int_equal(hs_request(&s, methods[i], "/channels", NULL, 0, NULL, &r), 0);
        char allow[64];
        assert_true(hs_header(&r, "Allow", allow, sizeof allow));
        assert_string_equal(allow, "GET, HEAD");
        hs_reply_free(&r);
    }
    hs_stop_ok(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_server),
        cmocka_unit_test(test_fields_and_order),
        cmocka_unit_test(test_prefix),
        cmocka_unit_test(test_head_and_methods),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
