/* random.h - random bytes from the kernel (getrandom(2)), for what must be
 * neither guessed nor repeated: lease receipts (lease.c), message ids
 * (envelope.c). */
#ifndef HOPPER_SERVER_RANDOM_H
#define HOPPER_SERVER_RANDOM_H

#include <stddef.h>

/* Fill out[0..n) with random bytes. Waits for the kernel's pool to be
 * ready (only at boot) and aborts if the kernel refuses: there is nothing
 * safe to hand out without them. */
void random_bytes(void *out, size_t n);

#endif
