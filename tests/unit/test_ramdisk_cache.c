/* test_ramdisk_cache: pruning the customer ramdisk cache keeps the newest
 * entries and the temporary files of builds under way, and removes the
 * temporary files killed builds left behind. */
#include <fcntl.h>
#include <string.h>
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

/* A ramdisk is reused only with its PCR2 beside it (the EIF writer checks it); pruning and
 * dropping take the PCR2 with the ramdisk. */
TEST(ramdisk_cache_pcr2_kept_beside)
{
	const char *dir = test_tmpdir(t);
	struct err *e = NULL;
	REQUIRE(bld_ramdisk_cache_prepare(dir, &e) == 0);
	const char *key = "sha256:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
	_cleanup_free_ char *path = bld_ramdisk_cache_path(dir, key);
	int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
	REQUIRE(fd >= 0 && write(fd, "x", 1) == 1);
	close(fd);
	uint8_t pcr2[48], got[48];
	for (int i = 0; i < 48; i++)
		pcr2[i] = (uint8_t)(i * 5);
	char *found = NULL;
	CHECK(!bld_ramdisk_cache_lookup(dir, key, &found, got)); /* no PCR2: not reused */
	free(found);
	REQUIRE(bld_ramdisk_cache_set_pcr2(dir, key, pcr2, &e) == 0);
	CHECK(bld_ramdisk_cache_lookup(dir, key, &found, got));
	CHECK_STR_EQ(found, path);
	free(found);
	CHECK(memcmp(got, pcr2, 48) == 0);
	/* A damaged record is no record. */
	char rec[1024];
	snprintf(rec, sizeof(rec), "%s/ramdisks/00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff.pcr2", dir);
	fd = open(rec, O_WRONLY | O_TRUNC);
	REQUIRE(fd >= 0 && write(fd, "zz\n", 3) == 3);
	close(fd);
	CHECK(!bld_ramdisk_cache_lookup(dir, key, &found, got));
	free(found);
	bld_ramdisk_cache_drop(dir, key);
	CHECK(access(path, F_OK) < 0 && access(rec, F_OK) < 0);

	/* Pruning removes a ramdisk's record with it. */
	time_t now = time(NULL);
	for (int i = 0; i < 4; i++) {
		char name[32];
		snprintf(name, sizeof(name), "p%d.cpio", i);
		touch_at(dir, name, now - 100 * (4 - i)); /* p3 newest */
		snprintf(name, sizeof(name), "p%d.pcr2", i);
		touch_at(dir, name, now);
	}
	bld_ramdisk_cache_prune(dir);
	CHECK(!exists(dir, "p0.cpio") && !exists(dir, "p0.pcr2"));
	CHECK(exists(dir, "p1.cpio") && exists(dir, "p1.pcr2") && exists(dir, "p3.pcr2"));
}
