/* Touches N MiB of heap (default 1024), then crashes three calls deep. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "crashstamp.h"

__attribute__((noinline)) static void level_c(int *p) { *p = 42; }
__attribute__((noinline)) static void level_b(int *p) { level_c(p); asm volatile("" ::: "memory"); }
__attribute__((noinline)) static void level_a(int *p) { level_b(p); asm volatile("" ::: "memory"); }

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 1024;
	char *heap = malloc(mib << 20);
	if (heap)
		memset(heap, 0x5a, mib << 20);
	stamp();
	level_a((int *)0);
	return heap == NULL;
}
