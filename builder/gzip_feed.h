/* gzip_feed: a gzip layer inflated with ISA-L on a thread of its own and
 * handed to libarchive as a plain tar, so inflating and the tree walk run on two cores. */
#ifndef ENCLAVER_BUILDER_GZIP_FEED_H
#define ENCLAVER_BUILDER_GZIP_FEED_H

#include <stdint.h>

#include <archive.h>

#include "common/common.h"

struct bld_gzip_feed;

/* Starts inflating `path` when it begins with a gzip member header; when it
 * does not (or cannot be opened), *out is NULL and the caller reads the file
 * through libarchive's own filters, which give their usual verdicts. */
int bld_gzip_feed_open(const char *path, struct bld_gzip_feed **out, struct err **err);
/* Opens `a` on the inflated stream. A corrupt or truncated gzip stream fails
 * the archive read that reaches it, with the compressed offset in the message. */
int bld_gzip_feed_attach(struct bld_gzip_feed *f, struct archive *a, struct err **err);
/* Reads to the end of the gzip stream (what the tar reader left unread) so
 * its CRC and length are checked; -1 with the stream's error. */
int bld_gzip_feed_finish(struct bld_gzip_feed *f, struct err **err);
/* Compressed bytes inflated so far (for progress; any thread). */
uint64_t bld_gzip_feed_consumed(const struct bld_gzip_feed *f);
/* Stops the thread and closes the file. NULL is a no-op. */
void bld_gzip_feed_free(struct bld_gzip_feed *f);

#endif
