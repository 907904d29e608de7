/* test_ramdisk_cache: pruning the customer ramdisk cache keeps the newest
 * entries and the temporary files of builds under way, and removes the
 * temporary files killed builds left behind. */
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <utime.h>

#include "builder/builder.h"
#include "tests/harness.h"

static void touch_at(const char *dir, const char *name, time_t when)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/ramdisks/%s", dir, name);
	int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
	if (fd < 0 || write(fd, "x", 1) != 1)
		abort();
	close(fd);
	struct utimbuf tb = {.actime = when, .modtime = when};
	if (utime(path, &tb) < 0)
		abort();
}

static bool exists(const char *dir, const char *name)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/ramdisks/%s", dir, name);
	return access(path, F_OK) == 0;
}

TEST(ramdisk_cache_prune)
{
	const char *dir = test_tmpdir(t);
	char sub[1024];
	snprintf(sub, sizeof(sub), "%s/ramdisks", dir);
	REQUIRE(mkdir(sub, 0755) == 0);
	time_t now = time(NULL);
	for (int i = 0; i < 5; i++) {
		char name[32];
		snprintf(name, sizeof(name), "k%d.cpio", i);
		touch_at(dir, name, now - 100 * (5 - i)); /* k4 newest */
	}
	touch_at(dir, "k9.cpio.tmp-AbCdEf", now - 60);        /* a build under way */
	touch_at(dir, "k8.cpio.tmp-GhIjKl", now - 3 * 86400); /* a killed build's */
	touch_at(dir, "notes.txt", now - 3 * 86400);         /* not ours: left alone */
	bld_ramdisk_cache_prune(dir);
	CHECK(!exists(dir, "k0.cpio") && !exists(dir, "k1.cpio"));
	CHECK(exists(dir, "k2.cpio") && exists(dir, "k3.cpio") && exists(dir, "k4.cpio"));
	CHECK(exists(dir, "k9.cpio.tmp-AbCdEf"));
	CHECK(!exists(dir, "k8.cpio.tmp-GhIjKl"));
	CHECK(exists(dir, "notes.txt"));
}
