/* crash3.c's three calls (main -> level_a -> level_b -> level_c, a store through
 * p in level_c), for the host-only programs that crash the same way after setting
 * something up: mapself.c, procfiles.c.  crash3.c keeps its own copy: the layer's
 * crashtests recipe builds it alone. */
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
