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
 * The due hints.  No index on the due columns (order_state.next_attempt_at
 * and verify_due_at, shipping_state.next_attempt_at): the everyday updates
 * of a state row (the claim, the record) change no indexed column and can
 * be HOT.  The claims find due rows through due, an unlogged table of
 * hints: (kind, order_id, at), kind 'o' for order_state.next_attempt_at,
 * 's' for shipping_state.next_attempt_at, 'v' for verify_due_at, 't'
 * for trade_state.next_attempt_at, 'g' for its check_due_at (get_order),
 * 'c' for its confirm_due_at (notify_confirm_receive).  A row
 * whose due column is not NULL has a hint at or before it: a statement that
 * sets a due column earlier, or from NULL, sets the hint of each row it
 * writes, in the same statement, with the row locked.  A statement that
 * sets one later or NULL may leave the hint early: the claim that meets it
 * with the row locked sets it right (or deletes it).  A crash, a failover
 * or a restore empties due (unlogged): the marker row ('*', 0) is gone with
 * it, and the worker rebuilds the hints from the states before it claims
 * (su_queue_next_due()).
 */
#define SU_HINT_ORDER		"o"

/*
 * The hints of one kind in the order they come, by due_at_idx: the only
 * condition that index answers (it is on the kind as text), so that every
 * other statement on due looks its rows up by the primary key.
 */
#define SU_SQL_DUE_KIND(t, kind) \
	"CAST(" t ".kind AS pg_catalog.text) OPERATOR(pg_catalog.=) '" kind "'"
/* the marker row: the hints are complete */
#define SU_SQL_DUE_MARKER(t) \
	"(" t ".order_id OPERATOR(pg_catalog.=) 0 AND " t ".kind OPERATOR(pg_catalog.=) '*')"

/*
 * A claim of n rows reads the first n * SU_CLAIM_CANDIDATES due hints (by
 * due_at_idx), then locks up to n of their rows, skipping
 * those another transaction holds: the limit comes after the skipped
 * locks, and no more rows are locked than are claimed.
 */
#define SU_CLAIM_CANDIDATES	"4"
#define SU_HINT_SHIPPING	"s"
#define SU_HINT_VERIFY		"v"
#define SU_HINT_TRADE		"t"
#define SU_HINT_TRADE_CHECK	"g"
#define SU_HINT_TRADE_CONFIRM	"c"

/*
 * The hints of the rows of CTE src (its columns order_id and hint_at) set
 * to hint_at, or deleted where it is NULL, as CTEs hd<n>, hi<n> of a WITH.
 * Every statement on due looks its rows up by its primary key or its index
 * due_at_idx, whatever the plan cache planned them with: a join with
 * due planned while it was small would scan it whole once it is not.
 */
#define SU_SQL_HINT_CTES(n, kind, src) \
	" hd" n " AS (DELETE FROM " SU_SCHEMA ".due h" \
	"  WHERE h.kind OPERATOR(pg_catalog.=) '" kind "'" \
	"  AND h.order_id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT " src ".order_id" \
	"   FROM " src " WHERE " src ".hint_at IS NULL)))," \
	" hi" n " AS (INSERT INTO " SU_SCHEMA ".due AS h (kind, order_id, at)" \
	"  SELECT '" kind "', " src ".order_id, " src ".hint_at FROM " src \
	"  WHERE " src ".hint_at IS NOT NULL" \
	"  ON CONFLICT (kind, order_id) DO UPDATE SET at = EXCLUDED.at)"

/*
 * A statement that writes state rows, with their hints: write is an
 * INSERT, UPDATE or DELETE RETURNING order_id, the due column of kind AS
 * hint_at (NULL for a DELETE), and the columns the caller reads; the
 * statement returns cols of its rows (SPI_OK_SELECT, SPI_processed rows).
 */
#define SU_SQL_HINTED(kind, write, cols) \
	"WITH w AS (" write ")," \
	SU_SQL_HINT_CTES("", kind, "w") \
	" SELECT " cols " FROM w"

/*
 * Deletes the trade_state rows where cond holds, with their hints of every
 * kind (the upload's, get_order's and the receipt reminder's); returns
 * their order_ids (SPI_OK_SELECT).
 */
#define SU_SQL_TRADE_FORGET(cond) \
	"WITH w AS (DELETE FROM " SU_SCHEMA ".trade_state s WHERE " cond \
	"  RETURNING s.order_id)," \
	" hd AS (DELETE FROM " SU_SCHEMA ".due h" \
	"  WHERE h.kind OPERATOR(pg_catalog.=) ANY ('{" SU_HINT_TRADE "," SU_HINT_TRADE_CHECK \
	"," SU_HINT_TRADE_CONFIRM "}')" \
	"  AND h.order_id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT w.order_id FROM w)))" \
	" SELECT w.order_id FROM w"

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
