/* outer_state: the state folder behind `enclaver ps` and `enclaver stop`: one JSON file per running
 * enclave, written atomically under a folder lock so two runs cannot take the same name, CID or port. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>

#include "runtime/outer.h"

#define STATE_FILE_MAX (64 * 1024)

void outer_state_free(struct outer_state *s)
{
	free(s->id);
	free(s->name);
	free(s->launcher);
	free(s->eif);
	free(s->image);
	free(s->ports);
	if (s->measurements)
		json_decref(s->measurements);
	memset(s, 0, sizeof(*s));
}

void outer_state_list_free(struct outer_state *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		outer_state_free(&v[i]);
	free(v);
}

int outer_state_dir(char **out, struct err **err)
{
	const char *env = getenv("ENCLAVER_STATE_DIR"), *xdg = getenv("XDG_RUNTIME_DIR");
	char *dir;
	if (env && *env)
		dir = xstrdup(env);
	else if (geteuid() == 0)
		dir = xstrdup("/run/enclaver");
	else if (xdg && *xdg)
		dir = xasprintf("%s/enclaver", xdg);
	else
		dir = xasprintf("/tmp/enclaver-%u", (unsigned)geteuid());
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		err_sys(err, "state folder %s", dir);
		free(dir);
		return -1;
	}
	*out = dir;
	return 0;
}

static bool alive(pid_t pid)
{
	return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

/* An optional unsigned field: absent is 0, anything but a non-negative integer up to max is an error. */
static int opt_uint(json_t *v, const char *key, uint64_t max, uint64_t *out, const char *path, struct err **err)
{
	json_t *f = json_object_get(v, key);
	*out = 0;
	if (f == NULL)
		return 0;
	if (!json_is_integer(f) || json_integer_value(f) < 0 || (uint64_t)json_integer_value(f) > max)
		return err_set(err, EINVAL, "%s: field \"%s\": want an integer from 0 to %llu", path, key,
		               (unsigned long long)max);
	*out = (uint64_t)json_integer_value(f);
	return 0;
}

int outer_state_parse(const char *text, size_t len, const char *path, struct outer_state *s, struct err **err)
{
	json_error_t je;
	_cleanup_json_ json_t *v = json_loadb(text, len, 0, &je);
	json_t *ports = json_object_get(v, "ports");
	const char *id = json_string_value(json_object_get(v, "id"));
	json_t *pid = json_object_get(v, "pid");
	if (!v || !id || !json_is_integer(pid) || (ports && !json_is_array(ports)))
		return err_set(err, EINVAL, "%s: not an enclaver state file", path);
	/* The fields `ps --json` shows (older run processes wrote none of them). */
	json_t *cpus = json_object_get(v, "cpu_ids"), *meas = json_object_get(v, "measurements"),
	       *debug = json_object_get(v, "debug_mode");
	uint64_t memory_mib;
	if (opt_uint(v, "memory_mib", UINT32_MAX, &memory_mib, path, err) < 0)
		return -1;
	if (cpus && (!json_is_array(cpus) || json_array_size(cpus) > LAUNCH_MAX_CPUS))
		return err_set(err, EINVAL, "%s: field \"cpu_ids\": want an array of at most %d CPU ids", path,
		               LAUNCH_MAX_CPUS);
	for (size_t i = 0; i < json_array_size(cpus); i++) {
		json_t *c = json_array_get(cpus, i);
		if (!json_is_integer(c) || json_integer_value(c) < 0 || json_integer_value(c) > UINT32_MAX)
			return err_set(err, EINVAL, "%s: field \"cpu_ids\"[%zu]: want a CPU id", path, i);
	}
	if (debug && !json_is_boolean(debug))
		return err_set(err, EINVAL, "%s: field \"debug_mode\": want true or false", path);
	json_t *image = json_object_get(v, "image");
	if (image && !json_is_string(image))
		return err_set(err, EINVAL, "%s: field \"image\": want a string", path);
	if (meas && !json_is_object(meas))
		return err_set(err, EINVAL, "%s: field \"measurements\": want an object", path);
	const char *key;
	json_t *val;
	json_object_foreach(meas, key, val)
	{
		if (!json_is_string(val))
			return err_set(err, EINVAL, "%s: field \"measurements\".%s: want a string", path, key);
	}
	memset(s, 0, sizeof(*s));
	s->id = xstrdup(id);
	const char *str;
	s->name = xstrdup((str = json_string_value(json_object_get(v, "name"))) ? str : "");
	s->launcher = xstrdup((str = json_string_value(json_object_get(v, "launcher"))) ? str : "");
	s->eif = xstrdup((str = json_string_value(json_object_get(v, "eif"))) ? str : "");
	s->image = image ? xstrdup(json_string_value(image)) : NULL;
	s->cid = (uint64_t)json_integer_value(json_object_get(v, "cid"));
	s->pid = (pid_t)json_integer_value(pid);
	s->started = json_integer_value(json_object_get(v, "started"));
	s->n_ports = json_array_size(ports);
	s->ports = xcalloc(s->n_ports + 1, sizeof(*s->ports));
	for (size_t i = 0; i < s->n_ports; i++) {
		json_t *p = json_array_get(ports, i);
		snprintf(s->ports[i].host_addr, sizeof(s->ports[i].host_addr), "%s",
		         (str = json_string_value(json_object_get(p, "host_addr"))) ? str : "");
		s->ports[i].host_port = (uint16_t)json_integer_value(json_object_get(p, "host_port"));
		s->ports[i].enclave_port = (uint16_t)json_integer_value(json_object_get(p, "enclave_port"));
	}
	s->cpu_count = (unsigned)json_array_size(cpus);
	for (size_t i = 0; i < s->cpu_count; i++)
		s->cpu_ids[i] = (unsigned)json_integer_value(json_array_get(cpus, i));
	s->memory_mib = memory_mib;
	s->debug_mode = json_is_true(debug);
	s->measurements = meas ? json_incref(meas) : NULL;
	return 0;
}

static int state_parse(const char *path, struct outer_state *s, struct err **err)
{
	_cleanup_free_ char *text = NULL;
	size_t len;
	if (io_read_file(path, STATE_FILE_MAX, &text, &len, err) < 0)
		return -1;
	return outer_state_parse(text, len, path, s, err);
}

/* Lists live entries of dir (caller holds the lock or accepts a racy view); prunes dead ones. */
static int list_locked(const char *dir, struct outer_state **out, size_t *n_out, struct err **err)
{
	DIR *d = opendir(dir);
	if (!d)
		return err_sys(err, "state folder %s", dir);
	struct outer_state *v = NULL;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (de->d_name[0] == '.' || l < 6 || strcmp(de->d_name + l - 5, ".json") != 0)
			continue;
		_cleanup_free_ char *path = xasprintf("%s/%s", dir, de->d_name);
		struct outer_state s;
		_cleanup_err_ struct err *e = NULL;
		if (state_parse(path, &s, &e) < 0) {
			log_warn("ignoring %s", e->msg);
			continue;
		}
		if (!alive(s.pid)) {
			log_info("removing the stale entry of %s (process %d is gone)", s.id, (int)s.pid);
			unlink(path);
			outer_state_free(&s);
			continue;
		}
		v = xrealloc(v, (n + 1) * sizeof(*v));
		v[n++] = s;
	}
	closedir(d);
	*out = v;
	*n_out = n;
	return 0;
}

static int lock_dir(const char *dir, struct err **err)
{
	_cleanup_free_ char *path = xasprintf("%s/.lock", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_sys(err, "%s", path);
	if (flock(fd, LOCK_EX) < 0) {
		err_sys(err, "lock %s", path);
		close(fd);
		return -1;
	}
	return fd;
}

/* The state folder (*dir, the caller's to free) under its lock (the returned fd, the caller's to
 * close); -1 on failure. */
static int dir_lock(char **dir, struct err **err)
{
	if (outer_state_dir(dir, err) < 0)
		return -1;
	return lock_dir(*dir, err);
}

/* dir_lock, then the live entries into *v and *n; -1 (nothing held) on failure. */
static int dir_lock_list(char **dir, struct outer_state **v, size_t *n, struct err **err)
{
	int lk = dir_lock(dir, err);
	if (lk < 0)
		return -1;
	if (list_locked(*dir, v, n, err) < 0) {
		close(lk);
		return -1;
	}
	return lk;
}

int outer_state_list(struct outer_state **out, size_t *n, struct err **err)
{
	_cleanup_free_ char *dir = NULL;
	_cleanup_close_ int lk = dir_lock_list(&dir, out, n, err);
	return lk < 0 ? -1 : 0;
}

static int conflicts(const struct outer_state *v, size_t n, const char *name, uint64_t cid,
                     const struct outer_port *ports, size_t n_ports, struct err **err)
{
	for (size_t i = 0; i < n; i++) {
		const struct outer_state *s = &v[i];
		if (name && *name && strcmp(s->name, name) == 0)
			return err_set(err, EEXIST,
			               "the name %s is taken by enclave %s (process %d): pick another with --name",
			               name, s->id, (int)s->pid);
		if (cid && s->cid == cid)
			return err_set(err, EADDRINUSE,
			               "CID %llu is in use by enclave %s (%s): pick another with --cid",
			               (unsigned long long)cid, s->id, s->name);
		for (size_t a = 0; a < n_ports; a++)
			for (size_t b = 0; b < s->n_ports; b++)
				if (ports[a].host_port && ports[a].host_port == s->ports[b].host_port &&
				    (strcmp(ports[a].host_addr, s->ports[b].host_addr) == 0 ||
				     strcmp(ports[a].host_addr, "0.0.0.0") == 0 ||
				     strcmp(s->ports[b].host_addr, "0.0.0.0") == 0))
					return err_set(err, EADDRINUSE, "host port %s:%u is in use by enclave %s (%s)",
					               ports[a].host_addr, ports[a].host_port, s->id, s->name);
	}
	return 0;
}

int outer_state_check(const char *name, uint64_t cid, const struct outer_port *ports, size_t n_ports, struct err **err)
{
	struct outer_state *v;
	size_t n;
	if (outer_state_list(&v, &n, err) < 0)
		return -1;
	int r = conflicts(v, n, name, cid, ports, n_ports, err);
	outer_state_list_free(v, n);
	return r;
}

int outer_state_add(const struct outer_state *s, char **path_out, struct err **err)
{
	_cleanup_free_ char *dir = NULL;
	struct outer_state *v;
	size_t n;
	_cleanup_close_ int lk = dir_lock_list(&dir, &v, &n, err);
	if (lk < 0)
		return -1;
	int r = conflicts(v, n, s->name, s->cid, s->ports, s->n_ports, err);
	outer_state_list_free(v, n);
	if (r < 0)
		return -1;
	json_t *ports = json_array();
	for (size_t i = 0; i < s->n_ports; i++)
		json_array_append_new(ports, json_pack("{s:s, s:i, s:i}", "host_addr", s->ports[i].host_addr,
		                                       "host_port", (int)s->ports[i].host_port, "enclave_port",
		                                       (int)s->ports[i].enclave_port));
	json_t *cpus = outer_cpu_ids_json(s->cpu_ids, s->cpu_count);
	_cleanup_json_ json_t *doc =
	    json_pack("{s:s, s:s, s:I, s:i, s:s, s:o, s:s, s:I, s:o, s:I, s:b}", "id", s->id, "name", s->name, "cid",
	              (json_int_t)s->cid, "pid", (int)s->pid, "launcher", s->launcher, "ports", ports, "eif", s->eif,
	              "started", (json_int_t)s->started, "cpu_ids", cpus, "memory_mib", (json_int_t)s->memory_mib,
	              "debug_mode", (int)s->debug_mode);
	if (s->image)
		json_object_set_new(doc, "image", json_string(s->image));
	if (s->measurements)
		json_object_set(doc, "measurements", s->measurements);
	_cleanup_buf_ struct buf b = {0};
	if (json_serde_write(&b, doc, JSON_SERDE_PRETTY, err) < 0)
		return -1;
	buf_putc(&b, '\n');
	/* The id comes from the launcher: keep the file name to safe characters. */
	_cleanup_free_ char *fname = xstrdup(s->id);
	for (char *c = fname; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '-' ||
		      *c == '_'))
			*c = '_';
	_cleanup_free_ char *path = xasprintf("%s/%s.json", dir, fname);
	struct atomic_file af;
	if (atomic_file_open(&af, path, 0600, err) < 0)
		return -1;
	if (io_write_full(af.fd, b.data, b.len, err) < 0 || atomic_file_commit(&af, err) < 0) {
		atomic_file_abort(&af);
		return err_wrap(err, "state file %s", path);
	}
	*path_out = steal_pointer(&path);
	return 0;
}

int outer_state_find(const char *key, struct outer_state *out, struct err **err)
{
	struct outer_state *v;
	size_t n;
	if (outer_state_list(&v, &n, err) < 0)
		return -1;
	ssize_t hit = -1;
	size_t n_prefix = 0;
	for (size_t i = 0; i < n && hit < 0; i++)
		if (strcmp(v[i].id, key) == 0 || strcmp(v[i].name, key) == 0)
			hit = (ssize_t)i;
	if (hit < 0)
		for (size_t i = 0; i < n; i++)
			if (str_has_prefix(v[i].id, key)) {
				hit = (ssize_t)i;
				n_prefix++;
			}
	int r = 0;
	if (hit < 0)
		r = err_set(err, ENOENT, "no running enclave has the id or name \"%s\" (see enclaver ps)", key);
	else if (n_prefix > 1)
		r = err_set(err, EINVAL, "\"%s\" is the start of %zu enclave ids: give more of it", key, n_prefix);
	else {
		*out = v[hit];
		memset(&v[hit], 0, sizeof(v[hit]));
	}
	outer_state_list_free(v, n);
	return r;
}

/* Nothing but the hold file's lock says a CID is taken while its enclave boots (the state entry is
 * written after the launch): a run keeps the lock of `cid-N.hold` until it exits, so two runs
 * started together never pick the same CID, and a crashed run's lock goes with its process. */
static char *hold_path(const char *dir, uint64_t c)
{
	return xasprintf("%s/cid-%llu.hold", dir, (unsigned long long)c);
}

static int hold_cid(const char *dir, uint64_t c, struct err **err)
{
	_cleanup_free_ char *path = hold_path(dir, c);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return err_sys(err, "%s", path);
	if (flock(fd, LOCK_EX | LOCK_NB) == 0)
		return fd;
	int e = errno;
	close(fd);
	if (e == EWOULDBLOCK)
		return -2;
	errno = e;
	return err_sys(err, "lock %s", path);
}

void outer_state_release_cid(uint64_t cid, int *hold_fd)
{
	if (*hold_fd < 0)
		return;
	_cleanup_err_ struct err *err = NULL;
	_cleanup_free_ char *dir = NULL;
	/* Pickers open and lock hold files only under the folder's lock: taking it here means none
	 * is between its open and its flock on the file we remove. */
	_cleanup_close_ int lk = dir_lock(&dir, &err);
	if (lk >= 0) {
		_cleanup_free_ char *path = hold_path(dir, cid);
		if (unlink(path) < 0 && errno != ENOENT)
			log_debug("state: remove %s: %s", path, strerror(errno));
	}
	close(*hold_fd);
	*hold_fd = -1;
}

int outer_state_pick_cid(uint64_t first, uint64_t *cid, int *hold_fd, struct err **err)
{
	_cleanup_free_ char *dir = NULL;
	struct outer_state *v;
	size_t n;
	_cleanup_close_ int lk = dir_lock_list(&dir, &v, &n, err);
	if (lk < 0)
		return -1;
	int fd = -2;
	uint64_t c = first;
	for (; c < first + OUTER_PICK_CID_SPAN && fd == -2; c++) {
		bool taken = false;
		for (size_t i = 0; i < n && !taken; i++)
			taken = v[i].cid == c;
		if (!taken)
			fd = hold_cid(dir, c, err);
	}
	outer_state_list_free(v, n);
	if (fd == -1)
		return -1;
	if (fd == -2)
		return err_set(err, EADDRINUSE, "no free CID from %llu to %llu (see enclaver ps)",
		               (unsigned long long)first, (unsigned long long)(first + OUTER_PICK_CID_SPAN - 1));
	*cid = c - 1;
	*hold_fd = fd;
	return 0;
}

json_t *outer_cpu_ids_json(const unsigned *ids, unsigned count)
{
	json_t *a = json_array();
	for (unsigned i = 0; i < count && i < LAUNCH_MAX_CPUS; i++)
		json_array_append_new(a, json_integer(ids[i]));
	return a;
}
