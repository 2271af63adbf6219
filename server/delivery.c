/* delivery.c - the responses of GET and the fate of their messages (see
 * delivery.h). */
#include "delivery.h"

#include "budget.h"
#include "envelope.h"
#include "giveback.h"
#include "log.h"
#include "multipart.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Headers a part carries besides the stored ones: the id, the count and a
 * receipt. */
#define EXTRA_HEADERS 3
#define COUNT_TEXT_SIZE 12 /* a uint32 and NUL */

/* One message as it goes out: about 100 bytes, so that a batch of 100 is
 * one small allocation, reused from the heap. (With its envelope and header
 * array inside, 4 KiB each, a batch took 400 KiB from mmap: 200 page
 * faults and a munmap a GET.) */
typedef struct outgoing {
    const unsigned char *body;
    size_t body_len;
    uint32_t returns;
    size_t first_header, header_count; /* its headers in the response's header_list */
    char id[ENVELOPE_ID_TEXT_SIZE];
    char count[COUNT_TEXT_SIZE];
} outgoing;

/* The headers of all the messages of a response, in one array that grows
 * as prepare() adds a message's. */
typedef struct header_list {
    multipart_header *items;
    size_t count, cap;
} header_list;

/* What prepare() made of a message. */
typedef enum prepared { PREPARED, PREPARED_BAD, PREPARED_NOMEM } prepared;

static bool is_content_type(const envelope_header *h)
{
    size_t n = strlen(ENVELOPE_CONTENT_TYPE);
    return h->name_len == n && strncasecmp(h->name, ENVELOPE_CONTENT_TYPE, n) == 0;
}

/* The headers msg goes out with: Content-Type first, the other stored ones
 * that can be sent (libmicrohttpd sends no empty value), the message's id,
 * the count of hand-outs, the receipt, added to hl. PREPARED_BAD if msg
 * is not a valid envelope, PREPARED_NOMEM if hl could not grow. */
static prepared prepare(outgoing *o, const void *msg, size_t len, const char *receipt,
                        header_list *hl)
{
    envelope env;
    if (!envelope_decode(msg, len, &env))
        return PREPARED_BAD;
    multipart_header hs[ENVELOPE_MAX_HEADERS + EXTRA_HEADERS];
    size_t n = 0;
    size_t type_len;
    const char *type = envelope_find(&env, ENVELOPE_CONTENT_TYPE, &type_len);
    if (type == NULL) {
        type = ENVELOPE_DEFAULT_CONTENT_TYPE;
        type_len = strlen(type);
    }
    hs[n++] =
        (multipart_header){ENVELOPE_CONTENT_TYPE, strlen(ENVELOPE_CONTENT_TYPE), type, type_len};
    for (size_t i = 0; i < env.header_count; i++) {
        const envelope_header *h = &env.headers[i];
        multipart_header m = {h->name, h->name_len, h->value, h->value_len};
        if (!is_content_type(h) && h->value_len > 0 && multipart_header_valid(&m))
            hs[n++] = m;
    }
    envelope_id_text(&env, o->id);
    hs[n++] = (multipart_header){MESSAGE_ID_HEADER, strlen(MESSAGE_ID_HEADER), o->id,
                                 ENVELOPE_ID_TEXT_SIZE - 1};
    snprintf(o->count, sizeof o->count, "%" PRIu32, env.returns + 1);
    hs[n++] = (multipart_header){DELIVERY_COUNT_HEADER, strlen(DELIVERY_COUNT_HEADER), o->count,
                                 strlen(o->count)};
    if (receipt)
        hs[n++] = (multipart_header){DELIVERY_RECEIPT_HEADER, strlen(DELIVERY_RECEIPT_HEADER),
                                     receipt, LEASE_RECEIPT_LEN};
    if (hl->cap - hl->count < n) {
        size_t cap = hl->cap * 2 > hl->count + n ? hl->cap * 2 : hl->count + n;
        multipart_header *more = realloc(hl->items, cap * sizeof *more);
        if (more == NULL)
            return PREPARED_NOMEM;
        hl->items = more;
        hl->cap = cap;
    }
    memcpy(hl->items + hl->count, hs, n * sizeof *hs);
    o->first_header = hl->count;
    o->header_count = n;
    hl->count += n;
    o->body = env.body;
    o->body_len = env.body_len;
    o->returns = env.returns;
    return PREPARED;
}

/* Add o's headers to r (MHD copies them; it wants them NUL-terminated,
 * the stored ones are not). False if MHD refuses one or out of memory. */
static bool add_headers(struct MHD_Response *r, const outgoing *o, const header_list *hl)
{
    char small[1024], *buf = small;
    size_t cap = sizeof small;
    bool added = true;
    for (size_t i = 0; added && i < o->header_count; i++) {
        const multipart_header *h = &hl->items[o->first_header + i];
        size_t need = h->name_len + h->value_len + 2;
        if (need > cap) { /* a long one: the rest fit in this too, or grow it */
            char *bigger = malloc(need);
            if (bigger == NULL) {
                added = false;
                break;
            }
            if (buf != small)
                free(buf);
            buf = bigger;
            cap = need;
        }
        memcpy(buf, h->name, h->name_len);
        buf[h->name_len] = '\0';
        char *value = buf + h->name_len + 1;
        memcpy(value, h->value, h->value_len);
        value[h->value_len] = '\0';
        added = MHD_add_response_header(r, buf, value) == MHD_YES;
    }
    if (buf != small)
        free(buf);
    return added;
}

/* A plain response of one message: o's body (copied when leased: the
 * lease may end before the response is written). */
static struct MHD_Response *plain_response(const outgoing *o, const header_list *hl, bool copy)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        o->body_len, (void *)o->body, copy ? MHD_RESPMEM_MUST_COPY : MHD_RESPMEM_PERSISTENT);
    if (r && !add_headers(r, o, hl)) {
        MHD_destroy_response(r);
        r = NULL;
    }
    return r;
}

/* A multipart response of o[0..n): the body is built (a copy). OUT: *copied,
 * its size. */
static struct MHD_Response *multipart_response(const outgoing *o, size_t n, const header_list *hl,
                                               size_t *copied)
{
    multipart_outgoing_part *parts = calloc(n, sizeof *parts);
    if (parts == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        parts[i] = (multipart_outgoing_part){hl->items + o[i].first_header, o[i].header_count,
                                             o[i].body, o[i].body_len};
    char boundary[MULTIPART_BOUNDARY_SIZE], type[MULTIPART_CONTENT_TYPE_SIZE];
    multipart_choose_boundary(parts, n, multipart_seed(), boundary);
    multipart_content_type(boundary, type);
    size_t size = multipart_body_size(parts, n, boundary);
    *copied = size;
    unsigned char *body = malloc(size ? size : 1);
    struct MHD_Response *r = NULL;
    if (body) {
        multipart_write_body(body, parts, n, boundary);
        r = MHD_create_response_from_buffer(size, body, MHD_RESPMEM_MUST_FREE);
        if (r == NULL)
            free(body);
    }
    free(parts);
    if (r && MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type) != MHD_YES) {
        MHD_destroy_response(r);
        r = NULL;
    }
    return r;
}

struct MHD_Response *delivery_peek_response(void **msgs, size_t *lens, size_t n, size_t *copied)
{
    *copied = 0;
    outgoing *o = malloc(n * sizeof *o); /* prepare() fills what is read */
    header_list hl = {NULL, 0, 0};
    if (o == NULL)
        return NULL;
    size_t k = 0;
    bool nomem = false;
    for (size_t i = 0; i < n && !nomem; i++) {
        prepared p = prepare(&o[k], msgs[i], lens[i], NULL, &hl);
        nomem = p == PREPARED_NOMEM;
        if (p != PREPARED)
            continue; /* not an envelope: a GET would skip it too */
        /* how often it was handed out so far: looking is not a delivery */
        snprintf(o[k].count, sizeof o[k].count, "%" PRIu32, o[k].returns);
        hl.items[o[k].first_header + o[k].header_count - 1].value_len = strlen(o[k].count);
        k++;
    }
    struct MHD_Response *r = nomem ? NULL : multipart_response(o, k, &hl, copied);
    free(hl.items);
    free(o);
    return r;
}

/* Messages that never went out go back, last first, so that they keep their
 * order at the head of the channel. */
static void give_back_all_unsent(registry_entry *e, void **msgs, size_t *lens, size_t n)
{
    for (size_t i = n; i-- > 0;)
        giveback_unsent(e, msgs[i], lens[i]);
}

/* A response of d's k messages cannot be sent after all: take back the
 * leases of the first `granted` and give every message back unsent, last
 * first. A lease whose deadline passed meanwhile has given its message back
 * already (counted): that one is not given back twice. */
static void revoke_leases(delivery *d, size_t granted, size_t k)
{
    for (size_t i = k; i-- > 0;) {
        if (i < granted && !lease_revoke(d->entry, d->receipts[i], &d->msgs[i], &d->lens[i]))
            continue;
        giveback_unsent(d->entry, d->msgs[i], d->lens[i]);
    }
}

/* Forget d's arrays (on failure: nothing is delivered) and give back to
 * the budget what its response took. */
static void forget(delivery *d)
{
    budget_release(d->charged);
    d->charged = 0;
    free(d->msgs);
    free(d->lens);
    free(d->receipts);
    d->msgs = NULL;
    d->lens = NULL;
    d->receipts = NULL;
    d->count = 0;
}

/* Prepare the messages of msgs[0..n) that can go out into o, hl and d, in
 * order; damaged ones are logged and dropped. Returns how many, or SIZE_MAX
 * if out of memory (msgs untouched from the first not prepared on; the ones
 * before are d's). */
static size_t prepare_all(delivery *d, outgoing *o, header_list *hl, void **msgs, size_t *lens,
                          size_t n)
{
    bool leased = d->lease_ms > 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (leased)
            lease_new_receipt(d->receipts[k]);
        prepared p = prepare(&o[k], msgs[i], lens[i], leased ? d->receipts[k] : NULL, hl);
        if (p == PREPARED_NOMEM) {
            give_back_all_unsent(d->entry, msgs + i, lens + i, n - i);
            give_back_all_unsent(d->entry, d->msgs, d->lens, k);
            return SIZE_MAX;
        }
        if (p == PREPARED_BAD) {
            log_error("channel %s: dropped a stored message with a malformed envelope",
                      hop_channel_name(d->entry->ch));
            hop_free(msgs[i]);
            continue;
        }
        d->msgs[k] = msgs[i];
        d->lens[k] = lens[i];
        k++;
    }
    return k;
}

/* The response of o[0..k), d's messages. OUT: *copied, the bytes of
 * message it copied. NULL if out of memory. */
static struct MHD_Response *response_of(const delivery *d, const outgoing *o, size_t k,
                                        const header_list *hl, size_t *copied)
{
    bool leased = d->lease_ms > 0;
    *copied = 0;
    if (d->multipart)
        return multipart_response(o, k, hl, copied);
    /* a leased message may be freed by its lease before the response is
     * sent: the response copies it */
    if (leased)
        *copied = o[0].body_len;
    return plain_response(&o[0], hl, leased);
}

/* Grant the leases of d's k held messages: false (all revoked, given back
 * unsent, *err set) if one cannot be. */
static bool grant_leases(delivery *d, size_t k, api_error *err)
{
    for (size_t i = 0; i < k; i++) {
        api_error granted =
            lease_grant(d->entry, d->msgs[i], d->lens[i], d->lease_ms, d->receipts[i]);
        if (granted != API_OK) {
            revoke_leases(d, i, k); /* cannot lease them all: none is */
            *err = granted;
            return false;
        }
    }
    return true;
}

/* Charge the budget with the RAM d's response takes until it is over: the
 * copies it made, and the messages it points into (not leased: leased ones
 * count as held already). */
static void charge(delivery *d, size_t copied)
{
    d->charged = copied;
    for (size_t i = 0; d->lease_ms == 0 && i < d->count; i++)
        d->charged += hop_message_cost(d->lens[i]);
    budget_charge(d->charged);
}

struct MHD_Response *delivery_respond(delivery *d, void **msgs, size_t *lens, size_t n,
                                      api_error *err)
{
    bool leased = d->lease_ms > 0;
    /* not calloc: prepare() fills what is read */
    outgoing *o = malloc(n * sizeof *o);
    header_list hl = {NULL, 0, 0};
    d->msgs = malloc(n * sizeof *d->msgs);
    d->lens = malloc(n * sizeof *d->lens);
    d->receipts = leased ? malloc(n * sizeof *d->receipts) : NULL;
    d->charged = 0;
    *err = API_NOMEM;
    if (o == NULL || d->msgs == NULL || d->lens == NULL || (leased && d->receipts == NULL)) {
        free(o);
        forget(d);
        give_back_all_unsent(d->entry, msgs, lens, n);
        return NULL;
    }
    size_t k = prepare_all(d, o, &hl, msgs, lens, n);
    if (k == SIZE_MAX) { /* all given back */
        free(hl.items);
        free(o);
        forget(d);
        return NULL;
    }
    size_t copied = 0;
    struct MHD_Response *r = k > 0 ? response_of(d, o, k, &hl, &copied) : NULL;
    free(hl.items);
    free(o);
    if (r == NULL) {
        if (k == 0)
            *err = API_INTERNAL; /* all of them damaged, and dropped */
        give_back_all_unsent(d->entry, d->msgs, d->lens, k);
        forget(d);
        return NULL;
    }
    /* The response holds copies (or, not leased, points into messages kept
     * until the end): the leases may begin. */
    if (leased && !grant_leases(d, k, err)) {
        MHD_destroy_response(r);
        forget(d);
        return NULL;
    }
    d->count = k;
    charge(d, copied);
    *err = API_OK;
    return r;
}

void delivery_succeeded(delivery *d)
{
    if (d->lease_ms == 0) /* consumed; leased ones stay leased */
        hop_free_all(d->msgs, d->count);
    forget(d);
}

void delivery_failed(delivery *d)
{
    /* back last first, so that they keep their order at the head */
    for (size_t i = d->count; i-- > 0;) {
        if (d->lease_ms > 0)
            lease_release(d->entry, d->receipts[i], 0); /* it may have ended already */
        else
            giveback_unconsumed(d->entry, d->msgs[i], d->lens[i], d->max_deliveries);
    }
    forget(d);
}
