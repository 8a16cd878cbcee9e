/* Threads that spend their time in the vDSO when the main thread crashes: two
   read a CPU-time clock, which the vDSO's clock_gettime answers with a system
   call of its own (so the thread is stopped inside the vDSO), one spins on
   CLOCK_MONOTONIC, one on gettimeofday (both answered in the vDSO itself). */
#include <pthread.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static pthread_barrier_t ready;

static void *cputime(void *arg)
{
	struct timespec ts;
	(void)arg;
	pthread_barrier_wait(&ready);
	for (;;)
		clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return NULL;
}

static void *monotonic(void *arg)
{
	struct timespec ts;
	(void)arg;
	pthread_barrier_wait(&ready);
	for (;;)
		clock_gettime(CLOCK_MONOTONIC, &ts);
	return NULL;
}

static void *timeofday(void *arg)
{
	struct timeval tv;
	(void)arg;
	pthread_barrier_wait(&ready);
	for (;;)
		gettimeofday(&tv, NULL);
	return NULL;
}

int main(void)
{
	pthread_t t[4];
	void *(*spin[4])(void *) = {cputime, cputime, monotonic, timeofday};
	pthread_barrier_init(&ready, NULL, 5);
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, spin[i], NULL);
	pthread_barrier_wait(&ready);
	usleep(200000);
	*(volatile int *)0 = 1; /* BOOM */
	return 0;
}
