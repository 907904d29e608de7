/* layout: OCI image layouts on disk (oci-layout, index.json, blobs/<alg>/<hex>)
 * as a source and as a destination; index.json is replaced atomically. */
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>

#include "oci/internal.h"

#define REF_NAME "org.opencontainers.image.ref.name"

static char *blob_path(const char *dir, const char *digest)
{
	const char *colon = strchr(digest, ':');
	return xasprintf("%s/blobs/%.*s/%s", dir, (int)(colon - digest), digest, colon + 1);
}

/* Every file of a layout read into memory (oci-layout, index.json,
 * manifests) is at most a manifest's size. */
static int read_doc(const char *path, const char *what, char **text, size_t *len, struct err **err)
{
	if (io_read_file(path, OCI_MANIFEST_MAX, text, len, err) < 0)
		return err_wrap(err, "%s", what);
	return 0;
}

static int read_small_json(const char *path, const char *what, json_t **out, struct err **err)
{
	_cleanup_free_ char *text = NULL;
	size_t len;
	if (read_doc(path, what, &text, &len, err) < 0)
		return -1;
	json_error_t je;
	*out = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (*out == NULL)
		return err_set(err, EBADMSG, "%s %s: line %d, column %d: %s", what, path, je.line, je.column, je.text);
	if (!json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		return err_set(err, EBADMSG, "%s %s: not a JSON object", what, path);
	}
	return 0;
}

static int check_layout_marker(const char *dir, struct err **err)
{
	_cleanup_free_ char *path = xasprintf("%s/oci-layout", dir);
	_cleanup_json_ json_t *marker = NULL;
	if (read_small_json(path, "OCI layout marker", &marker, err) < 0)
		return err_wrap(err, "%s is not an OCI image layout", dir);
	json_t *v = json_object_get(marker, "imageLayoutVersion");
	if (!json_is_string(v) || strcmp(json_string_value(v), "1.0.0") != 0)
		return err_set(err, ENOTSUP, "%s: unsupported imageLayoutVersion (want \"1.0.0\")", path);
	return 0;
}

/* Reads a blob of the layout into memory (manifests only), verified. */
static int read_manifest_blob(const char *dir, const char *digest, int64_t size, struct buf *out, struct err **err)
{
	if (oci_digest_check(digest, err) < 0)
		return -1;
	_cleanup_free_ char *path = blob_path(dir, digest);
	_cleanup_free_ char *text = NULL;
	size_t len;
	_cleanup_free_ char *what = xasprintf("manifest %s", digest);
	if (read_doc(path, what, &text, &len, err) < 0)
		return -1;
	if (size >= 0 && (int64_t)len != size)
		return err_set(err, EBADMSG, "manifest %s: size mismatch: index says %lld bytes, file has %zu", digest,
		               (long long)size, len);
	if (oci_digest_verify_buf(text, len, digest, err) < 0)
		return err_wrap(err, "%s", path);
	buf_append(out, text, len);
	return 0;
}

/* ---------------------------------------------------------------- source */
struct layout_source {
	struct oci_source base;
	struct oci_manifest index;
};

static int layout_get_manifest(struct oci_source *s, const char *digest, struct buf *out, char **media_type,
                               struct err **err)
{
	struct layout_source *ls = (struct layout_source *)s;
	const char *dir = s->ref.path;
	if (digest)
		return read_manifest_blob(dir, digest, -1, out, err);
	const struct oci_desc *pick = NULL;
	if (oci_index_pick(&ls->index, "oci", dir, s->ref.local_tag, &pick, err) < 0)
		return -1;
	if (read_manifest_blob(dir, pick->digest, pick->size, out, err) < 0)
		return -1;
	*media_type = xstrdup(pick->media_type);
	return 0;
}

static int layout_open_blob(struct oci_source *s, const struct oci_desc *d, int *fd, struct err **err)
{
	_cleanup_free_ char *path = blob_path(s->ref.path, d->digest);
	_cleanup_close_ int f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return err_sys(err, "blob %s: open %s", d->digest, path);
	struct stat st;
	if (fstat(f, &st) < 0)
		return err_sys(err, "stat %s", path);
	if (!S_ISREG(st.st_mode) || st.st_size != d->size)
		return err_set(err, EBADMSG, "blob %s: %s has %lld bytes, the manifest says %lld", d->digest, path,
		               (long long)st.st_size, (long long)d->size);
	*fd = steal_fd(&f);
	return 0;
}

static void layout_source_free(struct oci_source *s)
{
	struct layout_source *ls = (struct layout_source *)s;
	oci_manifest_free(&ls->index);
	oci_ref_free(&s->ref);
	free(ls);
}

static const struct oci_source_ops layout_source_ops = {
    .get_manifest = layout_get_manifest,
    .open_blob = layout_open_blob,
    .free = layout_source_free,
};

static int load_index(const char *dir, struct oci_manifest *index, struct err **err)
{
	_cleanup_free_ char *path = xasprintf("%s/index.json", dir);
	_cleanup_free_ char *text = NULL;
	size_t len;
	if (read_doc(path, "index", &text, &len, err) < 0)
		return -1;
	if (oci_manifest_parse(text, len, OCI_MT_INDEX, index, err) < 0)
		return err_wrap(err, "%s", path);
	if (index->kind != OCI_KIND_INDEX) {
		oci_manifest_free(index);
		return err_set(err, EBADMSG, "%s: not an image index", path);
	}
	return 0;
}

int oci_layout_source_open(const struct oci_ref *ref, struct oci_source **out, struct err **err)
{
	if (check_layout_marker(ref->path, err) < 0)
		return -1;
	struct layout_source *ls = xcalloc(1, sizeof(*ls));
	if (load_index(ref->path, &ls->index, err) < 0) {
		free(ls);
		return -1;
	}
	ls->base.ops = &layout_source_ops;
	*out = &ls->base;
	return 0;
}

/* ---------------------------------------------------------------- destination */
static int layout_dest_open_dir(const char *dir, struct oci_dest **out, struct err **err);
struct layout_dest {
	struct oci_dest base;
	json_t *index; /* the index.json being built */
	char *blob_dir;
	char *archive;  /* oci-archive: the tar to write from the folder at commit */
	char *work_dir; /* the folder written (ref.path, or a temporary one) */
	/* Until index.json is written the folder is put back as it was, should the copy fail: */
	bool committed;
	bool dir_created;     /* the folder was not there: it goes whole */
	pthread_mutex_t lock; /* put_blob runs on several threads */
	char **added;         /* else what this copy added (files, then folders), removed in reverse */
	size_t n_added;
};

/* Notes a path this copy is about to create, when it is not there yet (the caller holds the
 * lock). Returns whether it was noted. */
static bool note_new(struct layout_dest *ld, const char *path)
{
	struct stat st;
	if (lstat(path, &st) == 0)
		return false;
	ld->added = xrealloc(ld->added, (ld->n_added + 1) * sizeof(*ld->added));
	ld->added[ld->n_added++] = xstrdup(path);
	return true;
}

/* A failed copy: the folder as it was before (a new folder goes whole, an existing layout loses
 * what this copy added and keeps its index.json, which was never written). */
static void layout_roll_back(struct layout_dest *ld)
{
	if (ld->dir_created) {
		io_remove_tree(ld->work_dir);
		return;
	}
	for (size_t i = ld->n_added; i-- > 0;)
		if (unlink(ld->added[i]) < 0 && errno == EISDIR)
			rmdir(ld->added[i]); /* empty by now: what it held came later in the list */
}

static int layout_has_blob(struct oci_dest *d, const struct oci_desc *desc, bool *has, struct err **err)
{
	(void)err;
	_cleanup_free_ char *path = blob_path(((struct layout_dest *)d)->work_dir, desc->digest);
	struct stat st;
	*has = stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == desc->size;
	return 0;
}

/* blobs/<alg> of the layout, made when missing; the blob's path is noted when this copy adds it. */
static int ensure_blob_dir(struct layout_dest *ld, const char *digest, char **out, struct err **err)
{
	const char *colon = strchr(digest, ':');
	_cleanup_free_ char *blobs = xasprintf("%s/blobs", ld->work_dir);
	*out = xasprintf("%s/%.*s", blobs, (int)(colon - digest), digest);
	_cleanup_free_ char *path = blob_path(ld->work_dir, digest);
	pthread_mutex_lock(&ld->lock);
	note_new(ld, blobs);
	note_new(ld, *out);
	int r = oci_mkdir_p(*out, err);
	if (r == 0)
		note_new(ld, path);
	pthread_mutex_unlock(&ld->lock);
	return r;
}

static int layout_put_blob(struct oci_dest *d, const struct oci_desc *desc, int fd, bool verified, int64_t *sent,
                           struct err **err)
{
	(void)sent;
	_cleanup_free_ char *dir = NULL;
	if (ensure_blob_dir((struct layout_dest *)d, desc->digest, &dir, err) < 0)
		return -1;
	if (oci_blob_write_fd(dir, desc->digest, desc->size, fd, verified, err) < 0)
		return err_wrap(err, "blob %s", desc->digest);
	return 0;
}

static int layout_put_manifest(struct oci_dest *d, const char *data, size_t len, const char *media_type,
                               const char *digest, bool child, struct err **err)
{
	struct layout_dest *ld = (struct layout_dest *)d;
	_cleanup_free_ char *dir = NULL;
	if (ensure_blob_dir(ld, digest, &dir, err) < 0)
		return -1;
	if (oci_blob_write_buf(dir, digest, data, len, NULL, err) < 0)
		return -1;
	if (child)
		return 0; /* reached through the index that follows */
	/* One entry per name: a new image under a name replaces the old one. */
	const char *tag = d->ref.local_tag;
	json_t *manifests = json_object_get(ld->index, "manifests");
	for (size_t i = json_array_size(manifests); i-- > 0;) {
		json_t *e = json_array_get(manifests, i);
		json_t *name = json_object_get(json_object_get(e, "annotations"), REF_NAME);
		const char *edigest = json_string_value(json_object_get(e, "digest"));
		bool same = tag ? (json_is_string(name) && strcmp(json_string_value(name), tag) == 0)
		                : (name == NULL && edigest && strcmp(edigest, digest) == 0);
		if (same)
			json_array_remove(manifests, i);
	}
	json_t *entry =
	    json_pack("{s:s, s:s, s:I}", "mediaType", media_type, "digest", digest, "size", (json_int_t)len);
	if (tag)
		json_object_set_new(entry, "annotations", json_pack("{s:s}", REF_NAME, tag));
	json_array_append_new(manifests, entry);
	return 0;
}

static int write_json_file(const char *path, const json_t *doc, struct err **err)
{
	_cleanup_buf_ struct buf text = {0};
	if (json_serde_write(&text, doc, 0, err) < 0)
		return -1;
	return atomic_file_write(path, 0644, text.data, text.len, err);
}

static int layout_commit(struct oci_dest *d, struct err **err)
{
	struct layout_dest *ld = (struct layout_dest *)d;
	_cleanup_free_ char *path = xasprintf("%s/index.json", ld->work_dir);
	if (write_json_file(path, ld->index, err) < 0)
		return -1;
	ld->committed = true;
	if (ld->archive)
		return oci_archive_write_dir(ld->work_dir, ld->archive, err);
	return 0;
}

static void layout_dest_free(struct oci_dest *d)
{
	struct layout_dest *ld = (struct layout_dest *)d;
	json_decref(ld->index);
	free(ld->blob_dir);
	if (ld->archive)
		io_remove_tree(ld->work_dir);
	else if (!ld->committed)
		layout_roll_back(ld);
	for (size_t i = 0; i < ld->n_added; i++)
		free(ld->added[i]);
	free(ld->added);
	pthread_mutex_destroy(&ld->lock);
	free(ld->archive);
	free(ld->work_dir);
	oci_ref_free(&d->ref);
	free(ld);
}

static const struct oci_dest_ops layout_dest_ops = {
    .oci_only = true,
    /* Each blob is its own file: copies (and their fsyncs) overlap. */
    .concurrent = true,
    .has_blob = layout_has_blob,
    .put_blob = layout_put_blob,
    .put_manifest = layout_put_manifest,
    .commit = layout_commit,
    .free = layout_dest_free,
};

int oci_layout_dest_open(const struct oci_ref *ref, struct oci_dest **out, struct err **err)
{
	/* An oci-archive is written as a layout in a folder beside it, then tarred. */
	_cleanup_free_ char *tmp_dir = NULL;
	if (ref->transport == OCI_TRANSPORT_OCI_ARCHIVE) {
		tmp_dir = xasprintf("%s.tmp-XXXXXX", ref->path);
		if (mkdtemp(tmp_dir) == NULL)
			return err_sys(err, "create a folder beside %s", ref->path);
	}
	const char *dir = tmp_dir ? tmp_dir : ref->path;
	int r = layout_dest_open_dir(dir, out, err);
	if (r < 0) {
		if (tmp_dir)
			io_remove_tree(tmp_dir);
		return -1;
	}
	struct layout_dest *ld = (struct layout_dest *)*out;
	ld->archive = tmp_dir ? xstrdup(ref->path) : NULL;
	return 0;
}

static int layout_dest_open_dir(const char *dir, struct oci_dest **out, struct err **err)
{
	struct layout_dest *ld = xcalloc(1, sizeof(*ld));
	ld->base.ops = &layout_dest_ops;
	ld->work_dir = xstrdup(dir);
	pthread_mutex_init(&ld->lock, NULL);
	struct stat st;
	ld->dir_created = stat(dir, &st) < 0 && errno == ENOENT;
	_cleanup_free_ char *blobs = xasprintf("%s/blobs", dir);
	_cleanup_free_ char *sha256 = xasprintf("%s/blobs/sha256", dir);
	_cleanup_free_ char *marker = xasprintf("%s/oci-layout", dir);
	_cleanup_free_ char *index_path = xasprintf("%s/index.json", dir);
	note_new(ld, blobs);
	note_new(ld, sha256);
	int r = oci_mkdir_p(sha256, err);
	if (r < 0) {
		err_wrap(err, "OCI layout %s", dir);
	} else if (access(marker, F_OK) == 0) {
		r = check_layout_marker(dir, err);
	} else {
		note_new(ld, marker);
		_cleanup_json_ json_t *m = json_pack("{s:s}", "imageLayoutVersion", "1.0.0");
		if ((r = write_json_file(marker, m, err)) < 0)
			err_wrap(err, "OCI layout %s", dir);
	}
	if (r == 0 && access(index_path, F_OK) == 0) {
		/* Validate what is there before adding to it. */
		struct oci_manifest parsed;
		if ((r = load_index(dir, &parsed, err)) == 0) {
			ld->index = json_incref(parsed.json);
			oci_manifest_free(&parsed);
		}
	} else if (r == 0) {
		ld->index = json_pack("{s:i, s:s, s:[]}", "schemaVersion", 2, "mediaType", OCI_MT_INDEX, "manifests");
	}
	if (r < 0) {
		layout_dest_free(&ld->base); /* nothing committed: the folder as it was */
		return -1;
	}
	*out = &ld->base;
	return 0;
}
