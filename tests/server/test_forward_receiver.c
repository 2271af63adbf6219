/* test_forward_receiver.c - the receiver of the forwarding tests
 * (receiver.c) driven with libcurl, so that what it does is known before
 * hopper is tested against it: it records method, path, headers in order
 * and body bytes; it answers from its script (one-shot answers first, then
 * the default) with status, headers and body; it hangs, counting requests
 * in flight; it closes a connection without an answer; it goes down
 * (connection refused) and comes up on the same port. */
#include "receiver.h"

#include <curl/curl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define PATIENCE_MS 30000

/* What a request got back. */
typedef struct reply {
    CURLcode rc;
    long status;
    char headers[4096]; /* the raw header block, truncated */
    char body[1024];    /* truncated */
    double seconds;
} reply;

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    reply *out = userdata;
    size_t used = strlen(out->headers), n = size * nmemb;
    snprintf(out->headers + used, sizeof out->headers - used, "%.*s", (int)n, ptr);
    return n;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    reply *out = userdata;
    size_t used = strlen(out->body), n = size * nmemb;
    snprintf(out->body + used, sizeof out->body - used, "%.*s", (int)n, ptr);
    return n;
}

/* POST body[0..len) (GET if body is NULL) to the receiver's url + path,
 * with the header lines headers (NULL-terminated, may be NULL), over a
 * fresh connection. OUT: *out. */
static void send_request(const rc_receiver *r, const char *path, const void *body, size_t len,
                         const char *const *headers, reply *out)
{
    memset(out, 0, sizeof *out);
    char url[256];
    snprintf(url, sizeof url, "%s%s", rc_url(r), path);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    struct curl_slist *list = curl_slist_append(NULL, "Expect:");
    for (size_t i = 0; headers && headers[i]; i++)
        list = curl_slist_append(list, headers[i]);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)PATIENCE_MS);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, out);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    double start = rc_now();
    out->rc = curl_easy_perform(c);
    out->seconds = rc_now() - start;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    curl_slist_free_all(list);
    curl_easy_cleanup(c);
}

/* ---- recording ---- */

static void test_records_method_path_headers_body(void **state)
{
    rc_receiver *r = *state;
    unsigned char body[1500];
    for (size_t i = 0; i < sizeof body; i++)
        body[i] = (unsigned char)(i * 29 + 3); /* zeros and high bytes among them */
    const char *headers[] = {"Content-Type: application/x-test; v=1", "X-B: two", "X-A: one",
                             "X-A:  again", NULL};
    double before = rc_now();
    reply out;
    send_request(r, "/hook/a?x=1", body, sizeof body, headers, &out);
    double after = rc_now();
    assert_int_equal(out.rc, CURLE_OK);
    assert_int_equal(out.status, 200);

    assert_true(rc_wait_answered(r, 1, PATIENCE_MS));
    assert_int_equal(rc_count(r), 1);
    const rc_request *req = rc_request_at(r, 0);
    assert_non_null(req);
    assert_null(rc_request_at(r, 1));
    assert_string_equal(req->method, "POST");
    assert_string_equal(req->path, "/hook/a");
    assert_int_equal(req->body_len, sizeof body);
    assert_memory_equal(req->body, body, sizeof body);
    assert_string_equal(rc_header_value(req, "content-type"), "application/x-test; v=1");
    /* in the order sent, repeated ones apart, spelled as sent */
    size_t b = req->header_count, a1 = req->header_count, a2 = req->header_count;
    for (size_t i = 0; i < req->header_count; i++) {
        if (strcmp(req->headers[i].name, "X-B") == 0)
            b = i;
        else if (strcmp(req->headers[i].name, "X-A") == 0 && a1 == req->header_count)
            a1 = i;
        else if (strcmp(req->headers[i].name, "X-A") == 0)
            a2 = i;
    }
    assert_true(b < a1 && a1 < a2 && a2 < req->header_count);
    assert_string_equal(req->headers[a1].value, "one");
    assert_string_equal(req->headers[a2].value, "again");
    assert_int_equal(rc_header_count(req, "x-a"), 2);
    assert_null(rc_header_value(req, "X-C"));
    assert_true(req->arrived >= before && req->arrived <= req->answered);
    assert_true(req->answered <= after + 0.5);
    assert_int_equal(req->status, 200);

    send_request(r, "/other", NULL, 0, NULL, &out);
    assert_int_equal(out.status, 200);
    assert_true(rc_wait_answered(r, 2, PATIENCE_MS));
    req = rc_request_at(r, 1);
    assert_string_equal(req->method, "GET");
    assert_string_equal(req->path, "/other");
    assert_int_equal(req->body_len, 0);
}

/* ---- the script ---- */

static void test_answers_one_shots_then_default(void **state)
{
    rc_receiver *r = *state;
    rc_push_answer(r, &(rc_answer){.status = 503,
                                   .headers = "Retry-After: 7\nX-Why: busy",
                                   .body = "come back later"});
    rc_push_status(r, 201, 1);
    rc_set_default(r, &(rc_answer){.status = 204});
    assert_int_equal(rc_pending_answers(r), 2);
    reply out;
    send_request(r, "/", "1", 1, NULL, &out);
    assert_int_equal(out.status, 503);
    assert_non_null(strstr(out.headers, "Retry-After: 7\r\n"));
    assert_non_null(strstr(out.headers, "X-Why: busy\r\n"));
    assert_string_equal(out.body, "come back later");
    send_request(r, "/", "2", 1, NULL, &out);
    assert_int_equal(out.status, 201);
    for (int i = 0; i < 2; i++) {
        send_request(r, "/", "3", 1, NULL, &out);
        assert_int_equal(out.status, 204);
    }
    assert_int_equal(rc_pending_answers(r), 0);
    assert_true(rc_wait_answered(r, 4, PATIENCE_MS));
    assert_int_equal(rc_request_at(r, 0)->status, 503);
    assert_int_equal(rc_request_at(r, 3)->status, 204);
}

/* ---- hangs and requests in flight ---- */

static void test_hang_delays_the_answer(void **state)
{
    rc_receiver *r = *state;
    rc_push_answer(r, &(rc_answer){.status = 202, .hang_ms = 300});
    reply out;
    send_request(r, "/", "x", 1, NULL, &out);
    assert_int_equal(out.status, 202);
    assert_true(out.seconds >= 0.3);
    assert_true(rc_wait_answered(r, 1, PATIENCE_MS));
    const rc_request *req = rc_request_at(r, 0);
    assert_true(req->answered - req->arrived >= 0.3);
}

typedef struct concurrent {
    const rc_receiver *r;
    reply out;
} concurrent;

static void *send_on_thread(void *arg)
{
    concurrent *c = arg;
    send_request(c->r, "/", "c", 1, NULL, &c->out);
    return NULL;
}

static void test_counts_requests_in_flight(void **state)
{
    rc_receiver *r = *state;
    rc_set_default(r, &(rc_answer){.status = 200, .hang_ms = 400});
    concurrent c[3];
    pthread_t t[3];
    for (int i = 0; i < 3; i++) {
        c[i].r = r;
        assert_int_equal(pthread_create(&t[i], NULL, send_on_thread, &c[i]), 0);
    }
    assert_true(rc_wait_requests(r, 3, PATIENCE_MS));
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 3; i++)
        assert_int_equal(c[i].out.status, 200);
    /* each hung 400 ms, all at once */
    assert_int_equal(rc_max_in_flight(r), 3);
    assert_true(rc_wait_answered(r, 3, PATIENCE_MS));
    assert_int_equal(rc_in_flight(r), 0);
}

/* ---- closing, going down ---- */

static void test_close_without_answer(void **state)
{
    rc_receiver *r = *state;
    rc_push_answer(r, &(rc_answer){.close = true});
    reply out;
    send_request(r, "/", "x", 1, NULL, &out);
    assert_int_equal(out.rc, CURLE_GOT_NOTHING);
    assert_true(rc_wait_answered(r, 1, PATIENCE_MS));
    assert_int_equal(rc_request_at(r, 0)->status, 0);
    send_request(r, "/", "y", 1, NULL, &out);
    assert_int_equal(out.status, 200);
}

static void test_down_refuses_and_up_takes_the_same_port(void **state)
{
    rc_receiver *r = *state;
    int port = rc_port(r);
    reply out;
    send_request(r, "/", "1", 1, NULL, &out);
    assert_int_equal(out.status, 200);
    rc_down(r);
    rc_down(r); /* again: nothing */
    send_request(r, "/", "2", 1, NULL, &out);
    assert_int_equal(out.rc, CURLE_COULDNT_CONNECT);
    assert_int_equal(rc_up(r), 0);
    assert_int_equal(rc_port(r), port);
    send_request(r, "/", "3", 1, NULL, &out);
    assert_int_equal(out.status, 200);
    assert_int_equal(rc_count(r), 2); /* what it recorded is kept */
    assert_string_equal((char *)rc_request_at(r, 1)->body, "3");
}

static void test_down_ends_a_hang(void **state)
{
    rc_receiver *r = *state;
    rc_push_answer(r, &(rc_answer){.status = 200, .hang_ms = 20000});
    concurrent c = {.r = r};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, send_on_thread, &c), 0);
    assert_true(rc_wait_requests(r, 1, PATIENCE_MS));
    double start = rc_now();
    rc_down(r);
    pthread_join(t, NULL);
    assert_true(rc_now() - start < 5.0);
    assert_int_not_equal(c.out.rc, CURLE_OK);
    assert_int_equal(rc_request_at(r, 0)->status, 0);
    assert_int_equal(rc_in_flight(r), 0);
    assert_int_equal(rc_up(r), 0);
    reply out;
    send_request(r, "/", "after", 5, NULL, &out);
    assert_int_equal(out.status, 200);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
#define T(test) cmocka_unit_test_setup_teardown(test, rc_setup, rc_teardown)
    const struct CMUnitTest tests[] = {
        T(test_records_method_path_headers_body),
        T(test_answers_one_shots_then_default),
        T(test_hang_delays_the_answer),
        T(test_counts_requests_in_flight),
        T(test_close_without_answer),
        T(test_down_refuses_and_up_takes_the_same_port),
        T(test_down_ends_a_hang),
    };
#undef T
    const char *filter = getenv("HOPPER_TEST_FILTER");
    if (filter)
        cmocka_set_test_filter(filter);
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return failed;
}
