/*-------------------------------------------------------------------------
 *
 * queue_sql.h
 *		The SQL of the queue's states that more than one statement uses,
 *		named once: the queue's rooms (queue.c, queue_commit.c,
 *		queue_followup.c) write with it, and the builders read the state of
 *		an order with it in their own statements (the same snapshot as the
 *		body).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SU_QUEUE_SQL_H
#define SU_QUEUE_SQL_H

#include "common.h"

/*
 * The predicates on the states that more than one statement uses, named
 * once.  IN_FLIGHT: a request for the row is under way (its lease has not
 * run out).  ACCEPTED: WeChat has the order as it is now.
 */
#define SU_SQL_IN_FLIGHT(a) \
	"(" a ".state OPERATOR(pg_catalog.=) 'uploading'" \
	" AND " a ".next_attempt_at OPERATOR(pg_catalog.>) pg_catalog.now())"
/*
 * Is row a in the claiming worker's share (SuPartition), n and part being
 * the statement's parameters?
 */
#define SU_SQL_IN_SHARE(a, n, part) \
	"(" n " OPERATOR(pg_catalog.<=) 1 OR" \
	" (pg_catalog.hashint8(" a ".order_id) OPERATOR(pg_catalog.&) 2147483647)" \
	" OPERATOR(pg_catalog.%) " n " OPERATOR(pg_catalog.=) " part ")"
#define SU_SQL_ACCEPTED(a) \
	"(" a ".state OPERATOR(pg_catalog.=) 'uploaded'" \
	" AND " a ".uploaded_version OPERATOR(pg_catalog.=) " a ".version)"

/*
 * The SET list that queues a row again as a new version (a writer's
 * change, at its commit: queued_at is the clock's time then, not the
 * transaction's start, so that commit to accepted is measured): due now,
 * unless a request for it is in flight, whose lease it keeps (the answer
 * to the old version is recorded first, and the new one is due then: one
 * request per order in flight).
 */
#define SU_SQL_QUEUE_AGAIN(a) \
	" state = CASE WHEN " SU_SQL_IN_FLIGHT(a) " THEN " a ".state ELSE 'pending' END," \
	" next_attempt_at = CASE WHEN " SU_SQL_IN_FLIGHT(a) \
	"  THEN " a ".next_attempt_at ELSE pg_catalog.now() END," \
	" version = " a ".version OPERATOR(pg_catalog.+) 1, attempts = 0," \
	" queued_at = pg_catalog.clock_timestamp(), updated_at = pg_catalog.now()"

/*
 * What the builders read of an order's state, in their own statements (the
 * same snapshot as the body): o is the alias of the orders row.
 */
/* the order's version (NULL: never queued) */
#define SU_SQL_ORDER_VERSION(o) \
	"(SELECT st.version FROM " SU_SCHEMA ".order_state st" \
	" WHERE st.order_id OPERATOR(pg_catalog.=) " o ".order_id)"
/* does WeChat have the order as it is now? */
#define SU_SQL_ORDER_ACCEPTED(o) \
	"EXISTS (SELECT FROM " SU_SCHEMA ".order_state st" \
	" WHERE st.order_id OPERATOR(pg_catalog.=) " o ".order_id" \
	" AND " SU_SQL_ACCEPTED("st") ")"
/* the order_key and payer its accepted upload sent (text; NULL: none kept) */
#define SU_SQL_ORDER_UPLOADED_KEY(o) \
	"(SELECT CAST(st.uploaded_key AS pg_catalog.text)" \
	" FROM " SU_SCHEMA ".order_state st" \
	" WHERE st.order_id OPERATOR(pg_catalog.=) " o ".order_id)"

#endif							/* SU_QUEUE_SQL_H */
