/* test_multipart.c - the reading side of server/multipart.c: the boundary
 * of a Content-Type, the parsing of multipart/mixed bodies (RFC 2046's
 * example, binary parts, near misses of the boundary, preambles, padding,
 * empty parts, header values, bad headers and delimiters), every
 * truncation and corruption refused or read consistently, the limits of
 * parts and headers, the error names. Every body is parsed from a heap
 * copy of exactly its size, so the sanitizer build catches any read
 * outside it. (Building bodies: test_multipart_build.c.) */
#include "multipart_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* ---- Content-Type ---- */

static void test_boundary_accepted(void **state)
{
    (void)state;
    mu_expect_boundary("multipart/mixed; boundary=abc", "abc");
    mu_expect_boundary("multipart/mixed;boundary=abc", "abc");
    mu_expect_boundary("  multipart/mixed \t; \tboundary=abc \t", "abc");
    mu_expect_boundary("Multipart/MIXED; BOUNDARY=AbC", "AbC"); /* the value keeps its case */
    mu_expect_boundary("multipart/mixed; boundary=\"simple boundary\"", "simple boundary");
    mu_expect_boundary("multipart/mixed; boundary=\"a\\bc\"", "abc"); /* quoted-pair */
    mu_expect_boundary("multipart/mixed; boundary=\"(),/:=?\"", "(),/:=?");
    mu_expect_boundary("multipart/mixed; charset=utf-8; boundary=x-1; q=\"a;b=c\"", "x-1");
    mu_expect_boundary("multipart/mixed;; ; boundary=z;", "z");     /* empty parameters */
    mu_expect_boundary("multipart/mixed; boundary='+_-.", "'+_-."); /* tchars and bchars */
    char seventy[80];
    memset(seventy, 'a', 70);
    seventy[70] = '\0';
    char ct[128];
    strcpy(ct, "multipart/mixed; boundary=");
    strcat(ct, seventy);
    mu_expect_boundary(ct, seventy);
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
        mu_expect_boundary(bad[i], NULL);

    char ct[128];
    strcpy(ct, "multipart/mixed; boundary=");
    memset(ct + strlen(ct), 'a', 71); /* one too many */
    ct[26 + 71] = '\0';
    mu_expect_boundary(ct, NULL);
    strcpy(ct, "multipart/mixed; boundary=\"");
    memset(ct + strlen(ct), 'a', 71);
    strcpy(ct + 27 + 71, "\"");
    mu_expect_boundary(ct, NULL);
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
    mu_parsed p;
    mu_parse_ok(&p, MU_LIT(body), boundary, 2);

    assert_int_equal(p.parts[0].header_count, 0);
    assert_int_equal(p.parts[0].header_lines_len, 0);
    mu_expect_body(&p.parts[0], MU_LIT("This is implicitly typed plain US-ASCII text.\r\n"
                                       "It does NOT end with a linebreak."));
    size_t offset = 0;
    mu_expect_no_more_headers(&p.parts[0], &offset);

    assert_int_equal(p.parts[1].header_count, 1);
    offset = 0;
    mu_expect_header(&p.parts[1], &offset, "Content-type", "text/plain; charset=us-ascii");
    mu_expect_no_more_headers(&p.parts[1], &offset);
    mu_expect_body(&p.parts[1], MU_LIT("This is explicitly typed plain US-ASCII text.\r\n"
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
    mu_parsed p;
    mu_parse_ok(&p, MU_LIT(body), "b", 3);
    mu_expect_body(&p.parts[0], MU_LIT(NEAR_MISSES));
    mu_expect_body(&p.parts[1], MU_LIT(second));
    mu_expect_body(&p.parts[2], MU_LIT(third));
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
    mu_parsed p;
    mu_parse_ok(&p, MU_LIT(body), "frontier", 2);
    mu_expect_body(&p.parts[0], MU_LIT("one"));
    mu_expect_body(&p.parts[1], MU_LIT("two"));
    free(p.copy);

    /* The close may end the body, with or without padding. */
    const char *endings[] = {"--", "-- ", "--\r\n", "--\r\nepilogue"};
    for (size_t i = 0; i < sizeof endings / sizeof endings[0]; i++) {
        char buf[64];
        strcpy(buf, "--f\r\n\r\nx\r\n--f");
        strcat(buf, endings[i]);
        mu_parse_ok(&p, buf, strlen(buf), "f", 1);
        mu_expect_body(&p.parts[0], MU_LIT("x"));
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
    mu_parsed p;
    mu_parse_ok(&p, MU_LIT(body), "b", 4);
    size_t header_counts[] = {0, 0, 1, 1};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(p.parts[i].header_count, header_counts[i]);
        assert_int_equal(p.parts[i].body_len, 0);
    }
    size_t offset = 0;
    mu_expect_header(&p.parts[2], &offset, "A", "1");
    mu_expect_no_more_headers(&p.parts[2], &offset);
    offset = 0;
    mu_expect_header(&p.parts[3], &offset, "A", "2");
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
    mu_parsed p;
    mu_parse_ok(&p, MU_LIT(body), "b", 1);
    const multipart_part *part = &p.parts[0];
    assert_int_equal(part->header_count, 8);
    size_t offset = 0;
    mu_expect_header(part, &offset, "X-A", "1");
    mu_expect_header(part, &offset, "x-a", "2");
    mu_expect_header(part, &offset, "X-A", "3");
    mu_expect_header(part, &offset, "Empty", "");
    mu_expect_header(part, &offset, "Blank", "");
    mu_expect_header(part, &offset, "Inner", "a \t b");
    mu_expect_header(part, &offset, "Colons", "a:b: c");
    mu_expect_header(part, &offset, "!#$%&'*+-.^_`|~09az", "obs-text \xc3\xa9\xff");
    mu_expect_no_more_headers(part, &offset);
    size_t len;
    const char *v = multipart_part_find(part, "x-A", &len); /* the first of three */
    assert_int_equal(len, 1);
    assert_memory_equal(v, "1", 1);
    mu_expect_body(part, MU_LIT("body"));
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
        {MU_LIT(" X: y\r\n\r\n"), MULTIPART_HEADER_FOLDED},
        {MU_LIT("\tX: y\r\n\r\n"), MULTIPART_HEADER_FOLDED},
        {MU_LIT("X: y\r\n z\r\n\r\n"), MULTIPART_HEADER_FOLDED},
        {MU_LIT("X: y\r\n\tz\r\n\r\n"), MULTIPART_HEADER_FOLDED},
        {MU_LIT("X y\r\n\r\n"), MULTIPART_HEADER_NO_COLON},
        {MU_LIT("--b\r\n\r\n"), MULTIPART_HEADER_NO_COLON},
        {MU_LIT(": y\r\n\r\n"), MULTIPART_HEADER_BAD_NAME},
        {MU_LIT("X : y\r\n\r\n"), MULTIPART_HEADER_BAD_NAME},
        {MU_LIT("X Y: z\r\n\r\n"), MULTIPART_HEADER_BAD_NAME},
        {MU_LIT("X(: z\r\n\r\n"), MULTIPART_HEADER_BAD_NAME},
        {MU_LIT("X\0: z\r\n\r\n"), MULTIPART_HEADER_BAD_NAME},
        {MU_LIT("\xc3\xa9: z\r\n\r\n"), MULTIPART_HEADER_BAD_NAME},
        {MU_LIT("X: a\0b\r\n\r\n"), MULTIPART_HEADER_BAD_VALUE},
        {MU_LIT("X: a\rb\r\n\r\n"), MULTIPART_HEADER_BAD_VALUE},
        {MU_LIT("X: a\nb\r\n\r\n"), MULTIPART_HEADER_BAD_VALUE},
        {MU_LIT("X: a\n\r\n"), MULTIPART_HEADER_BAD_VALUE}, /* LF-only line end */
        {MU_LIT("X: a\x01\r\n\r\n"), MULTIPART_HEADER_BAD_VALUE},
        {MU_LIT("X: a\x7f\r\n\r\n"), MULTIPART_HEADER_BAD_VALUE},
        {MU_LIT("X: a"), MULTIPART_HEADER_UNTERMINATED}, /* the delimiter takes the CRLF */
        {MU_LIT("X: a\r\nY: b"), MULTIPART_HEADER_UNTERMINATED},
        {MU_LIT("X: a\r"), MULTIPART_HEADER_UNTERMINATED},
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
        mu_parsed p;
        mu_parse_into(&p, buf, len, "b");
        expect_error(i, p.err, cases[i].err);
        assert_int_equal(p.count, 1);
        mu_expect_body(&p.parts[0], MU_LIT("first"));
        free(p.copy);
    }
}

static void test_bad_delimiters(void **state)
{
    (void)state;
    const error_case cases[] = {
        {MU_LIT(""), MULTIPART_NO_OPENING_DELIMITER},
        {MU_LIT("hello"), MULTIPART_NO_OPENING_DELIMITER},
        {MU_LIT("--b"), MULTIPART_NO_OPENING_DELIMITER},
        {MU_LIT("--bX\r\n\r\nx\r\n--b--"), MULTIPART_NO_PARTS}, /* the close is the first */
        {MU_LIT("--bb\r\n\r\nx\r\n--bb--"), MULTIPART_NO_OPENING_DELIMITER},
        {MU_LIT("preamble--b\r\n\r\nx\r\n--b--"), MULTIPART_NO_PARTS},
        {MU_LIT("--b\n\nx\n--b--\n"), MULTIPART_NO_OPENING_DELIMITER}, /* LF only */
        {MU_LIT("--b--"), MULTIPART_NO_PARTS},
        {MU_LIT("--b--\r\n"), MULTIPART_NO_PARTS},
        {MU_LIT("preamble\r\n--b--\r\n"), MULTIPART_NO_PARTS},
        {MU_LIT("--b\r\n"), MULTIPART_MISSING_CLOSE_DELIMITER},
        {MU_LIT("--b\r\n\r\nx"), MULTIPART_MISSING_CLOSE_DELIMITER},
        {MU_LIT("--b\r\n\r\nx\r\n--b"), MULTIPART_MISSING_CLOSE_DELIMITER},
        {MU_LIT("--b\r\n\r\nx\r\n--b-"), MULTIPART_MISSING_CLOSE_DELIMITER},
        {MU_LIT("--b\r\n\r\nx\r\n--b--X"), MULTIPART_MISSING_CLOSE_DELIMITER},
        {MU_LIT("--b\r\n\r\nx\r\n--b--\r"), MULTIPART_MISSING_CLOSE_DELIMITER},
        {MU_LIT("--b\r\n\r\nx\r\n--b--\n"), MULTIPART_MISSING_CLOSE_DELIMITER},
        {MU_LIT("--b\r\n\r\nx\r\n--b\r\n\r\ny"), MULTIPART_MISSING_CLOSE_DELIMITER},
        {MU_LIT("--b\r\n\r\nx\n--b--"), MULTIPART_MISSING_CLOSE_DELIMITER},
        {MU_LIT("--b\r\n\r\nx\r\n--B--"), MULTIPART_MISSING_CLOSE_DELIMITER}, /* case counts */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mu_parsed p;
        mu_parse_into(&p, cases[i].bytes, cases[i].len, "b");
        expect_error(i, p.err, cases[i].err);
        free(p.copy);
    }

    mu_parsed p;
    mu_parse_into(&p, NULL, 0, "b");
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
        mu_parsed p;
        mu_parse_into(&p, MU_LIT(body), bad[i]);
        assert_int_equal(p.err, MULTIPART_BAD_BOUNDARY);
        assert_int_equal(p.count, 0);
        free(p.copy);
    }
    seventy_one[70] = '\0'; /* 70 is allowed */
    mu_parsed p;
    mu_parse_into(&p, MU_LIT(body), seventy_one);
    assert_int_equal(p.err, MULTIPART_NO_OPENING_DELIMITER);
    free(p.copy);
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

static void expect_sample_parts(const mu_parsed *p)
{
    assert_int_equal(p->err, MULTIPART_OK);
    assert_int_equal(p->count, 2);
    size_t offset = 0;
    mu_expect_header(&p->parts[0], &offset, "Content-Type", "text/plain");
    mu_expect_header(&p->parts[0], &offset, "X-Id", "1");
    mu_expect_no_more_headers(&p->parts[0], &offset);
    mu_expect_body(&p->parts[0], MU_LIT("one\r\n--frontierX\r\n-- \0 \n--frontier\n"));
    assert_int_equal(p->parts[1].header_count, 0);
    mu_expect_body(&p->parts[1], MU_LIT("\0\xff\r\n\r\n--"));
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
        mu_parsed p;
        mu_parse_into(&p, sample, cut, "frontier");
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
    static multipart_header headers[MU_MAX_PARTS][MULTIPART_MAX_HEADERS];
    multipart_outgoing_part out[MU_MAX_PARTS];
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
    mu_parsed p;
    mu_parse_ok(&p, again, size, boundary, count);
    for (size_t i = 0; i < count; i++) {
        assert_int_equal(p.parts[i].header_count, parts[i].header_count);
        mu_expect_body(&p.parts[i], parts[i].body, parts[i].body_len);
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
                unsigned char *copy = mu_exact_copy(sample, len);
                copy[at] = (unsigned char)value;
                multipart_part parts[MU_MAX_PARTS];
                size_t count;
                multipart_err err = multipart_parse(copy, len, "frontier", MULTIPART_MAX_HEADERS,
                                                    parts, MU_MAX_PARTS, &count);
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
        cmocka_unit_test(test_rfc2046_example),
        cmocka_unit_test(test_binary_bodies),
        cmocka_unit_test(test_preamble_epilogue_padding),
        cmocka_unit_test(test_empty_parts),
        cmocka_unit_test(test_header_values),
        cmocka_unit_test(test_bad_headers),
        cmocka_unit_test(test_bad_delimiters),
        cmocka_unit_test(test_bad_boundary_argument),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_corruptions),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_error_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
