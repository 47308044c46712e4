/*-------------------------------------------------------------------------
 *
 * mono.h
 *		The worker's own clock: monotonic, in microseconds.  Its schedule
 *		(claims, records, trims, rate buckets) runs on it, so that a step of
 *		the wall clock, either way, neither stops nor floods it.  Times
 *		planned in the database (a retry, a verify) are wall-clock times,
 *		turned into this clock when read.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SU_MONO_H
#define SU_MONO_H

#include <time.h>

#include "datatype/timestamp.h"
#include "utils/timestamp.h"

static inline TimestampTz
su_mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (TimestampTz) ts.tv_sec * USECS_PER_SEC + ts.tv_nsec / 1000;
}

/* a wall-clock time planned in the database (0: none), on this clock */
static inline TimestampTz
su_wall_to_mono(TimestampTz wall)
{
	if (wall == 0)
		return 0;
	return su_mono_now() + (wall - GetCurrentTimestamp());
}

#endif							/* SU_MONO_H */
