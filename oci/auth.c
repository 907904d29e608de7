/* auth: finds registry credentials the way podman and docker do: --creds,
 * auth.json files, ~/.docker/config.json, docker-credential-* helpers.
 * Secrets stay in memory; messages name only where credentials came from. */
#include <fcntl.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>


#include "oci/internal.h"

extern char **environ;

void oci_creds_free(struct oci_creds *c)
{
	if (c == NULL)
		return;
	if (c->password)
		explicit_bzero(c->password, strlen(c->password));
	free(c->username);
	free(c->password);
	free(c->source);
	memset(c, 0, sizeof(*c));
}

static int split_user_pass(const char *text, size_t len, const char *source, struct oci_creds *out, struct err **err)
{
	const char *colon = memchr(text, ':', len);
	if (colon == NULL || colon == text)
		return err_set(err, EINVAL, "%s: credentials must be USER:PASSWORD", source);
	out->username = oci_memdup_str(text, (size_t)(colon - text));
	out->password = oci_memdup_str(colon + 1, len - (size_t)(colon - text) - 1);
	out->source = xstrdup(source);
	return 0;
}

/* The host part of an auths key: "https://index.docker.io/v1/" -> "index.docker.io". */
static char *key_host(const char *key)
{
	const char *p = strstr(key, "://");
	p = p ? p + 3 : key;
	return xstrndup(p, strcspn(p, "/"));
}

static bool host_matches(const char *key, const char *registry)
{
	_cleanup_free_ char *h = key_host(key);
	if (strcmp(h, registry) == 0)
		return true;
	/* Docker Hub goes by several names. */
	static const char *hub[] = {"docker.io", "index.docker.io", "registry-1.docker.io"};
	bool a = false, b = false;
	for (size_t i = 0; i < 3; i++) {
		a = a || strcmp(h, hub[i]) == 0;
		b = b || strcmp(registry, hub[i]) == 0;
	}
	return a && b;
}

/* Runs docker-credential-NAME get. Returns 1 when found, 0 when the helper
 * has nothing for this registry. */
static int helper_get(const char *name, const char *registry, const char *file, struct oci_creds *out, struct err **err)
{
	_cleanup_free_ char *prog = xasprintf("docker-credential-%s", name);
	_cleanup_free_ char *server =
	    strcmp(registry, "docker.io") == 0 ? xstrdup("https://index.docker.io/v1/") : xstrdup(registry);
	int in[2], outp[2];
	if (pipe2(in, O_CLOEXEC) < 0)
		return err_sys(err, "pipe");
	if (pipe2(outp, O_CLOEXEC) < 0) {
		close(in[0]);
		close(in[1]);
		return err_sys(err, "pipe");
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
	char *argv[] = {prog, "get", NULL};
	pid_t pid;
	int rc = posix_spawnp(&pid, prog, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(in[0]);
	close(outp[1]);
	if (rc != 0) {
		close(in[1]);
		close(outp[0]);
		errno = rc;
		return err_sys(err, "%s: credential helper %s", file, prog);
	}
	_cleanup_err_ struct err *werr = NULL;
	(void)io_write_full(in[1], server, strlen(server), &werr);
	close(in[1]);
	char reply[16384];
	ssize_t n = io_read_full(outp[0], reply, sizeof(reply) - 1, &werr);
	close(outp[0]);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (n < 0)
		n = 0;
	reply[n] = '\0';
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		if (strstr(reply, "credentials not found"))
			return 0;
		/* The helper's output is not echoed: it might hold a secret. */
		return err_set(err, EACCES, "%s: credential helper %s failed (exit %d)", file, prog,
		               WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	}
	json_error_t je;
	_cleanup_json_ json_t *doc = json_loads(reply, 0, &je);
	explicit_bzero(reply, sizeof(reply));
	const char *user = json_string_value(json_object_get(doc, "Username"));
	const char *secret = json_string_value(json_object_get(doc, "Secret"));
	if (user == NULL || secret == NULL)
		return err_set(err, EBADMSG, "%s: credential helper %s returned no Username/Secret", file, prog);
	out->identity_token = strcmp(user, "<token>") == 0;
	out->username = xstrdup(user);
	out->password = xstrdup(secret);
	out->source = xasprintf("%s (helper %s)", file, prog);
	return 1;
}

static int decode_auth(const char *b64, const char *file, struct oci_creds *out, struct err **err)
{
	size_t len = strlen(b64), n;
	uint8_t *raw = NULL;
	if (len == 0 || len > 8192 || base64_decode(b64, len, &raw, &n) < 0)
		return err_set(err, EBADMSG, "%s: \"auth\" is not valid base64", file);
	raw[n] = '\0'; /* base64_decode leaves room for it; strndup below reads a string */
	int r = split_user_pass((char *)raw, n, file, out, err);
	explicit_bzero(raw, n);
	free(raw);
	return r;
}

/* Looks in one auth file. 1: found, 0: nothing there (or no file). */
static int file_lookup(const char *path, const char *registry, struct oci_creds *out, struct err **err)
{
	if (access(path, F_OK) != 0)
		return 0;
	_cleanup_free_ char *text = NULL;
	size_t len;
	if (io_read_file(path, 1 << 20, &text, &len, err) < 0)
		return -1;
	json_error_t je;
	_cleanup_json_ json_t *doc = json_loadb(text, len, 0, &je);
	explicit_bzero(text, len);
	if (doc == NULL || !json_is_object(doc))
		return err_set(err, EBADMSG, "%s: line %d, column %d: %s", path, je.line, je.column,
		               doc ? "not an object" : je.text);
	const char *key;
	json_t *v;
	json_object_foreach(json_object_get(doc, "credHelpers"), key, v)
	{
		if (json_is_string(v) && host_matches(key, registry))
			return helper_get(json_string_value(v), registry, path, out, err);
	}
	json_object_foreach(json_object_get(doc, "auths"), key, v)
	{
		if (!host_matches(key, registry))
			continue;
		const char *auth = json_string_value(json_object_get(v, "auth"));
		const char *token = json_string_value(json_object_get(v, "identitytoken"));
		if (auth && *auth) {
			if (decode_auth(auth, path, out, err) < 0)
				return -1;
			if (token && *token) {
				free(out->password);
				out->password = xstrdup(token);
				out->identity_token = true;
			}
			return 1;
		}
	}
	const char *store = json_string_value(json_object_get(doc, "credsStore"));
	if (store && *store)
		return helper_get(store, registry, path, out, err);
	return 0;
}

int oci_creds_lookup(const char *registry, const char *cli, struct oci_creds *out, struct err **err)
{
	memset(out, 0, sizeof(*out));
	if (cli)
		return split_user_pass(cli, strlen(cli), "--creds", out, err);
	char *paths[4] = {0};
	int n = 0;
	const char *env = getenv("REGISTRY_AUTH_FILE");
	const char *home = getenv("HOME");
	if (env && *env) {
		paths[n++] = xstrdup(env);
	} else {
		const char *run = getenv("XDG_RUNTIME_DIR");
		const char *cfg = getenv("XDG_CONFIG_HOME");
		const char *dcfg = getenv("DOCKER_CONFIG");
		if (run && *run)
			paths[n++] = xasprintf("%s/containers/auth.json", run);
		if (cfg && *cfg)
			paths[n++] = xasprintf("%s/containers/auth.json", cfg);
		else if (home && *home)
			paths[n++] = xasprintf("%s/.config/containers/auth.json", home);
		if (dcfg && *dcfg)
			paths[n++] = xasprintf("%s/config.json", dcfg);
		else if (home && *home)
			paths[n++] = xasprintf("%s/.docker/config.json", home);
	}
	int r = 0;
	struct buf tried = {0};
	for (int i = 0; i < n; i++) {
		if (r == 0) {
			r = file_lookup(paths[i], registry, out, err);
			buf_printf(&tried, "%s%s", tried.len ? ", " : "", paths[i]);
		}
		free(paths[i]);
	}
	if (r < 0) {
		buf_free(&tried);
		oci_creds_free(out);
		return -1;
	}
	if (r == 0) {
		buf_str(&tried);
		out->source = xasprintf("no credentials (looked in %s)", tried.len ? tried.data : "nothing");
	}
	buf_free(&tried);
	return 0;
}
