/*-------------------------------------------------------------------------
 *
 * apps.h
 *		What the workers keep of each appid, in shared memory: its rate
 *		bucket and its hold.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SU_APPS_H
#define SU_APPS_H

#include "storage/lwlock.h"

#include "types.h"

/* the shared table of appids (shopping_upload.c makes it) */
extern Size su_apps_shmem_size(void);
extern void su_apps_shmem_init(void *mem, bool fresh, LWLock *lock);

/* an appid's hold, as it releases the orders that wait for it */
typedef struct SuAppHold
{
	SuErrClass	cls;
	int			errcode;
	const char *errmsg;			/* valid until the hold changes */
} SuAppHold;

/* Does the worker keep credentials (a token got) for this appid? */
extern bool su_apps_known(const char *appid);

/* Is the appid held at wall-clock time now?  Then *hold says why. */
extern bool su_apps_held(const char *appid, TimestampTz now, SuAppHold *hold);

/*
 * The rate limiter: may one more request of this appid start now?  True
 * for an appid that has no entry yet (see su_apps_first_request()).
 */
extern bool su_apps_rate_take(const char *appid);

/*
 * The first request of an appid whose credentials got a token: its entry
 * is made, and the request taken from its bucket.
 */
extern void su_apps_first_request(const char *appid);

/*
 * After an attempt's answer: a 45009 or a permission error of an appid
 * whose request got a token holds the appid (retry.c says until when), and
 * says so once.
 */
extern void su_apps_maybe_hold(SuUpload *u);

/*
 * The settings were reloaded: the holds that a local configuration problem
 * caused end (the fix may be in the new settings).
 */
extern void su_apps_release_local(void);

/* requeue() of held orders committed since the last look: every hold ends. */
extern void su_apps_take_hold_releases(void);

#endif							/* SU_APPS_H */
