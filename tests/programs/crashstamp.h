/* crashstamp.h: with CRASH_STAMP set in the environment, print CLOCK_MONOTONIC to
 * stderr just before the fault, so a benchmark can time crash-to-reap. */
#ifndef CRASHSTAMP_H
#define CRASHSTAMP_H

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static void stamp(void)
{
	struct timespec ts;
	char buf[64];
	int n;

	if (!getenv("CRASH_STAMP"))
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	n = snprintf(buf, sizeof(buf), "%ld.%09ld\n", (long)ts.tv_sec, ts.tv_nsec);
	if (write(2, buf, n) != n)
		abort();
}

#endif
