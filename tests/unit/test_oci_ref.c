/* test_oci_ref: image references: docker's defaults, tags, digests, ports,
 * IPv6 hosts, the local transports, and rejections that say what is wrong. */
#include "oci/oci.h"
#include "tests/harness.h"

#define D64 "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct want {
	const char *in, *registry, *repository, *tag, *digest, *canonical;
};

TEST(ref_docker_defaults_and_forms)
{
	static const struct want cases[] = {
	    {"alpine", "docker.io", "library/alpine", "latest", NULL, "docker://docker.io/library/alpine:latest"},
	    {"docker://alpine:3.19", "docker.io", "library/alpine", "3.19", NULL,
	     "docker://docker.io/library/alpine:3.19"},
	    {"user/app", "docker.io", "user/app", "latest", NULL, "docker://docker.io/user/app:latest"},
	    {"index.docker.io/library/busybox:1", "docker.io", "library/busybox", "1", NULL,
	     "docker://docker.io/library/busybox:1"},
	    {"docker.io/busybox", "docker.io", "library/busybox", "latest", NULL,
	     "docker://docker.io/library/busybox:latest"},
	    {"quay.io/org/sub/app:v1.2_3-x", "quay.io", "org/sub/app", "v1.2_3-x", NULL,
	     "docker://quay.io/org/sub/app:v1.2_3-x"},
	    {"localhost/app", "localhost", "app", "latest", NULL, "docker://localhost/app:latest"},
	    {"localhost:5000/a/b:t", "localhost:5000", "a/b", "t", NULL, "docker://localhost:5000/a/b:t"},
	    {"127.0.0.1:5000/app@" D64, "127.0.0.1:5000", "app", NULL, D64, "docker://127.0.0.1:5000/app@" D64},
	    {"127.0.0.1:5000/app:v1@" D64, "127.0.0.1:5000", "app", "v1", D64, "docker://127.0.0.1:5000/app:v1@" D64},
	    {"[::1]:5000/app:v2", "[::1]:5000", "app", "v2", NULL, "docker://[::1]:5000/app:v2"},
	    {"[fe80::1]/ns/app", "[fe80::1]", "ns/app", "latest", NULL, "docker://[fe80::1]/ns/app:latest"},
	    {"registry.example.com/a.b/c__d/e-f--g", "registry.example.com", "a.b/c__d/e-f--g", "latest", NULL,
	     "docker://registry.example.com/a.b/c__d/e-f--g:latest"},
	    /* One component with a colon and no slash: a tag, as docker reads it. */
	    {"localhost:5000", "docker.io", "library/localhost", "5000", NULL,
	     "docker://docker.io/library/localhost:5000"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct oci_ref r;
		struct err *e = NULL;
		if (oci_ref_parse(cases[i].in, &r, &e) < 0) {
			test_fail(t, __FILE__, __LINE__, "%s: %s", cases[i].in, e->msg);
			err_free(&e);
			continue;
		}
		CHECK_INT_EQ(r.transport, OCI_TRANSPORT_DOCKER);
		CHECK_STR_EQ(r.registry, cases[i].registry);
		CHECK_STR_EQ(r.repository, cases[i].repository);
		if (cases[i].tag)
			CHECK_STR_EQ(r.tag, cases[i].tag);
		else
			CHECK(r.tag == NULL);
		if (cases[i].digest)
			CHECK_STR_EQ(r.digest, cases[i].digest);
		else
			CHECK(r.digest == NULL);
		char *f = oci_ref_format(&r);
		CHECK_STR_EQ(f, cases[i].canonical);
		/* The canonical form parses back to itself. */
		struct oci_ref r2;
		REQUIRE(oci_ref_parse(f, &r2, &e) == 0);
		char *f2 = oci_ref_format(&r2);
		CHECK_STR_EQ(f2, f);
		free(f2);
		free(f);
		oci_ref_free(&r2);
		oci_ref_free(&r);
	}
}

TEST(ref_local_transports)
{
	struct oci_ref r;
	struct err *e = NULL;
	REQUIRE(oci_ref_parse("oci:/tmp/layout", &r, &e) == 0);
	CHECK_INT_EQ(r.transport, OCI_TRANSPORT_OCI);
	CHECK_STR_EQ(r.path, "/tmp/layout");
	CHECK(r.local_tag == NULL);
	oci_ref_free(&r);

	REQUIRE(oci_ref_parse("oci:dir/x:v1.0", &r, &e) == 0);
	CHECK_STR_EQ(r.path, "dir/x");
	CHECK_STR_EQ(r.local_tag, "v1.0");
	char *f = oci_ref_format(&r);
	CHECK_STR_EQ(f, "oci:dir/x:v1.0");
	free(f);
	oci_ref_free(&r);

	REQUIRE(oci_ref_parse("oci-archive:img.tar:latest", &r, &e) == 0);
	CHECK_INT_EQ(r.transport, OCI_TRANSPORT_OCI_ARCHIVE);
	CHECK_STR_EQ(r.path, "img.tar");
	CHECK_STR_EQ(r.local_tag, "latest");
	oci_ref_free(&r);

	REQUIRE(oci_ref_parse("docker-archive:save.tar", &r, &e) == 0);
	CHECK_INT_EQ(r.transport, OCI_TRANSPORT_DOCKER_ARCHIVE);
	CHECK_STR_EQ(r.path, "save.tar");
	CHECK(r.local_tag == NULL);
	CHECK_INT_EQ(r.archive_index, -1);
	oci_ref_free(&r);

	/* The name inside a docker-archive gets docker's defaults, so it can be
	 * matched against RepoTags however they were written. */
	REQUIRE(oci_ref_parse("docker-archive:save.tar:busybox:1.36", &r, &e) == 0);
	CHECK_STR_EQ(r.path, "save.tar");
	CHECK_STR_EQ(r.local_tag, "docker.io/library/busybox:1.36");
	oci_ref_free(&r);

	REQUIRE(oci_ref_parse("docker-archive:save.tar:@2", &r, &e) == 0);
	CHECK_INT_EQ(r.archive_index, 2);
	f = oci_ref_format(&r);
	CHECK_STR_EQ(f, "docker-archive:save.tar:@2");
	free(f);
	oci_ref_free(&r);
}

TEST(ref_rejections_say_what_is_wrong)
{
	static const struct {
		const char *in, *needle;
	} cases[] = {
	    {"", "empty image name"},
	    {"docker://", "empty image name"},
	    {"Alpine", "must be lowercase"},
	    {"docker.io/Library/alpine", "must be lowercase"},
	    {"alpine:", "tag \"\" is invalid"},
	    {"alpine:-x", "tag \"-x\" is invalid"},
	    {"alpine:a/b", "invalid registry port \"a\""},
	    {"alpine:bad tag", "tag \"bad tag\" is invalid"},
	    {"alpine@sha256:abc", "needs 64 hex digits"},
	    {"alpine@md5:d41d8cd98f00b204e9800998ecf8427e", "unsupported algorithm"},
	    {"alpine@sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", "lowercase hex"},
	    {"alpine@", "lacks the algorithm"},
	    {"a//b", "empty path component"},
	    {"a/-b", "must start and end"},
	    {"a/b_", "must start and end"},
	    {"a/b___c", "invalid character or separator"},
	    {"a/b.-c", "invalid character or separator"},
	    {"host:99999/app", "invalid registry port"},
	    {"host:/app", "invalid registry port"},
	    {"ho_st.com/app", "invalid character '_'"},
	    {"[::1/app", "unterminated IPv6"},
	    {"[::g]:5000/app", "invalid IPv6"},
	    {"example.com/", "missing repository name"},
	    {"docker:alpine", "docker://NAME"},
	    {"oci:", "missing path"},
	    {"oci:dir:", "empty tag"},
	    {"oci:dir:bad tag", "invalid image name"},
	    {"docker-archive:x.tar:@z", "not an image index"},
	    {"docker-archive:x.tar:app@" D64, "named by tag, not digest"},
	    {"docker-archive:x.tar:UP", "must be lowercase"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct oci_ref r;
		struct err *e = NULL;
		int rc = oci_ref_parse(cases[i].in, &r, &e);
		if (rc == 0) {
			test_fail(t, __FILE__, __LINE__, "\"%s\" was accepted", cases[i].in);
			oci_ref_free(&r);
			continue;
		}
		CHECK_ERR_CONTAINS(e, cases[i].needle);
		/* Every message quotes the whole input. */
		if (e && strstr(e->msg, "invalid reference \"") == NULL)
			test_fail(t, __FILE__, __LINE__, "\"%s\": message lacks the input: %s", cases[i].in, e->msg);
		err_free(&e);
	}
}

TEST(ref_name_length_limit)
{
	char name[300];
	memset(name, 'a', sizeof(name));
	memcpy(name, "example.com/", 12);
	name[sizeof(name) - 1] = '\0';
	struct oci_ref r;
	struct err *e = NULL;
	CHECK(oci_ref_parse(name, &r, &e) < 0);
	CHECK_ERR_CONTAINS(e, "longer than 255");
	err_free(&e);
	name[200] = '\0';
	REQUIRE(oci_ref_parse(name, &r, &e) == 0);
	oci_ref_free(&r);
}

TEST(tag_grammar)
{
	CHECK(oci_tag_valid("latest"));
	CHECK(oci_tag_valid("_x"));
	CHECK(oci_tag_valid("1.0-rc.1_b"));
	CHECK(!oci_tag_valid(".x"));
	CHECK(!oci_tag_valid(""));
	char long_tag[130];
	memset(long_tag, 'a', 129);
	long_tag[129] = '\0';
	CHECK(!oci_tag_valid(long_tag));
	long_tag[128] = '\0';
	CHECK(oci_tag_valid(long_tag));
}
