/* Crashes three calls deep: main -> level_a -> level_b -> level_c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "crashlevels.h"
#include "crashstamp.h"

int data_global = 0x1234;      /* written at run time, lives in .data */
int bss_global;                /* written at run time, lives in .bss */
volatile int recept_global = 0; /* dumped through a recept buffer */
char *heap_ptr;

int main(int argc, char **argv)
{
	data_global = 0x5a5a5a5a;
	bss_global = 0x3c3c3c3c;
	recept_global = 0x600df00d;
	heap_ptr = malloc(4096);
	memset(heap_ptr, 0x77, 4096);
	if (argc > 1)
		printf("%s\n", argv[1]);
	stamp();
	level_a((int *)0);
	return 0;
}
