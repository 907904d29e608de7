/* ingress: for each ingress port, accept on the outside address (vsock in
 * production) and relay each connection to the app on 127.0.0.1:PORT,
 * terminating TLS first when the manifest gives the port a certificate. */
#include <errno.h>
#include <sys/epoll.h>

#include "odyn/internal.h"

struct ingress {
	struct listener l; /* first: on_accept gets &l.h */
	struct evloop *loop;
	struct odyn_ingress spec;
	struct tls_server *tls; /* NULL: plain TCP */
	struct relay_list relays;
	struct relay_queue waiting; /* clients whose connection to the app is not made yet */
	int connect_ms;
	char what[300]; /* "ingress LISTEN -> TARGET", for the relay's messages */
};

static int connect_app(void *ctx, bool *in_progress, struct err **err)
{
	struct ingress *in = ctx;
	return transport_connect_start(&in->spec.target, in_progress, err);
}

/* The connect to the app never waits on the loop: an app whose listen backlog is full (slower
 * than its clients, or not accepting at all) leaves the SYN unanswered for minutes, and a
 * blocking connect froze every service. The relay queue makes one connect to the app at a time
 * and holds the other clients, unread, until their turn or connect_ms. */
static void client_start(struct ingress *in, int fd)
{
	_cleanup_err_ struct err *e = NULL;
	struct tls_conn *tls = in->tls ? tls_conn_new(in->tls) : NULL;
	if (relay_start_connecting(in->loop, fd, tls, connect_app, NULL, in, in->connect_ms, in->what, &in->waiting,
	                           &in->relays, &e) < 0)
		log_warn("ingress %s: %s", in->spec.listen.text, e->msg);
}

static void on_accept(struct ev_handler *h, uint32_t events)
{
	struct ingress *in = (struct ingress *)h;
	(void)events;
	for (;;) {
		_cleanup_err_ struct err *e = NULL;
		int fd = listener_accept(&in->l, &e);
		if (fd < 0) {
			if (e)
				log_warn("ingress %s: %s", in->spec.listen.text, e->msg);
			return;
		}
		client_start(in, fd);
	}
}

int ingress_start(struct evloop *loop, const struct odyn_ingress *spec, int connect_ms, int hold_ms,
                  struct ingress **out, struct err **err)
{
	struct tls_server *tls = NULL;
	if (spec->tls_cert_file && tls_server_new(spec->tls_cert_file, spec->tls_key_file, &tls, err) < 0)
		return err_wrap(err, "ingress %s", spec->listen.text);
	struct ingress *in = xcalloc(1, sizeof(*in));
	if (listener_open(&in->l, loop, &spec->listen, 1024, on_accept, err) < 0) {
		tls_server_free(tls);
		free(in);
		return err_wrap(err, "ingress");
	}
	in->loop = loop;
	in->spec = *spec;
	in->tls = tls;
	in->connect_ms = connect_ms > 0 ? connect_ms : ODYN_INGRESS_CONNECT_MS;
	/* An app still starting refuses: its early clients wait for it (bounded) instead of being
	 * dropped, with one line per port, not one per connection. */
	relay_queue_init(&in->waiting, hold_ms, "the app listens");
	snprintf(in->what, sizeof(in->what), "ingress %s -> %s", spec->listen.text, spec->target.text);
	log_info("ingress %s -> %s%s", spec->listen.text, spec->target.text, tls ? " (TLS terminated here)" : "");
	*out = in;
	return 0;
}

void ingress_free(struct ingress *in)
{
	if (in == NULL)
		return;
	relay_list_close_all(&in->relays);
	relay_queue_stop(&in->waiting);
	listener_close(&in->l);
	tls_server_free(in->tls);
	free(in);
}
