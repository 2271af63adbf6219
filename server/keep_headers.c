/* keep_headers.c - parsing of --keep-headers and the match of request
 * header names against it (see keep_headers.h). */
#include "keep_headers.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Why a header must never be stored with a message and sent back with it. */
static const char framing[] = "a hop-by-hop or framing header describes one connection or one "
                              "transfer, and cannot be stored and sent back";
static const char own[] = "hopper's own response headers cannot come from a sender";

/* The headers --keep-headers may not name; prefix: every name that begins
 * with name. */
static const struct {
    const char *name;
    bool prefix;
    const char *why;
} refused[] = {
    {"Connection", false, framing},
    {"Keep-Alive", false, framing},
    {"Transfer-Encoding", false, framing},
    {"TE", false, framing},
    {"Trailer", false, framing},
    {"Upgrade", false, framing},
    {"Content-Length", false, framing},
    {"Host", false, framing},
    {"Expect", false, framing},
    {"Proxy-", true, framing},
    {"Hopper-", true, own},
};

/* tchar of RFC 9110, section 5.6.2 (ASCII, whatever the locale says) */
static bool is_token_char(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* s[0..s_len) begins with p[0..p_len), ASCII case-insensitively. */
static bool begins_with(const char *s, size_t s_len, const char *p, size_t p_len)
{
    return s_len >= p_len && strncasecmp(s, p, p_len) == 0;
}

/* True if some header name matches both the item stem[0..len) (a prefix
 * if prefix) and the refused entry r. */
static bool overlaps(const char *stem, size_t len, bool prefix, size_t r)
{
    const char *name = refused[r].name;
    size_t name_len = strlen(name);
    if (prefix && begins_with(name, name_len, stem, len))
        return true; /* the item's names include this one, or some of its names */
    if (refused[r].prefix)
        return begins_with(stem, len, name, name_len);
    return !prefix && len == name_len && strncasecmp(stem, name, len) == 0;
}

/* Check one item text[0..len), blanks trimmed. True if it is allowed;
 * otherwise why says what is wrong with it. */
static bool check_item(const char *text, size_t len, char *why, size_t why_size)
{
    if (len == 0) {
        snprintf(why, why_size, "has an empty item (a name between two commas, or at an end)");
        return false;
    }
    if (len == 1 && text[0] == '*') {
        snprintf(why, why_size,
                 "has '*' alone, which would keep every header, the hop-by-hop and framing ones "
                 "(Connection, Content-Length, Transfer-Encoding, ...) included; list names, or "
                 "prefixes such as X-GitHub-*");
        return false;
    }
    bool prefix = text[len - 1] == '*';
    size_t stem = prefix ? len - 1 : len;
    for (size_t i = 0; i < stem; i++) {
        if (text[i] == '*') {
            snprintf(why, why_size, "has '%.*s': '*' may only end an item, which is then a prefix",
                     (int)len, text);
            return false;
        }
        if (!is_token_char((unsigned char)text[i])) {
            snprintf(why, why_size,
                     "has '%.*s': a header name is letters, digits and !#$%%&'*+-.^_`|~ only",
                     (int)len, text);
            return false;
        }
    }
    for (size_t r = 0; r < sizeof refused / sizeof refused[0]; r++) {
        if (overlaps(text, stem, prefix, r)) {
            snprintf(why, why_size, "has '%.*s', which would keep %s%s: %s", (int)len, text,
                     refused[r].name, refused[r].prefix ? "*" : "", refused[r].why);
            return false;
        }
    }
    return true;
}

bool keep_headers_parse(const char *list, keep_headers *out, char *why, size_t why_size)
{
    out->count = 0;
    if (list[0] == '\0')
        return true;
    for (const char *p = list;;) {
        size_t len = strcspn(p, ",");
        const char *next = p[len] == ',' ? p + len + 1 : NULL;
        while (len > 0 && is_blank(*p)) {
            p++;
            len--;
        }
        while (len > 0 && is_blank(p[len - 1]))
            len--;
        if (!check_item(p, len, why, why_size))
            return false;
        if (out->count == KEEP_HEADERS_MAX_ITEMS) {
            snprintf(why, why_size, "has more than %d items", KEEP_HEADERS_MAX_ITEMS);
            return false;
        }
        out->items[out->count++] = (keep_headers_item){p, len, p[len - 1] == '*'};
        if (next == NULL)
            return true;
        p = next;
    }
}

bool keep_headers_match(const keep_headers *k, const char *name, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!is_token_char((unsigned char)name[i]))
            return false;
    }
    for (size_t i = 0; i < k->count; i++) {
        const keep_headers_item *item = &k->items[i];
        if (item->prefix ? begins_with(name, len, item->text, item->len - 1)
                         : len == item->len && strncasecmp(name, item->text, len) == 0)
            return true;
    }
    return false;
}
