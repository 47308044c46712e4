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
 * Starts an attempt on one order (SPI connected): bumps its attempt count
 * and returns its next upload_time, strictly later than the last one sent.
 * Raises an error naming the order when it does not exist.
 */
extern TimestampTz su_queue_begin(int64 order_id, int64 *version, int *attempt);

/*
 * Records the outcomes of n attempts: the orders' next states (SPI
 * connected).  Never waits for a row lock: recorded[i] is false for an order
 * whose state another transaction holds (record it later); true when it was
 * recorded, or when its state is gone with the order.  Returns how many are
 * true.
 */
extern int	su_queue_record(SuUpload **us, int n, bool *recorded,
							TimestampTz *earliest);

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

/* Earliest next_attempt_at of any order, or 0 if none is planned. */
extern TimestampTz su_queue_next_due(void);

/* At worker start: orders left uploading by a dead worker are due now. */
extern void su_queue_recover(void);

/* Sets up the transaction callbacks of the queueing trigger. */
extern void su_queue_init(void);

/*
 * Deletes the state of an order unless the order exists in a fresh snapshot
 * (SPI connected).
 */
extern void su_queue_forget(int64 order_id);

/* Wakes the worker when the current transaction commits. */
extern void su_queue_wake_at_commit(void);

/*
 * Queues an order at commit, as the trigger does (SPI connected); false if
 * it does not exist.  The caller must be allowed to write order_state.
 */
extern bool su_queue_order(int64 order_id);

/* Drops an order from what this transaction queues at commit. */
extern void su_queue_unnote(int64 order_id);

#endif							/* SU_QUEUE_H */
