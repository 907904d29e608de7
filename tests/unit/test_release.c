/* test_release: bld_release_write and its image put anywhere with oci_put_local_image. The new
 * blobs are written once into the staging folder and nowhere else (no layout of their own); a
 * layout destination hard-links them; the digest is main's for the same inputs (pinned below) and
 * the same whatever the destination; a failed put leaves a layout as it was. With a sleeve: its
 * layers first with their digests (from the cache, never copied into the staging folder), its
 * config kept but for Entrypoint, Cmd and labels, diff_ids and history extended; a malformed
 * sleeve config or layer is an error naming sources.sleeve. */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "builder/builder.h"
#include "tests/harness.h"

struct fixture {
	struct oci_cache cache;
	char *eif;
	char *runtime;
	struct oci_desc layers[2];
	char layer_digest[2][OCI_DIGEST_MAX];
};

static bool file_put(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return false;
	bool ok = write(fd, text, strlen(text)) == (ssize_t)strlen(text);
	close(fd);
	return ok;
}

/* A cache with two layer blobs (release.c copies them unread, so any bytes do), an EIF file and
 * an enclaver-run. */
static bool fixture_make(struct test_ctx *t, struct fixture *f)
{
	const char *dir = test_tmpdir(t);
	_cleanup_free_ char *cache_dir = xasprintf("%s/cache", dir);
	struct err *err = NULL;
	if (oci_cache_open(cache_dir, &f->cache, &err) < 0) {
		err_free(&err);
		return false;
	}
	const char *bytes[] = {"first layer bytes", "second layer bytes"};
	const char *types[] = {DOCKER_MT_LAYER_GZIP, OCI_MT_LAYER_ZSTD};
	for (int i = 0; i < 2; i++) {
		if (oci_cache_put_buf(&f->cache, bytes[i], strlen(bytes[i]), NULL, f->layer_digest[i], &err) < 0) {
			err_free(&err);
			return false;
		}
		f->layers[i] = (struct oci_desc){
		    .media_type = (char *)types[i], .digest = f->layer_digest[i], .size = (int64_t)strlen(bytes[i])};
	}
	f->eif = xasprintf("%s/app.eif", dir);
	f->runtime = xasprintf("%s/enclaver-run", dir);
	return file_put(f->eif, "not really an EIF") && file_put(f->runtime, "a static enclaver-run\n");
}

static void fixture_free(struct fixture *f)
{
	oci_cache_close(&f->cache);
	free(f->eif);
	free(f->runtime);
}

static const char *const LABEL_KEYS[] = {"io.enclaver.pcr0"};
static const char *const LABEL_VALUES[] = {"abcd"};
static struct oci_platform AMD64 = {.os = "linux", .architecture = "amd64"};

/* Writes the release image over `config_text` as the sleeve's config (NULL: no sleeve, with
 * the runtime layer) into the blob folder DIR/name. */
static int write_with(struct test_ctx *t, struct fixture *f, const char *name, const char *config_text,
                      struct bld_release_image *img, struct err **err)
{
	_cleanup_json_ json_t *config = NULL;
	if (config_text) {
		json_error_t jerr;
		config = json_loads(config_text, 0, &jerr);
		if (!config)
			return err_set(err, EINVAL, "fixture config: %s", jerr.text);
	}
	struct bld_release_sleeve sleeve = {
	    .ref = "oci:/sleeve:v1",
	    .digest = "sha256:1111111111111111111111111111111111111111111111111111111111111111",
	    .config = config,
	    .layers = f->layers,
	    .n_layers = 2,
	    .cache = &f->cache};
	struct bld_release_spec spec = {.sleeve = config ? &sleeve : NULL,
	                                .runtime_path = config ? NULL : f->runtime,
	                                .eif_path = f->eif,
	                                .manifest_data = "version: v1\n",
	                                .manifest_len = 12,
	                                .platform = &AMD64,
	                                .created = 1700000000,
	                                .label_keys = LABEL_KEYS,
	                                .label_values = LABEL_VALUES,
	                                .n_labels = 1};
	_cleanup_free_ char *dir = xasprintf("%s/%s", test_tmpdir(t), name);
	if (mkdir(dir, 0755) < 0)
		return err_sys(err, "mkdir %s", dir);
	return bld_release_write(dir, &spec, img, err);
}

/* write_with that must work: its error, if any, is the test's failure. */
static bool write_ok(struct test_ctx *t, struct fixture *f, const char *name, const char *config_text,
                     struct bld_release_image *img)
{
	struct err *err = NULL;
	if (write_with(t, f, name, config_text, img, &err) == 0)
		return true;
	test_fail(t, __FILE__, __LINE__, "%s: %s", name, err->msg);
	err_free(&err);
	return false;
}

/* A JSON blob of the blob folder DIR/name. */
static json_t *blob_json(struct test_ctx *t, const char *name, const char *digest)
{
	_cleanup_free_ char *path = xasprintf("%s/%s/%s", test_tmpdir(t), name, oci_digest_hex(digest));
	return json_load_file(path, 0, NULL);
}

#define SLEEVE_CONFIG(diff_ids, history)                                                                               \
	"{\"architecture\": \"amd64\", \"os\": \"linux\", \"created\": \"2020-01-01T00:00:00Z\", "                     \
	"\"config\": {\"Env\": [\"PATH=/bin\", \"S=1\"], \"WorkingDir\": \"/srv\", \"Cmd\": [\"/bin/sh\"], "           \
	"\"Entrypoint\": [\"/bin/old\"], \"Labels\": {\"keep\": \"me\", \"io.enclaver.pcr0\": \"stale\"}}, "           \
	"\"rootfs\": {\"type\": \"layers\", \"diff_ids\": " diff_ids "}" history "}"
#define DIFF_IDS                                                                                                       \
	"[\"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\", "                               \
	"\"sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"]"

/* The names in a folder, sorted, one a line ("" when it cannot be read). */
static char *folder_names(const char *dir)
{
	struct dirent **list;
	int n = scandir(dir, &list, NULL, alphasort);
	struct buf out = {0};
	for (int i = 0; i < n; i++) {
		if (strcmp(list[i]->d_name, ".") != 0 && strcmp(list[i]->d_name, "..") != 0) {
			buf_append(&out, list[i]->d_name, strlen(list[i]->d_name));
			buf_append(&out, "\n", 1);
		}
		free(list[i]);
	}
	if (n >= 0)
		free(list);
	buf_append(&out, "", 1);
	return (char *)out.data;
}

/* A sleeve config with three history entries (one an empty layer) for its two layers. */
#define FULL_SLEEVE_CONFIG                                                                                             \
	SLEEVE_CONFIG(DIFF_IDS, ", \"history\": [{\"created_by\": \"a\"}, {\"created_by\": \"ENV\", "                  \
	                        "\"empty_layer\": true}, {\"created_by\": \"b\"}]")

TEST(sleeve_layers_first_config_kept)
{
	struct fixture f = {0};
	REQUIRE(fixture_make(t, &f));
	_cleanup_(bld_release_image_free) struct bld_release_image img = {0};
	REQUIRE(write_ok(t, &f, "out", FULL_SLEEVE_CONFIG, &img));
	_cleanup_json_ json_t *man = json_loadb(img.manifest, img.manifest_len, 0, NULL);
	REQUIRE(man);
	char digest[OCI_DIGEST_MAX];
	oci_digest_buf(img.manifest, img.manifest_len, digest);
	CHECK_STR_EQ(img.digest, digest);
	CHECK_INT_EQ(img.n_layers, 3);
	json_t *layers = json_object_get(man, "layers");
	REQUIRE(json_array_size(layers) == 3);
	for (int i = 0; i < 2; i++) {
		json_t *l = json_array_get(layers, (size_t)i);
		CHECK_STR_EQ(json_string_value(json_object_get(l, "digest")), f.layer_digest[i]);
		CHECK_INT_EQ(json_integer_value(json_object_get(l, "size")), f.layers[i].size);
	}
	/* The folder holds the new blobs only (the config and the EIF layer): the sleeve's stay in
	 * the cache, and there is no layout (no oci-layout, no index.json, no manifest file). */
	_cleanup_free_ char *out = xasprintf("%s/out", test_tmpdir(t));
	_cleanup_free_ char *names = folder_names(out);
	const char *config_digest = json_string_value(json_object_get(json_object_get(man, "config"), "digest"));
	const char *eif_layer = json_string_value(json_object_get(json_array_get(layers, 2), "digest"));
	REQUIRE(config_digest && eif_layer);
	_cleanup_free_ char *want =
	    strcmp(oci_digest_hex(config_digest), oci_digest_hex(eif_layer)) < 0
	        ? xasprintf("%s\n%s\n", oci_digest_hex(config_digest), oci_digest_hex(eif_layer))
	        : xasprintf("%s\n%s\n", oci_digest_hex(eif_layer), oci_digest_hex(config_digest));
	CHECK_STR_EQ(names, want);
	/* Docker's gzip type becomes OCI's; an OCI type stays. */
	CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(layers, 0), "mediaType")), OCI_MT_LAYER_GZIP);
	CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(layers, 1), "mediaType")), OCI_MT_LAYER_ZSTD);
	json_t *ann = json_object_get(man, "annotations");
	CHECK_STR_EQ(json_string_value(json_object_get(ann, "org.opencontainers.image.base.name")), "oci:/sleeve:v1");
	CHECK_STR_EQ(json_string_value(json_object_get(ann, "io.enclaver.pcr0")), "abcd");

	_cleanup_json_ json_t *config = blob_json(t, "out", config_digest);
	REQUIRE(config);
	json_t *run = json_object_get(config, "config");
	CHECK(json_object_get(run, "Cmd") == NULL);
	CHECK_INT_EQ(json_array_size(json_object_get(run, "Entrypoint")), 1);
	CHECK_STR_EQ(json_string_value(json_array_get(json_object_get(run, "Entrypoint"), 0)),
	             "/usr/local/bin/enclaver-run");
	CHECK_INT_EQ(json_array_size(json_object_get(run, "Env")), 2);
	CHECK_STR_EQ(json_string_value(json_object_get(run, "WorkingDir")), "/srv");
	json_t *labels = json_object_get(run, "Labels");
	CHECK_STR_EQ(json_string_value(json_object_get(labels, "keep")), "me");
	CHECK_STR_EQ(json_string_value(json_object_get(labels, "io.enclaver.pcr0")), "abcd"); /* ours win */
	CHECK_STR_EQ(json_string_value(json_object_get(config, "created")), "2023-11-14T22:13:20+00:00");
	json_t *ids = json_object_get(json_object_get(config, "rootfs"), "diff_ids");
	REQUIRE(json_array_size(ids) == 3);
	CHECK_STR_EQ(json_string_value(json_array_get(ids, 0)),
	             "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	/* The EIF layer is uncompressed: its diff_id is its digest. */
	CHECK_STR_EQ(json_string_value(json_array_get(ids, 2)), eif_layer);
	json_t *hist = json_object_get(config, "history");
	REQUIRE(json_array_size(hist) == 4);
	CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(hist, 1), "created_by")), "ENV");

	/* The same inputs elsewhere: the same digest. */
	_cleanup_(bld_release_image_free) struct bld_release_image again = {0};
	REQUIRE(write_ok(t, &f, "again", FULL_SLEEVE_CONFIG, &again));
	CHECK_STR_EQ(again.digest, img.digest);
	fixture_free(&f);
}

/* The digests main's layout writer (c68ed39) gave for these inputs: writing the blobs once
 * changed where they go, not a byte of the image. */
TEST(digests_as_before)
{
	struct fixture f = {0};
	REQUIRE(fixture_make(t, &f));
	_cleanup_(bld_release_image_free) struct bld_release_image sleeved = {0}, bare = {0};
	REQUIRE(write_ok(t, &f, "sleeved", FULL_SLEEVE_CONFIG, &sleeved));
	CHECK_STR_EQ(sleeved.digest, "sha256:03ddc198a4b0799392eb1e5193d36742d5e0d2d62bc13a8cc4fd723654f73693");
	REQUIRE(write_ok(t, &f, "bare", NULL, &bare));
	CHECK_STR_EQ(bare.digest, "sha256:645324256681ad44b61030cac329d1f2c63e49629061d0d724e8faa069524e84");
	CHECK_INT_EQ(bare.n_layers, 2);
	fixture_free(&f);
}

/* The inode of a file, 0 when it cannot be read. */
static ino_t inode_of(const char *path, nlink_t *links)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return 0;
	if (links)
		*links = st.st_nlink;
	return st.st_ino;
}

/* Put into an OCI layout: every new blob is the staged file itself (a hard link, nothing
 * copied), the sleeve's are the cache's; each output kind holds the same manifest digest. */
TEST(put_links_the_written_blobs)
{
	struct fixture f = {0};
	REQUIRE(fixture_make(t, &f));
	struct err *err = NULL;
	_cleanup_(bld_release_image_free) struct bld_release_image img = {0};
	REQUIRE(write_ok(t, &f, "staged", FULL_SLEEVE_CONFIG, &img));
	const char *dir = test_tmpdir(t);
	_cleanup_free_ char *staged = xasprintf("%s/staged", dir);
	struct oci_opts opts = {.cache_dir = f.cache.dir};
	_cleanup_free_ char *layout = xasprintf("oci:%s/layout:rel", dir);
	struct oci_copy_result res;
	int r = oci_put_local_image(layout, &opts, &f.cache, staged, img.manifest, img.manifest_len, OCI_MT_MANIFEST,
	                            &res, &err);
	if (r < 0)
		test_fail(t, __FILE__, __LINE__, "%s", err->msg);
	REQUIRE(r == 0);
	CHECK_STR_EQ(res.manifest_digest, img.digest);
	CHECK_INT_EQ(res.blobs_sent, 4);
	oci_copy_result_free(&res);
	_cleanup_json_ json_t *man = json_loadb(img.manifest, img.manifest_len, 0, NULL);
	json_t *layers = json_object_get(man, "layers");
	const char *config_digest = json_string_value(json_object_get(json_object_get(man, "config"), "digest"));
	const char *eif_layer = json_string_value(json_object_get(json_array_get(layers, 2), "digest"));
	const char *news[] = {config_digest, eif_layer};
	for (size_t i = 0; i < 2; i++) {
		_cleanup_free_ char *from = xasprintf("%s/%s", staged, oci_digest_hex(news[i]));
		_cleanup_free_ char *in = xasprintf("%s/layout/blobs/sha256/%s", dir, oci_digest_hex(news[i]));
		nlink_t links = 0;
		CHECK(inode_of(in, &links) != 0 && inode_of(in, NULL) == inode_of(from, NULL));
		CHECK_INT_EQ(links, 2);
	}
	for (size_t i = 0; i < 2; i++) {
		_cleanup_free_ char *cached = oci_cache_blob_path(&f.cache, f.layer_digest[i]);
		_cleanup_free_ char *in =
		    xasprintf("%s/layout/blobs/sha256/%s", dir, oci_digest_hex(f.layer_digest[i]));
		CHECK(inode_of(in, NULL) != 0 && inode_of(in, NULL) == inode_of(cached, NULL));
	}
	/* The layout reads back as the same image, and the archives hold the same digest. */
	_cleanup_free_ char *copy = xasprintf("oci:%s/copy", dir);
	REQUIRE(oci_copy(layout, copy, &opts, &res, &err) == 0);
	CHECK_STR_EQ(res.manifest_digest, img.digest);
	oci_copy_result_free(&res);
	/* A docker-archive unpacks every layer to check it against diff_ids: the image without the
	 * fixture's sleeve (whose layers are not real tars). */
	_cleanup_(bld_release_image_free) struct bld_release_image bare = {0};
	REQUIRE(write_ok(t, &f, "bare", NULL, &bare));
	_cleanup_free_ char *bare_dir = xasprintf("%s/bare", dir);
	_cleanup_free_ char *oa = xasprintf("oci-archive:%s/rel.tar:rel", dir);
	_cleanup_free_ char *da = xasprintf("docker-archive:%s/rel-docker.tar:rel:v1", dir);
	const char *archives[] = {oa, da};
	for (size_t i = 0; i < 2; i++) {
		r = oci_put_local_image(archives[i], &opts, &f.cache, bare_dir, bare.manifest, bare.manifest_len,
		                        OCI_MT_MANIFEST, &res, &err);
		if (r < 0)
			test_fail(t, __FILE__, __LINE__, "%s: %s", archives[i], err->msg);
		else
			CHECK_STR_EQ(res.manifest_digest, bare.digest);
		oci_copy_result_free(&res);
		err_free(&err);
	}
	fixture_free(&f);
}

/* A put that fails midway leaves an existing layout byte for byte as it was. The failure: a
 * folder where the EIF layer's blob would go (known beforehand: the image is deterministic). */
TEST(put_failure_rolls_back)
{
	struct fixture f = {0};
	REQUIRE(fixture_make(t, &f));
	struct err *err = NULL;
	_cleanup_(bld_release_image_free) struct bld_release_image img = {0};
	REQUIRE(write_ok(t, &f, "staged", NULL, &img));
	const char *dir = test_tmpdir(t);
	_cleanup_free_ char *staged = xasprintf("%s/staged", dir);
	struct oci_opts opts = {.cache_dir = f.cache.dir};
	_cleanup_json_ json_t *man = json_loadb(img.manifest, img.manifest_len, 0, NULL);
	const char *eif_layer =
	    json_string_value(json_object_get(json_array_get(json_object_get(man, "layers"), 1), "digest"));
	REQUIRE(eif_layer);
	/* An existing layout holding another image (made in memory). */
	const char *config = "{\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}";
	char config_digest[OCI_DIGEST_MAX], old_digest[OCI_DIGEST_MAX];
	oci_digest_buf(config, strlen(config), config_digest);
	_cleanup_free_ char *old_manifest =
	    xasprintf("{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":{\"mediaType\":\"%s\",\"digest\":\"%s\","
	              "\"size\":%zu},\"layers\":[]}",
	              OCI_MT_MANIFEST, OCI_MT_CONFIG, config_digest, strlen(config));
	struct oci_blob blobs[] = {{config, strlen(config)}};
	_cleanup_free_ char *out = xasprintf("%s/out", dir);
	_cleanup_free_ char *old_ref = xasprintf("oci:%s:old", out);
	REQUIRE(oci_put_image(old_ref, &opts, blobs, 1, old_manifest, strlen(old_manifest), OCI_MT_MANIFEST, old_digest,
	                      &err) == 0);
	_cleanup_free_ char *blob_dir = xasprintf("%s/blobs/sha256", out);
	_cleanup_free_ char *trap = xasprintf("%s/%s", blob_dir, oci_digest_hex(eif_layer));
	REQUIRE(mkdir(trap, 0755) == 0);
	_cleanup_free_ char *before = folder_names(blob_dir);
	_cleanup_free_ char *index_path = xasprintf("%s/index.json", out);
	_cleanup_free_ char *index_before = NULL, *index_after = NULL;
	size_t len;
	REQUIRE(io_read_file(index_path, 1 << 20, &index_before, &len, &err) == 0);
	_cleanup_free_ char *new_ref = xasprintf("oci:%s:new", out);
	struct oci_copy_result res;
	CHECK(oci_put_local_image(new_ref, &opts, &f.cache, staged, img.manifest, img.manifest_len, OCI_MT_MANIFEST,
	                          &res, &err) < 0);
	CHECK_ERR_CONTAINS(err, eif_layer);
	err_free(&err);
	_cleanup_free_ char *after = folder_names(blob_dir);
	CHECK_STR_EQ(after, before);
	REQUIRE(io_read_file(index_path, 1 << 20, &index_after, &len, &err) == 0);
	CHECK_STR_EQ(index_after, index_before);
	fixture_free(&f);
}

TEST(sleeve_without_history_or_config)
{
	struct fixture f = {0};
	REQUIRE(fixture_make(t, &f));
	const char *cfg = "{\"architecture\": \"amd64\", \"os\": \"linux\", \"config\": null, "
	                  "\"rootfs\": {\"type\": \"layers\", \"diff_ids\": " DIFF_IDS "}}";
	_cleanup_(bld_release_image_free) struct bld_release_image img = {0};
	REQUIRE(write_ok(t, &f, "out", cfg, &img));
	_cleanup_json_ json_t *man = json_loadb(img.manifest, img.manifest_len, 0, NULL);
	REQUIRE(man);
	_cleanup_json_ json_t *config =
	    blob_json(t, "out", json_string_value(json_object_get(json_object_get(man, "config"), "digest")));
	REQUIRE(config);
	/* One history entry per layer, so history and diff_ids still agree. */
	CHECK_INT_EQ(json_array_size(json_object_get(config, "history")), 3);
	CHECK_STR_EQ(
	    json_string_value(json_array_get(json_object_get(json_object_get(config, "config"), "Entrypoint"), 0)),
	    "/usr/local/bin/enclaver-run");
	fixture_free(&f);
}

TEST(sleeve_bad_input)
{
	struct fixture f = {0};
	REQUIRE(fixture_make(t, &f));
	struct {
		const char *config, *needle;
	} cases[] = {
	    {SLEEVE_CONFIG("[\"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"]", ""),
	     "diff_ids has 1 entries for 2 layers"},
	    {SLEEVE_CONFIG("\"nope\"", ""), "diff_ids has 0 entries for 2 layers"},
	    {SLEEVE_CONFIG("[\"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\", 7]", ""),
	     "diff_ids[1] is not a digest"},
	    {SLEEVE_CONFIG(DIFF_IDS, ", \"history\": {}"), "history is not an array"},
	    {"{\"os\": \"linux\"}", "diff_ids"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct err *err = NULL;
		_cleanup_free_ char *name = xasprintf("bad%zu", i);
		_cleanup_(bld_release_image_free) struct bld_release_image img = {0};
		CHECK(write_with(t, &f, name, cases[i].config, &img, &err) < 0);
		CHECK_ERR_CONTAINS(err, "sources.sleeve");
		CHECK_ERR_CONTAINS(err, cases[i].needle);
		err_free(&err);
	}
	/* A layer type with no OCI twin, and a blob missing from the cache. */
	struct err *err = NULL;
	_cleanup_(bld_release_image_free) struct bld_release_image img = {0};
	f.layers[1].media_type = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
	CHECK(write_with(t, &f, "foreign", SLEEVE_CONFIG(DIFF_IDS, ""), &img, &err) < 0);
	CHECK_ERR_CONTAINS(err, "sources.sleeve oci:/sleeve:v1: layer 2");
	CHECK_ERR_CONTAINS(err, "no OCI equivalent");
	err_free(&err);
	f.layers[1].media_type = OCI_MT_LAYER;
	f.layers[1].digest = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
	CHECK(write_with(t, &f, "missing", SLEEVE_CONFIG(DIFF_IDS, ""), &img, &err) < 0);
	CHECK_ERR_CONTAINS(err, "sources.sleeve oci:/sleeve:v1: layer 2");
	CHECK_ERR_CONTAINS(err, "not in the cache");
	err_free(&err);
	fixture_free(&f);
}
