/*-------------------------------------------------------------------------
 *
 * queue_commit.h
 *		Queueing at commit: the trigger on the order and shipping tables
 *		notes what a transaction wrote; the states are written just before
 *		it commits.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SU_QUEUE_COMMIT_H
#define SU_QUEUE_COMMIT_H

#include "types.h"

/* Sets up the transaction callbacks of the queueing trigger. */
extern void su_queue_init(void);

/*
 * Wakes the worker when the current transaction commits, to claim the rows
 * due by that column.
 */
extern void su_queue_wake_at_commit(SuDue due);

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
 * The queue's own inserts into the state tables (true around them): the
 * due hints' trigger (su_due_rows_inserted) leaves the hints alone for
 * them.  Any other insert (a restore's COPY) has the hints rebuilt.
 */
extern void su_queue_own_insert(bool own);

#endif							/* SU_QUEUE_COMMIT_H */
