/* test_oci_creds: where registry credentials come from: --creds, the auth
 * files in podman/docker order, base64 "auth" entries (every padding), host
 * matching, identity tokens, and malformed files named in the error. */
#include <fcntl.h>
#include <sys/stat.h>

#include "oci/oci.h"
#include "tests/harness.h"

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

/* A clean environment rooted in the test's temp dir. */
static const char *env_setup(struct test_ctx *t)
{
	const char *tmp = test_tmpdir(t);
	char *p = xasprintf("%s/run", tmp);
	mkdir(p, 0755);
	free(p);
	p = xasprintf("%s/run/containers", tmp);
	mkdir(p, 0755);
	free(p);
	p = xasprintf("%s/home", tmp);
	mkdir(p, 0755);
	setenv("HOME", p, 1);
	free(p);
	p = xasprintf("%s/home/.docker", tmp);
	mkdir(p, 0755);
	free(p);
	p = xasprintf("%s/run", tmp);
	setenv("XDG_RUNTIME_DIR", p, 1);
	free(p);
	unsetenv("XDG_CONFIG_HOME");
	unsetenv("REGISTRY_AUTH_FILE");
	unsetenv("DOCKER_CONFIG");
	return tmp;
}

TEST(creds_from_the_command_line)
{
	struct oci_creds c;
	struct err *e = NULL;
	REQUIRE(oci_creds_lookup("r.example", "me:pa:ss", &c, &e) == 0);
	CHECK_STR_EQ(c.username, "me");
	CHECK_STR_EQ(c.password, "pa:ss"); /* only the first colon splits */
	CHECK_STR_EQ(c.source, "--creds");
	oci_creds_free(&c);
	CHECK(oci_creds_lookup("r.example", ":nouser", &c, &e) < 0);
	CHECK_ERR_CONTAINS(e, "--creds: credentials must be USER:PASSWORD");
	err_free(&e);
}

TEST(creds_base64_paddings_and_host_forms)
{
	const char *tmp = env_setup(t);
	char *docker = xasprintf("%s/home/.docker/config.json", tmp);
	static const struct {
		const char *key, *b64, *host, *user, *pass;
	} cases[] = {
	    {"reg.example:5000", "dXNlcjpwYXNz", "reg.example:5000", "user", "pass"},
	    {"https://reg.example/v1/", "YTpiMQ==", "reg.example", "a", "b1"},
	    {"http://reg.example", "YWI6YzE=", "reg.example", "ab", "c1"},
	    {"https://index.docker.io/v1/", "dTpwOndpdGg6Y29sb25z", "docker.io", "u", "p:with:colons"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *json = xasprintf("{\"auths\":{\"other.example\":{\"auth\":\"eDp5\"},\"%s\":{\"auth\":\"%s\"}}}",
		                       cases[i].key, cases[i].b64);
		write_file(docker, json);
		free(json);
		struct oci_creds c;
		struct err *e = NULL;
		if (oci_creds_lookup(cases[i].host, NULL, &c, &e) < 0) {
			test_fail(t, __FILE__, __LINE__, "case %zu: %s", i, e->msg);
			err_free(&e);
			continue;
		}
		CHECK_STR_EQ(c.username, cases[i].user);
		CHECK_STR_EQ(c.password, cases[i].pass);
		CHECK_STR_EQ(c.source, docker);
		oci_creds_free(&c);
	}
	free(docker);
}

TEST(creds_precedence_first_file_wins)
{
	const char *tmp = env_setup(t);
	char *run = xasprintf("%s/run/containers/auth.json", tmp);
	char *docker = xasprintf("%s/home/.docker/config.json", tmp);
	char *custom = xasprintf("%s/custom.json", tmp);
	write_file(docker, "{\"auths\":{\"r.example\":{\"auth\":\"dXNlcjpwYXNz\"}}}");
	write_file(run, "{\"auths\":{\"r.example\":{\"auth\":\"YTpiMQ==\"}}}");
	struct oci_creds c;
	struct err *e = NULL;
	REQUIRE(oci_creds_lookup("r.example", NULL, &c, &e) == 0);
	CHECK_STR_EQ(c.username, "a"); /* XDG_RUNTIME_DIR before ~/.docker */
	CHECK_STR_EQ(c.source, run);
	oci_creds_free(&c);
	/* A file with nothing for this host passes the turn to the next. */
	REQUIRE(oci_creds_lookup("r.example:1", NULL, &c, &e) == 0);
	CHECK(c.username == NULL);
	CHECK(c.source && strstr(c.source, "no credentials (looked in ") != NULL);
	oci_creds_free(&c);
	/* REGISTRY_AUTH_FILE alone, when set. */
	write_file(custom, "{\"auths\":{}}");
	setenv("REGISTRY_AUTH_FILE", custom, 1);
	REQUIRE(oci_creds_lookup("r.example", NULL, &c, &e) == 0);
	CHECK(c.username == NULL);
	CHECK(c.source && strstr(c.source, custom) != NULL && strstr(c.source, run) == NULL);
	oci_creds_free(&c);
	unsetenv("REGISTRY_AUTH_FILE");
	free(run);
	free(docker);
	free(custom);
}

TEST(creds_identity_token)
{
	const char *tmp = env_setup(t);
	char *docker = xasprintf("%s/home/.docker/config.json", tmp);
	write_file(docker, "{\"auths\":{\"r.example\":{\"auth\":\"dXNlcjpwYXNz\",\"identitytoken\":\"tok\"}}}");
	struct oci_creds c;
	struct err *e = NULL;
	REQUIRE(oci_creds_lookup("r.example", NULL, &c, &e) == 0);
	CHECK(c.identity_token);
	CHECK_STR_EQ(c.password, "tok");
	oci_creds_free(&c);
	free(docker);
}

TEST(creds_bad_files_are_named)
{
	const char *tmp = env_setup(t);
	char *docker = xasprintf("%s/home/.docker/config.json", tmp);
	static const struct {
		const char *json, *needle;
	} cases[] = {
	    {"{\"auths\":", "line 1"},
	    {"[]", "not an object"},
	    {"{\"auths\":{\"r.example\":{\"auth\":\"abc\"}}}", "\"auth\" is not valid base64"},
	    {"{\"auths\":{\"r.example\":{\"auth\":\"dTpw=A==\"}}}", "\"auth\" is not valid base64"},
	    {"{\"auths\":{\"r.example\":{\"auth\":\"dTpw\\ncA==\"}}}", "\"auth\" is not valid base64"},
	    {"{\"auths\":{\"r.example\":{\"auth\":\"bm9jb2xvbg==\"}}}", "credentials must be USER:PASSWORD"},
	    {"{\"credsStore\":\"enclaver-no-such-helper\"}", "docker-credential-enclaver-no-such-helper"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		write_file(docker, cases[i].json);
		struct oci_creds c;
		struct err *e = NULL;
		if (oci_creds_lookup("r.example", NULL, &c, &e) == 0) {
			test_fail(t, __FILE__, __LINE__, "case %zu accepted", i);
			oci_creds_free(&c);
			continue;
		}
		CHECK_ERR_CONTAINS(e, cases[i].needle);
		CHECK_ERR_CONTAINS(e, docker);
		err_free(&e);
	}
	free(docker);
}
