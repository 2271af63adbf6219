/* whoami.c - GET /whoami (see whoami.h). */
#include "whoami.h"

#include "respond.h"

#include <jansson.h>
#include <stdio.h>

/* The scopes of req's token, each as the file writes it. */
static json_t *scopes_json(const request *req)
{
    json_t *list = json_array();
    const auth_set *set = req->auth;
    for (size_t i = 0; list && i < req->token->scope_count; i++) {
        const auth_scope *scope = &set->scopes[req->token->first_scope + i];
        char text[16 + AUTH_GLOB_MAX];
        snprintf(text, sizeof text, "%s%s%s", auth_scope_word(scope->kind),
                 scope->glob[0] ? ":" : "", scope->glob);
        json_array_append_new(list, json_string(text));
    }
    return list;
}

static enum MHD_Result whoami_finish(request *req, struct MHD_Connection *conn)
{
    json_t *doc = json_object();
    if (doc == NULL)
        return respond_json(req, conn, NULL);
    /* auth.c lets a request here only with a token the set holds, or with
     * auth off */
    json_object_set_new(doc, "auth", json_boolean(req->token != NULL));
    if (req->token) {
        json_object_set_new(doc, "line", json_integer(req->token->line));
        json_object_set_new(doc, "scopes", scopes_json(req));
    }
    return respond_json(req, conn, doc);
}

const request_handler whoami_handler = {.finish = whoami_finish};
