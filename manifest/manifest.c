/* manifest: enclaver.yaml read with libyaml into struct manifest, strictly:
 * every error names the file, line and column, and the field's path. An
 * empty value of an optional key means "not set", as Enclaver reads it. */
#include <ctype.h>
#include <libgen.h>
#include <string.h>

#include <yaml.h>

#include "manifest/manifest.h"

struct mctx {
	const char *file;
	yaml_document_t *doc;
	struct manifest *m;
	struct err **err;
};

/* "file:LINE:COL: PATH: message" (libyaml counts from 0, editors from 1). */
static int perr(struct mctx *c, const yaml_node_t *node, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int perr(struct mctx *c, const yaml_node_t *node, const char *path, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	_cleanup_free_ char *msg = xvasprintf(fmt, ap);
	va_end(ap);
	return err_set(c->err, EINVAL, "%s:%zu:%zu: %s%s%s", c->file, node->start_mark.line + 1,
	               node->start_mark.column + 1, path, *path ? ": " : "", msg);
}

static yaml_node_t *node_at(struct mctx *c, int id)
{
	return yaml_document_get_node(c->doc, id);
}

static const char *node_kind(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_SCALAR_NODE: return "a scalar";
	case YAML_SEQUENCE_NODE: return "a list";
	case YAML_MAPPING_NODE: return "a mapping";
	default: return "nothing";
	}
}

static bool scalar_is_null(const yaml_node_t *n)
{
	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	const char *v = (const char *)n->data.scalar.value;
	return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") || !strcmp(v, "NULL");
}

static int get_string(struct mctx *c, yaml_node_t *n, const char *path, char **out)
{
	if (n->type != YAML_SCALAR_NODE || scalar_is_null(n))
		return perr(c, n, path, "expected a string, got %s", scalar_is_null(n) ? "null" : node_kind(n));
	if (strlen((const char *)n->data.scalar.value) != n->data.scalar.length)
		return perr(c, n, path, "contains a NUL character");
	if (*out != NULL)
		return perr(c, n, path, "given twice (old and new key names?)");
	*out = xstrdup((const char *)n->data.scalar.value);
	return 0;
}

/* An integer in [min, max]; quoted scalars are strings, not numbers. */
static int get_int(struct mctx *c, yaml_node_t *n, const char *path, int64_t min, int64_t max, int64_t *out)
{
	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE || scalar_is_null(n))
		return perr(c, n, path, "expected an integer, got %s",
		            scalar_is_null(n)             ? "null"
		            : n->type == YAML_SCALAR_NODE ? "a string"
		                                          : node_kind(n));
	const char *v = (const char *)n->data.scalar.value;
	const char *p = v;
	if (*p == '+')
		p++;
	bool neg = *p == '-';
	if (neg)
		p++;
	if (!isdigit((unsigned char)*p))
		return perr(c, n, path, "expected an integer, got \"%s\"", v);
	int64_t val = 0;
	for (; *p; p++) {
		if (!isdigit((unsigned char)*p))
			return perr(c, n, path, "expected an integer, got \"%s\"", v);
		if (val > (INT64_MAX - 9) / 10)
			return perr(c, n, path, "%s is out of range %lld..%lld", v, (long long)min, (long long)max);
		val = val * 10 + (*p - '0');
	}
	if (neg)
		val = -val;
	if (val < min || val > max)
		return perr(c, n, path, "%s is out of range %lld..%lld", v, (long long)min, (long long)max);
	*out = val;
	return 0;
}

static int get_port(struct mctx *c, yaml_node_t *n, const char *path, uint16_t *out)
{
	int64_t v;
	if (get_int(c, n, path, 1, 65535, &v) < 0)
		return -1;
	*out = (uint16_t)v;
	return 0;
}

static int expect(struct mctx *c, yaml_node_t *n, yaml_node_type_t type, const char *path)
{
	if (n->type == type)
		return 0;
	const char *want = type == YAML_MAPPING_NODE ? "a mapping" : type == YAML_SEQUENCE_NODE ? "a list" : "a scalar";
	return perr(c, n, path, "expected %s, got %s", want, scalar_is_null(n) ? "null" : node_kind(n));
}

/* Is key one of the words of a ", "-separated list? */
static bool key_listed(const char *list, const char *key)
{
	size_t n = strlen(key);
	if (n == 0)
		return false; /* strstr would find "" everywhere, and p += 0 never moves on */
	for (const char *p = list; (p = strstr(p, key)) != NULL; p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == ',' || p[n] == '\0'))
			return true;
	return false;
}

/* Walks a mapping: keys must be scalars and unique; each pair goes to fn,
 * which returns 1 when it knows the key, 0 when not, -1 on error. A key of
 * `optional` with an empty value (`egress:`, `ingress: ~`) is not set: fn
 * never sees it (Enclaver reads such a value as an absent Option). */
typedef int (*pair_fn)(struct mctx *c, const char *key, yaml_node_t *value, const char *path);

static int each_pair(struct mctx *c, yaml_node_t *map, const char *path, const char *allowed, const char *optional,
                     pair_fn fn)
{
	if (expect(c, map, YAML_MAPPING_NODE, *path ? path : "document") < 0)
		return -1;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = node_at(c, p->key), *v = node_at(c, p->value);
		if (k->type != YAML_SCALAR_NODE)
			return perr(c, k, path, "a key must be a string, got %s", node_kind(k));
		const char *key = (const char *)k->data.scalar.value;
		for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
			yaml_node_t *k2 = node_at(c, q->key);
			if (k2->type == YAML_SCALAR_NODE && !strcmp((const char *)k2->data.scalar.value, key))
				return perr(c, k, path, "duplicate key \"%s\"", key);
		}
		if (scalar_is_null(v) && key_listed(optional, key))
			continue;
		_cleanup_free_ char *sub = *path ? xasprintf("%s.%s", path, key) : xstrdup(key);
		int r = fn(c, key, v, sub);
		if (r < 0)
			return -1;
		if (r == 0)
			return perr(c, k, path, "unknown key \"%s\" (expected one of: %s)", key, allowed);
	}
	return 0;
}

static int on_sources(struct mctx *c, const char *key, yaml_node_t *v, const char *path)
{
	if (!strcmp(key, "app"))
		return get_string(c, v, path, &c->m->source_app) < 0 ? -1 : 1;
	bool old_odyn = !strcmp(key, "supervisor"), old_sleeve = !strcmp(key, "wrapper");
	if (old_odyn || old_sleeve)
		log_warn("%s:%zu:%zu: sources.%s is the old name of sources.%s", c->file, v->start_mark.line + 1,
		         v->start_mark.column + 1, key, old_odyn ? "odyn" : "sleeve");
	if (!strcmp(key, "odyn") || old_odyn)
		return get_string(c, v, path, &c->m->source_odyn) < 0 ? -1 : 1;
	if (!strcmp(key, "sleeve") || old_sleeve)
		return get_string(c, v, path, &c->m->source_sleeve) < 0 ? -1 : 1;
	return 0;
}

static int on_signature(struct mctx *c, const char *key, yaml_node_t *v, const char *path)
{
	if (!strcmp(key, "certificate"))
		return get_string(c, v, path, &c->m->signature_certificate) < 0 ? -1 : 1;
	if (!strcmp(key, "key"))
		return get_string(c, v, path, &c->m->signature_key) < 0 ? -1 : 1;
	return 0;
}

static int on_defaults(struct mctx *c, const char *key, yaml_node_t *v, const char *path)
{
	/* Upper bounds: far above any Nitro host, low enough to catch typos. */
	if (!strcmp(key, "cpu_count"))
		return get_int(c, v, path, 1, 4096, &c->m->cpu_count) < 0 ? -1 : 1;
	if (!strcmp(key, "memory_mb"))
		return get_int(c, v, path, 64, 64 * 1024 * 1024, &c->m->memory_mb) < 0 ? -1 : 1;
	return 0;
}

static int on_tls(struct mctx *c, const char *key, yaml_node_t *v, const char *path)
{
	struct manifest_ingress *in = &c->m->ingress[c->m->n_ingress - 1];
	if (!strcmp(key, "key_file"))
		return get_string(c, v, path, &in->tls_key_file) < 0 ? -1 : 1;
	if (!strcmp(key, "cert_file"))
		return get_string(c, v, path, &in->tls_cert_file) < 0 ? -1 : 1;
	return 0;
}

static int on_ingress_item(struct mctx *c, const char *key, yaml_node_t *v, const char *path)
{
	struct manifest_ingress *in = &c->m->ingress[c->m->n_ingress - 1];
	if (!strcmp(key, "listen_port"))
		return get_port(c, v, path, &in->listen_port) < 0 ? -1 : 1;
	if (!strcmp(key, "tls")) {
		if (each_pair(c, v, path, "key_file, cert_file", "", on_tls) < 0)
			return -1;
		if (!in->tls_key_file || !in->tls_cert_file)
			return perr(c, v, path, "needs both key_file and cert_file");
		return 1;
	}
	return 0;
}

/* Each pattern is compiled by the policy code that odyn and the host enforce
 * with, so a build cannot accept a pattern they would refuse. */
static int get_pattern_list(struct mctx *c, yaml_node_t *v, const char *path, bool deny, char ***out, size_t *n)
{
	if (expect(c, v, YAML_SEQUENCE_NODE, path) < 0)
		return -1;
	size_t count = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
	*out = xcalloc(count + 1, sizeof(char *));
	for (size_t i = 0; i < count; i++) {
		yaml_node_t *item = node_at(c, v->data.sequence.items.start[i]);
		_cleanup_free_ char *ipath = xasprintf("%s[%zu]", path, i);
		if (get_string(c, item, ipath, &(*out)[i]) < 0)
			return -1;
		(*n)++;
		if (egress_policy_add(&c->m->egress_policy, deny, (*out)[i], c->err) < 0)
			return err_wrap(c->err, "%s:%zu:%zu: %s", c->file, item->start_mark.line + 1,
			                item->start_mark.column + 1, ipath);
	}
	return 0;
}

static int on_egress(struct mctx *c, const char *key, yaml_node_t *v, const char *path)
{
	if (!strcmp(key, "proxy_port"))
		return get_port(c, v, path, &c->m->egress_proxy_port) < 0 ? -1 : 1;
	if (!strcmp(key, "allow"))
		return get_pattern_list(c, v, path, false, &c->m->egress_allow, &c->m->n_egress_allow) < 0 ? -1 : 1;
	if (!strcmp(key, "deny"))
		return get_pattern_list(c, v, path, true, &c->m->egress_deny, &c->m->n_egress_deny) < 0 ? -1 : 1;
	return 0;
}

static bool host_name_valid(const char *h)
{
	if (!*h || strlen(h) > 253)
		return false;
	for (const char *p = h; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr(".-_:[]", *p))
			return false;
	return true;
}

static int on_kms_endpoints(struct mctx *c, const char *key, yaml_node_t *v, const char *path)
{
	struct manifest *m = c->m;
	m->kms_endpoints = xrealloc(m->kms_endpoints, (m->n_kms_endpoints + 1) * sizeof(*m->kms_endpoints));
	struct manifest_kms_endpoint *ep = &m->kms_endpoints[m->n_kms_endpoints++];
	*ep = (struct manifest_kms_endpoint){.region = xstrdup(key)};
	if (get_string(c, v, path, &ep->host) < 0)
		return -1;
	if (!host_name_valid(ep->host))
		return perr(c, v, path, "\"%s\" is not a host name", ep->host);
	return 1;
}

static int on_kms(struct mctx *c, const char *key, yaml_node_t *v, const char *path)
{
	if (!strcmp(key, "listen_port"))
		return get_port(c, v, path, &c->m->kms_listen_port) < 0 ? -1 : 1;
	if (!strcmp(key, "endpoints"))
		return each_pair(c, v, path, "a region name", "", on_kms_endpoints) < 0 ? -1 : 1;
	return 0;
}

static int on_api(struct mctx *c, const char *key, yaml_node_t *v, const char *path)
{
	if (!strcmp(key, "listen_port"))
		return get_port(c, v, path, &c->m->api_listen_port) < 0 ? -1 : 1;
	return 0;
}

/* restart: odyn's restart policy for the app (our extension; docs/odyn.md).
 * Bounds match odyn's own reading of the same file. */
static int on_restart(struct mctx *c, const char *key, yaml_node_t *v, const char *path)
{
	struct manifest *m = c->m;
	if (!strcmp(key, "policy")) {
		if (get_string(c, v, path, &m->restart_policy) < 0)
			return -1;
		if (strcmp(m->restart_policy, "never") != 0 && strcmp(m->restart_policy, "on-failure") != 0)
			return perr(c, v, path, "\"%s\" is not never or on-failure", m->restart_policy);
		return 1;
	}
	if (!strcmp(key, "max_restarts"))
		return get_int(c, v, path, 0, 1000000, &m->restart_max) < 0 ? -1 : 1;
	if (!strcmp(key, "backoff_ms"))
		return get_int(c, v, path, 0, 3600000, &m->restart_backoff_ms) < 0 ? -1 : 1;
	return 0;
}

static int on_top(struct mctx *c, const char *key, yaml_node_t *v, const char *path)
{
	struct manifest *m = c->m;
	if (!strcmp(key, "version")) {
		if (get_string(c, v, path, &m->version) < 0)
			return -1;
		if (strcmp(m->version, "v1") != 0)
			return perr(c, v, path, "unsupported version \"%s\" (this enclaver reads v1)", m->version);
		return 1;
	}
	if (!strcmp(key, "name"))
		return get_string(c, v, path, &m->name) < 0 ? -1 : 1;
	if (!strcmp(key, "target"))
		return get_string(c, v, path, &m->target) < 0 ? -1 : 1;
	if (!strcmp(key, "sources")) {
		if (each_pair(c, v, path, "app, odyn, sleeve", "odyn, sleeve, supervisor, wrapper", on_sources) < 0)
			return -1;
		if (!m->source_app)
			return perr(c, v, path, "missing required key \"app\"");
		return 1;
	}
	if (!strcmp(key, "signature")) {
		if (each_pair(c, v, path, "certificate, key", "", on_signature) < 0)
			return -1;
		if (!m->signature_certificate || !m->signature_key)
			return perr(c, v, path, "needs both certificate and key");
		return 1;
	}
	if (!strcmp(key, "defaults"))
		return each_pair(c, v, path, "cpu_count, memory_mb", "cpu_count, memory_mb", on_defaults) < 0 ? -1 : 1;
	if (!strcmp(key, "ingress")) {
		if (expect(c, v, YAML_SEQUENCE_NODE, path) < 0)
			return -1;
		size_t count = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
		m->ingress = xcalloc(count ? count : 1, sizeof(*m->ingress));
		for (size_t i = 0; i < count; i++) {
			yaml_node_t *item = node_at(c, v->data.sequence.items.start[i]);
			_cleanup_free_ char *ipath = xasprintf("%s[%zu]", path, i);
			m->n_ingress++;
			if (each_pair(c, item, ipath, "listen_port, tls", "tls", on_ingress_item) < 0)
				return -1;
			if (m->ingress[i].listen_port == 0)
				return perr(c, item, ipath, "missing required key \"listen_port\"");
		}
		return 1;
	}
	if (!strcmp(key, "egress")) {
		m->has_egress = true;
		return each_pair(c, v, path, "proxy_port, allow, deny", "proxy_port, allow, deny", on_egress) < 0 ? -1
		                                                                                                  : 1;
	}
	if (!strcmp(key, "kms_proxy")) {
		m->has_kms_proxy = true;
		if (each_pair(c, v, path, "listen_port, endpoints", "endpoints", on_kms) < 0)
			return -1;
		if (m->kms_listen_port == 0)
			return perr(c, v, path, "missing required key \"listen_port\"");
		return 1;
	}
	if (!strcmp(key, "restart"))
		return each_pair(c, v, path, "policy, max_restarts, backoff_ms", "policy, max_restarts, backoff_ms",
		                 on_restart) < 0
		           ? -1
		           : 1;
	if (!strcmp(key, "api")) {
		m->has_api = true;
		if (each_pair(c, v, path, "listen_port", "", on_api) < 0)
			return -1;
		if (m->api_listen_port == 0)
			return perr(c, v, path, "missing required key \"listen_port\"");
		return 1;
	}
	if (!strcmp(key, "spire"))
		return perr(c, v, path, "SPIFFE workload identity via `spire` is not supported yet");
	return 0;
}

/* The value of key in a mapping node, or NULL (the document is checked already). */
static yaml_node_t *value_of(struct mctx *c, yaml_node_t *map, const char *key)
{
	if (map == NULL || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++)
		if (!strcmp((const char *)node_at(c, p->key)->data.scalar.value, key))
			return node_at(c, p->value);
	return NULL;
}

/* Every port odyn or the app listens on inside the enclave must be distinct
 * and clear of the internal vsock ports; an error points at the port's value
 * (egress's own section when its proxy_port is the default). */
static int check_ports(struct mctx *c, yaml_node_t *root)
{
	struct manifest *m = c->m;
	struct port_use {
		uint16_t port;
		char *what;
		yaml_node_t *node;
	} ports[256];
	size_t n = 0;
	yaml_node_t *ingress = value_of(c, root, "ingress");
	if (m->n_ingress > 200)
		return perr(c, ingress, "ingress", "%zu entries is too many", m->n_ingress);
	for (size_t i = 0; i < m->n_ingress; i++) {
		yaml_node_t *item = node_at(c, ingress->data.sequence.items.start[i]);
		ports[n] = (struct port_use){m->ingress[i].listen_port, xasprintf("ingress[%zu].listen_port", i),
		                             value_of(c, item, "listen_port")};
		n++;
	}
	if (manifest_egress_on(m)) {
		yaml_node_t *egress = value_of(c, root, "egress"), *pp = value_of(c, egress, "proxy_port");
		ports[n++] = (struct port_use){m->egress_proxy_port, xstrdup("egress.proxy_port"),
		                               pp && !scalar_is_null(pp) ? pp : egress};
	}
	if (m->has_kms_proxy)
		ports[n++] = (struct port_use){m->kms_listen_port, xstrdup("kms_proxy.listen_port"),
		                               value_of(c, value_of(c, root, "kms_proxy"), "listen_port")};
	if (m->has_api)
		ports[n++] = (struct port_use){m->api_listen_port, xstrdup("api.listen_port"),
		                               value_of(c, value_of(c, root, "api"), "listen_port")};
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (ports[i].port >= WIRE_PORT_FIRST && ports[i].port <= WIRE_PORT_LAST)
			rc = perr(c, ports[i].node, ports[i].what,
			          "port %u is reserved for enclaver's status, log and egress channels (%d-%d)",
			          ports[i].port, WIRE_PORT_FIRST, WIRE_PORT_LAST);
		for (size_t j = 0; j < i && rc == 0; j++)
			if (ports[i].port == ports[j].port)
				rc = perr(c, ports[i].node, ports[i].what, "port %u is already used by %s",
				          ports[i].port, ports[j].what);
	}
	for (size_t i = 0; i < n; i++)
		free(ports[i].what);
	return rc;
}

static char *join_dir(const char *dir, const char *p)
{
	return p[0] == '/' ? xstrdup(p) : xasprintf("%s/%s", dir, p);
}

static int parse_document(struct mctx *c, yaml_parser_t *parser)
{
	if (!yaml_parser_load(parser, c->doc))
		return err_set(c->err, EINVAL, "%s:%zu:%zu: %s%s%s", c->file, parser->problem_mark.line + 1,
		               parser->problem_mark.column + 1, parser->problem ? parser->problem : "YAML syntax error",
		               parser->context ? " " : "", parser->context ? parser->context : "");
	yaml_node_t *root = yaml_document_get_root_node(c->doc);
	if (root == NULL)
		return err_set(c->err, EINVAL, "%s: the manifest is empty", c->file);
	if (each_pair(c, root, "",
	              "version, name, target, sources, signature, defaults, ingress, egress, kms_proxy, api, restart, "
	              "spire",
	              "signature, defaults, ingress, egress, kms_proxy, api, restart, spire", on_top) < 0)
		return -1;
	struct manifest *m = c->m;
	const char *missing = !m->version      ? "version"
	                      : !m->name       ? "name"
	                      : !m->target     ? "target"
	                      : !m->source_app ? "sources"
	                                       : NULL;
	if (missing)
		return perr(c, root, "", "missing required key \"%s\"", missing);
	/* A second document would be silently ignored by a lenient reader. */
	yaml_document_t next;
	if (!yaml_parser_load(parser, &next))
		return err_set(c->err, EINVAL, "%s:%zu:%zu: %s", c->file, parser->problem_mark.line + 1,
		               parser->problem_mark.column + 1,
		               parser->problem ? parser->problem : "YAML syntax error");
	bool more = yaml_document_get_root_node(&next) != NULL;
	size_t line = more ? yaml_document_get_root_node(&next)->start_mark.line + 1 : 0;
	yaml_document_delete(&next);
	if (more)
		return err_set(c->err, EINVAL, "%s:%zu: a second YAML document; the manifest must be one document",
		               c->file, line);
	return check_ports(c, root);
}

/* libyaml's token fetching takes time that grows with the square of the nesting of flow
 * collections (each token scans one saved simple key per open level: 100,000 `[` took 27 s, at
 * build and in odyn at boot). So the tokens are scanned first, by libyaml itself (no second
 * opinion on YAML's lexing), and the scan stops at the first collection nested deeper than the
 * limit: up to there each token costs at most that many levels, so the check is linear. A scan
 * error is left to the parse, which reports it with its position. */
static int check_flow_depth(const char *name, const char *data, size_t len, struct err **err)
{
	yaml_parser_t scan;
	if (!yaml_parser_initialize(&scan))
		abort();
	yaml_parser_set_input_string(&scan, (const unsigned char *)data, len);
	int depth = 0, rc = 0;
	for (;;) {
		yaml_token_t tok;
		if (!yaml_parser_scan(&scan, &tok))
			break;
		yaml_token_type_t type = tok.type;
		if (type == YAML_FLOW_SEQUENCE_START_TOKEN || type == YAML_FLOW_MAPPING_START_TOKEN) {
			if (++depth > MANIFEST_MAX_FLOW_DEPTH)
				rc = err_set(
				    err, EINVAL, "%s:%zu:%zu: flow collections ([...] or {...}) nested deeper than %d",
				    name, tok.start_mark.line + 1, tok.start_mark.column + 1, MANIFEST_MAX_FLOW_DEPTH);
		} else if ((type == YAML_FLOW_SEQUENCE_END_TOKEN || type == YAML_FLOW_MAPPING_END_TOKEN) && depth > 0) {
			depth--;
		}
		yaml_token_delete(&tok);
		if (rc < 0 || type == YAML_STREAM_END_TOKEN)
			break;
	}
	yaml_parser_delete(&scan);
	return rc;
}

int manifest_parse(const char *name, const char *dir, const char *data, size_t len, struct manifest **out,
                   struct err **err)
{
	*out = NULL;
	if (len > MANIFEST_MAX_BYTES)
		return err_set(err, EFBIG, "%s: over %u bytes", name, MANIFEST_MAX_BYTES);
	const char *nul = memchr(data, '\0', len);
	if (nul)
		return err_set(err, EINVAL, "%s: NUL byte at offset %td", name, nul - data);
	if (check_flow_depth(name, data, len, err) < 0)
		return -1;
	struct manifest *m = xcalloc(1, sizeof(*m));
	m->path = xstrdup(name);
	m->dir = xstrdup(dir);
	m->raw = xmalloc(len + 1);
	memcpy(m->raw, data, len);
	m->raw[len] = '\0';
	m->raw_len = len;
	m->egress_proxy_port = MANIFEST_EGRESS_DEFAULT_PROXY_PORT;

	yaml_parser_t parser;
	yaml_document_t doc;
	memset(&doc, 0, sizeof(doc));
	if (!yaml_parser_initialize(&parser))
		abort();
	yaml_parser_set_input_string(&parser, (const unsigned char *)m->raw, len);
	struct mctx c = {.file = name, .doc = &doc, .m = m, .err = err};
	int rc = parse_document(&c, &parser);
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	if (rc < 0) {
		manifest_free(m);
		return -1;
	}
	if (m->signature_certificate) {
		/* A key may be a PKCS#11 URI or a KMS key ARN rather than a file: kept as written. */
		bool key_is_file = !str_has_prefix(m->signature_key, "pkcs11:") && !str_has_prefix(m->signature_key, "arn:");
		char *cert = join_dir(dir, m->signature_certificate);
		char *key = key_is_file ? join_dir(dir, m->signature_key) : xstrdup(m->signature_key);
		free(m->signature_certificate);
		free(m->signature_key);
		m->signature_certificate = cert;
		m->signature_key = key;
	}
	*out = m;
	return 0;
}

int manifest_load(const char *path, struct manifest **out, struct err **err)
{
	*out = NULL;
	if (strcmp(path, "-") == 0) {
		_cleanup_buf_ struct buf b = {0};
		char chunk[65536];
		for (;;) {
			ssize_t n = io_read_full(STDIN_FILENO, chunk, sizeof(chunk), err);
			if (n < 0)
				return err_wrap(err, "read the manifest from stdin");
			buf_append(&b, chunk, (size_t)n);
			if (b.len > MANIFEST_MAX_BYTES)
				return err_set(err, EFBIG, "<stdin>: over %u bytes", MANIFEST_MAX_BYTES);
			if ((size_t)n < sizeof(chunk))
				break;
		}
		return manifest_parse("<stdin>", ".", b.len ? b.data : "", b.len, out, err);
	}
	_cleanup_free_ char *data = NULL;
	size_t len = 0;
	if (io_read_file(path, MANIFEST_MAX_BYTES, &data, &len, err) < 0)
		return err_wrap(err, "manifest");
	_cleanup_free_ char *copy = xstrdup(path);
	return manifest_parse(path, dirname(copy), data, len, out, err);
}

static void free_strv(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void manifest_free(struct manifest *m)
{
	if (!m)
		return;
	free(m->path), free(m->dir), free(m->raw);
	free(m->version), free(m->name), free(m->target), free(m->restart_policy);
	free(m->source_app), free(m->source_odyn), free(m->source_sleeve);
	free(m->signature_certificate), free(m->signature_key);
	for (size_t i = 0; i < m->n_ingress; i++)
		free(m->ingress[i].tls_key_file), free(m->ingress[i].tls_cert_file);
	free(m->ingress);
	free_strv(m->egress_allow, m->n_egress_allow);
	free_strv(m->egress_deny, m->n_egress_deny);
	for (size_t i = 0; i < m->n_kms_endpoints; i++)
		free(m->kms_endpoints[i].region), free(m->kms_endpoints[i].host);
	free(m->kms_endpoints);
	egress_policy_free(&m->egress_policy);
	free(m);
}
