/* hash_pipe: hashes section data on a worker thread while the writer's own
 * thread reads, CRCs and writes the next chunk. SHA-384 is the slowest step
 * of building an EIF; overlapping it with the I/O makes a build cost about
 * one hashing pass on two cores. Buffers cycle through a small ring, so
 * memory stays bounded whatever the section sizes. */
#include <pthread.h>
#include <string.h>

#include "eif/internal.h"

#define RING 4

struct item {
	uint8_t *data;
	size_t len;
	enum eif_pipe_op op;
};

struct eif_hash_pipe {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t changed;
	struct eif_pcr_state *pcr;
	size_t chunk;            /* bytes per buffer */
	uint8_t *buffers[RING];  /* allocated on first use: small images need one */
	struct item queue[RING]; /* submitted, not yet hashed; FIFO */
	int head, count;         /* queue[head] is the oldest of `count` items */
	int next_free;           /* buffers are handed out in ring order */
	bool in_use[RING];
	bool stopping;
	struct err *error; /* the first hashing error; later work is skipped */
};

static void *worker(void *arg)
{
	struct eif_hash_pipe *p = arg;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (p->count == 0 && !p->stopping)
			pthread_cond_wait(&p->changed, &p->lock);
		if (p->count == 0)
			break;
		struct item it = p->queue[p->head];
		bool failed = p->error != NULL;
		pthread_mutex_unlock(&p->lock);

		struct err *e = NULL;
		int r = 0;
		if (!failed) {
			switch (it.op) {
			case EIF_PIPE_BOOT: r = eif_pcr_feed_boot(p->pcr, it.data, it.len, &e); break;
			case EIF_PIPE_APP: r = eif_pcr_feed_app(p->pcr, it.data, it.len, &e); break;
			case EIF_PIPE_END_BOOT: r = eif_pcr_end_boot(p->pcr, &e); break;
			}
		}

		pthread_mutex_lock(&p->lock);
		if (r < 0 && p->error == NULL)
			p->error = e;
		else
			err_free(&e);
		for (int i = 0; i < RING; i++)
			if (p->buffers[i] == it.data)
				p->in_use[i] = false;
		p->head = (p->head + 1) % RING;
		p->count--;
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
	int r = pthread_create(&p->thread, NULL, worker, p);
	if (r != 0) {
		errno = r;
		free(p);
		return err_sys(err, "start the hashing thread");
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
	while (p->count == RING)
		pthread_cond_wait(&p->changed, &p->lock);
	p->queue[(p->head + p->count) % RING] = (struct item){buffer, len, op};
	p->count++;
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
}

void eif_hash_pipe_release(struct eif_hash_pipe *p, uint8_t *buffer)
{
	pthread_mutex_lock(&p->lock);
	for (int i = 0; i < RING; i++)
		if (p->buffers[i] == buffer)
			p->in_use[i] = false;
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
}

int eif_hash_pipe_drain(struct eif_hash_pipe *p, struct err **err)
{
	pthread_mutex_lock(&p->lock);
	while (p->count > 0)
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
	pthread_join(p->thread, NULL);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->changed);
	for (int i = 0; i < RING; i++)
		free(p->buffers[i]);
	err_free(&p->error);
	free(p);
}
