/* fuzz_options.c - libFuzzer harness of the value parsers of the command
 * line and its HOPPER_* environment twins (server/options.c): SIZE
 * (--memory-bytes, --file-bytes, --max-message-bytes), COUNT
 * (--max-disk-files, --threads, ...) and SECONDS (--max-wait, --max-lease).
 *
 * Input: the value as text (cut at the first NUL, as argv and environ
 * are). Each parser is checked against a reference written here from the
 * documented grammar:
 *   - SIZE: digits and an optional K, KiB, M, MiB, G or GiB, with the
 *     value times the unit below 2^64; the value is exactly that;
 *   - COUNT: digits only, below 2^64; the value is exactly that;
 *   - SECONDS, for several maxima: accepted only if it starts with a digit
 *     or '.', holds only [0-9.eE+-], and is a finite number from 0 to max
 *     (so "nan", "inf", "1e99", "-1", "0x10", " 1" are refused); the value
 *     is what strtod reads. */
#include "fuzz_text.h"
#include "options.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *text)
{
    fprintf(stderr, "fuzz_options: %s: '%s'\n", what, text);
    abort();
}

/* Digits at text, as a number. False if none or 2^64 or more. OUT: *end. */
static bool reference_digits(const char *text, const char **end, uint64_t *v)
{
    const char *p = text;
    *v = 0;
    for (; *p >= '0' && *p <= '9'; p++)
        if (__builtin_mul_overflow(*v, 10, v) || __builtin_add_overflow(*v, *p - '0', v))
            return false;
    *end = p;
    return p != text;
}

static void check_size(const char *text)
{
    static const struct {
        const char *suffix;
        unsigned shift;
    } units[] = {{"", 0}, {"K", 10}, {"KiB", 10}, {"M", 20}, {"MiB", 20}, {"G", 30}, {"GiB", 30}};
    const char *end;
    uint64_t v, expect = 0;
    bool valid = reference_digits(text, &end, &v);
    if (valid) {
        valid = false;
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
            if (strcmp(end, units[i].suffix) == 0 && v <= UINT64_MAX >> units[i].shift) {
                expect = v << units[i].shift;
                valid = true;
            }
    }
    uint64_t got = 0;
    const char *why = options_parse_size(text, &got);
    if ((why == NULL) != valid)
        fail(valid ? "a valid SIZE was refused" : "a bad SIZE was accepted", text);
    if (why == NULL && got != expect)
        fail("SIZE parsed to the wrong value", text);
    if (why != NULL && why[0] == '\0')
        fail("SIZE refused without saying why", text);
}

static void check_count(const char *text)
{
    const char *end;
    uint64_t expect, got = 0;
    bool valid = reference_digits(text, &end, &expect) && *end == '\0';
    const char *why = options_parse_count(text, &got);
    if ((why == NULL) != valid)
        fail(valid ? "a valid COUNT was refused" : "a bad COUNT was accepted", text);
    if (why == NULL && got != expect)
        fail("COUNT parsed to the wrong value", text);
}

static void check_seconds(const char *text, double max)
{
    double got = -1;
    bool ok = options_parse_seconds(text, max, &got);
    if (!ok)
        return;
    if (!isdigit((unsigned char)text[0]) && text[0] != '.')
        fail("SECONDS accepted with a bad first character", text);
    for (const char *p = text; *p; p++)
        if (!isdigit((unsigned char)*p) && strchr(".eE+-", *p) == NULL)
            fail("SECONDS accepted with a character outside [0-9.eE+-]", text);
    if (!isfinite(got) || got < 0 || got > max)
        fail("SECONDS accepted out of range", text);
    errno = 0;
    char *end;
    double v = strtod(text, &end);
    if (*end != '\0' || v != got)
        fail("SECONDS parsed to another value than strtod's", text);
    /* what the server makes of it: milliseconds, without overflow */
    uint64_t ms = (uint64_t)(got * 1000.0 + 0.5);
    if ((double)ms > max * 1000.0 + 1)
        fail("SECONDS in milliseconds beyond the maximum", text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_text(data, size);
    if (text == NULL)
        return 0;
    check_size(text);
    check_count(text);
    static const double maxima[] = {0, 0.5, 1, 60, 3600, 86400};
    for (size_t i = 0; i < sizeof maxima / sizeof maxima[0]; i++)
        check_seconds(text, maxima[i]);
    free(text);
    return 0;
}
