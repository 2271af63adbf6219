/* auth.c - the route table of token classes and the decision of one
 * request (see auth.h). */
#include "auth.h"

#include "auth_store.h"
#include "verify.h"

#include <string.h>
#include <strings.h>

/* The one table: what each route needs. A route missing here is
 * AUTH_UNLISTED, which no token passes. */
static const auth_class classes[ROUTE_KINDS] = {
    [ROUTE_ERROR] = AUTH_TOKEN, /* 404, 405, 400 bad_name: for token holders only */
    [ROUTE_HEALTHZ] = AUTH_PUBLIC,  [ROUTE_READYZ] = AUTH_PUBLIC,   [ROUTE_WHOAMI] = AUTH_TOKEN,
    [ROUTE_UI] = AUTH_PUBLIC, /* the dashboard's files: no data in them, and the page must load to
                                 ask for a token */
    [ROUTE_STATUS] = AUTH_METRICS,  [ROUTE_METRICS] = AUTH_METRICS, [ROUTE_LIST] = AUTH_METRICS,
    [ROUTE_POST] = AUTH_SEND,       [ROUTE_GET] = AUTH_RECEIVE, /* plain, batch, long poll and
                                                                   stream alike */
    [ROUTE_PEEK] = AUTH_RECEIVE,    [ROUTE_ACK] = AUTH_RECEIVE,     [ROUTE_EXTEND] = AUTH_RECEIVE,
    [ROUTE_RELEASE] = AUTH_RECEIVE, [ROUTE_PURGE] = AUTH_ADMIN,     [ROUTE_DELETE] = AUTH_ADMIN,
    [ROUTE_REDRIVE] = AUTH_ADMIN,   [ROUTE_PAUSE] = AUTH_ADMIN,     [ROUTE_RESUME] = AUTH_ADMIN,
};

auth_class auth_class_of(route_kind kind)
{
    return (unsigned)kind < ROUTE_KINDS ? classes[kind] : AUTH_UNLISTED;
}

/* The token of an Authorization header value: what follows "Bearer " (the
 * scheme in any case, RFC 9110). NULL if it is no Bearer credential. OUT:
 * *len. */
static const char *bearer_token(const char *authorization, size_t *len)
{
    static const char scheme[] = "Bearer";
    size_t n = sizeof scheme - 1;
    if (authorization == NULL || strncasecmp(authorization, scheme, n) != 0 ||
        (authorization[n] != ' ' && authorization[n] != '\0'))
        return NULL;
    const char *token = authorization + n;
    while (*token == ' ')
        token++;
    *len = strlen(token);
    while (*len > 0 && (token[*len - 1] == ' ' || token[*len - 1] == '\t'))
        (*len)--;
    return token;
}

/* The scope class c asks of a token, or AUTH_SCOPE_KINDS for none. */
static auth_scope_kind scope_of(auth_class c)
{
    switch (c) {
    case AUTH_SEND:
        return AUTH_SCOPE_SEND;
    case AUTH_RECEIVE:
        return AUTH_SCOPE_RECEIVE;
    case AUTH_ADMIN:
        return AUTH_SCOPE_ADMIN;
    case AUTH_METRICS:
        return AUTH_SCOPE_METRICS;
    default:
        return AUTH_SCOPE_KINDS;
    }
}

auth_verdict auth_decide(const auth_set *set, const auth_question *q, const auth_token **who)
{
    *who = NULL;
    auth_class c = auth_class_of(q->kind);
    if (set == NULL || c == AUTH_PUBLIC || (c == AUTH_METRICS && q->public_metrics))
        return AUTH_ALLOWED;
    if (c == AUTH_SEND && q->signed_channel)
        return AUTH_ALLOWED; /* verify.c checks its signature instead */
    size_t len = 0;
    const char *token = bearer_token(q->authorization, &len);
    if (token == NULL)
        return AUTH_NO_TOKEN;
    uint8_t digest[AUTH_DIGEST_SIZE];
    auth_digest(token, len, digest);
    if (len == 0 || (*who = auth_set_find(set, digest)) == NULL)
        return AUTH_BAD_TOKEN;
    if (c == AUTH_TOKEN)
        return AUTH_ALLOWED;
    if (c == AUTH_UNLISTED)
        return AUTH_NO_SCOPE;
    return auth_token_grants(set, *who, scope_of(c), q->channel) ? AUTH_ALLOWED : AUTH_NO_SCOPE;
}

/* Fail req for verdict v (not AUTH_ALLOWED). */
static void refuse(request *req, auth_verdict v, const auth_question *q)
{
    auth_class c = auth_class_of(q->kind);
    if (v == AUTH_NO_TOKEN)
        request_fail(req, API_UNAUTHORIZED, NULL);
    else if (v == AUTH_BAD_TOKEN)
        request_fail(req, API_INVALID_TOKEN, NULL);
    else if (c == AUTH_METRICS)
        request_fail(req, API_FORBIDDEN, "this token has no metrics scope");
    else if (c == AUTH_UNLISTED)
        request_fail(req, API_FORBIDDEN, NULL);
    else
        request_fail(req, API_FORBIDDEN, "this token has no %s scope for channel %s",
                     auth_scope_word(scope_of(c)), q->channel);
}

bool auth_check(request *req, struct MHD_Connection *conn)
{
    if (!auth_store_enabled())
        return true;
    req->auth = auth_store_acquire();
    if (req->auth == NULL) {
        request_fail(req, API_CLOSED, NULL); /* the set is gone: the server stops */
        return false;
    }
    auth_question q = {
        .kind = req->route.kind,
        .channel = req->route.name,
        .authorization =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION),
        .public_metrics = req->server->options.public_metrics,
        /* The one place a --verify rule exempts a POST from tokens: its
         * signature is checked once the body is in (verify.h); the sender
         * (GitHub, Stripe, ...) cannot send a token. */
        .signed_channel = req->route.kind == ROUTE_POST &&
                          verify_covers(&req->server->options.verify, req->route.name),
    };
    auth_verdict v = auth_decide(req->auth, &q, &req->token);
    if (v != AUTH_ALLOWED)
        refuse(req, v, &q);
    return v == AUTH_ALLOWED;
}

void auth_release(request *req)
{
    auth_store_release(req->auth);
    req->auth = NULL;
    req->token = NULL;
}
