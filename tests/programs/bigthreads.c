/* A big process: bigthreads THREADS [MIB [MAPPINGS [FILE]]].
 *
 * THREADS threads in all: main and THREADS-1 workers blocked in pause().
 * MIB MiB of heap touched, shared out among the workers (each mallocs and fills
 * its part, so glibc gives them arenas of their own; main alone has it all).
 * MAPPINGS file mappings: FILE (default bigthreads.data, made one page long) is
 * mapped MAPPINGS times side by side, read-only and read-write in turn (private),
 * so no two merge: MAPPINGS entries in the kernel's NT_FILE, none an ELF object.
 * vm.max_map_count (65530 by default) bounds MAPPINGS, with the threads' stacks.
 * Then main crashes three calls deep.  With CRASH_STAMP set it prints
 * CLOCK_MONOTONIC just before the fault. */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "crashstamp.h"

static pthread_barrier_t ready;
static size_t share;  /* bytes of heap each worker touches */

static void *worker(void *arg)
{
	char *heap = share ? malloc(share) : NULL;
	if (heap)
		memset(heap, (int)(long)arg, share);
	pthread_barrier_wait(&ready);
	for (;;)
		pause();
	return heap;
}

static int map_file(long n, const char *path)
{
	long page = sysconf(_SC_PAGESIZE);
	int fd = open(path, O_RDWR | O_CREAT, 0600);
	char *area;
	if (fd < 0 || ftruncate(fd, page))
		return -1;
	area = mmap(NULL, n * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED)
		return -1;
	for (long i = 0; i < n; i++)
		if (mmap(area + i * page, page, i % 2 ? PROT_READ | PROT_WRITE : PROT_READ,
			 MAP_PRIVATE | MAP_FIXED, fd, 0) == MAP_FAILED)
			return -1;
	return 0;
}

__attribute__((noinline)) static void level_c(int *p) { stamp(); *p = 42; }
__attribute__((noinline)) static void level_b(int *p) { level_c(p); asm volatile("" ::: "memory"); }
__attribute__((noinline)) static void level_a(int *p) { level_b(p); asm volatile("" ::: "memory"); }

int main(int argc, char **argv)
{
	long threads = argc > 1 ? atol(argv[1]) : 80;
	size_t mib = argc > 2 ? strtoul(argv[2], NULL, 10) : 0;
	long mappings = argc > 3 ? atol(argv[3]) : 0;
	pthread_t t;
	if (threads < 1)
		threads = 1;
	if (mappings > 0 && map_file(mappings, argc > 4 ? argv[4] : "bigthreads.data")) {
		perror("mappings");
		return 2;
	}
	share = threads > 1 ? (mib << 20) / (threads - 1) : 0;
	if (threads == 1 && mib)
		memset(malloc(mib << 20), 0x5a, mib << 20);
	pthread_barrier_init(&ready, NULL, threads);
	for (long i = 1; i < threads; i++)
		if (pthread_create(&t, NULL, worker, (void *)i)) {
			perror("pthread_create");
			return 3;
		}
	pthread_barrier_wait(&ready);
	level_a((int *)0);
	return 0;
}
