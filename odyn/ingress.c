/* ingress: for each ingress port, accept on the outside address (vsock in
 * production) and relay each connection to the app on 127.0.0.1:PORT,
 * terminating TLS first when the manifest gives the port a certificate. */
#include <errno.h>
#include <sys/epoll.h>

#include "odyn/internal.h"

struct ingress {
	struct ev_handler h;
	struct evloop *loop;
	int lfd;
	int reserve_fd; /* spare descriptor for shedding at EMFILE */
	struct odyn_ingress spec;
	struct tls_server *tls; /* NULL: plain TCP */
	struct relay_list relays;
};

static void on_accept(struct ev_handler *h, uint32_t events)
{
	struct ingress *in = (struct ingress *)h;
	(void)events;
	for (;;) {
		_cleanup_err_ struct err *e = NULL;
		int fd = transport_accept(in->lfd, &in->reserve_fd, &e);
		if (fd < 0) {
			if (e)
				log_warn("ingress %s: %s", in->spec.listen.text, e->msg);
			return;
		}
		/* Loopback connects complete at once (or are refused at once). */
		int up = transport_connect(&in->spec.target, true, &e);
		if (up < 0) {
			log_warn("ingress %s: %s", in->spec.listen.text, e->msg);
			close(fd);
			continue;
		}
		int r = in->tls ? relay_start_tls(in->loop, fd, tls_conn_new(in->tls), up, &in->relays, &e)
		                : relay_start(in->loop, fd, up, NULL, 0, NULL, 0, &in->relays, &e);
		if (r < 0)
			log_warn("ingress %s: %s", in->spec.listen.text, e->msg);
	}
}

int ingress_start(struct evloop *loop, const struct odyn_ingress *spec, struct ingress **out, struct err **err)
{
	struct tls_server *tls = NULL;
	if (spec->tls_cert_file && tls_server_new(spec->tls_cert_file, spec->tls_key_file, &tls, err) < 0)
		return err_wrap(err, "ingress %s", spec->listen.text);
	int lfd = transport_listen(&spec->listen, 1024, err);
	if (lfd < 0) {
		tls_server_free(tls);
		return err_wrap(err, "ingress");
	}
	struct ingress *in = xcalloc(1, sizeof(*in));
	in->h.fn = on_accept;
	in->loop = loop;
	in->lfd = lfd;
	in->reserve_fd = transport_reserve_fd();
	in->spec = *spec;
	in->tls = tls;
	if (evloop_add(loop, lfd, EPOLLIN, &in->h, err) < 0) {
		close(lfd);
		tls_server_free(tls);
		if (in->reserve_fd >= 0)
			close(in->reserve_fd);
		free(in);
		return err_wrap(err, "ingress");
	}
	log_info("ingress %s -> %s%s", spec->listen.text, spec->target.text, tls ? " (TLS terminated here)" : "");
	*out = in;
	return 0;
}

void ingress_free(struct ingress *in)
{
	if (in == NULL)
		return;
	relay_list_close_all(&in->relays);
	evloop_del(in->loop, in->lfd);
	close(in->lfd);
	if (in->reserve_fd >= 0)
		close(in->reserve_fd);
	transport_unlink(&in->spec.listen);
	tls_server_free(in->tls);
	free(in);
}
