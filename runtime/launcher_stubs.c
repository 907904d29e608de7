/* launcher_stubs: a stand-in for the Nitro launcher while it is written on another branch, so
 * `enclaver run` links. DELETE THIS FILE when launcher_nitro.c lands (launcher_emulator.c has). */
#include <errno.h>

#include "runtime/launcher.h"

int launcher_nitro_new(const struct launcher_nitro_options *opt, struct launcher **out, struct err **err)
{
	(void)opt, (void)out;
	return err_set(err, ENOSYS, "the Nitro launcher is not part of this build");
}
