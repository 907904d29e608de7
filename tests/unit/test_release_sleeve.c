/* test_release_sleeve: bld_release_write with a sleeve: its layers first with their digests, its
 * config kept but for Entrypoint, Cmd and labels, diff_ids and history extended, deterministic;
 * a malformed sleeve config or layer is an error naming sources.sleeve. */
#include <fcntl.h>
#include <sys/stat.h>

#include "builder/builder.h"
#include "tests/harness.h"

struct fixture {
	struct oci_cache cache;
	char *eif;
	struct oci_desc layers[2];
	char layer_digest[2][OCI_DIGEST_MAX];
};

/* A cache with two layer blobs (release.c copies them unread, so any bytes do) and an EIF file. */
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
	int fd = open(f->eif, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return false;
	bool ok = write(fd, "not really an EIF", 17) == 17;
	close(fd);
	return ok;
}

static void fixture_free(struct fixture *f)
{
	oci_cache_close(&f->cache);
	free(f->eif);
}

static const char *const LABEL_KEYS[] = {"io.enclaver.pcr0"};
static const char *const LABEL_VALUES[] = {"abcd"};
static struct oci_platform AMD64 = {.os = "linux", .architecture = "amd64"};

/* Writes the release image over `config_text` as the sleeve's config into DIR/name. */
static int write_with(struct test_ctx *t, struct fixture *f, const char *name, const char *config_text,
                      char digest[OCI_DIGEST_MAX], struct err **err)
{
	json_error_t jerr;
	_cleanup_json_ json_t *config = json_loads(config_text, 0, &jerr);
	if (!config)
		return err_set(err, EINVAL, "fixture config: %s", jerr.text);
	struct bld_release_sleeve sleeve = {
	    .ref = "oci:/sleeve:v1",
	    .digest = "sha256:1111111111111111111111111111111111111111111111111111111111111111",
	    .config = config,
	    .layers = f->layers,
	    .n_layers = 2,
	    .cache = &f->cache};
	struct bld_release_spec spec = {.sleeve = &sleeve,
	                                .eif_path = f->eif,
	                                .manifest_data = "version: v1\n",
	                                .manifest_len = 12,
	                                .platform = &AMD64,
	                                .created = 1700000000,
	                                .label_keys = LABEL_KEYS,
	                                .label_values = LABEL_VALUES,
	                                .n_labels = 1};
	_cleanup_free_ char *dir = xasprintf("%s/%s", test_tmpdir(t), name);
	return bld_release_write(dir, "x", &spec, digest, err);
}

/* A JSON blob of the layout in DIR/name. */
static json_t *blob_json(struct test_ctx *t, const char *name, const char *digest)
{
	_cleanup_free_ char *path = xasprintf("%s/%s/blobs/sha256/%s", test_tmpdir(t), name, oci_digest_hex(digest));
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

TEST(sleeve_layers_first_config_kept)
{
	struct fixture f = {0};
	REQUIRE(fixture_make(t, &f));
	struct err *err = NULL;
	char digest[OCI_DIGEST_MAX];
	const char *cfg = SLEEVE_CONFIG(DIFF_IDS, ", \"history\": [{\"created_by\": \"a\"}, {\"created_by\": \"ENV\", "
	                                          "\"empty_layer\": true}, {\"created_by\": \"b\"}]");
	int r = write_with(t, &f, "out", cfg, digest, &err);
	if (r < 0)
		test_fail(t, __FILE__, __LINE__, "%s", err->msg);
	REQUIRE(r == 0);
	_cleanup_json_ json_t *man = blob_json(t, "out", digest);
	REQUIRE(man);
	json_t *layers = json_object_get(man, "layers");
	REQUIRE(json_array_size(layers) == 3);
	for (int i = 0; i < 2; i++) {
		json_t *l = json_array_get(layers, (size_t)i);
		CHECK_STR_EQ(json_string_value(json_object_get(l, "digest")), f.layer_digest[i]);
		CHECK_INT_EQ(json_integer_value(json_object_get(l, "size")), f.layers[i].size);
		/* The blob itself is in the layout, byte for byte. */
		_cleanup_free_ char *path =
		    xasprintf("%s/out/blobs/sha256/%s", test_tmpdir(t), oci_digest_hex(f.layer_digest[i]));
		CHECK(access(path, R_OK) == 0);
	}
	/* Docker's gzip type becomes OCI's; an OCI type stays. */
	CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(layers, 0), "mediaType")), OCI_MT_LAYER_GZIP);
	CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(layers, 1), "mediaType")), OCI_MT_LAYER_ZSTD);
	json_t *ann = json_object_get(man, "annotations");
	CHECK_STR_EQ(json_string_value(json_object_get(ann, "org.opencontainers.image.base.name")), "oci:/sleeve:v1");
	CHECK_STR_EQ(json_string_value(json_object_get(ann, "io.enclaver.pcr0")), "abcd");

	_cleanup_json_ json_t *config =
	    blob_json(t, "out", json_string_value(json_object_get(json_object_get(man, "config"), "digest")));
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
	CHECK_STR_EQ(json_string_value(json_array_get(ids, 2)),
	             json_string_value(json_object_get(json_array_get(layers, 2), "digest")));
	json_t *hist = json_object_get(config, "history");
	REQUIRE(json_array_size(hist) == 4);
	CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(hist, 1), "created_by")), "ENV");

	/* The same inputs elsewhere: the same digest. */
	char again[OCI_DIGEST_MAX];
	REQUIRE(write_with(t, &f, "again", cfg, again, &err) == 0);
	CHECK_STR_EQ(again, digest);
	fixture_free(&f);
}

TEST(sleeve_without_history_or_config)
{
	struct fixture f = {0};
	REQUIRE(fixture_make(t, &f));
	struct err *err = NULL;
	char digest[OCI_DIGEST_MAX];
	const char *cfg = "{\"architecture\": \"amd64\", \"os\": \"linux\", \"config\": null, "
	                  "\"rootfs\": {\"type\": \"layers\", \"diff_ids\": " DIFF_IDS "}}";
	REQUIRE(write_with(t, &f, "out", cfg, digest, &err) == 0);
	_cleanup_json_ json_t *man = blob_json(t, "out", digest);
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
	char digest[OCI_DIGEST_MAX];
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
		CHECK(write_with(t, &f, name, cases[i].config, digest, &err) < 0);
		CHECK_ERR_CONTAINS(err, "sources.sleeve");
		CHECK_ERR_CONTAINS(err, cases[i].needle);
		err_free(&err);
	}
	/* A layer type with no OCI twin, and a blob missing from the cache. */
	struct err *err = NULL;
	f.layers[1].media_type = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
	CHECK(write_with(t, &f, "foreign", SLEEVE_CONFIG(DIFF_IDS, ""), digest, &err) < 0);
	CHECK_ERR_CONTAINS(err, "sources.sleeve oci:/sleeve:v1: layer 2");
	CHECK_ERR_CONTAINS(err, "no OCI equivalent");
	err_free(&err);
	f.layers[1].media_type = OCI_MT_LAYER;
	f.layers[1].digest = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
	CHECK(write_with(t, &f, "missing", SLEEVE_CONFIG(DIFF_IDS, ""), digest, &err) < 0);
	CHECK_ERR_CONTAINS(err, "sources.sleeve oci:/sleeve:v1: layer 2");
	err_free(&err);
	fixture_free(&f);
}
