/* test_odyn_counters: odyn's counters for the host's metrics (odyn/counters.c) as a reader of the
 * real status stream sees them: nothing until the host asks, then one line a second at most, only
 * when a count moved, a client's
 * invented names folded into "(other)" so the line stays within the wire's limits. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "odyn/internal.h"
#include "tests/harness.h"

struct rig {
	char dir[64];
	struct evloop *loop;
	struct stream *status;
	struct odyn_counters *k;
	int reader;
	struct buf got;
};

static void rig_start(struct test_ctx *t, struct rig *r)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->dir, sizeof(r->dir), "/tmp/odyn-counters-XXXXXX");
	REQUIRE(mkdtemp(r->dir) != NULL);
	char text[128];
	snprintf(text, sizeof(text), "unix:%s/st.sock", r->dir);
	struct transport_addr a;
	REQUIRE(transport_parse(text, &a, NULL) == 0);
	REQUIRE(evloop_new(&r->loop, NULL) == 0);
	REQUIRE(stream_new(r->loop, &a, 64 * 1024, &r->status, NULL) == 0);
	r->k = odyn_counters_new(r->loop, r->status);
	r->reader = transport_connect(&a, true, NULL);
	REQUIRE(r->reader >= 0);
	REQUIRE(evloop_run_once(r->loop, 100, NULL) == 0); /* the stream accepts it */
}

/* Turns the loop for ms, collecting what the reader gets; returns the number of lines so far. */
static size_t rig_run(struct rig *r, int ms)
{
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		long left = ms - ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000);
		if (left <= 0)
			break;
		evloop_run_once(r->loop, (int)left, NULL);
		char b[65536];
		ssize_t n;
		while ((n = recv(r->reader, b, sizeof(b), 0)) > 0)
			buf_append(&r->got, b, (size_t)n);
	}
	size_t lines = 0;
	for (size_t i = 0; i < r->got.len; i++)
		lines += r->got.data[i] == '\n';
	return lines;
}

/* The last line received, decoded. */
static void rig_last(struct test_ctx *t, struct rig *r, struct wire_status *st)
{
	REQUIRE(r->got.len > 0 && r->got.data[r->got.len - 1] == '\n');
	size_t end = r->got.len - 1, start = end;
	while (start > 0 && r->got.data[start - 1] != '\n')
		start--;
	struct err *e = NULL;
	REQUIRE(wire_status_decode(r->got.data + start, end - start, st, &e) == 0);
	REQUIRE(st->kind == WIRE_STATUS_COUNTERS);
}

static void rig_stop(struct rig *r)
{
	close(r->reader);
	odyn_counters_free(r->k);
	stream_free(r->status);
	evloop_free(r->loop);
	buf_free(&r->got);
	char path[128];
	snprintf(path, sizeof(path), "%s/st.sock", r->dir);
	unlink(path);
	rmdir(r->dir);
}

static uint64_t count_of(const struct wire_status *st, enum wire_counter_family f, const char *a, const char *b)
{
	for (size_t i = 0; i < st->n_counters; i++)
		if (wire_counter_is(&st->counters[i], f, a, b))
			return st->counters[i].n;
	return 0;
}

TEST(counters_go_out_once_the_host_asks)
{
	struct rig r;
	rig_start(t, &r);
	odyn_counters_add(r.k, WIRE_COUNTER_EGRESS, "a.example", "allowed");
	odyn_counters_flush(r.k);
	CHECK(rig_run(&r, 1300) == 0); /* a host without --metrics gets no counters lines */
	odyn_counters_enable(r.k);
	CHECK(rig_run(&r, 100) == 1); /* the totals so far, at once */
	struct wire_status st;
	rig_last(t, &r, &st);
	CHECK(count_of(&st, WIRE_COUNTER_EGRESS, "a.example", "allowed") == 1);
	wire_status_free(&st);
	rig_stop(&r);
}

TEST(counters_go_out_once_a_second_when_they_moved)
{
	struct rig r;
	rig_start(t, &r);
	odyn_counters_enable(r.k);
	CHECK(rig_run(&r, 100) == 0); /* nothing counted yet: nothing sent */
	for (int i = 0; i < 100; i++)
		odyn_counters_add(r.k, WIRE_COUNTER_EGRESS, "*.amazonaws.com:443", "allowed");
	odyn_counters_add(r.k, WIRE_COUNTER_EGRESS, "(default)", "denied");
	CHECK(rig_run(&r, 300) == 0);  /* not a line per request */
	CHECK(rig_run(&r, 1200) == 1); /* one line for all of them */
	struct wire_status st;
	rig_last(t, &r, &st);
	CHECK(count_of(&st, WIRE_COUNTER_EGRESS, "*.amazonaws.com:443", "allowed") == 100);
	CHECK(count_of(&st, WIRE_COUNTER_EGRESS, "(default)", "denied") == 1);
	wire_status_free(&st);
	CHECK(rig_run(&r, 1500) == 1); /* nothing moved: nothing sent */
	odyn_counters_add(r.k, WIRE_COUNTER_KMS, "Decrypt", "ok");
	odyn_counters_flush(r.k); /* before an exit status: at once */
	CHECK(rig_run(&r, 100) == 2);
	rig_last(t, &r, &st);
	CHECK(count_of(&st, WIRE_COUNTER_KMS, "Decrypt", "ok") == 1);
	CHECK(count_of(&st, WIRE_COUNTER_EGRESS, "*.amazonaws.com:443", "allowed") == 100); /* totals */
	wire_status_free(&st);
	CHECK(rig_run(&r, 1200) == 2); /* the flush took the pending line */
	rig_stop(&r);
}

TEST(counters_fold_invented_and_bad_names_into_other)
{
	struct rig r;
	rig_start(t, &r);
	odyn_counters_enable(r.k);
	/* A client inventing 100 action names, and one that is not a label at all. */
	for (int i = 0; i < 100; i++) {
		char action[32];
		snprintf(action, sizeof(action), "Action%d", i);
		odyn_counters_add(r.k, WIRE_COUNTER_KMS, action, "error");
	}
	odyn_counters_add(r.k, WIRE_COUNTER_KMS, "bad\nname", "error");
	odyn_counters_add(r.k, WIRE_COUNTER_EGRESS, "10.0.0.0/8", "denied");
	rig_run(&r, 1300);
	struct wire_status st;
	rig_last(t, &r, &st); /* decodes: within the wire's limits */
	CHECK(st.n_counters <= WIRE_COUNTERS_MAX);
	uint64_t total = 0;
	for (size_t i = 0; i < st.n_counters; i++)
		if (st.counters[i].family == WIRE_COUNTER_KMS)
			total += st.counters[i].n;
	CHECK(total == 101); /* nothing lost */
	CHECK(count_of(&st, WIRE_COUNTER_KMS, "Action0", "error") == 1);
	CHECK(count_of(&st, WIRE_COUNTER_KMS, "(other)", "error") >= 45);
	/* The egress family still has its own entry after the KMS flood. */
	CHECK(count_of(&st, WIRE_COUNTER_EGRESS, "10.0.0.0/8", "denied") == 1 ||
	      count_of(&st, WIRE_COUNTER_EGRESS, "(other)", "denied") == 1);
	wire_status_free(&st);
	rig_stop(&r);
}
