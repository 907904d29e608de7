/* hello_static: the app of test_build_e2e, linked statically so the app image needs no
 * libc or shell; prints what odyn should have given it (argv, uid, working folder, Env). */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char cwd[256];
	printf("hello, %s from uid %d in %s, GREETING=%s\n", argc > 1 ? argv[1] : "?", (int)getuid(),
	       getcwd(cwd, sizeof(cwd)) ? cwd : "?", getenv("GREETING") ? getenv("GREETING") : "(unset)");
	return 0;
}
