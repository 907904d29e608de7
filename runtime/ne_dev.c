/* ne_dev: the real /dev/nitro_enclaves behind the ne_dev ops table: one ioctl per op, errno passed
 * through untouched (ne_errors.c turns it into a message). */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include "runtime/ne.h"

/* Our restated interface must match the kernel's to the bit. */
#if defined(__has_include)
#if __has_include(<linux/nitro_enclaves.h>)
#include <linux/nitro_enclaves.h>
_Static_assert(NE_IOC_CREATE_VM == NE_CREATE_VM, "NE_CREATE_VM");
_Static_assert(NE_IOC_ADD_VCPU == NE_ADD_VCPU, "NE_ADD_VCPU");
_Static_assert(NE_IOC_GET_IMAGE_LOAD_INFO == NE_GET_IMAGE_LOAD_INFO, "NE_GET_IMAGE_LOAD_INFO");
_Static_assert(NE_IOC_SET_USER_MEMORY_REGION == NE_SET_USER_MEMORY_REGION, "NE_SET_USER_MEMORY_REGION");
_Static_assert(NE_IOC_START_ENCLAVE == NE_START_ENCLAVE, "NE_START_ENCLAVE");
_Static_assert(sizeof(struct ne_ioc_load_info) == sizeof(struct ne_image_load_info), "load info size");
_Static_assert(offsetof(struct ne_ioc_load_info, memory_offset) == offsetof(struct ne_image_load_info, memory_offset),
               "load info layout");
_Static_assert(sizeof(struct ne_ioc_mem_region) == sizeof(struct ne_user_memory_region), "region size");
_Static_assert(offsetof(struct ne_ioc_mem_region, memory_size) == offsetof(struct ne_user_memory_region, memory_size),
               "region layout");
_Static_assert(offsetof(struct ne_ioc_mem_region, userspace_addr) ==
                   offsetof(struct ne_user_memory_region, userspace_addr),
               "region layout");
_Static_assert(sizeof(struct ne_ioc_start_info) == sizeof(struct ne_enclave_start_info), "start info size");
_Static_assert(offsetof(struct ne_ioc_start_info, enclave_cid) == offsetof(struct ne_enclave_start_info, enclave_cid),
               "start info layout");
_Static_assert(NE_IOC_EIF_IMAGE == NE_EIF_IMAGE, "NE_EIF_IMAGE");
_Static_assert(NE_IOC_IMAGE_LOAD_MAX_FLAG == NE_IMAGE_LOAD_MAX_FLAG_VAL, "NE_IMAGE_LOAD_MAX_FLAG_VAL");
_Static_assert(NE_IOC_MEMORY_REGION_MAX_FLAG == NE_MEMORY_REGION_MAX_FLAG_VAL, "NE_MEMORY_REGION_MAX_FLAG_VAL");
_Static_assert(NE_IOC_DEBUG_MODE == NE_ENCLAVE_DEBUG_MODE, "NE_ENCLAVE_DEBUG_MODE");
_Static_assert(NE_IOC_START_MAX_FLAG == NE_ENCLAVE_START_MAX_FLAG_VAL, "NE_ENCLAVE_START_MAX_FLAG_VAL");
_Static_assert(NE_E_VCPU_ALREADY_USED == NE_ERR_VCPU_ALREADY_USED, "256");
_Static_assert(NE_E_VCPU_NOT_IN_CPU_POOL == NE_ERR_VCPU_NOT_IN_CPU_POOL, "257");
_Static_assert(NE_E_VCPU_INVALID_CPU_CORE == NE_ERR_VCPU_INVALID_CPU_CORE, "258");
_Static_assert(NE_E_INVALID_MEM_REGION_SIZE == NE_ERR_INVALID_MEM_REGION_SIZE, "259");
_Static_assert(NE_E_INVALID_MEM_REGION_ADDR == NE_ERR_INVALID_MEM_REGION_ADDR, "260");
_Static_assert(NE_E_UNALIGNED_MEM_REGION_ADDR == NE_ERR_UNALIGNED_MEM_REGION_ADDR, "261");
_Static_assert(NE_E_MEM_REGION_ALREADY_USED == NE_ERR_MEM_REGION_ALREADY_USED, "262");
_Static_assert(NE_E_MEM_NOT_HUGE_PAGE == NE_ERR_MEM_NOT_HUGE_PAGE, "263");
_Static_assert(NE_E_MEM_DIFFERENT_NUMA_NODE == NE_ERR_MEM_DIFFERENT_NUMA_NODE, "264");
_Static_assert(NE_E_MEM_MAX_REGIONS == NE_ERR_MEM_MAX_REGIONS, "265");
_Static_assert(NE_E_NO_MEM_REGIONS_ADDED == NE_ERR_NO_MEM_REGIONS_ADDED, "266");
_Static_assert(NE_E_NO_VCPUS_ADDED == NE_ERR_NO_VCPUS_ADDED, "267");
_Static_assert(NE_E_ENCLAVE_MEM_MIN_SIZE == NE_ERR_ENCLAVE_MEM_MIN_SIZE, "268");
_Static_assert(NE_E_FULL_CORES_NOT_USED == NE_ERR_FULL_CORES_NOT_USED, "269");
_Static_assert(NE_E_NOT_IN_INIT_STATE == NE_ERR_NOT_IN_INIT_STATE, "270");
_Static_assert(NE_E_INVALID_VCPU == NE_ERR_INVALID_VCPU, "271");
_Static_assert(NE_E_NO_CPUS_AVAIL_IN_POOL == NE_ERR_NO_CPUS_AVAIL_IN_POOL, "272");
_Static_assert(NE_E_INVALID_PAGE_SIZE == NE_ERR_INVALID_PAGE_SIZE, "273");
_Static_assert(NE_E_INVALID_FLAG_VALUE == NE_ERR_INVALID_FLAG_VALUE, "274");
_Static_assert(NE_E_INVALID_ENCLAVE_CID == NE_ERR_INVALID_ENCLAVE_CID, "275");
#endif
#endif
/* The numbers docs/nitro-runtime.md quotes, independent of any header. */
_Static_assert(NE_IOC_CREATE_VM == 0x8008AE20, "NE_CREATE_VM number");
_Static_assert(NE_IOC_ADD_VCPU == 0xC004AE21, "NE_ADD_VCPU number");
_Static_assert(NE_IOC_GET_IMAGE_LOAD_INFO == 0xC010AE22, "NE_GET_IMAGE_LOAD_INFO number");
_Static_assert(NE_IOC_SET_USER_MEMORY_REGION == 0x4018AE23, "NE_SET_USER_MEMORY_REGION number");
_Static_assert(NE_IOC_START_ENCLAVE == 0xC010AE24, "NE_START_ENCLAVE number");

struct ne_driver {
	struct ne_dev base;
	int fd;
	char *path;
};

static int xioctl(int fd, unsigned long req, void *arg)
{
	int r;
	do
		r = ioctl(fd, req, arg);
	while (r < 0 && errno == EINTR);
	return r;
}

static int drv_create_vm(struct ne_dev *d, uint64_t *slot_uid)
{
	struct ne_driver *drv = (struct ne_driver *)d;
	/* The driver installs the enclave fd close-on-exec itself. */
	return xioctl(drv->fd, NE_IOC_CREATE_VM, slot_uid);
}

static int drv_get_image_load_info(struct ne_dev *d, int enc_fd, struct ne_ioc_load_info *info)
{
	(void)d;
	return xioctl(enc_fd, NE_IOC_GET_IMAGE_LOAD_INFO, info) < 0 ? -1 : 0;
}

static int drv_set_user_memory_region(struct ne_dev *d, int enc_fd, const struct ne_ioc_mem_region *r)
{
	(void)d;
	struct ne_ioc_mem_region copy = *r;
	return xioctl(enc_fd, NE_IOC_SET_USER_MEMORY_REGION, &copy) < 0 ? -1 : 0;
}

static int drv_add_vcpu(struct ne_dev *d, int enc_fd, uint32_t *cpu_id)
{
	(void)d;
	return xioctl(enc_fd, NE_IOC_ADD_VCPU, cpu_id) < 0 ? -1 : 0;
}

static int drv_start_enclave(struct ne_dev *d, int enc_fd, struct ne_ioc_start_info *info)
{
	(void)d;
	return xioctl(enc_fd, NE_IOC_START_ENCLAVE, info) < 0 ? -1 : 0;
}

static void drv_release(struct ne_dev *d, int enc_fd)
{
	(void)d;
	if (enc_fd >= 0)
		close(enc_fd);
}

static void drv_free(struct ne_dev *d)
{
	struct ne_driver *drv = (struct ne_driver *)d;
	if (drv->fd >= 0)
		close(drv->fd);
	free(drv->path);
	free(drv);
}

static const struct ne_dev_ops driver_ops = {
    .name = "driver",
    .create_vm = drv_create_vm,
    .get_image_load_info = drv_get_image_load_info,
    .set_user_memory_region = drv_set_user_memory_region,
    .add_vcpu = drv_add_vcpu,
    .start_enclave = drv_start_enclave,
    .release = drv_release,
    .free = drv_free,
};

int ne_dev_open(const char *path, struct ne_dev **out, struct err **err)
{
	if (path == NULL)
		path = NE_DEFAULT_DEVICE;
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return err_set(
			    err, ENODEV,
			    "no Nitro Enclaves driver here: %s does not exist. Run on an EC2 instance "
			    "launched with enclave support enabled, with the nitro_enclaves driver loaded "
			    "(modprobe nitro_enclaves; the aws-nitro-enclaves-cli package sets it up); in a "
			    "container, pass the device (Kubernetes: request the aws.ec2.nitro/nitro_enclaves "
			    "resource of the Nitro Enclaves device plugin; podman/docker: --device %s); or use "
			    "the emulator (--emulate)",
			    path,
			    path);
		if (errno == EACCES || errno == EPERM)
			return err_set(err, errno,
			               "permission denied opening %s: add the user to the \"ne\" group that "
			               "aws-nitro-enclaves-cli creates (usermod -aG ne USER, then log in again) or "
			               "run as root; in a container, pass the device in (Kubernetes: the "
			               "aws.ec2.nitro/nitro_enclaves resource; podman/docker: --device %s)",
			               path, path);
		return err_sys(err, "open %s", path);
	}
	struct ne_driver *drv = xcalloc(1, sizeof(*drv));
	drv->base.ops = &driver_ops;
	drv->fd = fd;
	drv->path = xstrdup(path);
	drv->base.path = drv->path;
	*out = &drv->base;
	return 0;
}
