/* relay: copies bytes both ways between two non-blocking sockets on the
 * event loop, with back-pressure (a side is not read while the other side
 * has unsent bytes) and half-close (EOF one way becomes shutdown(SHUT_WR)). */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "relay.h"

struct relay_end {
	struct ev_handler h;
	struct relay *r;
	int fd;
	uint32_t events; /* what epoll currently watches */
};

/* Bytes read from end[i], not yet written to end[1 - i]. Allocated only
 * while a write is short, so idle relays cost a few hundred bytes. */
struct relay_dir {
	char *pending;
	size_t len, off;
	bool eof;  /* end[i] sent EOF */
	bool done; /* ... and it has been passed on as shutdown */
};

struct relay {
	struct evloop *loop;
	struct relay_end end[2];
	struct relay_dir dir[2];
	bool closed;
	struct relay_list *list;
	struct relay *next, **pprev;
};

static void relay_free(void *p)
{
	struct relay *r = p;
	free(r->dir[0].pending);
	free(r->dir[1].pending);
	free(r);
}

static void relay_close(struct relay *r)
{
	if (r->closed)
		return;
	r->closed = true;
	for (int i = 0; i < 2; i++) {
		evloop_del(r->loop, r->end[i].fd);
		close(r->end[i].fd);
	}
	*r->pprev = r->next;
	if (r->next)
		r->next->pprev = r->pprev;
	r->list->n--;
	evloop_defer_free(r->loop, r, relay_free);
}

static void update(struct relay *r)
{
	for (int i = 0; i < 2; i++) {
		uint32_t ev = 0;
		if (!r->dir[i].eof && r->dir[i].len == 0)
			ev |= EPOLLIN;
		if (r->dir[1 - i].len > 0)
			ev |= EPOLLOUT;
		if (ev != r->end[i].events) {
			if (evloop_mod(r->loop, r->end[i].fd, ev, &r->end[i].h, NULL) < 0) {
				relay_close(r);
				return;
			}
			r->end[i].events = ev;
		}
	}
}

/* Writes what dir[i] holds to end[1 - i]; 0 done or blocked, -1 broken. */
static int flush_dir(struct relay *r, int i)
{
	struct relay_dir *d = &r->dir[i];
	while (d->len > 0) {
		ssize_t n = send(r->end[1 - i].fd, d->pending + d->off, d->len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return -1;
		}
		d->off += (size_t)n;
		d->len -= (size_t)n;
	}
	free(d->pending);
	d->pending = NULL;
	d->off = 0;
	if (d->eof && !d->done) {
		shutdown(r->end[1 - i].fd, SHUT_WR);
		d->done = true;
	}
	return 0;
}

static void queue(struct relay_dir *d, const char *data, size_t n)
{
	/* Only called when nothing is pending. */
	d->pending = xmalloc(n);
	memcpy(d->pending, data, n);
	d->off = 0;
	d->len = n;
}

/* Reads from end[i] and writes straight through; -1 when broken. */
static int pump(struct relay *r, int i)
{
	char buf[65536];
	struct relay_dir *d = &r->dir[i];
	while (!d->eof && d->len == 0) {
		ssize_t n = recv(r->end[i].fd, buf, sizeof(buf), 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return -1;
		}
		if (n == 0) {
			d->eof = true;
			return flush_dir(r, i);
		}
		size_t off = 0;
		while (off < (size_t)n) {
			ssize_t w = send(r->end[1 - i].fd, buf + off, (size_t)n - off, MSG_NOSIGNAL);
			if (w < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN)
					break;
				return -1;
			}
			off += (size_t)w;
		}
		if (off < (size_t)n)
			queue(d, buf + off, (size_t)n - off);
		if ((size_t)n < sizeof(buf))
			return 0; /* probably drained; epoll will say otherwise */
	}
	return 0;
}

static void on_event(struct ev_handler *h, uint32_t events)
{
	struct relay_end *e = (struct relay_end *)h;
	struct relay *r = e->r;
	if (r->closed)
		return;
	int i = (int)(e - r->end);
	if (events & EPOLLERR) {
		relay_close(r);
		return;
	}
	if ((events & EPOLLOUT) && flush_dir(r, 1 - i) < 0) {
		relay_close(r);
		return;
	}
	if ((events & (EPOLLIN | EPOLLHUP)) && pump(r, i) < 0) {
		relay_close(r);
		return;
	}
	/* A hang-up on a side we no longer read from means its peer is gone
	 * while the other direction still has work: nothing can complete. */
	if ((events & EPOLLHUP) && r->dir[i].eof && !r->dir[1 - i].done) {
		relay_close(r);
		return;
	}
	if (r->dir[0].done && r->dir[1].done) {
		relay_close(r);
		return;
	}
	update(r);
}

int relay_start(struct evloop *loop, int fd_a, int fd_b, const void *a_to_b, size_t n_a_to_b, const void *b_to_a,
                size_t n_b_to_a, struct relay_list *list, struct err **err)
{
	struct relay *r = xcalloc(1, sizeof(*r));
	r->loop = loop;
	r->list = list;
	r->end[0] = (struct relay_end){.h.fn = on_event, .r = r, .fd = fd_a};
	r->end[1] = (struct relay_end){.h.fn = on_event, .r = r, .fd = fd_b};
	if (n_a_to_b)
		queue(&r->dir[0], a_to_b, n_a_to_b);
	if (n_b_to_a)
		queue(&r->dir[1], b_to_a, n_b_to_a);
	for (int i = 0; i < 2; i++) {
		if (evloop_add(loop, r->end[i].fd, 0, &r->end[i].h, err) < 0) {
			if (i == 1)
				evloop_del(loop, fd_a);
			close(fd_a);
			close(fd_b);
			relay_free(r);
			return err_wrap(err, "relay");
		}
	}
	r->next = list->head;
	if (list->head)
		list->head->pprev = &r->next;
	list->head = r;
	r->pprev = &list->head;
	list->n++;
	update(r);
	return 0;
}

void relay_list_close_all(struct relay_list *list)
{
	while (list->head)
		relay_close(list->head);
}
