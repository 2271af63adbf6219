/* words.h - the entries of an option value that holds several separated by
 * blanks: --forward and --verify given in one environment variable
 * (forward_rules.c, verify.c). */
#ifndef HOPPER_SERVER_WORDS_H
#define HOPPER_SERVER_WORDS_H

#include <stdbool.h>
#include <stddef.h>

static inline bool words_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The next entry of *p: false once there is none; else OUT *word, *len,
 * and *p moved past it. */
static inline bool words_next(const char **p, const char **word, size_t *len)
{
    while (words_blank(**p))
        (*p)++;
    *word = *p;
    while (**p && !words_blank(**p))
        (*p)++;
    *len = (size_t)(*p - *word);
    return *len > 0;
}

#endif
