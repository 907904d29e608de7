/* harness: the tiny unit-test runner every tests/unit/test_*.c uses.
 * Each TEST is a function; CHECK records a failure and carries on, REQUIRE
 * stops the test. The runner prints one "ok"/"not ok" line per test and a
 * closing "# counts P F" line that tests/run.sh adds up. */
#ifndef ENCLAVER_TEST_HARNESS_H
#define ENCLAVER_TEST_HARNESS_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

struct test_ctx {
	const char *name;
	int failures;
};

typedef void (*test_fn)(struct test_ctx *t);
struct test_case {
	const char *name;
	test_fn fn;
};

void test_register(const char *name, test_fn fn);
void test_fail(struct test_ctx *t, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Path of a file under testdata/ (the runner chdirs to the source root). */
const char *test_data(const char *rel);
/* A fresh temporary directory for this test, removed when the test ends. */
const char *test_tmpdir(struct test_ctx *t);
/* Writes text to dir/name, making the folders between as needed (fixtures such as a fake sysfs). */
void test_write_text(const char *dir, const char *name, const char *text);
/* A unix listener (backlog 1) at path whose backlog is full: fill[] gets the two connections
 * that fill it, so the next connect waits for an accept that never comes (a peer slower than
 * its clients). Returns the listening fd, -1 on failure; the caller closes all three. */
int test_full_unix_listener(const char *path, int fill[2]);

#define TEST(fn)                                                                     \
	static void fn(struct test_ctx *t);                                          \
	__attribute__((constructor)) static void register_##fn(void) { test_register(#fn, fn); } \
	static void fn(struct test_ctx *t)

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond))                                                         \
			test_fail(t, __FILE__, __LINE__, "check failed: %s", #cond); \
	} while (0)
#define REQUIRE(cond)                                                                  \
	do {                                                                           \
		if (!(cond)) {                                                         \
			test_fail(t, __FILE__, __LINE__, "requirement failed: %s", #cond); \
			return;                                                        \
		}                                                                      \
	} while (0)
#define CHECK_STR_EQ(a, b)                                                                   \
	do {                                                                                 \
		const char *_a = (a), *_b = (b);                                             \
		if (_a == NULL || _b == NULL || strcmp(_a, _b) != 0)                         \
			test_fail(t, __FILE__, __LINE__, "%s == %s\n    got:      %s\n    expected: %s", \
				  #a, #b, _a ? _a : "(null)", _b ? _b : "(null)");           \
	} while (0)
#define CHECK_INT_EQ(a, b)                                                                   \
	do {                                                                                 \
		long long _a = (long long)(a), _b = (long long)(b);                          \
		if (_a != _b)                                                                \
			test_fail(t, __FILE__, __LINE__, "%s == %s: got %lld, expected %lld", #a, #b, _a, _b); \
	} while (0)
/* The call must fail and its message contain `needle`. */
#define CHECK_ERR_CONTAINS(e, needle)                                                         \
	do {                                                                                  \
		if ((e) == NULL)                                                              \
			test_fail(t, __FILE__, __LINE__, "expected an error containing \"%s\"", needle); \
		else if (strstr((e)->msg, needle) == NULL)                                    \
			test_fail(t, __FILE__, __LINE__, "error \"%s\" lacks \"%s\"", (e)->msg, needle); \
	} while (0)

#endif
