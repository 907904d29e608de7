/* ne_preflight: what the Nitro launcher needs from the machine or the container it runs in, checked
 * before anything is read or allocated, so a pod that lacks one piece fails at once with a message
 * naming it and an exit code of its own (docs/deploy.md): the device, AF_VSOCK, hugepages. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "runtime/ne.h"

/* Free hugepage memory of one page size: the pool's free pages (sysfs shows the host's pools, in a
 * container too) less the reserved ones, capped by the hugetlb cgroup's limit (what a pod's
 * hugepages-2Mi/1Gi resource sets; cgroup v2, else v1). */
static uint64_t usable_bytes(const char *dir, uint64_t size, const char *cgroup_root, char *note, size_t note_len,
                             bool *known)
{
	uint64_t counts[2] = {0, 0};
	static const char *const names[2] = {"free_hugepages", "resv_hugepages"};
	for (int i = 0; i < 2; i++) {
		_cleanup_free_ char *path =
		    xasprintf("%s/hugepages-%llukB/%s", dir, (unsigned long long)(size / 1024), names[i]);
		_cleanup_free_ char *text = NULL;
		size_t len;
		struct err *e = NULL;
		if (io_read_file(path, 64, &text, &len, &e) < 0) {
			err_free(&e);
			continue;
		}
		counts[i] = strtoull(text, NULL, 10);
		*known |= i == 0;
	}
	uint64_t pages = counts[0] > counts[1] ? counts[0] - counts[1] : 0;
	uint64_t bytes = pages * size;
	/* The cgroup files name the size as 2MB, 1GB. */
	_cleanup_free_ char *unit = size >= NE_GIB ? xasprintf("%lluGB", (unsigned long long)(size / NE_GIB))
	                                           : xasprintf("%lluMB", (unsigned long long)(size / NE_MIB));
	const char *root = cgroup_root ? cgroup_root : "/sys/fs/cgroup";
	_cleanup_free_ char *v2 = xasprintf("%s/hugetlb.%s.max", root, unit);
	_cleanup_free_ char *v1 = xasprintf("%s/hugetlb/hugetlb.%s.limit_in_bytes", root, unit);
	_cleanup_free_ char *v1_used = xasprintf("%s/hugetlb/hugetlb.%s.usage_in_bytes", root, unit);
	_cleanup_free_ char *v2_used = xasprintf("%s/hugetlb.%s.current", root, unit);
	const char *files[2][2] = {{v2, v2_used}, {v1, v1_used}};
	for (int i = 0; i < 2; i++) {
		_cleanup_free_ char *text = NULL, *used = NULL;
		size_t len;
		struct err *e = NULL;
		if (io_read_file(files[i][0], 64, &text, &len, &e) < 0) {
			err_free(&e);
			continue;
		}
		if (strncmp(text, "max", 3) == 0)
			break;
		uint64_t limit = strtoull(text, NULL, 10), in_use = 0;
		if (io_read_file(files[i][1], 64, &used, &len, &e) == 0)
			in_use = strtoull(used, NULL, 10);
		else
			err_free(&e);
		uint64_t left = limit > in_use ? limit - in_use : 0;
		if (left < bytes) {
			snprintf(note, note_len, "; the container's hugetlb cgroup allows %llu MiB of %s pages",
			         (unsigned long long)(left / NE_MIB), unit);
			bytes = left - left % size;
		}
		break;
	}
	return bytes;
}

static int check_hugepages(const struct nitro_preflight *p, struct err **err)
{
	struct ne_hugepages hp;
	ne_hugepages_probe(p->sysfs_root, p->cpu_pool_path, &hp);
	const char *root = p->sysfs_root ? p->sysfs_root : "/sys";
	_cleanup_free_ char *dir = hp.node >= 0 ? xasprintf("%s/devices/system/node/node%d/hugepages", root, hp.node)
	                                        : xasprintf("%s/kernel/mm/hugepages", root);
	uint64_t total = 0;
	bool known = false; /* sysfs gave a free count for some size */
	char note[160] = "";
	struct buf found = {0};
	for (unsigned i = 0; i < hp.n; i++) {
		char n1[160] = "";
		uint64_t b = usable_bytes(dir, hp.sizes[i], p->cgroup_root, n1, sizeof(n1), &known);
		total += b;
		if (n1[0] && !note[0])
			memcpy(note, n1, sizeof(note));
		if (b)
			buf_printf(&found, "%s%llu MiB of %llu kB pages", found.len ? ", " : "",
			           (unsigned long long)(b / NE_MIB), (unsigned long long)(hp.sizes[i] / 1024));
	}
	/* No sysfs to count with (not mounted in this container): the launch's own allocation decides. */
	if (!known)
		log_debug("nitro: %s gives no free hugepage counts: not checked before the launch", dir);
	if (total >= p->memory_bytes || !known) {
		buf_free(&found);
		return 0;
	}
	err_set(err, ENOMEM,
	        "not enough hugepages for %llu MiB of enclave memory: %s has %s free%s. In a pod, request "
	        "hugepages-2Mi (or hugepages-1Gi) of at least %llu MiB in the container's resources (requests "
	        "equal to limits) on a node that reserves them; on a host, reserve them with nitro-cli's "
	        "allocator (memory_mib in /etc/nitro_enclaves/allocator.yaml)",
	        (unsigned long long)(p->memory_bytes / NE_MIB), dir, found.data ? found.data : "none", note,
	        (unsigned long long)(p->memory_bytes / NE_MIB));
	buf_free(&found);
	return -1;
}

/* AF_VSOCK: container runtimes' default seccomp profiles (docker's, podman's containers-common)
 * refuse socket(AF_VSOCK) with EPERM; a host without the vsock transport gives EAFNOSUPPORT. */
static int check_vsock(struct err **err)
{
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	if (errno == EPERM || errno == EACCES)
		return err_set(err, errno,
		               "no vsock: socket(AF_VSOCK) was refused (%s): the container's seccomp profile blocks "
		               "it (docker's and podman's default profiles do). Run the container with a profile "
		               "that allows AF_VSOCK sockets (Kubernetes: seccompProfile type Unconfined or a "
		               "Localhost profile allowing socket family 40; podman/docker: --security-opt "
		               "seccomp=...); privileged mode is not needed",
		               strerror(errno));
	return err_set(err, errno,
	               "no vsock: socket(AF_VSOCK) failed (%s): the host has no vsock transport. On a Nitro "
	               "parent instance it comes with enclave support (launch the instance with it enabled)",
	               strerror(errno));
}

int nitro_preflight(const struct nitro_preflight *p, enum nitro_missing *missing, struct err **err)
{
	*missing = NITRO_MISSING_NONE;
	struct ne_dev *dev;
	if (ne_dev_open(p->device, &dev, err) < 0) {
		*missing = NITRO_MISSING_DEVICE;
		return -1;
	}
	dev->ops->free(dev);
	if (check_vsock(err) < 0) {
		*missing = NITRO_MISSING_VSOCK;
		return -1;
	}
	if (check_hugepages(p, err) < 0) {
		*missing = NITRO_MISSING_HUGEPAGES;
		return -1;
	}
	return 0;
}
