/* forward_rules.h - which channels are forwarded where: the --forward list
 * (NAME=URL entries, NAME a channel name or a prefix ending in '*'), its
 * rules, and the match of a channel name against it. */
#ifndef HOPPER_SERVER_FORWARD_RULES_H
#define HOPPER_SERVER_FORWARD_RULES_H

#include <stdbool.h>
#include <stddef.h>

/* Entries a --forward list may hold. */
#define FORWARD_RULES_MAX 64
/* Longest URL an entry may give. */
#define FORWARD_URL_MAX 2048

typedef struct forward_rule {
    const char *name; /* borrowed from the parsed text, not NUL-terminated */
    size_t name_len;  /* of name, a trailing '*' included */
    bool prefix;      /* name ends in '*': it matches channels that begin with
                         name[0..name_len-1), never a NAME.dead one */
    const char *url;  /* borrowed, not NUL-terminated */
    size_t url_len;
} forward_rule;

typedef struct forward_rules {
    forward_rule items[FORWARD_RULES_MAX];
    size_t count;
} forward_rules;

/* Add the entries of text to r: one "NAME=URL", or several separated by
 * blanks (spaces, tabs, newlines: the HOPPER_FORWARD form). NAME is a
 * valid channel name, or a prefix ending in '*' whose other characters are
 * channel name characters ("*" alone forwards every channel); URL begins
 * with http:// or https://, has a host, no blank and at most
 * FORWARD_URL_MAX bytes. text is borrowed: r points into it. True on
 * success; else why[0..why_size) says what is wrong, and r may hold some
 * of the entries. */
bool forward_rules_add(forward_rules *r, const char *text, char *why, size_t why_size);

/* True if name[0..len) is the NAME of an entry: a channel name, or a
 * prefix ending in '*' whose other characters are channel name characters.
 * --verify's NAME is the same (verify.c). OUT: *prefix, it ends in '*'. */
bool forward_rules_name_ok(const char *name, size_t len, bool *prefix);

/* The rule that forwards channel name (the first that matches, in the
 * order given), or NULL. */
const forward_rule *forward_rules_match(const forward_rules *r, const char *name);

#endif
