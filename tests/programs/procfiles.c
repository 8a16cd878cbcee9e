/* The crashed process's files and memory as it sees them
 * (tests/host/test_process_files.py).  Every mode crashes three calls deep,
 * main -> level_a -> level_b -> level_c, as crash3 does:
 *   procfiles wait            after a byte (or the end) on stdin
 *   procfiles truncated FILE  with FILE (16 pages) mapped shared and cut to one
 *                             page under the mapping (the rest of it cannot be
 *                             read); prints the mapping's address
 *   procfiles map FILE        with 8 MiB of FILE mapped shared, only its first byte
 *                             read; prints the mapping's address and "ready",
 *                             then waits for a byte on stdin */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGES 16
#define MAPPED (8 << 20)

#include "crashlevels.h"

static void wait_stdin(void)
{
	char c;

	if (read(0, &c, 1) < 0)
		perror("read");
}

int main(int argc, char **argv)
{
	long page = sysconf(_SC_PAGESIZE);
	volatile char *m;
	int fd;

	if (argc > 2 && !strcmp(argv[1], "truncated")) {
		fd = open(argv[2], O_RDWR | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || ftruncate(fd, PAGES * page))
			return 1;
		m = mmap(NULL, PAGES * page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (m == MAP_FAILED)
			return 1;
		memset((char *)m, 0x5a, PAGES * page);
		if (ftruncate(fd, page))
			return 1;
		printf("%p ready\n", (void *)m);
		fflush(stdout);
	} else if (argc > 2 && !strcmp(argv[1], "map")) {
		fd = open(argv[2], O_RDONLY);
		if (fd < 0)
			return 1;
		m = mmap(NULL, MAPPED, PROT_READ, MAP_SHARED, fd, 0);
		if (m == MAP_FAILED)
			return 1;
		close(fd); /* now: a FUSE daemon that stops answering would hold the exit's close */
		printf("%p %d ready\n", (void *)m, m[0]);
		fflush(stdout);
		wait_stdin();
	} else if (argc > 1 && !strcmp(argv[1], "wait")) {
		wait_stdin();
	}
	level_a((int *)0);
	return 0;
}
