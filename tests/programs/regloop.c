/* Registers data with libminicoredumper and keeps running, for live dumps.
 *
 *   regloop [NAME [THREADS]]
 *
 * Registers counter.bin (a counter the main loop keeps incrementing),
 * status.txt ("name=NAME count=N"), 4 bytes without an ident (0x00c0ffee: into
 * the core, or core-data in a live dump) and secret.bin with dump_scope 100
 * (the others have 1).  Starts THREADS (default 2) sleeping threads, prints
 * "ready <address of the counter>" and loops.  SIGUSR1: unregister everything
 * and register again (the library then tells the daemon again).  SIGUSR2:
 * print "vfork" and vfork a child that sleeps a second, so the main thread sits
 * in uninterruptible sleep, where no ptrace stop reaches it.  Crash it with
 * kill -SEGV. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <minicoredumper.h>

#define FLAGS (MCD_DATA_PTR_DIRECT | MCD_LENGTH_DIRECT)

static volatile unsigned long counter;
static char name[32];
static unsigned int core_value = 0xc0ffee;
static char secret[] = "scope 100";
static volatile sig_atomic_t again, hold;
static mcd_dump_data_t dd[4];

static int register_all(void)
{
	return mcd_dump_data_register_bin("counter.bin", 1, &dd[0], (void *)&counter,
					  sizeof(counter), FLAGS) ||
	       mcd_dump_data_register_text("status.txt", 1, &dd[1], "name=%s count=%lu\n",
					   name, (unsigned long *)&counter) ||
	       mcd_dump_data_register_bin(NULL, 1, &dd[2], &core_value, sizeof(core_value),
					  FLAGS) ||
	       mcd_dump_data_register_bin("secret.bin", 100, &dd[3], secret, sizeof(secret),
					  FLAGS);
}

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		again = 1;
	else
		hold = 1;
}

static void *sleeper(void *arg)
{
	struct timespec ts = { 0, 1000000 };

	(void)arg;
	for (;;)
		nanosleep(&ts, NULL);
	return NULL;
}

int main(int argc, char **argv)
{
	struct timespec ts = { 0, 200000 };
	struct sigaction sa;
	pthread_t t;
	int threads = argc > 2 ? atoi(argv[2]) : 2;
	int i;

	snprintf(name, sizeof(name), "%s", argc > 1 ? argv[1] : "regloop");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	for (i = 0; i < threads; i++)
		if (pthread_create(&t, NULL, sleeper, NULL))
			return 1;
	if (register_all())
		return 2;
	printf("ready %p\n", (void *)&counter);
	fflush(stdout);
	for (;;) {
		counter++;
		if (again) {
			again = 0;
			for (i = 3; i >= 0; i--)
				mcd_dump_data_unregister(dd[i]);
			if (register_all())
				return 3;
			printf("again\n");
			fflush(stdout);
		}
		if (hold) {
			struct timespec second = { 1, 0 };

			hold = 0;
			printf("vfork\n");
			fflush(stdout);
			if (vfork() == 0) {
				nanosleep(&second, NULL);
				_exit(0);
			}
		}
		nanosleep(&ts, NULL);
	}
}
