/* launcher_nitro: the launcher seam on a Nitro host: ne_launch through /dev/nitro_enclaves, the
 * enclave's vsock ports over AF_VSOCK, the enclave fd as the exit signal, the debug console. */
#include <string.h>

#include "runtime/launcher.h"
#include "runtime/ne.h"

struct launcher_nitro {
	struct launcher base;
	struct ne_env env;
	struct ne_dev *owned_dev; /* opened by launcher_nitro_new; NULL when injected */
	struct ne_enclave enc;
	bool started;
};

static struct launcher_nitro *ln_of(struct launcher *l)
{
	return (struct launcher_nitro *)l;
}

static int ln_listen_parent(struct launcher *l, uint32_t port, int *fd, struct err **err)
{
	int r = ne_net_listen(&ln_of(l)->env.net, port, err);
	if (r < 0)
		return err_wrap(err, "listen for the enclave on port %u", port);
	*fd = r;
	return 0;
}

static int ln_start(struct launcher *l, const struct launch_request *req, struct launch_info *info, struct err **err)
{
	struct launcher_nitro *ln = ln_of(l);
	if (ln->started)
		return err_set(err, EBUSY, "this launcher already started an enclave (CID %llu)",
		               (unsigned long long)ln->enc.cid);
	if (ne_launch(&ln->env, req, &ln->enc, info, err) < 0)
		return -1;
	ln->started = true;
	return 0;
}

static int ln_connect_guest(struct launcher *l, uint32_t port, int *fd, struct err **err)
{
	struct launcher_nitro *ln = ln_of(l);
	if (ln->enc.fd < 0)
		return err_set(err, ENOTCONN, "connect to enclave port %u: no enclave is running", port);
	int r = ne_net_connect(&ln->env.net, ln->enc.cid, port, err);
	if (r < 0)
		return err_wrap(err, "enclave CID %llu port %u", (unsigned long long)ln->enc.cid, port);
	*fd = r;
	return 0;
}

static int ln_connect_guest_start(struct launcher *l, uint32_t port, int *fd, bool *in_progress, struct err **err)
{
	struct launcher_nitro *ln = ln_of(l);
	if (ln->enc.fd < 0)
		return err_set(err, ENOTCONN, "connect to enclave port %u: no enclave is running", port);
	int r = ne_net_connect_start(&ln->env.net, ln->enc.cid, port, in_progress, err);
	if (r < 0)
		return err_wrap(err, "enclave CID %llu port %u", (unsigned long long)ln->enc.cid, port);
	*fd = r;
	return 0;
}

static int ln_exit_fd(struct launcher *l)
{
	return ln_of(l)->enc.fd;
}

static int ln_console_fd(struct launcher *l)
{
	return ln_of(l)->enc.console_fd;
}

static int ln_stop(struct launcher *l, struct err **err)
{
	(void)err;
	ne_enclave_release(&ln_of(l)->enc);
	return 0;
}

static void ln_free(struct launcher *l)
{
	struct launcher_nitro *ln = ln_of(l);
	ne_enclave_release(&ln->enc);
	if (ln->owned_dev)
		ln->owned_dev->ops->free(ln->owned_dev);
	free(ln);
}

static const struct launcher_ops nitro_ops = {
    .name = "nitro",
    .listen_parent = ln_listen_parent,
    .start = ln_start,
    .connect_guest = ln_connect_guest,
    .connect_guest_start = ln_connect_guest_start,
    .exit_fd = ln_exit_fd,
    .console_fd = ln_console_fd,
    .stop = ln_stop,
    .free = ln_free,
};

int launcher_nitro_new_env(const struct ne_env *env, struct launcher **out, struct err **err)
{
	if (env->dev == NULL)
		return err_set(err, EINVAL, "nitro launcher: no device");
	struct launcher_nitro *ln = xcalloc(1, sizeof(*ln));
	ln->base.ops = &nitro_ops;
	ln->env = *env;
	ln->enc = (struct ne_enclave)NE_ENCLAVE_INIT;
	ln->enc.dev = env->dev;
	*out = &ln->base;
	return 0;
}

int launcher_nitro_new(const struct launcher_nitro_options *opt, struct launcher **out, struct err **err)
{
	struct ne_dev *dev;
	if (ne_dev_open(opt ? opt->device : NULL, &dev, err) < 0)
		return -1;
	struct ne_env env = {.dev = dev};
	if (launcher_nitro_new_env(&env, out, err) < 0) {
		dev->ops->free(dev);
		return -1;
	}
	ln_of(*out)->owned_dev = dev;
	return 0;
}
