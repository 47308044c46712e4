/*-------------------------------------------------------------------------
 *
 * sync_call.h
 *		The calls by hand (upload_shopping_info(), verify_shopping_info(),
 *		upload_shipping_info()), made in a transaction of their own.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SU_SYNC_CALL_H
#define SU_SYNC_CALL_H

#include "types.h"

/* What a call by hand answers: its attempt's outcome. */
typedef struct SuSyncResult
{
	int			errcode;
	char	   *errmsg;			/* NULL: none */
	long		http_status;	/* 0: no answer */
	bool		sent;
	int64		audit_id;
	char	   *verify_result;	/* NULL: none */
	char	   *result;			/* the answer's kept member, JSON (NULL: none) */
} SuSyncResult;

/*
 * Makes one call of kind for an order, now, in a background worker of its
 * own, and waits for it (cancellable).  The call sees only committed rows,
 * and its audit row and state are committed whatever the caller's
 * transaction does afterwards.  Refused (55000) in a transaction that wrote
 * to the extension's tables: its writes are not committed, and would not be
 * what is sent.  An error of the call is raised here, with its SQLSTATE.
 */
extern void su_sync_call(SuKind kind, int64 order_id, SuSyncResult *res);
/*
 * Raises 42501 unless the roles caller and session_user may act on the
 * order (appid_grants); SPI connected, the rows committed now.
 */
extern void su_check_caller(const char *function, int64 order_id, Oid caller,
							Oid session_user);

/* the same, the call given a timestamp (notify_confirm_receive's received_at) */
extern void su_sync_call_at(SuKind kind, int64 order_id, TimestampTz given_at,
							SuSyncResult *res);

#endif							/* SU_SYNC_CALL_H */
