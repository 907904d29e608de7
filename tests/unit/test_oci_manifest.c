/* test_oci_manifest: digests (NIST vectors), manifest and index parsing for
 * both OCI and Docker schema 2, platform selection, and bad documents. */
#include "oci/oci.h"
#include "tests/harness.h"

#define EMPTY_SHA256 "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define ABC_SHA256   "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define D(c)                                                                                                           \
	"sha256:" c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c  \
	    c c c c c c c c c c c c c c

TEST(digest_vectors)
{
	char out[OCI_DIGEST_MAX];
	oci_digest_buf("", 0, out);
	CHECK_STR_EQ(out, EMPTY_SHA256);
	oci_digest_buf("abc", 3, out);
	CHECK_STR_EQ(out, ABC_SHA256);
	/* Streaming in pieces gives the same as one call. */
	struct oci_digester *d = oci_digester_new("sha256");
	oci_digester_update(d, "a", 1);
	oci_digester_update(d, "bc", 2);
	oci_digester_final(d, out);
	oci_digester_free(d);
	CHECK_STR_EQ(out, ABC_SHA256);
	d = oci_digester_new("sha512");
	oci_digester_update(d, "abc", 3);
	oci_digester_final(d, out);
	oci_digester_free(d);
	CHECK_STR_EQ(out,
	             "sha512:ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c2"
	             "3a3feebbd454d4423643ce80e2a9ac94fa54ca49f");
	CHECK(oci_digester_new("md5") == NULL);

	struct err *e = NULL;
	CHECK_INT_EQ(oci_digest_verify_buf("abc", 3, ABC_SHA256, &e), 0);
	CHECK(oci_digest_verify_buf("abd", 3, ABC_SHA256, &e) < 0);
	CHECK_ERR_CONTAINS(e, "digest mismatch: expected " ABC_SHA256 ", got sha256:");
	err_free(&e);
	CHECK_STR_EQ(oci_digest_hex(ABC_SHA256), ABC_SHA256 + 7);
}

static const char oci_manifest[] =
    "{\"schemaVersion\":2,\"mediaType\":\"" OCI_MT_MANIFEST "\","
    "\"config\":{\"mediaType\":\"" OCI_MT_CONFIG
    "\",\"digest\":\"" D("a") "\",\"size\":123},"
                              "\"layers\":[{\"mediaType\":\"" OCI_MT_LAYER_GZIP
                              "\",\"digest\":\"" D("b") "\",\"size\":1000},"
                                                        "{\"mediaType\":\"" OCI_MT_LAYER_ZSTD
                                                        "\",\"digest\":\"" D("c") "\",\"size\":2000}]}";

TEST(manifest_oci_image)
{
	struct oci_manifest m;
	struct err *e = NULL;
	REQUIRE(oci_manifest_parse(oci_manifest, strlen(oci_manifest), NULL, &m, &e) == 0);
	CHECK_INT_EQ(m.kind, OCI_KIND_IMAGE);
	CHECK_STR_EQ(m.media_type, OCI_MT_MANIFEST);
	CHECK_STR_EQ(m.config.digest, D("a"));
	CHECK_INT_EQ(m.config.size, 123);
	REQUIRE(m.n_layers == 2);
	CHECK_STR_EQ(m.layers[1].media_type, OCI_MT_LAYER_ZSTD);
	CHECK_INT_EQ(m.layers[1].size, 2000);
	oci_manifest_free(&m);
}

TEST(manifest_media_type_from_transport_or_shape)
{
	/* OCI allows mediaType to be absent: the Content-Type tells, else the shape. */
	const char *doc = "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" DOCKER_MT_CONFIG
	                  "\",\"digest\":\"" D("a") "\",\"size\":1},\"layers\":[]}";
	struct oci_manifest m;
	struct err *e = NULL;
	REQUIRE(oci_manifest_parse(doc, strlen(doc), DOCKER_MT_MANIFEST "; charset=utf-8", &m, &e) == 0);
	CHECK_STR_EQ(m.media_type, DOCKER_MT_MANIFEST);
	CHECK_INT_EQ(m.n_layers, 0);
	oci_manifest_free(&m);
	REQUIRE(oci_manifest_parse(doc, strlen(doc), "application/json", &m, &e) == 0);
	CHECK_STR_EQ(m.media_type, OCI_MT_MANIFEST);
	oci_manifest_free(&m);
	const char *idx = "{\"schemaVersion\":2,\"manifests\":[]}";
	REQUIRE(oci_manifest_parse(idx, strlen(idx), NULL, &m, &e) == 0);
	CHECK_INT_EQ(m.kind, OCI_KIND_INDEX);
	CHECK_STR_EQ(m.media_type, OCI_MT_INDEX);
	oci_manifest_free(&m);
}

static const char docker_list[] =
    "{\"schemaVersion\":2,\"mediaType\":\"" DOCKER_MT_LIST "\",\"manifests\":["
    "{\"mediaType\":\"" DOCKER_MT_MANIFEST "\",\"digest\":\"" D(
        "1") "\",\"size\":1,"
             "\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}},"
             "{\"mediaType\":\"" DOCKER_MT_MANIFEST "\",\"digest\":\"" D(
                 "2") "\",\"size\":2,"
                      "\"platform\":{\"os\":\"linux\",\"architecture\":\"arm\",\"variant\":\"v6\"}},"
                      "{\"mediaType\":\"" DOCKER_MT_MANIFEST "\",\"digest\":\"" D(
                          "3") "\",\"size\":3,"
                               "\"platform\":{\"os\":\"linux\",\"architecture\":\"arm\",\"variant\":\"v7\"}},"
                               "{\"mediaType\":\"" DOCKER_MT_MANIFEST "\",\"digest\":\"" D(
                                   "4") "\",\"size\":4,"
                                        "\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\",\"variant\":\"v8\"}}"
                                        ","
                                        "{\"mediaType\":\"" DOCKER_MT_MANIFEST "\",\"digest\":\"" D(
                                            "5") "\",\"size\":5,"
                                                 "\"platform\":{\"os\":\"windows\",\"architecture\":\"amd64\"}}]}";

static const char *select_digest(struct test_ctx *t, const struct oci_manifest *m, const char *platform)
{
	struct oci_platform p;
	struct err *e = NULL;
	if (oci_platform_parse(platform, &p, &e) < 0) {
		test_fail(t, __FILE__, __LINE__, "%s: %s", platform, e->msg);
		err_free(&e);
		return NULL;
	}
	const struct oci_desc *d = NULL;
	int r = oci_index_select(m, &p, &d, &e);
	oci_platform_free(&p);
	if (r < 0) {
		static char msg[512];
		snprintf(msg, sizeof(msg), "error: %s", e->msg);
		err_free(&e);
		return msg;
	}
	return d->digest;
}

TEST(index_platform_selection)
{
	struct oci_manifest m;
	struct err *e = NULL;
	REQUIRE(oci_manifest_parse(docker_list, strlen(docker_list), NULL, &m, &e) == 0);
	CHECK_INT_EQ(m.kind, OCI_KIND_INDEX);
	REQUIRE(m.n_manifests == 5);
	CHECK_STR_EQ(select_digest(t, &m, "linux/amd64"), D("1"));
	CHECK_STR_EQ(select_digest(t, &m, "linux/x86_64"), D("1"));
	CHECK_STR_EQ(select_digest(t, &m, "linux/arm64"), D("4"));
	CHECK_STR_EQ(select_digest(t, &m, "linux/aarch64/v8"), D("4"));
	CHECK_STR_EQ(select_digest(t, &m, "linux/arm/v7"), D("3"));
	CHECK_STR_EQ(select_digest(t, &m, "windows/amd64"), D("5"));
	const char *miss = select_digest(t, &m, "linux/s390x");
	CHECK(miss && strstr(miss, "no image for platform linux/s390x") != NULL);
	CHECK(miss && strstr(miss, "linux/arm/v7") != NULL);
	oci_manifest_free(&m);
}

TEST(platform_parse_and_host)
{
	struct oci_platform p;
	struct err *e = NULL;
	REQUIRE(oci_platform_parse("linux/arm64/v8", &p, &e) == 0);
	char *s = oci_platform_format(&p);
	CHECK_STR_EQ(s, "linux/arm64/v8");
	free(s);
	oci_platform_free(&p);
	static const char *bad[] = {"linux", "/amd64", "linux/", "linux//amd64", "linux/amd64/v8/x", "Linux/amd64", ""};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (oci_platform_parse(bad[i], &p, &e) == 0) {
			test_fail(t, __FILE__, __LINE__, "platform \"%s\" accepted", bad[i]);
			oci_platform_free(&p);
		}
		CHECK(e != NULL);
		err_free(&e);
	}
	oci_platform_host(&p);
	CHECK_STR_EQ(p.os, "linux");
	CHECK(p.architecture != NULL && strcmp(p.architecture, "x86_64") != 0);
	oci_platform_free(&p);
}

TEST(manifest_bad_documents)
{
	static const struct {
		const char *doc, *needle;
	} cases[] = {
	    {"", "the manifest is empty"},
	    {"{\"schemaVersion\":2,", "not valid JSON: line 1"},
	    {"[]", "not a JSON object"},
	    {"{\"schemaVersion\":1,\"fsLayers\":[]}", "schema 1"},
	    {"{\"schemaVersion\":2,\"mediaType\":\"application/vnd.docker.distribution.manifest.v1+prettyjws\"}",
	     "schema 1"},
	    {"{\"schemaVersion\":3,\"manifests\":[]}", "\"schemaVersion\" must be 2"},
	    {"{\"manifests\":[]}", "\"schemaVersion\" must be 2"},
	    {"{\"schemaVersion\":2}", "neither an image manifest nor an index"},
	    {"{\"schemaVersion\":2,\"mediaType\":7}", "\"mediaType\" must be a string"},
	    {"{\"schemaVersion\":2,\"mediaType\":\"text/html\",\"layers\":[]}", "unsupported manifest media type"},
	    {"{\"schemaVersion\":2,\"mediaType\":\"" OCI_MT_MANIFEST "\",\"layers\":[]}", "config: must be an object"},
	    {"{\"schemaVersion\":2,\"mediaType\":\"" OCI_MT_MANIFEST
	     "\",\"config\":{\"mediaType\":\"x\",\"digest\":\"" D("a") "\",\"size\":1}}",
	     "\"layers\" must be an array"},
	    {"{\"schemaVersion\":2,\"mediaType\":\"" OCI_MT_MANIFEST
	     "\",\"config\":{\"mediaType\":\"x\",\"digest\":\"" D(
	         "a") "\",\"size\":1},\"layers\":[{\"mediaType\":\"x\",\"digest\":\"sha256:12\",\"size\":1}]}",
	     "layers[0]: digest \"sha256:12\": sha256 needs 64 hex digits"},
	    {"{\"schemaVersion\":2,\"mediaType\":\"" OCI_MT_MANIFEST
	     "\",\"config\":{\"mediaType\":\"x\",\"digest\":\"" D("a") "\",\"size\":-1},\"layers\":[]}",
	     "config: \"size\" must be a non-negative integer"},
	    {"{\"schemaVersion\":2,\"mediaType\":\"" OCI_MT_MANIFEST
	     "\",\"config\":{\"digest\":\"" D("a") "\",\"size\":1},\"layers\":[]}",
	     "config: missing \"mediaType\""},
	    {"{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"x\",\"digest\":\"" D(
	         "a") "\",\"size\":1,\"platform\":{\"os\":\"linux\"}}]}",
	     "manifests[0].platform: missing \"architecture\""},
	    {"{\"schemaVersion\":2,\"schemaVersion\":2,\"manifests\":[]}", "duplicate"},
	    {"{\"schemaVersion\":2,\"mediaType\":\"" OCI_MT_MANIFEST
	     "\",\"config\":{\"mediaType\":\"x\",\"digest\":\"" D("a") "\",\"size\":16777217},\"layers\":[]}",
	     "16777217 bytes is over the 16777216-byte limit"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct oci_manifest m;
		struct err *e = NULL;
		if (oci_manifest_parse(cases[i].doc, strlen(cases[i].doc), NULL, &m, &e) == 0) {
			test_fail(t, __FILE__, __LINE__, "case %zu accepted", i);
			oci_manifest_free(&m);
			continue;
		}
		CHECK_ERR_CONTAINS(e, cases[i].needle);
		err_free(&e);
	}
	/* Over the size cap: refused before parsing. */
	char *big = xmalloc(OCI_MANIFEST_MAX + 2);
	memset(big, ' ', OCI_MANIFEST_MAX + 1);
	big[OCI_MANIFEST_MAX + 1] = '\0';
	struct oci_manifest m;
	struct err *e = NULL;
	CHECK(oci_manifest_parse(big, OCI_MANIFEST_MAX + 1, NULL, &m, &e) < 0);
	CHECK_ERR_CONTAINS(e, "over the");
	err_free(&e);
	free(big);
}
