/* Two threads each hold a robust mutex; the second thread crashes. */
#include <pthread.h>
#include <unistd.h>

pthread_mutex_t main_mutex;
pthread_mutex_t worker_mutex;
static pthread_barrier_t ready;

static void init_robust(pthread_mutex_t *m)
{
	pthread_mutexattr_t a;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(m, &a);
}

static void *worker(void *arg)
{
	pthread_mutex_lock(&worker_mutex);
	pthread_barrier_wait(&ready);
	usleep(50000);
	*(volatile int *)arg = 1; /* BOOM */
	return NULL;
}

int main(void)
{
	pthread_t t;
	init_robust(&main_mutex);
	init_robust(&worker_mutex);
	pthread_barrier_init(&ready, NULL, 2);
	pthread_mutex_lock(&main_mutex);
	pthread_create(&t, NULL, worker, NULL);
	pthread_barrier_wait(&ready);
	for (;;)
		pause();
}
