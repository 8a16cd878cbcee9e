/* Threads whose thread pointer points at a forged descriptor: every other word
 * of it looks like a robust_list_head (a pointer, then a small negative
 * futex_offset) whose list is a chain of RING_NODES nodes that never comes
 * back to the head.  A handler that follows every candidate chain as far as
 * its per-chain cap does that work once per candidate word per thread.  The
 * crashing (main) thread's pointer is moved too, just before it crashes.
 *
 *   robustring [THREADS]      (default 32; x86_64 and aarch64)
 *
 * After a thread has moved its thread pointer it must not touch libc (which
 * finds errno and the rest through it): it sleeps in raw pause(2) system
 * calls.  The main thread waits for all of them, then crashes. */
#include <pthread.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <asm/prctl.h>
#endif

#define DESC_WORDS 2048 /* 16 KiB: more than any glibc's struct pthread */
#define RING_NODES 4096

static long desc[DESC_WORDS];
static void *ring[RING_NODES];
static volatile int moved;

static void set_thread_pointer(void *tp)
{
#if defined(__x86_64__)
	/* the raw system call: libc's wrapper would set errno through the old pointer */
	long ret;
	__asm__ volatile("syscall" : "=a"(ret) : "0"((long)SYS_arch_prctl), "D"((long)ARCH_SET_FS),
			 "S"(tp) : "rcx", "r11", "memory");
#elif defined(__aarch64__)
	__asm__ volatile("msr tpidr_el0, %0" : : "r"(tp) : "memory");
#else
	(void)tp;
#endif
}

static void raw_pause(void)
{
#if defined(__x86_64__)
	long ret;
	__asm__ volatile("syscall" : "=a"(ret) : "0"((long)SYS_pause) : "rcx", "r11", "memory");
#elif defined(__aarch64__)
	register long x8 __asm__("x8") = SYS_ppoll;
	register long x0 __asm__("x0") = 0;
	register long x1 __asm__("x1") = 0;
	register long x2 __asm__("x2") = 0;
	register long x3 __asm__("x3") = 0;
	__asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory");
#endif
}

static void *forged(void *arg)
{
	(void)arg;
	set_thread_pointer(desc);
	__atomic_add_fetch(&moved, 1, __ATOMIC_SEQ_CST);
	for (;;)
		raw_pause();
	return NULL;
}

int main(int argc, char **argv)
{
	int threads = argc > 1 ? atoi(argv[1]) : 32;
	pthread_t t;
	int i;

	for (i = 0; i < RING_NODES - 1; i++)
		ring[i] = &ring[i + 1];
	ring[RING_NODES - 1] = &ring[0]; /* a ring that never passes the head */
	for (i = 0; i + 1 < DESC_WORDS; i += 2) {
		desc[i] = (long)&ring[i % RING_NODES];
		desc[i + 1] = -8;
	}
	for (i = 0; i < threads; i++)
		if (pthread_create(&t, NULL, forged, NULL))
			return 1;
	while (__atomic_load_n(&moved, __ATOMIC_SEQ_CST) < threads)
		usleep(1000);
	set_thread_pointer(desc); /* the crashing thread too: no real head is found first */
	*(volatile int *)0 = 0; /* BOOM */
	return 0;
}
