/* counters: what only the enclave sees, for the host's metrics: egress decisions by rule and KMS
 * requests by action, counted on the supervisor's loop and, once the host asked, sent as a counters
 * line on the status stream (wire/wire.h) at most once a second, only when one moved. */
#include <string.h>

#include "odyn/internal.h"

/* One line a second at most: a busy proxy costs the status ring (64 KiB, replayed to a host that
 * reconnects) a few hundred bytes a second, not a line per connection. */
#define COUNTERS_EVERY_MS 1000
/* A label past the wire's limits (an action name is the client's) is counted under this. */
#define COUNTER_OTHER "(other)"
/* Slots kept for the "(other)" entries: one per family and result (egress allowed/denied, KMS
 * ok/error), with room to spare. */
#define COUNTERS_RESERVED 8

struct odyn_counters {
	struct stream *status;
	struct wire_counter c[WIRE_COUNTERS_MAX];
	size_t n;
	bool dirty;
	bool enabled; /* the host asked for them */
	struct ev_deadline timer;
	struct evloop *loop;
};

void odyn_counters_flush(struct odyn_counters *k)
{
	if (k == NULL || !k->dirty || !k->enabled)
		return;
	ev_deadline_stop(&k->timer);
	k->dirty = false;
	struct wire_status st = {.kind = WIRE_STATUS_COUNTERS, .counters = k->c, .n_counters = k->n};
	_cleanup_buf_ struct buf b = {0};
	wire_status_encode(&st, &b);
	stream_write(k->status, b.data, b.len);
}

static void on_timer(struct ev_handler *h, uint32_t events)
{
	struct odyn_counters *k = container_of(h, struct odyn_counters, timer.h);
	(void)events;
	odyn_counters_flush(k);
}

struct odyn_counters *odyn_counters_new(struct evloop *loop, struct stream *status)
{
	struct odyn_counters *k = xcalloc(1, sizeof(*k));
	k->status = status;
	k->loop = loop;
	k->timer.fd = -1;
	return k;
}

void odyn_counters_add(struct odyn_counters *k, enum wire_counter_family f, const char *a, const char *b)
{
	if (k == NULL)
		return;
	const char *l0 = wire_counter_label_ok(a) ? a : COUNTER_OTHER;
	const char *l1 = wire_counter_label_ok(b) ? b : COUNTER_OTHER;
	size_t i = wire_counter_find(k->c, k->n, f, l0, l1);
	/* Nearly full: new names are counted under "(other)" (the last slots are kept for those), so
	 * a client inventing action names cannot push the line past the wire's limit. */
	if (i == k->n && k->n >= WIRE_COUNTERS_MAX - COUNTERS_RESERVED)
		i = wire_counter_find(k->c, k->n, f, l0 = COUNTER_OTHER, l1);
	if (i == k->n) {
		if (k->n == WIRE_COUNTERS_MAX)
			return;
		k->n++;
		k->c[i] = (struct wire_counter){.family = f};
		snprintf(k->c[i].label[0], sizeof(k->c[i].label[0]), "%s", l0);
		snprintf(k->c[i].label[1], sizeof(k->c[i].label[1]), "%s", l1);
	}
	k->c[i].n++;
	k->dirty = true;
	if (k->enabled && k->timer.fd < 0) {
		_cleanup_err_ struct err *e = NULL;
		if (ev_deadline_arm(&k->timer, k->loop, COUNTERS_EVERY_MS, on_timer, &e) < 0)
			odyn_counters_flush(k); /* no timer: send now rather than never */
	}
}

void odyn_counters_enable(struct odyn_counters *k)
{
	if (k == NULL)
		return;
	k->enabled = true;
	k->dirty = k->n > 0; /* the totals so far, at once (a host that reconnected asks again) */
	odyn_counters_flush(k);
}

void odyn_counters_free(struct odyn_counters *k)
{
	if (k == NULL)
		return;
	ev_deadline_stop(&k->timer);
	free(k);
}
