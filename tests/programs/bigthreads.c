/* A big multithreaded process: bigthreads THREADS MIB.  THREADS threads in all
 * (main plus THREADS-1 workers, each blocked in pause()), MIB MiB of heap
 * touched, shared out among the workers (each mallocs and fills its part, so
 * glibc gives them arenas of their own), then main crashes three calls deep.
 * With CRASH_STAMP set it prints CLOCK_MONOTONIC just before the fault. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "crashstamp.h"

static pthread_barrier_t ready;
static size_t share;  /* bytes each worker touches */

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

__attribute__((noinline)) static void level_c(int *p) { stamp(); *p = 42; }
__attribute__((noinline)) static void level_b(int *p) { level_c(p); asm volatile("" ::: "memory"); }
__attribute__((noinline)) static void level_a(int *p) { level_b(p); asm volatile("" ::: "memory"); }

int main(int argc, char **argv)
{
	long threads = argc > 1 ? atol(argv[1]) : 80;
	size_t mib = argc > 2 ? strtoul(argv[2], NULL, 10) : 0;
	pthread_t t;
	if (threads < 1)
		threads = 1;
	share = threads > 1 ? (mib << 20) / (threads - 1) : 0;
	if (threads == 1 && mib)
		memset(malloc(mib << 20), 0x5a, mib << 20);
	pthread_barrier_init(&ready, NULL, threads);
	for (long i = 1; i < threads; i++)
		if (pthread_create(&t, NULL, worker, (void *)i)) {
			perror("pthread_create");
			return 2;
		}
	pthread_barrier_wait(&ready);
	level_a((int *)0);
	return 0;
}
