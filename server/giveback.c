/* giveback.c - messages back to their channel, counted or not, or on to
 * their dead-letter channel (see giveback.h). */
#include "giveback.h"

#include "envelope.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Back to the head of e's channel (hop_requeue), logged if the core
 * refuses. */
static void to_head(registry_entry *e, void *msg, size_t len)
{
    hop_err err = hop_requeue(e->ch, msg, len);
    if (err != HOP_OK)
        log_error("channel %s: a message could not be given back: %s", hop_channel_name(e->ch),
                  hop_strerror(err));
}

/* Back to the head of e's channel delay_ms from now (hop_requeue_at), or
 * at once if delay_ms is 0 or the core cannot keep it that long (logged). */
static void to_head_at(registry_entry *e, void *msg, size_t len, uint64_t delay_ms)
{
    if (delay_ms == 0) {
        to_head(e, msg, len);
        return;
    }
    hop_err err = hop_requeue_at(e->ch, msg, len, hop_now_ms() + delay_ms);
    if (err == HOP_OK)
        return;
    log_warn("channel %s: a message could not be given back later (%s): back at once",
             hop_channel_name(e->ch), hop_strerror(err));
    to_head(e, msg, len);
}

/* Count one more hand-out in msg's envelope. Returns the count now: how
 * many times msg was handed out and came back; 0 if the envelope cannot
 * say (damaged, or of version 1, which has no count). */
static uint32_t count_return(void *msg, size_t len)
{
    envelope env;
    uint32_t returns = envelope_decode(msg, len, &env) ? env.returns + 1 : 0;
    if (returns > 0)
        envelope_set_returns(msg, len, returns);
    return returns;
}

/* stored (the bytes NAME.dead keeps) goes to <name>.dead, and msg, its
 * original, is consumed from e's channel: true; false if it cannot (why
 * logged, with what), and msg stays the caller's. */
static bool dead_letter(registry_entry *e, void *msg, const void *stored, size_t len,
                        const char *what)
{
    const char *name = hop_channel_name(e->ch);
    size_t n = strlen(name), suffix = strlen(GIVEBACK_DEAD_SUFFIX);
    char dead[HOP_NAME_MAX + 1];
    if (n >= suffix && strcmp(name + n - suffix, GIVEBACK_DEAD_SUFFIX) == 0)
        return false; /* a dead-letter channel itself: its messages stay */
    if (n + suffix > HOP_NAME_MAX) {
        log_warn("channel %s: a message %s stays: the name leaves no room for %s", name, what,
                 GIVEBACK_DEAD_SUFFIX);
        return false;
    }
    snprintf(dead, sizeof dead, "%s%s", name, GIVEBACK_DEAD_SUFFIX);
    registry_entry *d = NULL;
    api_error found = registry_get(dead, &d);
    hop_err err = found == API_OK ? hop_send(d->ch, stored, len) : HOP_INVALID;
    if (found == API_OK && err != HOP_OK)
        registry_put(d);
    if (err != HOP_OK) {
        log_error("channel %s: a message %s could not go to %s (%s); it stays", name, what, dead,
                  found != API_OK ? api_error_code(found) : hop_strerror(err));
        return false;
    }
    registry_put(d);
    atomic_fetch_add(&e->dead_lettered_total, 1);
    hop_free(msg); /* consumed from its channel: it lives on in the dead one */
    return true;
}

/* The envelope of msg with one more header, reason, after the others: a new
 * buffer (free()), or NULL (damaged envelope, out of memory, too many
 * headers). OUT: *out_len. */
static unsigned char *with_reason(const void *msg, size_t len, const char *reason, size_t *out_len)
{
    envelope env;
    if (!envelope_decode(msg, len, &env) || env.header_count >= ENVELOPE_MAX_HEADERS)
        return NULL;
    env.headers[env.header_count++] = (envelope_header){
        GIVEBACK_DEAD_REASON_HEADER, strlen(GIVEBACK_DEAD_REASON_HEADER), reason, strlen(reason)};
    size_t prefix = envelope_prefix_size(env.headers, env.header_count);
    unsigned char *out = malloc(prefix + env.body_len);
    if (out == NULL)
        return NULL;
    envelope_write_prefix(out, env.headers, env.header_count, env.id, env.received_ms,
                          env.ttl_ms); /* a dead letter keeps its TTL */
    memcpy(out + prefix, env.body, env.body_len);
    *out_len = prefix + env.body_len;
    return out;
}

bool giveback_dead(registry_entry *e, void *msg, size_t len, const char *reason)
{
    size_t stored_len = 0;
    unsigned char *stored = with_reason(msg, len, reason, &stored_len);
    /* without room for the reason, the message goes as it was */
    bool moved = dead_letter(e, msg, stored ? stored : msg, stored ? stored_len : len,
                             "refused by its forwarding target");
    free(stored);
    return moved;
}

void giveback_unsent(registry_entry *e, void *msg, size_t len)
{
    to_head(e, msg, len);
}

/* msg came back unconsumed: one more hand-out counted (OUT: *returns, as
 * count_return()); true if that moved it to NAME.dead (it is gone), false
 * if it is still the caller's to give back. */
static bool returned(registry_entry *e, void *msg, size_t len, size_t max_deliveries,
                     uint32_t *returns)
{
    *returns = count_return(msg, len);
    /* handed out `returns` times now, each one ending without consumption */
    return max_deliveries > 0 && *returns >= max_deliveries &&
           dead_letter(e, msg, msg, len, "handed out --max-deliveries times");
}

void giveback_unconsumed(registry_entry *e, void *msg, size_t len, size_t max_deliveries)
{
    giveback_released(e, msg, len, max_deliveries, 0);
}

void giveback_released(registry_entry *e, void *msg, size_t len, size_t max_deliveries,
                       uint64_t delay_ms)
{
    uint32_t returns;
    if (!returned(e, msg, len, max_deliveries, &returns))
        to_head_at(e, msg, len, delay_ms);
}

uint64_t giveback_backoff_ms(const giveback_backoff *b, uint32_t returns)
{
    uint64_t ms = b->first_ms;
    for (uint32_t i = 1; i < returns && ms < b->max_ms; i++)
        ms *= 2;
    return ms < b->max_ms ? ms : b->max_ms;
}

void giveback_expired(registry_entry *e, void *msg, size_t len, size_t max_deliveries,
                      const giveback_backoff *b)
{
    uint32_t returns;
    if (!returned(e, msg, len, max_deliveries, &returns))
        to_head_at(e, msg, len, giveback_backoff_ms(b, returns));
}

void giveback_at_stop(registry_entry *e, void *msg, size_t len)
{
    count_return(msg, len);
    to_head(e, msg, len);
}
