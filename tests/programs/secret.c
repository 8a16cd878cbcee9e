/* Holds the secret from $MCD_SECRET in its environment, on its stack and on
 * its heap, then crashes three calls deep. */
#include <stdlib.h>
#include <string.h>

__attribute__((noinline)) static void level_c(char *s)
{
	char copy[64];
	strncpy(copy, s, sizeof(copy) - 1);
	copy[sizeof(copy) - 1] = 0;
	asm volatile("" : : "r"(copy) : "memory");
	*(volatile int *)0 = copy[0]; /* BOOM */
}

__attribute__((noinline)) static void level_b(char *s) { level_c(s); asm volatile("" ::: "memory"); }
__attribute__((noinline)) static void level_a(char *s) { level_b(s); asm volatile("" ::: "memory"); }

int main(void)
{
	char onstack[64];
	char *heap = strdup(getenv("MCD_SECRET") ? getenv("MCD_SECRET") : "none");
	strncpy(onstack, heap, sizeof(onstack) - 1);
	onstack[sizeof(onstack) - 1] = 0;
	level_a(onstack);
	return heap[0];
}
