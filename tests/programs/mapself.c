/* Maps its own executable N times (argv[1], default 10000: each a mapping at
 * offset 0 with a valid ELF header, as many modules to a naive reader), then
 * crashes three calls deep as crash3 does: main -> level_a -> level_b -> level_c. */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "crashlevels.h"

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 10000;
	int fd = open("/proc/self/exe", O_RDONLY);

	if (fd < 0)
		return 1;
	for (long i = 0; i < n; i++)
		if (mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0) == MAP_FAILED)
			return 2;
	level_a((int *)0);
	return 0;
}
