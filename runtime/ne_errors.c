/* ne_errors: what each errno of the Nitro Enclaves ioctls means and what the user should change,
 * one table (the driver's own codes 256..275 and the usual ones its ioctls return). */
#include <string.h>

#include "runtime/ne.h"

#define POOL      "/sys/module/nitro_enclaves/parameters/ne_cpus"
#define ALLOCATOR "/etc/nitro_enclaves/allocator.yaml"

static const struct ne_err_info table[] = {
    {NE_E_VCPU_ALREADY_USED, "NE_ERR_VCPU_ALREADY_USED",
     "that vCPU was already given to this enclave: list each CPU id once"},
    {NE_E_VCPU_NOT_IN_CPU_POOL, "NE_ERR_VCPU_NOT_IN_CPU_POOL",
     "that CPU is not in the Nitro Enclaves CPU pool (or another enclave holds its core): choose CPUs "
     "from " POOL ", or grow the pool (cpu_count in " ALLOCATOR ", then restart nitro-enclaves-allocator)"},
    {NE_E_VCPU_INVALID_CPU_CORE, "NE_ERR_VCPU_INVALID_CPU_CORE",
     "the CPU's core id is out of range for the CPU pool: set the pool again (" POOL ") and retry"},
    {NE_E_INVALID_MEM_REGION_SIZE, "NE_ERR_INVALID_MEM_REGION_SIZE",
     "a memory region is not a multiple of 2 MiB: enclave memory must come in whole 2 MiB or 1 GiB "
     "hugepages"},
    {NE_E_INVALID_MEM_REGION_ADDR, "NE_ERR_INVALID_MEM_REGION_ADDR",
     "a memory region's address range is not valid user memory (an enclaver bug: please report it)"},
    {NE_E_UNALIGNED_MEM_REGION_ADDR, "NE_ERR_UNALIGNED_MEM_REGION_ADDR",
     "a memory region is not 2 MiB aligned: enclave memory must be hugepages (an enclaver bug if they were)"},
    {NE_E_MEM_REGION_ALREADY_USED, "NE_ERR_MEM_REGION_ALREADY_USED",
     "a memory region overlaps one already given to the enclave (an enclaver bug: please report it)"},
    {NE_E_MEM_NOT_HUGE_PAGE, "NE_ERR_MEM_NOT_HUGE_PAGE",
     "enclave memory is not backed by hugepages: reserve them with the allocator (memory_mib in " ALLOCATOR
     ", then restart nitro-enclaves-allocator) or /sys/kernel/mm/hugepages/hugepages-*/nr_hugepages"},
    {NE_E_MEM_DIFFERENT_NUMA_NODE, "NE_ERR_MEM_DIFFERENT_NUMA_NODE",
     "the hugepages come from another NUMA node than the CPU pool: reserve them on the pool's node "
     "(/sys/devices/system/node/node<N>/hugepages/) or let nitro-enclaves-allocator do it"},
    {NE_E_MEM_MAX_REGIONS, "NE_ERR_MEM_MAX_REGIONS",
     "the enclave's memory is split into more regions than the device accepts: reserve 1 GiB hugepages "
     "so fewer regions are needed, or ask for less memory"},
    {NE_E_NO_MEM_REGIONS_ADDED, "NE_ERR_NO_MEM_REGIONS_ADDED",
     "the enclave was started without memory (an enclaver bug: please report it)"},
    {NE_E_NO_VCPUS_ADDED, "NE_ERR_NO_VCPUS_ADDED",
     "the enclave was started without vCPUs: ask for at least one "
     "full core (2 vCPUs on x86)"},
    {NE_E_ENCLAVE_MEM_MIN_SIZE, "NE_ERR_ENCLAVE_MEM_MIN_SIZE",
     "enclave memory is below the driver's 64 MiB minimum: ask for more memory (at least 64 MiB)"},
    {NE_E_FULL_CORES_NOT_USED, "NE_ERR_FULL_CORES_NOT_USED",
     "enclaves need full CPU cores (every hyperthread of each core): use a multiple of the threads per "
     "core, an even vCPU count on x86"},
    {NE_E_NOT_IN_INIT_STATE, "NE_ERR_NOT_IN_INIT_STATE",
     "the enclave was already started, so resources can no longer be added (an enclaver bug: please report "
     "it)"},
    {NE_E_INVALID_VCPU, "NE_ERR_INVALID_VCPU", "that CPU id is beyond the instance's CPUs: choose one from " POOL},
    {NE_E_NO_CPUS_AVAIL_IN_POOL, "NE_ERR_NO_CPUS_AVAIL_IN_POOL",
     "no CPUs are free in the Nitro Enclaves CPU pool: set one up (cpu_count in " ALLOCATOR
     ", then restart nitro-enclaves-allocator, or write a CPU list to " POOL ") or stop an enclave that holds them"},
    {NE_E_INVALID_PAGE_SIZE, "NE_ERR_INVALID_PAGE_SIZE",
     "the memory is backed by hugepages smaller than 2 MiB: reserve 2 MiB or 1 GiB hugepages"},
    {NE_E_INVALID_FLAG_VALUE, "NE_ERR_INVALID_FLAG_VALUE",
     "the driver refused a flags value: update the kernel (its nitro_enclaves driver is older than the "
     "request) or report an enclaver bug"},
    {NE_E_INVALID_ENCLAVE_CID, "NE_ERR_INVALID_ENCLAVE_CID",
     "that enclave CID is reserved (0-2 are well known, 3 is the parent, 4294967295 is VMADDR_CID_ANY) "
     "or above 32 bits: choose a CID from 4 to 4294967294, or leave it unset (0) so one is picked"},
    {EINVAL, "EINVAL",
     "the driver refused an argument (for memory: the physical regions are not 2 MiB "
     "aligned hugepages)"},
    {EFAULT, "EFAULT", "the driver could not copy the ioctl argument (an enclaver bug: please report it)"},
    {ENOMEM, "ENOMEM", "the kernel is out of memory for the driver's bookkeeping: free memory and retry"},
    {EIO, "EIO",
     "the enclave belongs to another process (the driver ties an enclave to the process that "
     "created it), or the Nitro device failed a request: check dmesg for nitro_enclaves"},
    {ENOTTY, "ENOTTY",
     "this is not a Nitro Enclaves device (it does not know the ioctl): use "
     "/dev/nitro_enclaves"},
    {EBADF, "EBADF", "the enclave descriptor is not open (an enclaver bug: please report it)"},
    {EPERM, "EPERM", "permission denied: the user needs access to /dev/nitro_enclaves (the \"ne\" group)"},
    {EACCES, "EACCES", "permission denied: the user needs access to /dev/nitro_enclaves (the \"ne\" group)"},
    {EBUSY, "EBUSY", "the Nitro device is busy: retry, or check dmesg for nitro_enclaves"},
    {ENODEV, "ENODEV", "the Nitro Enclaves PCI device is gone: check dmesg for nitro_enclaves"},
};

const struct ne_err_info *ne_err_lookup(int code)
{
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (table[i].code == code)
			return &table[i];
	return NULL;
}

int ne_err_set(struct err **err, int code, const char *what)
{
	const struct ne_err_info *e = ne_err_lookup(code);
	if (e)
		return err_set(err, code, "%s: %s (%s)", what, e->text, e->name);
	return err_set(err, code, "%s: %s (errno %d)", what, strerror(code), code);
}
