/* forward_rules.c - parsing and matching --forward entries (see
 * forward_rules.h). */
#include "forward_rules.h"

#include "giveback.h"
#include "hopper/hopper.h"
#include "words.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

bool forward_rules_name_ok(const char *name, size_t len, bool *prefix)
{
    *prefix = len > 0 && name[len - 1] == '*';
    size_t chars = *prefix ? len - 1 : len;
    if (chars > HOP_NAME_MAX || (!*prefix && chars == 0))
        return false;
    for (size_t i = 0; i < chars; i++)
        if (!name_char(name[i]))
            return false;
    if (*prefix)
        return true;
    char copy[HOP_NAME_MAX + 1];
    memcpy(copy, name, chars);
    copy[chars] = '\0';
    return hop_name_valid(copy);
}

/* URL of an entry: http:// or https://, then a host. */
static bool url_ok(const char *url, size_t len)
{
    size_t scheme = 0;
    if (len > 7 && strncasecmp(url, "http://", 7) == 0)
        scheme = 7;
    else if (len > 8 && strncasecmp(url, "https://", 8) == 0)
        scheme = 8;
    return scheme > 0 && len <= FORWARD_URL_MAX && url[scheme] != '/' && url[scheme] != '?';
}

/* Add the entry text[0..len) to r. NULL, or what is wrong. */
static const char *add_one(forward_rules *r, const char *text, size_t len)
{
    const char *eq = memchr(text, '=', len);
    if (eq == NULL)
        return "is not NAME=URL";
    forward_rule rule = {.name = text, .name_len = (size_t)(eq - text), .url = eq + 1};
    rule.url_len = len - rule.name_len - 1;
    if (!forward_rules_name_ok(rule.name, rule.name_len, &rule.prefix))
        return "has a NAME that is neither a channel name nor a prefix ending in '*'";
    if (!url_ok(rule.url, rule.url_len))
        return "has a URL that is not http:// or https:// with a host";
    if (r->count == FORWARD_RULES_MAX)
        return "has more entries than 64";
    r->items[r->count++] = rule;
    return NULL;
}

bool forward_rules_add(forward_rules *r, const char *text, char *why, size_t why_size)
{
    const char *p = text;
    bool any = false;
    const char *start;
    size_t len;
    while (words_next(&p, &start, &len)) {
        const char *wrong = add_one(r, start, len);
        if (wrong) {
            snprintf(why, why_size, "'%.*s' %s", (int)len, start, wrong);
            return false;
        }
        any = true;
    }
    if (!any)
        snprintf(why, why_size, "is empty");
    return any;
}

static bool is_dead(const char *name, size_t n)
{
    size_t suffix = strlen(GIVEBACK_DEAD_SUFFIX);
    return n >= suffix && strcmp(name + n - suffix, GIVEBACK_DEAD_SUFFIX) == 0;
}

const forward_rule *forward_rules_match(const forward_rules *r, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < r->count; i++) {
        const forward_rule *rule = &r->items[i];
        if (!rule->prefix) {
            if (rule->name_len == n && memcmp(rule->name, name, n) == 0)
                return rule;
            continue;
        }
        size_t stem = rule->name_len - 1;
        if (n >= stem && memcmp(rule->name, name, stem) == 0 && !is_dead(name, n))
            return rule;
    }
    return NULL;
}
