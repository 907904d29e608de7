/* test_oci_registries: registries.conf (containers-registries.conf v2):
 * what a good file says, which registry a name falls under, where a pull
 * goes, and bad input refused with the file and line named. */
#include <dirent.h>
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

/* Loading as a user whose home is `home`, with neither override variable set. */
static void conf_env(const char *home)
{
	setenv("HOME", home, 1);
	unsetenv("CONTAINERS_REGISTRIES_CONF");
	unsetenv("REGISTRIES_CONFIG_PATH");
}

/* podman's choice of files: $CONTAINERS_REGISTRIES_CONF, else the user's
 * file (and then only the user's drop-ins), else the system's file with
 * the system's and then the user's drop-ins. */
TEST(registries_load_precedence)
{
	const char *dir = test_tmpdir(t);
	char etc[512], home[512], env[512], path[600];
	snprintf(etc, sizeof(etc), "%s/etc", dir);
	snprintf(home, sizeof(home), "%s/home", dir);
	snprintf(env, sizeof(env), "%s/env.conf", dir);
	test_write_text(dir, "env.conf", "unqualified-search-registries = [\"env.example\"]\n");
	test_write_text(etc, "registries.conf",
	           "unqualified-search-registries = [\"sys.example\"]\n[aliases]\n\"a\" = \"sys.example/a\"\n");
	test_write_text(etc, "registries.conf.d/10-b.conf", "[aliases]\n\"b\" = \"sysdrop.example/b\"\n");
	test_write_text(home, ".config/containers/registries.conf.d/20-c.conf",
	           "[aliases]\n\"c\" = \"userdrop.example/c\"\n");
	setenv("HOME", home, 1);
	unsetenv("REGISTRIES_CONFIG_PATH");
	setenv("CONTAINERS_REGISTRIES_CONF", env, 1);
	struct oci_registries c;
	struct err *e = NULL;
	/* The override replaces the main file only: both drop-in folders apply. */
	REQUIRE(oci_registries_load_at(etc, NULL, &c, &e) == 0);
	REQUIRE(c.n_search == 1);
	CHECK_STR_EQ(c.search[0], "env.example");
	CHECK_STR_EQ(c.path, env);
	CHECK_INT_EQ(c.n_files, 3);
	CHECK_INT_EQ(c.n_aliases, 2);
	oci_registries_free(&c);
	/* No user file: the system's, then its drop-ins, then the user's. */
	unsetenv("CONTAINERS_REGISTRIES_CONF");
	REQUIRE(oci_registries_load_at(etc, NULL, &c, &e) == 0);
	REQUIRE(c.n_search == 1);
	CHECK_STR_EQ(c.search[0], "sys.example");
	REQUIRE(c.n_aliases == 3);
	CHECK_STR_EQ(c.aliases[1].value, "sysdrop.example/b");
	CHECK_STR_EQ(c.aliases[2].value, "userdrop.example/c");
	REQUIRE(c.n_files == 3);
	snprintf(path, sizeof(path), "%s/registries.conf.d/10-b.conf", etc);
	CHECK_STR_EQ(c.files[1], path);
	oci_registries_free(&c);
	/* A user file: the system's file and drop-ins are left alone. */
	test_write_text(home, ".config/containers/registries.conf", "unqualified-search-registries = [\"user.example\"]\n");
	REQUIRE(oci_registries_load_at(etc, NULL, &c, &e) == 0);
	REQUIRE(c.n_search == 1);
	CHECK_STR_EQ(c.search[0], "user.example");
	snprintf(path, sizeof(path), "%s/.config/containers/registries.conf", home);
	CHECK_STR_EQ(c.path, path);
	REQUIRE(c.n_aliases == 1);
	CHECK_STR_EQ(c.aliases[0].name, "c");
	oci_registries_free(&c);
	/* An override that is not there is an error; the defaults may be absent. */
	setenv("CONTAINERS_REGISTRIES_CONF", "/nonexistent/registries.conf", 1);
	CHECK(oci_registries_load_at(etc, NULL, &c, &e) < 0);
	CHECK_ERR_CONTAINS(e, "/nonexistent/registries.conf");
	err_free(&e);
	unsetenv("CONTAINERS_REGISTRIES_CONF");
	setenv("HOME", dir, 1);
	snprintf(path, sizeof(path), "%s/none", dir);
	REQUIRE(oci_registries_load_at(path, NULL, &c, &e) == 0);
	CHECK(c.path == NULL && c.n_files == 0);
	oci_registries_free(&c);
	unsetenv("HOME");
}

/* Drop-ins in lexical order, only *.conf, each replacing what it sets. */
TEST(registries_dropins_merge)
{
	const char *dir = test_tmpdir(t);
	char etc[512];
	snprintf(etc, sizeof(etc), "%s/etc", dir);
	test_write_text(etc, "registries.conf",
	           "unqualified-search-registries = [\"one.example\", \"two.example\"]\n"
	           "short-name-mode = \"enforcing\"\n"
	           "[[registry]]\nprefix = \"x.example/team\"\nlocation = \"main.example/team\"\n"
	           "[[registry]]\nlocation = \"keep.example\"\ninsecure = true\n"
	           "[aliases]\n\"app\" = \"main.example/app\"\n\"gone\" = \"main.example/gone\"\n");
	test_write_text(etc, "registries.conf.d/b.conf",
	           "[[registry]]\nprefix = \"x.example/team\"\nlocation = \"b.example/team\"\n"
	           "[aliases]\n\"app\" = \"b.example/app\"\n");
	test_write_text(etc, "registries.conf.d/a.conf",
	           "short-name-mode = \"permissive\"\n"
	           "[aliases]\n\"app\" = \"a.example/app\"\n\"gone\" = \"\"\n");
	test_write_text(etc, "registries.conf.d/c.conf.off", "bad = syntax here\n");
	test_write_text(etc, "registries.conf.d/sub.conf/x.conf", "bad = syntax here\n");
	test_write_text(etc, "registries.conf.d/d.conf", "unqualified-search-registries = []\n");
	conf_env(dir);
	struct oci_registries c;
	struct err *e = NULL;
	REQUIRE(oci_registries_load_at(etc, NULL, &c, &e) == 0);
	CHECK_INT_EQ(c.n_files, 4);  /* the main file, a, b, d */
	CHECK_INT_EQ(c.n_search, 0); /* d.conf set it to [] */
	CHECK(strstr(c.search_from.path, "d.conf") != NULL);
	CHECK_INT_EQ(c.short_name_mode, OCI_SHORT_NAME_PERMISSIVE);
	CHECK(strstr(c.mode_from.path, "a.conf") != NULL);
	REQUIRE(c.n_regs == 2);
	const struct oci_registry_conf *reg = oci_registries_find(&c, "x.example/team/app:1", NULL);
	REQUIRE(reg != NULL);
	CHECK_STR_EQ(reg->location, "b.example/team"); /* b.conf came last */
	CHECK(strstr(reg->path, "b.conf") != NULL);
	CHECK(oci_registries_insecure(&c, "keep.example/x"));
	REQUIRE(c.n_aliases == 2);
	CHECK_STR_EQ(c.aliases[0].value, "b.example/app");
	CHECK(c.aliases[1].value == NULL); /* erased by a.conf */
	oci_registries_free(&c);
	/* A bad drop-in is named with its line. */
	test_write_text(etc, "registries.conf.d/e.conf", "\n[aliases]\n\"x\" = \"y\"\n");
	CHECK(oci_registries_load_at(etc, NULL, &c, &e) < 0);
	CHECK_ERR_CONTAINS(e, "registries.conf.d/e.conf:3: alias \"x\" = \"y\": the value must name a registry");
	err_free(&e);
	unsetenv("HOME");
}

static struct oci_registries conf_of(const char *text)
{
	struct oci_registries c;
	struct err *e = NULL;
	if (parse(text, &c, &e) < 0) {
		fprintf(stderr, "%s\n", e->msg);
		abort();
	}
	return c;
}

/* Resolves `name` and returns the candidates joined by spaces (or the
 * error's message), with *why. */
static char *resolve(const struct oci_registries *c, const char *name, char **why)
{
	struct oci_ref ref;
	struct err *e = NULL;
	if (oci_ref_parse(name, &ref, &e) < 0)
		abort();
	char **names;
	size_t n;
	struct buf b = {0};
	if (oci_registries_resolve(c, &ref, &names, &n, why, &e) < 0) {
		buf_printf(&b, "error: %s", e->msg);
		err_free(&e);
	} else {
		for (size_t i = 0; i < n; i++)
			buf_printf(&b, "%s%s", i ? " " : "", names[i]);
		oci_names_free(names, n);
	}
	oci_ref_free(&ref);
	buf_str(&b);
	return b.data;
}

TEST(registries_short_names)
{
	struct oci_registries c = conf_of("unqualified-search-registries = [\"a.example\", \"docker.io\"]\n"
	                                  "[aliases]\n"
	                                  "\"myapp\" = \"quay.io/team/myapp\"\n"
	                                  "\"library/alpine\" = \"docker.io/alpine\"\n"
	                                  "\"tools/x\" = \"localhost:5000/x\"\n");
	char *why = NULL;
	/* An alias wins over the search list; the tag or digest is carried over. */
	char *got = resolve(&c, "myapp", &why);
	CHECK_STR_EQ(got, "quay.io/team/myapp:latest");
	CHECK_STR_EQ(why, "short name \"myapp\" is an alias (r.conf:3) for quay.io/team/myapp:latest");
	free(got), free(why);
	got = resolve(&c, "myapp:v2", NULL);
	CHECK_STR_EQ(got, "quay.io/team/myapp:v2");
	free(got);
	char dig[80];
	snprintf(dig, sizeof(dig), "myapp@sha256:%064d", 0);
	got = resolve(&c, dig, NULL);
	CHECK(str_has_prefix(got, "quay.io/team/myapp@sha256:0000"));
	free(got);
	/* Names are matched as written; docker.io values get library/. */
	got = resolve(&c, "library/alpine:3", NULL);
	CHECK_STR_EQ(got, "docker.io/library/alpine:3");
	free(got);
	got = resolve(&c, "tools/x", NULL);
	CHECK_STR_EQ(got, "localhost:5000/x:latest");
	free(got);
	/* No alias: every search registry in order (permissive by default). */
	got = resolve(&c, "alpine", &why);
	CHECK_STR_EQ(got, "a.example/alpine:latest docker.io/library/alpine:latest");
	CHECK_STR_EQ(why, "short name \"alpine\": unqualified-search-registries (r.conf:1): 2 to try");
	free(got), free(why);
	/* A full name is itself, whatever the aliases say. */
	got = resolve(&c, "docker.io/myapp", &why);
	CHECK_STR_EQ(got, "docker.io/library/myapp:latest");
	CHECK(why == NULL);
	free(got);
	oci_registries_free(&c);

	/* Enforcing with several registries: an error listing them. */
	c = conf_of("unqualified-search-registries = [\"a.example\", \"b.example:5000\"]\n"
	            "short-name-mode = \"enforcing\"\n");
	got = resolve(&c, "team/app:1", NULL);
	CHECK_STR_EQ(got, "error: short name \"team/app\" is ambiguous: short-name-mode is \"enforcing\" (r.conf:2) "
	                  "and the unqualified-search-registries (r.conf:1) give 2 candidates: a.example/team/app:1, "
	                  "b.example:5000/team/app:1; use a full name or add an [aliases] entry");
	free(got);
	oci_registries_free(&c);
	/* ... and with one there is nothing to guess. */
	c = conf_of("unqualified-search-registries = [\"a.example\"]\nshort-name-mode = \"enforcing\"\n");
	got = resolve(&c, "app", NULL);
	CHECK_STR_EQ(got, "a.example/app:latest");
	free(got);
	oci_registries_free(&c);
	/* disabled: all of them, like permissive without a terminal. */
	c = conf_of("unqualified-search-registries = [\"a.example\", \"b.example\"]\nshort-name-mode = \"disabled\"\n");
	got = resolve(&c, "app", NULL);
	CHECK_STR_EQ(got, "a.example/app:latest b.example/app:latest");
	free(got);
	oci_registries_free(&c);
	/* No search registries: docker's rule. An erased alias is no alias. */
	c = conf_of("[aliases]\n\"app\" = \"\"\n");
	got = resolve(&c, "app", &why);
	CHECK_STR_EQ(got, "docker.io/library/app:latest");
	CHECK(why == NULL);
	free(got);
	oci_registries_free(&c);
}

TEST(registries_bad_aliases_and_modes)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
	    {"[aliases]\n\"quay.io/app\" = \"quay.io/app\"\n",
	     "r.conf:2: alias \"quay.io/app\": a short name names no registry"},
	    {"[aliases]\n\"localhost/app\" = \"quay.io/app\"\n", "a short name names no registry"},
	    {"[aliases]\n\"app:1\" = \"quay.io/app\"\n",
	     "r.conf:2: alias \"app:1\": a short name has no tag or digest"},
	    {"[aliases]\n\"App\" = \"quay.io/app\"\n", "r.conf:2: alias \"App\": invalid reference"},
	    {"[aliases]\n\"app\" = \"quay.io/app:1\"\n",
	     "r.conf:2: alias \"app\" = \"quay.io/app:1\": the value has no tag"},
	    {"[aliases]\n\"app\" = \"team/app\"\n", "the value must name a registry and a repository"},
	    {"[aliases]\n\"app\" = \"quay.io\"\n", "the value must name a registry and a repository"},
	    {"[aliases]\n\"app\" = true\n", "r.conf:2: app must be a string"},
	    {"[aliases]\n\"app\" = \"quay.io/a\"\n[aliases]\n\"app\" = \"quay.io/b\"\n",
	     "r.conf:4: alias \"app\" is already set at line 2"},
	    {"short-name-mode = \"strict\"\n", "r.conf:1: short-name-mode must be \"enforcing\", \"permissive\" or "
	                                       "\"disabled\", not \"strict\""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct oci_registries c;
		struct err *e = NULL;
		CHECK(parse(cases[i].text, &c, &e) < 0);
		CHECK_ERR_CONTAINS(e, cases[i].want);
		err_free(&e);
	}
}

/* The system's own drop-in (Debian ships shortnames.conf) parses. */
TEST(registries_real_dropins_parse)
{
	DIR *d = opendir("/etc/containers/registries.conf.d");
	if (d == NULL)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);
		if (n < 5 || strcmp(de->d_name + n - 5, ".conf") != 0)
			continue;
		char path[512];
		snprintf(path, sizeof(path), "/etc/containers/registries.conf.d/%s", de->d_name);
		char *text = NULL;
		size_t len;
		struct err *e = NULL;
		if (io_read_file(path, 1 << 20, &text, &len, &e) < 0) {
			err_free(&e);
			continue;
		}
		struct oci_registries c;
		int r = oci_registries_parse(path, text, len, &c, &e);
		CHECK(r == 0);
		if (r < 0) {
			fprintf(stderr, "%s\n", e->msg);
			err_free(&e);
		} else {
			oci_registries_free(&c);
		}
		free(text);
	}
	closedir(d);
}

/* Set but empty, CONTAINERS_REGISTRIES_CONF means the defaults (podman:
 * REGISTRIES_CONFIG_PATH only counts when the other is not set at all). */
TEST(registries_empty_env_means_defaults)
{
	const char *dir = test_tmpdir(t);
	char etc[512], old[512];
	snprintf(etc, sizeof(etc), "%s/etc", dir);
	test_write_text(etc, "registries.conf", "unqualified-search-registries = [\"sys.example\"]\n");
	test_write_text(dir, "old.conf", "unqualified-search-registries = [\"old.example\"]\n");
	snprintf(old, sizeof(old), "%s/old.conf", dir);
	setenv("HOME", dir, 1);
	setenv("CONTAINERS_REGISTRIES_CONF", "", 1);
	setenv("REGISTRIES_CONFIG_PATH", old, 1);
	struct oci_registries c;
	struct err *e = NULL;
	REQUIRE(oci_registries_load_at(etc, NULL, &c, &e) == 0);
	REQUIRE(c.n_search == 1);
	CHECK_STR_EQ(c.search[0], "sys.example");
	oci_registries_free(&c);
	/* Not set at all: the old variable is read. */
	unsetenv("CONTAINERS_REGISTRIES_CONF");
	REQUIRE(oci_registries_load_at(etc, NULL, &c, &e) == 0);
	REQUIRE(c.n_search == 1);
	CHECK_STR_EQ(c.search[0], "old.example");
	oci_registries_free(&c);
	unsetenv("REGISTRIES_CONFIG_PATH");
	unsetenv("HOME");
}

/* podman's short-name-aliases.conf: read last, its aliases win; anything but
 * [aliases] in it is refused; a missing one is no error. */
TEST(registries_recorded_aliases)
{
	const char *dir = test_tmpdir(t);
	char etc[512], rec[512];
	snprintf(etc, sizeof(etc), "%s/etc", dir);
	snprintf(rec, sizeof(rec), "%s/cache/containers/short-name-aliases.conf", dir);
	test_write_text(etc, "registries.conf",
	           "[aliases]\n\"app\" = \"conf.example/app\"\n\"other\" = \"conf.example/other\"\n");
	test_write_text(dir, "cache/containers/short-name-aliases.conf",
	           "[aliases]\n  \"app\" = \"recorded.example/team/app\"\n  \"new\" = \"docker.io/new\"\n");
	conf_env(dir);
	struct oci_registries c;
	struct err *e = NULL;
	REQUIRE(oci_registries_load_at(etc, rec, &c, &e) == 0);
	char *why = NULL, *got = resolve(&c, "docker://app:v2", &why);
	CHECK_STR_EQ(got, "recorded.example/team/app:v2");
	CHECK(why && strstr(why, "short-name-aliases.conf:2") != NULL);
	free(got);
	free(why);
	got = resolve(&c, "docker://other", NULL);
	CHECK_STR_EQ(got, "conf.example/other:latest");
	free(got);
	oci_registries_free(&c);
	/* Missing: nothing, no error. */
	snprintf(rec, sizeof(rec), "%s/nowhere/short-name-aliases.conf", dir);
	REQUIRE(oci_registries_load_at(etc, rec, &c, &e) == 0);
	CHECK_INT_EQ(c.n_aliases, 2);
	oci_registries_free(&c);
	/* Other settings do not belong there; bad aliases name file:line. */
	test_write_text(dir, "bad1.conf", "unqualified-search-registries = [\"x.example\"]\n");
	snprintf(rec, sizeof(rec), "%s/bad1.conf", dir);
	CHECK(oci_registries_load_at(etc, rec, &c, &e) < 0);
	CHECK_ERR_CONTAINS(e, "bad1.conf: only [aliases] belongs in this file");
	err_free(&e);
	test_write_text(dir, "bad2.conf", "[aliases]\n\"x\" = \"y\"\n");
	snprintf(rec, sizeof(rec), "%s/bad2.conf", dir);
	CHECK(oci_registries_load_at(etc, rec, &c, &e) < 0);
	CHECK_ERR_CONTAINS(e, "bad2.conf:2: alias \"x\" = \"y\"");
	err_free(&e);
	/* Where it is looked for. */
	if (geteuid() != 0) {
		setenv("XDG_CACHE_HOME", "/xdg", 1);
		char *p = oci_short_name_aliases_path();
		CHECK_STR_EQ(p, "/xdg/containers/short-name-aliases.conf");
		free(p);
		unsetenv("XDG_CACHE_HOME");
	} else {
		char *p = oci_short_name_aliases_path();
		CHECK_STR_EQ(p, "/var/cache/containers/short-name-aliases.conf");
		free(p);
	}
	unsetenv("HOME");
}
