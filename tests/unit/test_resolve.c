/* test_resolve: the outer side's asynchronous resolver (runtime/resolve.c): numeric addresses
 * answered at once, names answered on the loop, cancelled jobs never call back and leak nothing
 * (the ASan build checks), the cap on resolver threads. */
#include <arpa/inet.h>
#include <string.h>

#include "runtime/resolve.h"
#include "tests/harness.h"

struct answer {
	int calls;
	int gai;
	char first[INET6_ADDRSTRLEN];
};

static void on_done(void *ctx, struct addrinfo *ai, int gai, int sys_errno)
{
	struct answer *a = ctx;
	(void)sys_errno;
	a->calls++;
	a->gai = gai;
	if (ai) {
		const void *src = ai->ai_family == AF_INET ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
		                                           : (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
		inet_ntop(ai->ai_family, src, a->first, sizeof(a->first));
		freeaddrinfo(ai);
	}
}

/* Turns the loop until the answer came (bounded: a hung resolver fails the test, not the run). */
static void wait_answer(struct evloop *loop, struct answer *a)
{
	for (int i = 0; i < 500 && a->calls == 0; i++)
		evloop_run_once(loop, 20, NULL);
}

TEST(numeric_addresses_are_answered_at_once)
{
	struct evloop *loop = NULL;
	REQUIRE(evloop_new(&loop, NULL) == 0);
	unsigned in_flight = 0;
	struct answer a = {0};
	struct resolve_job *j = (struct resolve_job *)1;
	REQUIRE(resolve_start(loop, "127.0.0.1", "80", &in_flight, on_done, &a, &j, NULL) == 0);
	CHECK(j == NULL);
	CHECK_INT_EQ(a.calls, 1);
	CHECK_INT_EQ(a.gai, 0);
	CHECK_STR_EQ(a.first, "127.0.0.1");
	struct answer b = {0};
	REQUIRE(resolve_start(loop, "::1", "443", &in_flight, on_done, &b, &j, NULL) == 0);
	CHECK_INT_EQ(b.calls, 1);
	CHECK_STR_EQ(b.first, "::1");
	CHECK_INT_EQ(in_flight, 0);
	evloop_free(loop);
}

TEST(names_are_answered_on_the_loop)
{
	struct evloop *loop = NULL;
	REQUIRE(evloop_new(&loop, NULL) == 0);
	unsigned in_flight = 0;
	struct answer a = {0};
	struct resolve_job *j = NULL;
	REQUIRE(resolve_start(loop, "localhost", "80", &in_flight, on_done, &a, &j, NULL) == 0);
	CHECK(j != NULL);
	CHECK_INT_EQ(in_flight, 1);
	wait_answer(loop, &a);
	CHECK_INT_EQ(a.calls, 1);
	CHECK_INT_EQ(a.gai, 0);
	CHECK(!strcmp(a.first, "127.0.0.1") || !strcmp(a.first, "::1"));
	CHECK_INT_EQ(in_flight, 0);
	evloop_free(loop);
}

TEST(cancelled_jobs_never_call_back)
{
	struct evloop *loop = NULL;
	REQUIRE(evloop_new(&loop, NULL) == 0);
	unsigned in_flight = 0;
	struct answer a[8] = {{0}};
	struct resolve_job *j[8];
	for (int i = 0; i < 8; i++)
		REQUIRE(resolve_start(loop, "localhost", "80", &in_flight, on_done, &a[i], &j[i], NULL) == 0);
	/* Half cancelled at once (before or after their thread finished), the rest answered. */
	for (int i = 0; i < 8; i += 2)
		resolve_cancel(j[i]);
	CHECK_INT_EQ(in_flight, 4);
	for (int i = 1; i < 8; i += 2)
		wait_answer(loop, &a[i]);
	for (int i = 0; i < 8; i++)
		CHECK_INT_EQ(a[i].calls, i % 2);
	CHECK_INT_EQ(in_flight, 0);
	evloop_free(loop);
}

TEST(resolver_threads_are_capped)
{
	struct evloop *loop = NULL;
	REQUIRE(evloop_new(&loop, NULL) == 0);
	/* The counter is the caller's: at the cap, a new name is refused without a thread. */
	unsigned in_flight = RESOLVE_MAX_IN_FLIGHT;
	struct answer a = {0};
	struct resolve_job *j = NULL;
	struct err *e = NULL;
	CHECK_INT_EQ(resolve_start(loop, "localhost", "80", &in_flight, on_done, &a, &j, &e), -1);
	CHECK_ERR_CONTAINS(e, "name resolutions already in progress");
	CHECK(e && e->code == EAGAIN);
	err_free(&e);
	CHECK_INT_EQ(a.calls, 0);
	/* Addresses need no thread and pass even at the cap. */
	CHECK_INT_EQ(resolve_start(loop, "10.0.0.1", "80", &in_flight, on_done, &a, &j, NULL), 0);
	CHECK_INT_EQ(a.calls, 1);
	evloop_free(loop);
}
