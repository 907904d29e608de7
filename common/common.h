/* common: the pieces every module shares: errors, logging, cleanup helpers,
 * growable buffers, careful I/O, atomic files, hex, and serde-compatible JSON. */
#ifndef ENCLAVER_COMMON_H
#define ENCLAVER_COMMON_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

/* ---------------------------------------------------------------- errors
 * One error type for the whole project (after crun's libcrun_error):
 * functions take `struct err **err` last, return 0 on success and -1 on
 * failure after filling *err. Callers add the context they know with
 * err_wrap(), so the message reads outermost first:
 *   "write out.eif: ramdisk 2 (b.cpio): read: Input/output error".
 * Only the CLI prints an error, once. */
struct err {
	int code;  /* errno value, or 0 when the failure is not a system error */
	char *msg; /* full message chain, outermost context first */
};

/* Set *err (which must be NULL) from a printf-style message; returns -1. */
int err_set(struct err **err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Like err_set with code = errno, and ": strerror(errno)" appended. */
int err_sys(struct err **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefix an existing error with more context ("ctx: old message"); returns -1. */
int err_wrap(struct err **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void err_free(struct err **err);

/* ---------------------------------------------------------------- logging
 * Logs go to stderr. The level and the format are the only process-wide mutable state. */
enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* True when stderr is a terminal: progress bars only then. */
bool log_stderr_is_tty(void);
/* A sink gets every message up to level `max` (whatever the stderr level), from any thread, one
 * at a time; it must not block and must not log. NULL fn removes it. */
typedef void log_sink_fn(void *arg, enum log_level level, const char *level_name, const char *msg);
void log_set_sink(enum log_level max, log_sink_fn *fn, void *arg);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

/* The format of what a run prints about its enclave (common/logfmt.c, `--log-format`): text, or
 * one JSON object a line {"time","source","stream"?,"level","message"}. Also process-wide logging
 * configuration: log_msg follows it for the host's own messages. */
struct buf;
struct timespec;
enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };
void log_set_format(enum log_format f);
enum log_format log_get_format(void);
/* "text" or "json"; -1 for anything else. */
int log_format_parse(const char *s, enum log_format *out);
/* Appends len bytes of msg as the inside of a JSON string: well-formed UTF-8 as is (U+2028/2029
 * escaped), control bytes, quote and backslash escaped, each byte of an ill-formed sequence as
 * U+FFFD (escaped). Whatever the bytes, the result is one valid JSON string with no raw control byte. */
void log_json_escape(struct buf *b, const char *msg, size_t len);
/* Appends one JSON line (LF-terminated) at time t (RFC 3339 UTC, milliseconds); stream may be NULL. */
void log_json_line(struct buf *b, const struct timespec *t, const char *source, const char *stream,
                   const char *level, const char *msg, size_t len);
/* Appends msg with control bytes (but TAB) and DEL as \xNN: a CR or escape sequence from the
 * enclave cannot overwrite or fake a line on a terminal. */
void log_text_escape(struct buf *b, const char *msg, size_t len);
/* msg as text lines: each LF-separated part on a line of its own that starts with prefix, with
 * log_text_escape's escapes, so no part can pass for a line of another source. */
void log_text_lines(struct buf *b, const char *prefix, const char *msg, size_t len);
/* One line in format f: text is log_text_lines with text_prefix, JSON a log_json_line now. */
void log_line_format(struct buf *b, enum log_format f, const char *text_prefix, const char *source,
                     const char *level, const char *msg, size_t len);
/* log_line_format in the process's format, written to fd in one write. */
int log_line_write(int fd, const char *text_prefix, const char *source, const char *level, const char *msg,
                   size_t len, struct err **err);

/* ---------------------------------------------------------------- cleanup
 * Scope-bound release, so every early return frees what it owns. */
void cleanup_freep(void *p);
void cleanup_closep(int *fd);
void cleanup_fclosep(FILE **f);
void cleanup_errp(struct err **e);
#define _cleanup_(f) __attribute__((cleanup(f)))
#define _cleanup_free_ _cleanup_(cleanup_freep)
#define _cleanup_close_ _cleanup_(cleanup_closep)
#define _cleanup_fclose_ _cleanup_(cleanup_fclosep)
#define _cleanup_err_ _cleanup_(cleanup_errp)

/* Hand ownership out of a _cleanup_ variable: returns the value, leaves NULL/-1. */
#define steal_pointer(pp) ({ __typeof__(*(pp)) _v = *(pp); *(pp) = NULL; _v; })
#define steal_fd(pfd) ({ int _v = *(pfd); *(pfd) = -1; _v; })

/* Allocation that cannot fail quietly: aborts on out-of-memory, like most
 * tools do; callers then need no NULL checks for small allocations. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
/* The first n bytes of s (fewer if a NUL comes first), never reading past them. */
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
/* What the x* helpers do when memory runs out, for allocations made elsewhere (OpenSSL's): one
 * line on stderr, then abort(). */
_Noreturn void out_of_memory(const char *what);

/* ---------------------------------------------------------------- buffers */
struct buf {
	char *data; /* always NUL-terminated when len > 0 or after buf_str() */
	size_t len;
	size_t cap;
};
void buf_append(struct buf *b, const void *data, size_t len);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The contents as a C string (never NULL). */
const char *buf_str(struct buf *b);
void buf_free(struct buf *b);
void cleanup_bufp(struct buf *b);
#define _cleanup_buf_ _cleanup_(cleanup_bufp)

/* ---------------------------------------------------------------- I/O
 * Loops over short reads/writes and EINTR. */
/* Reads up to len bytes; returns the count (< len only at end of file) or -1. */
ssize_t io_read_full(int fd, void *data, size_t len, struct err **err);
int io_write_full(int fd, const void *data, size_t len, struct err **err);
ssize_t io_pread_full(int fd, void *data, size_t len, off_t off, struct err **err);
int io_pwrite_full(int fd, const void *data, size_t len, off_t off, struct err **err);
/* Opens a regular file for sequential reading; returns the fd (and its size)
 * or -1 with an error naming the path. */
int io_open_regular(const char *path, uint64_t *size, struct err **err);
/* Reads a whole small file (at most max_len bytes, else an error naming it).
 * *out is NUL-terminated for convenience; *out_len excludes the NUL. */
int io_read_file(const char *path, size_t max_len, char **out, size_t *out_len, struct err **err);
/* A new private folder BASE/NAME.XXXXXX (mode 0700); BASE NULL or empty: $TMPDIR, else /tmp. */
int io_tmpdir_create(const char *base, const char *name, char **out, struct err **err);
/* rm -rf PATH for cleanups: symlinks are removed, never followed; errors are ignored. */
void io_remove_tree(const char *path);

/* A file that appears complete or not at all: written to a temporary file
 * beside the target, fsync'd, then renamed over it. */
struct atomic_file {
	int fd;         /* the temporary file; -1 while comparing (keep mode) */
	char *tmp_path;
	char *path;
	/* Keep mode (atomic_file_open_keep): while comparing, old_fd is the
	 * existing file the writes have matched so far. */
	bool comparing;
	int old_fd;
	uint64_t old_size;
	uint64_t end; /* the furthest byte written so far */
	mode_t mode;
	bool unchanged; /* after commit: the existing file already held these bytes */
};
/* fsync of a folder, so the names just renamed or linked into it last (EINVAL, a file system
 * that cannot sync folders, counts as done; err may be NULL for a best effort). */
int io_fsync_dir(const char *dir, struct err **err);
int atomic_file_open(struct atomic_file *af, const char *path, mode_t mode, struct err **err);
/* The same for big outputs that are often rebuilt unchanged: while path exists as a regular file
 * with that mode, writes (atomic_file_pwrite only) are compared with it instead of written; at the
 * first difference its compared part is copied into a temporary file and writing goes on there.
 * When every byte matched, commit leaves the file untouched (inode, mtime) and sets unchanged. */
int atomic_file_open_keep(struct atomic_file *af, const char *path, mode_t mode, struct err **err);
int atomic_file_pwrite(struct atomic_file *af, const void *data, size_t len, uint64_t off, struct err **err);
int atomic_file_commit(struct atomic_file *af, struct err **err);
/* Removes the temporary file if not committed; safe to call twice. */
void atomic_file_abort(struct atomic_file *af);
#define _cleanup_atomic_file_ _cleanup_(atomic_file_abort)
/* A whole file from one buffer, atomically (open, write, commit; nothing left on failure). */
int atomic_file_write(const char *path, mode_t mode, const void *data, size_t len, struct err **err);

/* ---------------------------------------------------------------- text */
/* Lowercase hex of data into out (2*len+1 bytes). */
void hex_encode(const uint8_t *data, size_t len, char *out);
/* Parses exactly 2*len hex digits; returns -1 on anything else. */
int hex_decode(const char *hex, uint8_t *out, size_t len);
/* The value of one hex digit (either case), or -1. */
int hex_digit_value(char c);
bool str_has_prefix(const char *s, const char *prefix);
/* The seconds since the epoch for reproducible builds: SOURCE_DATE_EPOCH when
 * set (an error if malformed), else the current time. */
int time_source_date_epoch(int64_t *out, struct err **err);
/* Milliseconds of CLOCK_MONOTONIC: for deadlines, backoff and rate limits. */
int64_t time_monotonic_ms(void);
/* RFC 3339 with "+00:00", as chrono's to_rfc3339() writes whole seconds. */
void time_format_rfc3339(int64_t t, char out[32]);
/* base64 (RFC 4648, standard alphabet, padded). Encoding returns a string
 * the caller frees; decoding is strict (padding required, no whitespace,
 * canonical final bits) and returns -1 on anything else; its buffer has room
 * for one more byte, so (*out)[*out_len] may be set to '\0'. */
char *base64_encode(const void *data, size_t len);
int base64_decode(const char *s, size_t len, uint8_t **out, size_t *out_len);

#endif
