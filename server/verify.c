/* verify.c - the --verify rules and their secrets (see verify.h). */
#include "verify.h"

#include "forward_rules.h"
#include "words.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_uint_fast64_t failures_without_channel;

static const char *const scheme_names[] = {
    [VERIFY_GITHUB] = "github",
    [VERIFY_STRIPE] = "stripe",
    [VERIFY_STANDARD] = "standard-webhooks",
};
#define SCHEME_COUNT (sizeof scheme_names / sizeof scheme_names[0])

const char *verify_scheme_name(verify_scheme scheme)
{
    return (size_t)scheme < SCHEME_COUNT ? scheme_names[scheme] : "?";
}

/* The whole of path into buf[0..VERIFY_FILE_MAX]. OUT: *len. False with why. */
static bool read_file(const char *path, char *buf, size_t *len, char *why, size_t why_size)
{
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        snprintf(why, why_size, "cannot read %s: %s", path, strerror(errno));
        return false;
    }
    *len = fread(buf, 1, VERIFY_FILE_MAX + 1, f);
    bool failed = ferror(f);
    fclose(f);
    if (failed || *len > VERIFY_FILE_MAX) {
        snprintf(why, why_size, "%s: %s", path,
                 failed ? "cannot be read" : "is larger than 64 KiB");
        return false;
    }
    return true;
}

/* One secret line[0..len) of rule's file into *key. Standard Webhooks
 * secrets are read as --forward-secret's ("whsec_<base64>" decoded); GitHub
 * and Stripe sign with the secret's bytes as they are (Stripe's own begin
 * with whsec_ too, and are not decoded). False with *why. */
static bool parse_secret(const verify_rule *rule, const char *line, size_t len, forward_signer *key,
                         const char **why)
{
    if (rule->scheme == VERIFY_STANDARD)
        return forward_signer_parse(line, len, key, why);
    if (len > FORWARD_SIGN_KEY_MAX) {
        *why = "the secret is longer than " FORWARD_SIGN_KEY_MAX_TEXT " bytes";
        return false;
    }
    memcpy(key->key, line, len);
    key->key_len = len;
    return true;
}

/* Read rule's secrets from rule->path: rule->keys, rule->key_count. */
static bool load_secrets(verify_rule *rule, char *why, size_t why_size)
{
    char *text = malloc(VERIFY_FILE_MAX + 1);
    rule->keys = calloc(VERIFY_SECRETS_MAX, sizeof *rule->keys);
    size_t len = 0, line = 0;
    bool ok = text && rule->keys;
    if (!ok)
        snprintf(why, why_size, "out of memory");
    else
        ok = read_file(rule->path, text, &len, why, why_size);
    for (size_t start = 0; ok && start < len; line++) {
        const char *nl = memchr(text + start, '\n', len - start);
        size_t end = nl ? (size_t)(nl - text) : len, n = end - start;
        if (n > 0 && text[start + n - 1] == '\r')
            n--;
        const char *wrong = NULL;
        if (n > 0 && rule->key_count == VERIFY_SECRETS_MAX)
            wrong = "holds more secrets than 16";
        else if (n > 0 &&
                 parse_secret(rule, text + start, n, &rule->keys[rule->key_count], &wrong)) {
            rule->key_count++;
            wrong = NULL;
        }
        if (wrong) {
            snprintf(why, why_size, "%s, line %zu: %s", rule->path, line + 1, wrong);
            ok = false;
        }
        start = end + 1;
    }
    if (ok && rule->key_count == 0) {
        snprintf(why, why_size, "%s holds no secret", rule->path);
        ok = false;
    }
    if (text)
        explicit_bzero(text, len); /* the secrets live on in rule->keys only */
    free(text);
    return ok;
}

/* Parse the entry text[0..len) into *rule (its secrets not read yet).
 * NULL, or what is wrong. */
static const char *parse_entry(const char *text, size_t len, verify_rule *rule)
{
    const char *eq = memchr(text, '=', len);
    if (eq == NULL)
        return "is not NAME=SCHEME:SECRET_FILE";
    rule->name = text;
    rule->name_len = (size_t)(eq - text);
    if (!forward_rules_name_ok(rule->name, rule->name_len, &rule->prefix))
        return "has a NAME that is neither a channel name nor a prefix ending in '*'";
    const char *scheme = eq + 1, *end = text + len;
    const char *colon = memchr(scheme, ':', (size_t)(end - scheme));
    if (colon == NULL)
        return "is not NAME=SCHEME:SECRET_FILE";
    size_t scheme_len = (size_t)(colon - scheme);
    size_t i = 0;
    while (i < SCHEME_COUNT && !(strlen(scheme_names[i]) == scheme_len &&
                                 memcmp(scheme_names[i], scheme, scheme_len) == 0))
        i++;
    if (i == SCHEME_COUNT)
        return "has an unknown SCHEME (github, stripe or standard-webhooks)";
    rule->scheme = (verify_scheme)i;
    if (colon + 1 == end)
        return "has no SECRET_FILE";
    rule->path = strndup(colon + 1, (size_t)(end - colon - 1));
    return rule->path ? NULL : "could not be stored (out of memory)";
}

/* Add the entry text[0..len) to r. False with why. */
static bool add_one(verify_rules *r, const char *text, size_t len, char *why, size_t why_size)
{
    if (r->count == VERIFY_RULES_MAX) {
        snprintf(why, why_size, "'%.*s': more entries than 64", (int)len, text);
        return false;
    }
    verify_rule rule = {0};
    const char *wrong = parse_entry(text, len, &rule);
    if (wrong) {
        snprintf(why, why_size, "'%.*s' %s", (int)len, text, wrong);
        free((char *)rule.path);
        return false;
    }
    r->items[r->count++] = rule; /* freed with r from now on */
    return load_secrets(&r->items[r->count - 1], why, why_size);
}

bool verify_rules_add(verify_rules *r, const char *text, char *why, size_t why_size)
{
    const char *p = text;
    bool any = false;
    const char *start;
    size_t len;
    while (words_next(&p, &start, &len)) {
        if (!add_one(r, start, len, why, why_size))
            return false;
        any = true;
    }
    if (!any)
        snprintf(why, why_size, "is empty");
    return any;
}

const verify_rule *verify_match(const verify_rules *r, const char *channel)
{
    size_t n = strlen(channel);
    for (size_t i = 0; i < r->count; i++) {
        const verify_rule *rule = &r->items[i];
        size_t stem = rule->prefix ? rule->name_len - 1 : rule->name_len;
        if ((rule->prefix ? n >= stem : n == stem) && memcmp(rule->name, channel, stem) == 0)
            return rule;
    }
    return NULL;
}

bool verify_covers(const verify_rules *r, const char *channel)
{
    return verify_match(r, channel) != NULL;
}

void verify_rules_free(verify_rules *r)
{
    for (size_t i = 0; i < r->count; i++) {
        free((char *)r->items[i].path);
        if (r->items[i].keys)
            explicit_bzero(r->items[i].keys, VERIFY_SECRETS_MAX * sizeof *r->items[i].keys);
        free(r->items[i].keys);
    }
    r->count = 0;
}

void verify_count_failure_without_channel(void)
{
    atomic_fetch_add(&failures_without_channel, 1);
}

uint64_t verify_failures_without_channel(void)
{
    return atomic_load(&failures_without_channel);
}
