/* Benchmark crash: benchcrash THREADS REGISTRATIONS.  THREADS threads in all
 * (main plus THREADS-1 parked workers), REGISTRATIONS buffers of 256 bytes
 * registered with libminicoredumper (half into the core, half as dump files),
 * then main crashes three calls deep.  With CRASH_STAMP set it prints
 * CLOCK_MONOTONIC just before the fault. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <minicoredumper.h>
#include "crashstamp.h"

static pthread_barrier_t ready;

static void *worker(void *arg)
{
	(void)arg;
	pthread_barrier_wait(&ready);
	for (;;)
		pause();
	return NULL;
}

__attribute__((noinline)) static void level_c(int *p) { stamp(); *p = 42; }
__attribute__((noinline)) static void level_b(int *p) { level_c(p); asm volatile("" ::: "memory"); }
__attribute__((noinline)) static void level_a(int *p) { level_b(p); asm volatile("" ::: "memory"); }

int main(int argc, char **argv)
{
	int threads = argc > 1 ? atoi(argv[1]) : 1;
	int regs = argc > 2 ? atoi(argv[2]) : 0;
	pthread_t t;
	if (threads < 1)
		threads = 1;
	pthread_barrier_init(&ready, NULL, threads);
	for (int i = 1; i < threads; i++)
		if (pthread_create(&t, NULL, worker, NULL))
			return 2;
	for (int i = 0; i < regs; i++) {
		int *v = malloc(64 * sizeof(int));
		char ident[32];
		for (int k = 0; k < 64; k++)
			v[k] = i * 64 + k;
		snprintf(ident, sizeof(ident), "b%03d.bin", i);
		if (mcd_dump_data_register_bin(i % 2 ? ident : NULL, 1, NULL, v, 64 * sizeof(int),
					       MCD_DATA_PTR_DIRECT | MCD_LENGTH_DIRECT))
			return 3;
	}
	pthread_barrier_wait(&ready);
	level_a((int *)0);
	return 0;
}
