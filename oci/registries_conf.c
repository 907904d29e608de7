/* registries_conf: containers-registries.conf(5) version 2, the files podman
 * reads (the main one and its registries.conf.d drop-ins, merged):
 * unqualified-search-registries, short-name-mode, [aliases] and [[registry]]
 * tables (prefix, location, insecure, blocked, mirrors), with a strict reader
 * of the TOML subset they are written in; and what a pull should try. */
#include <ctype.h>
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>

#include "oci/oci.h"

#define CONF_MAX (1 << 20)

static void registry_conf_free(struct oci_registry_conf *r)
{
	free(r->prefix);
	free(r->location);
	for (size_t j = 0; j < r->n_mirrors; j++)
		free(r->mirrors[j].location);
	free(r->mirrors);
	free(r->path);
}

static void alias_free(struct oci_registry_alias *a)
{
	free(a->name);
	free(a->value);
	free(a->path);
}

void oci_names_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

void oci_registries_free(struct oci_registries *c)
{
	if (c == NULL)
		return;
	oci_names_free(c->search, c->n_search);
	free(c->search_from.path);
	free(c->mode_from.path);
	for (size_t i = 0; i < c->n_regs; i++)
		registry_conf_free(&c->regs[i]);
	free(c->regs);
	for (size_t i = 0; i < c->n_aliases; i++)
		alias_free(&c->aliases[i]);
	free(c->aliases);
	oci_names_free(c->files, c->n_files);
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
		_cleanup_free_ char *word = xstrndup(r->p, n ? n : 1);
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

static void origin_set(struct oci_conf_origin *o, const struct reader *r)
{
	free(o->path);
	o->path = xstrdup(r->path);
	o->line = r->line;
}

/* True when s (a name without its registry part checked) carries a tag:
 * a ':' in its last component. */
static bool name_has_tag(const char *s)
{
	const char *slash = strrchr(s, '/');
	return strchr(slash ? slash : s, ':') != NULL;
}

/* An [aliases] entry: the name must be a short name without tag or digest;
 * the value a name with a registry, without tag or digest, or "" (which
 * erases what an earlier file set). A name appears once per file. */
static int alias_add(struct reader *r, struct oci_registries *c, const char *name, const char *value, struct err **err)
{
	for (size_t i = 0; i < c->n_aliases; i++)
		if (strcmp(c->aliases[i].name, name) == 0)
			return err_set(err, EINVAL, "%s:%d: alias \"%s\" is already set at line %d", r->path, r->line,
			               name, c->aliases[i].line);
	if (strchr(name, '@') || name_has_tag(name))
		return err_set(err, EINVAL, "%s:%d: alias \"%s\": a short name has no tag or digest", r->path, r->line,
		               name);
	_cleanup_free_ char *text = xasprintf("docker://%s", name);
	struct oci_ref ref;
	struct err *perr = NULL;
	if (oci_ref_parse(text, &ref, &perr) < 0) {
		err_set(err, EINVAL, "%s:%d: alias \"%s\": %s", r->path, r->line, name, perr->msg);
		err_free(&perr);
		return -1;
	}
	bool is_short = ref.short_name != NULL;
	oci_ref_free(&ref);
	if (!is_short)
		return err_set(err, EINVAL, "%s:%d: alias \"%s\": a short name names no registry", r->path, r->line,
		               name);
	char *norm = NULL;
	if (value[0] != '\0') {
		if (strchr(value, '@') || name_has_tag(value))
			return err_set(err, EINVAL, "%s:%d: alias \"%s\" = \"%s\": the value has no tag or digest",
			               r->path, r->line, name, value);
		_cleanup_free_ char *vtext = xasprintf("docker://%s", value);
		if (oci_ref_parse(vtext, &ref, &perr) < 0) {
			err_set(err, EINVAL, "%s:%d: alias \"%s\": %s", r->path, r->line, name, perr->msg);
			err_free(&perr);
			return -1;
		}
		if (ref.short_name == NULL)
			norm = xasprintf("%s/%s", ref.registry, ref.repository);
		oci_ref_free(&ref);
		if (norm == NULL)
			return err_set(err, EINVAL,
			               "%s:%d: alias \"%s\" = \"%s\": the value must name a registry and a repository",
			               r->path, r->line, name, value);
	}
	c->aliases = xrealloc(c->aliases, (c->n_aliases + 1) * sizeof(*c->aliases));
	c->aliases[c->n_aliases++] = (struct oci_registry_alias){
	    .name = xstrdup(name), .value = norm, .path = xstrdup(r->path), .line = r->line};
	return 0;
}

static int set_key(struct reader *r, struct oci_registries *c, enum section sec, const char *key, struct val *v,
                   struct err **err)
{
	if (sec == SEC_ALIASES) {
		if (want_kind(r, key, v, VAL_STRING, err) < 0)
			return -1;
		return alias_add(r, c, key, v->str, err);
	}
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
			origin_set(&c->search_from, r);
			return 0;
		}
		if (strcmp(key, "credential-helpers") == 0)
			return want_kind(r, key, v, VAL_ARRAY, err);
		if (strcmp(key, "short-name-mode") == 0) {
			if (want_kind(r, key, v, VAL_STRING, err) < 0)
				return -1;
			static const char *const modes[] = {"", "enforcing", "permissive", "disabled"};
			for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
				if (strcmp(v->str, modes[i]) == 0) {
					c->short_name_mode = (enum oci_short_name_mode)i;
					if (i)
						origin_set(&c->mode_from, r);
					return 0;
				}
			}
			return err_set(err, EINVAL,
			               "%s:%d: short-name-mode must be \"enforcing\", \"permissive\" or \"disabled\", "
			               "not \"%s\"",
			               r->path, r->line, v->str);
		}
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
	_cleanup_free_ char *name = xstrndup(start, (size_t)(r->p - start));
	for (int i = 0; i < (array ? 2 : 1); i++) {
		if (r->p >= r->end || *r->p != ']')
			return rd_error(r, err, "unterminated table header [", name);
		r->p++;
	}
	if (array && strcmp(name, "registry") == 0) {
		c->regs = xrealloc(c->regs, (c->n_regs + 1) * sizeof(*c->regs));
		memset(&c->regs[c->n_regs], 0, sizeof(*c->regs));
		c->regs[c->n_regs].path = xstrdup(r->path);
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
	out->files = xcalloc(1, sizeof(*out->files));
	out->files[out->n_files++] = xstrdup(path);
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
					key = xstrndup(s, (size_t)(r.p - s));
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

/* ---------------------------------------------------------------- loading */
static void origin_take(struct oci_conf_origin *into, struct oci_conf_origin *from)
{
	free(into->path);
	*into = *from;
	memset(from, 0, sizeof(*from));
}

void oci_registries_merge(struct oci_registries *c, struct oci_registries *later)
{
	/* Settings the later file sets replace ours whole. */
	if (later->search_from.path) {
		oci_names_free(c->search, c->n_search);
		c->search = steal_pointer(&later->search);
		c->n_search = later->n_search;
		later->n_search = 0;
		origin_take(&c->search_from, &later->search_from);
	}
	if (later->short_name_mode != OCI_SHORT_NAME_UNSET) {
		c->short_name_mode = later->short_name_mode;
		origin_take(&c->mode_from, &later->mode_from);
	}
	/* [[registry]] tables by prefix, aliases by name: replaced or added. */
	for (size_t i = 0; i < later->n_regs; i++) {
		size_t j = 0;
		while (j < c->n_regs && strcmp(c->regs[j].prefix, later->regs[i].prefix) != 0)
			j++;
		if (j == c->n_regs)
			c->regs = xrealloc(c->regs, ++c->n_regs * sizeof(*c->regs));
		else
			registry_conf_free(&c->regs[j]);
		c->regs[j] = later->regs[i];
	}
	later->n_regs = 0;
	for (size_t i = 0; i < later->n_aliases; i++) {
		size_t j = 0;
		while (j < c->n_aliases && strcmp(c->aliases[j].name, later->aliases[i].name) != 0)
			j++;
		if (j == c->n_aliases)
			c->aliases = xrealloc(c->aliases, ++c->n_aliases * sizeof(*c->aliases));
		else
			alias_free(&c->aliases[j]);
		c->aliases[j] = later->aliases[i];
	}
	later->n_aliases = 0;
	c->files = xrealloc(c->files, (c->n_files + later->n_files) * sizeof(*c->files));
	for (size_t i = 0; i < later->n_files; i++)
		c->files[c->n_files++] = later->files[i];
	later->n_files = 0;
	oci_registries_free(later);
}

/* Reads and parses one file; ENOENT is reported as such (not wrapped) so a
 * caller can choose to ignore a file that is not there. */
static int load_file(const char *path, struct oci_registries *out, struct err **err)
{
	_cleanup_free_ char *text = NULL;
	size_t len;
	if (io_read_file(path, CONF_MAX, &text, &len, err) < 0)
		return -1;
	return oci_registries_parse(path, text, len, out, err);
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.conf files of a drop-in folder (not its sub-folders), in lexical
 * (byte) order; a missing folder has none. */
static int dropins_list(const char *dir, char ***out, size_t *n_out, struct err **err)
{
	*out = NULL;
	*n_out = 0;
	DIR *d = opendir(dir);
	if (d == NULL)
		return errno == ENOENT || errno == ENOTDIR ? 0 : err_sys(err, "registries.conf.d: %s", dir);
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name);
		if (n < 5 || strcmp(e->d_name + n - 5, ".conf") != 0)
			continue;
		char *path = xasprintf("%s/%s", dir, e->d_name);
		struct stat st;
		if (stat(path, &st) < 0 || S_ISDIR(st.st_mode)) {
			free(path);
			continue;
		}
		*out = xrealloc(*out, (*n_out + 1) * sizeof(**out));
		(*out)[(*n_out)++] = path;
	}
	closedir(d);
	if (*n_out)
		qsort(*out, *n_out, sizeof(**out), name_cmp);
	return 0;
}

static int regs_cmp(const void *a, const void *b)
{
	return strcmp(((const struct oci_registry_conf *)a)->prefix, ((const struct oci_registry_conf *)b)->prefix);
}

/* The aliases podman records after an interactive choice: only [aliases],
 * and they win over registries.conf's (containers-registries.conf(5)). */
static int load_recorded_aliases(const char *path, struct oci_registries *c, struct err **err)
{
	struct oci_registries rec;
	struct err *e = NULL;
	if (load_file(path, &rec, &e) < 0) {
		if (e->code == ENOENT) {
			err_free(&e);
			return 0;
		}
		*err = e;
		return err_wrap(err, "short-name aliases");
	}
	if (rec.search_from.path || rec.mode_from.path || rec.n_regs) {
		oci_registries_free(&rec);
		return err_set(err, EINVAL, "%s: only [aliases] belongs in this file (podman records short-name choices there)",
		               path);
	}
	oci_registries_merge(c, &rec);
	return 0;
}

char *oci_short_name_aliases_path(void)
{
	if (geteuid() == 0)
		return xstrdup("/var/cache/containers/short-name-aliases.conf");
	const char *cache = getenv("XDG_CACHE_HOME");
	if (cache && *cache == '/')
		return xasprintf("%s/containers/short-name-aliases.conf", cache);
	const char *home = getenv("HOME");
	return home && *home ? xasprintf("%s/.cache/containers/short-name-aliases.conf", home) : NULL;
}

int oci_registries_load_at(const char *etc, const char *recorded_aliases, struct oci_registries *out,
                           struct err **err)
{
	memset(out, 0, sizeof(*out));
	/* podman's choice of files (containers-registries.conf.d(5)). Set but
	 * empty, CONTAINERS_REGISTRIES_CONF means the defaults, as in podman
	 * (REGISTRIES_CONFIG_PATH is only read when it is not set at all). */
	const char *env = getenv("CONTAINERS_REGISTRIES_CONF");
	if (env == NULL)
		env = getenv("REGISTRIES_CONFIG_PATH");
	const char *home = getenv("HOME");
	_cleanup_free_ char *user = home && *home ? xasprintf("%s/.config/containers/registries.conf", home) : NULL;
	_cleanup_free_ char *user_d = user ? xasprintf("%s.d", user) : NULL;
	_cleanup_free_ char *sys = xasprintf("%s/registries.conf", etc);
	_cleanup_free_ char *sys_d = xasprintf("%s/registries.conf.d", etc);
	const char *main_path = sys;
	bool required = false;
	const char *dirs[2] = {sys_d, user_d};
	struct stat st;
	if (env && *env) {
		main_path = env;
		required = true;
	} else if (user && stat(user, &st) == 0) {
		main_path = user;
		dirs[0] = NULL; /* the user's own file: the system's drop-ins do not apply */
	}
	struct err *e = NULL;
	if (load_file(main_path, out, &e) < 0) {
		if (required || e->code != ENOENT) {
			*err = e;
			return err_wrap(err, "registries.conf");
		}
		err_free(&e);
		memset(out, 0, sizeof(*out));
	}
	for (size_t k = 0; k < 2; k++) {
		if (dirs[k] == NULL)
			continue;
		char **files;
		size_t n;
		if (dropins_list(dirs[k], &files, &n, err) < 0) {
			oci_registries_free(out);
			return -1;
		}
		int r = 0;
		for (size_t i = 0; i < n && r == 0; i++) {
			struct oci_registries later;
			if (load_file(files[i], &later, &e) == 0) {
				oci_registries_merge(out, &later);
			} else if (e->code == ENOENT) {
				err_free(&e); /* removed since the listing */
			} else {
				*err = e;
				r = err_wrap(err, "registries.conf drop-in");
			}
		}
		oci_names_free(files, n);
		if (r < 0) {
			oci_registries_free(out);
			return -1;
		}
	}
	if (recorded_aliases && load_recorded_aliases(recorded_aliases, out, err) < 0) {
		oci_registries_free(out);
		return -1;
	}
	/* podman keeps the tables sorted by prefix; ties of equally long
	 * matches then go the same way. */
	if (out->n_regs)
		qsort(out->regs, out->n_regs, sizeof(*out->regs), regs_cmp);
	return 0;
}

int oci_registries_load(struct oci_registries *out, struct err **err)
{
	_cleanup_free_ char *recorded = oci_short_name_aliases_path();
	return oci_registries_load_at("/etc/containers", recorded, out, err);
}

/* ---------------------------------------------------------------- short names */
static char *origin_text(const struct oci_conf_origin *o)
{
	return o->path ? xasprintf("%s:%d", o->path, o->line) : xstrdup("the default");
}

/* "name:tag@digest" as a full name, docker.io's library/ added. */
static int full_name(const char *text, char **out, struct err **err)
{
	_cleanup_free_ char *t = xasprintf("docker://%s", text);
	struct oci_ref ref;
	if (oci_ref_parse(t, &ref, err) < 0)
		return -1;
	*out = oci_ref_name(&ref);
	oci_ref_free(&ref);
	return 0;
}

int oci_registries_resolve(const struct oci_registries *c, const struct oci_ref *ref, char ***names, size_t *n,
                           char **why, struct err **err)
{
	*names = NULL;
	*n = 0;
	if (why)
		*why = NULL;
	if (ref->short_name == NULL) {
		*names = xcalloc(1, sizeof(**names));
		(*names)[(*n)++] = oci_ref_name(ref);
		return 0;
	}
	_cleanup_free_ char *suffix = xasprintf("%s%s%s%s", ref->tag ? ":" : "", ref->tag ? ref->tag : "",
	                                        ref->digest ? "@" : "", ref->digest ? ref->digest : "");
	/* An alias first: it is used whatever the mode and the search list say. */
	for (size_t i = 0; i < c->n_aliases; i++) {
		const struct oci_registry_alias *a = &c->aliases[i];
		if (a->value == NULL || strcmp(a->name, ref->short_name) != 0)
			continue;
		_cleanup_free_ char *text = xasprintf("%s%s", a->value, suffix);
		char *name;
		if (full_name(text, &name, err) < 0)
			return err_wrap(err, "alias \"%s\" (%s:%d)", a->name, a->path, a->line);
		*names = xcalloc(1, sizeof(**names));
		(*names)[(*n)++] = name;
		if (why)
			*why = xasprintf("short name \"%s\" is an alias (%s:%d) for %s", ref->short_name, a->path,
			                 a->line, name);
		return 0;
	}
	if (c->n_search == 0) {
		/* podman would stop here; enclaver keeps docker's rule: docker.io. */
		*names = xcalloc(1, sizeof(**names));
		(*names)[(*n)++] = oci_ref_name(ref);
		return 0;
	}
	char **list = xcalloc(c->n_search, sizeof(*list));
	for (size_t i = 0; i < c->n_search; i++) {
		_cleanup_free_ char *text = xasprintf("%s/%s%s", c->search[i], ref->short_name, suffix);
		if (full_name(text, &list[i], err) < 0) {
			oci_names_free(list, i);
			return err_wrap(err, "unqualified-search-registries entry \"%s\"", c->search[i]);
		}
	}
	_cleanup_free_ char *from = origin_text(&c->search_from);
	/* Several places and no one to ask: enforcing refuses to guess. */
	if (c->n_search > 1 && c->short_name_mode == OCI_SHORT_NAME_ENFORCING) {
		struct buf b = {0};
		for (size_t i = 0; i < c->n_search; i++)
			buf_printf(&b, "%s%s", i ? ", " : "", list[i]);
		_cleanup_free_ char *mode = origin_text(&c->mode_from);
		err_set(err, EINVAL,
		        "short name \"%s\" is ambiguous: short-name-mode is \"enforcing\" (%s) and the "
		        "unqualified-search-registries (%s) give %zu candidates: %s; use a full name or add an "
		        "[aliases] entry",
		        ref->short_name, mode, from, c->n_search, buf_str(&b));
		buf_free(&b);
		oci_names_free(list, c->n_search);
		return -1;
	}
	*names = list;
	*n = c->n_search;
	if (why)
		*why = xasprintf("short name \"%s\": unqualified-search-registries (%s): %zu to try", ref->short_name,
		                 from, c->n_search);
	return 0;
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
		return err_set(err, EACCES, "%s is blocked by %s:%d (registry %s)", name, reg->path, reg->line,
		               reg->prefix);
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
