/* registries_conf: containers-registries.conf(5) version 2, the file podman
 * and skopeo read: unqualified-search-registries and [[registry]] tables
 * (prefix, location, insecure, blocked, mirrors), with a strict reader of
 * the TOML subset it is written in; and what a pull should try, in order. */
#include <ctype.h>
#include <string.h>
#include <sys/stat.h>

#include "oci/oci.h"

#define CONF_MAX (1 << 20)

void oci_registries_free(struct oci_registries *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n_search; i++)
		free(c->search[i]);
	free(c->search);
	for (size_t i = 0; i < c->n_regs; i++) {
		struct oci_registry_conf *r = &c->regs[i];
		free(r->prefix);
		free(r->location);
		for (size_t j = 0; j < r->n_mirrors; j++)
			free(r->mirrors[j].location);
		free(r->mirrors);
	}
	free(c->regs);
	free(c->path);
	memset(c, 0, sizeof(*c));
}

/* ---------------------------------------------------------------- TOML values */
enum val_kind { VAL_STRING, VAL_BOOL, VAL_ARRAY };
struct val {
	enum val_kind kind;
	char *str;  /* VAL_STRING */
	bool b;     /* VAL_BOOL */
	char **arr; /* VAL_ARRAY: strings only (all this file has) */
	size_t n;
};

static void val_free(struct val *v)
{
	free(v->str);
	for (size_t i = 0; i < v->n; i++)
		free(v->arr[i]);
	free(v->arr);
	memset(v, 0, sizeof(*v));
}

struct reader {
	const char *path;
	const char *p, *end;
	int line;
};

static int rd_error(struct reader *r, struct err **err, const char *fmt, const char *detail)
{
	return err_set(err, EINVAL, "%s:%d: %s%s", r->path, r->line, fmt, detail ? detail : "");
}

/* Skips spaces, tabs, comments and (when `newlines`) line ends. */
static void skip_blank(struct reader *r, bool newlines)
{
	while (r->p < r->end) {
		char c = *r->p;
		if (c == ' ' || c == '\t' || c == '\r')
			r->p++;
		else if (c == '#')
			while (r->p < r->end && *r->p != '\n')
				r->p++;
		else if (c == '\n' && newlines) {
			r->line++;
			r->p++;
		} else
			break;
	}
}

static int parse_string(struct reader *r, char **out, struct err **err)
{
	char q = *r->p++;
	struct buf b = {0};
	while (r->p < r->end && *r->p != q) {
		char c = *r->p++;
		if (c == '\n') {
			buf_free(&b);
			return rd_error(r, err, "unterminated string", NULL);
		}
		if (c == '\\' && q == '"') {
			if (r->p >= r->end)
				break;
			char e = *r->p++;
			switch (e) {
			case '"': c = '"'; break;
			case '\\': c = '\\'; break;
			case 'n': c = '\n'; break;
			case 't': c = '\t'; break;
			default: {
				buf_free(&b);
				char s[2] = {e, 0};
				return rd_error(r, err, "unsupported escape \\", s);
			}
			}
		}
		buf_putc(&b, c);
	}
	if (r->p >= r->end) {
		buf_free(&b);
		return rd_error(r, err, "unterminated string", NULL);
	}
	r->p++;
	buf_str(&b);
	*out = b.data ? b.data : xstrdup("");
	return 0;
}

static int parse_value(struct reader *r, struct val *v, struct err **err)
{
	memset(v, 0, sizeof(*v));
	if (r->p >= r->end || *r->p == '\n' || *r->p == '#')
		return rd_error(r, err, "a key without a value", NULL);
	if (*r->p == '"' || *r->p == '\'') {
		v->kind = VAL_STRING;
		return parse_string(r, &v->str, err);
	}
	if (*r->p == '[') {
		v->kind = VAL_ARRAY;
		r->p++;
		for (;;) {
			skip_blank(r, true);
			if (r->p < r->end && *r->p == ']') {
				r->p++;
				return 0;
			}
			if (r->p >= r->end || (*r->p != '"' && *r->p != '\''))
				return rd_error(r, err, "arrays here hold only strings", NULL);
			char *s;
			if (parse_string(r, &s, err) < 0)
				return -1;
			v->arr = xrealloc(v->arr, (v->n + 1) * sizeof(*v->arr));
			v->arr[v->n++] = s;
			skip_blank(r, true);
			if (r->p < r->end && *r->p == ',')
				r->p++;
			else if (r->p >= r->end || *r->p != ']')
				return rd_error(r, err, "expected , or ] in an array", NULL);
		}
	}
	size_t n = 0;
	while (r->p + n < r->end && isalnum((unsigned char)r->p[n]))
		n++;
	if (n == 4 && strncmp(r->p, "true", 4) == 0)
		v->b = true;
	else if (!(n == 5 && strncmp(r->p, "false", 5) == 0)) {
		_cleanup_free_ char *word = strndup(r->p, n ? n : 1);
		return rd_error(r, err, "expected a string, true/false or an array, not ", word);
	}
	v->kind = VAL_BOOL;
	r->p += n;
	return 0;
}

/* ---------------------------------------------------------------- the tables */
enum section { SEC_TOP, SEC_REGISTRY, SEC_MIRROR, SEC_ALIASES };

static int want_kind(struct reader *r, const char *key, const struct val *v, enum val_kind k, struct err **err)
{
	if (v->kind == k)
		return 0;
	static const char *const names[] = {"a string", "true or false", "an array of strings"};
	return err_set(err, EINVAL, "%s:%d: %s must be %s", r->path, r->line, key, names[k]);
}

static int set_key(struct reader *r, struct oci_registries *c, enum section sec, const char *key, struct val *v,
                   struct err **err)
{
	if (sec == SEC_ALIASES)
		return want_kind(r, key, v, VAL_STRING, err); /* short names are not used here */
	if (sec == SEC_TOP) {
		if (strcmp(key, "unqualified-search-registries") == 0) {
			if (want_kind(r, key, v, VAL_ARRAY, err) < 0)
				return -1;
			for (size_t i = 0; i < v->n; i++) {
				if (v->arr[i][0] == '\0' || strchr(v->arr[i], '/'))
					return err_set(err, EINVAL, "%s:%d: %s: \"%s\" is not a host[:port]", r->path,
					               r->line, key, v->arr[i]);
			}
			c->search = v->arr;
			c->n_search = v->n;
			v->arr = NULL;
			v->n = 0;
			return 0;
		}
		if (strcmp(key, "credential-helpers") == 0)
			return want_kind(r, key, v, VAL_ARRAY, err);
		if (strcmp(key, "short-name-mode") == 0)
			return want_kind(r, key, v, VAL_STRING, err);
		return err_set(err, EINVAL, "%s:%d: unknown setting \"%s\"", r->path, r->line, key);
	}
	struct oci_registry_conf *reg = &c->regs[c->n_regs - 1];
	if (sec == SEC_MIRROR) {
		struct oci_registry_mirror *m = &reg->mirrors[reg->n_mirrors - 1];
		if (strcmp(key, "location") == 0) {
			if (want_kind(r, key, v, VAL_STRING, err) < 0)
				return -1;
			m->location = steal_pointer(&v->str);
		} else if (strcmp(key, "insecure") == 0) {
			if (want_kind(r, key, v, VAL_BOOL, err) < 0)
				return -1;
			m->insecure = v->b;
		} else if (strcmp(key, "pull-from-mirror") == 0) {
			if (want_kind(r, key, v, VAL_STRING, err) < 0)
				return -1;
			if (strcmp(v->str, "all") == 0 || v->str[0] == '\0')
				m->pull_from = OCI_MIRROR_ALL;
			else if (strcmp(v->str, "digest-only") == 0)
				m->pull_from = OCI_MIRROR_DIGEST_ONLY;
			else if (strcmp(v->str, "tag-only") == 0)
				m->pull_from = OCI_MIRROR_TAG_ONLY;
			else
				return err_set(err, EINVAL,
				               "%s:%d: pull-from-mirror must be all, digest-only or tag-only", r->path,
				               r->line);
		} else {
			return err_set(err, EINVAL, "%s:%d: unknown mirror setting \"%s\"", r->path, r->line, key);
		}
		return 0;
	}
	if (strcmp(key, "prefix") == 0 || strcmp(key, "location") == 0) {
		if (want_kind(r, key, v, VAL_STRING, err) < 0)
			return -1;
		char **slot = key[0] == 'p' ? &reg->prefix : &reg->location;
		*slot = steal_pointer(&v->str);
	} else if (strcmp(key, "insecure") == 0 || strcmp(key, "blocked") == 0 ||
	           strcmp(key, "mirror-by-digest-only") == 0) {
		if (want_kind(r, key, v, VAL_BOOL, err) < 0)
			return -1;
		bool *slot = key[0] == 'i'   ? &reg->insecure
		             : key[0] == 'b' ? &reg->blocked
		                             : &reg->mirror_by_digest_only;
		*slot = v->b;
	} else {
		return err_set(err, EINVAL, "%s:%d: unknown registry setting \"%s\"", r->path, r->line, key);
	}
	return 0;
}

static int parse_header(struct reader *r, struct oci_registries *c, enum section *sec, struct err **err)
{
	bool array = r->end - r->p >= 2 && r->p[1] == '[';
	r->p += array ? 2 : 1;
	const char *start = r->p;
	while (r->p < r->end && *r->p != ']' && *r->p != '\n')
		r->p++;
	_cleanup_free_ char *name = strndup(start, (size_t)(r->p - start));
	for (int i = 0; i < (array ? 2 : 1); i++) {
		if (r->p >= r->end || *r->p != ']')
			return rd_error(r, err, "unterminated table header [", name);
		r->p++;
	}
	if (array && strcmp(name, "registry") == 0) {
		c->regs = xrealloc(c->regs, (c->n_regs + 1) * sizeof(*c->regs));
		memset(&c->regs[c->n_regs], 0, sizeof(*c->regs));
		c->regs[c->n_regs++].line = r->line;
		*sec = SEC_REGISTRY;
	} else if (array && strcmp(name, "registry.mirror") == 0) {
		if (c->n_regs == 0)
			return rd_error(r, err, "[[registry.mirror]] before any [[registry]]", NULL);
		struct oci_registry_conf *reg = &c->regs[c->n_regs - 1];
		reg->mirrors = xrealloc(reg->mirrors, (reg->n_mirrors + 1) * sizeof(*reg->mirrors));
		memset(&reg->mirrors[reg->n_mirrors++], 0, sizeof(*reg->mirrors));
		*sec = SEC_MIRROR;
	} else if (!array && strcmp(name, "aliases") == 0) {
		*sec = SEC_ALIASES;
	} else if (!array && str_has_prefix(name, "registries.")) {
		return rd_error(r, err, "version 1 tables are not supported (use [[registry]] tables): ", name);
	} else {
		return err_set(err, EINVAL, "%s:%d: unknown table %s%s%s", r->path, r->line, array ? "[[" : "[", name,
		               array ? "]]" : "]");
	}
	return 0;
}

/* Keys seen in the current table, to refuse a repeated one as TOML does. */
struct seen {
	char **keys;
	size_t n;
};

static void seen_clear(struct seen *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->keys[i]);
	free(s->keys);
	s->keys = NULL;
	s->n = 0;
}

static int check_registries(const char *path, struct oci_registries *c, struct err **err)
{
	for (size_t i = 0; i < c->n_regs; i++) {
		struct oci_registry_conf *reg = &c->regs[i];
		if (reg->prefix == NULL && reg->location == NULL)
			return err_set(err, EINVAL, "%s:%d: [[registry]] needs a prefix or a location", path,
			               reg->line);
		if (reg->prefix == NULL)
			reg->prefix = xstrdup(reg->location);
		bool wild = str_has_prefix(reg->prefix, "*.");
		if (wild && strchr(reg->prefix, '/'))
			return err_set(err, EINVAL,
			               "%s:%d: prefix \"%s\": a wildcard prefix is a host only (*.example.com)", path,
			               reg->line, reg->prefix);
		if (strchr(reg->prefix + (wild ? 2 : 0), '*'))
			return err_set(err, EINVAL, "%s:%d: prefix \"%s\": '*' only as a leading \"*.\"", path,
			               reg->line, reg->prefix);
		if (reg->location == NULL && !wild)
			reg->location = xstrdup(reg->prefix);
		if (reg->location && (reg->location[0] == '\0' && !wild))
			return err_set(err, EINVAL, "%s:%d: location is empty", path, reg->line);
		for (size_t j = 0; j < reg->n_mirrors; j++) {
			if (reg->mirrors[j].location == NULL || reg->mirrors[j].location[0] == '\0')
				return err_set(err, EINVAL, "%s:%d: a mirror of %s has no location", path, reg->line,
				               reg->prefix);
			if (reg->mirror_by_digest_only && reg->mirrors[j].pull_from != OCI_MIRROR_ALL)
				return err_set(err, EINVAL,
				               "%s:%d: pull-from-mirror and mirror-by-digest-only cannot both be set",
				               path, reg->line);
		}
		for (size_t j = 0; j < i; j++)
			if (strcmp(c->regs[j].prefix, reg->prefix) == 0)
				return err_set(err, EINVAL, "%s:%d: prefix \"%s\" is already configured at line %d",
				               path, reg->line, reg->prefix, c->regs[j].line);
	}
	return 0;
}

int oci_registries_parse(const char *path, const char *text, size_t len, struct oci_registries *out, struct err **err)
{
	memset(out, 0, sizeof(*out));
	out->path = xstrdup(path);
	struct reader r = {.path = path, .p = text, .end = text + len, .line = 1};
	enum section sec = SEC_TOP;
	struct seen seen = {0};
	int rc = memchr(text, '\0', len) ? err_set(err, EINVAL, "%s: not a text file (a NUL byte)", path) : 0;
	while (rc == 0) {
		skip_blank(&r, true);
		if (r.p >= r.end)
			break;
		if (*r.p == '[') {
			rc = parse_header(&r, out, &sec, err);
			seen_clear(&seen);
		} else {
			char *key = NULL;
			if (*r.p == '"' || *r.p == '\'') {
				rc = parse_string(&r, &key, err);
			} else {
				const char *s = r.p;
				while (r.p < r.end && (isalnum((unsigned char)*r.p) || *r.p == '-' || *r.p == '_'))
					r.p++;
				if (r.p == s) {
					char c[2] = {*r.p, 0};
					rc = rd_error(&r, err, "expected a key, a [table] or a comment, not ", c);
				} else {
					key = strndup(s, (size_t)(r.p - s));
				}
			}
			if (rc == 0) {
				skip_blank(&r, false);
				if (r.p >= r.end || *r.p != '=')
					rc = rd_error(&r, err, "expected = after ", key);
			}
			for (size_t i = 0; rc == 0 && i < seen.n; i++)
				if (strcmp(seen.keys[i], key) == 0)
					rc = rd_error(&r, err, "a key given twice in one table: ", key);
			struct val v = {0};
			if (rc == 0) {
				r.p++;
				skip_blank(&r, false);
				int line = r.line;
				rc = parse_value(&r, &v, err);
				int after = r.line;
				r.line = line; /* errors about the key name the line it is on */
				if (rc == 0)
					rc = set_key(&r, out, sec, key, &v, err);
				r.line = after;
			}
			val_free(&v);
			if (key) {
				seen.keys = xrealloc(seen.keys, (seen.n + 1) * sizeof(*seen.keys));
				seen.keys[seen.n++] = key;
			}
		}
		if (rc == 0) {
			skip_blank(&r, false);
			if (r.p < r.end && *r.p != '\n')
				rc = rd_error(&r, err, "unexpected text after the value", NULL);
		}
		if (rc < 0)
			break;
	}
	seen_clear(&seen);
	if (rc == 0)
		rc = check_registries(path, out, err);
	if (rc < 0)
		oci_registries_free(out);
	return rc;
}

int oci_registries_load(struct oci_registries *out, struct err **err)
{
	memset(out, 0, sizeof(*out));
	/* podman's order: $CONTAINERS_REGISTRIES_CONF, else the user's file,
	 * else the system's; the first found is the only one read. */
	const char *env = getenv("CONTAINERS_REGISTRIES_CONF");
	_cleanup_free_ char *user = NULL;
	const char *path = NULL;
	if (env && *env) {
		path = env;
	} else {
		const char *xdg = getenv("XDG_CONFIG_HOME");
		const char *home = getenv("HOME");
		if (xdg && *xdg == '/')
			user = xasprintf("%s/containers/registries.conf", xdg);
		else if (home && *home)
			user = xasprintf("%s/.config/containers/registries.conf", home);
		struct stat st;
		if (user && stat(user, &st) == 0)
			path = user;
		else if (stat("/etc/containers/registries.conf", &st) == 0)
			path = "/etc/containers/registries.conf";
	}
	if (path == NULL)
		return 0;
	_cleanup_free_ char *text = NULL;
	size_t len;
	if (io_read_file(path, CONF_MAX, &text, &len, err) < 0)
		return err_wrap(err, "registries.conf");
	return oci_registries_parse(path, text, len, out, err);
}

/* ---------------------------------------------------------------- lookups */
/* How much of `name` ("host/repo[:tag|@digest]") the prefix covers, or 0. */
static size_t prefix_match(const char *prefix, const char *name)
{
	if (str_has_prefix(prefix, "*.")) {
		size_t host = strcspn(name, "/");
		size_t suffix = strlen(prefix) - 1; /* ".example.com" */
		if (host > suffix && strncmp(name + host - suffix, prefix + 1, suffix) == 0)
			return host;
		return 0;
	}
	size_t n = strlen(prefix);
	if (strncmp(name, prefix, n) != 0)
		return 0;
	char next = name[n];
	if (next == '\0' || next == '/')
		return n;
	if ((next == ':' || next == '@') && strchr(prefix, '/'))
		return n;
	return 0;
}

const struct oci_registry_conf *oci_registries_find(const struct oci_registries *c, const char *name, size_t *matched)
{
	const struct oci_registry_conf *best = NULL;
	size_t best_len = 0;
	for (size_t i = 0; c && i < c->n_regs; i++) {
		size_t m = prefix_match(c->regs[i].prefix, name);
		if (m > best_len) {
			best = &c->regs[i];
			best_len = m;
		}
	}
	if (matched)
		*matched = best_len;
	return best;
}

void oci_endpoints_free(struct oci_endpoint *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(e[i].name);
	free(e);
}

int oci_registries_endpoints(const struct oci_registries *c, const char *name, bool by_digest,
                             struct oci_endpoint **out, size_t *n_out, struct err **err)
{
	*out = NULL;
	*n_out = 0;
	size_t matched;
	const struct oci_registry_conf *reg = oci_registries_find(c, name, &matched);
	if (reg && reg->blocked)
		return err_set(err, EACCES, "%s is blocked by %s (registry %s)", name, c->path, reg->prefix);
	struct oci_endpoint *e = xcalloc(reg ? reg->n_mirrors + 1 : 1, sizeof(*e));
	size_t n = 0;
	const char *rest = name + matched;
	for (size_t i = 0; reg && i < reg->n_mirrors; i++) {
		const struct oci_registry_mirror *m = &reg->mirrors[i];
		if ((reg->mirror_by_digest_only || m->pull_from == OCI_MIRROR_DIGEST_ONLY) && !by_digest)
			continue;
		if (m->pull_from == OCI_MIRROR_TAG_ONLY && by_digest)
			continue;
		e[n].name = xasprintf("%s%s", m->location, rest);
		e[n].insecure = m->insecure;
		e[n].mirror = true;
		n++;
	}
	if (reg && reg->location && reg->location[0])
		e[n].name = xasprintf("%s%s", reg->location, rest);
	else
		e[n].name = xstrdup(name);
	e[n].insecure = reg && reg->insecure;
	n++;
	*out = e;
	*n_out = n;
	return 0;
}

bool oci_registries_insecure(const struct oci_registries *c, const char *name)
{
	const struct oci_registry_conf *reg = oci_registries_find(c, name, NULL);
	return reg && reg->insecure;
}
