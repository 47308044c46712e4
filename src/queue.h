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

#include "upload.h"

/*
 * Starts an attempt by hand on one order (SPI connected): leases it
 * ("uploading", as a claim does), bumps its attempt count and returns its
 * next upload_time, strictly later than the last one sent.  Raises an error
 * naming the order when it does not exist, and 55006 when a request for it
 * is in flight.
 */
extern TimestampTz su_queue_begin(int64 order_id, int64 *version, int *attempt);

/*
 * Locks the state row of an order (kind SU_KIND_SHIPPING: its shipping
 * information's) until the transaction ends, waiting for it.
 */
extern void su_queue_lock_state(SuKind kind, int64 order_id);

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
 * earliest (NULL: not wanted) is an array of SU_KINDS times, 0 for none:
 * each is lowered to the soonest next attempt of that kind among the rows
 * written (a retry, a change while in flight, a verify planned, shipping
 * information released by its order's accepted upload).
 */
static inline void
su_earlier(TimestampTz *t, TimestampTz candidate)
{
	if (*t == 0 || candidate < *t)
		*t = candidate;
}

/*
 * The same for verifies and shipping information (all of one kind), called
 * by su_queue_record() (queue_followup.c).
 */
extern int	su_followup_record(SuUpload **us, int n, bool *recorded,
							   TimestampTz *earliest);

/*
 * After a record statement: the attempts (ids: their order_ids, an int8[])
 * not recorded whose state row is gone are done (recorded[i] set: nothing
 * to record but the audit row); the others are held by another transaction
 * and wait for a later round.  Returns how many were marked.
 */
extern int	su_queue_mark_gone(SuUpload **us, int n, bool *recorded,
							   Datum ids, SuKind kind);

/*
 * Starts a verify by hand (verify_shopping_info()): locks the order's state
 * until the transaction ends; *version is the version whose upload was
 * accepted last (0: none), *attempt the verify's number.  Raises an error
 * naming the order when it does not exist.
 */
extern void su_verify_begin(int64 order_id, int64 *version, int *attempt);

/*
 * Starts an upload of an order's shipping information by hand
 * (upload_shipping_info()), as su_queue_begin() for orders: locks its state
 * and returns its next upload_time.  Raises an error when the order or its
 * shipping information does not exist, or when the order's own upload was
 * never accepted.
 */
extern TimestampTz su_shipping_begin(int64 order_id, int64 *version,
									 int *attempt);

/* The delay before retry number attempt + 1: exponential, with jitter. */
extern int64 su_queue_backoff_usecs(int attempt);

/* When an order whose attempt ended so goes next, and in which state. */
extern const char *su_queue_next_state(SuUpload *u, TimestampTz now,
									   TimestampTz *next_attempt_at);

/* A claimed order, as the worker gets it. */
typedef struct SuClaim
{
	int64		order_id;
	int64		version;
	int			attempt;
	TimestampTz upload_time;
} SuClaim;

/*
 * Claims up to max due orders (SPI connected, in the claim transaction):
 * state uploading, leased for shopping_upload.lease.  Returns the count.
 */
extern int	su_queue_claim(int max, SuClaim *out);

/*
 * Claims up to max due verifies (of accepted uploads; version is the one to
 * verify), leased as uploads are.  Returns the count.
 */
extern int	su_verify_claim(int max, SuClaim *out);

/*
 * Claims up to max due shipping information whose order's upload was
 * accepted; what is due with its order not accepted yet becomes
 * waiting_for_order (looked at again in a while, and at once when the
 * order's upload is accepted).  Returns the count claimed; *looked_at, how
 * many due rows the claim took (claimed or set waiting).
 */
extern int	su_shipping_claim(int max, SuClaim *out, int *looked_at);

/*
 * Earliest next attempt of each kind (SU_KINDS of them, 0 if none is
 * planned), in one statement.
 */
extern void su_queue_next_due(TimestampTz *due);

/* At worker start: orders left uploading by a dead worker are due now. */
extern void su_queue_recover(void);

/* Sets up the transaction callbacks of the queueing trigger. */
extern void su_queue_init(void);

/*
 * Deletes the state of an order (shipping: of its shipping information)
 * unless the order (its shipping information) exists in a fresh snapshot
 * (SPI connected).
 */
extern void su_queue_forget(int64 order_id, bool shipping);

/*
 * Wakes the worker when the current transaction commits, to claim rows of
 * that kind.
 */
extern void su_queue_wake_at_commit(SuKind kind);

/*
 * Queues an order at commit, as the trigger does (SPI connected); false if
 * it does not exist.  The caller must be allowed to write order_state.
 */
extern bool su_queue_order(int64 order_id);


/*
 * Did this transaction write to the order or shipping tables (in a
 * subtransaction that did not roll back)?
 */
extern bool su_queue_wrote(void);

/* At this transaction's commit, the worker drops its holds of appids. */
extern void su_queue_release_holds(void);

/*
 * The wall clock went back usecs: the rows queued or planned before are
 * brought forward by as much (SPI connected).
 */
extern void su_queue_clock_stepped_back(int64 usecs);

#endif							/* SU_QUEUE_H */
