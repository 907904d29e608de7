/* test_oci_registries: registries.conf (containers-registries.conf v2):
 * what a good file says, which registry a name falls under, where a pull
 * goes, and bad input refused with the file and line named. */
#include <stdlib.h>
#include <sys/stat.h>

#include "oci/oci.h"
#include "tests/harness.h"

static int parse(const char *text, struct oci_registries *c, struct err **e)
{
	return oci_registries_parse("r.conf", text, strlen(text), c, e);
}

TEST(registries_good_file)
{
	const char *text = "# comment\n"
	                   "unqualified-search-registries = [\"quay.io\", # inline comment\n"
	                   "  'docker.io',\n"
	                   "]\n"
	                   "short-name-mode = \"enforcing\"\n"
	                   "\n"
	                   "[[registry]]\n"
	                   "prefix = \"example.com/team\"\n"
	                   "location = \"mirror.internal:5000/team\"  # moved\n"
	                   "insecure = true\n"
	                   "[[registry.mirror]]\n"
	                   "location = \"m1.internal/team\"\n"
	                   "[[registry.mirror]]\n"
	                   "location = \"m2.internal/team\"\n"
	                   "pull-from-mirror = \"digest-only\"\n"
	                   "insecure = true\n"
	                   "\n"
	                   "[[registry]]\n"
	                   "location = \"blocked.example.com\"\n"
	                   "blocked = true\n"
	                   "[[registry]]\n"
	                   "prefix = \"*.corp.example\"\n"
	                   "insecure = true\n"
	                   "[aliases]\n"
	                   "\"app\" = \"example.com/team/app\"\n";
	struct oci_registries c;
	struct err *e = NULL;
	REQUIRE(parse(text, &c, &e) == 0);
	CHECK_INT_EQ(c.n_search, 2);
	CHECK_STR_EQ(c.search[0], "quay.io");
	CHECK_STR_EQ(c.search[1], "docker.io");
	REQUIRE(c.n_regs == 3);
	CHECK_STR_EQ(c.regs[0].location, "mirror.internal:5000/team");
	CHECK(c.regs[0].insecure && !c.regs[0].blocked);
	CHECK_INT_EQ(c.regs[0].n_mirrors, 2);
	CHECK_INT_EQ(c.regs[0].mirrors[1].pull_from, OCI_MIRROR_DIGEST_ONLY);
	CHECK_STR_EQ(c.regs[1].prefix, "blocked.example.com"); /* defaults to the location */
	CHECK(c.regs[2].location == NULL);

	/* Longest prefix, whole components only; wildcards match subdomains. */
	CHECK(oci_registries_find(&c, "example.com/team/app:v1", NULL) == &c.regs[0]);
	CHECK(oci_registries_find(&c, "example.com/teams/app:v1", NULL) == NULL);
	CHECK(oci_registries_find(&c, "blocked.example.com:5000/app", NULL) == NULL);
	CHECK(oci_registries_find(&c, "a.b.corp.example/x/y", NULL) == &c.regs[2]);
	CHECK(oci_registries_find(&c, "corp.example/x", NULL) == NULL);
	CHECK(oci_registries_insecure(&c, "registry.corp.example/x:1"));
	CHECK(!oci_registries_insecure(&c, "docker.io/library/alpine:latest"));

	/* A tag pull: the digest-only mirror is left out; then the location. */
	struct oci_endpoint *ep;
	size_t n;
	REQUIRE(oci_registries_endpoints(&c, "example.com/team/app:v1", false, &ep, &n, &e) == 0);
	REQUIRE(n == 2);
	CHECK_STR_EQ(ep[0].name, "m1.internal/team/app:v1");
	CHECK(ep[0].mirror && !ep[0].insecure);
	CHECK_STR_EQ(ep[1].name, "mirror.internal:5000/team/app:v1");
	CHECK(!ep[1].mirror && ep[1].insecure);
	oci_endpoints_free(ep, n);
	REQUIRE(oci_registries_endpoints(&c, "example.com/team/app@sha256:00", true, &ep, &n, &e) == 0);
	REQUIRE(n == 3);
	CHECK_STR_EQ(ep[1].name, "m2.internal/team/app@sha256:00");
	CHECK(ep[1].insecure);
	oci_endpoints_free(ep, n);
	/* Names no table covers go where they say; wildcards do not move them. */
	REQUIRE(oci_registries_endpoints(&c, "a.corp.example/x:1", false, &ep, &n, &e) == 0);
	REQUIRE(n == 1);
	CHECK_STR_EQ(ep[0].name, "a.corp.example/x:1");
	oci_endpoints_free(ep, n);
	CHECK(oci_registries_endpoints(&c, "blocked.example.com/app:v1", false, &ep, &n, &e) < 0);
	CHECK_ERR_CONTAINS(e, "blocked.example.com/app:v1 is blocked by r.conf");
	err_free(&e);
	oci_registries_free(&c);
}

TEST(registries_empty_file)
{
	struct oci_registries c;
	struct err *e = NULL;
	REQUIRE(parse("", &c, &e) == 0);
	CHECK_INT_EQ(c.n_search + c.n_regs, 0);
	oci_registries_free(&c);
}

TEST(registries_bad_input_names_file_and_line)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
	    {"[[registry]]\nlocation = \"a\"\nfoo = true\n", "r.conf:3: unknown registry setting \"foo\""},
	    {"\n[registries.search]\nregistries = []\n", "r.conf:2: version 1 tables are not supported"},
	    {"[[registry]]\nlocation = \"a\n", "r.conf:2: unterminated string"},
	    {"[[registry]]\nlocation = \"a\"\ninsecure = \"yes\"\n", "r.conf:3: insecure must be true or false"},
	    {"[[registry]]\nlocation = \"a\"\nlocation = \"b\"\n", "r.conf:3: a key given twice in one table"},
	    {"[[registry.mirror]]\nlocation = \"a\"\n", "r.conf:1: [[registry.mirror]] before any [[registry]]"},
	    {"\n\n[[registry]]\ninsecure = true\n", "r.conf:3: [[registry]] needs a prefix or a location"},
	    {"[[registry]]\nlocation = \"a\"\n[[registry]]\nprefix = \"a\"\nlocation = \"b\"\n",
	     "r.conf:3: prefix \"a\" is already configured at line 1"},
	    {"[[registry]]\nprefix = \"*.a.com/x\"\n", "a wildcard prefix is a host only"},
	    {"[[registry]]\nprefix = \"a.*.com\"\n", "'*' only as a leading"},
	    {"= 3\n", "r.conf:1: expected a key, a [table] or a comment, not ="},
	    {"unqualified-search-registries = [\"a\", 3]\n", "r.conf:1: arrays here hold only strings"},
	    {"unqualified-search-registries = [\"a/b\"]\n", "\"a/b\" is not a host[:port]"},
	    {"unqualified-search-registries = [\"a\"\n", "r.conf:2: expected , or ] in an array"},
	    {"unqualified-search-registries = \"a\"\n", "must be an array of strings"},
	    {"[[registry]]\nlocation = \"a\" \"b\"\n", "r.conf:2: unexpected text after the value"},
	    {"[[registry]]\nlocation = \"a\"\n[[registry.mirror]]\npull-from-mirror = \"often\"\n",
	     "r.conf:4: pull-from-mirror must be all, digest-only or tag-only"},
	    {"[[registry]]\nlocation = \"a\"\n[[registry.mirror]]\ninsecure = true\n", "a mirror of a has no location"},
	    {"[[registry]]\nlocation = \"a\"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = "
	     "\"m\"\npull-from-mirror = \"tag-only\"\n",
	     "cannot both be set"},
	    {"[table]\n", "r.conf:1: unknown table [table]"},
	    {"[[registry]\n", "r.conf:1: unterminated table header"},
	    {"speed = fast\n", "r.conf:1: expected a string, true/false or an array, not fast"},
	    {"speed =\n", "r.conf:1: a key without a value"},
	    {"mode \"x\"\n", "r.conf:1: expected = after mode"},
	    {"[[registry]]\nlocation = \"a\\q\"\n", "r.conf:2: unsupported escape \\q"},
	    {"colour = true\n", "r.conf:1: unknown setting \"colour\""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct oci_registries c;
		struct err *e = NULL;
		CHECK(parse(cases[i].text, &c, &e) < 0);
		CHECK_ERR_CONTAINS(e, cases[i].want);
		err_free(&e);
	}
	/* A NUL byte: not a text file. */
	struct oci_registries c;
	struct err *e = NULL;
	CHECK(oci_registries_parse("r.conf", "a = true\n\0", 10, &c, &e) < 0);
	CHECK_ERR_CONTAINS(e, "r.conf: not a text file");
	err_free(&e);
}

TEST(registries_load_precedence)
{
	const char *dir = test_tmpdir(t);
	char path[512], user[512];
	snprintf(path, sizeof(path), "%s/env.conf", dir);
	FILE *f = fopen(path, "w");
	REQUIRE(f);
	fputs("unqualified-search-registries = [\"env.example\"]\n", f);
	fclose(f);
	snprintf(user, sizeof(user), "%s/containers", dir);
	REQUIRE(mkdir(user, 0755) == 0);
	snprintf(user, sizeof(user), "%s/containers/registries.conf", dir);
	f = fopen(user, "w");
	REQUIRE(f);
	fputs("unqualified-search-registries = [\"user.example\"]\n", f);
	fclose(f);
	setenv("XDG_CONFIG_HOME", dir, 1);
	setenv("CONTAINERS_REGISTRIES_CONF", path, 1);
	struct oci_registries c;
	struct err *e = NULL;
	REQUIRE(oci_registries_load(&c, &e) == 0);
	REQUIRE(c.n_search == 1);
	CHECK_STR_EQ(c.search[0], "env.example");
	oci_registries_free(&c);
	unsetenv("CONTAINERS_REGISTRIES_CONF");
	REQUIRE(oci_registries_load(&c, &e) == 0);
	REQUIRE(c.n_search == 1);
	CHECK_STR_EQ(c.search[0], "user.example");
	CHECK_STR_EQ(c.path, user);
	oci_registries_free(&c);
	setenv("CONTAINERS_REGISTRIES_CONF", "/nonexistent/registries.conf", 1);
	CHECK(oci_registries_load(&c, &e) < 0);
	CHECK_ERR_CONTAINS(e, "/nonexistent/registries.conf");
	err_free(&e);
	unsetenv("CONTAINERS_REGISTRIES_CONF");
	unsetenv("XDG_CONFIG_HOME");
}
