/* progress: what a transfer (or a build) tells the person watching, through the caller's
 * callback (oci_opts.progress): step lines, and a status of the long steps redrawn from a thread of
 * its own. Nothing here writes to a terminal. */
#include <stdarg.h>
#include <string.h>
#include <time.h>

#include "oci/internal.h"

void oci_progress(const struct oci_opts *opts, const char *fmt, ...)
{
	if (!opts->progress)
		return;
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	opts->progress(opts->progress_ctx, OCI_PROGRESS_LINE, line);
}

void oci_human_size(int64_t n, char out[32])
{
	if (n >= 1 << 20)
		snprintf(out, 32, "%.1f MiB", (double)n / (1 << 20));
	else if (n >= 1 << 10)
		snprintf(out, 32, "%.1f KiB", (double)n / (1 << 10));
	else
		snprintf(out, 32, "%lld B", (long long)n);
}

char *oci_memdup_str(const void *data, size_t len)
{
	char *s = xmalloc(len + 1);
	memcpy(s, data, len);
	s[len] = '\0';
	return s;
}

bool oci_status_wanted(const struct oci_opts *opts)
{
	return opts->progress && opts->progress_status;
}

void oci_status_draw(const struct oci_opts *opts, const char *verb, const struct oci_status_item *items, size_t n, size_t finished)
{
	char line[512];
	int64_t done = 0, total = 0;
	for (size_t i = 0; i < n; i++) {
		total += items[i].size;
		/* An upload sent again after a 401 counts its bytes twice. */
		done += items[i].done < items[i].size ? items[i].done : items[i].size;
	}
	int len = snprintf(line, sizeof(line), "%s %zu/%zu blobs, %.1f of %.1f MiB", verb, finished, n,
	                   (double)done / (1 << 20), (double)total / (1 << 20));
	for (size_t i = 0; i < n && len < (int)sizeof(line) - 40; i++) {
		if (!items[i].active || items[i].size <= 0)
			continue;
		int64_t got = items[i].done < items[i].size ? items[i].done : items[i].size;
		len += snprintf(line + len, sizeof(line) - (size_t)len, "  %.12s %3d%%",
		                oci_digest_hex(items[i].digest), (int)(100 * got / items[i].size));
	}
	oci_status_line(opts, "%s", line);
}

void oci_status_line(const struct oci_opts *opts, const char *fmt, ...)
{
	if (!oci_status_wanted(opts))
		return;
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	opts->progress(opts->progress_ctx, OCI_PROGRESS_STATUS, line);
}

void oci_status_clear(const struct oci_opts *opts)
{
	if (oci_status_wanted(opts))
		opts->progress(opts->progress_ctx, OCI_PROGRESS_CLEAR, "");
}

static void *status_loop(void *ud)
{
	struct oci_status_thread *st = ud;
	struct oci_status_item *items = xcalloc(st->n ? st->n : 1, sizeof(*items));
	pthread_mutex_lock(&st->lock);
	while (!st->stop) {
		size_t finished = st->fill(st->ctx, items, st->n);
		oci_status_draw(st->opts, st->verb, items, st->n, finished);
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += 200 * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&st->wake, &st->lock, &until);
	}
	pthread_mutex_unlock(&st->lock);
	oci_status_clear(st->opts);
	free(items);
	return NULL;
}

bool oci_status_thread_start(struct oci_status_thread *st, const struct oci_opts *opts, const char *verb, size_t n,
                             oci_status_fill_fn fill, void *ctx)
{
	*st = (struct oci_status_thread){.opts = opts, .verb = verb, .n = n, .fill = fill, .ctx = ctx};
	pthread_mutex_init(&st->lock, NULL);
	pthread_cond_init(&st->wake, NULL);
	if (pthread_create(&st->tid, NULL, status_loop, st) == 0)
		return true;
	pthread_mutex_destroy(&st->lock);
	pthread_cond_destroy(&st->wake);
	return false;
}

void oci_status_thread_stop(struct oci_status_thread *st)
{
	pthread_mutex_lock(&st->lock);
	st->stop = true;
	pthread_cond_signal(&st->wake);
	pthread_mutex_unlock(&st->lock);
	pthread_join(st->tid, NULL);
	pthread_mutex_destroy(&st->lock);
	pthread_cond_destroy(&st->wake);
}
