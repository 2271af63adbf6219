/* thread_conns.h - how many connections each HTTP thread serves
 * (thread_conns.c), so that a handler knows whether blocking its thread
 * would hold up another connection. */
#ifndef HOPPER_SERVER_THREAD_CONNS_H
#define HOPPER_SERVER_THREAD_CONNS_H

#include <stdbool.h>

/* From MHD's connection notification, on the thread that serves the
 * connection: it started (socket_context is the connection's) or closed. */
void thread_conns_started(void **socket_context);
void thread_conns_closed(void *const *socket_context);

/* True if the calling thread serves no connection but, at most, the one
 * it is handling now. */
bool thread_conns_alone(void);

#endif
