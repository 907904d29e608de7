/* harness: runs the registered tests of one test program, optionally only
 * those whose names contain argv[1], and prints the counts for tests/run.sh. */
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "wire/transport.h"

#define MAX_TESTS 1024
static struct test_case cases[MAX_TESTS];
static int n_cases;
static char tmpdir[PATH_MAX];

void test_register(const char *name, test_fn fn)
{
	if (n_cases == MAX_TESTS) {
		fputs("too many tests\n", stderr);
		abort();
	}
	cases[n_cases++] = (struct test_case){name, fn};
}

void test_fail(struct test_ctx *t, const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	fprintf(stdout, "    %s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	t->failures++;
}

const char *test_data(const char *rel)
{
	/* A few rotating buffers so that several calls can share one expression. */
	static char paths[8][PATH_MAX];
	static int next;
	char *path = paths[next++ % 8];
	snprintf(path, PATH_MAX, "testdata/%s", rel);
	return path;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

void test_write_text(const char *dir, const char *name, const char *text)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	for (char *p = strchr(path + 1, '/'); p; p = strchr(p + 1, '/')) {
		*p = '\0';
		mkdir(path, 0755);
		*p = '/';
	}
	FILE *f = fopen(path, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

const char *test_tmpdir(struct test_ctx *t)
{
	if (tmpdir[0] == '\0') {
		const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
		snprintf(tmpdir, sizeof(tmpdir), "%s/enclaver-test-XXXXXX", base);
		if (mkdtemp(tmpdir) == NULL) {
			test_fail(t, __FILE__, __LINE__, "mkdtemp failed");
			tmpdir[0] = '\0';
			return "/nonexistent";
		}
	}
	return tmpdir;
}

int main(int argc, char **argv)
{
	int passed = 0, failed = 0;
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 0; i < n_cases; i++) {
		if (argc > 1 && strstr(cases[i].name, argv[1]) == NULL)
			continue;
		struct test_ctx t = {.name = cases[i].name};
		cases[i].fn(&t);
		if (tmpdir[0] != '\0') {
			nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
			tmpdir[0] = '\0';
		}
		if (t.failures) {
			printf("not ok - %s\n", t.name);
			failed++;
		} else {
			printf("ok - %s\n", t.name);
			passed++;
		}
	}
	printf("# counts %d %d\n", passed, failed);
	return failed ? 1 : 0;
}

int test_full_unix_listener(const char *path, int fill[2])
{
	struct err *e = NULL;
	struct transport_addr a;
	char text[sizeof(a.sa) + 8];
	snprintf(text, sizeof(text), "unix:%s", path);
	int lfd = -1;
	if (transport_parse(text, &a, &e) == 0)
		lfd = transport_listen(&a, 1, &e);
	for (int i = 0; i < 2; i++) /* a unix backlog of 1 holds two connections */
		fill[i] = lfd >= 0 ? transport_connect_timed(&a, 5000, &e) : -1;
	err_free(&e);
	if (lfd >= 0 && (fill[0] < 0 || fill[1] < 0)) {
		for (int i = 0; i < 2; i++)
			if (fill[i] >= 0)
				close(fill[i]);
		close(lfd);
		return -1;
	}
	return lfd;
}
