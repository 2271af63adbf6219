/* envelope.c - encoding and strict decoding of stored messages, and the
 * ids and receive times they carry; the byte format is documented in
 * envelope.h. */
#include "envelope.h"

#include "hash.h"
#include "hex.h"
#include "random.h"

#include <string.h>
#include <strings.h>

static unsigned char *put_u16(unsigned char *p, size_t v)
{
    p[0] = (unsigned char)(v & 0xff);
    p[1] = (unsigned char)((v >> 8) & 0xff);
    return p + 2;
}

static unsigned char *put_u32(unsigned char *p, size_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)((v >> (8 * i)) & 0xff);
    return p + 4;
}

static unsigned char *put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)((v >> (8 * i)) & 0xff);
    return p + 8;
}

static uint16_t get_u16(const unsigned char *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t get_u64(const unsigned char *p)
{
    return (uint64_t)get_u32(p) | ((uint64_t)get_u32(p + 4) << 32);
}

size_t envelope_prefix_size(const envelope_header *headers, size_t count)
{
    size_t n = ENVELOPE_FIXED_BYTES;
    for (size_t i = 0; i < count; i++)
        n += ENVELOPE_HEADER_FIXED_BYTES + headers[i].name_len + headers[i].value_len;
    return n;
}

void envelope_write_prefix(unsigned char *out, const envelope_header *headers, size_t count,
                           const unsigned char id[ENVELOPE_ID_LEN], uint64_t received_ms,
                           uint64_t ttl_ms)
{
    unsigned char *p = out;
    *p++ = ENVELOPE_VERSION;
    p = put_u32(p, 0); /* returns: a new message has not been handed out */
    memcpy(p, id, ENVELOPE_ID_LEN);
    p += ENVELOPE_ID_LEN;
    p = put_u64(p, received_ms);
    p = put_u64(p, ttl_ms);
    p = put_u16(p, count);
    for (size_t i = 0; i < count; i++) {
        p = put_u16(p, headers[i].name_len);
        memcpy(p, headers[i].name, headers[i].name_len);
        p += headers[i].name_len;
        p = put_u32(p, headers[i].value_len);
        memcpy(p, headers[i].value, headers[i].value_len);
        p += headers[i].value_len;
    }
}

void envelope_new_id(unsigned char id[ENVELOPE_ID_LEN])
{
    random_bytes(id, ENVELOPE_ID_LEN);
}

/* Decode the headers and the body that follow the fixed prefix: p[0..left)
 * starts with the u16 header count. */
static bool decode_headers(const unsigned char *p, size_t left, envelope *out)
{
    if (left < 2)
        return false;
    size_t count = get_u16(p);
    p += 2;
    left -= 2;
    if (count > ENVELOPE_MAX_HEADERS)
        return false;
    for (size_t i = 0; i < count; i++) {
        envelope_header *h = &out->headers[i];
        if (left < 2)
            return false;
        h->name_len = get_u16(p);
        p += 2;
        left -= 2;
        if (left < h->name_len)
            return false;
        h->name = (const char *)p;
        p += h->name_len;
        left -= h->name_len;
        if (left < 4)
            return false;
        h->value_len = get_u32(p);
        p += 4;
        left -= 4;
        if (left < h->value_len)
            return false;
        h->value = (const char *)p;
        p += h->value_len;
        left -= h->value_len;
    }
    out->header_count = count;
    out->body = p;
    out->body_len = left;
    return true;
}

/* The fixed fields of p[0..len), of any version, into out (id left zero
 * for versions 1 and 2, derived later). False if p is too short for them
 * or of no known version. OUT: *count_at, where the u16 header count
 * lies. */
static bool decode_fixed(const unsigned char *p, size_t len, envelope *out, size_t *count_at)
{
    if (p == NULL || len < 1)
        return false;
    memset(out->id, 0, sizeof out->id);
    out->received_ms = 0;
    out->ttl_ms = 0;
    out->returns = 0;
    switch (p[0]) {
    case ENVELOPE_VERSION:
        *count_at = ENVELOPE_COUNT_OFFSET;
        break;
    case ENVELOPE_VERSION_3:
        *count_at = ENVELOPE_V3_COUNT_OFFSET;
        break;
    case ENVELOPE_VERSION_2:
        *count_at = ENVELOPE_V2_FIXED_BYTES - 2;
        break;
    case ENVELOPE_VERSION_1:
        *count_at = ENVELOPE_V1_FIXED_BYTES - 2;
        break;
    default:
        return false;
    }
    if (len < *count_at + 2)
        return false;
    out->version = p[0];
    if (p[0] != ENVELOPE_VERSION_1)
        out->returns = get_u32(p + ENVELOPE_RETURNS_OFFSET);
    if (p[0] == ENVELOPE_VERSION || p[0] == ENVELOPE_VERSION_3) {
        memcpy(out->id, p + ENVELOPE_ID_OFFSET, ENVELOPE_ID_LEN);
        out->received_ms = get_u64(p + ENVELOPE_RECEIVED_OFFSET);
    }
    if (p[0] == ENVELOPE_VERSION)
        out->ttl_ms = get_u64(p + ENVELOPE_TTL_OFFSET);
    return true;
}

/* envelope_decode() but for the id of versions 1 and 2, left zero:
 * whether data[0..len) is valid, and what its fields are. */
static bool decode_fields(const unsigned char *p, size_t len, envelope *out)
{
    size_t count_at;
    if (!decode_fixed(p, len, out, &count_at))
        return false;
    return decode_headers(p + count_at, len - count_at, out);
}

/* The id of a version 1 or 2 envelope p[0..len), derived from its bytes
 * but the returns field (which changes as it comes back), as envelope.h
 * says. OUT: id. */
static void derive_id(const unsigned char *p, size_t len, unsigned char id[ENVELOPE_ID_LEN])
{
    size_t rest = p[0] == ENVELOPE_VERSION_2 ? ENVELOPE_RETURNS_OFFSET + 4 : 1;
    uint64_t h[2] = {HASH_FNV1A_OFFSET, ENVELOPE_LEGACY_ID_BASIS};
    for (int k = 0; k < 2; k++) {
        h[k] = hash_bytes(h[k], p, 1); /* the version */
        h[k] = hash_bytes(h[k], p + rest, len - rest);
        put_u64(id + 8 * k, h[k]);
    }
}

bool envelope_decode(const void *data, size_t len, envelope *out)
{
    if (!decode_fields(data, len, out))
        return false;
    if (out->version == ENVELOPE_VERSION_2 || out->version == ENVELOPE_VERSION_1)
        derive_id(data, len, out->id);
    return true;
}

bool envelope_times(const void *data, size_t len, uint64_t *received_ms, uint64_t *ttl_ms)
{
    envelope fixed; /* the fixed fields only: no header is read */
    size_t count_at;
    if (!decode_fixed(data, len, &fixed, &count_at))
        return false;
    *received_ms = fixed.received_ms;
    *ttl_ms = fixed.ttl_ms;
    return true;
}

bool envelope_set_returns(void *data, size_t len, uint32_t returns)
{
    envelope e; /* only to check the whole envelope before writing into it */
    if (!decode_fields(data, len, &e) || e.version == ENVELOPE_VERSION_1)
        return false;
    put_u32((unsigned char *)data + ENVELOPE_RETURNS_OFFSET, returns);
    return true;
}

void envelope_id_text(const envelope *e, char out[ENVELOPE_ID_TEXT_SIZE])
{
    hex_encode(e->id, ENVELOPE_ID_LEN, out);
}

const char *envelope_find(const envelope *e, const char *name, size_t *value_len)
{
    size_t name_len = strlen(name);
    for (size_t i = 0; i < e->header_count; i++) {
        const envelope_header *h = &e->headers[i];
        if (h->name_len == name_len && strncasecmp(h->name, name, name_len) == 0) {
            *value_len = h->value_len;
            return h->value;
        }
    }
    return NULL;
}
