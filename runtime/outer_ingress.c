/* outer_ingress: the host's TCP listeners (`-p [ADDR:]HOST_PORT:ENCLAVE_PORT`); every connection
 * is relayed to the enclave's port through the launcher (vsock on Nitro). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>

#include "runtime/outer_internal.h"

static int connect_enclave(void *ctx, bool *in_progress, struct err **err)
{
	struct outer_ingress *in = ctx;
	int fd;
	if (launcher_connect_guest_start(in->o->cfg.launcher, in->port->enclave_port, &fd, in_progress, err) < 0)
		return -1;
	return fd;
}

static int step_enclave(void *ctx, int fd, uint32_t *events, struct err **err)
{
	struct outer_ingress *in = ctx;
	return launcher_connect_guest_step(in->o->cfg.launcher, in->port->enclave_port, fd, events, err);
}

static void on_accept(struct ev_handler *h, uint32_t events)
{
	struct outer_ingress *in = (struct outer_ingress *)h;
	struct outer_ctx *o = in->o;
	(void)events;
	for (;;) {
		_cleanup_err_ struct err *e = NULL;
		int fd = transport_accept(in->lfd, &o->reserve_fd, &e);
		if (fd < 0) {
			if (e)
				log_warn("ingress %s:%u: %s", in->port->host_addr, in->bound_port, e->msg);
			return;
		}
		/* The connect to the enclave does not wait on the loop (an enclave whose listen backlog is
		 * full, or an emulated guest slow to answer its vsock backend, would hold the egress
		 * endpoint, the streams and signals): the relay queue connects one client at a time and
		 * holds the others, unread, for at most OUTER_INGRESS_CONNECT_MS. */
		if (relay_start_connecting(o->loop, fd, NULL, connect_enclave, step_enclave, in,
		                           OUTER_INGRESS_CONNECT_MS, in->what, &in->waiting, &o->relays, &e) < 0)
			log_warn("ingress: %s", e->msg);
	}
}

int outer_ingress_open(struct outer_ctx *o, const struct outer_port *p, struct outer_ingress *in, struct err **err)
{
	memset(in, 0, sizeof(*in));
	in->lfd = -1;
	/* While the enclave boots, nothing listens on its side: a connect there would be refused
	 * (a warning each) or, on the emulator, wait for the guest's vsock. Clients are held,
	 * unconnected, until odyn reports the app running (outer_ingress_resume), with one line. */
	relay_queue_init(&in->waiting, OUTER_INGRESS_HOLD_MS, "the enclave listens");
	relay_queue_pause(&in->waiting, "the enclave is up");
	in->waiting.bytes = outer_metrics_ingress(o->metrics, (size_t)(p - o->cfg.ports), p->enclave_port);
	_cleanup_free_ char *text = strchr(p->host_addr, ':') ? xasprintf("tcp:[%s]:%u", p->host_addr, p->host_port)
	                                                      : xasprintf("tcp:%s:%u", p->host_addr, p->host_port);
	struct transport_addr a;
	if (transport_parse(text, &a, err) < 0)
		return err_wrap(err, "ingress -p %s:%u:%u", p->host_addr, p->host_port, p->enclave_port);
	int fd = transport_listen(&a, 1024, err);
	if (fd < 0)
		return err_wrap(err, "ingress -p %s:%u:%u (is the port in use?)", p->host_addr, p->host_port,
		                p->enclave_port);
	uint32_t bound = p->host_port;
	transport_local_port(fd, &bound, NULL);
	in->h.fn = on_accept;
	in->o = o;
	in->lfd = fd;
	in->port = p;
	in->bound_port = (uint16_t)bound;
	snprintf(in->what, sizeof(in->what), "ingress %s:%u -> enclave port %u", p->host_addr, in->bound_port,
	         p->enclave_port);
	if (evloop_add(o->loop, fd, EPOLLIN, &in->h, err) < 0) {
		close(fd);
		in->lfd = -1;
		return -1;
	}
	log_info("ingress %s:%u -> enclave port %u", p->host_addr, in->bound_port, p->enclave_port);
	return 0;
}

void outer_ingress_resume(struct outer_ingress *in)
{
	relay_queue_resume(&in->waiting);
}

void outer_ingress_close(struct outer_ctx *o, struct outer_ingress *in)
{
	if (in->lfd < 0)
		return;
	evloop_del(o->loop, in->lfd);
	close(in->lfd);
	in->lfd = -1;
}
