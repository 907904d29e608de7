/* hash_pipe: hashes section data on worker threads while the writer's own
 * thread reads, CRCs and writes the next chunk. SHA-384 is the slowest step
 * of building an EIF, and the app ramdisk (most of the bytes) is hashed twice,
 * for PCR0 and for PCR2: one worker keeps PCR0 (and PCR1's copy of it), the
 * other PCR2, so the two hashes of a chunk run at once on two cores. Buffers
 * cycle through a small ring, so memory stays bounded whatever the section
 * sizes; a buffer is free again once both workers are past it. */
#include <pthread.h>
#include <string.h>

#include "eif/internal.h"

#define RING    4
#define WORKERS 2 /* 0: PCR0 and PCR1; 1: PCR2 */

struct item {
	uint8_t *data;
	size_t len;
	enum eif_pipe_op op;
};

struct eif_hash_pipe;

struct worker_arg {
	struct eif_hash_pipe *pipe;
	int id;
};

struct eif_hash_pipe {
	pthread_t threads[WORKERS];
	struct worker_arg args[WORKERS];
	int n_threads;
	pthread_mutex_t lock;
	pthread_cond_t changed;
	struct eif_pcr_state *pcr;
	size_t chunk;            /* bytes per buffer */
	uint8_t *buffers[RING];  /* allocated on first use: small images need one */
	bool in_use[RING];
	int next_free;           /* buffers are handed out in ring order */
	struct item queue[RING]; /* item k is queue[k % RING] */
	uint64_t submitted;      /* items queued so far */
	uint64_t done[WORKERS];  /* items each worker is past */
	uint64_t retired;        /* items every worker is past (their buffers are free) */
	bool stopping;
	struct err *error; /* the first hashing error; later work is skipped */
};

static void release_locked(struct eif_hash_pipe *p, const uint8_t *buffer)
{
	for (int i = 0; i < RING; i++)
		if (buffer != NULL && p->buffers[i] == buffer)
			p->in_use[i] = false;
}

/* Frees the buffers of the items both workers have finished. */
static void retire_locked(struct eif_hash_pipe *p)
{
	uint64_t low = p->done[0] < p->done[1] ? p->done[0] : p->done[1];
	for (; p->retired < low; p->retired++)
		release_locked(p, p->queue[p->retired % RING].data);
}

static int hash_item(struct eif_hash_pipe *p, int id, const struct item *it, struct err **e)
{
	if (id == 1)
		return it->op == EIF_PIPE_APP ? eif_pcr_feed_app_pcr2(p->pcr, it->data, it->len, e) : 0;
	switch (it->op) {
	case EIF_PIPE_BOOT: return eif_pcr_feed_boot(p->pcr, it->data, it->len, e);
	case EIF_PIPE_APP: return eif_pcr_feed_app_image(p->pcr, it->data, it->len, e);
	case EIF_PIPE_END_BOOT: return eif_pcr_end_boot(p->pcr, e);
	}
	return 0;
}

static void *worker(void *arg)
{
	struct worker_arg *wa = arg;
	struct eif_hash_pipe *p = wa->pipe;
	int id = wa->id;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (p->done[id] == p->submitted && !p->stopping)
			pthread_cond_wait(&p->changed, &p->lock);
		if (p->done[id] == p->submitted)
			break;
		struct item it = p->queue[p->done[id] % RING];
		bool failed = p->error != NULL;
		pthread_mutex_unlock(&p->lock);

		struct err *e = NULL;
		int r = failed ? 0 : hash_item(p, id, &it, &e);

		pthread_mutex_lock(&p->lock);
		if (r < 0 && p->error == NULL)
			p->error = e;
		else
			err_free(&e);
		p->done[id]++;
		retire_locked(p);
		pthread_cond_broadcast(&p->changed);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int eif_hash_pipe_start(struct eif_hash_pipe **out, struct eif_pcr_state *pcr, size_t chunk, struct err **err)
{
	struct eif_hash_pipe *p = xcalloc(1, sizeof(*p));
	p->pcr = pcr;
	p->chunk = chunk;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->changed, NULL);
	for (int i = 0; i < WORKERS; i++) {
		p->args[i] = (struct worker_arg){p, i};
		int r = pthread_create(&p->threads[i], NULL, worker, &p->args[i]);
		if (r != 0) {
			eif_hash_pipe_stop(p);
			errno = r;
			return err_sys(err, "start a hashing thread");
		}
		p->n_threads++;
	}
	*out = p;
	return 0;
}

uint8_t *eif_hash_pipe_buffer(struct eif_hash_pipe *p)
{
	pthread_mutex_lock(&p->lock);
	while (p->in_use[p->next_free])
		pthread_cond_wait(&p->changed, &p->lock);
	if (p->buffers[p->next_free] == NULL)
		p->buffers[p->next_free] = xmalloc(p->chunk);
	uint8_t *b = p->buffers[p->next_free];
	p->in_use[p->next_free] = true;
	p->next_free = (p->next_free + 1) % RING;
	pthread_mutex_unlock(&p->lock);
	return b;
}

void eif_hash_pipe_submit(struct eif_hash_pipe *p, uint8_t *buffer, size_t len, enum eif_pipe_op op)
{
	pthread_mutex_lock(&p->lock);
	/* At most RING buffers exist and END_BOOT items carry none, so wait for
	 * room rather than assume it. */
	while (p->submitted - p->retired == RING)
		pthread_cond_wait(&p->changed, &p->lock);
	p->queue[p->submitted % RING] = (struct item){buffer, len, op};
	p->submitted++;
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
}

void eif_hash_pipe_release(struct eif_hash_pipe *p, uint8_t *buffer)
{
	pthread_mutex_lock(&p->lock);
	release_locked(p, buffer);
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
}

int eif_hash_pipe_drain(struct eif_hash_pipe *p, struct err **err)
{
	pthread_mutex_lock(&p->lock);
	while (p->retired < p->submitted)
		pthread_cond_wait(&p->changed, &p->lock);
	struct err *e = p->error;
	p->error = NULL;
	pthread_mutex_unlock(&p->lock);
	if (e != NULL) {
		err_free(err);
		if (err)
			*err = e;
		else
			err_free(&e);
		return -1;
	}
	return 0;
}

void eif_hash_pipe_stop(struct eif_hash_pipe *p)
{
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
	for (int i = 0; i < p->n_threads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->changed);
	for (int i = 0; i < RING; i++)
		free(p->buffers[i]);
	err_free(&p->error);
	free(p);
}
