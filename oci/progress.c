/* progress: what a transfer (or a build) tells the person watching: lines on
 * stderr (results go to stdout), a status line on a terminal, nothing with --quiet. */
#include <stdarg.h>
#include <string.h>
#include <time.h>

#include "oci/internal.h"

void oci_progress(const struct oci_opts *opts, const char *fmt, ...)
{
	if (opts->quiet || log_get_level() < LOG_WARN)
		return;
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* "\r\033[K" clears a status line a terminal may be showing. */
	fprintf(stderr, "%senclaver: %s\n", log_stderr_is_tty() ? "\r\033[K" : "", line);
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
	return !opts->quiet && log_get_level() >= LOG_WARN && log_stderr_is_tty();
}

void oci_status_draw(const char *verb, const struct oci_status_item *items, size_t n, size_t finished)
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
	oci_status_line("%s", line);
}

void oci_status_line(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "\r\033[K%s", line);
	fflush(stderr);
}

void oci_status_clear(void)
{
	fputs("\r\033[K", stderr);
	fflush(stderr);
}

static void *status_loop(void *ud)
{
	struct oci_status_thread *st = ud;
	struct oci_status_item *items = xcalloc(st->n ? st->n : 1, sizeof(*items));
	pthread_mutex_lock(&st->lock);
	while (!st->stop) {
		size_t finished = st->fill(st->ctx, items, st->n);
		oci_status_draw(st->verb, items, st->n, finished);
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
	oci_status_clear();
	free(items);
	return NULL;
}

bool oci_status_thread_start(struct oci_status_thread *st, const char *verb, size_t n, oci_status_fill_fn fill,
                             void *ctx)
{
	*st = (struct oci_status_thread){.verb = verb, .n = n, .fill = fill, .ctx = ctx};
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
