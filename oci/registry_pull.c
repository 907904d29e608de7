/* registry_pull: a registry as an image source: manifests by tag or digest
 * (verified, then cached), and blobs downloaded in parallel, one thread per
 * transfer, streamed through the digest check into the cache, retried and resumed. */
#include <string.h>
#include <time.h>

#include "oci/registry.h"

static const char ACCEPT_ALL[] = OCI_MT_MANIFEST ", " OCI_MT_INDEX ", " DOCKER_MT_MANIFEST ", " DOCKER_MT_LIST;

struct reg_source {
	struct oci_source base;
	struct registry *reg;
	char *scope;
};

/* ---------------------------------------------------------------- manifests */
static int manifest_from_cache(struct oci_source *s, const char *digest, struct buf *out, struct err **err)
{
	return oci_cache_read_manifest(s->cache, digest, out, err);
}

static int reg_get_manifest(struct oci_source *s, const char *digest, struct buf *out, char **media_type,
                            struct err **err)
{
	struct reg_source *rs = (struct reg_source *)s;
	const char *expected = digest ? digest : s->ref.digest;
	_cleanup_free_ char *cached_tag = NULL;
	if (expected == NULL && s->opts->offline) {
		if (oci_cache_tag_get(s->cache, &s->ref, &cached_tag, err) < 0)
			return err_wrap(err, "--offline: %s:%s was never pulled", s->ref.repository, s->ref.tag);
		expected = cached_tag;
	}
	/* Manifests are content-addressed too: a digest already cached needs no request. */
	if (expected && str_has_prefix(expected, "sha256:") && oci_cache_has(s->cache, expected, -1)) {
		struct err *bad = NULL;
		if (manifest_from_cache(s, expected, out, &bad) == 0)
			return 0;
		if (s->opts->offline || bad->code != EBADMSG) {
			*err = bad;
			return -1;
		}
		/* Quarantined: fetched again below. */
		log_warn("%s", bad->msg);
		err_free(&bad);
		out->len = 0;
	}
	if (s->opts->offline)
		return err_set(err, ENOENT, "--offline: manifest %s is not in the cache", expected);
	const char *ref = expected ? expected : s->ref.tag;
	_cleanup_free_ char *path = xasprintf("/v2/%s/manifests/%s", s->ref.repository, ref);
	struct reg_req req = {
	    .url = path, .scope = rs->scope, .accept = ACCEPT_ALL, .out = out, .out_max = OCI_MANIFEST_MAX};
	struct reg_resp resp;
	if (registry_do(rs->reg, &req, &resp, err) < 0)
		return -1;
	int r = 0;
	if (resp.status != 200) {
		_cleanup_free_ char *what = xasprintf("manifest %s%s%s", s->ref.repository, expected ? "@" : ":", ref);
		r = registry_status_error(rs->reg, what, &resp, err);
	}
	char got[OCI_DIGEST_MAX];
	if (r == 0) {
		oci_digest_buf(out->data, out->len, got);
		if (expected && str_has_prefix(expected, "sha256:") && strcmp(expected, got) != 0)
			r = err_set(err, EBADMSG, "manifest %s:%s: digest mismatch: expected %s, got %s",
			            s->ref.repository, ref, expected, got);
		else if (expected && !str_has_prefix(expected, "sha256:"))
			r = oci_digest_verify_buf(out->data, out->len, expected, err);
		else if (resp.docker_digest && str_has_prefix(resp.docker_digest, "sha256:") &&
		         strcmp(resp.docker_digest, got) != 0)
			r = err_set(err, EBADMSG,
			            "manifest %s:%s: digest mismatch: the registry says %s, the content hashes to %s",
			            s->ref.repository, ref, resp.docker_digest, got);
	}
	if (r == 0 && resp.content_type)
		*media_type = xstrndup(resp.content_type, strcspn(resp.content_type, "; "));
	if (r == 0) {
		/* Only a manifest the copy can use is cached: one it refuses (empty, not JSON, a config
		 * over OCI_CONFIG_MAX...) would otherwise stay, trusted by its digest. */
		struct oci_manifest m;
		r = oci_manifest_parse(out->data, out->len, *media_type, &m, err);
		if (r < 0)
			err_wrap(err, "manifest %s%s%s", s->ref.repository, expected ? "@" : ":", ref);
		else
			oci_manifest_free(&m);
	}
	if (r == 0)
		r = oci_cache_put_buf(s->cache, out->data, out->len, got, NULL, err);
	reg_resp_free(&resp);
	return r;
}

/* ---------------------------------------------------------------- blobs */
struct dl {
	struct reg_source *rs;
	const struct oci_desc *d;
	CURL *h;
	struct curl_slist *hdrs;
	struct oci_blob_writer *w;
	int attempts;
	int64_t not_before; /* ms: backoff before the next attempt */
	bool done;          /* atomic: the status line reads it */
	bool restart;       /* the server ignored our Range: start over */
	bool partial_dropped; /* a kept partial failed the digest: fetched whole since */
	int64_t range_from; /* bytes asked to skip in this attempt */
	struct buf errbody; /* a non-2xx body, for the message */
	struct err *werr;   /* a write failure inside the callback */
	char errbuf[CURL_ERROR_SIZE];
	int64_t got;     /* bytes written (atomic: the status line reads it) */
	const int *stop; /* set (atomic) when another blob failed: give up */
};

static size_t dl_write(char *data, size_t size, size_t n, void *ud)
{
	struct dl *x = ud;
	size_t len = size * n;
	long status = 0;
	curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200 && status != 206) {
		if (x->errbody.len < 65536)
			buf_append(&x->errbody, data, len);
		return len;
	}
	if (status == 200 && x->range_from > 0 && !x->restart) {
		/* Asked for a range, got the whole blob: begin again. */
		x->restart = true;
		oci_blob_writer_abort(x->w);
		x->w = NULL;
		if (oci_blob_writer_resume(x->rs->base.cache->blob_dir, x->d->digest, x->d->size, &x->w, &x->werr) < 0)
			return 0;
	}
	if (oci_blob_writer_write(x->w, data, len, &x->werr) < 0)
		return 0;
	__atomic_store_n(&x->got, oci_blob_writer_written(x->w), __ATOMIC_RELAXED);
	return len;
}

/* At the end of a blob response's head: a Content-Length other than what the descriptor leaves
 * to fetch is refused there, before a byte is written (a server announcing more than it sends
 * would otherwise hold the transfer until the low-speed timeout). */
static size_t dl_header(char *data, size_t size, size_t n, void *ud)
{
	struct dl *x = ud;
	size_t len = size * n;
	if (len > 2 || (len > 0 && data[0] != '\r' && data[0] != '\n'))
		return len;
	long status = 0;
	curl_off_t announced = -1;
	curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(x->h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &announced);
	if ((status != 200 && status != 206) || announced < 0)
		return len;
	int64_t want = status == 206 ? x->d->size - x->range_from : x->d->size;
	if ((int64_t)announced == want)
		return len;
	err_set(&x->werr, EBADMSG, "the server announces %lld bytes (Content-Length)%s where the descriptor leaves %lld",
	        (long long)announced, status == 206 ? " from the range asked" : "", (long long)want);
	return 0;
}

static int dl_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	const struct dl *x = ud;
	return __atomic_load_n(x->stop, __ATOMIC_RELAXED) ? 1 : 0;
}

static int dl_start(struct dl *x, struct err **err)
{
	struct registry *reg = x->rs->reg;
	_cleanup_free_ char *auth = NULL;
	if (registry_auth_header(reg, x->rs->scope, &auth, err) < 0)
		return -1;
	/* What an earlier run (or attempt) got of this blob is kept and continued. */
	if (x->w == NULL &&
	    oci_blob_writer_resume(x->rs->base.cache->blob_dir, x->d->digest, x->d->size, &x->w, err) < 0)
		return -1;
	if (x->h == NULL)
		x->h = registry_easy_new(reg);
	else {
		curl_easy_reset(x->h);
		curl_easy_cleanup(x->h);
		x->h = registry_easy_new(reg);
	}
	curl_slist_free_all(x->hdrs);
	x->hdrs = NULL;
	if (auth)
		x->hdrs = curl_slist_append(x->hdrs, auth);
	x->range_from = oci_blob_writer_written(x->w);
	x->restart = false;
	x->errbody.len = 0;
	if (x->range_from > 0) {
		char range[64];
		snprintf(range, sizeof(range), "Range: bytes=%lld-", (long long)x->range_from);
		x->hdrs = curl_slist_append(x->hdrs, range);
		log_debug("blob %s: resuming at byte %lld", x->d->digest, (long long)x->range_from);
	}
	_cleanup_free_ char *path = xasprintf("/v2/%s/blobs/%s", x->rs->base.ref.repository, x->d->digest);
	_cleanup_free_ char *url = registry_url(reg, path);
	curl_easy_setopt(x->h, CURLOPT_URL, url);
	curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, x->hdrs);
	curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, dl_write);
	curl_easy_setopt(x->h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(x->h, CURLOPT_HEADERFUNCTION, dl_header);
	curl_easy_setopt(x->h, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(x->h, CURLOPT_PRIVATE, x);
	curl_easy_setopt(x->h, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(x->h, CURLOPT_XFERINFOFUNCTION, dl_progress);
	curl_easy_setopt(x->h, CURLOPT_XFERINFODATA, x);
	curl_easy_setopt(x->h, CURLOPT_NOPROGRESS, 0L);
	x->errbuf[0] = '\0';
	return 0;
}

/* Verifies and files the blob the writer holds: 1; 0 to fetch it again from
 * byte 0 when the bytes that do not match came partly from an earlier
 * download's partial (once per blob); -1 when it is not the blob named. The
 * writer removes a partial that fails, so nothing bad is kept either way. */
static int dl_commit(struct dl *x, const char *how, struct err **err)
{
	struct reg_source *rs = x->rs;
	struct oci_blob_writer *w = steal_pointer(&x->w);
	if (oci_blob_writer_commit(w, NULL, err) < 0) {
		if ((*err)->code == EBADMSG && x->range_from > 0 && !x->partial_dropped) {
			log_debug("blob %s: %s; the bytes kept from an earlier download are dropped, fetching it whole",
			          x->d->digest, (*err)->msg);
			err_free(err);
			x->partial_dropped = true;
			return 0;
		}
		return err_wrap(err, "%s: blob %s", rs->reg->host, x->d->digest);
	}
	char size[32];
	oci_human_size(x->d->size, size);
	oci_progress(rs->base.opts, "blob %.19s: %s %s", x->d->digest, how, size);
	return 1;
}

/* After a transfer ends: 1 done, 0 to retry, -1 failed. */
static int dl_finish(struct dl *x, CURLcode cc, struct err **err)
{
	struct reg_source *rs = x->rs;
	long status = 0;
	curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
	if (x->werr) {
		/* Too much data, or the disk: not something a retry fixes. */
		*err = x->werr;
		x->werr = NULL;
		return err_wrap(err, "blob %s", x->d->digest);
	}
	if (cc == CURLE_OK && (status == 200 || status == 206))
		return dl_commit(x, "downloaded", err);
	x->attempts++;
	if (status == 416 && x->range_from > 0 && x->attempts < REG_MAX_ATTEMPTS) {
		/* The server has nothing after our partial's end (its reply may even
		 * announce a length it never sends): the partial cannot be continued,
		 * so it is dropped and the blob fetched from its first byte. */
		log_debug("blob %s: range from %lld refused (416): starting over", x->d->digest, (long long)x->range_from);
		oci_blob_writer_abort(x->w);
		x->w = NULL;
		return 0;
	}
	if (cc == CURLE_OK && status == 401 && x->attempts < REG_MAX_ATTEMPTS) {
		registry_token_drop(rs->reg, rs->scope);
		return 0;
	}
	bool retry = cc != CURLE_OK || registry_retryable_status(status);
	if (retry && x->attempts < REG_MAX_ATTEMPTS) {
		long ms = 250L << (x->attempts - 1);
		x->not_before = time_monotonic_ms() + (ms > 4000 ? 4000 : ms);
		log_debug("blob %s: %s (attempt %d), retrying", x->d->digest,
		          cc != CURLE_OK ? (x->errbuf[0] ? x->errbuf : curl_easy_strerror(cc)) : "server error",
		          x->attempts);
		if (cc == CURLE_OK) {
			/* An error reply carried no blob bytes; keep what we have. */
		}
		return 0;
	}
	if (cc != CURLE_OK)
		return err_set(err, EHOSTUNREACH, "%s: blob %s: %s (after %d attempts)", rs->reg->host, x->d->digest,
		               x->errbuf[0] ? x->errbuf : curl_easy_strerror(cc), x->attempts);
	struct reg_resp resp = {.status = status, .body = x->errbody};
	_cleanup_free_ char *what = xasprintf("blob %s of %s", x->d->digest, rs->base.ref.repository);
	int r = registry_status_error(rs->reg, what, &resp, err);
	return r;
}

/* The downloads' status line on a terminal (oci_status_thread). */
static size_t download_status(void *ctx, struct oci_status_item *items, size_t n)
{
	const struct dl *dls = ctx;
	size_t finished = 0;
	for (size_t i = 0; i < n; i++) {
		bool done = __atomic_load_n(&dls[i].done, __ATOMIC_RELAXED);
		items[i].digest = dls[i].d->digest;
		items[i].size = dls[i].d->size;
		items[i].done = done ? dls[i].d->size : __atomic_load_n(&dls[i].got, __ATOMIC_RELAXED);
		items[i].active = !done && items[i].done > 0;
		finished += done;
	}
	return finished;
}

/* One blob from start to end on the calling thread: attempts, backoff,
 * resumes; 0 when it is in the cache. */
static int dl_run(struct dl *x, struct err **err)
{
	for (;;) {
		/* The backoff, in slices: a sibling's failure ends it early. */
		for (int64_t wait; (wait = x->not_before - time_monotonic_ms()) > 0 && !__atomic_load_n(x->stop, __ATOMIC_RELAXED);) {
			wait = wait < 100 ? wait : 100;
			struct timespec ts = {.tv_sec = 0, .tv_nsec = wait * 1000000L};
			nanosleep(&ts, NULL);
		}
		if (__atomic_load_n(x->stop, __ATOMIC_RELAXED))
			return err_set(err, ECANCELED, "blob %s: stopped", x->d->digest);
		if (dl_start(x, err) < 0)
			return -1;
		int f;
		if (x->range_from == x->d->size) {
			/* An earlier run got every byte but stopped before filing it:
			 * nothing to ask the server for (a Range from the end is a 416). */
			f = dl_commit(x, "completed from an earlier download:", err);
		} else {
			CURLcode cc = curl_easy_perform(x->h);
			long status = 0;
			curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
			/* A transfer that got to its end is filed even when a sibling
			 * failed meanwhile: otherwise it stays a partial holding the whole blob. */
			bool complete = cc == CURLE_OK && (status == 200 || status == 206);
			if (!complete && __atomic_load_n(x->stop, __ATOMIC_RELAXED))
				return err_set(err, ECANCELED, "blob %s: stopped", x->d->digest);
			f = dl_finish(x, cc, err);
		}
		if (f < 0)
			return -1;
		if (f == 1) {
			__atomic_store_n(&x->done, true, __ATOMIC_RELAXED);
			return 0;
		}
	}
}

/* One download job for oci_parallel_run: each blob runs to its end on a
 * worker thread of its own (it hashes and writes its own bytes, so the cores
 * share the work and one blob's fsync holds up no other). */
static int dl_job(void *ctx, size_t i, struct err **err)
{
	return dl_run(&((struct dl *)ctx)[i], err);
}

static int reg_prepare_blobs(struct oci_source *s, const struct oci_desc *descs, size_t n, struct err **err)
{
	struct reg_source *rs = (struct reg_source *)s;
	struct dl *dls = xcalloc(n ? n : 1, sizeof(*dls));
	int stop = 0; /* set once a blob failed: the others give up */
	size_t todo = 0;
	for (size_t i = 0; i < n; i++) {
		bool dup = false;
		for (size_t j = 0; j < todo; j++)
			dup = dup || strcmp(dls[j].d->digest, descs[i].digest) == 0;
		if (dup || oci_cache_has(s->cache, descs[i].digest, descs[i].size))
			continue;
		if (s->opts->offline) {
			free(dls);
			return err_set(err, ENOENT, "--offline: blob %s is not in the cache", descs[i].digest);
		}
		if (!str_has_prefix(descs[i].digest, "sha256:")) {
			free(dls);
			return err_set(err, ENOTSUP, "blob %s: only sha256 blobs can be pulled", descs[i].digest);
		}
		dls[todo].rs = rs;
		dls[todo].d = &descs[i];
		dls[todo].stop = &stop;
		todo++;
	}
	int parallel = s->opts->parallel > 0 ? s->opts->parallel : 6;
	struct oci_status_thread st;
	bool status = todo && oci_status_wanted(s->opts) &&
	              oci_status_thread_start(&st, s->opts, "pulling", todo, download_status, dls);
	int r = oci_parallel_run(todo, parallel, dl_job, dls, &stop, err);
	if (status)
		oci_status_thread_stop(&st);
	for (size_t i = 0; i < todo; i++) {
		if (dls[i].h)
			curl_easy_cleanup(dls[i].h);
		curl_slist_free_all(dls[i].hdrs);
		/* A failed pull leaves nothing anyone trusts, only the partial
		 * downloads, which the next run continues and verifies. */
		oci_blob_writer_keep(dls[i].w);
		buf_free(&dls[i].errbody);
		err_free(&dls[i].werr);
	}
	free(dls);
	return r;
}

static int reg_open_blob(struct oci_source *s, const struct oci_desc *d, int *fd, struct err **err)
{
	if (!oci_cache_has(s->cache, d->digest, d->size) && reg_prepare_blobs(s, d, 1, err) < 0)
		return -1;
	return oci_cache_open_blob(s->cache, d->digest, fd, err);
}

static void reg_source_free(struct oci_source *s)
{
	struct reg_source *rs = (struct reg_source *)s;
	registry_free(rs->reg);
	free(rs->scope);
	oci_ref_free(&s->ref);
	free(rs);
}

static const struct oci_source_ops reg_source_ops = {
    .blobs_verified = true,
    .get_manifest = reg_get_manifest,
    .prepare_blobs = reg_prepare_blobs,
    .open_blob = reg_open_blob,
    .free = reg_source_free,
};

int oci_registry_source_open(const struct oci_ref *ref, const struct oci_opts *opts, bool insecure,
                             struct oci_cache *cache, struct oci_source **out, struct err **err)
{
	struct reg_source *rs = xcalloc(1, sizeof(*rs));
	if (registry_new(ref->registry, opts, insecure, &rs->reg, err) < 0) {
		free(rs);
		return -1;
	}
	rs->scope = xasprintf("repository:%s:pull", ref->repository);
	rs->base.ops = &reg_source_ops;
	rs->base.cache = cache;
	rs->base.opts = opts;
	*out = &rs->base;
	return 0;
}
