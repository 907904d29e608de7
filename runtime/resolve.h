/* resolve: asynchronous name resolution for the outer side's event loop (runtime/resolve.c). */
#ifndef ENCLAVER_RUNTIME_RESOLVE_H
#define ENCLAVER_RUNTIME_RESOLVE_H

#include <netdb.h>

#include "wire/transport.h"

/* Resolver threads at once per counter: a flood of egress requests for names that never resolve
 * is refused beyond this instead of growing threads without bound. */
#define RESOLVE_MAX_IN_FLIGHT 64

/* The answer: ai (the callee frees it with freeaddrinfo) when gai is 0, else a getaddrinfo error
 * (sys_errno for EAI_SYSTEM). Called on the loop, or at once for a numeric address. */
typedef void (*resolve_done_fn)(void *ctx, struct addrinfo *ai, int gai, int sys_errno);

struct resolve_job;
/* Resolves name:port (TCP). *out is the job to cancel while it runs, NULL when fn already ran.
 * in_flight counts the caller's running jobs (capped at RESOLVE_MAX_IN_FLIGHT: EAGAIN beyond). */
int resolve_start(struct evloop *loop, const char *name, const char *port, unsigned *in_flight,
                  resolve_done_fn fn, void *ctx, struct resolve_job **out, struct err **err);
/* fn will not be called; the thread finishes on its own and its answer is freed. */
void resolve_cancel(struct resolve_job *j);

#endif
