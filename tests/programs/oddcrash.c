/* Crash situations from public bug reports against crash handlers
 * (tests/host/test_bug_reports.py).  Each mode ends in crash3's three calls,
 * main (or a thread) -> level_a -> level_b -> level_c, unless it says otherwise:
 *   leader     main starts a thread and calls pthread_exit(); the thread crashes
 *              (the thread-group leader is a zombie when the core is written)
 *   nested     a SIGSEGV handler that faults itself (SIGSEGV blocked in it: the
 *              kernel kills with the second fault)
 *   blocked    SIGSEGV blocked with sigprocmask before the fault
 *   ignored    SIGSEGV ignored (SIG_IGN) before the fault
 *   nullcall   call_null() calls through a NULL function pointer: the pc is 0, the
 *              return address into call_null() on top of the stack (or in the
 *              link register)
 *   sp0        a jump to address 0 with the stack pointer 0: nothing to unwind
 *   name NAME  prctl(PR_SET_NAME, NAME) first: comm with spaces, '/', '\n', bytes
 *              that are not UTF-8
 *   nofile     RLIMIT_NOFILE at 16, every descriptor of it open
 *   pidns      only as PID 1 of its PID namespace (exit status 3 otherwise) */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "crashlevels.h"

static void *crash_thread(void *arg)
{
	(void)arg;
	usleep(100 * 1000); /* until the leader has exited */
	level_a((int *)0);
	return NULL;
}

__attribute__((noinline)) static void call_null(void (*volatile fn)(void))
{
	fn(); /* BOOM: pc 0 */
	asm volatile("" ::: "memory");
}

static void faulting_handler(int sig)
{
	(void)sig;
	level_a((int *)0); /* the second fault, with SIGSEGV blocked */
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";

	if (!strcmp(mode, "leader")) {
		pthread_t t;

		if (pthread_create(&t, NULL, crash_thread, NULL))
			return 1;
		pthread_exit(NULL);
	} else if (!strcmp(mode, "nested")) {
		signal(SIGSEGV, faulting_handler);
	} else if (!strcmp(mode, "blocked")) {
		sigset_t s;

		sigemptyset(&s);
		sigaddset(&s, SIGSEGV);
		sigprocmask(SIG_BLOCK, &s, NULL);
	} else if (!strcmp(mode, "ignored")) {
		signal(SIGSEGV, SIG_IGN);
	} else if (!strcmp(mode, "nullcall")) {
		call_null(NULL);
	} else if (!strcmp(mode, "sp0")) {
#if defined(__x86_64__) || defined(__i386__)
		asm volatile("xor %%esp, %%esp\n\tjmp *%0" :: "r"(0L));
#elif defined(__aarch64__)
		asm volatile("mov sp, %0\n\tbr %0" :: "r"(0L));
#elif defined(__arm__)
		asm volatile("mov sp, %0\n\tbx %0" :: "r"(0L));
#endif
	} else if (!strcmp(mode, "name") && argc > 2) {
		prctl(PR_SET_NAME, argv[2]);
	} else if (!strcmp(mode, "pidns")) {
		if (getpid() != 1)
			return 3;
	} else if (!strcmp(mode, "nofile")) {
		struct rlimit r = {16, 16};

		if (setrlimit(RLIMIT_NOFILE, &r))
			return 1;
		while (open("/dev/null", O_RDONLY) >= 0)
			;
	}
	level_a((int *)0);
	return 0;
}
