/* resolve: getaddrinfo on a thread with the answer delivered on the event loop, so a slow or
 * unreachable DNS server holds up only the egress request that asked, never the ingress relays,
 * the log stream or other tunnels sharing the loop. Numeric addresses are answered at once. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "runtime/resolve.h"

struct resolve_job {
	struct ev_handler h;
	struct evloop *loop;
	int efd; /* the thread writes it once the answer is in */
	char *name, *port;
	struct addrinfo *ai;
	int gai, sys_errno;
	atomic_int refs; /* the thread's and the loop's */
	resolve_done_fn fn;
	void *ctx;
	unsigned *in_flight;
};

static void job_unref(void *p)
{
	struct resolve_job *j = p;
	if (atomic_fetch_sub(&j->refs, 1) != 1)
		return;
	close(j->efd);
	if (j->ai)
		freeaddrinfo(j->ai);
	free(j->name);
	free(j->port);
	free(j);
}

static void *job_thread(void *arg)
{
	struct resolve_job *j = arg;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	j->gai = getaddrinfo(j->name, j->port, &hints, &j->ai);
	j->sys_errno = j->gai == EAI_SYSTEM ? errno : 0;
	uint64_t one = 1;
	/* An eventfd write cannot block or raise SIGPIPE, even when the loop has given up on us. */
	if (write(j->efd, &one, sizeof(one)) < 0) {
		/* Nothing to tell anyone: the loop stops waiting when it cancels. */
	}
	job_unref(j);
	return NULL;
}

/* Leaves the loop's side: no more events, the loop's reference dropped after the batch. */
static void job_leave(struct resolve_job *j)
{
	evloop_del(j->loop, j->efd);
	(*j->in_flight)--;
	j->fn = NULL;
	evloop_defer_free(j->loop, j, job_unref);
}

static void on_answer(struct ev_handler *h, uint32_t events)
{
	struct resolve_job *j = (struct resolve_job *)h;
	(void)events;
	if (!j->fn)
		return;
	uint64_t v;
	if (read(j->efd, &v, sizeof(v)) != sizeof(v))
		return; /* spurious: wait for the real one */
	resolve_done_fn fn = j->fn;
	void *ctx = j->ctx;
	struct addrinfo *ai = j->ai;
	int gai = j->gai, sys_errno = j->sys_errno;
	j->ai = NULL; /* the callback owns it */
	job_leave(j);
	fn(ctx, ai, gai, sys_errno);
}

int resolve_start(struct evloop *loop, const char *name, const char *port, unsigned *in_flight,
                  resolve_done_fn fn, void *ctx, struct resolve_job **out, struct err **err)
{
	*out = NULL;
	/* An address needs no resolver: answer now, on the caller's stack. */
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV | AI_NUMERICHOST};
	struct addrinfo *ai = NULL;
	int gai = getaddrinfo(name, port, &hints, &ai);
	if (gai != EAI_NONAME) {
		int sys_errno = gai == EAI_SYSTEM ? errno : 0;
		fn(ctx, gai == 0 ? ai : NULL, gai, sys_errno);
		return 0;
	}
	if (*in_flight >= RESOLVE_MAX_IN_FLIGHT)
		return err_set(err, EAGAIN, "%u name resolutions already in progress", *in_flight);
	struct resolve_job *j = xcalloc(1, sizeof(*j));
	j->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (j->efd < 0) {
		free(j);
		return err_sys(err, "eventfd");
	}
	j->h.fn = on_answer;
	j->loop = loop;
	j->name = xstrdup(name);
	j->port = xstrdup(port);
	j->fn = fn;
	j->ctx = ctx;
	j->in_flight = in_flight;
	atomic_init(&j->refs, 2);
	if (evloop_add(loop, j->efd, EPOLLIN, &j->h, err) < 0) {
		atomic_store(&j->refs, 1);
		job_unref(j);
		return -1;
	}
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_t th;
	int r = pthread_create(&th, &attr, job_thread, j);
	pthread_attr_destroy(&attr);
	if (r != 0) {
		evloop_del(loop, j->efd);
		atomic_store(&j->refs, 1);
		job_unref(j);
		return err_set(err, r, "starting a resolver thread: %s", strerror(r));
	}
	(*in_flight)++;
	*out = j;
	return 0;
}

void resolve_cancel(struct resolve_job *j)
{
	if (j && j->fn)
		job_leave(j);
}
