/* fuzz_auth_file.c - libFuzzer harness of the --auth-file parser
 * (server/auth_file.c).
 *
 * Input: the file's bytes, as they are (NUL bytes included). Checked:
 *   - a refused file comes with a NUL-terminated reason that names the
 *     file ("f:" and a line, or "f: " for the whole file), and no set;
 *   - a parsed set has at most AUTH_FILE_MAX_TOKENS tokens, each with 1
 *     to AUTH_FILE_MAX_SCOPES scopes inside the set's scopes, on lines in
 *     increasing order, no two with the same digest; each scope of a
 *     channel has a glob of channel characters with at most a trailing
 *     '*', and a metrics scope none;
 *   - each token is found by its own digest, and each glob matches what it
 *     names (itself; a prefix its stem and the stem followed by more);
 *   - written out again in the file's format, the set parses to the same
 *     set (lines aside). */
#include "auth_file.h"
#include "hex.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_auth_file: %s\n", what);
    abort();
}

static bool glob_valid(const auth_scope *s)
{
    size_t len = strlen(s->glob);
    if (s->kind == AUTH_SCOPE_METRICS)
        return len == 0;
    if (len == 0 || len > AUTH_GLOB_MAX)
        return false;
    size_t stem = len - (s->glob[len - 1] == '*');
    return strspn(s->glob, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
           stem;
}

static void check_glob_match(const auth_scope *s)
{
    size_t len = strlen(s->glob);
    if (s->kind == AUTH_SCOPE_METRICS)
        return;
    if (s->glob[len - 1] != '*') {
        if (!auth_glob_match(s->glob, s->glob))
            fail("a name does not match itself");
        return;
    }
    char name[AUTH_GLOB_MAX + 8];
    memcpy(name, s->glob, len - 1);
    strcpy(name + len - 1, ".dead");
    if (!auth_glob_match(s->glob, name))
        fail("a prefix does not match a longer name");
    name[len - 1] = '\0';
    if (len > 1 && !auth_glob_match(s->glob, name))
        fail("a prefix does not match its stem");
}

static void check_set(const auth_set *set)
{
    if (set->token_count > AUTH_FILE_MAX_TOKENS)
        fail("too many tokens");
    for (size_t i = 0; i < set->token_count; i++) {
        const auth_token *t = &set->tokens[i];
        if (t->scope_count == 0 || t->scope_count > AUTH_FILE_MAX_SCOPES ||
            t->first_scope + t->scope_count > set->scope_count)
            fail("a token's scopes out of bounds");
        if (i > 0 && t->line <= set->tokens[i - 1].line)
            fail("lines not in order");
        if (auth_set_find(set, t->digest) != t)
            fail("a token not found by its digest (or a duplicate)");
        for (size_t k = 0; k < t->scope_count; k++) {
            const auth_scope *s = &set->scopes[t->first_scope + k];
            if (!glob_valid(s))
                fail("a bad glob accepted");
            check_glob_match(s);
        }
    }
}

/* set in the file's format: new text (free()), its length in *len. */
static char *write_out(const auth_set *set, size_t *len)
{
    size_t cap =
        1 + set->token_count * (2 * AUTH_DIGEST_SIZE + 2) + set->scope_count * (AUTH_GLOB_MAX + 16);
    char *text = malloc(cap);
    if (text == NULL)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < set->token_count; i++) {
        const auth_token *t = &set->tokens[i];
        hex_encode(t->digest, AUTH_DIGEST_SIZE, text + n);
        n += 2 * AUTH_DIGEST_SIZE;
        for (size_t k = 0; k < t->scope_count; k++) {
            const auth_scope *s = &set->scopes[t->first_scope + k];
            n += (size_t)snprintf(text + n, cap - n, " %s%s%s", auth_scope_word(s->kind),
                                  s->glob[0] ? ":" : "", s->glob);
        }
        text[n++] = '\n';
    }
    *len = n;
    return text;
}

static void check_round_trip(const auth_set *set)
{
    size_t len = 0;
    char *text = write_out(set, &len);
    if (text == NULL)
        return;
    auth_set *again = NULL;
    char why[256];
    if (!auth_file_parse(text, len, "f", &again, why, sizeof why))
        fail("a set written out is refused");
    if (again->token_count != set->token_count || again->scope_count != set->scope_count)
        fail("a set written out parses to another count");
    for (size_t i = 0; i < set->token_count; i++)
        if (memcmp(again->tokens[i].digest, set->tokens[i].digest, AUTH_DIGEST_SIZE) != 0)
            fail("a set written out parses to other digests");
    for (size_t i = 0; i < set->scope_count; i++)
        if (again->scopes[i].kind != set->scopes[i].kind ||
            strcmp(again->scopes[i].glob, set->scopes[i].glob) != 0)
            fail("a set written out parses to other scopes");
    auth_set_free(again);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    auth_set *set = NULL;
    char why[256];
    memset(why, 'x', sizeof why);
    if (!auth_file_parse((const char *)data, size, "f", &set, why, sizeof why)) {
        if (memchr(why, '\0', sizeof why) == NULL || strncmp(why, "f:", 2) != 0)
            fail("a refusal without a reason that names the file");
        if (set != NULL)
            fail("a refusal with a set");
        return 0;
    }
    check_set(set);
    check_round_trip(set);
    auth_set_free(set);
    return 0;
}
