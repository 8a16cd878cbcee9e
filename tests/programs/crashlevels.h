/* The three calls of crash3.c (main -> level_a -> level_b -> level_c, a store
 * through p in level_c), shared with the programs that crash the same way after
 * setting something up: mapself.c, procfiles.c.  The layer's crashtests recipe
 * builds each program in this directory, headers beside it. */
#ifndef CRASHLEVELS_H
#define CRASHLEVELS_H

__attribute__((noinline)) static void level_c(int *p)
{
	*p = 42; /* BOOM */
}

__attribute__((noinline)) static void level_b(int *p)
{
	level_c(p);
	asm volatile("" ::: "memory");
}

__attribute__((noinline)) static void level_a(int *p)
{
	level_b(p);
	asm volatile("" ::: "memory");
}

#endif
