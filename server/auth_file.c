/* auth_file.c - the --auth-file's parser and its token set (format in
 * auth_file.h). */
#include "auth_file.h"

#include "hex.h"

#include <errno.h>
#include <nettle/memops.h>
#include <nettle/sha2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const scope_words[AUTH_SCOPE_KINDS] = {
    [AUTH_SCOPE_SEND] = "send",
    [AUTH_SCOPE_RECEIVE] = "receive",
    [AUTH_SCOPE_ADMIN] = "admin",
    [AUTH_SCOPE_METRICS] = "metrics",
};

const char *auth_scope_word(auth_scope_kind kind)
{
    return (unsigned)kind < AUTH_SCOPE_KINDS ? scope_words[kind] : "?";
}

void auth_digest(const char *token, size_t len, uint8_t digest[AUTH_DIGEST_SIZE])
{
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    sha256_update(&ctx, len, (const uint8_t *)token);
    sha256_digest(&ctx, AUTH_DIGEST_SIZE, digest);
}

/* ---- the parser ---- */

/* What the parse has made so far, and where it is. */
typedef struct parse_state {
    auth_set *set;
    size_t token_cap, scope_cap;
    const char *name; /* of the file, for messages */
    unsigned line;
    char *why;
    size_t why_size;
} parse_state;

static bool refuse(parse_state *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Say what is wrong at the current line; always false. */
static bool refuse(parse_state *p, const char *fmt, ...)
{
    int n = snprintf(p->why, p->why_size, "%s:%u: ", p->name, p->line);
    if (n < 0 || (size_t)n >= p->why_size)
        return false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->why + n, p->why_size - (size_t)n, fmt, ap);
    va_end(ap);
    return false;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

/* Grow *items (of *cap, holding count, each size bytes) to room for one
 * more. False if out of memory. */
static bool grow(void **items, size_t *cap, size_t count, size_t size)
{
    if (count < *cap)
        return true;
    size_t cap_new = *cap ? *cap * 2 : 16;
    void *p = realloc(*items, cap_new * size);
    if (p == NULL)
        return false;
    *items = p;
    *cap = cap_new;
    return true;
}

/* The hash field[0..len) into digest. */
static bool parse_hash(parse_state *p, const char *field, size_t len, uint8_t *digest)
{
    if (len != 2 * AUTH_DIGEST_SIZE)
        return refuse(p,
                      "the first field is %zu characters, not the 64 lowercase hex digits "
                      "of a token's SHA-256 (a token itself is never written here)",
                      len);
    for (size_t i = 0; i < len; i++)
        if (field[i] >= 'A' && field[i] <= 'F') /* hex_decode() takes them: the file does not */
            return refuse(p, "the first field is not 64 lowercase hex digits");
    if (!hex_decode(field, AUTH_DIGEST_SIZE, digest))
        return refuse(p, "the first field is not 64 lowercase hex digits");
    return true;
}

/* The GLOB glob[0..len) of a scope: a channel name, or a prefix of one
 * ending in '*'. */
static bool check_glob(parse_state *p, const char *word, const char *glob, size_t len)
{
    if (len == 0)
        return refuse(p, "%s: has no channel after the ':' (give NAME, PREFIX* or *)", word);
    bool prefix = glob[len - 1] == '*';
    size_t stem = len - prefix;
    for (size_t i = 0; i < stem; i++)
        if (!is_name_char(glob[i]))
            return refuse(p,
                          "%s:%.*s: a channel is letters, digits, '.', '_' and '-', with '*' "
                          "only at its end",
                          word, (int)len, glob);
    if (stem > HOP_NAME_MAX)
        return refuse(p, "%s: the channel is longer than %d characters", word, HOP_NAME_MAX);
    bool dots = (stem == 1 && glob[0] == '.') || (stem == 2 && glob[0] == '.' && glob[1] == '.');
    if (!prefix && dots)
        return refuse(p, "%s:%.*s is not a channel name", word, (int)len, glob);
    return true;
}

/* One scope field[0..len) of the token being parsed. */
static bool parse_scope(parse_state *p, const char *field, size_t len)
{
    auth_set *s = p->set;
    const char *colon = memchr(field, ':', len);
    size_t word_len = colon ? (size_t)(colon - field) : len;
    auth_scope_kind kind = AUTH_SCOPE_KINDS;
    for (size_t k = 0; k < AUTH_SCOPE_KINDS; k++)
        if (word_len == strlen(scope_words[k]) && memcmp(field, scope_words[k], word_len) == 0)
            kind = (auth_scope_kind)k;
    if (kind == AUTH_SCOPE_KINDS)
        return refuse(p, "'%.*s' is no scope (send:GLOB, receive:GLOB, admin:GLOB or metrics)",
                      (int)len, field);
    if (kind == AUTH_SCOPE_METRICS && colon)
        return refuse(p, "metrics takes no channel ('%.*s')", (int)len, field);
    if (kind != AUTH_SCOPE_METRICS && colon == NULL)
        return refuse(p, "%s needs a channel: %s:NAME, %s:PREFIX* or %s:*", scope_words[kind],
                      scope_words[kind], scope_words[kind], scope_words[kind]);
    const char *glob = colon ? colon + 1 : "";
    size_t glob_len = colon ? len - word_len - 1 : 0;
    if (colon && !check_glob(p, scope_words[kind], glob, glob_len))
        return false;
    if (!grow((void **)&s->scopes, &p->scope_cap, s->scope_count, sizeof *s->scopes))
        return refuse(p, "out of memory");
    auth_scope *scope = &s->scopes[s->scope_count++];
    scope->kind = kind;
    memcpy(scope->glob, glob, glob_len);
    scope->glob[glob_len] = '\0';
    return true;
}

/* The next field of line[*at..len): OUT *field, *field_len; false at the
 * end of the line or at a comment. */
static bool next_field(const char *line, size_t len, size_t *at, const char **field,
                       size_t *field_len)
{
    size_t i = *at;
    while (i < len && is_blank(line[i]))
        i++;
    if (i == len || line[i] == '#')
        return false;
    size_t start = i;
    while (i < len && !is_blank(line[i]))
        i++;
    *field = line + start;
    *field_len = i - start;
    *at = i;
    return true;
}

/* The earlier token of the set with digest, or NULL (at load, not in
 * constant time: the file is the server's own). */
static const auth_token *earlier(const auth_set *s, const uint8_t *digest)
{
    for (size_t i = 0; i < s->token_count; i++)
        if (memcmp(s->tokens[i].digest, digest, AUTH_DIGEST_SIZE) == 0)
            return &s->tokens[i];
    return NULL;
}

/* One line[0..len) of the file, its '\n' and any '\r' before it gone. */
static bool parse_line(parse_state *p, const char *line, size_t len)
{
    if (memchr(line, '\0', len) || memchr(line, '\r', len))
        return refuse(p, "holds a NUL or carriage return byte");
    size_t at = 0;
    const char *field;
    size_t field_len;
    if (!next_field(line, len, &at, &field, &field_len))
        return true; /* blank, or a comment */
    auth_set *s = p->set;
    if (s->token_count == AUTH_FILE_MAX_TOKENS)
        return refuse(p, "more than %d tokens", AUTH_FILE_MAX_TOKENS);
    if (!grow((void **)&s->tokens, &p->token_cap, s->token_count, sizeof *s->tokens))
        return refuse(p, "out of memory");
    auth_token *t = &s->tokens[s->token_count];
    *t = (auth_token){.first_scope = s->scope_count, .line = p->line};
    if (!parse_hash(p, field, field_len, t->digest))
        return false;
    const auth_token *same = earlier(s, t->digest);
    if (same)
        return refuse(p, "the same token as line %u", same->line);
    while (next_field(line, len, &at, &field, &field_len)) {
        if (t->scope_count == AUTH_FILE_MAX_SCOPES)
            return refuse(p, "more than %d scopes", AUTH_FILE_MAX_SCOPES);
        if (!parse_scope(p, field, field_len))
            return false;
        t->scope_count++;
    }
    if (t->scope_count == 0)
        return refuse(p, "the token has no scope (send:GLOB, receive:GLOB, admin:GLOB or "
                         "metrics)");
    s->token_count++;
    return true;
}

bool auth_file_parse(const char *text, size_t len, const char *name, auth_set **out, char *why,
                     size_t why_size)
{
    parse_state p = {.name = name, .why = why, .why_size = why_size};
    if (len > AUTH_FILE_MAX_BYTES) {
        snprintf(why, why_size, "%s: larger than %zu bytes", name, AUTH_FILE_MAX_BYTES);
        return false;
    }
    if ((p.set = calloc(1, sizeof *p.set)) == NULL) {
        snprintf(why, why_size, "%s: out of memory", name);
        return false;
    }
    size_t at = 0;
    while (at < len) {
        p.line++;
        const char *nl = memchr(text + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - text) : len, line_len = end - at;
        if (line_len > 0 && text[end - 1] == '\r')
            line_len--; /* a file written on Windows */
        if (!parse_line(&p, text + at, line_len)) {
            auth_set_free(p.set);
            return false;
        }
        at = end + 1;
    }
    atomic_init(&p.set->refs, 1);
    *out = p.set;
    return true;
}

bool auth_file_load(const char *path, auth_set **out, char *why, size_t why_size)
{
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        snprintf(why, why_size, "%s: cannot read: %s", path, strerror(errno));
        return false;
    }
    char *text = malloc(AUTH_FILE_MAX_BYTES + 1);
    size_t len = text ? fread(text, 1, AUTH_FILE_MAX_BYTES + 1, f) : 0;
    bool failed = text == NULL || ferror(f);
    fclose(f);
    bool ok = false;
    if (failed)
        snprintf(why, why_size, "%s: cannot read: %s", path, text ? strerror(errno) : "no memory");
    else
        ok = auth_file_parse(text, len, path, out, why, why_size);
    free(text);
    return ok;
}

void auth_set_free(auth_set *s)
{
    if (s == NULL)
        return;
    free(s->tokens);
    free(s->scopes);
    free(s);
}

/* ---- lookup ---- */

const auth_token *auth_set_find(const auth_set *s, const uint8_t digest[AUTH_DIGEST_SIZE])
{
    const auth_token *found = NULL;
    for (size_t i = 0; i < s->token_count; i++) {
        /* no early exit: every digest is compared, found or not */
        int same = memeql_sec(s->tokens[i].digest, digest, AUTH_DIGEST_SIZE);
        found = same ? &s->tokens[i] : found;
    }
    return found;
}

bool auth_glob_match(const char *glob, const char *name)
{
    size_t len = strlen(glob);
    if (len > 0 && glob[len - 1] == '*')
        return strncmp(glob, name, len - 1) == 0;
    return strcmp(glob, name) == 0;
}

bool auth_token_grants(const auth_set *s, const auth_token *t, auth_scope_kind kind,
                       const char *channel)
{
    for (size_t i = 0; i < t->scope_count; i++) {
        const auth_scope *scope = &s->scopes[t->first_scope + i];
        if (scope->kind == kind &&
            (kind == AUTH_SCOPE_METRICS || auth_glob_match(scope->glob, channel)))
            return true;
    }
    return false;
}
