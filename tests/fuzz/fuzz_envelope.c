/* fuzz_envelope.c - libFuzzer harness of the message envelope decoder
 * (server/envelope.c): the bytes of a message as read back from a queue
 * file, which a damaged or foreign file makes untrusted.
 *
 * Input: one stored message. Checked:
 *   - a decoded envelope is version 1 to 4, has at most
 *     ENVELOPE_MAX_HEADERS headers, every name, value and the body inside
 *     the input, and the body runs to its end; versions 1 and 2 have no
 *     receive time, versions 1 to 3 no TTL;
 *   - envelope_times() says the time and TTL envelope_decode() does (it
 *     may accept more: it reads the fixed fields only);
 *   - envelope_set_returns() succeeds exactly for a version 2, 3 or 4
 *     envelope, changes nothing but the returns field, and decodes back
 *     with it and the same id (a derived one too);
 *   - round trip: envelope_write_prefix() of the decoded headers, id, time
 *     and TTL, then the body, decodes to the same headers, body, id, time
 *     and TTL; for version 4, with the returns set again, it is byte for
 *     byte the input (the format has one encoding of each envelope);
 *   - envelope_find() returns a value inside the input, and
 *     envelope_id_text() 32 lowercase hex digits. */
#include "envelope.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_envelope: %s\n", what);
    abort();
}

static bool inside(const void *p, size_t n, const uint8_t *start, size_t len)
{
    const uint8_t *q = p;
    return n == 0 || (q >= start && q <= start + len && n <= (size_t)(start + len - q));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a copy of exactly size bytes, so ASan sees any read past the end */
    uint8_t *msg = malloc(size ? size : 1);
    if (msg == NULL)
        return 0;
    memcpy(msg, data, size);
    static envelope e, e2;
    bool ok = envelope_decode(msg, size, &e);
    uint8_t *copy = malloc(size ? size : 1);
    if (copy == NULL) {
        free(msg);
        return 0;
    }
    memcpy(copy, msg, size);
    bool set = envelope_set_returns(copy, size, 0x01020304u);
    if (set != (ok && e.version != ENVELOPE_VERSION_1))
        fail("envelope_set_returns disagrees with envelope_decode");
    if (!ok) {
        if (memcmp(copy, msg, size) != 0)
            fail("envelope_set_returns changed an envelope it refused");
        free(copy);
        free(msg);
        return 0;
    }
    if (e.version != ENVELOPE_VERSION && e.version != ENVELOPE_VERSION_3 &&
        e.version != ENVELOPE_VERSION_2 && e.version != ENVELOPE_VERSION_1)
        fail("a bad version was accepted");
    if (e.version == ENVELOPE_VERSION_1 && e.returns != 0)
        fail("a version 1 envelope with returns");
    if ((e.version == ENVELOPE_VERSION_1 || e.version == ENVELOPE_VERSION_2) && e.received_ms != 0)
        fail("a version 1 or 2 envelope with a receive time");
    if (e.version != ENVELOPE_VERSION && e.ttl_ms != 0)
        fail("an envelope before version 4 with a TTL");
    uint64_t received_ms, ttl_ms;
    if (!envelope_times(msg, size, &received_ms, &ttl_ms) || received_ms != e.received_ms ||
        ttl_ms != e.ttl_ms)
        fail("envelope_times disagrees with envelope_decode");
    if (e.header_count > ENVELOPE_MAX_HEADERS)
        fail("too many headers");
    for (size_t i = 0; i < e.header_count; i++)
        if (!inside(e.headers[i].name, e.headers[i].name_len, msg, size) ||
            !inside(e.headers[i].value, e.headers[i].value_len, msg, size))
            fail("a header outside the message");
    if (!inside(e.body, e.body_len, msg, size) || (e.body_len && e.body + e.body_len != msg + size))
        fail("the body is not the end of the message");
    size_t vlen;
    const char *v = envelope_find(&e, ENVELOPE_CONTENT_TYPE, &vlen);
    if (v && !inside(v, vlen, msg, size))
        fail("envelope_find outside the message");
    char id[ENVELOPE_ID_TEXT_SIZE];
    envelope_id_text(&e, id);
    if (strlen(id) != 2 * ENVELOPE_ID_LEN || strspn(id, "0123456789abcdef") != strlen(id))
        fail("an id's text is not 32 lowercase hex digits");

    if (set) {
        if (!envelope_decode(copy, size, &e2) || e2.returns != 0x01020304u)
            fail("the returns set do not decode back");
        if (memcmp(e2.id, e.id, ENVELOPE_ID_LEN) != 0)
            fail("the id changed with the returns");
        if (memcmp(copy, msg, ENVELOPE_RETURNS_OFFSET) != 0 ||
            memcmp(copy + ENVELOPE_RETURNS_OFFSET + 4, msg + ENVELOPE_RETURNS_OFFSET + 4,
                   size - ENVELOPE_RETURNS_OFFSET - 4) != 0)
            fail("envelope_set_returns changed more than the returns");
    }

    /* round trip */
    size_t prefix = envelope_prefix_size(e.headers, e.header_count);
    size_t size2 = prefix + e.body_len;
    uint8_t *again = malloc(size2 ? size2 : 1);
    if (again == NULL)
        fail("out of memory");
    envelope_write_prefix(again, e.headers, e.header_count, e.id, e.received_ms, e.ttl_ms);
    if (e.body_len)
        memcpy(again + prefix, e.body, e.body_len);
    if (!envelope_decode(again, size2, &e2) || e2.version != ENVELOPE_VERSION || e2.returns != 0 ||
        e2.header_count != e.header_count || e2.body_len != e.body_len ||
        (e.body_len && memcmp(e2.body, e.body, e.body_len) != 0) ||
        memcmp(e2.id, e.id, ENVELOPE_ID_LEN) != 0 || e2.received_ms != e.received_ms ||
        e2.ttl_ms != e.ttl_ms)
        fail("the envelope written again decodes to something else");
    for (size_t i = 0; i < e.header_count; i++) {
        const envelope_header *a = &e.headers[i], *b = &e2.headers[i];
        if (a->name_len != b->name_len || a->value_len != b->value_len ||
            (a->name_len && memcmp(a->name, b->name, a->name_len) != 0) ||
            (a->value_len && memcmp(a->value, b->value, a->value_len) != 0))
            fail("a header changed in the round trip");
    }
    if (e.version == ENVELOPE_VERSION) {
        if (!envelope_set_returns(again, size2, e.returns) || size2 != size ||
            memcmp(again, msg, size) != 0)
            fail("a version 4 envelope written again is not byte for byte the input");
    }
    free(again);
    free(copy);
    free(msg);
    return 0;
}
