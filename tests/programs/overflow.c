/* Unbounded recursion with 16 KiB of locals per call: a stack overflow.
 *
 *   overflow          in the main thread: the SP ends up in the guard gap the
 *                     kernel keeps below the stack mapping (stack_guard_gap)
 *   overflow thread   in a thread: the SP ends up in the thread stack's guard
 *                     (a PROT_NONE mapping below it; 64 KiB here, so that one
 *                     16 KiB frame cannot jump over it)
 *
 * Both stacks are 1 MiB (RLIMIT_STACK, the thread's attributes): the kernel's
 * core shows about 64 recurse() frames, then main (or the thread's start).
 */
#include <pthread.h>
#include <string.h>
#include <sys/resource.h>
#include "crashstamp.h"
#include "overflowing.h"

static volatile int sink;

static void *thread_main(void *arg)
{
	(void)arg;
	stamp();
	sink = recurse(1);
	return NULL;
}

int main(int argc, char **argv)
{
	struct rlimit rl;

	if (argc > 1 && strcmp(argv[1], "thread") == 0) {
		pthread_attr_t attr;
		pthread_t t;

		pthread_attr_init(&attr);
		pthread_attr_setstacksize(&attr, 1 << 20);
		pthread_attr_setguardsize(&attr, 64 << 10);
		if (pthread_create(&t, &attr, thread_main, NULL) != 0)
			return 2;
		pthread_join(t, NULL);
		return 1;
	}
	rl.rlim_cur = rl.rlim_max = 1 << 20;
	setrlimit(RLIMIT_STACK, &rl); /* the main stack grows up to this */
	stamp();
	sink = recurse(1);
	return 1;
}
