/* Registers N (argv[1], default 100) small buffers with libminicoredumper,
 * half into the core and half as dump files, then crashes three calls deep. */
#include <stdio.h>
#include <stdlib.h>
#include <minicoredumper.h>

__attribute__((noinline)) static void level_c(int *p) { *p = 42; }
__attribute__((noinline)) static void level_b(int *p) { level_c(p); asm volatile("" ::: "memory"); }
__attribute__((noinline)) static void level_a(int *p) { level_b(p); asm volatile("" ::: "memory"); }

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 100;
	for (int i = 0; i < n; i++) {
		int *v = malloc(64 * sizeof(int));
		char ident[32];
		for (int k = 0; k < 64; k++)
			v[k] = i * 64 + k;
		snprintf(ident, sizeof(ident), "buf%03d.bin", i);
		if (mcd_dump_data_register_bin(i % 2 ? ident : NULL, 1, NULL, v, 64 * sizeof(int),
					       MCD_DATA_PTR_DIRECT | MCD_LENGTH_DIRECT))
			return 2;
	}
	level_a((int *)0);
	return 0;
}
