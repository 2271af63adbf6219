/* channel.h - channel.c's internals for the tests: the rest of its
 * interface is hopper.h (hop_channel_open(), hop_channel_close(), ...). */
#ifndef HOP_CHANNEL_H
#define HOP_CHANNEL_H

#include "hopper/hopper.h"

/* Tests only: free ch as a crash would leave its directory: nothing is
 * written (memory is lost, the journal is not rewritten). NULL is a no-op. */
void hop__channel_abandon(hop_channel *ch);

#endif
