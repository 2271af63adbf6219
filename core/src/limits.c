/* limits.c - the defaults and validity rules of hop_limits, in one place. */
#include "hopper/hopper.h"

#include "message.h"

#define MIB ((size_t)1 << 20)

void hop_limits_default(hop_limits *limits)
{
    if (limits == NULL)
        return;
    limits->memory_bytes = 64 * MIB;
    limits->file_bytes = 64 * MIB;
    limits->max_disk_files = 64;
    limits->max_message_bytes = 1 * MIB;
    limits->durable = false;
    limits->budget = NULL;
}

size_t hop_message_cost(size_t len)
{
    return hop__message_cost(len);
}

hop_err hop_limits_check(const hop_limits *limits)
{
    if (limits == NULL)
        return HOP_INVALID;
    if (limits->max_message_bytes == 0 || limits->max_message_bytes > HOP_MAX_MESSAGE_BYTES)
        return HOP_INVALID;
    if (limits->max_disk_files > 0 && limits->file_bytes == 0)
        return HOP_INVALID;
    if (limits->durable && limits->max_disk_files == 0)
        return HOP_INVALID; /* durable means on disk */
    /* Memory only: a largest message must fit, or it could never be sent. */
    if (limits->max_disk_files == 0 &&
        limits->memory_bytes < hop__message_cost(limits->max_message_bytes))
        return HOP_INVALID;
    return HOP_OK;
}
