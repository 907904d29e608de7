/* odyn internals shared between odyn's own files: the relay, the broadcast
 * stream, and the proxies' entry points. Not for other modules. */
#ifndef ENCLAVER_ODYN_INTERNAL_H
#define ENCLAVER_ODYN_INTERNAL_H

#include <stddef.h>

#include "common/relay.h"
#include "odyn/odyn.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

struct stream;
int stream_new(struct evloop *loop, const struct transport_addr *addr, size_t cap, struct stream **out,
               struct err **err);
void stream_write(struct stream *s, const void *data, size_t len);
bool stream_flushed(const struct stream *s);
uint64_t stream_readers_served(const struct stream *s);
/* Back-pressure support: the largest number of bytes a reader is behind,
 * a callback when a reader took bytes, and dropping readers that stayed
 * more than `lag` behind without progress for stall_ms. */
uint64_t stream_max_lag(const struct stream *s);
size_t stream_capacity(const struct stream *s);
void stream_set_drain_cb(struct stream *s, void (*fn)(void *arg), void *arg);
/* Lines (at most 15 bytes, '\n'-terminated; longer ones are cut) that readers write are passed to
 * fn; the status stream takes "stop" from the host (odyn.md). */
void stream_set_command_cb(struct stream *s, void (*fn)(void *arg, const char *line), void *arg);
void stream_drop_stalled(struct stream *s, uint64_t lag, unsigned stall_ms);
void stream_free(struct stream *s);

/* egress proxy and ingress forwarders, living on the supervisor's loop. */
struct egress_proxy;
int egress_proxy_start(struct evloop *loop, const struct transport_addr *listen, const struct transport_addr *host,
                       const struct egress_policy *policy, struct egress_proxy **out, struct err **err);
void egress_proxy_free(struct egress_proxy *p);

struct ingress;
int ingress_start(struct evloop *loop, const struct odyn_ingress *spec, struct ingress **out, struct err **err);
void ingress_free(struct ingress *in);

/* config: an ingress port from the manifest (vsock:any:P -> 127.0.0.1:P). */
int odyn_config_add_ingress_port(struct odyn_config *c, uint16_t port, struct err **err);

#endif
