/* relay: copies bytes both ways between two non-blocking sockets on the event
 * loop (back-pressure, half-close); odyn's proxies and the host's outer side use it. */
#ifndef ENCLAVER_RELAY_H
#define ENCLAVER_RELAY_H

#include "transport.h"

/* relay_start owns both descriptors from the call on (closes them on failure
 * too). The first bytes for each side (already read elsewhere) may be given. */
struct relay;
struct relay_list {
	struct relay *head;
	size_t n;
};
int relay_start(struct evloop *loop, int fd_a, int fd_b, const void *a_to_b, size_t n_a_to_b, const void *b_to_a,
                size_t n_b_to_a, struct relay_list *list, struct err **err);
/* Closes every relay of the list (at shutdown). */
void relay_list_close_all(struct relay_list *list);

#endif
