/* A SIGSEGV handler on an alternate signal stack that calls abort():
 * main -> level1 -> level2 -> level3 faults; the kernel delivers SIGSEGV on the
 * sigaltstack (an mmap'ed stack, SA_ONSTACK | SA_SIGINFO) and the handler aborts.
 * The crashing thread's SP is then on the signal stack; its interrupted frames
 * (level3, level2, level1, main) are on the main stack.
 *
 *   altstack            level3 writes through a null pointer
 *   altstack overflow   level3 recurses with 16 KiB of locals until the stack
 *                       overflows (the classic reason for a sigaltstack)
 *   altstack onstack    no sigaltstack: the handler runs on the same stack
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "crashstamp.h"
#include "overflowing.h"

#define ALTSTACK_SIZE (256 << 10)

static volatile int sink;
static int overflow;

static void handler(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)si;
	(void)uc;
	abort();
}

__attribute__((noinline)) static void level3(int *p)
{
	stamp();
	if (overflow)
		sink = recurse(1);
	*p = 42; /* BOOM */
}

__attribute__((noinline)) static void level2(int *p)
{
	level3(p);
	asm volatile("" ::: "memory");
}

__attribute__((noinline)) static void level1(int *p)
{
	level2(p);
	asm volatile("" ::: "memory");
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	int onstack = argc > 1 && strcmp(argv[1], "onstack") == 0;

	overflow = argc > 1 && strcmp(argv[1], "overflow") == 0;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = handler;
	sa.sa_flags = SA_SIGINFO;
	if (!onstack) {
		stack_t ss;

		ss.ss_sp = mmap(NULL, ALTSTACK_SIZE, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (ss.ss_sp == MAP_FAILED)
			return 2;
		ss.ss_size = ALTSTACK_SIZE;
		ss.ss_flags = 0;
		if (sigaltstack(&ss, NULL) != 0)
			return 2;
		sa.sa_flags |= SA_ONSTACK;
	}
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSEGV, &sa, NULL) != 0)
		return 2;
	level1((int *)0);
	return 1;
}
