/* ref: image references as people type them (docker's grammar and defaults)
 * with a transport in front; every rejection says which part is wrong. */
#include <ctype.h>
#include <string.h>

#include "oci/oci.h"

#define NAME_MAX_LEN 255
#define TAG_MAX_LEN  128

void oci_ref_free(struct oci_ref *ref)
{
	if (ref == NULL)
		return;
	free(ref->registry);
	free(ref->repository);
	free(ref->tag);
	free(ref->digest);
	free(ref->short_name);
	free(ref->path);
	free(ref->local_tag);
	memset(ref, 0, sizeof(*ref));
	ref->archive_index = -1;
}

bool oci_tag_valid(const char *tag)
{
	size_t n = strlen(tag);
	if (n == 0 || n > TAG_MAX_LEN)
		return false;
	if (!(isalnum((unsigned char)tag[0]) || tag[0] == '_'))
		return false;
	for (size_t i = 1; i < n; i++) {
		unsigned char c = (unsigned char)tag[i];
		if (!(isalnum(c) || c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* One path component: [a-z0-9]+ joined by '.', '_', '__' or runs of '-'. */
static int check_component(const char *s, size_t n, const char *text, struct err **err)
{
	if (n == 0)
		return err_set(err, EINVAL, "invalid reference \"%s\": empty path component in the repository name",
		               text);
	for (size_t i = 0; i < n; i++) {
		if (s[i] >= 'A' && s[i] <= 'Z')
			return err_set(err, EINVAL, "invalid reference \"%s\": repository name must be lowercase",
			               text);
	}
	if (!is_lower_alnum(s[0]) || !is_lower_alnum(s[n - 1]))
		return err_set(err, EINVAL,
		               "invalid reference \"%s\": repository path component \"%.*s\" must start and end with a "
		               "letter or digit",
		               text, (int)n, s);
	for (size_t i = 0; i < n;) {
		if (is_lower_alnum(s[i])) {
			i++;
			continue;
		}
		size_t j = i;
		while (j < n && !is_lower_alnum(s[j]))
			j++;
		size_t len = j - i;
		bool ok = (len == 1 && (s[i] == '.' || s[i] == '_' || s[i] == '-')) ||
		          (len == 2 && s[i] == '_' && s[i + 1] == '_');
		if (!ok) {
			ok = true;
			for (size_t k = i; k < j; k++)
				ok = ok && s[k] == '-';
		}
		if (!ok)
			return err_set(err, EINVAL,
			               "invalid reference \"%s\": repository path component \"%.*s\" has an invalid "
			               "character or separator \"%.*s\"",
			               text, (int)n, s, (int)len, s + i);
		i = j;
	}
	return 0;
}

/* host[:port], host a DNS name or a bracketed IPv6 address. */
static int check_domain(const char *d, const char *text, struct err **err)
{
	const char *port = NULL;
	if (d[0] == '[') {
		const char *close = strchr(d, ']');
		if (close == NULL || close == d + 1)
			return err_set(err, EINVAL, "invalid reference \"%s\": unterminated IPv6 address in \"%s\"",
			               text, d);
		for (const char *p = d + 1; p < close; p++) {
			if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.')
				return err_set(err, EINVAL, "invalid reference \"%s\": invalid IPv6 address in \"%s\"",
				               text, d);
		}
		if (close[1] == ':')
			port = close + 2;
		else if (close[1] != '\0')
			return err_set(err, EINVAL, "invalid reference \"%s\": unexpected text after the IPv6 address",
			               text);
	} else {
		const char *colon = strchr(d, ':');
		size_t hlen = colon ? (size_t)(colon - d) : strlen(d);
		if (hlen == 0)
			return err_set(err, EINVAL, "invalid reference \"%s\": empty registry host", text);
		/* Labels of letters, digits and inner hyphens, joined by dots. */
		size_t start = 0;
		for (size_t i = 0; i <= hlen; i++) {
			if (i < hlen && d[i] != '.') {
				if (!isalnum((unsigned char)d[i]) && d[i] != '-')
					return err_set(
					    err, EINVAL,
					    "invalid reference \"%s\": registry host \"%.*s\" has an invalid "
					    "character '%c'",
					    text, (int)hlen, d, d[i]);
				continue;
			}
			if (i == start || d[start] == '-' || d[i - 1] == '-')
				return err_set(err, EINVAL, "invalid reference \"%s\": invalid registry host \"%.*s\"",
				               text, (int)hlen, d);
			start = i + 1;
		}
		if (colon)
			port = colon + 1;
	}
	if (port) {
		size_t n = strlen(port);
		if (n == 0 || n > 5 || strspn(port, "0123456789") != n || atoi(port) > 65535)
			return err_set(err, EINVAL, "invalid reference \"%s\": invalid registry port \"%s\"", text,
			               port);
	}
	return 0;
}

/* NAME[:TAG][@DIGEST] with docker's defaults. */
static int parse_docker(const char *text, const char *s, struct oci_ref *out, struct err **err)
{
	if (*s == '\0')
		return err_set(err, EINVAL, "invalid reference \"%s\": empty image name", text);
	_cleanup_free_ char *work = xstrdup(s);
	char *at = strchr(work, '@');
	if (at) {
		*at = '\0';
		_cleanup_err_ struct err *derr = NULL;
		if (oci_digest_check(at + 1, &derr) < 0)
			return err_set(err, EINVAL, "invalid reference \"%s\": %s", text, derr->msg);
		out->digest = xstrdup(at + 1);
	}
	char *slash = strrchr(work, '/');
	char *colon = strrchr(slash ? slash : work, ':');
	/* An IPv6 host has colons before any slash: "[::1]" alone is no tag. */
	if (colon && slash == NULL && strchr(work, ']') && colon < strchr(work, ']'))
		colon = NULL;
	if (colon) {
		*colon = '\0';
		const char *tag = colon + 1;
		if (!oci_tag_valid(tag))
			return err_set(
			    err, EINVAL,
			    "invalid reference \"%s\": tag \"%s\" is invalid (letters, digits, '_', '.', '-'; at "
			    "most 128, not starting with '.' or '-')",
			    text, tag);
		out->tag = xstrdup(tag);
	}
	if (work[0] == '\0')
		return err_set(err, EINVAL, "invalid reference \"%s\": empty image name", text);

	/* The first component is a registry when it looks like a host. */
	char *first_slash = strchr(work, '/');
	const char *path = work;
	if (first_slash) {
		size_t n = (size_t)(first_slash - work);
		bool lower = true;
		for (size_t i = 0; i < n; i++)
			lower = lower && !(work[i] >= 'A' && work[i] <= 'Z');
		if (memchr(work, '.', n) || memchr(work, ':', n) || memchr(work, '[', n) ||
		    (n == 9 && strncmp(work, "localhost", 9) == 0) || !lower) {
			*first_slash = '\0';
			if (check_domain(work, text, err) < 0)
				return -1;
			out->registry = xstrdup(strcmp(work, "index.docker.io") == 0 ? "docker.io" : work);
			path = first_slash + 1;
		}
	}
	if (out->registry == NULL) {
		out->registry = xstrdup("docker.io");
		out->short_name = xstrdup(path);
	}
	if (*path == '\0')
		return err_set(err, EINVAL, "invalid reference \"%s\": missing repository name after the registry",
		               text);
	for (const char *p = path;;) {
		const char *end = strchr(p, '/');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if (check_component(p, n, text, err) < 0)
			return -1;
		if (end == NULL)
			break;
		p = end + 1;
	}
	if (strcmp(out->registry, "docker.io") == 0 && strchr(path, '/') == NULL)
		out->repository = xasprintf("library/%s", path);
	else
		out->repository = xstrdup(path);
	if (strlen(out->registry) + 1 + strlen(out->repository) > NAME_MAX_LEN)
		return err_set(err, EINVAL, "invalid reference \"%s\": repository name longer than %d characters", text,
		               NAME_MAX_LEN);
	if (out->tag == NULL && out->digest == NULL)
		out->tag = xstrdup("latest");
	return 0;
}

/* OCI layout ref.name: [A-Za-z0-9._-]+ joined by ':', '/', '@' or '+'. */
static bool layout_tag_valid(const char *t)
{
	if (*t == '\0')
		return false;
	bool need_alnum = true;
	for (; *t; t++) {
		unsigned char c = (unsigned char)*t;
		if (isalnum(c) || c == '.' || c == '_' || c == '-') {
			need_alnum = false;
		} else if (c == ':' || c == '/' || c == '@' || c == '+') {
			if (need_alnum)
				return false;
			need_alnum = true;
		} else {
			return false;
		}
	}
	return !need_alnum;
}

static int parse_local(const char *text, const char *s, struct oci_ref *out, struct err **err)
{
	const char *colon = strchr(s, ':');
	size_t plen = colon ? (size_t)(colon - s) : strlen(s);
	if (plen == 0)
		return err_set(err, EINVAL, "invalid reference \"%s\": missing path", text);
	out->path = xstrndup(s, plen);
	if (colon == NULL)
		return 0;
	const char *rest = colon + 1;
	if (*rest == '\0')
		return err_set(err, EINVAL, "invalid reference \"%s\": empty tag after the path", text);
	if (out->transport != OCI_TRANSPORT_DOCKER_ARCHIVE) {
		if (!layout_tag_valid(rest))
			return err_set(err, EINVAL, "invalid reference \"%s\": invalid image name \"%s\" in the layout",
			               text, rest);
		out->local_tag = xstrdup(rest);
		return 0;
	}
	if (rest[0] == '@') {
		char *end;
		long n = strtol(rest + 1, &end, 10);
		if (rest[1] == '\0' || *end != '\0' || n < 0 || n > 1000000)
			return err_set(err, EINVAL, "invalid reference \"%s\": \"%s\" is not an image index (@N)", text,
			               rest);
		out->archive_index = (int)n;
		return 0;
	}
	struct oci_ref named = {.archive_index = -1};
	_cleanup_err_ struct err *nerr = NULL;
	if (parse_docker(rest, rest, &named, &nerr) < 0) {
		oci_ref_free(&named);
		return err_set(err, EINVAL, "invalid reference \"%s\": image name: %s", text, nerr->msg);
	}
	if (named.digest) {
		oci_ref_free(&named);
		return err_set(err, EINVAL,
		               "invalid reference \"%s\": a docker-archive image is named by tag, not digest", text);
	}
	out->local_tag = oci_ref_name(&named);
	oci_ref_free(&named);
	return 0;
}

int oci_ref_parse(const char *text, struct oci_ref *out, struct err **err)
{
	memset(out, 0, sizeof(*out));
	out->archive_index = -1;
	static const struct {
		const char *prefix;
		enum oci_transport t;
	} transports[] = {
	    {"docker://", OCI_TRANSPORT_DOCKER},
	    {"oci:", OCI_TRANSPORT_OCI},
	    {"oci-archive:", OCI_TRANSPORT_OCI_ARCHIVE},
	    {"docker-archive:", OCI_TRANSPORT_DOCKER_ARCHIVE},
	};
	const char *rest = text;
	bool found = false;
	for (size_t i = 0; i < sizeof(transports) / sizeof(transports[0]); i++) {
		if (str_has_prefix(text, transports[i].prefix)) {
			out->transport = transports[i].t;
			rest = text + strlen(transports[i].prefix);
			found = true;
			break;
		}
	}
	if (!found && str_has_prefix(text, "docker:"))
		return err_set(err, EINVAL, "invalid reference \"%s\": the docker transport is written docker://NAME",
		               text);
	int r = out->transport == OCI_TRANSPORT_DOCKER ? parse_docker(text, rest, out, err)
	                                               : parse_local(text, rest, out, err);
	if (r < 0)
		oci_ref_free(out);
	return r;
}

char *oci_ref_name(const struct oci_ref *ref)
{
	struct buf b = {0};
	buf_printf(&b, "%s/%s", ref->registry, ref->repository);
	if (ref->tag)
		buf_printf(&b, ":%s", ref->tag);
	if (ref->digest)
		buf_printf(&b, "@%s", ref->digest);
	buf_str(&b);
	return b.data;
}

char *oci_ref_format(const struct oci_ref *ref)
{
	switch (ref->transport) {
	case OCI_TRANSPORT_DOCKER: {
		_cleanup_free_ char *name = oci_ref_name(ref);
		return xasprintf("docker://%s", name);
	}
	case OCI_TRANSPORT_OCI:
	case OCI_TRANSPORT_OCI_ARCHIVE: {
		const char *t = ref->transport == OCI_TRANSPORT_OCI ? "oci" : "oci-archive";
		return ref->local_tag ? xasprintf("%s:%s:%s", t, ref->path, ref->local_tag)
		                      : xasprintf("%s:%s", t, ref->path);
	}
	case OCI_TRANSPORT_DOCKER_ARCHIVE:
		if (ref->local_tag)
			return xasprintf("docker-archive:%s:%s", ref->path, ref->local_tag);
		if (ref->archive_index >= 0)
			return xasprintf("docker-archive:%s:@%d", ref->path, ref->archive_index);
		return xasprintf("docker-archive:%s", ref->path);
	}
	return xstrdup("?");
}
