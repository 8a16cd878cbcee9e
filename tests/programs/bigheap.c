/* Touches N MiB of heap (default 1024), then crashes three calls deep. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

__attribute__((noinline)) static void level_c(int *p) { *p = 42; }
__attribute__((noinline)) static void level_b(int *p) { level_c(p); asm volatile("" ::: "memory"); }
__attribute__((noinline)) static void level_a(int *p) { level_b(p); asm volatile("" ::: "memory"); }

/* With CRASH_STAMP set, print CLOCK_MONOTONIC just before the fault (benchmarks). */
static void stamp(void)
{
	struct timespec ts;
	char buf[64];
	int n;
	if (!getenv("CRASH_STAMP"))
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	n = snprintf(buf, sizeof(buf), "%ld.%09ld\n", (long)ts.tv_sec, ts.tv_nsec);
	write(2, buf, n);
}

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
