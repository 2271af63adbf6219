/* query.c - the query arguments of requests (see query.h). */
#include "query.h"

#include "delivery.h"
#include "expiry.h"
#include "options.h"
#include "target.h"

#include <string.h>

/* A query argument as text: NULL when absent. OUT: *bad, true when present
 * without a value or with a decoded NUL in it. */
static const char *query_value(struct MHD_Connection *conn, const char *key, bool *bad)
{
    const char *value = NULL;
    size_t value_len = 0;
    *bad = false;
    if (MHD_lookup_connection_value_n(conn, MHD_GET_ARGUMENT_KIND, key, strlen(key), &value,
                                      &value_len) != MHD_YES)
        return NULL;
    /* "?key" without a value is NULL; a decoded %00 shows as a short strlen */
    *bad = value == NULL || strlen(value) != value_len;
    return value;
}

bool query_wait(request *req, struct MHD_Connection *conn, uint64_t *ms)
{
    double max_wait = req->server->options.max_wait;
    double wait = QUERY_DEFAULT_WAIT_SECONDS < max_wait ? QUERY_DEFAULT_WAIT_SECONDS : max_wait;
    bool bad;
    const char *value = query_value(conn, "wait", &bad);
    if ((value || bad) && (bad || !options_parse_seconds(value, max_wait, &wait))) {
        request_fail(req, API_BAD_WAIT, "wait must be a number of seconds from 0 to %g", max_wait);
        return false;
    }
    *ms = options_seconds_ms(wait);
    return true;
}

bool query_max(request *req, struct MHD_Connection *conn, size_t limit, size_t *max)
{
    bool bad;
    const char *value = query_value(conn, "max", &bad);
    *max = 0;
    if (value == NULL && !bad)
        return true;
    if (bad || !target_parse_count(value, limit, max)) {
        request_fail(req, API_BAD_MAX, "max must be a whole number from 1 to %zu", limit);
        return false;
    }
    return true;
}

/* value (NULL: absent; bad: see query_value()) as a lease. */
static bool lease_of(request *req, const char *value, bool bad, uint64_t *ms)
{
    double max_lease = req->server->options.max_lease, seconds = 0;
    if (value == NULL || bad || !options_parse_seconds(value, max_lease, &seconds) ||
        (*ms = options_seconds_ms(seconds)) == 0) {
        request_fail(req, API_BAD_LEASE, "lease must be a number of seconds above 0 and at most %g",
                     max_lease);
        return false;
    }
    return true;
}

bool query_lease(request *req, struct MHD_Connection *conn, uint64_t *ms)
{
    bool bad;
    const char *value = query_value(conn, "lease", &bad);
    *ms = 0;
    if (value == NULL && !bad)
        return true; /* not leased */
    return lease_of(req, value, bad, ms);
}

/* value (bad: see query_value()) as a delay of at most max seconds. */
static bool delay_of(const char *value, bool bad, double max, uint64_t *ms)
{
    double seconds;
    if (bad || !options_parse_seconds(value, max, &seconds))
        return false;
    *ms = options_seconds_ms(seconds);
    return true;
}

bool query_delay(request *req, struct MHD_Connection *conn, uint64_t *ms)
{
    double max = req->server->options.max_delay;
    bool bad;
    const char *value = query_value(conn, "delay", &bad);
    const char *header = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, QUERY_DELAY_HEADER);
    uint64_t from_query = 0, from_header = 0;
    bool ok = (value == NULL && !bad) || delay_of(value, bad, max, &from_query);
    ok = ok && (header == NULL || delay_of(header, false, max, &from_header));
    ok = ok && (value == NULL || header == NULL || from_query == from_header);
    if (!ok) {
        request_fail(req, API_BAD_DELAY,
                     "delay (or " QUERY_DELAY_HEADER ") must be a number of seconds from 0 to %g, "
                     "the same in both when both are given",
                     max);
        return false;
    }
    *ms = value ? from_query : from_header;
    return true;
}

bool query_lease_required(request *req, struct MHD_Connection *conn, uint64_t *ms)
{
    bool bad;
    const char *value = query_value(conn, "lease", &bad);
    *ms = 0;
    return lease_of(req, value, bad, ms);
}

/* A TTL's text (NULL: absent) in ms: false if bad. OUT: *ms (0: absent). */
static bool ttl_of(const char *value, bool bad, uint64_t *ms)
{
    double seconds = 0;
    *ms = 0;
    if (value == NULL && !bad)
        return true;
    return !bad && options_parse_seconds(value, EXPIRY_MAX_SECONDS, &seconds) &&
           (*ms = (uint64_t)(seconds * 1000.0 + 0.5)) > 0;
}

bool query_ttl(request *req, struct MHD_Connection *conn, uint64_t *ms)
{
    bool bad;
    const char *argument = query_value(conn, EXPIRY_TTL_ARGUMENT, &bad);
    uint64_t from_argument, from_header;
    bool ok = ttl_of(argument, bad, &from_argument);
    const char *header = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, EXPIRY_TTL_HEADER);
    if (!ok || !ttl_of(header, false, &from_header)) {
        request_fail(req, API_BAD_TTL,
                     "%s must be a number of seconds above 0 and at most " EXPIRY_MAX_TEXT,
                     ok ? EXPIRY_TTL_HEADER : EXPIRY_TTL_ARGUMENT);
        return false;
    }
    if (from_argument && from_header && from_argument != from_header) {
        request_fail(req, API_BAD_TTL, "?ttl= and %s say different things", EXPIRY_TTL_HEADER);
        return false;
    }
    *ms = from_argument ? from_argument : from_header;
    return true;
}

/* True if text could begin a channel name: its characters are those of
 * names, and it is not longer than one. */
static bool name_prefix_valid(const char *text)
{
    size_t len = strlen(text);
    return len <= HOP_NAME_MAX &&
           strspn(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == len;
}

bool query_prefix(request *req, struct MHD_Connection *conn, const char **prefix)
{
    bool bad;
    const char *value = query_value(conn, "prefix", &bad);
    if (bad || (value && !name_prefix_valid(value))) {
        request_fail(req, API_BAD_PREFIX, NULL);
        return false;
    }
    *prefix = value ? value : "";
    return true;
}
