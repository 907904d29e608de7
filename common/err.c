/* err: the project's error type, an errno-like code plus a message chain.
 * Messages are built outermost-first by err_wrap as the error travels up. */
#include <errno.h>
#include <string.h>

#include "common.h"

int err_set(struct err **err, int code, const char *fmt, ...)
{
	va_list ap;
	if (err == NULL)
		return -1;
	err_free(err);
	*err = xcalloc(1, sizeof(**err));
	(*err)->code = code;
	va_start(ap, fmt);
	(*err)->msg = xvasprintf(fmt, ap);
	va_end(ap);
	return -1;
}

int err_sys(struct err **err, const char *fmt, ...)
{
	int code = errno;
	va_list ap;
	if (err == NULL)
		return -1;
	va_start(ap, fmt);
	_cleanup_free_ char *ctx = xvasprintf(fmt, ap);
	va_end(ap);
	return err_set(err, code, "%s: %s", ctx, strerror(code));
}

int err_wrap(struct err **err, const char *fmt, ...)
{
	va_list ap;
	if (err == NULL || *err == NULL)
		return -1;
	va_start(ap, fmt);
	_cleanup_free_ char *ctx = xvasprintf(fmt, ap);
	va_end(ap);
	char *msg = xasprintf("%s: %s", ctx, (*err)->msg);
	free((*err)->msg);
	(*err)->msg = msg;
	return -1;
}

void err_free(struct err **err)
{
	if (err == NULL || *err == NULL)
		return;
	free((*err)->msg);
	free(*err);
	*err = NULL;
}

void cleanup_errp(struct err **e)
{
	err_free(e);
}
