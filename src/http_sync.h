/*-------------------------------------------------------------------------
 *
 * http_sync.h
 *		One request, waited for in a backend: cancellable, no polling.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SU_HTTP_SYNC_H
#define SU_HTTP_SYNC_H

#include "http.h"

/*
 * Sends req and waits for its answer on the process's client, with the
 * latch: a cancel, statement_timeout or SIGTERM ends the wait at once (the
 * request is abandoned).  Other requests in flight on the client move on
 * meanwhile; a wakeup of the latch is kept for the caller.
 */
extern void su_http_perform(SuHttpRequest *req);

/*
 * A flag that, once true, ends the requests su_http_perform() waits for, as
 * a transport failure (not an error): a call by hand whose caller was
 * cancelled records that its request got no answer.  NULL: none.
 */
extern volatile bool *su_http_stop;

#endif							/* SU_HTTP_SYNC_H */
