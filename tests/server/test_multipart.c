/* test_multipart.c - server/multipart.c: the boundary of a Content-Type, the
 * parsing of multipart/mixed bodies (RFC 2046's example, binary parts, near
 * misses of the boundary, every truncation and corruption refused or read
 * consistently), and building bodies that parse back to the same parts. Every
 * body is parsed from a heap copy of exactly its size, so the sanitizer build
 * catches any read outside it. */
#include "multipart.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define MAX_TEST_PARTS 16

/* A string literal with its length, NUL bytes included. */
#define LIT(s) s, sizeof s - 1

/* A heap copy of bytes[0..len) of exactly that size (1 byte for none). New. */
static unsigned char *exact_copy(const void *bytes, size_t len)
{
    unsigned char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len > 0)
        memcpy(copy, bytes, len);
    return copy;
}

/* A parse of an exact copy of a body; the parts point into copy. */
typedef struct parsed {
    unsigned char *copy;
    size_t len;
    multipart_err err;
    multipart_part parts[MAX_TEST_PARTS];
    size_t count;
} parsed;

static void parse_into(parsed *p, const void *body, size_t len, const char *boundary)
{
    p->copy = exact_copy(body, len);
    p->len = len;
    p->err = multipart_parse(p->copy, len, boundary, MULTIPART_MAX_HEADERS, p->parts,
                             MAX_TEST_PARTS, &p->count);
}

/* parse_into, which must succeed with count parts. */
static void parse_ok(parsed *p, const void *body, size_t len, const char *boundary, size_t count)
{
    parse_into(p, body, len, boundary);
    if (p->err != MULTIPART_OK)
        fail_msg("%s", multipart_strerror(p->err));
    assert_int_equal(p->count, count);
}

static void expect_body(const multipart_part *part, const void *body, size_t len)
{
    assert_int_equal(part->body_len, len);
    if (len > 0)
        assert_memory_equal(part->body, body, len);
}

/* The next header of part is name: value. */
static void expect_header(const multipart_part *part, size_t *offset, const char *name,
                          const char *value)
{
    multipart_header h;
    assert_true(multipart_header_next(part, offset, &h));
    assert_int_equal(h.name_len, strlen(name));
    assert_memory_equal(h.name, name, h.name_len);
    assert_int_equal(h.value_len, strlen(value));
    if (h.value_len > 0)
        assert_memory_equal(h.value, value, h.value_len);
}

static void expect_no_more_headers(const multipart_part *part, size_t *offset)
{
    multipart_header h = {"unchanged", 9, NULL, 0};
    assert_false(multipart_header_next(part, offset, &h));
    assert_string_equal(h.name, "unchanged");
}

/* ---- Content-Type ---- */

static void expect_boundary(const char *content_type, const char *boundary)
{
    char out[MULTIPART_BOUNDARY_SIZE];
    bool ok = multipart_boundary(content_type, out);
    if (boundary == NULL) {
        if (ok)
            fail_msg("accepted \"%s\" as boundary \"%s\"", content_type, out);
    } else {
        if (!ok)
            fail_msg("refused \"%s\"", content_type);
        assert_string_equal(out, boundary);
    }
}

static void test_boundary_accepted(void **state)
{
    (void)state;
    expect_boundary("multipart/mixed; boundary=abc", "abc");
    expect_boundary("multipart/mixed;boundary=abc", "abc");
    expect_boundary("  multipart/mixed \t; \tboundary=abc \t", "abc");
    expect_boundary("Multipart/MIXED; BOUNDARY=AbC", "AbC"); /* the value keeps its case */
    expect_boundary("multipart/mixed; boundary=\"simple boundary\"", "simple boundary");
    expect_boundary("multipart/mixed; boundary=\"a\\bc\"", "abc"); /* quoted-pair */
    expect_boundary("multipart/mixed; boundary=\"(),/:=?\"", "(),/:=?");
    expect_boundary("multipart/mixed; charset=utf-8; boundary=x-1; q=\"a;b=c\"", "x-1");
    expect_boundary("multipart/mixed;; ; boundary=z;", "z");     /* empty parameters */
    expect_boundary("multipart/mixed; boundary='+_-.", "'+_-."); /* tchars and bchars */
    char seventy[80];
    memset(seventy, 'a', 70);
    seventy[70] = '\0';
    char ct[128];
    strcpy(ct, "multipart/mixed; boundary=");
    strcat(ct, seventy);
    expect_boundary(ct, seventy);
}

static void test_boundary_refused(void **state)
{
    (void)state;
    const char *bad[] = {
        NULL,
        "",
        "multipart/mixed",
        "multipart/mixed;",
        "multipart/form-data; boundary=abc",
        "multipart/mixedx; boundary=abc",
        "multipart/ mixed; boundary=abc",
        "multipart /mixed; boundary=abc",
        "text/plain; boundary=abc",
        "multipart/mixed boundary=abc",         /* no semicolon */
        "multipart/mixed, boundary=abc",        /* not a parameter separator */
        "multipart/mixed; boundary=",           /* empty */
        "multipart/mixed; boundary=\"\"",       /* empty */
        "multipart/mixed; boundary = abc",      /* white space around = */
        "multipart/mixed; boundary= abc",       /* white space around = */
        "multipart/mixed; boundary=a b",        /* space outside quotes */
        "multipart/mixed; boundary=\"abc \"",   /* ends in a space */
        "multipart/mixed; boundary=\"abc",      /* unterminated */
        "multipart/mixed; boundary=\"abc\\",    /* unterminated after a backslash */
        "multipart/mixed; boundary=\"a\\\"b\"", /* '"' is not a bchar */
        "multipart/mixed; boundary=a!b",        /* a token, but '!' is not a bchar */
        "multipart/mixed; boundary=\"a\tb\"",   /* HTAB is not a bchar */
        "multipart/mixed; boundary=\"a\x01"
        "b\"",                                         /* control character */
        "multipart/mixed; boundary=\"a\xc3\xa9\"",     /* obs-text is not a bchar */
        "multipart/mixed; boundary=abc; boundary=abc", /* twice */
        "multipart/mixed; boundary=abc; x",            /* parameter without value */
        "multipart/mixed; boundary=abc; x=\"open",     /* bad other parameter */
        "multipart/mixed; =abc",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_boundary(bad[i], NULL);

    char ct[128];
    strcpy(ct, "multipart/mixed; boundary=");
    memset(ct + strlen(ct), 'a', 71); /* one too many */
    ct[26 + 71] = '\0';
    expect_boundary(ct, NULL);
    strcpy(ct, "multipart/mixed; boundary=\"");
    memset(ct + strlen(ct), 'a', 71);
    strcpy(ct + 27 + 71, "\"");
    expect_boundary(ct, NULL);
}

static void test_content_type(void **state)
{
    (void)state;
    const char *boundaries[] = {"abc", "simple boundary", "a:b", "hopper-0123456789abcdef"};
    for (size_t i = 0; i < sizeof boundaries / sizeof boundaries[0]; i++) {
        char ct[MULTIPART_CONTENT_TYPE_SIZE];
        multipart_content_type(boundaries[i], ct);
        expect_boundary(ct, boundaries[i]);
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
    expect_boundary(ct, longest);
}

/* ---- Parsing ---- */

/* RFC 2046 section 5.1.1's example, with the CRLF line ends of the wire. */
static void test_rfc2046_example(void **state)
{
    (void)state;
    const char *content_type = "multipart/mixed; boundary=\"simple boundary\"";
    const char body[] = "This is the preamble.  It is to be ignored, though it\r\n"
                        "is a handy place for composition agents to include an\r\n"
                        "explanatory note to non-MIME conformant readers.\r\n"
                        "\r\n"
                        "--simple boundary\r\n"
                        "\r\n"
                        "This is implicitly typed plain US-ASCII text.\r\n"
                        "It does NOT end with a linebreak.\r\n"
                        "--simple boundary\r\n"
                        "Content-type: text/plain; charset=us-ascii\r\n"
                        "\r\n"
                        "This is explicitly typed plain US-ASCII text.\r\n"
                        "It DOES end with a linebreak.\r\n"
                        "\r\n"
                        "--simple boundary--\r\n"
                        "\r\n"
                        "This is the epilogue.  It is also to be ignored.\r\n";
    char boundary[MULTIPART_BOUNDARY_SIZE];
    assert_true(multipart_boundary(content_type, boundary));
    parsed p;
    parse_ok(&p, LIT(body), boundary, 2);

    assert_int_equal(p.parts[0].header_count, 0);
    assert_int_equal(p.parts[0].header_lines_len, 0);
    expect_body(&p.parts[0], LIT("This is implicitly typed plain US-ASCII text.\r\n"
                                 "It does NOT end with a linebreak."));
    size_t offset = 0;
    expect_no_more_headers(&p.parts[0], &offset);

    assert_int_equal(p.parts[1].header_count, 1);
    offset = 0;
    expect_header(&p.parts[1], &offset, "Content-type", "text/plain; charset=us-ascii");
    expect_no_more_headers(&p.parts[1], &offset);
    expect_body(&p.parts[1], LIT("This is explicitly typed plain US-ASCII text.\r\n"
                                 "It DOES end with a linebreak.\r\n"));
    size_t len;
    const char *v = multipart_part_find(&p.parts[1], "CONTENT-TYPE", &len);
    assert_non_null(v);
    assert_int_equal(len, strlen("text/plain; charset=us-ascii"));
    assert_null(multipart_part_find(&p.parts[0], "Content-Type", &len));
    free(p.copy);
}

/* The first body: every line a near miss of the delimiter "CRLF --b". */
#define NEAR_MISSES                                                                                \
    "\r\n--\r\n\0\0\xff--b\r\n"                                                                    \
    "\r\n--bX\r\n"            /* boundary followed by a bchar */                                   \
    "\r\n--b-\r\n"            /* one dash */                                                       \
    "\r\n--b--X\r\n"          /* close followed by text */                                         \
    "\r\n--b --\r\n"          /* padding followed by text */                                       \
    "\r\n--b--  x\r\n"        /* close, padding, text */                                           \
    "\n--b\n\n--b--\n"        /* LF is not a line end */                                           \
    "\r--b\r\n"               /* CR alone is not either */                                         \
    "\r\n-b\r\n\r\n--B\r\n\r" /* other boundaries; ends in CR */

/* Bodies hold CRLF, "--", NUL, LF-only lines and near misses of the
 * boundary: none of them ends a part. */
static void test_binary_bodies(void **state)
{
    (void)state;
    const char second[] = "\0";
    const char third[] = "--bX"; /* starts like a delimiter, after the CRLF of the empty line */
    const char body[] = "--b\r\n"
                        "Content-Type: application/octet-stream\r\n"
                        "\r\n" NEAR_MISSES "\r\n--b\r\n"
                        "\r\n"
                        "\0"
                        "\r\n--b\r\n"
                        "X: y\r\n"
                        "\r\n"
                        "--bX"
                        "\r\n--b--";
    parsed p;
    parse_ok(&p, LIT(body), "b", 3);
    expect_body(&p.parts[0], LIT(NEAR_MISSES));
    expect_body(&p.parts[1], LIT(second));
    expect_body(&p.parts[2], LIT(third));
    assert_int_equal(p.parts[0].header_count, 1);
    assert_int_equal(p.parts[1].header_count, 0);
    assert_int_equal(p.parts[2].header_count, 1);
    free(p.copy);
}

static void test_preamble_epilogue_padding(void **state)
{
    (void)state;
    const char body[] = "--frontierX is not the opening\r\n"
                        "--frontier-- nor is this\r\n"
                        "\r\n--frontier \t \r\n" /* padding after the boundary */
                        "\r\n"
                        "one"
                        "\r\n--frontier\t\r\n"
                        "\r\n"
                        "two"
                        "\r\n--frontier-- \t\r\n"
                        "--frontier\r\n\r\nthe epilogue is never read\r\n--frontier--\r\n";
    parsed p;
    parse_ok(&p, LIT(body), "frontier", 2);
    expect_body(&p.parts[0], LIT("one"));
    expect_body(&p.parts[1], LIT("two"));
    free(p.copy);

    /* The close may end the body, with or without padding. */
    const char *endings[] = {"--", "-- ", "--\r\n", "--\r\nepilogue"};
    for (size_t i = 0; i < sizeof endings / sizeof endings[0]; i++) {
        char buf[64];
        strcpy(buf, "--f\r\n\r\nx\r\n--f");
        strcat(buf, endings[i]);
        parse_ok(&p, buf, strlen(buf), "f", 1);
        expect_body(&p.parts[0], LIT("x"));
        free(p.copy);
    }
}

static void test_empty_parts(void **state)
{
    (void)state;
    const char body[] = "--b\r\n"
                        "\r\n--b\r\n" /* nothing at all */
                        "\r\n"
                        "\r\n--b\r\n" /* an empty line, an empty body */
                        "A: 1\r\n"
                        "\r\n--b\r\n" /* headers only */
                        "A: 2\r\n"
                        "\r\n"
                        "\r\n--b--"; /* headers, empty line, empty body */
    parsed p;
    parse_ok(&p, LIT(body), "b", 4);
    size_t header_counts[] = {0, 0, 1, 1};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(p.parts[i].header_count, header_counts[i]);
        assert_int_equal(p.parts[i].body_len, 0);
    }
    size_t offset = 0;
    expect_header(&p.parts[2], &offset, "A", "1");
    expect_no_more_headers(&p.parts[2], &offset);
    offset = 0;
    expect_header(&p.parts[3], &offset, "A", "2");
    free(p.copy);
}

static void test_header_values(void **state)
{
    (void)state;
    const char body[] = "--b\r\n"
                        "X-A: 1\r\n"
                        "x-a:2\r\n"
                        "X-A: \t 3 \t \r\n" /* trimmed */
                        "Empty:\r\n"
                        "Blank: \t \r\n"
                        "Inner: a \t b\r\n"
                        "Colons: a:b: c\r\n"
                        "!#$%&'*+-.^_`|~09az: obs-text \xc3\xa9\xff\r\n"
                        "\r\n"
                        "body\r\n--b--\r\n";
    parsed p;
    parse_ok(&p, LIT(body), "b", 1);
    const multipart_part *part = &p.parts[0];
    assert_int_equal(part->header_count, 8);
    size_t offset = 0;
    expect_header(part, &offset, "X-A", "1");
    expect_header(part, &offset, "x-a", "2");
    expect_header(part, &offset, "X-A", "3");
    expect_header(part, &offset, "Empty", "");
    expect_header(part, &offset, "Blank", "");
    expect_header(part, &offset, "Inner", "a \t b");
    expect_header(part, &offset, "Colons", "a:b: c");
    expect_header(part, &offset, "!#$%&'*+-.^_`|~09az", "obs-text \xc3\xa9\xff");
    expect_no_more_headers(part, &offset);
    size_t len;
    const char *v = multipart_part_find(part, "x-A", &len); /* the first of three */
    assert_int_equal(len, 1);
    assert_memory_equal(v, "1", 1);
    expect_body(part, LIT("body"));
    free(p.copy);
}

/* A body, or a piece of one, and the error it must give. */
typedef struct error_case {
    const char *bytes;
    size_t len;
    multipart_err err;
} error_case;

static void expect_error(size_t case_index, multipart_err got, multipart_err want)
{
    if (got != want)
        fail_msg("case %zu: %s, expected %s", case_index, multipart_err_name(got),
                 multipart_err_name(want));
}

/* Each bad header line, in the second part: the error names it and *count
 * says the first part was whole. */
static void test_bad_headers(void **state)
{
    (void)state;
    const error_case cases[] = {
        {LIT(" X: y\r\n\r\n"), MULTIPART_HEADER_FOLDED},
        {LIT("\tX: y\r\n\r\n"), MULTIPART_HEADER_FOLDED},
        {LIT("X: y\r\n z\r\n\r\n"), MULTIPART_HEADER_FOLDED},
        {LIT("X: y\r\n\tz\r\n\r\n"), MULTIPART_HEADER_FOLDED},
        {LIT("X y\r\n\r\n"), MULTIPART_HEADER_NO_COLON},
        {LIT("--b\r\n\r\n"), MULTIPART_HEADER_NO_COLON},
        {LIT(": y\r\n\r\n"), MULTIPART_HEADER_BAD_NAME},
        {LIT("X : y\r\n\r\n"), MULTIPART_HEADER_BAD_NAME},
        {LIT("X Y: z\r\n\r\n"), MULTIPART_HEADER_BAD_NAME},
        {LIT("X(: z\r\n\r\n"), MULTIPART_HEADER_BAD_NAME},
        {LIT("X\0: z\r\n\r\n"), MULTIPART_HEADER_BAD_NAME},
        {LIT("\xc3\xa9: z\r\n\r\n"), MULTIPART_HEADER_BAD_NAME},
        {LIT("X: a\0b\r\n\r\n"), MULTIPART_HEADER_BAD_VALUE},
        {LIT("X: a\rb\r\n\r\n"), MULTIPART_HEADER_BAD_VALUE},
        {LIT("X: a\nb\r\n\r\n"), MULTIPART_HEADER_BAD_VALUE},
        {LIT("X: a\n\r\n"), MULTIPART_HEADER_BAD_VALUE}, /* LF-only line end */
        {LIT("X: a\x01\r\n\r\n"), MULTIPART_HEADER_BAD_VALUE},
        {LIT("X: a\x7f\r\n\r\n"), MULTIPART_HEADER_BAD_VALUE},
        {LIT("X: a"), MULTIPART_HEADER_UNTERMINATED}, /* the delimiter takes the CRLF */
        {LIT("X: a\r\nY: b"), MULTIPART_HEADER_UNTERMINATED},
        {LIT("X: a\r"), MULTIPART_HEADER_UNTERMINATED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = 0;
        unsigned char buf[128];
        memcpy(buf, "--b\r\n\r\nfirst\r\n--b\r\n", 19);
        len = 19;
        memcpy(buf + len, cases[i].bytes, cases[i].len);
        len += cases[i].len;
        memcpy(buf + len, "\r\n--b--", 7);
        len += 7;
        parsed p;
        parse_into(&p, buf, len, "b");
        expect_error(i, p.err, cases[i].err);
        assert_int_equal(p.count, 1);
        expect_body(&p.parts[0], LIT("first"));
        free(p.copy);
    }
}

static void test_bad_delimiters(void **state)
{
    (void)state;
    const error_case cases[] = {
        {LIT(""), MULTIPART_NO_OPENING_DELIMITER},
        {LIT("hello"), MULTIPART_NO_OPENING_DELIMITER},
        {LIT("--b"), MULTIPART_NO_OPENING_DELIMITER},
        {LIT("--bX\r\n\r\nx\r\n--b--"), MULTIPART_NO_PARTS}, /* the close is the first */
        {LIT("--bb\r\n\r\nx\r\n--bb--"), MULTIPART_NO_OPENING_DELIMITER},
        {LIT("preamble--b\r\n\r\nx\r\n--b--"), MULTIPART_NO_PARTS},
        {LIT("--b\n\nx\n--b--\n"), MULTIPART_NO_OPENING_DELIMITER}, /* LF only */
        {LIT("--b--"), MULTIPART_NO_PARTS},
        {LIT("--b--\r\n"), MULTIPART_NO_PARTS},
        {LIT("preamble\r\n--b--\r\n"), MULTIPART_NO_PARTS},
        {LIT("--b\r\n"), MULTIPART_MISSING_CLOSE_DELIMITER},
        {LIT("--b\r\n\r\nx"), MULTIPART_MISSING_CLOSE_DELIMITER},
        {LIT("--b\r\n\r\nx\r\n--b"), MULTIPART_MISSING_CLOSE_DELIMITER},
        {LIT("--b\r\n\r\nx\r\n--b-"), MULTIPART_MISSING_CLOSE_DELIMITER},
        {LIT("--b\r\n\r\nx\r\n--b--X"), MULTIPART_MISSING_CLOSE_DELIMITER},
        {LIT("--b\r\n\r\nx\r\n--b--\r"), MULTIPART_MISSING_CLOSE_DELIMITER},
        {LIT("--b\r\n\r\nx\r\n--b--\n"), MULTIPART_MISSING_CLOSE_DELIMITER},
        {LIT("--b\r\n\r\nx\r\n--b\r\n\r\ny"), MULTIPART_MISSING_CLOSE_DELIMITER},
        {LIT("--b\r\n\r\nx\n--b--"), MULTIPART_MISSING_CLOSE_DELIMITER},
        {LIT("--b\r\n\r\nx\r\n--B--"), MULTIPART_MISSING_CLOSE_DELIMITER}, /* case counts */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        parsed p;
        parse_into(&p, cases[i].bytes, cases[i].len, "b");
        expect_error(i, p.err, cases[i].err);
        free(p.copy);
    }

    parsed p;
    parse_into(&p, NULL, 0, "b");
    assert_int_equal(p.err, MULTIPART_NO_OPENING_DELIMITER);
    free(p.copy);
    assert_int_equal(multipart_parse(NULL, 0, "b", 1, p.parts, 1, &p.count),
                     MULTIPART_NO_OPENING_DELIMITER);
}

static void test_bad_boundary_argument(void **state)
{
    (void)state;
    char seventy_one[72];
    memset(seventy_one, 'a', 71);
    seventy_one[71] = '\0';
    const char *bad[] = {"", "a ", "a\"b", "a\tb", "a!b", "a\r\nb", seventy_one};
    const char body[] = "--b\r\n\r\nx\r\n--b--";
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        parsed p;
        parse_into(&p, LIT(body), bad[i]);
        assert_int_equal(p.err, MULTIPART_BAD_BOUNDARY);
        assert_int_equal(p.count, 0);
        free(p.copy);
    }
    seventy_one[70] = '\0'; /* 70 is allowed */
    parsed p;
    parse_into(&p, LIT(body), seventy_one);
    assert_int_equal(p.err, MULTIPART_NO_OPENING_DELIMITER);
    free(p.copy);
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
    parsed p;
    parse_into(&p, none, 7, "B");
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
    parsed p;
    parse_ok(&p, out, size, chosen, 3);
    expect_body(&p.parts[0], body0, n);
    expect_body(&p.parts[1], body1, 7 + n + 6);
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
    static random_part storage[MAX_TEST_PARTS];
    multipart_outgoing_part parts[MAX_TEST_PARTS];
    for (uint64_t round = 1; round <= 500; round++) {
        rng_state = round * UINT64_C(0x9e3779b97f4a7c15);
        uint64_t seed = rng_next();
        char first_candidate[MULTIPART_BOUNDARY_SIZE];
        multipart_boundary_candidate(seed, 0, first_candidate);
        size_t count = 1 + rng_below(MAX_TEST_PARTS);
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
        parsed p;
        parse_into(&p, body, size, read_back);
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
            expect_body(got, parts[i].body, parts[i].body_len);
        }
        free(p.copy);
        free(body);
    }
}

/* ---- Truncation and corruption ---- */

/* A body with a preamble, padding, near misses, a part without headers and
 * an epilogue. It holds no "--frontier--" but the close, so that no prefix
 * of it is a whole body. */
static const char sample[] = "preamble --frontier\r\n"
                             "--frontierX\r\n"
                             "\r\n--frontier \t\r\n"
                             "Content-Type: text/plain\r\n"
                             "X-Id:  1 \r\n"
                             "\r\n"
                             "one\r\n--frontierX\r\n-- \0 \n--frontier\n"
                             "\r\n--frontier\r\n"
                             "\r\n"
                             "\0\xff\r\n\r\n--"
                             "\r\n--frontier--  \r\n"
                             "epilogue --frontier\r\n";

static void expect_sample_parts(const parsed *p)
{
    assert_int_equal(p->err, MULTIPART_OK);
    assert_int_equal(p->count, 2);
    size_t offset = 0;
    expect_header(&p->parts[0], &offset, "Content-Type", "text/plain");
    expect_header(&p->parts[0], &offset, "X-Id", "1");
    expect_no_more_headers(&p->parts[0], &offset);
    expect_body(&p->parts[0], LIT("one\r\n--frontierX\r\n-- \0 \n--frontier\n"));
    assert_int_equal(p->parts[1].header_count, 0);
    expect_body(&p->parts[1], LIT("\0\xff\r\n\r\n--"));
}

static size_t sample_offset(const char *needle)
{
    const char *at = memmem(sample, sizeof sample - 1, needle, strlen(needle));
    assert_non_null(at);
    return (size_t)(at - sample);
}

static void test_truncations(void **state)
{
    (void)state;
    size_t len = sizeof sample - 1;
    size_t close_end = sample_offset("\r\n--frontier--") + strlen("\r\n--frontier--");
    size_t lone_cr = close_end + 3; /* "--frontier--  \r" */
    for (size_t cut = 0; cut <= len; cut++) {
        parsed p;
        parse_into(&p, sample, cut, "frontier");
        if (cut >= close_end && cut != lone_cr) {
            expect_sample_parts(&p);
        } else if (p.err == MULTIPART_OK) {
            fail_msg("a prefix of %zu bytes parsed", cut);
        } else {
            assert_true(p.count <= 2);
        }
        free(p.copy);
    }
}

/* Check what a parse of buf[0..len) returned: parts in order inside buf,
 * headers that iterate to header_count valid ones, and the parts written
 * again with the same boundary parse back to the same. */
static void check_consistent(const unsigned char *buf, size_t len, const char *boundary,
                             const multipart_part *parts, size_t count)
{
    static multipart_header headers[MAX_TEST_PARTS][MULTIPART_MAX_HEADERS];
    multipart_outgoing_part out[MAX_TEST_PARTS];
    const unsigned char *previous_end = buf;
    for (size_t i = 0; i < count; i++) {
        const unsigned char *lines = (const unsigned char *)parts[i].header_lines;
        assert_true(lines >= previous_end);
        assert_true(lines + parts[i].header_lines_len <= parts[i].body);
        assert_true(parts[i].body + parts[i].body_len <= buf + len);
        previous_end = parts[i].body + parts[i].body_len;
        size_t offset = 0;
        size_t n = 0;
        while (multipart_header_next(&parts[i], &offset, &headers[i][n])) {
            assert_true(multipart_header_valid(&headers[i][n]));
            n++;
        }
        assert_int_equal(n, parts[i].header_count);
        out[i] = (multipart_outgoing_part){headers[i], n, parts[i].body, parts[i].body_len};
    }
    size_t size = multipart_body_size(out, count, boundary);
    unsigned char *again = malloc(size);
    multipart_write_body(again, out, count, boundary);
    parsed p;
    parse_ok(&p, again, size, boundary, count);
    for (size_t i = 0; i < count; i++) {
        assert_int_equal(p.parts[i].header_count, parts[i].header_count);
        expect_body(&p.parts[i], parts[i].body, parts[i].body_len);
        size_t offset = 0;
        for (size_t j = 0; j < parts[i].header_count; j++) {
            multipart_header h;
            assert_true(multipart_header_next(&p.parts[i], &offset, &h));
            assert_int_equal(h.name_len, headers[i][j].name_len);
            assert_memory_equal(h.name, headers[i][j].name, h.name_len);
            assert_int_equal(h.value_len, headers[i][j].value_len);
            if (h.value_len > 0)
                assert_memory_equal(h.value, headers[i][j].value, h.value_len);
        }
    }
    free(p.copy);
    free(again);
}

/* Every byte of every delimiter line, set to every other value: the parse
 * fails, or returns parts that are consistent (see check_consistent). */
static void test_corruptions(void **state)
{
    (void)state;
    const char *lines[] = {"\r\n--frontier \t\r\n", "\r\n--frontier\r\n", "\r\n--frontier--  \r\n"};
    size_t len = sizeof sample - 1;
    size_t parsed_ok = 0, refused = 0;
    for (size_t l = 0; l < sizeof lines / sizeof lines[0]; l++) {
        size_t start = sample_offset(lines[l]);
        for (size_t at = start; at < start + strlen(lines[l]); at++) {
            for (int value = 0; value < 256; value++) {
                if (value == (unsigned char)sample[at])
                    continue;
                unsigned char *copy = exact_copy(sample, len);
                copy[at] = (unsigned char)value;
                multipart_part parts[MAX_TEST_PARTS];
                size_t count;
                multipart_err err = multipart_parse(copy, len, "frontier", MULTIPART_MAX_HEADERS,
                                                    parts, MAX_TEST_PARTS, &count);
                if (err == MULTIPART_OK) {
                    check_consistent(copy, len, "frontier", parts, count);
                    parsed_ok++;
                } else {
                    assert_true(count <= 2);
                    refused++;
                }
                free(copy);
            }
        }
    }
    /* Both outcomes happen: padding bytes may change, the boundary may not. */
    assert_true(parsed_ok > 0);
    assert_true(refused > 0);
}

/* ---- Limits ---- */

/* A body of n parts, each with h headers "X-N: v". New; OUT: *len. */
static unsigned char *uniform_body(size_t n, size_t h, const char *boundary, size_t *len)
{
    multipart_header *headers = calloc(h ? h : 1, sizeof *headers);
    for (size_t j = 0; j < h; j++)
        headers[j] = (multipart_header){"X-N", 3, "v", 1};
    multipart_outgoing_part *parts = calloc(n, sizeof *parts);
    for (size_t i = 0; i < n; i++)
        parts[i] = (multipart_outgoing_part){headers, h, "b", 1};
    *len = multipart_body_size(parts, n, boundary);
    unsigned char *body = malloc(*len);
    multipart_write_body(body, parts, n, boundary);
    free(parts);
    free(headers);
    return body;
}

static void test_limits(void **state)
{
    (void)state;
    multipart_part *parts = calloc(MULTIPART_MAX_PARTS, sizeof *parts);
    size_t len, count;
    unsigned char *body = uniform_body(MULTIPART_MAX_PARTS, 1, "sep", &len);
    assert_int_equal(multipart_parse(body, len, "sep", MULTIPART_MAX_HEADERS, parts,
                                     MULTIPART_MAX_PARTS, &count),
                     MULTIPART_OK);
    assert_int_equal(count, MULTIPART_MAX_PARTS);
    free(body);

    body = uniform_body(MULTIPART_MAX_PARTS + 1, 1, "sep", &len);
    assert_int_equal(multipart_parse(body, len, "sep", MULTIPART_MAX_HEADERS, parts,
                                     MULTIPART_MAX_PARTS, &count),
                     MULTIPART_TOO_MANY_PARTS);
    assert_int_equal(count, MULTIPART_MAX_PARTS);
    assert_int_equal(multipart_parse(body, len, "sep", MULTIPART_MAX_HEADERS, parts, 0, &count),
                     MULTIPART_TOO_MANY_PARTS);
    assert_int_equal(count, 0);
    free(body);

    body = uniform_body(2, MULTIPART_MAX_HEADERS, "sep", &len);
    assert_int_equal(multipart_parse(body, len, "sep", MULTIPART_MAX_HEADERS, parts, 2, &count),
                     MULTIPART_OK);
    assert_int_equal(parts[1].header_count, MULTIPART_MAX_HEADERS);
    assert_int_equal(multipart_parse(body, len, "sep", MULTIPART_MAX_HEADERS - 1, parts, 2, &count),
                     MULTIPART_TOO_MANY_HEADERS);
    assert_int_equal(count, 0);
    assert_int_equal(multipart_parse(body, len, "sep", 0, parts, 2, &count),
                     MULTIPART_TOO_MANY_HEADERS);
    free(body);
    free(parts);
}

static void test_error_names(void **state)
{
    (void)state;
    assert_string_equal(multipart_err_name(MULTIPART_OK), "OK");
    assert_string_equal(multipart_err_name(MULTIPART_TOO_MANY_HEADERS), "TOO_MANY_HEADERS");
    assert_string_equal(multipart_err_name((multipart_err)999), "UNKNOWN");
    assert_string_equal(multipart_strerror(MULTIPART_NO_PARTS),
                        "the body is closed before its first part");
    assert_string_equal(multipart_strerror((multipart_err)-1), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_boundary_accepted),
        cmocka_unit_test(test_boundary_refused),
        cmocka_unit_test(test_content_type),
        cmocka_unit_test(test_rfc2046_example),
        cmocka_unit_test(test_binary_bodies),
        cmocka_unit_test(test_preamble_epilogue_padding),
        cmocka_unit_test(test_empty_parts),
        cmocka_unit_test(test_header_values),
        cmocka_unit_test(test_bad_headers),
        cmocka_unit_test(test_bad_delimiters),
        cmocka_unit_test(test_bad_boundary_argument),
        cmocka_unit_test(test_build_layout),
        cmocka_unit_test(test_header_valid),
        cmocka_unit_test(test_boundary_avoids_parts),
        cmocka_unit_test(test_round_trip_random),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_corruptions),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_error_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
