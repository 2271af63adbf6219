/* error.c - names and descriptions of hop_err, made from the HOP_ERRORS list. */
#include "hopper/hopper.h"

const char *hop_strerror(hop_err err)
{
    switch (err) {
#define HOP__ERR_TEXT(name, text)                                                                  \
    case HOP_##name:                                                                               \
        return text;
        HOP_ERRORS(HOP__ERR_TEXT)
#undef HOP__ERR_TEXT
    }
    return "unknown error";
}

const char *hop_err_name(hop_err err)
{
    switch (err) {
#define HOP__ERR_NAME(name, text)                                                                  \
    case HOP_##name:                                                                               \
        return #name;
        HOP_ERRORS(HOP__ERR_NAME)
#undef HOP__ERR_NAME
    }
    return "UNKNOWN";
}
