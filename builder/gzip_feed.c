/* gzip_feed: inflates a gzip layer with ISA-L on a thread of its own into a small ring of buffers
 * that libarchive reads as a plain tar, so inflating and the tree walk overlap on two cores.
 *
 * ISA-L inflates several times faster than zlib (libarchive's gzip filter), and it checks each
 * member's CRC32 and length, which libarchive's filter does not. Like that filter, it reads
 * concatenated members one after the other and ignores bytes after the last member that do not
 * start another one. Memory: RING buffers of SLOT bytes plus one input buffer, whatever the size. */
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include <isa-l/igzip_lib.h>

#include "builder/gzip_feed.h"

#define RING 4
#define SLOT (512 * 1024)
#define IN   (256 * 1024)

struct bld_gzip_feed {
	int fd;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t changed;
	uint8_t *slots[RING];
	size_t lens[RING];
	unsigned head;   /* the oldest filled slot (the reader's next, or the one it holds) */
	unsigned filled; /* filled slots, the held one included */
	bool held;       /* the reader holds slots[head] (libarchive reads from it until the next call) */
	bool ended;      /* the inflater is done: end of stream or error */
	bool stopping;
	struct err *error; /* why the inflater stopped early; reported after the filled slots */
	uint64_t consumed; /* compressed bytes inflated; atomic */

	/* The inflater thread's own. */
	struct inflate_state st;
	uint8_t *in;
	uint64_t in_off; /* file offset of in[0] */
	bool in_eof;
};

static const char *isal_reason(int r)
{
	switch (r) {
	case ISAL_INVALID_BLOCK: return "invalid deflate block";
	case ISAL_INVALID_SYMBOL: return "invalid deflate symbol";
	case ISAL_INVALID_LOOKBACK: return "invalid deflate distance";
	case ISAL_INVALID_WRAPPER: return "invalid member header";
	case ISAL_UNSUPPORTED_METHOD: return "unsupported compression method";
	case ISAL_INCORRECT_CHECKSUM: return "the CRC32 or length in the trailer does not match the data";
	case ISAL_NEED_DICT: return "deflate stream needs a preset dictionary";
	default: return "stream not understood";
	}
}

/* Moves the unread input to the front of the buffer and reads more after it. */
static int input_refill(struct bld_gzip_feed *f, struct err **err)
{
	size_t keep = f->st.avail_in;
	if (keep && f->st.next_in != f->in)
		memmove(f->in, f->st.next_in, keep);
	f->in_off += (uint64_t)(f->st.next_in ? f->st.next_in - f->in : 0);
	ssize_t n = io_read_full(f->fd, f->in + keep, IN - keep, err);
	if (n < 0)
		return -1;
	if ((size_t)n < IN - keep)
		f->in_eof = true;
	f->st.next_in = f->in;
	f->st.avail_in = (uint32_t)(keep + (size_t)n);
	return 0;
}

static uint64_t input_pos(const struct bld_gzip_feed *f)
{
	return f->in_off + (uint64_t)(f->st.next_in - f->in);
}

/* Inflates into `out` until it is full or the stream ends (*end). */
static int inflate_some(struct bld_gzip_feed *f, uint8_t *out, size_t *len, bool *end, struct err **err)
{
	f->st.next_out = out;
	f->st.avail_out = SLOT;
	*end = false;
	while (f->st.avail_out > 0) {
		if (f->st.avail_in == 0 && !f->in_eof && input_refill(f, err) < 0)
			return -1;
		uint32_t before_in = f->st.avail_in, before_out = f->st.avail_out;
		int r = isal_inflate(&f->st);
		__atomic_store_n(&f->consumed, input_pos(f), __ATOMIC_RELAXED);
		if (r != ISAL_DECOMP_OK)
			return err_set(err, EINVAL, "gzip: %s at compressed byte %llu", isal_reason(r),
			               (unsigned long long)input_pos(f));
		if (f->st.block_state == ISAL_BLOCK_FINISH) {
			/* Another member may follow: it needs its two magic bytes. */
			if (f->st.avail_in < 2 && !f->in_eof && input_refill(f, err) < 0)
				return -1;
			if (f->st.avail_in < 2 || f->st.next_in[0] != 0x1f || f->st.next_in[1] != 0x8b) {
				*end = true;
				break;
			}
			uint8_t *next_in = f->st.next_in;
			uint32_t avail_in = f->st.avail_in;
			uint8_t *next_out = f->st.next_out;
			uint32_t avail_out = f->st.avail_out;
			isal_inflate_init(&f->st);
			f->st.crc_flag = ISAL_GZIP;
			f->st.next_in = next_in, f->st.avail_in = avail_in;
			f->st.next_out = next_out, f->st.avail_out = avail_out;
			continue;
		}
		if (f->st.avail_in != before_in || f->st.avail_out != before_out)
			continue;
		/* No progress and no end: it needs input there is none of (the file stops inside the
		 * stream), or more than the buffer holds (ISA-L takes what it is given, so this is a
		 * guard against looping, not a case seen). */
		if (f->in_eof)
			return err_set(err, EINVAL, "gzip: the data stops inside the stream, at compressed byte %llu",
			               (unsigned long long)input_pos(f));
		if (f->st.avail_in == IN)
			return err_set(err, EINVAL, "gzip: stream not understood at compressed byte %llu",
			               (unsigned long long)input_pos(f));
		if (input_refill(f, err) < 0)
			return -1;
	}
	*len = SLOT - f->st.avail_out;
	return 0;
}

static void *inflater(void *arg)
{
	struct bld_gzip_feed *f = arg;
	unsigned next = 0; /* the slot this thread fills next */
	for (;;) {
		pthread_mutex_lock(&f->lock);
		while (f->filled == RING && !f->stopping)
			pthread_cond_wait(&f->changed, &f->lock);
		bool stop = f->stopping;
		pthread_mutex_unlock(&f->lock);
		if (stop)
			break;
		size_t len = 0;
		bool end = false;
		struct err *e = NULL;
		int r = inflate_some(f, f->slots[next], &len, &end, &e);
		pthread_mutex_lock(&f->lock);
		if (len > 0) {
			f->lens[next] = len;
			f->filled++;
			next = (next + 1) % RING;
		}
		if (r < 0 || end) {
			f->error = e;
			f->ended = true;
		}
		bool ended = f->ended;
		pthread_cond_broadcast(&f->changed);
		pthread_mutex_unlock(&f->lock);
		if (ended)
			break;
	}
	return NULL;
}

int bld_gzip_feed_open(const char *path, struct bld_gzip_feed **out, struct err **err)
{
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0; /* libarchive names the failure as it always did */
	uint8_t magic[3];
	ssize_t n = pread(fd, magic, sizeof(magic), 0);
	if (n != (ssize_t)sizeof(magic) || magic[0] != 0x1f || magic[1] != 0x8b || magic[2] != 8) {
		close(fd);
		return 0;
	}
	struct bld_gzip_feed *f = xcalloc(1, sizeof(*f));
	f->fd = fd;
	f->in = xmalloc(IN);
	for (int i = 0; i < RING; i++)
		f->slots[i] = xmalloc(SLOT);
	isal_inflate_init(&f->st);
	f->st.crc_flag = ISAL_GZIP;
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->changed, NULL);
	int r = pthread_create(&f->thread, NULL, inflater, f);
	if (r != 0) {
		pthread_mutex_destroy(&f->lock);
		pthread_cond_destroy(&f->changed);
		for (int i = 0; i < RING; i++)
			free(f->slots[i]);
		free(f->in);
		free(f);
		close(fd);
		errno = r; /* after the clean-up, which may set errno itself */
		return err_sys(err, "start the gzip thread");
	}
	*out = f;
	return 0;
}

/* Hands libarchive the next filled slot, giving back the one it had. */
static la_ssize_t feed_read(struct archive *a, void *ctx, const void **buf)
{
	struct bld_gzip_feed *f = ctx;
	pthread_mutex_lock(&f->lock);
	if (f->held) {
		f->held = false;
		f->head = (f->head + 1) % RING;
		f->filled--;
		pthread_cond_broadcast(&f->changed);
	}
	while (f->filled == 0 && !f->ended)
		pthread_cond_wait(&f->changed, &f->lock);
	la_ssize_t r = 0;
	if (f->filled > 0) {
		f->held = true;
		*buf = f->slots[f->head];
		r = (la_ssize_t)f->lens[f->head];
	} else if (f->error) {
		archive_set_error(a, f->error->code ? f->error->code : EIO, "%s", f->error->msg);
		r = -1;
	}
	pthread_mutex_unlock(&f->lock);
	return r;
}

int bld_gzip_feed_attach(struct bld_gzip_feed *f, struct archive *a, struct err **err)
{
	if (archive_read_open(a, f, NULL, feed_read, NULL) != ARCHIVE_OK)
		return err_set(err, archive_errno(a) > 0 ? archive_errno(a) : EIO, "%s", archive_error_string(a));
	return 0;
}

int bld_gzip_feed_finish(struct bld_gzip_feed *f, struct err **err)
{
	pthread_mutex_lock(&f->lock);
	for (;;) {
		if (f->held) {
			f->held = false;
			f->head = (f->head + 1) % RING;
			f->filled--;
			pthread_cond_broadcast(&f->changed);
		}
		if (f->filled > 0) {
			f->held = true; /* dropped on the next turn */
			continue;
		}
		if (f->ended)
			break;
		pthread_cond_wait(&f->changed, &f->lock);
	}
	struct err *e = f->error;
	f->error = NULL;
	pthread_mutex_unlock(&f->lock);
	if (e) {
		*err = e;
		return -1;
	}
	return 0;
}

uint64_t bld_gzip_feed_consumed(const struct bld_gzip_feed *f)
{
	return __atomic_load_n(&f->consumed, __ATOMIC_RELAXED);
}

void bld_gzip_feed_free(struct bld_gzip_feed *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->lock);
	f->stopping = true;
	pthread_cond_broadcast(&f->changed);
	pthread_mutex_unlock(&f->lock);
	pthread_join(f->thread, NULL);
	pthread_mutex_destroy(&f->lock);
	pthread_cond_destroy(&f->changed);
	for (int i = 0; i < RING; i++)
		free(f->slots[i]);
	free(f->in);
	err_free(&f->error);
	close(f->fd);
	free(f);
}
