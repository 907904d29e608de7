/* log: leveled messages on stderr, and to one optional sink. The level and the sink are the
 * process-wide mutable state the project allows (logging configuration). */
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

static enum log_level current_level = LOG_WARN;

/* The sink is called under this lock: once log_set_sink(.., NULL, ..) returns, no thread is in
 * the old sink any more, so its owner may free what it uses. */
static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;
static log_sink_fn *sink_fn;
static void *sink_arg;
static enum log_level sink_level;

void log_set_sink(enum log_level max, log_sink_fn *fn, void *arg)
{
	pthread_mutex_lock(&sink_lock);
	__atomic_store_n(&sink_level, max, __ATOMIC_RELAXED);
	__atomic_store_n(&sink_fn, fn, __ATOMIC_RELAXED);
	sink_arg = arg;
	pthread_mutex_unlock(&sink_lock);
}

void log_set_level(enum log_level level)
{
	current_level = level;
}

enum log_level log_get_level(void)
{
	return current_level;
}

bool log_stderr_is_tty(void)
{
	return isatty(STDERR_FILENO) == 1;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const names[] = {"error", "warning", "info", "debug"};
	va_list ap;
	/* Unlocked peek: a sink being set or cleared is seen on the next message, or under the lock. */
	bool to_sink = __atomic_load_n(&sink_fn, __ATOMIC_RELAXED) != NULL &&
	               level <= __atomic_load_n(&sink_level, __ATOMIC_RELAXED);
	if (level > current_level && !to_sink)
		return;
	/* One write per message (log_line_write) keeps lines whole when several threads log. */
	char line[4096];
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (level <= current_level) {
		/* Messages may carry what the enclave sent (a host name in an egress frame, a status
		 * line): the formatter keeps it from starting a line of its own in either format. */
		static const char *const json_names[] = {"error", "warn", "info", "debug"};
		char prefix[32];
		snprintf(prefix, sizeof(prefix), "enclaver: %s: ", names[level]);
		log_line_write(STDERR_FILENO, prefix, "host", json_names[level], line, strlen(line), NULL);
	}
	if (to_sink) {
		pthread_mutex_lock(&sink_lock);
		if (sink_fn && level <= sink_level)
			sink_fn(sink_arg, level, names[level], line);
		pthread_mutex_unlock(&sink_lock);
	}
}
