/*
 * clock_shim.c: a wall clock that a test can step, for the processes it is
 * preloaded into (LD_PRELOAD).  The file named by $SU_CLOCK_SHIM holds a
 * whole number of seconds (signed) added to the wall clock: gettimeofday(),
 * time() and clock_gettime() of CLOCK_REALTIME and CLOCK_REALTIME_COARSE.
 * The monotonic clocks are left as they are, as a step of the system clock
 * leaves them.  The file is read again at most every 20 ms.
 *
 *   cc -shared -fPIC -o clock_shim.so test/clock_shim.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

typedef int (*clock_gettime_fn) (clockid_t, struct timespec *);

static clock_gettime_fn real_clock_gettime;
static long offset_s;
static struct timespec read_at;

static long
current_offset(void)
{
	struct timespec now;
	const char *path = getenv("SU_CLOCK_SHIM");

	if (real_clock_gettime == NULL)
		real_clock_gettime = (clock_gettime_fn) dlsym(RTLD_NEXT, "clock_gettime");
	if (path == NULL || real_clock_gettime == NULL)
		return 0;
	real_clock_gettime(CLOCK_MONOTONIC, &now);
	if (read_at.tv_sec == 0 ||
		(now.tv_sec - read_at.tv_sec) * 1000 + (now.tv_nsec - read_at.tv_nsec) / 1000000 >= 20)
	{
		FILE	   *f = fopen(path, "r");
		long		v;

		if (f != NULL)
		{
			if (fscanf(f, "%ld", &v) == 1)
				offset_s = v;
			fclose(f);
		}
		read_at = now;
	}
	return offset_s;
}

int
clock_gettime(clockid_t clk, struct timespec *ts)
{
	long		off = current_offset();
	int			rc;

	if (real_clock_gettime == NULL)
		return -1;
	rc = real_clock_gettime(clk, ts);
	if (rc == 0 && (clk == CLOCK_REALTIME || clk == CLOCK_REALTIME_COARSE))
		ts->tv_sec += off;
	return rc;
}

int
gettimeofday(struct timeval *tv, void *tz)
{
	struct timespec ts;

	(void) tz;
	if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
		return -1;
	tv->tv_sec = ts.tv_sec;
	tv->tv_usec = ts.tv_nsec / 1000;
	return 0;
}

time_t
time(time_t *t)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
		return (time_t) -1;
	if (t)
		*t = ts.tv_sec;
	return ts.tv_sec;
}
