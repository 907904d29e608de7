/* config: odyn's command line, the user lookup in the app's /etc/passwd and
 * /etc/group, and the defaults that match enclaver-compat.md's ports. */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "manifest/manifest.h"
#include "odyn/internal.h"

static void set_default_addr(struct transport_addr *a, const char *text)
{
	struct err *e = NULL;
	if (transport_parse(text, a, &e) < 0)
		abort(); /* our own constants */
}

void odyn_config_init(struct odyn_config *c)
{
	memset(c, 0, sizeof(*c));
	c->grace_ms = 10000;
	c->linger_ms = 1000;
	c->ingress_connect_ms = ODYN_INGRESS_CONNECT_MS;
	c->ingress_hold_ms = ODYN_INGRESS_HOLD_MS;
	c->backoff_ms = 1000;
	c->console = true;
	c->proxy_port = 10000;
	char addr[32];
	snprintf(addr, sizeof(addr), "vsock:any:%d", WIRE_PORT_STATUS);
	set_default_addr(&c->status_addr, addr);
	snprintf(addr, sizeof(addr), "vsock:any:%d", WIRE_PORT_LOG);
	set_default_addr(&c->log_addr, addr);
	snprintf(addr, sizeof(addr), "vsock:%d:%d", WIRE_PARENT_CID, WIRE_PORT_EGRESS);
	set_default_addr(&c->egress_addr, addr);
}

void odyn_strv_free(char **v)
{
	if (v == NULL)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

static void strv_push(char ***v, const char *s)
{
	size_t n = 0;
	while (*v && (*v)[n])
		n++;
	*v = xrealloc(*v, (n + 2) * sizeof(**v));
	(*v)[n] = xstrdup(s);
	(*v)[n + 1] = NULL;
}

void odyn_config_free(struct odyn_config *c)
{
	odyn_strv_free(c->argv);
	odyn_strv_free(c->env);
	free(c->workdir);
	free(c->ramdisk_marker);
	free(c->groups);
	for (size_t i = 0; i < c->n_ingress; i++) {
		free(c->ingress[i].tls_cert_file);
		free(c->ingress[i].tls_key_file);
	}
	free(c->ingress);
	free(c->nsm_path);
	free(c->kms_region);
	free(c->kms_ca_file);
	free(c->imds);
	for (size_t i = 0; i < c->n_kms_endpoints; i++)
		free(c->kms_endpoints[i].region), free(c->kms_endpoints[i].host);
	free(c->kms_endpoints);
	egress_policy_free(&c->policy);
	memset(c, 0, sizeof(*c));
}

static int parse_int(const char *s, long min, long max, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int add_ingress(struct odyn_config *c, const char *spec, struct err **err)
{
	struct odyn_ingress in = {0};
	const char *eq = strchr(spec, '=');
	if (eq == NULL) {
		long port;
		if (parse_int(spec, 1, 65535, &port) < 0)
			return err_set(err, EINVAL, "--ingress \"%s\": want PORT or LISTEN=TARGET", spec);
		if (port >= WIRE_PORT_FIRST && port <= WIRE_PORT_LAST)
			return err_set(err, EINVAL, "--ingress %ld: ports %d-%d are odyn's own", port, WIRE_PORT_FIRST,
			               WIRE_PORT_LAST);
		_cleanup_free_ char *l = xasprintf("vsock:any:%ld", port);
		_cleanup_free_ char *t = xasprintf("tcp:127.0.0.1:%ld", port);
		set_default_addr(&in.listen, l);
		set_default_addr(&in.target, t);
	} else {
		_cleanup_free_ char *l = xstrndup(spec, (size_t)(eq - spec));
		if (transport_parse(l, &in.listen, err) < 0 || transport_parse(eq + 1, &in.target, err) < 0)
			return err_wrap(err, "--ingress");
	}
	c->ingress = xrealloc(c->ingress, (c->n_ingress + 1) * sizeof(*c->ingress));
	c->ingress[c->n_ingress++] = in;
	return 0;
}

int odyn_config_set_ingress_tls(struct odyn_config *c, const char *cert_file, const char *key_file, struct err **err)
{
	if (c->n_ingress == 0)
		return err_set(err, EINVAL, "TLS for an ingress port given before any ingress port");
	struct odyn_ingress *in = &c->ingress[c->n_ingress - 1];
	if (!*cert_file || !*key_file)
		return err_set(err, EINVAL, "ingress TLS needs both a certificate and a key file");
	free(in->tls_cert_file);
	free(in->tls_key_file);
	in->tls_cert_file = xstrdup(cert_file);
	in->tls_key_file = xstrdup(key_file);
	return 0;
}

static int add_ingress_tls(struct odyn_config *c, const char *spec, struct err **err)
{
	const char *comma = strchr(spec, ',');
	if (!comma)
		return err_set(err, EINVAL, "--ingress-tls \"%s\": want CERT_FILE,KEY_FILE", spec);
	_cleanup_free_ char *cert = xstrndup(spec, (size_t)(comma - spec));
	return odyn_config_set_ingress_tls(c, cert, comma + 1, err) < 0 ? err_wrap(err, "--ingress-tls") : 0;
}

int odyn_config_add_ingress_port(struct odyn_config *c, uint16_t port, struct err **err)
{
	char s[8];
	snprintf(s, sizeof(s), "%u", port);
	return add_ingress(c, s, err);
}

void odyn_config_add_kms_endpoint(struct odyn_config *c, const char *region, const char *host)
{
	for (size_t i = 0; i < c->n_kms_endpoints; i++)
		if (strcmp(c->kms_endpoints[i].region, region) == 0) {
			free(c->kms_endpoints[i].host);
			c->kms_endpoints[i].host = xstrdup(host);
			return;
		}
	c->kms_endpoints = xrealloc(c->kms_endpoints, (c->n_kms_endpoints + 1) * sizeof(*c->kms_endpoints));
	c->kms_endpoints[c->n_kms_endpoints++] = (struct odyn_kms_endpoint){xstrdup(region), xstrdup(host)};
}

/* The manifest is read by manifest/, the same strict parser that checked it at
 * build time; odyn applies the parts it acts on. Egress (the proxy and the
 * app's http_proxy variables) is on only when egress.allow has entries. */
int odyn_config_load_manifest(struct odyn_config *c, const char *path, struct err **err)
{
	struct manifest *m = NULL;
	if (manifest_load(path, &m, err) < 0)
		return -1;
	int rc = 0;
	if (manifest_egress_on(m)) {
		c->egress_enabled = true;
		c->proxy_port = m->egress_proxy_port;
		for (size_t i = 0; rc == 0 && i < m->n_egress_allow; i++)
			if (egress_policy_add(&c->policy, false, m->egress_allow[i], err) < 0)
				rc = err_wrap(err, "%s: egress.allow[%zu]", path, i);
		for (size_t i = 0; rc == 0 && i < m->n_egress_deny; i++)
			if (egress_policy_add(&c->policy, true, m->egress_deny[i], err) < 0)
				rc = err_wrap(err, "%s: egress.deny[%zu]", path, i);
	}
	for (size_t i = 0; rc == 0 && i < m->n_ingress; i++) {
		if (odyn_config_add_ingress_port(c, m->ingress[i].listen_port, err) < 0)
			rc = err_wrap(err, "%s: ingress[%zu]", path, i);
		else if (m->ingress[i].tls_cert_file &&
		         odyn_config_set_ingress_tls(c, m->ingress[i].tls_cert_file, m->ingress[i].tls_key_file, err) < 0)
			rc = err_wrap(err, "%s: ingress[%zu].tls", path, i);
	}
	if (m->restart_policy)
		c->restart = strcmp(m->restart_policy, "on-failure") == 0 ? ODYN_RESTART_ON_FAILURE : ODYN_RESTART_NEVER;
	if (m->restart_max)
		c->max_restarts = (int)m->restart_max;
	if (m->restart_backoff_ms)
		c->backoff_ms = (int)m->restart_backoff_ms;
	if (m->has_api) {
		c->api_enabled = true;
		c->api_port = m->api_listen_port;
	}
	if (m->has_kms_proxy) {
		c->kms_enabled = true;
		c->kms_port = m->kms_listen_port;
		for (size_t i = 0; i < m->n_kms_endpoints; i++)
			odyn_config_add_kms_endpoint(c, m->kms_endpoints[i].region, m->kms_endpoints[i].host);
	}
	manifest_free(m);
	return rc;
}

/* Options that take a value. Each returns -1 with *err on a bad value. */
static int apply_option(struct odyn_config *c, const char *name, const char *val, struct err **err)
{
	long n;
	if (strcmp(name, "--config-dir") == 0) {
		/* The manifest is what odyn enforces: without it (a missing file, or a directory the
		 * image redirected) odyn would run with no policy at all, so it refuses to start. */
		_cleanup_free_ char *path = xasprintf("%s/enclaver.yaml", val);
		if (access(path, F_OK) < 0)
			return err_sys(err, "--config-dir %s: no manifest %s (odyn does not start without it)", val,
			               path);
		return odyn_config_load_manifest(c, path, err);
	}
	if (strcmp(name, "--manifest") == 0)
		return odyn_config_load_manifest(c, val, err);
	if (strcmp(name, "--env") == 0) {
		if (strchr(val, '=') == NULL || val[0] == '=')
			return err_set(err, EINVAL, "--env \"%s\": want KEY=VALUE", val);
		strv_push(&c->env, val);
		return 0;
	}
	if (strcmp(name, "--workdir") == 0) {
		free(c->workdir);
		c->workdir = xstrdup(val);
		return 0;
	}
	if (strcmp(name, "--ramdisk-marker") == 0) {
		free(c->ramdisk_marker);
		c->ramdisk_marker = xstrdup(val);
		return 0;
	}
	if (strcmp(name, "--user") == 0)
		return odyn_config_set_user(c, val, "", err);
	if (strcmp(name, "--grace-ms") == 0 || strcmp(name, "--linger-ms") == 0 ||
	    strcmp(name, "--restart-backoff-ms") == 0 || strcmp(name, "--max-restarts") == 0) {
		if (parse_int(val, 0, 24L * 3600 * 1000, &n) < 0)
			return err_set(err, EINVAL, "%s \"%s\": want a non-negative number", name, val);
		if (strcmp(name, "--grace-ms") == 0)
			c->grace_ms = (int)n;
		else if (strcmp(name, "--linger-ms") == 0)
			c->linger_ms = (int)n;
		else if (strcmp(name, "--restart-backoff-ms") == 0)
			c->backoff_ms = n > 0 ? (int)n : 1;
		else
			c->max_restarts = (int)n;
		return 0;
	}
	if (strcmp(name, "--ingress-hold-ms") == 0) {
		if (parse_int(val, 0, 24L * 3600 * 1000, &n) < 0)
			return err_set(err, EINVAL, "%s \"%s\": want a non-negative number", name, val);
		c->ingress_hold_ms = (int)n;
		return 0;
	}
	if (strcmp(name, "--ingress-connect-ms") == 0) {
		if (parse_int(val, 1, 24L * 3600 * 1000, &n) < 0)
			return err_set(err, EINVAL, "%s \"%s\": want a positive number", name, val);
		c->ingress_connect_ms = (int)n;
		return 0;
	}
	if (strcmp(name, "--restart") == 0) {
		if (strcmp(val, "never") == 0)
			c->restart = ODYN_RESTART_NEVER;
		else if (strcmp(val, "on-failure") == 0)
			c->restart = ODYN_RESTART_ON_FAILURE;
		else
			return err_set(err, EINVAL, "--restart \"%s\": want never or on-failure", val);
		return 0;
	}
	if (strcmp(name, "--status") == 0)
		return transport_parse(val, &c->status_addr, err) < 0 ? err_wrap(err, "--status") : 0;
	if (strcmp(name, "--log") == 0)
		return transport_parse(val, &c->log_addr, err) < 0 ? err_wrap(err, "--log") : 0;
	if (strcmp(name, "--egress-host") == 0) {
		c->egress_enabled = true;
		return transport_parse(val, &c->egress_addr, err) < 0 ? err_wrap(err, "--egress-host") : 0;
	}
	if (strcmp(name, "--proxy-port") == 0) {
		if (parse_int(val, 1, 65535, &n) < 0)
			return err_set(err, EINVAL, "--proxy-port \"%s\": want 1-65535", val);
		c->egress_enabled = true;
		c->proxy_port = (uint16_t)n;
		return 0;
	}
	if (strcmp(name, "--egress-allow") == 0 || strcmp(name, "--egress-deny") == 0) {
		c->egress_enabled = true;
		return egress_policy_add(&c->policy, name[9] == 'd', val, err) < 0 ? err_wrap(err, "%s", name) : 0;
	}
	if (strcmp(name, "--ingress") == 0)
		return add_ingress(c, val, err);
	if (strcmp(name, "--nsm") == 0) {
		free(c->nsm_path);
		c->nsm_path = xstrdup(val);
		return 0;
	}
	if (strcmp(name, "--api-port") == 0 || strcmp(name, "--kms-proxy-port") == 0) {
		if (parse_int(val, 1, 65535, &n) < 0)
			return err_set(err, EINVAL, "%s \"%s\": want 1-65535", name, val);
		if (name[2] == 'a')
			c->api_enabled = true, c->api_port = (uint16_t)n;
		else
			c->kms_enabled = true, c->kms_port = (uint16_t)n;
		return 0;
	}
	if (strcmp(name, "--kms-region") == 0 || strcmp(name, "--kms-ca-file") == 0 || strcmp(name, "--imds") == 0) {
		char **slot = name[2] == 'i' ? &c->imds : name[6] == 'r' ? &c->kms_region : &c->kms_ca_file;
		free(*slot);
		*slot = xstrdup(val);
		return 0;
	}
	if (strcmp(name, "--kms-endpoint") == 0) {
		const char *eq = strchr(val, '=');
		if (eq == NULL || eq == val || eq[1] == '\0')
			return err_set(err, EINVAL, "--kms-endpoint \"%s\": want REGION=HOST[:PORT]", val);
		_cleanup_free_ char *region = xstrndup(val, (size_t)(eq - val));
		odyn_config_add_kms_endpoint(c, region, eq + 1);
		return 0;
	}
	if (strcmp(name, "--ingress-tls") == 0)
		return add_ingress_tls(c, val, err);
	return err_set(err, EINVAL, "unknown option %s", name);
}

int odyn_config_parse_args(struct odyn_config *c, int argc, char **argv, struct err **err)
{
	int i;
	for (i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (strcmp(a, "-v") == 0) {
			log_set_level(LOG_DEBUG);
			continue;
		}
		if (strcmp(a, "-q") == 0) {
			log_set_level(LOG_WARN);
			continue;
		}
		if (strcmp(a, "--no-console") == 0) {
			c->console = false;
			continue;
		}
		if (a[0] != '-')
			break; /* the app's command without "--" */
		const char *eq = strchr(a, '=');
		_cleanup_free_ char *name = eq ? xstrndup(a, (size_t)(eq - a)) : xstrdup(a);
		const char *val = eq ? eq + 1 : NULL;
		if (val == NULL) {
			if (i + 1 >= argc)
				return err_set(err, EINVAL, "option %s needs a value", name);
			val = argv[++i];
		}
		if (apply_option(c, name, val, err) < 0)
			return -1;
	}
	for (; i < argc; i++)
		strv_push(&c->argv, argv[i]);
	{
		/* The proxy listens on loopback inside; tests may move it. */
		_cleanup_free_ char *p = xasprintf("tcp:127.0.0.1:%u", c->proxy_port);
		if (c->proxy_addr.len == 0)
			set_default_addr(&c->proxy_addr, p);
	}
	if (c->api_enabled) {
		_cleanup_free_ char *p = xasprintf("tcp:127.0.0.1:%u", c->api_port);
		set_default_addr(&c->api_addr, p);
	}
	if (c->kms_enabled) {
		_cleanup_free_ char *p = xasprintf("tcp:127.0.0.1:%u", c->kms_port);
		set_default_addr(&c->kms_addr, p);
	}
	if (c->nsm_path == NULL)
		c->nsm_path = xstrdup("/dev/nsm");
	if (c->imds == NULL)
		c->imds = xstrdup("169.254.169.254:80");
	return 0;
}

/* ---------------------------------------------------------------- users */

/* Finds the line of a passwd/group file whose field 0 (name) or field 2 (id)
 * equals key; returns its fields split in place. */
static int db_find(const char *path, const char *key, char *line, size_t cap, char **fields, int nf)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (f == NULL)
		return -1;
	while (fgets(line, (int)cap, f)) {
		line[strcspn(line, "\n")] = '\0';
		int k = 0;
		char *p = line;
		for (; k < nf; k++) {
			fields[k] = p;
			char *colon = strchr(p, ':');
			if (colon == NULL) {
				k++;
				break;
			}
			*colon = '\0';
			p = colon + 1;
		}
		if (k < 3)
			continue;
		if (strcmp(fields[0], key) == 0 || strcmp(fields[2], key) == 0)
			return k;
	}
	return -1;
}

static bool is_number(const char *s)
{
	return *s && strspn(s, "0123456789") == strlen(s);
}

int odyn_config_set_user(struct odyn_config *c, const char *spec, const char *root, struct err **err)
{
	_cleanup_free_ char *user = xstrdup(spec);
	char *group = strchr(user, ':');
	if (group)
		*group++ = '\0';
	if (*user == '\0' || (group && *group == '\0'))
		return err_set(err, EINVAL, "user \"%s\": want USER[:GROUP]", spec);
	_cleanup_free_ char *passwd = xasprintf("%s/etc/passwd", root);
	_cleanup_free_ char *groupf = xasprintf("%s/etc/group", root);
	char line[1024];
	char *f[7];
	long id;
	const char *uname = NULL;
	_cleanup_free_ char *uname_copy = NULL;
	free(c->groups);
	c->groups = NULL;
	c->n_groups = 0;
	if (db_find(passwd, user, line, sizeof(line), f, 7) >= 4) {
		if (parse_int(f[2], 0, UINT32_MAX - 1, &id) < 0 || (!is_number(user) && strcmp(f[0], user) != 0))
			return err_set(err, EINVAL, "user \"%s\": bad entry in %s", spec, passwd);
		c->uid = (uid_t)id;
		if (parse_int(f[3], 0, UINT32_MAX - 1, &id) < 0)
			return err_set(err, EINVAL, "user \"%s\": bad group id in %s", spec, passwd);
		c->gid = (gid_t)id;
		uname_copy = xstrdup(f[0]);
		uname = uname_copy;
	} else if (is_number(user) && parse_int(user, 0, UINT32_MAX - 1, &id) == 0) {
		c->uid = (uid_t)id;
		c->gid = 0; /* as Docker does for a numeric user without a passwd entry */
	} else {
		return err_set(err, ENOENT, "user \"%s\" not found in %s", user, passwd);
	}
	if (group) {
		if (db_find(groupf, group, line, sizeof(line), f, 4) >= 3) {
			if (parse_int(f[2], 0, UINT32_MAX - 1, &id) < 0)
				return err_set(err, EINVAL, "group \"%s\": bad entry in %s", group, groupf);
			c->gid = (gid_t)id;
		} else if (is_number(group) && parse_int(group, 0, UINT32_MAX - 1, &id) == 0) {
			c->gid = (gid_t)id;
		} else {
			return err_set(err, ENOENT, "group \"%s\" not found in %s", group, groupf);
		}
	}
	/* Supplementary groups: the primary one, then every group listing the user. */
	c->groups = xmalloc(sizeof(gid_t));
	c->groups[c->n_groups++] = c->gid;
	_cleanup_fclose_ FILE *gf = uname ? fopen(groupf, "re") : NULL;
	while (gf && fgets(line, sizeof(line), gf)) {
		line[strcspn(line, "\n")] = '\0';
		char *name = strtok(line, ":");
		strtok(NULL, ":");
		char *gid_s = strtok(NULL, ":");
		char *members = strtok(NULL, ":");
		if (!name || !gid_s || !members || parse_int(gid_s, 0, UINT32_MAX - 1, &id) < 0)
			continue;
		for (char *m = strtok(members, ","); m; m = strtok(NULL, ","))
			if (strcmp(m, uname) == 0 && (gid_t)id != c->gid && c->n_groups < 64) {
				c->groups = xrealloc(c->groups, (c->n_groups + 1) * sizeof(gid_t));
				c->groups[c->n_groups++] = (gid_t)id;
			}
	}
	c->has_user = true;
	return 0;
}
