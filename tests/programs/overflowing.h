/* overflowing.h: recurse(), unbounded recursion with 16 KiB of locals per call, until
 * the stack overflows (overflow.c, altstack.c). */
#ifndef OVERFLOWING_H
#define OVERFLOWING_H

#define FRAME 16384

static volatile int stop = -1; /* never reached: the recursion is unbounded */

__attribute__((noinline)) static int recurse(int depth)
{
	volatile char buf[FRAME];

	if (depth == stop)
		return 0;
	buf[0] = (char)depth;
	buf[FRAME - 1] = (char)depth;
	return recurse(depth + 1) + buf[FRAME / 2];
}

#endif
