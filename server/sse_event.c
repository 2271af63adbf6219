/* sse_event.c - a message as a Server-Sent Event (see sse_event.h): the
 * envelope decoded, its JSON made with jansson, the SSE lines around it. */
#include "sse_event.h"

#include "envelope.h"

#include <jansson.h>
#include <nettle/base64.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool is_content_type(const envelope_header *h)
{
    size_t n = strlen(ENVELOPE_CONTENT_TYPE);
    return h->name_len == n && strncasecmp(h->name, ENVELOPE_CONTENT_TYPE, n) == 0;
}

/* The kept headers but Content-Type, in order, as [name, value] pairs;
 * one that is not UTF-8 (json_stringn refuses it) is left out. New. */
static json_t *headers_json(const envelope *env)
{
    json_t *list = json_array();
    for (size_t i = 0; list && i < env->header_count; i++) {
        const envelope_header *h = &env->headers[i];
        if (is_content_type(h))
            continue;
        json_t *name = json_stringn(h->name, h->name_len);
        json_t *value = json_stringn(h->value, h->value_len);
        if (name && value)
            json_array_append_new(list, json_pack("[oo]", name, value));
        else {
            json_decref(name);
            json_decref(value);
        }
    }
    return list;
}

/* body[0..len) as standard base64 (padded). New, NULL if out of memory. */
static json_t *base64_json(const unsigned char *body, size_t len)
{
    char *text = malloc(BASE64_ENCODE_RAW_LENGTH(len) + 1);
    if (text == NULL)
        return NULL;
    base64_encode_raw(text, len, body);
    json_t *s = json_stringn(text, BASE64_ENCODE_RAW_LENGTH(len));
    free(text);
    return s;
}

/* The event's JSON object. New, NULL if out of memory. */
static json_t *event_json(const envelope *env, const char *receipt)
{
    char id[ENVELOPE_ID_TEXT_SIZE];
    envelope_id_text(env, id);
    size_t type_len;
    const char *type = envelope_find(env, ENVELOPE_CONTENT_TYPE, &type_len);
    if (type == NULL) {
        type = ENVELOPE_DEFAULT_CONTENT_TYPE;
        type_len = strlen(type);
    }
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "content_type", json_stringn(type, type_len));
    json_object_set_new(o, "headers", headers_json(env));
    json_object_set_new(o, "delivery_count", json_integer((json_int_t)env->returns + 1));
    /* json_stringn() checks UTF-8: NULL for any other payload */
    json_t *body = json_stringn((const char *)env->body, env->body_len);
    if (body)
        json_object_set_new(o, "body", body);
    else
        json_object_set_new(o, "body_base64", base64_json(env->body, env->body_len));
    if (receipt)
        json_object_set_new(o, "receipt", json_string(receipt));
    /* a member that could not be made is missing: the event is incomplete */
    size_t members = 5 + (receipt != NULL);
    if (o && json_object_size(o) != members) {
        json_decref(o);
        return NULL;
    }
    return o;
}

sse_event_result sse_event_format(const void *msg, size_t len, const char *receipt, char **text,
                                  size_t *text_len)
{
    envelope *env = malloc(sizeof *env); /* large: ENVELOPE_MAX_HEADERS of them */
    if (env == NULL)
        return SSE_EVENT_NOMEM;
    if (!envelope_decode(msg, len, env)) {
        free(env);
        return SSE_EVENT_MALFORMED;
    }
    json_t *o = event_json(env, receipt);
    char id[ENVELOPE_ID_TEXT_SIZE];
    envelope_id_text(env, id);
    free(env);
    char *data = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (data == NULL)
        return SSE_EVENT_NOMEM;
    /* compact JSON escapes every control character: it is one line */
    size_t size = strlen("id: \nevent: message\ndata: \n\n") + strlen(id) + strlen(data) + 1;
    char *out = malloc(size);
    if (out == NULL) {
        free(data);
        return SSE_EVENT_NOMEM;
    }
    int n = snprintf(out, size, "id: %s\nevent: message\ndata: %s\n\n", id, data);
    free(data);
    *text = out;
    *text_len = (size_t)n;
    return SSE_EVENT_OK;
}
