/* Eight threads (main plus seven workers) sit in distinct call chains; a worker crashes. */
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

static pthread_barrier_t ready;

__attribute__((noinline)) static void park(int depth)
{
	if (depth > 0) {
		park(depth - 1);
		asm volatile("" ::: "memory");
		return;
	}
	for (;;)
		pause();
}

static void *worker(void *arg)
{
	long n = (long)arg;
	pthread_barrier_wait(&ready);
	if (n == 7) {
		usleep(100000);
		*(volatile int *)0 = 1; /* BOOM */
	}
	park((int)n);
	return NULL;
}

int main(void)
{
	pthread_t t[7];
	pthread_barrier_init(&ready, NULL, 8);
	for (long i = 1; i <= 7; i++) {
		pthread_create(&t[i - 1], NULL, worker, (void *)i);
	}
	pthread_barrier_wait(&ready);
	park(2);
	return 0;
}
