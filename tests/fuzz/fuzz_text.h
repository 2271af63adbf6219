/* fuzz_text.h - the fuzz input as a C string, which is how the parsers of
 * names, values and lists get their text: a new copy with a NUL after it
 * (free() it), or NULL if out of memory. Header-only: each harness is one
 * program. */
#ifndef HOPPER_FUZZ_TEXT_H
#define HOPPER_FUZZ_TEXT_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline char *fuzz_text(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL)
        return NULL;
    memcpy(text, data, size);
    text[size] = '\0';
    return text;
}

#endif
