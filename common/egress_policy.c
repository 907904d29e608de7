/* policy: the egress allow/deny rules: IPs, CIDRs and domain patterns with
 * `*` (one label) and `**` (one or more labels), an optional port each;
 * deny wins, nothing is allowed by default. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <string.h>

#include "egress.h"

#define MAX_LABELS 128

enum rule_kind { RULE_ADDR, RULE_DOMAIN };

struct egress_rule {
	enum rule_kind kind;
	int family; /* AF_INET or AF_INET6, for RULE_ADDR */
	uint8_t addr[16];
	int prefix;    /* bits; full length for a single address */
	char **labels; /* RULE_DOMAIN: lowercase, in order */
	size_t n_labels;
	uint32_t port; /* 0: any */
	char *text;
};

static void rule_free(struct egress_rule *r)
{
	for (size_t i = 0; i < r->n_labels; i++)
		free(r->labels[i]);
	free(r->labels);
	free(r->text);
}

void egress_policy_free(struct egress_policy *p)
{
	for (size_t i = 0; i < p->n_allow; i++)
		rule_free(&p->allow[i]);
	for (size_t i = 0; i < p->n_deny; i++)
		rule_free(&p->deny[i]);
	free(p->allow);
	free(p->deny);
	memset(p, 0, sizeof(*p));
}

static bool label_ok(const char *l, size_t n)
{
	if (n == 0 || n > 63)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)l[i]) && l[i] != '-' && l[i] != '_')
			return false;
	return true;
}

/* Splits a lowercase name into labels; -1 on an empty or invalid label, with
 * *why (may be NULL) saying which rule it breaks. */
static int split_labels(const char *name, bool wildcards, char ***out, size_t *n_out, const char **why)
{
	size_t n = 0;
	char **v = NULL;
	const char *p = name;
	for (;;) {
		const char *dot = strchr(p, '.');
		size_t len = dot ? (size_t)(dot - p) : strlen(p);
		bool wild = wildcards && ((len == 1 && p[0] == '*') || (len == 2 && p[0] == '*' && p[1] == '*'));
		if (n == MAX_LABELS || (!wild && !label_ok(p, len))) {
			if (why)
				*why = n == MAX_LABELS       ? "more than 128 labels"
				       : len == 0            ? "empty label"
				       : len > 63            ? "label longer than 63 characters"
				       : memchr(p, '*', len) ? "'*' and '**' must be whole labels"
				                             : "a label holds other than letters, digits, '-' and '_'";
			for (size_t i = 0; i < n; i++)
				free(v[i]);
			free(v);
			return -1;
		}
		v = xrealloc(v, (n + 1) * sizeof(*v));
		v[n++] = xstrndup(p, len);
		if (!dot)
			break;
		p = dot + 1;
	}
	*out = v;
	*n_out = n;
	return 0;
}

/* Lowercases, drops one trailing dot; NULL when empty. */
static char *name_fold(const char *s)
{
	size_t n = strlen(s);
	if (n > 0 && s[n - 1] == '.')
		n--;
	if (n == 0 || n > 253)
		return NULL;
	char *r = xstrndup(s, n);
	for (char *p = r; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return r;
}

static int parse_port(const char *s, uint32_t *out)
{
	char *end;
	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || v == 0 || v > 65535)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

/* IPv4-mapped IPv6 addresses are matched as the IPv4 address they carry. */
static void unmap_v4(int *family, uint8_t addr[16])
{
	static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	if (*family == AF_INET6 && memcmp(addr, prefix, 12) == 0) {
		memmove(addr, addr + 12, 4);
		*family = AF_INET;
	}
}

static int parse_addr_rule(const char *s, struct egress_rule *r)
{
	const char *slash = strchr(s, '/');
	_cleanup_free_ char *ip = slash ? xstrndup(s, (size_t)(slash - s)) : xstrdup(s);
	if (inet_pton(AF_INET, ip, r->addr) == 1)
		r->family = AF_INET;
	else if (inet_pton(AF_INET6, ip, r->addr) == 1)
		r->family = AF_INET6;
	else
		return -1;
	int bits = r->family == AF_INET ? 32 : 128;
	r->prefix = bits;
	if (slash) {
		char *end;
		const char *ps = slash + 1;
		if (*ps < '0' || *ps > '9')
			return -2;
		long v = strtol(ps, &end, 10);
		if (*end || v < 0 || v > bits)
			return -2;
		r->prefix = (int)v;
	}
	if (r->family == AF_INET6 && r->prefix >= 96) {
		int fam = r->family;
		unmap_v4(&fam, r->addr);
		if (fam == AF_INET) {
			r->family = AF_INET;
			r->prefix -= 96;
		}
	}
	r->kind = RULE_ADDR;
	return 0;
}

static int bad_pattern(struct egress_rule *r, const char *pattern, const char *why, struct err **err)
{
	rule_free(r);
	return err_set(err, EINVAL, "\"%s\" is not an IP, CIDR or domain pattern: %s", pattern, why);
}

int egress_policy_add(struct egress_policy *p, bool deny, const char *pattern, struct err **err)
{
	struct egress_rule r = {.text = xstrdup(pattern)};
	_cleanup_free_ char *host = NULL;
	const char *colon = strrchr(pattern, ':');
	size_t n_colons = 0;
	for (const char *c = pattern; *c; c++)
		n_colons += *c == ':';
	if (pattern[0] == '[') {
		const char *close = strchr(pattern, ']');
		if (close == NULL || (close[1] != '\0' && close[1] != ':') ||
		    (close[1] == ':' && parse_port(close + 2, &r.port) < 0))
			return bad_pattern(&r, pattern, "want [IPv6] or [IPv6]:PORT (1-65535)", err);
		host = xstrndup(pattern + 1, (size_t)(close - pattern - 1));
		if (!strchr(host, ':')) /* every IPv6 form has a colon; IPv4 and names go without brackets */
			return bad_pattern(&r, pattern, "brackets hold an IPv6 address", err);
	} else if (n_colons == 1) {
		if (parse_port(colon + 1, &r.port) < 0)
			return bad_pattern(&r, pattern, "bad port (1-65535)", err);
		host = xstrndup(pattern, (size_t)(colon - pattern));
	} else {
		host = xstrdup(pattern); /* a bare IPv6 form has several colons and no port */
	}
	int a = parse_addr_rule(host, &r);
	if (a == -2)
		return bad_pattern(&r, pattern, "bad CIDR prefix length", err);
	if (a == -1 && (strchr(host, '/') || strchr(host, ':') || pattern[0] == '['))
		return bad_pattern(&r, pattern, "neither an IP address nor a CIDR", err);
	if (a == -1) {
		_cleanup_free_ char *folded = name_fold(host);
		const char *why = "empty, or longer than 253 characters";
		if (folded == NULL || split_labels(folded, true, &r.labels, &r.n_labels, &why) < 0)
			return bad_pattern(&r, pattern, why, err);
		r.kind = RULE_DOMAIN;
	}
	struct egress_rule **list = deny ? &p->deny : &p->allow;
	size_t *n = deny ? &p->n_deny : &p->n_allow;
	*list = xrealloc(*list, (*n + 1) * sizeof(**list));
	(*list)[(*n)++] = r;
	return 0;
}

/* ---------------------------------------------------------------- matching */

struct host {
	bool is_addr;
	int family;
	uint8_t addr[16];
	char **labels;
	size_t n_labels;
};

static bool prefix_match(const uint8_t *a, const uint8_t *b, int bits)
{
	int full = bits / 8, rest = bits % 8;
	if (memcmp(a, b, (size_t)full) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (a[full] & mask) == (b[full] & mask);
}

/* Does pattern[0..pi) match labels[0..li)? Compared right to left; `**`
 * takes one or more labels. memo: 0 unknown, 1 no, 2 yes. */
static bool domain_match(char **pat, size_t pi, char **lab, size_t li, uint8_t memo[][MAX_LABELS + 1])
{
	if (pi == 0)
		return li == 0;
	if (li == 0)
		return false;
	if (memo[pi][li])
		return memo[pi][li] == 2;
	const char *p = pat[pi - 1];
	bool m;
	if (strcmp(p, "**") == 0)
		m = domain_match(pat, pi - 1, lab, li - 1, memo) || domain_match(pat, pi, lab, li - 1, memo);
	else if (strcmp(p, "*") == 0)
		m = domain_match(pat, pi - 1, lab, li - 1, memo);
	else
		m = strcmp(p, lab[li - 1]) == 0 && domain_match(pat, pi - 1, lab, li - 1, memo);
	memo[pi][li] = m ? 2 : 1;
	return m;
}

static bool rule_match(const struct egress_rule *r, const struct host *h, uint16_t port)
{
	if (r->port && r->port != port)
		return false;
	if (r->kind == RULE_ADDR)
		return h->is_addr && h->family == r->family && prefix_match(h->addr, r->addr, r->prefix);
	if (h->is_addr)
		return false; /* no names for addresses inside the enclave */
	static __thread uint8_t memo[MAX_LABELS + 1][MAX_LABELS + 1];
	memset(memo, 0, sizeof(memo));
	return domain_match(r->labels, r->n_labels, h->labels, h->n_labels, memo);
}

static void host_free(struct host *h)
{
	for (size_t i = 0; i < h->n_labels; i++)
		free(h->labels[i]);
	free(h->labels);
}

/* Parses a host the app asked for. inet_aton accepts the legacy forms
 * ("127.1", "0x7f.0.0.1") that resolvers also accept: they are addresses. */
static int host_parse(const char *in, struct host *h)
{
	memset(h, 0, sizeof(*h));
	size_t n = strlen(in);
	_cleanup_free_ char *s = NULL;
	if (n >= 2 && in[0] == '[' && in[n - 1] == ']')
		s = xstrndup(in + 1, n - 2);
	else
		s = xstrdup(in);
	struct in_addr v4;
	if (inet_pton(AF_INET6, s, h->addr) == 1) {
		h->is_addr = true;
		h->family = AF_INET6;
		unmap_v4(&h->family, h->addr);
		return 0;
	}
	if (s[0] != '\0' && strchr(s, ':') == NULL && inet_aton(s, &v4) == 1) {
		h->is_addr = true;
		h->family = AF_INET;
		memcpy(h->addr, &v4, 4);
		return 0;
	}
	_cleanup_free_ char *folded = name_fold(s);
	if (folded == NULL || split_labels(folded, false, &h->labels, &h->n_labels, NULL) < 0)
		return -1;
	/* A name whose last label is numeric would be taken for an address by
	 * some resolver: refuse the ambiguity. */
	if (strspn(h->labels[h->n_labels - 1], "0123456789") == strlen(h->labels[h->n_labels - 1])) {
		host_free(h);
		return -1;
	}
	return 0;
}

char *egress_host_normalize(const char *host)
{
	struct host h;
	if (host_parse(host, &h) < 0)
		return NULL;
	char out[256];
	if (h.is_addr) {
		inet_ntop(h.family, h.addr, out, sizeof(out));
		return xstrdup(out);
	}
	struct buf b = {0};
	for (size_t i = 0; i < h.n_labels; i++) {
		if (i)
			buf_putc(&b, '.');
		buf_puts(&b, h.labels[i]);
	}
	host_free(&h);
	return b.data;
}

enum egress_verdict egress_policy_check(const struct egress_policy *p, const char *host, uint16_t port,
                                        const char **rule)
{
	struct host h;
	if (rule)
		*rule = NULL;
	if (host_parse(host, &h) < 0)
		return EGRESS_BAD_HOST;
	enum egress_verdict v = EGRESS_DENY_DEFAULT;
	for (size_t i = 0; i < p->n_deny; i++)
		if (rule_match(&p->deny[i], &h, port)) {
			if (rule)
				*rule = p->deny[i].text;
			v = EGRESS_DENY_RULE;
			goto out;
		}
	for (size_t i = 0; i < p->n_allow; i++)
		if (rule_match(&p->allow[i], &h, port)) {
			if (rule)
				*rule = p->allow[i].text;
			v = EGRESS_ALLOW;
			goto out;
		}
out:
	host_free(&h);
	return v;
}
