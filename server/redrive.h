/* redrive.h - POST /channels/NAME/redrive[?max=N] (redrive.c): the
 * messages of NAME.dead (all, or the oldest N, 1 to 1000000) go to the
 * tail of NAME, in order, with their headers, their delivery count back
 * to 0 (Hopper-Delivery-Count 1 on their next GET). 200 {"channel",
 * "from", "moved": N}. 404 no_channel when NAME.dead does not exist (NAME
 * is made if it does not); 400 bad_name for NAME that is a .dead channel
 * itself or leaves no room for ".dead". When NAME refuses (507 full, ...)
 * the move stops: what moved stays moved, the message refused is back at
 * the head of NAME.dead, and the answer is the error, its message saying
 * how many moved.
 *
 * Each message is sent to NAME first and consumed from NAME.dead after;
 * a crash between the two leaves it in both (delivered twice, never
 * lost): at-least-once, like the consumption of a GET across a crash. */
#ifndef HOPPER_SERVER_REDRIVE_H
#define HOPPER_SERVER_REDRIVE_H

#include "request.h"

#include <stddef.h>
#include <stdint.h>

/* The most ?max= may ask for. */
#define REDRIVE_MAX 1000000

typedef struct redrive_request {
    request base;
    size_t max; /* ?max=, or REDRIVE_MAX */
} redrive_request;

extern const request_handler redrive_handler;

/* Server-wide counts since start, for /metrics. */
void redrive_read_counts(uint64_t *redrives, uint64_t *moved);

#endif
