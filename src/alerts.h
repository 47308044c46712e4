/*-------------------------------------------------------------------------
 *
 * alerts.h
 *		The worker's WARNINGs about orders an operator must look at: a
 *		rejected, dead or held attempt, at most one a minute per appid and
 *		errcode.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SU_ALERTS_H
#define SU_ALERTS_H

#include "types.h"

/*
 * An attempt recorded with this next state: a WARNING when it is rejected,
 * dead or held, unless one for the same appid and errcode was logged in the
 * last minute (then it is counted, and the next one says how many).
 */
extern void su_alert_outcome(const SuUpload *u);

/*
 * Once a second at most (each round calls it): says how many were counted
 * and not logged for each appid and errcode whose minute is over.
 */
extern void su_alert_flush(void);

#endif							/* SU_ALERTS_H */
