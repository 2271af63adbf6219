/* test_forward_util.h - the checks the forwarding tests share
 * (test_forward_util.c): the --forward value for a receiver, the Hopper-*
 * headers of a forwarded request, the /status forward object and the
 * forwarding metrics. */
#ifndef HOPPER_TEST_FORWARD_UTIL_H
#define HOPPER_TEST_FORWARD_UTIL_H

#include "receiver.h"

#include <stdbool.h>
#include <stddef.h>

/* Room for the value of a --forward (fw_rule()). */
#define RULE_SIZE 300

/* A receiver, a data directory for hopper and the --forward rule of
 * channel "hooks" to the receiver: the state of tests that restart hopper
 * on the same directory. fw_fixture_teardown() stops and removes them. */
typedef struct fw_fixture {
    rc_receiver *r;
    char dir[256];
    char rule[RULE_SIZE];
} fw_fixture;

int fw_fixture_teardown(void **state);

/* The asserting ones fail the test with cmocka, saying what differed. */
struct hs_server;

/* "NAME=http://127.0.0.1:PORT<path>", the value of a --forward. OUT: out. */
void fw_rule(const rc_receiver *r, const char *name, const char *path, char *out, size_t size);
/* True if text is a message id: 32 lowercase hex digits. */
bool fw_is_message_id(const char *text);
/* req's Hopper-Message-Id, borrowed ("" if absent). */
const char *fw_id(const rc_request *req);
/* req's Hopper-Delivery-Count; -1 if absent or not a number. */
long fw_delivery_count(const rc_request *req);
/* Request i must have come (waiting up to HS_PATIENCE_MS) and be hopper
 * delivering body (text) of channel: POST, with Hopper-Channel, a message
 * id and, unless count is 0, Hopper-Delivery-Count count. Returns it. */
const rc_request *fw_expect_delivery(rc_receiver *r, size_t i, const char *channel,
                                     const char *body, long count);

/* /status: channels.<channel>.forward.<field>, a number (-1 if absent or
 * not a number), or a string copied to out ("" and false if absent). */
double fw_forward_number(const struct hs_server *s, const char *channel, const char *field);
bool fw_forward_string(const struct hs_server *s, const char *channel, const char *field, char *out,
                       size_t size);
/* Poll fw_forward_number() until it is at least min, up to timeout_ms;
 * returns the last value seen. */
double fw_await_forward_number(const struct hs_server *s, const char *channel, const char *field,
                               double min, int timeout_ms);
/* /metrics: the sample of name whose labels include label1 and, unless it
 * is NULL, label2 (each written 'key="value"'), in any order; -1 if there
 * is none. */
double fw_metric(const struct hs_server *s, const char *name, const char *label1,
                 const char *label2);

#endif
