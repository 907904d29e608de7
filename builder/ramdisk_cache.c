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
#include "eif/eif.h"

/* How many ramdisks stay: a few recent builds (one per app, typically). They are as big as the
 * unpacked images, so the cache stays small by count. */
#define RAMDISK_CACHE_KEEP 3
#define RAMDISK_CACHE_DIR  "ramdisks"
#define RAMDISK_CACHE_EXT  ".cpio"
#define RAMDISK_CACHE_PCR2_EXT ".pcr2"

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

/* The PCR2 record of a ramdisk path (".../<hex>.cpio" -> ".../<hex>.pcr2"). */
static char *pcr2_path_of(const char *cpio_path)
{
	size_t len = strlen(cpio_path) - strlen(RAMDISK_CACHE_EXT);
	return xasprintf("%.*s" RAMDISK_CACHE_PCR2_EXT, (int)len, cpio_path);
}

static int pcr2_read(const char *cpio_path, uint8_t pcr2[48], struct err **err)
{
	_cleanup_free_ char *path = pcr2_path_of(cpio_path);
	_cleanup_free_ char *text = NULL;
	size_t len;
	if (io_read_file(path, 256, &text, &len, err) < 0)
		return -1;
	text[strcspn(text, "\n")] = '\0';
	if (hex_decode(text, pcr2, 48) < 0)
		return err_set(err, EINVAL, "%s: not a SHA-384 in hex", path);
	return 0;
}

bool bld_ramdisk_cache_lookup(const char *cache_dir, const char *key, char **path, uint8_t pcr2[48])
{
	*path = bld_ramdisk_cache_path(cache_dir, key);
	struct stat st;
	struct err *e = NULL;
	if (stat(*path, &st) < 0 || !S_ISREG(st.st_mode))
		return false;
	if (pcr2_read(*path, pcr2, &e) < 0) {
		/* Without its PCR2 nothing could notice a change: made again. */
		log_debug("ramdisk cache: %s", e->msg);
		err_free(&e);
		return false;
	}
	utime(*path, NULL); /* most recently used: the pruning keeps it */
	return true;
}

int bld_ramdisk_cache_set_pcr2(const char *cache_dir, const char *key, const uint8_t pcr2[48], struct err **err)
{
	_cleanup_free_ char *cpio = bld_ramdisk_cache_path(cache_dir, key);
	_cleanup_free_ char *path = pcr2_path_of(cpio);
	char hex[97];
	hex_encode(pcr2, 48, hex);
	hex[96] = '\n';
	_cleanup_atomic_file_ struct atomic_file af = {.fd = -1};
	if (atomic_file_open(&af, path, 0644, err) < 0 || io_write_full(af.fd, hex, sizeof(hex), err) < 0 ||
	    atomic_file_commit(&af, err) < 0)
		return err_wrap(err, "%s", path);
	return 0;
}

static void drop_path(const char *cpio_path)
{
	_cleanup_free_ char *pcr2 = pcr2_path_of(cpio_path);
	unlink(cpio_path);
	unlink(pcr2);
}

void bld_ramdisk_cache_drop(const char *cache_dir, const char *key)
{
	_cleanup_free_ char *path = bld_ramdisk_cache_path(cache_dir, key);
	drop_path(path);
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
		if (i >= RAMDISK_CACHE_KEEP) {
			drop_path(list[i].path);
			log_debug("ramdisk cache: removed %s", list[i].path);
		}
		free(list[i].path);
	}
	free(list);
}

int bld_ramdisk_cache_verify(const char *cache_dir, size_t *checked, size_t *bad, struct err **err)
{
	*checked = *bad = 0;
	_cleanup_free_ char *dir = xasprintf("%s/" RAMDISK_CACHE_DIR, cache_dir);
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : err_sys(err, "opendir %s", dir);
	char **paths = NULL;
	size_t n = 0;
	for (struct dirent *e; (e = readdir(d));) {
		size_t len = strlen(e->d_name), ext = strlen(RAMDISK_CACHE_EXT);
		if (len > ext && strcmp(e->d_name + len - ext, RAMDISK_CACHE_EXT) == 0) {
			paths = xrealloc(paths, (n + 1) * sizeof(*paths));
			paths[n++] = xasprintf("%s/%s", dir, e->d_name);
		}
	}
	closedir(d);
	int r = 0;
	for (size_t i = 0; i < n && r == 0; i++) {
		uint8_t want[48], got[EIF_PCR_MAX];
		struct err *e = NULL;
		(*checked)++;
		if (pcr2_read(paths[i], want, &e) < 0) {
			/* Nothing to check it against: a build would not reuse it either. */
			(*bad)++;
			log_error("cached ramdisk %s: no PCR2 recorded (%s): removed", paths[i], e->msg);
			err_free(&e);
			drop_path(paths[i]);
		} else if (eif_pcr_of_file(EIF_HASH_SHA384, paths[i], got, err) < 0) {
			r = err_wrap(err, "cached ramdisk %s", paths[i]); /* reading trouble, not a verdict */
		} else if (memcmp(want, got, sizeof(want)) != 0) {
			(*bad)++;
			char hex[2 * 48 + 1];
			hex_encode(got, 48, hex);
			log_error("cached ramdisk %s is corrupt (it measures PCR2 %s, not the one recorded when it was "
			          "made): removed",
			          paths[i], hex);
			drop_path(paths[i]);
		}
	}
	for (size_t i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
	return r;
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
