/*-------------------------------------------------------------------------
 *
 * queue.h
 *		Where every order stands (shopping_upload.order_state): claim,
 *		complete, retry, hold, reject, dead-letter.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SU_QUEUE_H
#define SU_QUEUE_H

#include "datatype/timestamp.h"

#include "types.h"


/*
 * Starts an attempt by hand on one order (SPI connected): leases it
 * ("uploading", as a claim does), bumps its attempt count and returns its
 * next upload_time, strictly later than the last one sent.  Raises an error
 * naming the order when it does not exist, and 55006 when a request for it
 * is in flight.
 */
extern TimestampTz su_queue_begin(int64 order_id, SuUpload *u);

/*
 * A call by hand refused before sending, of a version WeChat already had:
 * its lease (attempt number attempt) ends and the row is "uploaded" again,
 * as before the call (SPI connected).  An order's shipping information
 * that a worker's claim set waiting for it meanwhile is due again (earliest
 * says so, as a record does).  False when the row changed, or was leased
 * by another, meanwhile (record it then).
 */
extern bool su_queue_restore(SuDue due, int64 order_id, int64 version,
							  int attempt, TimestampTz *earliest);

/*
 * Locks the state row that holds due column due of an order until the
 * transaction ends, waiting for it.
 */
extern void su_queue_lock_state(SuDue due, int64 order_id);

/*
 * Records the outcomes of n attempts: the orders' next states (SPI
 * connected).  Never waits for a row lock: recorded[i] is false for an order
 * whose state another transaction holds (record it later); true when it was
 * recorded, or when its state is gone with the order.  Returns how many are
 * true.
 */
extern int	su_queue_record(SuUpload **us, int n, bool *recorded,
							TimestampTz *earliest);

/*
 * earliest (NULL: not wanted) is an array of SU_DUES times, 0 for none:
 * each is lowered to the soonest next attempt by that due column among the
 * rows written (a retry, a change while in flight, a verify planned,
 * shipping information released by its order's accepted upload).
 *
 * The same for verifies and shipping information (queue_followup.c).
 */
extern int	su_verify_record(SuUpload **us, int n, bool *recorded,
							 TimestampTz *earliest);
extern int	su_shipping_record(SuUpload **us, int n, bool *recorded,
							   TimestampTz *earliest);

/*
 * After a record statement: the attempts (ids: their order_ids, an int8[])
 * not recorded whose state row is gone are done (recorded[i] set: nothing
 * to record but the audit row); the others are held by another transaction
 * and wait for a later round.  Returns how many were marked.
 */
extern int	su_queue_mark_gone(SuUpload **us, int n, bool *recorded,
							   Datum ids, SuDue due);

/*
 * Starts a verify by hand (verify_shopping_info()): locks the order's state
 * until the transaction ends; *version is the version whose upload was
 * accepted last (0: none), *attempt the verify's number.  Raises an error
 * naming the order when it does not exist.
 */
extern TimestampTz su_verify_begin(int64 order_id, SuUpload *u);

/*
 * Starts an upload of an order's shipping information by hand
 * (upload_shipping_info()), as su_queue_begin() for orders: locks its state
 * and returns its next upload_time.  Raises an error when the order or its
 * shipping information does not exist, or when the order's own upload was
 * never accepted.
 */
extern TimestampTz su_shipping_begin(int64 order_id, SuUpload *u);

/* When a row whose attempt ended so goes next, and in which state (retry.c). */
extern const char *su_queue_next_state(SuUpload *u, TimestampTz now,
									   TimestampTz *next_attempt_at);

/*
 * Claims up to max due orders (SPI connected, in the claim transaction):
 * state uploading, leased for shopping_upload.lease.  Returns the count.
 */
extern int	su_queue_claim(int max, const SuPartition *share, SuClaim *out,
						   int *looked_at);

/*
 * Claims up to max due verifies (of accepted uploads; version is the one to
 * verify), leased as uploads are.  Returns the count.
 */
extern int	su_verify_claim(int max, const SuPartition *share, SuClaim *out,
							int *looked_at);

/*
 * Claims up to max due shipping information whose order's upload was
 * accepted; what is due with its order not accepted yet becomes
 * waiting_for_order (looked at again in a while, and at once when the
 * order's upload is accepted).  Returns the count claimed; *looked_at, how
 * many due rows the claim took (claimed or set waiting).
 */
extern int	su_shipping_claim(int max, const SuPartition *share, SuClaim *out,
							  int *looked_at);

/*
 * The order shipping management service (queue_trade.c): claims up to max
 * due rows of trade_state, leased; leases one by hand; records answers;
 * reship() (false: the shipping was not complete and accepted, or its
 * re-ship was used).
 */
extern int	su_trade_claim(int max, const SuPartition *share, SuClaim *out,
						   int *looked_at);
extern TimestampTz su_trade_begin(int64 order_id, SuUpload *u);
extern int	su_trade_record(SuUpload **us, int n, bool *recorded,
							TimestampTz *earliest);
extern bool su_trade_reship(int64 order_id);

/*
 * The payment's follow-ups at the service, each as verify is to an upload:
 * get_order (reconciliation: after each accepted upload, then every
 * reconcile_interval until complete, refunded or settled) and the receipt
 * reminder (once an express shipping is accepted and signed for).
 */
extern int	su_trade_check_claim(int max, const SuPartition *share, SuClaim *out,
								 int *looked_at);
extern TimestampTz su_trade_check_begin(int64 order_id, SuUpload *u);
extern int	su_trade_check_record(SuUpload **us, int n, bool *recorded,
								  TimestampTz *earliest);
extern int	su_trade_confirm_claim(int max, const SuPartition *share, SuClaim *out,
								   int *looked_at);
extern TimestampTz su_trade_confirm_begin(int64 order_id, SuUpload *u);
extern int	su_trade_confirm_record(SuUpload **us, int n, bool *recorded,
									TimestampTz *earliest);

/*
 * The rows of us that a record statement's RETURNING names (order_id, the
 * next due time, whether the state is the one planned) marked recorded;
 * their earliest next due time into earliest[due].  Returns how many.
 */
extern int	su_queue_mark_recorded(SuUpload **us, int n, bool *recorded,
								   TimestampTz *earliest, SuDue due);

/*
 * Earliest next attempt by each due column (SU_DUES of them, 0 if none is
 * planned), in one statement.
 */
extern void su_queue_next_due(TimestampTz *due);

/* At worker start: orders left uploading by a dead worker are due now. */
extern void su_queue_recover(TimestampTz leased_before);

/*
 * Deletes the state row of an order that holds due column due unless the
 * row it follows (the order, its shipping information) exists in a fresh
 * snapshot (SPI connected).
 */
extern void su_queue_forget(int64 order_id, SuDue due);

/*
 * requeue(): the orders in one of states (order_id: that one only; 0: all)
 * are pending again, as if just queued (SPI connected).  Returns how many.
 */
extern int64 su_queue_requeue(int64 order_id, bool all, Datum states);

/*
 * The settings were reloaded: rows held by a local configuration problem
 * (retry.c's su_retry_local_config_codes()) are due now (SPI connected).
 * Returns how many.
 */
extern int64 su_queue_release_local_holds(void);

/*
 * The wall clock went back usecs: the rows queued or planned before are
 * brought forward by as much (SPI connected).
 */
extern void su_queue_clock_stepped_back(int64 usecs);

#endif							/* SU_QUEUE_H */
