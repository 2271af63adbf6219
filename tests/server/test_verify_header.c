/* test_verify_header.c - the signature header parsers of
 * server/verify_header.c, directly: the documented forms accepted with the
 * right values, and the edges refused (lengths, case, repeats, empty
 * items, padding, too many signatures, overflowing timestamps). */
#include "verify_header.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define HEX64 "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
#define HEX64_UPPER "757107EA0EB2509FC211221CCE984B8A37570B6D7586C22C46F4379C8B043E17"
/* base64 of 32 bytes, and those bytes' first and last */
#define B64 "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

static bool github(const char *text, unsigned char *digest)
{
    return verify_header_github(text, strlen(text), digest);
}

static bool stripe(const char *text, verify_signatures *s)
{
    return verify_header_stripe(text, strlen(text), s);
}

static bool standard(const char *text, verify_signatures *s)
{
    return verify_header_standard(text, strlen(text), s);
}

static void test_github(void **state)
{
    (void)state;
    unsigned char d[VERIFY_DIGEST_SIZE];
    assert_true(github("sha256=" HEX64, d));
    assert_int_equal(d[0], 0x75);
    assert_int_equal(d[31], 0x17);
    assert_true(github("sha256=" HEX64_UPPER, d)); /* hex digits either case */
    assert_int_equal(d[3], 0xea);
    assert_false(github("", d));
    assert_false(github("sha256=", d));
    assert_false(github("SHA256=" HEX64, d));
    assert_false(github("sha1=" HEX64, d));
    assert_false(github("sha256=" HEX64 "0", d));
    assert_false(github("sha256=" HEX64 " ", d));
    assert_false(github(" sha256=" HEX64, d));
    assert_false(
        github("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1g", d));
    /* a NUL inside the value: read by length, refused */
    char nul[] = "sha256=" HEX64;
    nul[20] = '\0';
    assert_false(verify_header_github(nul, sizeof nul - 1, d));
}

static void test_stripe(void **state)
{
    (void)state;
    verify_signatures s;
    assert_true(stripe("t=1700000000,v1=" HEX64, &s));
    assert_int_equal(s.timestamp, 1700000000);
    assert_int_equal(s.count, 1);
    assert_int_equal(s.digests[0][0], 0x75);
    assert_true(stripe("v0=abc, t=5 ,v1=" HEX64 ",v1=" HEX64_UPPER ",scheme=x", &s));
    assert_int_equal(s.timestamp, 5);
    assert_int_equal(s.count, 2);
    assert_false(stripe("", &s));
    assert_false(stripe("t=1", &s));                             /* no v1 */
    assert_false(stripe("v1=" HEX64, &s));                       /* no t */
    assert_false(stripe("t=1,t=2,v1=" HEX64, &s));               /* t twice */
    assert_false(stripe("t=,v1=" HEX64, &s));                    /* empty t */
    assert_false(stripe("t=-1,v1=" HEX64, &s));                  /* signed */
    assert_false(stripe("t=1,v1=" HEX64 ",", &s));               /* empty item */
    assert_false(stripe("t=1,,v1=" HEX64, &s));                  /* empty item */
    assert_false(stripe("t=1,v1=abc", &s));                      /* short */
    assert_false(stripe("t=1,v1", &s));                          /* no '=' */
    assert_false(stripe("t=1,=x,v1=" HEX64, &s));                /* empty key */
    assert_false(stripe("t=1234567890123456789,v1=" HEX64, &s)); /* 19 digits */
    assert_true(stripe("t=123456789012345678,v1=" HEX64, &s));   /* 18 */
    char many[1024] = "t=1";
    for (int i = 0; i < VERIFY_SIGNATURES_MAX; i++)
        strcat(many, ",v1=" HEX64);
    assert_true(stripe(many, &s));
    assert_int_equal(s.count, VERIFY_SIGNATURES_MAX);
    strcat(many, ",v1=" HEX64);
    assert_false(stripe(many, &s));
}

static void test_standard(void **state)
{
    (void)state;
    verify_signatures s;
    assert_true(standard("v1," B64, &s));
    assert_int_equal(s.count, 1);
    assert_int_equal(s.digests[0][0], 0x83);
    assert_int_equal(s.digests[0][31], 0xe1);
    assert_true(standard("v1a,anything  v1," B64 " v1," B64 " ", &s));
    assert_int_equal(s.count, 2);
    assert_false(standard("", &s));
    assert_false(standard(" ", &s));
    assert_false(standard("v1a,xyz", &s));                                         /* no v1 */
    assert_false(standard("v1" B64, &s));                                          /* no comma */
    assert_false(standard(",abc", &s));                                            /* no version */
    assert_false(standard("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE", &s));  /* unpadded */
    assert_false(standard("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1O==", &s)); /* 31 bytes */
    assert_false(
        standard("v1,g0hM9SsE-OTPJTGt_tmIKtSyZlE3uFJELVlNIOLJ1OE=", &s)); /* url alphabet */
    assert_false(standard("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=x", &s));
    assert_false(standard("v1,\t0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", &s));
}

static void test_timestamp_and_id(void **state)
{
    (void)state;
    int64_t t;
    assert_true(verify_header_timestamp("0", 1, &t));
    assert_int_equal(t, 0);
    assert_true(verify_header_timestamp("1614265330", 10, &t));
    assert_int_equal(t, 1614265330);
    assert_false(verify_header_timestamp("", 0, &t));
    assert_false(verify_header_timestamp("1.5", 3, &t));
    assert_false(verify_header_timestamp(" 1", 2, &t));
    assert_false(verify_header_timestamp("+1", 2, &t));
    assert_false(verify_header_timestamp("9999999999999999999", 19, &t));
    assert_true(verify_header_webhook_id("msg_p5jXN8AQM9LWM0D4loKWxJek", 28));
    assert_false(verify_header_webhook_id("", 0));
    assert_false(verify_header_webhook_id("a b", 3));
    assert_false(verify_header_webhook_id("a\x7f", 2));
    char long_id[VERIFY_ID_MAX + 2];
    memset(long_id, 'a', sizeof long_id);
    assert_true(verify_header_webhook_id(long_id, VERIFY_ID_MAX));
    assert_false(verify_header_webhook_id(long_id, VERIFY_ID_MAX + 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_github),
        cmocka_unit_test(test_stripe),
        cmocka_unit_test(test_standard),
        cmocka_unit_test(test_timestamp_and_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
