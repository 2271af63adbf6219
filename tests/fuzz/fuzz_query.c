/* fuzz_query.c - libFuzzer harness of the query values a GET or an extend
 * takes: ?wait=SECONDS (0 to --max-wait), ?lease=SECONDS (above 0, to
 * --max-lease) and ?max=N (1 to DELIVERY_MAX_BATCH), parsed by
 * options_parse_seconds() and target_parse_count() as server/http.c does.
 *
 * libmicrohttpd splits the query at '&' and '=' and percent-decodes the
 * values itself; that is not ours to fuzz. What reaches our code is one
 * decoded value, a C string, which is the input here (cut at the first
 * NUL: http.c refuses a value with a decoded NUL before parsing it).
 * Checked:
 *   - ?max=: accepted only for decimal digits with a value from 1 to the
 *     maximum, and the value is exactly that (reference written here);
 *   - ?wait= and ?lease=: accepted only finite and within 0..max; in
 *     milliseconds as http.c computes them no more than max * 1000 (+1 for
 *     the rounding), and no float-to-integer overflow (UBSan). */
#include "fuzz_text.h"
#include "options.h"
#include "target.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* As delivery.h and the defaults of options.c say. */
#define MAX_BATCH 1000
#define MAX_WAIT_LIMIT 86400.0

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *text)
{
    fprintf(stderr, "fuzz_query: %s: '%s'\n", what, text);
    abort();
}

static bool reference_count(const char *text, size_t max, size_t *out)
{
    size_t v = 0;
    if (text[0] == '\0')
        return false;
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, *p - '0', &v) || v > max)
            return false;
    }
    *out = (size_t)v;
    return v >= 1;
}

static void check_count(const char *text, size_t max)
{
    size_t got = 0, expect = 0;
    bool ok = target_parse_count(text, max, &got);
    if (ok != reference_count(text, max, &expect))
        fail(ok ? "a bad count was accepted" : "a valid count was refused", text);
    if (ok && (got != expect || got < 1 || got > max))
        fail("a count parsed to the wrong value", text);
}

static void check_seconds(const char *text, double max)
{
    double s = -1;
    if (!options_parse_seconds(text, max, &s))
        return;
    if (!isfinite(s) || s < 0 || s > max)
        fail("seconds accepted out of range", text);
    uint64_t ms = (uint64_t)(s * 1000.0 + 0.5);
    if ((double)ms > max * 1000.0 + 1)
        fail("milliseconds beyond the maximum", text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_text(data, size);
    if (text == NULL)
        return 0;
    static const size_t count_maxima[] = {1, 9, 10, MAX_BATCH, SIZE_MAX};
    for (size_t i = 0; i < sizeof count_maxima / sizeof count_maxima[0]; i++)
        check_count(text, count_maxima[i]);
    static const double second_maxima[] = {0, 1, 30, 60, 3600, MAX_WAIT_LIMIT};
    for (size_t i = 0; i < sizeof second_maxima / sizeof second_maxima[0]; i++)
        check_seconds(text, second_maxima[i]);
    free(text);
    return 0;
}
