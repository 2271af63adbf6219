/* giveback.c - messages back to their channel, counted or not, or on to
 * their dead-letter channel (see giveback.h). */
#include "giveback.h"

#include "envelope.h"
#include "log.h"

#include <stdio.h>
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

/* msg goes to <name>.dead: true if it went (msg is then consumed from its
 * channel), false if it stays the caller's. */
static bool dead_letter(registry_entry *e, void *msg, size_t len, uint32_t handed_out)
{
    const char *name = hop_channel_name(e->ch);
    size_t n = strlen(name), suffix = strlen(GIVEBACK_DEAD_SUFFIX);
    char dead[HOP_NAME_MAX + 1];
    if (n >= suffix && strcmp(name + n - suffix, GIVEBACK_DEAD_SUFFIX) == 0)
        return false; /* a dead-letter channel itself: its messages stay */
    if (n + suffix > HOP_NAME_MAX) {
        log_warn("channel %s: a message handed out %u times stays: the name leaves no room for "
                 "%s",
                 name, handed_out, GIVEBACK_DEAD_SUFFIX);
        return false;
    }
    snprintf(dead, sizeof dead, "%s%s", name, GIVEBACK_DEAD_SUFFIX);
    registry_entry *d = NULL;
    api_error found = registry_get(dead, &d);
    hop_err err = found == API_OK ? hop_send(d->ch, msg, len) : HOP_INVALID;
    if (err != HOP_OK) {
        log_error("channel %s: a message handed out %u times could not go to %s (%s); it goes "
                  "back to its channel",
                  name, handed_out, dead,
                  found != API_OK ? api_error_code(found) : hop_strerror(err));
        return false;
    }
    atomic_fetch_add(&e->dead_lettered_total, 1);
    hop_free(msg); /* consumed from its channel: it lives on in the dead one */
    return true;
}

void giveback_unsent(registry_entry *e, void *msg, size_t len)
{
    to_head(e, msg, len);
}

void giveback_unconsumed(registry_entry *e, void *msg, size_t len, size_t max_deliveries)
{
    uint32_t returns = count_return(msg, len);
    /* handed out `returns` times now, each one ending without consumption */
    if (max_deliveries > 0 && returns >= max_deliveries && dead_letter(e, msg, len, returns))
        return;
    to_head(e, msg, len);
}

void giveback_at_stop(registry_entry *e, void *msg, size_t len)
{
    count_return(msg, len);
    to_head(e, msg, len);
}
