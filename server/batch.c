/* batch.c - a batch body into its messages (see batch.h). */
#include "batch.h"

#include "budget.h"
#include "delivery.h"
#include "envelope.h"
#include "keep_headers.h"
#include "multipart.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The headers part i stores: its Content-Type (or the default) and the
 * ones --keep-headers names. False, with req failed, if there are too
 * many, or they and the body pass --max-message-bytes. OUT: hs[0..*count). */
static bool part_headers(request *req, const multipart_part *part, size_t i, envelope_header *hs,
                         size_t *count)
{
    const server_options *o = &req->server->options;
    size_t type_len = 0;
    const char *type = multipart_part_find(part, ENVELOPE_CONTENT_TYPE, &type_len);
    if (type == NULL || type_len == 0) {
        type = ENVELOPE_DEFAULT_CONTENT_TYPE;
        type_len = strlen(type);
    }
    if (type_len > ENVELOPE_MAX_CONTENT_TYPE) {
        request_fail(req, API_BAD_CONTENT_TYPE,
                     "part %zu: the Content-Type is longer than %d bytes", i + 1,
                     ENVELOPE_MAX_CONTENT_TYPE);
        return false;
    }
    hs[0] = (envelope_header){ENVELOPE_CONTENT_TYPE, strlen(ENVELOPE_CONTENT_TYPE), type, type_len};
    *count = 1;
    size_t kept = 0, offset = 0;
    multipart_header h;
    while (multipart_header_next(part, &offset, &h)) {
        size_t n = strlen(ENVELOPE_CONTENT_TYPE);
        if ((h.name_len == n && strncasecmp(h.name, ENVELOPE_CONTENT_TYPE, n) == 0) ||
            !keep_headers_match(&o->keep_headers, h.name, h.name_len))
            continue;
        if (*count == ENVELOPE_MAX_HEADERS) {
            request_fail(req, API_TOO_MANY_HEADERS, "part %zu has more headers to keep than %d",
                         i + 1, ENVELOPE_MAX_HEADERS);
            return false;
        }
        hs[(*count)++] = (envelope_header){h.name, h.name_len, h.value, h.value_len};
        kept += h.name_len + h.value_len;
    }
    if (kept > o->max_message_bytes || part->body_len > o->max_message_bytes - kept) {
        request_fail(req, API_TOO_BIG,
                     "part %zu: its body and kept headers are larger than --max-message-bytes "
                     "(%zu bytes)",
                     i + 1, o->max_message_bytes);
        return false;
    }
    return true;
}

/* Write the envelopes of parts[0..count) into out->store, one after the
 * other: each with an id of its own, all accepted now, all with the TTL
 * ttl_ms. hs is room for the headers of one part. */
static void write_messages(request *req, const multipart_part *parts, size_t count, uint64_t ttl_ms,
                           envelope_header *hs, batch *out)
{
    unsigned char *p = out->store;
    uint64_t received_ms = hop_now_ms();
    for (size_t i = 0; i < count; i++) {
        size_t n;
        part_headers(req, &parts[i], i, hs, &n); /* checked already */
        size_t prefix = envelope_prefix_size(hs, n);
        unsigned char id[ENVELOPE_ID_LEN];
        envelope_new_id(id);
        envelope_write_prefix(p, hs, n, id, received_ms, ttl_ms);
        memcpy(p + prefix, parts[i].body, parts[i].body_len);
        out->msgs[i] = (hop_buf){p, prefix + parts[i].body_len};
        p += prefix + parts[i].body_len;
    }
    out->count = count;
}

bool batch_build(request *req, const unsigned char *body, size_t len, const char *boundary,
                 uint64_t ttl_ms, batch *out)
{
    *out = (batch){0};
    multipart_part *parts = malloc(DELIVERY_MAX_BATCH * sizeof *parts);
    envelope_header *hs = malloc(ENVELOPE_MAX_HEADERS * sizeof *hs);
    bool ok = false;
    size_t count = 0, total = 0, n;
    if (parts == NULL || hs == NULL) {
        request_fail(req, API_NOMEM, NULL);
        goto out_free;
    }
    multipart_err err = multipart_parse(body, len, boundary, MULTIPART_MAX_HEADERS, parts,
                                        DELIVERY_MAX_BATCH, &count);
    if (err != MULTIPART_OK) {
        request_fail(req, API_BAD_BATCH, "part %zu: %s", count + 1, multipart_strerror(err));
        goto out_free;
    }
    for (size_t i = 0; i < count; i++) { /* check them all, and size the store */
        if (!part_headers(req, &parts[i], i, hs, &n))
            goto out_free;
        total += envelope_prefix_size(hs, n) + parts[i].body_len;
    }
    out->msgs = malloc(count * sizeof *out->msgs);
    out->store = malloc(total ? total : 1);
    if (out->msgs == NULL || out->store == NULL) {
        request_fail(req, API_NOMEM, NULL);
        batch_free(out);
        goto out_free;
    }
    write_messages(req, parts, count, ttl_ms, hs, out);
    out->charged = total;
    budget_charge(total); /* the store is a second copy of the body, until batch_free() */
    ok = true;
out_free:
    free(parts);
    free(hs);
    return ok;
}

void batch_free(batch *b)
{
    budget_release(b->charged);
    free(b->msgs);
    free(b->store);
    *b = (batch){0};
}
