/*-------------------------------------------------------------------------
 *
 * call.h
 *		A call by hand (upload_shopping_info(), verify_shopping_info(),
 *		upload_shipping_info()), in three steps; sync_call.c runs them in a
 *		background worker of its own.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SU_CALL_H
#define SU_CALL_H

#include "types.h"

/*
 * u and creds are allocated in the current memory context, which must
 * outlive the transactions.
 *
 * su_call_prepare(), in a transaction (SPI connected): locks the body tables
 * as a claim reads them, starts the attempt (the kind's begin: an order's or
 * its shipping information's state becomes "uploading", leased, so that the
 * worker leaves it alone), builds and validates the body, loads the
 * credentials.  False when it was refused before sending: audited and
 * recorded already.  Raises the errors of the call (no such order, in
 * flight, not uploaded yet).
 *
 * su_call_send(), with no transaction open: a token and the request, round
 * 0, then 1 when WeChat rejected the token.  True when this attempt is the
 * call's outcome; false when it is to be audited alone and sent again.
 *
 * su_call_record(), in a transaction (SPI connected): the attempt's audit
 * row; with final, the state it leads to (waiting for the state row).  A
 * caller may record the state in a transaction of its own instead, with
 * su_call_record_state(), so that the audit row never waits for it.
 */
struct SuCredentials;
extern bool su_call_prepare(SuKind kind, int64 order_id, TimestampTz given_at,
							SuUpload *u,
							struct SuCredentials *creds);
extern bool su_call_send(SuUpload *u, const struct SuCredentials *creds,
						 int round);
extern void su_call_record(SuUpload *u, bool final);

/* su_call_record()'s second half: the state alone (in a transaction). */
extern void su_call_record_state(SuUpload *u);

#endif							/* SU_CALL_H */
