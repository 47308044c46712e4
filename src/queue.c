/*-------------------------------------------------------------------------
 *
 * queue.c
 *		Where every order stands: shopping_upload.order_state, one row per
 *		order.  Here: the worker's claim and record of uploads, the lease of
 *		a call by hand, requeue(), recovery at the worker's start and the
 *		shift after a step of the wall clock.  Queueing at commit is
 *		queue_commit.c's; the verify columns and shipping_state are
 *		queue_followup.c's.
 *
 * An order's version grows with every change; an attempt records its outcome
 * against the version it sent, so a change made while a request was in
 * flight is never marked uploaded by the answer to the older version.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "queue.h"
#include "common.h"
#include "retry.h"
#include "settings.h"
#include "spi_util.h"
#include "wake.h"
#include "queue_commit.h"
#include "queue_sql.h"

static SPIPlanPtr begin_plan = NULL;
static SPIPlanPtr record_plan = NULL;

enum
{
	Anum_lease_upload_time = 1,
	Anum_lease_version,
	Anum_lease_attempts,
	Anum_lease_queued_at
};

/* su_queue_begin()'s check: is a request of the order in flight? */
enum
{
	Anum_check_in_flight = 1,
	Anum_check_accepted			/* WeChat has this version already */
};

TimestampTz
su_queue_begin(int64 order_id, SuUpload *u)
{
	static SPIPlanPtr check_plan = NULL;
	Oid			types[2] = {INT8OID, FLOAT8OID};
	Datum		args[2] = {Int64GetDatum(order_id), Float8GetDatum((double) su_lease_s)};
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;

	/*
	 * One request per order is in flight at a time, whatever its kind: the
	 * state row, locked until this (short) transaction ends, says whether
	 * one is.
	 */
	su_kept_plan(&check_plan,
				 "SELECT " SU_SQL_IN_FLIGHT("s")
				 " OR EXISTS (SELECT FROM " SU_SCHEMA ".shipping_state h"
				 "  WHERE h.order_id OPERATOR(pg_catalog.=) s.order_id"
				 "  AND " SU_SQL_IN_FLIGHT("h") "),"
				 " " SU_SQL_ACCEPTED("s")
				 " FROM " SU_SCHEMA ".order_state s"
				 " WHERE s.order_id OPERATOR(pg_catalog.=) $1 FOR UPDATE OF s",
				 1, types, 0);

	/*
	 * Twice: a worker's claim of the shipping information, not committed
	 * yet, is not in the first statement's snapshot.  Its row is locked
	 * between the two (after the order's, in the writers' order), waiting
	 * for such a claim to commit.
	 */
	for (int pass = 0; pass < 2; pass++)
	{
		if (pass == 1)
			su_queue_lock_state(SU_DUE_SHIPPING, order_id);
		if (SPI_execute_plan(check_plan, args, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read the state of order " INT64_FORMAT, order_id);
		if (SPI_processed > 0 &&
			DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
									   Anum_check_in_flight, &isnull)))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_IN_USE),
					 errmsg("order " INT64_FORMAT " is being uploaded by the worker",
							order_id),
					 errdetail("One request per order is in flight at a time (its upload or its shipping information)."),
					 errhint("Wait until its state in shopping_upload.order_status is no longer \"uploading\".")));
	}
	u->was_accepted = SPI_processed > 0 &&
		DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
								   Anum_check_accepted, &isnull));

	/*
	 * The attempt leases the order, as the worker's claim does: the worker
	 * leaves it alone, and a writer's commit keeps the lease (its change is
	 * due again once the answer is recorded).
	 */

	su_kept_plan(&begin_plan, SU_SQL_HINTED(SU_HINT_ORDER,
											"INSERT INTO " SU_SCHEMA ".order_state AS s"
											" (order_id, last_upload_time, attempts, state, next_attempt_at)"
											" SELECT o.order_id, pg_catalog.date_trunc('milliseconds',"
											"  pg_catalog.clock_timestamp()), 1, 'uploading',"
											"  pg_catalog.now() OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => $2)"
											" FROM " SU_SCHEMA ".orders o WHERE o.order_id OPERATOR(pg_catalog.=) $1"
											" ON CONFLICT (order_id) DO UPDATE SET"
											" last_upload_time = greatest(EXCLUDED.last_upload_time,"
											"  s.last_upload_time OPERATOR(pg_catalog.+) interval '1 millisecond'),"
											" attempts = s.attempts OPERATOR(pg_catalog.+) 1,"
											" state = 'uploading', next_attempt_at = EXCLUDED.next_attempt_at,"
											" updated_at = pg_catalog.now()"
											" RETURNING s.order_id, s.next_attempt_at AS hint_at,"
											"  s.last_upload_time, s.version, s.attempts, s.queued_at",
											"w.last_upload_time, w.version, w.attempts, w.queued_at"),
				 2, types, 0);
	su_queue_own_insert(true);
	if (SPI_execute_plan(begin_plan, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not start an attempt on order " INT64_FORMAT, order_id);
	su_queue_own_insert(false);
	if (SPI_processed == 0)
		su_order_missing(order_id);
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	u->version = DatumGetInt64(SPI_getbinval(tup, desc, Anum_lease_version, &isnull));
	u->attempt = DatumGetInt32(SPI_getbinval(tup, desc, Anum_lease_attempts, &isnull));
	u->lease_attempt = u->attempt;
	/* a version WeChat has already: sent again, not a new version's latency */
	u->queued_at = u->was_accepted ? 0 :
		DatumGetTimestampTz(SPI_getbinval(tup, desc, Anum_lease_queued_at, &isnull));
	return DatumGetTimestampTz(SPI_getbinval(tup, desc, Anum_lease_upload_time, &isnull));
}

/* the state table of a due column's rows */
static const char *
state_table(SuDue due)
{
	switch (due)
	{
		case SU_DUE_SHIPPING:
			return "shipping_state";
		case SU_DUE_TRADE:
		case SU_DUE_TRADE_CHECK:
		case SU_DUE_TRADE_CONFIRM:
			return "trade_state";
		case SU_DUE_ORDER:
		case SU_DUE_VERIFY:
		case SU_DUES:
			break;
	}
	return "order_state";
}

/* kept plan *plan of the statement fmt, its %s the state table of due */
static SPIPlanPtr
state_plan(SPIPlanPtr *plan, SuDue due, const char *fmt, int nargs, Oid *types)
{
	if (*plan == NULL)
		su_kept_plan(plan, psprintf(fmt, state_table(due)), nargs, types, 0);
	return *plan;
}

static void release_shipping(Datum *accepted, int n_accepted, bool by_hand,
							 TimestampTz *earliest);

bool
su_queue_restore(SuDue due, int64 order_id, int64 version, int attempt,
				 TimestampTz *earliest)
{
	static SPIPlanPtr plans[SU_DUES];
	Oid			types[3] = {INT8OID, INT8OID, INT4OID};
	Datum		args[3] = {Int64GetDatum(order_id), Int64GetDatum(version),
	Int32GetDatum(attempt)};
	bool		on_order = (due == SU_DUE_ORDER || due == SU_DUE_VERIFY);

	state_plan(&plans[due], due,
			   "UPDATE " SU_SCHEMA ".%s s SET state = 'uploaded',"
			   " next_attempt_at = NULL, updated_at = pg_catalog.now()"
			   " WHERE s.order_id OPERATOR(pg_catalog.=) $1"
			   " AND s.version OPERATOR(pg_catalog.=) $2"
			   " AND s.uploaded_version OPERATOR(pg_catalog.=) $2"
			   " AND s.attempts OPERATOR(pg_catalog.=) $3"
			   " AND s.state OPERATOR(pg_catalog.=) 'uploading'",
			   3, types);
	if (SPI_execute_plan(plans[due], args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not end the lease of order " INT64_FORMAT, order_id);
	if (SPI_processed != 1)
		return false;

	/*
	 * While the order was "uploading" for this call, a worker's claim of its
	 * shipping information found it not accepted and set that waiting for
	 * it: WeChat has the order, so the shipping information is due now.
	 */
	if (on_order)
	{
		Datum		id = Int64GetDatum(order_id);

		/*
		 * A call's release (this is a call by hand's, in a transaction after
		 * the one that leased the order: a worker's claim may be setting
		 * the row waiting meanwhile)
		 */
		release_shipping(&id, 1, true, earliest);
	}
	return true;
}

void
su_queue_lock_state(SuDue due, int64 order_id)
{
	static SPIPlanPtr plans[SU_DUES];
	Oid			types[1] = {INT8OID};
	Datum		args[1] = {Int64GetDatum(order_id)};

	state_plan(&plans[due], due,
			   "SELECT FROM " SU_SCHEMA ".%s s"
			   " WHERE s.order_id OPERATOR(pg_catalog.=) $1 FOR UPDATE",
			   1, types);
	if (SPI_execute_plan(plans[due], args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not lock the state of order " INT64_FORMAT, order_id);
}

/* retry.c decides; the jitter is drawn here */
const char *
su_queue_next_state(SuUpload *u, TimestampTz now, TimestampTz *next)
{
	SuRetryLimits limits = su_retry_limits();

	return su_retry_state_name(su_retry_next(&limits, u->cls, u->attempt, now,
											 pg_prng_double(&pg_global_prng_state),
											 next));
}

enum
{
	Anum_record_order_id = 1,
	Anum_record_next_attempt_at,
	Anum_record_rekeyed,		/* accepted with another key or payer */
	Anum_record_as_planned		/* false: the order changed, it is pending */
};

/*
 * Shipping information that waited for these orders is due now.  The
 * worker never waits for a row another transaction holds: a writer's
 * queueing makes it pending anyway, and the worker itself, the only one
 * to set rows waiting, is not claiming meanwhile (and a claim looks again,
 * in a new snapshot, at the rows it set waiting).  A call by hand
 * (upload_shopping_info(), or its lease ended unsent) locks the rows first,
 * waiting for a worker's claim that may be setting one waiting right now,
 * then releases them in a new statement (a pending row too: its new
 * version is read after that claim).
 */
static void
release_shipping(Datum *accepted, int n_accepted, bool by_hand,
				 TimestampTz *earliest)
{
	static SPIPlanPtr release_plan = NULL;
	static SPIPlanPtr release_wait_plan = NULL;
	static SPIPlanPtr lock_plan = NULL;
	Oid			types[1] = {INT8ARRAYOID};
	Datum		rel_args[1] = {su_array(accepted, NULL, n_accepted, INT8OID)};

	/*
	 * A call by hand first waits for the rows whatever their state: a
	 * worker's claim takes any due row (retrying, or a lease run out), and
	 * may be setting it waiting now.  The release that follows is a new
	 * statement, whose snapshot sees that claim.
	 */
	if (by_hand)
	{
		su_kept_plan(&lock_plan,
					 "SELECT FROM " SU_SCHEMA ".shipping_state h"
					 " WHERE h.order_id OPERATOR(pg_catalog.=) ANY ($1)"
					 " ORDER BY h.order_id FOR UPDATE",
					 1, types, 0);
		if (SPI_execute_plan(lock_plan, rel_args, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not lock the shipping information of %d orders",
				 n_accepted);
	}
	if (by_hand)
		su_kept_plan(&release_wait_plan, SU_SQL_HINTED(SU_HINT_SHIPPING,
													   "UPDATE " SU_SCHEMA ".shipping_state h SET state = 'pending',"
													   " next_attempt_at = pg_catalog.now(), updated_at = pg_catalog.now()"
													   " WHERE h.order_id OPERATOR(pg_catalog.=) ANY ($1)"
													   " AND h.state OPERATOR(pg_catalog.=) ANY ('{waiting_for_order,pending}')"
													   " RETURNING h.order_id, h.next_attempt_at AS hint_at",
													   "w.order_id"),
					 1, types, 0);
	else
		su_kept_plan(&release_plan, SU_SQL_HINTED(SU_HINT_SHIPPING,
												  "WITH l AS (SELECT h.order_id FROM " SU_SCHEMA ".shipping_state h"
												  "  WHERE h.order_id OPERATOR(pg_catalog.=) ANY ($1)"
												  "  AND h.state OPERATOR(pg_catalog.=) 'waiting_for_order'"
												  "  FOR UPDATE SKIP LOCKED)"
												  " UPDATE " SU_SCHEMA ".shipping_state h SET state = 'pending',"
												  " next_attempt_at = pg_catalog.now(), updated_at = pg_catalog.now()"
												  " FROM l WHERE h.order_id OPERATOR(pg_catalog.=) l.order_id"
												  " RETURNING h.order_id, h.next_attempt_at AS hint_at",
												  "w.order_id"),
					 1, types, 0);
	if (SPI_execute_plan(by_hand ? release_wait_plan : release_plan, rel_args,
						 NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not release the shipping information of %d orders",
			 n_accepted);
	if (SPI_processed > 0 && earliest)
		su_earlier(&earliest[SU_DUE_SHIPPING], GetCurrentTimestamp());
	if (earliest)
	{
		SuRetryLimits limits = su_retry_limits();
		TimestampTz verify = su_retry_verify_first(&limits, GetCurrentTimestamp());

		if (verify != 0)
			su_earlier(&earliest[SU_DUE_VERIFY], verify);
	}
}

/*
 * An accepted upload with another key or payer than the one accepted
 * before: the shipping information WeChat has carries the old one, and
 * is sent again (a new version).  A row another transaction holds is
 * skipped: a writer of the shipping tables queues it anyway.
 */
static void
resend_shipping(Datum *rekeyed, int n_rekeyed, TimestampTz *earliest)
{
	static SPIPlanPtr rekeyed_plan = NULL;
	Oid			types[1] = {INT8ARRAYOID};
	Datum		rk_args[1] = {su_array(rekeyed, NULL, n_rekeyed, INT8OID)};

	su_kept_plan(&rekeyed_plan, SU_SQL_HINTED(SU_HINT_SHIPPING,
											  "WITH l AS (SELECT h.order_id FROM " SU_SCHEMA ".shipping_state h"
											  "  WHERE h.order_id OPERATOR(pg_catalog.=) ANY ($1)"
											  "  AND h.state OPERATOR(pg_catalog.=) 'uploaded'"
											  "  FOR UPDATE SKIP LOCKED)"
											  " UPDATE " SU_SCHEMA ".shipping_state h SET state = 'pending',"
											  " version = h.version OPERATOR(pg_catalog.+) 1, attempts = 0,"
											  " next_attempt_at = pg_catalog.now(), queued_at = pg_catalog.now(),"
											  " updated_at = pg_catalog.now()"
											  " FROM l WHERE h.order_id OPERATOR(pg_catalog.=) l.order_id"
											  " RETURNING h.order_id, h.next_attempt_at AS hint_at",
											  "w.order_id"),
				 1, types, 0);
	if (SPI_execute_plan(rekeyed_plan, rk_args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not queue again the shipping information of %d orders", n_rekeyed);
	if (SPI_processed > 0 && earliest)
		su_earlier(&earliest[SU_DUE_SHIPPING], GetCurrentTimestamp());
}

/*
 * Records the outcome of n attempts in their orders' states; recorded[i]
 * says which were.  earliest (NULL: not wanted; 0: none yet) is lowered to
 * the soonest next attempt among the rows written: a retry, or an order
 * that changed while in flight and is due again at once.
 */
int
su_queue_record(SuUpload **us, int n, bool *recorded, TimestampTz *earliest)
{
	Oid			types[9] = {INT8ARRAYOID, INT8ARRAYOID, TEXTARRAYOID,
		TIMESTAMPTZARRAYOID, BOOLARRAYOID, INT4ARRAYOID, TEXTARRAYOID, FLOAT8OID,
	TEXTARRAYOID};
	Datum		args[9];
	Datum	   *accepted;
	int			n_accepted = 0;
	Datum	   *rekeyed;
	int			n_rekeyed = 0;
	Datum	   *keys;
	bool	   *key_nulls;
	Datum	   *ids;
	Datum	   *versions;
	Datum	   *states;
	Datum	   *nexts;
	bool	   *next_nulls;
	Datum	   *oks;
	Datum	   *codes;
	Datum	   *msgs;
	bool	   *msg_nulls;
	TimestampTz now = GetCurrentTimestamp();
	int			n_recorded = 0;
	uint64		processed;
	SPITupleTable *tt;

	if (n == 0)
		return 0;
	ids = palloc(sizeof(Datum) * n);
	accepted = palloc(sizeof(Datum) * n);
	rekeyed = palloc(sizeof(Datum) * n);
	keys = palloc(sizeof(Datum) * n);
	key_nulls = palloc0(sizeof(bool) * n);
	versions = palloc(sizeof(Datum) * n);
	states = palloc(sizeof(Datum) * n);
	nexts = palloc(sizeof(Datum) * n);
	next_nulls = palloc0(sizeof(bool) * n);
	oks = palloc(sizeof(Datum) * n);
	codes = palloc(sizeof(Datum) * n);
	msgs = palloc(sizeof(Datum) * n);
	msg_nulls = palloc0(sizeof(bool) * n);

	/*
	 * Rows another transaction holds are skipped, never waited for: the
	 * worker then cannot take part in a deadlock, and what it skipped it
	 * records in a later round.  An order that changed since its attempt
	 * started is due again at once, whatever the answer.  An accepted
	 * upload plans its verify, verify_delay later (none if it is 0), and
	 * keeps the order_key and payer it sent with the version (uploaded_key):
	 * its verify asks about them, whatever the order says by then.
	 */
	su_kept_plan(&record_plan,
				 "WITH w AS (WITH l AS (SELECT st.order_id, st.uploaded_key AS old_key"
				 "  FROM " SU_SCHEMA ".order_state st"
				 "  WHERE st.order_id OPERATOR(pg_catalog.=) ANY ($1)"
				 "  FOR UPDATE SKIP LOCKED)"
				 " UPDATE " SU_SCHEMA ".order_state s SET"
				 " state = CASE WHEN s.version OPERATOR(pg_catalog.=) u.version"
				 "  THEN u.state ELSE 'pending' END,"
				 " next_attempt_at = CASE WHEN s.version OPERATOR(pg_catalog.=) u.version"
				 "  THEN u.next ELSE pg_catalog.now() END,"
				 " uploaded_key = CASE WHEN u.ok AND u.key IS NOT NULL"
				 "  AND u.version OPERATOR(pg_catalog.>=) coalesce(s.uploaded_version, 0)"
				 "  THEN CAST(u.key AS pg_catalog.jsonb) ELSE s.uploaded_key END,"
				 " uploaded_version = CASE WHEN u.ok"
				 "  THEN greatest(s.uploaded_version, u.version)"
				 "  ELSE s.uploaded_version END,"
				 " last_errcode = u.errcode, last_errmsg = u.errmsg,"
				 " updated_at = pg_catalog.now(),"
				 " verify_version = CASE WHEN u.ok AND $8 OPERATOR(pg_catalog.>) 0"
				 "  THEN u.version ELSE s.verify_version END,"
				 " verify_due_at = CASE WHEN u.ok AND $8 OPERATOR(pg_catalog.>) 0"
				 "  THEN pg_catalog.now() OPERATOR(pg_catalog.+)"
				 "   pg_catalog.make_interval(secs => $8)"
				 "  ELSE s.verify_due_at END,"
				 " verify_attempts = CASE WHEN u.ok AND $8 OPERATOR(pg_catalog.>) 0"
				 "  THEN 0 ELSE s.verify_attempts END"
				 " FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2),"
				 "  pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5),"
				 "  pg_catalog.unnest($6), pg_catalog.unnest($7), pg_catalog.unnest($9))"
				 "  AS u(order_id, version, state, next, ok, errcode, errmsg, key), l"
				 " WHERE s.order_id OPERATOR(pg_catalog.=) u.order_id"
				 " AND l.order_id OPERATOR(pg_catalog.=) u.order_id"
				 " RETURNING s.order_id, s.next_attempt_at AS hint_at,"
				 "  l.old_key IS NOT NULL AND s.uploaded_key IS NOT NULL"
				 "  AND l.old_key OPERATOR(pg_catalog.<>) s.uploaded_key AS rekeyed,"
				 "  s.version OPERATOR(pg_catalog.=) u.version AS as_planned,"
				 "  s.verify_due_at),"
				 " wv AS (SELECT w.order_id, w.verify_due_at AS hint_at FROM w),"
				 SU_SQL_HINT_CTES("", SU_HINT_ORDER, "w") ","
				 SU_SQL_HINT_CTES("v", SU_HINT_VERIFY, "wv")
				 " SELECT w.order_id, w.hint_at, w.rekeyed, w.as_planned FROM w",
				 9, types, 0);
	for (int i = 0; i < n; i++)
	{
		SuUpload   *u = us[i];
		TimestampTz next;

		ids[i] = Int64GetDatum(u->order_id);
		versions[i] = Int64GetDatum(u->version);
		u->next_state = su_queue_next_state(u, now, &next);
		states[i] = CStringGetTextDatum(u->next_state);
		nexts[i] = TimestampTzGetDatum(next);
		next_nulls[i] = (next == 0);
		oks[i] = BoolGetDatum(u->cls == SU_CLASS_OK);
		codes[i] = Int32GetDatum(u->errcode);
		if (u->errmsg)
			msgs[i] = CStringGetTextDatum(u->errmsg);
		else
			msg_nulls[i] = true;
		if (u->key_body && u->cls == SU_CLASS_OK)
			keys[i] = CStringGetTextDatum(u->key_body);
		else
			key_nulls[i] = true;
		recorded[i] = false;
	}
	args[0] = su_array(ids, NULL, n, INT8OID);
	args[1] = su_array(versions, NULL, n, INT8OID);
	args[2] = su_array(states, NULL, n, TEXTOID);
	args[3] = su_array(nexts, next_nulls, n, TIMESTAMPTZOID);
	args[4] = su_array(oks, NULL, n, BOOLOID);
	args[5] = su_array(codes, NULL, n, INT4OID);
	args[6] = su_array(msgs, msg_nulls, n, TEXTOID);
	args[7] = Float8GetDatum((double) su_verify_delay_s);
	args[8] = su_array(keys, key_nulls, n, TEXTOID);
	if (SPI_execute_plan(record_plan, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not record the outcome of %d uploads", n);
	processed = SPI_processed;
	tt = SPI_tuptable;
	for (uint64 r = 0; r < processed; r++)
	{
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(tt->vals[r], tt->tupdesc,
													 Anum_record_order_id, &isnull));
		Datum		next = SPI_getbinval(tt->vals[r], tt->tupdesc,
										 Anum_record_next_attempt_at, &isnull);

		/* when the queue next holds a due order of these: a retry, a change */
		if (earliest && !isnull)
			su_earlier(&earliest[SU_DUE_ORDER], DatumGetTimestampTz(next));
		if (DatumGetBool(SPI_getbinval(tt->vals[r], tt->tupdesc,
									   Anum_record_rekeyed, &isnull)))
			rekeyed[n_rekeyed++] = Int64GetDatum(id);

		for (int i = 0; i < n; i++)
			if (!recorded[i] && us[i]->order_id == id)
			{
				recorded[i] = true;
				n_recorded++;
				if (!DatumGetBool(SPI_getbinval(tt->vals[r], tt->tupdesc,
												Anum_record_as_planned, &isnull)))
					us[i]->next_state = "pending";
				if (us[i]->cls == SU_CLASS_OK)
					accepted[n_accepted++] = Int64GetDatum(id);
				break;
			}
	}
	SPI_freetuptable(tt);

	if (n_accepted > 0)
		release_shipping(accepted, n_accepted, us[0]->by_hand, earliest);
	if (n_rekeyed > 0)
		resend_shipping(rekeyed, n_rekeyed, earliest);
	if (n_recorded == n)
		return n;

	/*
	 * Not recorded: held by another transaction (try again later), or gone
	 * with its order (nothing to record but the audit row).
	 */
	n_recorded += su_queue_mark_gone(us, n, recorded, args[0], SU_DUE_ORDER);
	SPI_freetuptable(SPI_tuptable);
	return n_recorded;
}

/* su_queue_mark_gone()'s statement: the state rows still there */
enum
{
	Anum_gone_order_id = 1
};

int
su_queue_mark_gone(SuUpload **us, int n, bool *recorded, Datum ids, SuDue due)
{
	static SPIPlanPtr plans[SU_DUES];
	Oid			types[1] = {INT8ARRAYOID};
	Datum		args[1] = {ids};
	int			n_gone = 0;

	state_plan(&plans[due], due,
			   "SELECT st.order_id FROM " SU_SCHEMA ".%s st"
			   " WHERE st.order_id OPERATOR(pg_catalog.=) ANY ($1)",
			   1, types);
	if (SPI_execute_plan(plans[due], args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the state of %d orders", n);
	for (int i = 0; i < n; i++)
	{
		bool		held = false;

		if (recorded[i])
			continue;
		for (uint64 r = 0; r < SPI_processed && !held; r++)
		{
			bool		isnull;

			held = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r],
											   SPI_tuptable->tupdesc,
											   Anum_gone_order_id,
											   &isnull)) == us[i]->order_id;
		}
		if (!held)
		{
			recorded[i] = true;
			n_gone++;
		}
	}
	return n_gone;
}

/* su_queue_requeue()'s RETURNING: was the row held? */
enum
{
	Anum_requeue_was_held = 1
};

int64
su_queue_requeue(int64 order_id, bool all, Datum states)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[2] = {INT8OID, TEXTARRAYOID};
	Datum		values[2] = {Int64GetDatum(order_id), states};
	char		nulls[2] = {all ? 'n' : ' ', ' '};
	uint64		n;

	/* rows are locked in order_id order, as every queueing does */
	su_kept_plan(&plan, SU_SQL_HINTED(SU_HINT_ORDER,
									  "WITH l AS (SELECT st.order_id, st.state FROM " SU_SCHEMA ".order_state st"
									  "  WHERE st.state OPERATOR(pg_catalog.=) ANY ($2)"
									  "  AND ($1 IS NULL OR st.order_id OPERATOR(pg_catalog.=) $1)"
									  "  ORDER BY st.order_id FOR UPDATE)"
									  " UPDATE " SU_SCHEMA ".order_state s"
									  " SET state = 'pending', attempts = 0,"
									  " next_attempt_at = pg_catalog.now(), updated_at = pg_catalog.now()"
									  " FROM l WHERE s.order_id OPERATOR(pg_catalog.=) l.order_id"
									  " AND s.state OPERATOR(pg_catalog.=) ANY ($2)"
									  " RETURNING s.order_id, s.next_attempt_at AS hint_at,"
									  "  l.state OPERATOR(pg_catalog.=) 'held' AS was_held",
									  "w.was_held"),
				 2, types, 0);
	if (SPI_execute_plan(plan, values, nulls, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not requeue orders");
	n = SPI_processed;
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;

		/* held orders requeued: their appid's hold ends on purpose */
		if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc,
									   Anum_requeue_was_held, &isnull)))
		{
			su_queue_release_holds();
			break;
		}
	}
	SPI_freetuptable(SPI_tuptable);
	if (n > 0)
		su_queue_wake_at_commit(SU_DUE_ORDER);
	return (int64) n;
}

int64
su_queue_release_local_holds(void)
{
	static SPIPlanPtr plans[3];
	Oid			types[1] = {INT4ARRAYOID};
	Datum		elems[8];
	Datum		args[1];
	int			n;
	const int  *codes = su_retry_local_config_codes(&n);
	int64		released = 0;

	Assert(n <= (int) lengthof(elems));
	for (int i = 0; i < n; i++)
		elems[i] = Int32GetDatum(codes[i]);
	args[0] = su_array(elems, NULL, n, INT4OID);
	/*
	 * A row another transaction holds is skipped, never waited for (a
	 * writer's change makes it pending anyway).
	 */
	su_kept_plan(&plans[0], SU_SQL_HINTED(SU_HINT_ORDER,
										  "WITH l AS (SELECT st.order_id FROM " SU_SCHEMA ".order_state st"
										  "  WHERE st.state OPERATOR(pg_catalog.=) 'held'"
										  "  AND st.last_errcode OPERATOR(pg_catalog.=) ANY ($1)"
										  "  AND st.next_attempt_at OPERATOR(pg_catalog.>) pg_catalog.now()"
										  "  FOR UPDATE SKIP LOCKED)"
										  " UPDATE " SU_SCHEMA ".order_state s SET next_attempt_at = pg_catalog.now()"
										  " FROM l WHERE s.order_id OPERATOR(pg_catalog.=) l.order_id"
										  " RETURNING s.order_id, s.next_attempt_at AS hint_at",
										  "w.order_id"),
				 1, types, 0);
	su_kept_plan(&plans[1], SU_SQL_HINTED(SU_HINT_SHIPPING,
										  "WITH l AS (SELECT h.order_id FROM " SU_SCHEMA ".shipping_state h"
										  "  WHERE h.state OPERATOR(pg_catalog.=) 'held'"
										  "  AND h.last_errcode OPERATOR(pg_catalog.=) ANY ($1)"
										  "  AND h.next_attempt_at OPERATOR(pg_catalog.>) pg_catalog.now()"
										  "  FOR UPDATE SKIP LOCKED)"
										  " UPDATE " SU_SCHEMA ".shipping_state s SET next_attempt_at = pg_catalog.now()"
										  " FROM l WHERE s.order_id OPERATOR(pg_catalog.=) l.order_id"
										  " RETURNING s.order_id, s.next_attempt_at AS hint_at",
										  "w.order_id"),
				 1, types, 0);
	su_kept_plan(&plans[2], SU_SQL_HINTED(SU_HINT_TRADE,
										  "WITH l AS (SELECT h.order_id FROM " SU_SCHEMA ".trade_state h"
										  "  WHERE h.state OPERATOR(pg_catalog.=) 'held'"
										  "  AND h.last_errcode OPERATOR(pg_catalog.=) ANY ($1)"
										  "  AND h.next_attempt_at OPERATOR(pg_catalog.>) pg_catalog.now()"
										  "  FOR UPDATE SKIP LOCKED)"
										  " UPDATE " SU_SCHEMA ".trade_state s SET next_attempt_at = pg_catalog.now()"
										  " FROM l WHERE s.order_id OPERATOR(pg_catalog.=) l.order_id"
										  " RETURNING s.order_id, s.next_attempt_at AS hint_at",
										  "w.order_id"),
				 1, types, 0);
	for (int i = 0; i < (int) lengthof(plans); i++)
	{
		if (SPI_execute_plan(plans[i], args, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not release the rows held by a local configuration problem");
		released += SPI_processed;
	}
	return released;
}

void
su_queue_clock_stepped_back(int64 usecs)
{
	static SPIPlanPtr plans[3];
	Oid			types[1] = {FLOAT8OID};
	Datum		args[1] = {Float8GetDatum((double) usecs / USECS_PER_SEC)};

	/*
	 * Rows queued or planned before a step back of the wall clock: brought
	 * forward by the step (never before now).  Held rows keep their end (a
	 * wall-clock time: midnight in Beijing, or the configuration's retry),
	 * leased rows their lease.
	 */
	su_kept_plan(&plans[0], SU_SQL_HINTED(SU_HINT_ORDER,
										  "UPDATE " SU_SCHEMA ".order_state s SET next_attempt_at ="
										  " greatest(pg_catalog.now(), s.next_attempt_at OPERATOR(pg_catalog.-)"
										  "  pg_catalog.make_interval(secs => $1))"
										  " WHERE s.next_attempt_at OPERATOR(pg_catalog.>) pg_catalog.now()"
										  " AND s.state OPERATOR(pg_catalog.=) ANY ('{pending,retrying}')"
										  " RETURNING s.order_id, s.next_attempt_at AS hint_at",
										  "w.order_id"),
				 1, types, 0);
	su_kept_plan(&plans[1], SU_SQL_HINTED(SU_HINT_SHIPPING,
										  "UPDATE " SU_SCHEMA ".shipping_state s SET next_attempt_at ="
										  " greatest(pg_catalog.now(), s.next_attempt_at OPERATOR(pg_catalog.-)"
										  "  pg_catalog.make_interval(secs => $1))"
										  " WHERE s.next_attempt_at OPERATOR(pg_catalog.>) pg_catalog.now()"
										  " AND s.state OPERATOR(pg_catalog.=) ANY ('{pending,retrying,waiting_for_order}')"
										  " RETURNING s.order_id, s.next_attempt_at AS hint_at",
										  "w.order_id"),
				 1, types, 0);
	su_kept_plan(&plans[2], SU_SQL_HINTED(SU_HINT_TRADE,
										  "UPDATE " SU_SCHEMA ".trade_state s SET next_attempt_at ="
										  " greatest(pg_catalog.now(), s.next_attempt_at OPERATOR(pg_catalog.-)"
										  "  pg_catalog.make_interval(secs => $1))"
										  " WHERE s.next_attempt_at OPERATOR(pg_catalog.>) pg_catalog.now()"
										  " AND s.state OPERATOR(pg_catalog.=) ANY ('{pending,retrying,waiting_for_payment}')"
										  " RETURNING s.order_id, s.next_attempt_at AS hint_at",
										  "w.order_id"),
				 1, types, 0);
	for (int i = 0; i < (int) lengthof(plans); i++)
		if (SPI_execute_plan(plans[i], args, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not bring forward the rows planned before the clock went back");
}

void
su_queue_forget(int64 order_id, SuDue due)
{
	static SPIPlanPtr plans[SU_DUES];
	Oid			types[1] = {INT8OID};
	Datum		args[1] = {Int64GetDatum(order_id)};
	bool		trade = (due == SU_DUE_TRADE || due == SU_DUE_TRADE_CHECK ||
						 due == SU_DUE_TRADE_CONFIRM);
	bool		shipping = (due == SU_DUE_SHIPPING || trade);

	/* a statement of its own: a fresh snapshot sees every committed row */
	if (trade)
	{
		due = SU_DUE_TRADE;
		su_kept_plan(&plans[due],
					 SU_SQL_TRADE_FORGET("s.order_id OPERATOR(pg_catalog.=) $1"
										 " AND NOT EXISTS (SELECT FROM " SU_SCHEMA ".shippings h"
										 "  WHERE h.order_id OPERATOR(pg_catalog.=) $1)"),
					 1, types, 0);
	}
	su_kept_plan(&plans[due], shipping ?
				 SU_SQL_HINTED(SU_HINT_SHIPPING,
							   "DELETE FROM " SU_SCHEMA ".shipping_state s"
							   " WHERE s.order_id OPERATOR(pg_catalog.=) $1"
							   " AND NOT EXISTS (SELECT FROM " SU_SCHEMA ".shippings h"
							   "  WHERE h.order_id OPERATOR(pg_catalog.=) $1)"
							   " RETURNING s.order_id, CAST(NULL AS pg_catalog.timestamptz) AS hint_at",
							   "w.order_id") :
				 "WITH w AS (DELETE FROM " SU_SCHEMA ".order_state s"
				 " WHERE s.order_id OPERATOR(pg_catalog.=) $1"
				 " AND NOT EXISTS (SELECT FROM " SU_SCHEMA ".orders o"
				 "  WHERE o.order_id OPERATOR(pg_catalog.=) $1)"
				 " RETURNING s.order_id)"
				 " DELETE FROM " SU_SCHEMA ".due h"
				 " WHERE h.kind OPERATOR(pg_catalog.=) ANY ('{" SU_HINT_ORDER "," SU_HINT_VERIFY "}')"
				 " AND h.order_id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT w.order_id FROM w))",
				 1, types, 0);
	if (SPI_execute_plan(plans[due], args, NULL, false, 0) !=
		(shipping ? SPI_OK_SELECT : SPI_OK_DELETE))
		elog(ERROR, "could not delete the %s state of order " INT64_FORMAT,
			 shipping ? "shipping" : "upload", order_id);
}

/* ---------------------------------------------------------------------
 * The worker's side: claim, recover
 * ---------------------------------------------------------------------
 */

static SPIPlanPtr claim_plan = NULL;
static SPIPlanPtr due_plan = NULL;

enum
{
	Anum_claim_order_id = 1,
	Anum_claim_version,
	Anum_claim_attempts,
	Anum_claim_upload_time,
	Anum_claim_queued_at
};

int
su_queue_claim(int max, const SuPartition *share, SuClaim *out, int *looked_at)
{
	Oid			types[4] = {INT4OID, FLOAT8OID, INT4OID, INT4OID};
	Datum		args[4] = {Int32GetDatum(max), Float8GetDatum((double) su_lease_s),
	Int32GetDatum(share->n), Int32GetDatum(share->part)};
	bool		isnull;

	/*
	 * One plan whatever the queue's size or $1 (a generic one, planned
	 * once): the first due hints (src/queue_sql.h), their rows by primary
	 * key, locked.  An order whose shipping information is in flight waits
	 * for its answer: one request per order at a time, whatever its kind
	 * (a new payer must not overtake the shipment that carries the old).
	 * A hint met early (its row planned later, or nothing planned) is set
	 * right with the row locked; a claimed row's hint is its lease's end.
	 */
	su_kept_plan(&claim_plan,
				 "WITH c AS (SELECT d.order_id, d.next_attempt_at,"
				 "  coalesce(d.next_attempt_at OPERATOR(pg_catalog.<=) pg_catalog.now(),"
				 "   false) AS go"
				 "  FROM " SU_SCHEMA ".order_state d"
				 "  WHERE d.order_id OPERATOR(pg_catalog.=) ANY (ARRAY("
				 "   SELECT t.order_id FROM " SU_SCHEMA ".due t"
				 "   WHERE " SU_SQL_DUE_KIND("t", SU_HINT_ORDER)
				 "   AND t.at OPERATOR(pg_catalog.<=) pg_catalog.now()"
				 "   AND NOT EXISTS (SELECT FROM " SU_SCHEMA ".shipping_state h"
				 "    WHERE h.order_id OPERATOR(pg_catalog.=) t.order_id"
				 "    AND " SU_SQL_IN_FLIGHT("h") ")"
				 "   AND " SU_SQL_IN_SHARE("t", "$3", "$4")
				 "   ORDER BY t.at LIMIT $1 OPERATOR(pg_catalog.*) " SU_CLAIM_CANDIDATES "))"
				 "  LIMIT $1 FOR UPDATE OF d SKIP LOCKED),"
				 " w AS (UPDATE " SU_SCHEMA ".order_state s SET state = 'uploading',"
				 " next_attempt_at = pg_catalog.now() OPERATOR(pg_catalog.+)"
				 "  pg_catalog.make_interval(secs => $2),"
				 " attempts = s.attempts OPERATOR(pg_catalog.+) 1,"
				 " last_upload_time = greatest(pg_catalog.date_trunc('milliseconds',"
				 "  pg_catalog.clock_timestamp()),"
				 "  s.last_upload_time OPERATOR(pg_catalog.+) interval '1 millisecond'),"
				 " updated_at = pg_catalog.now()"
				 " WHERE s.order_id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT c.order_id FROM c WHERE c.go))"
				 " RETURNING s.order_id, s.version, s.attempts, s.last_upload_time,"
				 "  CASE WHEN s.uploaded_version OPERATOR(pg_catalog.=) s.version"
				 "  THEN NULL ELSE s.queued_at END AS queued_at, s.next_attempt_at),"
				 " f AS (SELECT w.order_id, w.next_attempt_at AS hint_at FROM w"
				 "  UNION ALL SELECT c.order_id, c.next_attempt_at FROM c WHERE NOT c.go),"
				 SU_SQL_HINT_CTES("", SU_HINT_ORDER, "f")
				 " SELECT w.order_id, w.version, w.attempts, w.last_upload_time, w.queued_at FROM w",
				 4, types, CURSOR_OPT_GENERIC_PLAN);
	if (SPI_execute_plan(claim_plan, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not claim orders");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;

		out[i].order_id = DatumGetInt64(SPI_getbinval(tup, desc, Anum_claim_order_id, &isnull));
		out[i].version = DatumGetInt64(SPI_getbinval(tup, desc, Anum_claim_version, &isnull));
		out[i].attempt = DatumGetInt32(SPI_getbinval(tup, desc, Anum_claim_attempts, &isnull));
		out[i].upload_time = DatumGetTimestampTz(SPI_getbinval(tup, desc, Anum_claim_upload_time, &isnull));
		/* NULL: a version WeChat has (requeue()d), not a new one's latency */
		out[i].queued_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, Anum_claim_queued_at, &isnull));
		if (isnull)
			out[i].queued_at = 0;
	}
	*looked_at = (int) SPI_processed;
	return (int) SPI_processed;
}

/* due_plan's columns: one per due column, k + 1 for SuDue k */
StaticAssertDecl(SU_DUE_ORDER == 0 && SU_DUE_SHIPPING == 1 &&
				 SU_DUE_VERIFY == 2 && SU_DUE_TRADE == 3 &&
				 SU_DUE_TRADE_CHECK == 4 && SU_DUE_TRADE_CONFIRM == 5 && SU_DUES == 6,
				 "the columns of due_plan follow SuDue");

/*
 * Are the due hints complete, as far as this process knows?  Read with the
 * next due times; false at first.
 */
static bool hints_complete = false;

/* when a rebuild that could not be made now is tried again */
static TimestampTz rebuild_retry_at = 0;
#define SU_REBUILD_RETRY_MS		5000

/*
 * The transactions of this database that were prepared (two-phase commit)
 * when the hints were last rebuilt, and the latest time one of them was
 * prepared: their queueing is not in the rebuild (their state rows were not
 * committed), and if a crash emptied the hints they wrote at PREPARE, a
 * row they queued has none.  The hints are merged again once one of them
 * has ended.
 */
static int64 rebuild_prepared = 0;
static TimestampTz rebuild_prepared_at = 0;

/* the advisory lock of the rebuild: one process of the database at a time */
#define SU_REBUILD_LOCK_SQL \
	"SELECT pg_catalog.pg_try_advisory_xact_lock(1970496101, 1685415269)"

/*
 * The due hints from the states, when the marker says they are not complete
 * (a crash, a failover or a restore emptied the unlogged table; a new
 * installation; rows inserted by something else than the queue), or when
 * force.  Only lowered: a writer that set a hint meanwhile set it right,
 * and an early one is set right by the claim that meets it.  In order of
 * kind and order_id, as the writers take them; in a subtransaction, with a
 * short lock_timeout: a rebuild never waits long for a writer's hint (nor a
 * writer for the rebuild), and one that cannot be made now is tried again
 * SU_REBUILD_RETRY_MS later.
 */
static void
rebuild_hints(bool force)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	TimestampTz now = GetCurrentTimestamp();
	uint64		rows = 0;
	bool		done = false;

	if (!force)
	{
		if (SPI_execute("SELECT FROM " SU_SCHEMA ".due t"
						" WHERE " SU_SQL_DUE_MARKER("t"), false, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not read the due hints");
		if (SPI_processed > 0)
		{
			hints_complete = true;
			return;
		}
	}
	if (now < rebuild_retry_at)
		return;
	/* until it is made: the worker looks again by then (su_queue_next_due) */
	rebuild_retry_at = TimestampTzPlusMilliseconds(now, SU_REBUILD_RETRY_MS);

	BeginInternalSubTransaction(NULL);
	PG_TRY();
	{
		int			nestlevel = NewGUCNestLevel();

		(void) set_config_option("lock_timeout", "100ms", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
		if (SPI_execute(SU_REBUILD_LOCK_SQL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not take the lock of the due hints' rebuild");
		if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &(bool) {false})))
		{
			if (SPI_execute("SELECT pg_catalog.count(*), pg_catalog.max(p.prepared)"
							" FROM pg_catalog.pg_prepared_xacts p"
							" WHERE p.database OPERATOR(pg_catalog.=) pg_catalog.current_database()",
							false, 1) != SPI_OK_SELECT)
				elog(ERROR, "could not read the prepared transactions");
			{
				bool		isnull;
				Datum		at;

				rebuild_prepared = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
															   SPI_tuptable->tupdesc, 1, &isnull));
				at = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
				rebuild_prepared_at = isnull ? 0 : DatumGetTimestampTz(at);
			}
			if (SPI_execute("WITH m AS (INSERT INTO " SU_SCHEMA ".due (kind, order_id, at)"
							"  VALUES ('*', 0, pg_catalog.now()) ON CONFLICT DO NOTHING)"
							" INSERT INTO " SU_SCHEMA ".due AS h (kind, order_id, at)"
							" SELECT r.kind, r.order_id, r.at FROM ("
							" SELECT CAST('" SU_HINT_ORDER "' AS pg_catalog.\"char\") AS kind,"
							"  s.order_id, s.next_attempt_at AS at"
							"  FROM " SU_SCHEMA ".order_state s WHERE s.next_attempt_at IS NOT NULL"
							" UNION ALL SELECT '" SU_HINT_VERIFY "', s.order_id, s.verify_due_at"
							"  FROM " SU_SCHEMA ".order_state s WHERE s.verify_due_at IS NOT NULL"
							" UNION ALL SELECT '" SU_HINT_SHIPPING "', s.order_id, s.next_attempt_at"
							"  FROM " SU_SCHEMA ".shipping_state s WHERE s.next_attempt_at IS NOT NULL"
							" UNION ALL SELECT '" SU_HINT_TRADE "', s.order_id, s.next_attempt_at"
							"  FROM " SU_SCHEMA ".trade_state s WHERE s.next_attempt_at IS NOT NULL"
							" UNION ALL SELECT '" SU_HINT_TRADE_CHECK "', s.order_id, s.check_due_at"
							"  FROM " SU_SCHEMA ".trade_state s WHERE s.check_due_at IS NOT NULL"
							" UNION ALL SELECT '" SU_HINT_TRADE_CONFIRM "', s.order_id, s.confirm_due_at"
							"  FROM " SU_SCHEMA ".trade_state s WHERE s.confirm_due_at IS NOT NULL) r"
							" ORDER BY r.kind, r.order_id"
							" ON CONFLICT (kind, order_id) DO UPDATE"
							" SET at = LEAST(h.at, EXCLUDED.at)", false, 0) != SPI_OK_INSERT)
				elog(ERROR, "could not rebuild the due hints");
			rows = SPI_processed;
			done = true;
		}
		AtEOXact_GUC(true, nestlevel);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		ereport(LOG,
				(errmsg("shopping_upload worker: the due hints could not be rebuilt now, tried again in %d s: %s",
						SU_REBUILD_RETRY_MS / 1000, edata->message)));
		FreeErrorData(edata);
		return;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	if (!done)
		return;					/* another process rebuilds them */
	rebuild_retry_at = 0;
	ereport(LOG,
			(errmsg("shopping_upload worker: the due hints were rebuilt from the queue (%llu rows planned)",
					(unsigned long long) rows)));
	hints_complete = true;
}

/* has a transaction prepared at the last rebuild ended since? */
static bool
prepared_ended(void)
{
	Oid			types[1] = {TIMESTAMPTZOID};
	Datum		args[1] = {TimestampTzGetDatum(rebuild_prepared_at)};
	bool		isnull;

	if (rebuild_prepared == 0)
		return false;
	if (SPI_execute_with_args("SELECT pg_catalog.count(*) FROM pg_catalog.pg_prepared_xacts p"
							  " WHERE p.database OPERATOR(pg_catalog.=) pg_catalog.current_database()"
							  " AND p.prepared OPERATOR(pg_catalog.<=) $1",
							  1, types, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the prepared transactions");
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
									   1, &isnull)) < rebuild_prepared;
}

void
su_queue_next_due(TimestampTz *due)
{
	bool		isnull;

	if (!hints_complete)
		rebuild_hints(false);
	else if (prepared_ended())
		rebuild_hints(true);

	/*
	 * One index probe per kind: the first hint of each whose row is there
	 * (an early hint makes a claim that sets it right; one whose row is gone
	 * would wake the worker for nothing), and whether the hints are complete.
	 */
#define HAS_ROW(table) \
	" AND EXISTS (SELECT FROM " SU_SCHEMA "." table " s" \
	"  WHERE s.order_id OPERATOR(pg_catalog.=) t.order_id)"
	su_kept_plan(&due_plan,
				 "SELECT (SELECT t.at FROM " SU_SCHEMA ".due t"
				 "  WHERE " SU_SQL_DUE_KIND("t", SU_HINT_ORDER) HAS_ROW("order_state")
				 "  ORDER BY t.at LIMIT 1),"
				 " (SELECT t.at FROM " SU_SCHEMA ".due t"
				 "  WHERE " SU_SQL_DUE_KIND("t", SU_HINT_SHIPPING) HAS_ROW("shipping_state")
				 "  ORDER BY t.at LIMIT 1),"
				 " (SELECT t.at FROM " SU_SCHEMA ".due t"
				 "  WHERE " SU_SQL_DUE_KIND("t", SU_HINT_VERIFY) HAS_ROW("order_state")
				 "  ORDER BY t.at LIMIT 1),"
				 " (SELECT t.at FROM " SU_SCHEMA ".due t"
				 "  WHERE " SU_SQL_DUE_KIND("t", SU_HINT_TRADE) HAS_ROW("trade_state")
				 "  ORDER BY t.at LIMIT 1),"
				 " (SELECT t.at FROM " SU_SCHEMA ".due t"
				 "  WHERE " SU_SQL_DUE_KIND("t", SU_HINT_TRADE_CHECK) HAS_ROW("trade_state")
				 "  ORDER BY t.at LIMIT 1),"
				 " (SELECT t.at FROM " SU_SCHEMA ".due t"
				 "  WHERE " SU_SQL_DUE_KIND("t", SU_HINT_TRADE_CONFIRM) HAS_ROW("trade_state")
				 "  ORDER BY t.at LIMIT 1),"
				 " EXISTS (SELECT FROM " SU_SCHEMA ".due t"
				 "  WHERE " SU_SQL_DUE_MARKER("t") ")",
				 0, NULL, 0);
	/* one column per due column, in SuDue's order (see below) */
	/* not read-only: a new snapshot, that sees the claim just made */
	if (SPI_execute_plan(due_plan, NULL, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the queue");
	if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
									SU_DUES + 1, &isnull)))
	{
		/* emptied since: rebuilt, then read again */
		hints_complete = false;
		rebuild_hints(false);
		if (SPI_execute_plan(due_plan, NULL, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not read the queue");
	}
	for (int k = 0; k < SU_DUES; k++)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
									  k + 1, &isnull);

		due[k] = isnull ? 0 : DatumGetTimestampTz(d);
		/* a rebuild to be made again: a look by then */
		if (!hints_complete && rebuild_retry_at != 0 &&
			(due[k] == 0 || due[k] > rebuild_retry_at))
			due[k] = rebuild_retry_at;
	}
}

void
su_queue_recover(TimestampTz leased_before)
{
	Oid			types[1] = {TIMESTAMPTZOID};
	Datum		args[1] = {TimestampTzGetDatum(leased_before)};

	/*
	 * Writers limited to appids: the tables' row level security follows
	 * appid_grants.  A restore (pg_dump does not dump an extension table's
	 * row level security) or a manual change can leave it off while grants
	 * exist: it is put back.
	 */
	if (SPI_execute("SELECT " SU_SCHEMA ".limit_writers()"
					" WHERE EXISTS (SELECT FROM " SU_SCHEMA ".appid_grants)"
					" AND NOT (SELECT c.relrowsecurity FROM pg_catalog.pg_class c"
					"  WHERE c.oid OPERATOR(pg_catalog.=) '" SU_SCHEMA ".orders'::pg_catalog.regclass)",
					false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not check the row level security of the order tables");
	if (SPI_processed > 0)
		ereport(LOG,
				(errmsg("shopping_upload worker: row level security of the order tables turned back on: appid_grants limits writers")));

	/*
	 * Leased before the server became writable (leased_before): by a process
	 * that is gone, whose answer will never be recorded.  Due at once, and
	 * first: by the time they were queued, not behind a backlog queued after
	 * them (a claim takes the oldest due first).  A lease taken since is a
	 * live process's (another worker, a call by hand), or runs out by itself.
	 */
	if (SPI_execute_with_args(SU_SQL_HINTED(SU_HINT_ORDER,
											"UPDATE " SU_SCHEMA ".order_state s SET next_attempt_at ="
											" LEAST(s.queued_at, pg_catalog.now())"
											" WHERE s.state OPERATOR(pg_catalog.=) 'uploading'"
											" AND s.updated_at OPERATOR(pg_catalog.<) $1"
											" RETURNING s.order_id, s.next_attempt_at AS hint_at",
											"w.order_id"),
							  1, types, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not recover the orders of a previous worker");
	if (SPI_processed > 0)
		ereport(LOG,
				(errmsg("shopping_upload worker: %llu orders left uploading by a previous worker are due again",
						(unsigned long long) SPI_processed)));
	if (SPI_execute_with_args(SU_SQL_HINTED(SU_HINT_SHIPPING,
											"UPDATE " SU_SCHEMA ".shipping_state s SET next_attempt_at ="
											" LEAST(s.queued_at, pg_catalog.now())"
											" WHERE s.state OPERATOR(pg_catalog.=) 'uploading'"
											" AND s.updated_at OPERATOR(pg_catalog.<) $1"
											" RETURNING s.order_id, s.next_attempt_at AS hint_at",
											"w.order_id"),
							  1, types, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not recover the shipping information of a previous worker");
	if (SPI_processed > 0)
		ereport(LOG,
				(errmsg("shopping_upload worker: %llu shipping information left uploading by a previous worker are due again",
						(unsigned long long) SPI_processed)));
	if (SPI_execute_with_args(SU_SQL_HINTED(SU_HINT_TRADE,
											"UPDATE " SU_SCHEMA ".trade_state s SET next_attempt_at ="
											" LEAST(s.queued_at, pg_catalog.now())"
											" WHERE s.state OPERATOR(pg_catalog.=) 'uploading'"
											" AND s.updated_at OPERATOR(pg_catalog.<) $1"
											" RETURNING s.order_id, s.next_attempt_at AS hint_at",
											"w.order_id"),
							  1, types, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not recover the trade shipping uploads of a previous worker");
	if (SPI_processed > 0)
		ereport(LOG,
				(errmsg("shopping_upload worker: %llu trade shipping uploads left uploading by a previous worker are due again",
						(unsigned long long) SPI_processed)));
}
