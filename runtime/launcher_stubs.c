/* launcher_stubs: stand-ins for the Nitro and emulator launchers while they are written on other
 * branches, so `enclaver run` links. DELETE THIS FILE when launcher_nitro.c and launcher_emulator.c land. */
#include <errno.h>

#include "runtime/launcher.h"

int launcher_nitro_new(const struct launcher_nitro_options *opt, struct launcher **out, struct err **err)
{
	(void)opt, (void)out;
	return err_set(err, ENOSYS, "the Nitro launcher is not part of this build");
}

int launcher_emulator_new(const struct launcher_emulator_options *opt, struct launcher **out, struct err **err)
{
	(void)opt, (void)out;
	return err_set(err, ENOSYS, "the emulator launcher is not part of this build");
}
