/* parallel: runs independent jobs (blob existence checks, uploads) on a few
 * threads; the first failure stops new jobs from starting and is returned. */
#include <pthread.h>

#include "oci/internal.h"

struct pool {
	size_t n, next;
	oci_job_fn fn;
	void *ctx;
	int *stop; /* optional: set once the first failure is recorded */
	pthread_mutex_t lock;
	struct err *err; /* the first failure */
};

static void *worker(void *ud)
{
	struct pool *p = ud;
	for (;;) {
		pthread_mutex_lock(&p->lock);
		bool stop = p->err != NULL || p->next >= p->n;
		size_t i = p->next++;
		pthread_mutex_unlock(&p->lock);
		if (stop)
			return NULL;
		struct err *e = NULL;
		if (p->fn(p->ctx, i, &e) < 0) {
			pthread_mutex_lock(&p->lock);
			if (p->err == NULL) {
				p->err = e;
				/* After the error is kept: what running jobs fail with
				 * once they see the flag comes second and is dropped. */
				if (p->stop)
					__atomic_store_n(p->stop, 1, __ATOMIC_RELEASE);
			} else {
				err_free(&e);
			}
			pthread_mutex_unlock(&p->lock);
		}
	}
}

int oci_parallel_run(size_t n, int threads, oci_job_fn fn, void *ctx, int *stop, struct err **err)
{
	if (threads > (int)n)
		threads = (int)n;
	if (threads <= 1) {
		for (size_t i = 0; i < n; i++)
			if (fn(ctx, i, err) < 0)
				return -1;
		return 0;
	}
	struct pool p = {.n = n, .fn = fn, .ctx = ctx, .stop = stop};
	pthread_mutex_init(&p.lock, NULL);
	pthread_t *tids = xcalloc((size_t)threads, sizeof(*tids));
	int started = 0;
	for (; started < threads; started++)
		if (pthread_create(&tids[started], NULL, worker, &p) != 0)
			break;
	/* Too few threads (a limit) still gets the work done: this one helps. */
	if (started == 0)
		worker(&p);
	for (int i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	free(tids);
	pthread_mutex_destroy(&p.lock);
	if (p.err) {
		*err = p.err;
		return -1;
	}
	return 0;
}
