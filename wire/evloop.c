/* evloop: a level-triggered epoll loop with per-descriptor handlers and
 * deferred frees, so a callback can tear down objects other pending events
 * of the same batch still reference. */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "wire/transport.h"

#define EVLOOP_BATCH 64

struct deferred {
	void *ptr;
	void (*fn)(void *);
};

struct evloop {
	int epfd;
	bool stopped;
	struct deferred *dead;
	size_t n_dead, cap_dead;
};

int evloop_new(struct evloop **out, struct err **err)
{
	int fd = epoll_create1(EPOLL_CLOEXEC);
	if (fd < 0)
		return err_sys(err, "epoll_create1");
	struct evloop *loop = xcalloc(1, sizeof(*loop));
	loop->epfd = fd;
	*out = loop;
	return 0;
}

static void run_deferred(struct evloop *loop)
{
	/* A free function may defer more frees: loop until none remain. */
	while (loop->n_dead > 0) {
		struct deferred d = loop->dead[--loop->n_dead];
		d.fn(d.ptr);
	}
}

void evloop_free(struct evloop *loop)
{
	if (loop == NULL)
		return;
	run_deferred(loop);
	close(loop->epfd);
	free(loop->dead);
	free(loop);
}

static int ctl(struct evloop *loop, int op, int fd, uint32_t events, struct ev_handler *h, struct err **err)
{
	struct epoll_event ev = {.events = events, .data.ptr = h};
	if (epoll_ctl(loop->epfd, op, fd, &ev) < 0)
		return err_sys(err, "epoll_ctl(fd %d)", fd);
	return 0;
}

int evloop_add(struct evloop *loop, int fd, uint32_t events, struct ev_handler *h, struct err **err)
{
	return ctl(loop, EPOLL_CTL_ADD, fd, events, h, err);
}

int evloop_mod(struct evloop *loop, int fd, uint32_t events, struct ev_handler *h, struct err **err)
{
	return ctl(loop, EPOLL_CTL_MOD, fd, events, h, err);
}

void evloop_del(struct evloop *loop, int fd)
{
	epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
}

void evloop_defer_free(struct evloop *loop, void *ptr, void (*fn)(void *))
{
	if (loop->n_dead == loop->cap_dead) {
		loop->cap_dead = loop->cap_dead ? loop->cap_dead * 2 : 16;
		loop->dead = xrealloc(loop->dead, loop->cap_dead * sizeof(*loop->dead));
	}
	loop->dead[loop->n_dead++] = (struct deferred){ptr, fn};
}

int evloop_run_once(struct evloop *loop, int timeout_ms, struct err **err)
{
	struct epoll_event evs[EVLOOP_BATCH];
	int n = epoll_wait(loop->epfd, evs, EVLOOP_BATCH, timeout_ms);
	if (n < 0) {
		if (errno == EINTR)
			return 0;
		return err_sys(err, "epoll_wait");
	}
	for (int i = 0; i < n; i++) {
		struct ev_handler *h = evs[i].data.ptr;
		h->fn(h, evs[i].events);
	}
	run_deferred(loop);
	return 0;
}

int evloop_run(struct evloop *loop, struct err **err)
{
	while (!loop->stopped)
		if (evloop_run_once(loop, -1, err) < 0)
			return -1;
	return 0;
}

void evloop_stop(struct evloop *loop)
{
	loop->stopped = true;
}

bool evloop_stopped(const struct evloop *loop)
{
	return loop->stopped;
}

/* The timerfd stays readable until read: stopping the deadline here, before the owner's fn,
 * keeps "runs once" true for every owner. */
static void deadline_fire(struct ev_handler *h, uint32_t events)
{
	struct ev_deadline *d = (struct ev_deadline *)((char *)h - offsetof(struct ev_deadline, h));
	void (*fn)(struct ev_handler *, uint32_t) = d->fn;
	ev_deadline_stop(d);
	fn(h, events);
}

int ev_deadline_arm(struct ev_deadline *d, struct evloop *loop, int ms,
                    void (*fn)(struct ev_handler *h, uint32_t events), struct err **err)
{
	d->fn = fn;
	if (d->fd < 0) {
		d->fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
		if (d->fd < 0)
			return err_sys(err, "timerfd_create");
		d->loop = loop;
		d->h.fn = deadline_fire;
		if (evloop_add(loop, d->fd, EPOLLIN, &d->h, err) < 0) {
			close(d->fd);
			d->fd = -1;
			return -1;
		}
	}
	struct itimerspec its = {.it_value = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L}};
	if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
		its.it_value.tv_nsec = 1; /* zero would disarm it */
	if (timerfd_settime(d->fd, 0, &its, NULL) < 0) {
		err_sys(err, "timerfd_settime");
		ev_deadline_stop(d);
		return -1;
	}
	return 0;
}

void ev_deadline_stop(struct ev_deadline *d)
{
	if (d->fd < 0)
		return;
	evloop_del(d->loop, d->fd);
	close(d->fd);
	d->fd = -1;
}
