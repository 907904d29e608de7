/* manifest: reads the parts of enclaver.yaml odyn acts on: egress
 * (proxy_port, allow, deny), ingress listen ports, and the restart policy.
 * The builder validated the whole file strictly; odyn re-checks what it uses. */
#include <errno.h>
#include <string.h>
#include <yaml.h>

#include "odyn/internal.h"

static yaml_node_t *map_get(yaml_document_t *doc, yaml_node_t *map, const char *key)
{
	if (map == NULL || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		yaml_node_t *k = yaml_document_get_node(doc, p->key);
		if (k && k->type == YAML_SCALAR_NODE && strcmp((const char *)k->data.scalar.value, key) == 0)
			return yaml_document_get_node(doc, p->value);
	}
	return NULL;
}

static const char *scalar(yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int get_uint(yaml_node_t *n, const char *field, long max, long *out, struct err **err)
{
	const char *s = scalar(n);
	char *end;
	if (s == NULL)
		return err_set(err, EINVAL, "%s: want a number", field);
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > max)
		return err_set(err, EINVAL, "%s: \"%s\" is not a number in 0..%ld", field, s, max);
	*out = v;
	return 0;
}

static int load_patterns(struct odyn_config *c, yaml_document_t *doc, yaml_node_t *list, bool deny, struct err **err)
{
	const char *field = deny ? "egress.deny" : "egress.allow";
	if (list == NULL)
		return 0;
	if (list->type != YAML_SEQUENCE_NODE)
		return err_set(err, EINVAL, "%s: want a list", field);
	int i = 0;
	for (yaml_node_item_t *it = list->data.sequence.items.start; it < list->data.sequence.items.top; it++, i++) {
		const char *pat = scalar(yaml_document_get_node(doc, *it));
		if (pat == NULL)
			return err_set(err, EINVAL, "%s[%d]: want a string", field, i);
		if (egress_policy_add(&c->policy, deny, pat, err) < 0)
			return err_wrap(err, "%s[%d]", field, i);
	}
	return 0;
}

static int apply(struct odyn_config *c, yaml_document_t *doc, struct err **err)
{
	yaml_node_t *root = yaml_document_get_root_node(doc);
	if (root == NULL || root->type != YAML_MAPPING_NODE)
		return err_set(err, EINVAL, "not a mapping");
	long v;
	yaml_node_t *eg = map_get(doc, root, "egress");
	if (eg) {
		if (eg->type != YAML_MAPPING_NODE)
			return err_set(err, EINVAL, "egress: want a mapping");
		c->egress_enabled = true;
		yaml_node_t *pp = map_get(doc, eg, "proxy_port");
		if (pp) {
			if (get_uint(pp, "egress.proxy_port", 65535, &v, err) < 0)
				return -1;
			if (v == 0)
				return err_set(err, EINVAL, "egress.proxy_port: 0 is not a port");
			c->proxy_port = (uint16_t)v;
		}
		if (load_patterns(c, doc, map_get(doc, eg, "allow"), false, err) < 0 ||
		    load_patterns(c, doc, map_get(doc, eg, "deny"), true, err) < 0)
			return -1;
	}
	yaml_node_t *ing = map_get(doc, root, "ingress");
	if (ing) {
		if (ing->type != YAML_SEQUENCE_NODE)
			return err_set(err, EINVAL, "ingress: want a list");
		int i = 0;
		for (yaml_node_item_t *it = ing->data.sequence.items.start; it < ing->data.sequence.items.top;
		     it++, i++) {
			yaml_node_t *lp = map_get(doc, yaml_document_get_node(doc, *it), "listen_port");
			char field[48];
			snprintf(field, sizeof(field), "ingress[%d].listen_port", i);
			if (get_uint(lp, field, 65535, &v, err) < 0)
				return -1;
			if (odyn_config_add_ingress_port(c, (uint16_t)v, err) < 0)
				return err_wrap(err, "ingress[%d]", i);
			yaml_node_t *tls = map_get(doc, yaml_document_get_node(doc, *it), "tls");
			if (tls) {
				const char *cert = scalar(map_get(doc, tls, "cert_file"));
				const char *key = scalar(map_get(doc, tls, "key_file"));
				if (!cert || !key)
					return err_set(err, EINVAL, "ingress[%d].tls: want cert_file and key_file", i);
				if (odyn_config_set_ingress_tls(c, cert, key, err) < 0)
					return err_wrap(err, "ingress[%d].tls", i);
			}
		}
	}
	yaml_node_t *rs = map_get(doc, root, "restart");
	if (rs) {
		if (rs->type != YAML_MAPPING_NODE)
			return err_set(err, EINVAL, "restart: want a mapping");
		const char *pol = scalar(map_get(doc, rs, "policy"));
		if (pol && strcmp(pol, "never") == 0)
			c->restart = ODYN_RESTART_NEVER;
		else if (pol && strcmp(pol, "on-failure") == 0)
			c->restart = ODYN_RESTART_ON_FAILURE;
		else if (pol)
			return err_set(err, EINVAL, "restart.policy: \"%s\" is not never or on-failure", pol);
		yaml_node_t *n;
		if ((n = map_get(doc, rs, "max_restarts"))) {
			if (get_uint(n, "restart.max_restarts", 1000000, &v, err) < 0)
				return -1;
			c->max_restarts = (int)v;
		}
		if ((n = map_get(doc, rs, "backoff_ms"))) {
			if (get_uint(n, "restart.backoff_ms", 3600000, &v, err) < 0)
				return -1;
			c->backoff_ms = v > 0 ? (int)v : 1;
		}
	}
	return 0;
}

int odyn_config_load_manifest(struct odyn_config *c, const char *path, struct err **err)
{
	_cleanup_free_ char *data = NULL;
	size_t len;
	if (io_read_file(path, 1 << 20, &data, &len, err) < 0)
		return err_wrap(err, "manifest %s", path);
	yaml_parser_t parser;
	yaml_document_t doc;
	if (!yaml_parser_initialize(&parser))
		return err_set(err, ENOMEM, "manifest %s: yaml parser", path);
	yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
	if (!yaml_parser_load(&parser, &doc)) {
		err_set(err, EINVAL, "manifest %s: line %zu column %zu: %s", path, parser.problem_mark.line + 1,
		        parser.problem_mark.column + 1, parser.problem ? parser.problem : "parse error");
		yaml_parser_delete(&parser);
		return -1;
	}
	int r = apply(c, &doc, err);
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	if (r < 0)
		return err_wrap(err, "manifest %s", path);
	return 0;
}
