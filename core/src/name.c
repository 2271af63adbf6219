/* name.c - channel name validation: the only guard between a name and the
 * file system, so it admits nothing that could be more than one harmless
 * path component (no '/', no NUL, no "." or ".."). */
#include "hopper/hopper.h"

#include <string.h>

static bool name_char_ok(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

bool hop_name_valid(const char *name)
{
    if (name == NULL)
        return false;
    size_t n = 0;
    for (; name[n] != '\0'; n++) {
        if (n >= HOP_NAME_MAX || !name_char_ok((unsigned char)name[n]))
            return false;
    }
    if (n == 0)
        return false;
    return strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}
