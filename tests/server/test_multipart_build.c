/* test_multipart_build.c - the writing side of server/multipart.c: the
 * Content-Type of a boundary, the layout of a body, which headers may be
 * written, a boundary chosen to occur in no part, and 500 random sets of
 * parts that, written, parse back to the same. (Reading bodies:
 * test_multipart.c.) */
#include "multipart_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* ---- Content-Type ---- */

static void test_content_type(void **state)
{
    (void)state;
    const char *boundaries[] = {"abc", "simple boundary", "a:b", "hopper-0123456789abcdef"};
    for (size_t i = 0; i < sizeof boundaries / sizeof boundaries[0]; i++) {
        char ct[MULTIPART_CONTENT_TYPE_SIZE];
        multipart_content_type(boundaries[i], ct);
        mu_expect_boundary(ct, boundaries[i]);
    }
    char ct[MULTIPART_CONTENT_TYPE_SIZE];
    multipart_content_type("abc", ct);
    assert_string_equal(ct, "multipart/mixed; boundary=abc");
    multipart_content_type("a b", ct);
    assert_string_equal(ct, "multipart/mixed; boundary=\"a b\"");
    char longest[MULTIPART_BOUNDARY_SIZE];
    memset(longest, ' ', MULTIPART_BOUNDARY_MAX);
    longest[0] = longest[MULTIPART_BOUNDARY_MAX - 1] = 'x';
    longest[MULTIPART_BOUNDARY_MAX] = '\0';
    multipart_content_type(longest, ct);
    assert_int_equal(strlen(ct) + 1, MULTIPART_CONTENT_TYPE_SIZE);
    mu_expect_boundary(ct, longest);
}

/* ---- Building ---- */

static void test_build_layout(void **state)
{
    (void)state;
    multipart_header headers[] = {{"Content-Type", 12, "text/plain", 10}, {"X-Id", 4, "7", 1}};
    multipart_outgoing_part parts[] = {{headers, 2, "hi", 2}, {NULL, 0, NULL, 0}};
    const char expected[] = "--B\r\n"
                            "Content-Type: text/plain\r\n"
                            "X-Id: 7\r\n"
                            "\r\n"
                            "hi\r\n"
                            "--B\r\n"
                            "\r\n"
                            "\r\n"
                            "--B--\r\n";
    size_t size = multipart_body_size(parts, 2, "B");
    assert_int_equal(size, sizeof expected - 1);
    unsigned char *out = malloc(size);
    assert_int_equal(multipart_write_body(out, parts, 2, "B"), size);
    assert_memory_equal(out, expected, size);
    free(out);

    /* No parts: only the close, which the parser refuses. */
    unsigned char none[16];
    assert_int_equal(multipart_body_size(NULL, 0, "B"), 7);
    assert_int_equal(multipart_write_body(none, NULL, 0, "B"), 7);
    assert_memory_equal(none, "--B--\r\n", 7);
    mu_parsed p;
    mu_parse_into(&p, none, 7, "B");
    assert_int_equal(p.err, MULTIPART_NO_PARTS);
    free(p.copy);
}

static void test_header_valid(void **state)
{
    (void)state;
    const multipart_header good[] = {
        {"A", 1, "", 0}, {"X-Y", 3, "a b\tc", 5}, {"A", 1, "\xc3\xa9", 2}, {"A", 1, "a:b", 3}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_true(multipart_header_valid(&good[i]));
    const multipart_header bad[] = {{"", 0, "x", 1},     {"A B", 3, "x", 1},  {"A:", 2, "x", 1},
                                    {"A", 1, " x", 2},   {"A", 1, "x\t", 2},  {"A", 1, "a\rb", 3},
                                    {"A", 1, "a\nb", 3}, {"A", 1, "a\0b", 3}, {"A", 1, "\x7f", 1}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(multipart_header_valid(&bad[i]));
}

/* The chosen boundary skips every candidate the parts contain, wherever they
 * contain it: body start, body middle, header value, header name. */
static void test_boundary_avoids_parts(void **state)
{
    (void)state;
    const uint64_t seed = 42;
    char candidates[5][MULTIPART_BOUNDARY_SIZE];
    for (uint64_t i = 0; i < 5; i++) {
        multipart_boundary_candidate(seed, i, candidates[i]);
        assert_int_equal(strlen(candidates[i]), MULTIPART_GENERATED_BOUNDARY_LEN);
        for (uint64_t j = 0; j < i; j++)
            assert_string_not_equal(candidates[i], candidates[j]);
    }
    size_t n = MULTIPART_GENERATED_BOUNDARY_LEN;
    char body0[128];
    memcpy(body0, candidates[0], n);
    char body1[128] = "before ";
    memcpy(body1 + 7, candidates[1], n);
    memcpy(body1 + 7 + n, " after", 6);
    multipart_header headers[] = {{"X-A", 3, candidates[2], n}, {candidates[3], n, "v", 1}};
    assert_true(multipart_header_valid(&headers[1])); /* a candidate is a token */
    multipart_outgoing_part parts[] = {
        {NULL, 0, body0, n}, {NULL, 0, body1, 7 + n + 6}, {headers, 2, "", 0}};

    char chosen[MULTIPART_BOUNDARY_SIZE];
    multipart_choose_boundary(parts, 3, seed, chosen);
    assert_string_equal(chosen, candidates[4]);
    multipart_choose_boundary(parts, 2, seed, chosen); /* without the headers */
    assert_string_equal(chosen, candidates[2]);
    multipart_choose_boundary(NULL, 0, seed, chosen);
    assert_string_equal(chosen, candidates[0]);

    /* and the body parses back */
    multipart_choose_boundary(parts, 3, seed, chosen);
    size_t size = multipart_body_size(parts, 3, chosen);
    unsigned char *out = malloc(size);
    multipart_write_body(out, parts, 3, chosen);
    mu_parsed p;
    mu_parse_ok(&p, out, size, chosen, 3);
    mu_expect_body(&p.parts[0], body0, n);
    mu_expect_body(&p.parts[1], body1, 7 + n + 6);
    free(p.copy);
    free(out);

    /* Seeds from multipart_seed differ. */
    uint64_t a = multipart_seed();
    uint64_t b = multipart_seed();
    assert_true(a != b);
}

/* ---- Random round trips ---- */

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    /* xorshift64*: reproducible, so a failure names its seed */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * UINT64_C(2685821657736338717);
}

static size_t rng_below(size_t n)
{
    return (size_t)(rng_next() % n);
}

#define RANDOM_HEADERS 6
#define RANDOM_BODY_MAX 300

typedef struct random_part {
    char names[RANDOM_HEADERS][12];
    char values[RANDOM_HEADERS][24];
    multipart_header headers[RANDOM_HEADERS];
    unsigned char body[RANDOM_BODY_MAX];
} random_part;

static void random_token(char *out, size_t len)
{
    static const char tchars[] = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                 "abcdefghijklmnopqrstuvwxyz";
    for (size_t i = 0; i < len; i++)
        out[i] = tchars[rng_below(sizeof tchars - 1)];
}

static void random_value(char *out, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        size_t kind = rng_below(8);
        if (kind == 0)
            out[i] = rng_below(2) ? ' ' : '\t';
        else if (kind == 1)
            out[i] = (char)(0x80 + rng_below(0x80)); /* obs-text */
        else
            out[i] = (char)(0x21 + rng_below(0x7f - 0x21));
    }
    if (len > 0 && (out[0] == ' ' || out[0] == '\t'))
        out[0] = 'x';
    if (len > 0 && (out[len - 1] == ' ' || out[len - 1] == '\t'))
        out[len - 1] = 'y';
}

/* Random bytes, sprinkled with line ends, dashes and the first boundary
 * candidate (in whole or in part) so that delimiters are nearly there. */
static size_t random_body(unsigned char *out, const char *candidate)
{
    size_t len = rng_below(4) == 0 ? 0 : rng_below(RANDOM_BODY_MAX);
    for (size_t i = 0; i < len; i++)
        out[i] = (unsigned char)rng_next();
    static const char *bits[] = {"\r\n", "--", "\r\n--", "\0", "\r", "\n", "--\r\n"};
    for (size_t k = rng_below(6); k > 0 && len > 0; k--) {
        size_t at = rng_below(len);
        if (rng_below(3) == 0) {
            size_t n = MULTIPART_GENERATED_BOUNDARY_LEN - rng_below(2);
            if (at + n <= len)
                memcpy(out + at, candidate, n);
        } else {
            const char *bit = bits[rng_below(sizeof bits / sizeof bits[0])];
            size_t n = strlen(bit) ? strlen(bit) : 1;
            if (at + n <= len)
                memcpy(out + at, bit, n);
        }
    }
    return len;
}

static void test_round_trip_random(void **state)
{
    (void)state;
    static random_part storage[MU_MAX_PARTS];
    multipart_outgoing_part parts[MU_MAX_PARTS];
    for (uint64_t round = 1; round <= 500; round++) {
        rng_state = round * UINT64_C(0x9e3779b97f4a7c15);
        uint64_t seed = rng_next();
        char first_candidate[MULTIPART_BOUNDARY_SIZE];
        multipart_boundary_candidate(seed, 0, first_candidate);
        size_t count = 1 + rng_below(MU_MAX_PARTS);
        for (size_t i = 0; i < count; i++) {
            random_part *r = &storage[i];
            parts[i].headers = r->headers;
            parts[i].header_count = rng_below(RANDOM_HEADERS + 1);
            for (size_t j = 0; j < parts[i].header_count; j++) {
                multipart_header *h = &r->headers[j];
                h->name = r->names[j];
                h->name_len = 1 + rng_below(sizeof r->names[j]);
                random_token(r->names[j], h->name_len);
                h->value = r->values[j];
                h->value_len = rng_below(sizeof r->values[j] + 1);
                random_value(r->values[j], h->value_len);
                assert_true(multipart_header_valid(h));
            }
            parts[i].body = r->body;
            parts[i].body_len = random_body(r->body, first_candidate);
        }

        char boundary[MULTIPART_BOUNDARY_SIZE];
        multipart_choose_boundary(parts, count, seed, boundary);
        char content_type[MULTIPART_CONTENT_TYPE_SIZE];
        multipart_content_type(boundary, content_type);
        char read_back[MULTIPART_BOUNDARY_SIZE];
        assert_true(multipart_boundary(content_type, read_back));
        assert_string_equal(read_back, boundary);

        size_t size = multipart_body_size(parts, count, boundary);
        unsigned char *body = malloc(size);
        assert_int_equal(multipart_write_body(body, parts, count, boundary), size);
        mu_parsed p;
        mu_parse_into(&p, body, size, read_back);
        if (p.err != MULTIPART_OK)
            fail_msg("round %llu: %s", (unsigned long long)round, multipart_err_name(p.err));
        assert_int_equal(p.count, count);
        for (size_t i = 0; i < count; i++) {
            const multipart_part *got = &p.parts[i];
            assert_int_equal(got->header_count, parts[i].header_count);
            size_t offset = 0;
            multipart_header h;
            for (size_t j = 0; j < parts[i].header_count; j++) {
                const multipart_header *want = &parts[i].headers[j];
                assert_true(multipart_header_next(got, &offset, &h));
                assert_int_equal(h.name_len, want->name_len);
                assert_memory_equal(h.name, want->name, h.name_len);
                assert_int_equal(h.value_len, want->value_len);
                if (h.value_len > 0)
                    assert_memory_equal(h.value, want->value, h.value_len);
            }
            assert_false(multipart_header_next(got, &offset, &h));
            mu_expect_body(got, parts[i].body, parts[i].body_len);
        }
        free(p.copy);
        free(body);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_type),      cmocka_unit_test(test_build_layout),
        cmocka_unit_test(test_header_valid),      cmocka_unit_test(test_boundary_avoids_parts),
        cmocka_unit_test(test_round_trip_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
