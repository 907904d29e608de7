/* ramdisk_cache: keeps the customer ramdisks of recent builds in the cache folder, keyed by
 * everything that goes into them, so a rebuild with nothing changed skips the flatten and the
 * cpio write and costs only the EIF write (its hashing floor). */
#include <dirent.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <utime.h>

#include "builder/builder.h"

/* How many ramdisks stay: a few recent builds (one per app, typically). They are as big as the
 * unpacked images, so the cache stays small by count. */
#define RAMDISK_CACHE_KEEP 3
#define RAMDISK_CACHE_DIR  "ramdisks"
#define RAMDISK_CACHE_EXT  ".cpio"

struct bld_ramdisk_key {
	struct oci_digester *d;
};

struct bld_ramdisk_key *bld_ramdisk_key_new(void)
{
	struct bld_ramdisk_key *k = xcalloc(1, sizeof(*k));
	k->d = oci_digester_new("sha256");
	/* The format version: bump it when the ramdisk layout changes for the same inputs. */
	bld_ramdisk_key_add(k, "enclaver customer ramdisk v2 " ENCLAVER_VERSION);
	return k;
}

/* Each piece is length-prefixed so that ("ab","c") and ("a","bc") give different keys. */
void bld_ramdisk_key_add_bytes(struct bld_ramdisk_key *k, const void *data, size_t len)
{
	uint64_t n = len;
	oci_digester_update(k->d, &n, sizeof(n));
	oci_digester_update(k->d, data, len);
}

void bld_ramdisk_key_add(struct bld_ramdisk_key *k, const char *text)
{
	bld_ramdisk_key_add_bytes(k, text ? text : "", text ? strlen(text) : 0);
}

void bld_ramdisk_key_final(struct bld_ramdisk_key *k, char out[OCI_DIGEST_MAX])
{
	oci_digester_final(k->d, out);
	oci_digester_free(k->d);
	free(k);
}

char *bld_ramdisk_cache_path(const char *cache_dir, const char *key)
{
	const char *hex = strchr(key, ':');
	return xasprintf("%s/" RAMDISK_CACHE_DIR "/%s" RAMDISK_CACHE_EXT, cache_dir, hex ? hex + 1 : key);
}

bool bld_ramdisk_cache_lookup(const char *cache_dir, const char *key, char **path)
{
	*path = bld_ramdisk_cache_path(cache_dir, key);
	struct stat st;
	if (stat(*path, &st) == 0 && S_ISREG(st.st_mode)) {
		utime(*path, NULL); /* most recently used: the pruning keeps it */
		return true;
	}
	return false;
}

int bld_ramdisk_cache_prepare(const char *cache_dir, struct err **err)
{
	_cleanup_free_ char *dir = xasprintf("%s/" RAMDISK_CACHE_DIR, cache_dir);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return err_sys(err, "creating %s", dir);
	return 0;
}

struct cached_ramdisk {
	char *path;
	struct timespec mtime;
};

static int newest_first(const void *a, const void *b)
{
	const struct cached_ramdisk *x = a, *y = b;
	if (x->mtime.tv_sec != y->mtime.tv_sec)
		return x->mtime.tv_sec < y->mtime.tv_sec ? 1 : -1;
	if (x->mtime.tv_nsec != y->mtime.tv_nsec)
		return x->mtime.tv_nsec < y->mtime.tv_nsec ? 1 : -1;
	return strcmp(x->path, y->path);
}

void bld_ramdisk_cache_prune(const char *cache_dir)
{
	_cleanup_free_ char *dir = xasprintf("%s/" RAMDISK_CACHE_DIR, cache_dir);
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct cached_ramdisk *list = NULL;
	size_t n = 0, cap = 0;
	for (struct dirent *e; (e = readdir(d));) {
		size_t len = strlen(e->d_name), ext = strlen(RAMDISK_CACHE_EXT);
		bool entry = len > ext && strcmp(e->d_name + len - ext, RAMDISK_CACHE_EXT) == 0;
		bool temporary = strstr(e->d_name, RAMDISK_CACHE_EXT ".tmp-") != NULL;
		if (!entry && !temporary)
			continue;
		_cleanup_free_ char *path = xasprintf("%s/%s", dir, e->d_name);
		struct stat st;
		if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (temporary) {
			/* A build under way owns its temporary file; one a day old was
			 * left by a build that was killed (hundreds of MiB): it goes. */
			if (time(NULL) - st.st_mtim.tv_sec > 24 * 3600 && unlink(path) == 0)
				log_debug("ramdisk cache: removed a stale %s", path);
			continue;
		}
		if (n == cap)
			list = xrealloc(list, (cap = cap ? 2 * cap : 8) * sizeof(*list));
		list[n++] = (struct cached_ramdisk){.path = steal_pointer(&path), .mtime = st.st_mtim};
	}
	closedir(d);
	if (n)
		qsort(list, n, sizeof(*list), newest_first);
	for (size_t i = 0; i < n; i++) {
		if (i >= RAMDISK_CACHE_KEEP && unlink(list[i].path) == 0)
			log_debug("ramdisk cache: removed %s", list[i].path);
		free(list[i].path);
	}
	free(list);
}

/* ---------------------------------------------------------------- pending entries */

struct bld_ramdisk_pending {
	struct atomic_file af;
	pthread_t thread;
	bool joined;
	int sync_errno; /* the thread's fsync: 0 or errno */
};

/* Flushing a few hundred MiB takes a while on most disks: the EIF write goes on meanwhile. */
static void *pending_sync(void *arg)
{
	struct bld_ramdisk_pending *p = arg;
	p->sync_errno = fsync(p->af.fd) == 0 ? 0 : errno;
	return NULL;
}

static void pending_join(struct bld_ramdisk_pending *p)
{
	if (!p->joined)
		pthread_join(p->thread, NULL);
	p->joined = true;
}

struct bld_ramdisk_pending *bld_ramdisk_pending_start(struct atomic_file *af)
{
	struct bld_ramdisk_pending *p = xcalloc(1, sizeof(*p));
	p->af = *af;
	*af = (struct atomic_file){.fd = -1};
	int r = pthread_create(&p->thread, NULL, pending_sync, p);
	if (r != 0) {
		p->joined = true; /* commit's own fsync does the work */
		log_debug("ramdisk cache: no flush thread (%s)", strerror(r));
	}
	return p;
}

const char *bld_ramdisk_pending_path(const struct bld_ramdisk_pending *p)
{
	return p->af.tmp_path;
}

int bld_ramdisk_pending_commit(struct bld_ramdisk_pending *p, struct err **err)
{
	pending_join(p);
	if (p->sync_errno != 0) {
		errno = p->sync_errno;
		return err_sys(err, "fsync %s", p->af.tmp_path);
	}
	/* Its fsync finds nothing left to write; then the rename and the folder's fsync. */
	return atomic_file_commit(&p->af, err);
}

void bld_ramdisk_pending_free(struct bld_ramdisk_pending *p)
{
	if (!p)
		return;
	pending_join(p);
	atomic_file_abort(&p->af);
	free(p);
}
