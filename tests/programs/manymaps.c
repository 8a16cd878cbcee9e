/* Many mappings: manymaps N FILE.  FILE is made one page long (created if
 * need be) and that page is mapped N times side by side, read-only and
 * read-write in turn (private), so no two merge: N file mappings, N entries in
 * the kernel's NT_FILE (a data file, not an ELF object: no module each).  Then
 * main crashes three calls deep.  vm.max_map_count (65530 by default) bounds N.
 * With CRASH_STAMP set it prints CLOCK_MONOTONIC just before the fault. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#include "crashstamp.h"

__attribute__((noinline)) static void level_c(int *p) { stamp(); *p = 42; }
__attribute__((noinline)) static void level_b(int *p) { level_c(p); asm volatile("" ::: "memory"); }
__attribute__((noinline)) static void level_a(int *p) { level_b(p); asm volatile("" ::: "memory"); }

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000;
	long page = sysconf(_SC_PAGESIZE);
	int fd = open(argc > 2 ? argv[2] : "manymaps.data", O_RDWR | O_CREAT, 0600);
	char *area;
	if (fd < 0 || n < 1 || ftruncate(fd, page))
		return 2;
	area = mmap(NULL, n * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED)
		return 3;
	for (long i = 0; i < n; i++)
		if (mmap(area + i * page, page, i % 2 ? PROT_READ | PROT_WRITE : PROT_READ,
			 MAP_PRIVATE | MAP_FIXED, fd, 0) == MAP_FAILED) {
			perror("mmap");
			return 4;
		}
	level_a((int *)0);
	return 0;
}
