/*-------------------------------------------------------------------------
 *
 * queue_followup.c
 *		Where the calls after an order's upload stand: its verify (the
 *		verify_* columns of shopping_upload.order_state) and its shipping
 *		information (shopping_upload.shipping_state).  Claimed, leased,
 *		retried and recorded as uploads are (queue.c).
 *
 * A verify never changes an order's upload columns, and an upload's answer
 * never its verify columns but to plan the next verify.  Shipping
 * information is sent only once its order's upload was accepted.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "common.h"
#include "queue.h"
#include "queue_commit.h"
#include "retry.h"
#include "settings.h"
#include "spi_util.h"
#include "queue_sql.h"

enum
{
	Anum_vclaim_order_id = 1,
	Anum_vclaim_verify_version,
	Anum_vclaim_verify_attempts
};

/* the due verifies' lease: as an upload's */
int
su_verify_claim(int max, const SuPartition *share, SuClaim *out, int *looked_at)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[4] = {INT4OID, FLOAT8OID, INT4OID, INT4OID};
	Datum		args[4] = {Int32GetDatum(max), Float8GetDatum((double) su_lease_s),
	Int32GetDatum(share->n), Int32GetDatum(share->part)};
	bool		isnull;

	/* from the due hints, as su_queue_claim() */
	su_kept_plan(&plan,
				 "WITH c AS (SELECT d.order_id, d.verify_due_at,"
				 "  coalesce(d.verify_due_at OPERATOR(pg_catalog.<=) pg_catalog.now(),"
				 "   false) AS go"
				 "  FROM " SU_SCHEMA ".order_state d"
				 "  WHERE d.order_id OPERATOR(pg_catalog.=) ANY (ARRAY("
				 "   SELECT t.order_id FROM " SU_SCHEMA ".due t"
				 "   WHERE " SU_SQL_DUE_KIND("t", SU_HINT_VERIFY)
				 "   AND t.at OPERATOR(pg_catalog.<=) pg_catalog.now()"
				 "   AND " SU_SQL_IN_SHARE("t", "$3", "$4")
				 "   ORDER BY t.at LIMIT $1 OPERATOR(pg_catalog.*) " SU_CLAIM_CANDIDATES "))"
				 "  LIMIT $1 FOR UPDATE OF d SKIP LOCKED),"
				 " w AS (UPDATE " SU_SCHEMA ".order_state s SET"
				 " verify_due_at = pg_catalog.now() OPERATOR(pg_catalog.+)"
				 "  pg_catalog.make_interval(secs => $2),"
				 " verify_attempts = s.verify_attempts OPERATOR(pg_catalog.+) 1"
				 " WHERE s.order_id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT c.order_id FROM c WHERE c.go))"
				 " RETURNING s.order_id, s.verify_version, s.verify_attempts, s.verify_due_at),"
				 " f AS (SELECT w.order_id, w.verify_due_at AS hint_at FROM w"
				 "  UNION ALL SELECT c.order_id, c.verify_due_at FROM c WHERE NOT c.go),"
				 SU_SQL_HINT_CTES("", SU_HINT_VERIFY, "f")
				 " SELECT w.order_id, w.verify_version, w.verify_attempts FROM w",
				 4, types, CURSOR_OPT_GENERIC_PLAN);

	if (SPI_execute_plan(plan, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not claim verifies");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		Datum		v = SPI_getbinval(tup, desc, Anum_vclaim_verify_version, &isnull);

		out[i].order_id = DatumGetInt64(SPI_getbinval(tup, desc, Anum_vclaim_order_id, &isnull));
		out[i].version = isnull ? 0 : DatumGetInt64(v);
		out[i].attempt = DatumGetInt32(SPI_getbinval(tup, desc, Anum_vclaim_verify_attempts, &isnull));
		out[i].upload_time = 0;
		out[i].queued_at = 0;
	}
	*looked_at = (int) SPI_processed;
	return (int) SPI_processed;
}

enum
{
	Anum_sclaim_order_id = 1,
	Anum_sclaim_version,
	Anum_sclaim_attempts,
	Anum_sclaim_upload_time,
	Anum_sclaim_claimed,		/* false: set waiting_for_order */
	Anum_sclaim_queued_at
};

/*
 * The claim reads whether an order was accepted in its snapshot, taken
 * before it locked the shipping rows: an upload_shopping_info() that
 * committed the order's acceptance in between (its release of the shipping
 * row done, the lock gone) is not seen, and the row would wait until its
 * recheck.  A look again in a new snapshot, at the rows the claim set
 * waiting (locked by this transaction): those whose order is accepted are
 * due now.
 */
static void
recheck_waiting(Datum *ids, int n)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[1] = {INT8ARRAYOID};
	Datum		args[1] = {su_array(ids, NULL, n, INT8OID)};

	su_kept_plan(&plan, SU_SQL_HINTED(SU_HINT_SHIPPING,
									  "UPDATE " SU_SCHEMA ".shipping_state s SET state = 'pending',"
									  " next_attempt_at = pg_catalog.now(), updated_at = pg_catalog.now()"
									  " WHERE s.order_id OPERATOR(pg_catalog.=) ANY ($1)"
									  " AND s.state OPERATOR(pg_catalog.=) 'waiting_for_order'"
									  " AND " SU_SQL_ORDER_ACCEPTED("s")
									  " RETURNING s.order_id, s.next_attempt_at AS hint_at",
									  "w.order_id"),
				 1, types, 0);
	if (SPI_execute_plan(plan, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not look again at %d shipping uploads waiting for their order", n);
	SPI_freetuptable(SPI_tuptable);
}

int
su_shipping_claim(int max, const SuPartition *share, SuClaim *out, int *looked_at)
{
	Datum	   *waiting;
	int			n_waiting = 0;
	static SPIPlanPtr plan = NULL;
	Oid			types[5] = {INT4OID, FLOAT8OID, FLOAT8OID, INT4OID, INT4OID};
	Datum		args[5] = {Int32GetDatum(max), Float8GetDatum((double) su_lease_s),
		Float8GetDatum((double) SU_WAITING_RECHECK_S),
	Int32GetDatum(share->n), Int32GetDatum(share->part)};
	bool		isnull;
	int			n = 0;

	/*
	 * Due rows whose order's current version was not accepted yet, or is
	 * being sent, wait for it (the body carries the order's key and payer as
	 * they are now, and WeChat takes shipping information only for an order
	 * it has; the order's claim, in turn, skips an order whose shipping
	 * information is in flight): the
	 * order's accepted upload makes them due (su_queue_record()), and a look
	 * every SU_WAITING_RECHECK_S is the last resort.
	 */
#define ACCEPTED SU_SQL_ORDER_ACCEPTED("s")
	su_kept_plan(&plan,
				 "WITH c AS (SELECT d.order_id, d.next_attempt_at,"
				 "  coalesce(d.next_attempt_at OPERATOR(pg_catalog.<=) pg_catalog.now(),"
				 "   false) AS go"
				 "  FROM " SU_SCHEMA ".shipping_state d"
				 "  WHERE d.order_id OPERATOR(pg_catalog.=) ANY (ARRAY("
				 "   SELECT t.order_id FROM " SU_SCHEMA ".due t"
				 "   WHERE " SU_SQL_DUE_KIND("t", SU_HINT_SHIPPING)
				 "   AND t.at OPERATOR(pg_catalog.<=) pg_catalog.now()"
				 "   AND " SU_SQL_IN_SHARE("t", "$4", "$5")
				 "   ORDER BY t.at LIMIT $1 OPERATOR(pg_catalog.*) " SU_CLAIM_CANDIDATES "))"
				 "  LIMIT $1 FOR UPDATE OF d SKIP LOCKED),"
				 " w AS (UPDATE " SU_SCHEMA ".shipping_state s SET"
				 " state = CASE WHEN " ACCEPTED " THEN 'uploading'"
				 "  ELSE 'waiting_for_order' END,"
				 " next_attempt_at = pg_catalog.now() OPERATOR(pg_catalog.+)"
				 "  pg_catalog.make_interval(secs => CASE WHEN " ACCEPTED
				 "  THEN $2 ELSE $3 END),"
				 " attempts = s.attempts OPERATOR(pg_catalog.+)"
				 "  CASE WHEN " ACCEPTED " THEN 1 ELSE 0 END,"
				 " last_upload_time = CASE WHEN " ACCEPTED
				 "  THEN greatest(pg_catalog.date_trunc('milliseconds',"
				 "   pg_catalog.clock_timestamp()),"
				 "   s.last_upload_time OPERATOR(pg_catalog.+) interval '1 millisecond')"
				 "  ELSE s.last_upload_time END,"
				 " updated_at = pg_catalog.now()"
				 " WHERE s.order_id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT c.order_id FROM c WHERE c.go))"
				 " RETURNING s.order_id, s.version, s.attempts, s.last_upload_time,"
				 "  s.state OPERATOR(pg_catalog.=) 'uploading' AS claimed,"
				 "  CASE WHEN s.uploaded_version OPERATOR(pg_catalog.=) s.version"
				 "  THEN NULL ELSE s.queued_at END AS queued_at, s.next_attempt_at),"
				 " f AS (SELECT w.order_id, w.next_attempt_at AS hint_at FROM w"
				 "  UNION ALL SELECT c.order_id, c.next_attempt_at FROM c WHERE NOT c.go),"
				 SU_SQL_HINT_CTES("", SU_HINT_SHIPPING, "f")
				 " SELECT w.order_id, w.version, w.attempts, w.last_upload_time,"
				 "  w.claimed, w.queued_at FROM w",
				 5, types, CURSOR_OPT_GENERIC_PLAN);
#undef ACCEPTED

	if (SPI_execute_plan(plan, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not claim shipping information");
	*looked_at = (int) SPI_processed;
	waiting = palloc(sizeof(Datum) * Max(SPI_processed, 1));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;

		if (!DatumGetBool(SPI_getbinval(tup, desc, Anum_sclaim_claimed, &isnull)))
		{
			/* waiting for its order */
			waiting[n_waiting++] = SPI_getbinval(tup, desc, Anum_sclaim_order_id, &isnull);
			continue;
		}
		out[n].order_id = DatumGetInt64(SPI_getbinval(tup, desc, Anum_sclaim_order_id, &isnull));
		out[n].version = DatumGetInt64(SPI_getbinval(tup, desc, Anum_sclaim_version, &isnull));
		out[n].attempt = DatumGetInt32(SPI_getbinval(tup, desc, Anum_sclaim_attempts, &isnull));
		out[n].upload_time = DatumGetTimestampTz(SPI_getbinval(tup, desc, Anum_sclaim_upload_time, &isnull));
		out[n].queued_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, Anum_sclaim_queued_at, &isnull));
		if (isnull)
			out[n].queued_at = 0;
		n++;
	}
	if (n_waiting > 0)
		recheck_waiting(waiting, n_waiting);
	pfree(waiting);
	return n;
}

/* When a verify that ended so is tried again (0: not again): retry.c decides. */
static TimestampTz
verify_next(SuUpload *u, TimestampTz now)
{
	SuRetryLimits limits = su_retry_limits();

	return su_retry_verify_next(&limits, u->cls, u->attempt, now,
								pg_prng_double(&pg_global_prng_state));
}

/*
 * the rows of us that the record statement's RETURNING names (its columns:
 * the order_id, the next due time, and whether the state is the one planned)
 */
enum
{
	Anum_recorded_order_id = 1,
	Anum_recorded_next,
	Anum_recorded_as_planned	/* false: the row changed, it is pending */
};

int
su_queue_mark_recorded(SuUpload **us, int n, bool *recorded,
					   TimestampTz *earliest, SuDue due)
{
	int			n_recorded = 0;

	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r],
													 SPI_tuptable->tupdesc,
													 Anum_recorded_order_id,
													 &isnull));
		Datum		next = SPI_getbinval(SPI_tuptable->vals[r],
										 SPI_tuptable->tupdesc,
										 Anum_recorded_next, &isnull);

		if (earliest && !isnull)
			su_earlier(&earliest[due], DatumGetTimestampTz(next));
		for (int i = 0; i < n; i++)
			if (!recorded[i] && us[i]->order_id == id)
			{
				recorded[i] = true;
				n_recorded++;
				if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[r],
												SPI_tuptable->tupdesc,
												Anum_recorded_as_planned,
												&isnull)))
					us[i]->next_state = "pending";
				break;
			}
	}
	return n_recorded;
}

int
su_verify_record(SuUpload **us, int n, bool *recorded, TimestampTz *earliest)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[8] = {INT8ARRAYOID, INT8ARRAYOID, BOOLARRAYOID,
		INT4ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TIMESTAMPTZARRAYOID,
	BOOLARRAYOID};
	Datum		args[8];
	Datum	   *v[8];
	bool	   *nul[8];
	TimestampTz now = GetCurrentTimestamp();
	int			n_recorded;

	/*
	 * A verify of a version that is no longer the one to verify (a newer
	 * upload was accepted meanwhile) leaves the newer verify planned.  A
	 * verify by hand (plan false) changes the worker's plan only when it
	 * succeeded.
	 */
	su_kept_plan(&plan,
				 "WITH w AS (WITH l AS (SELECT st.order_id FROM " SU_SCHEMA ".order_state st"
				 "  WHERE st.order_id OPERATOR(pg_catalog.=) ANY ($1)"
				 "  FOR UPDATE SKIP LOCKED)"
				 " UPDATE " SU_SCHEMA ".order_state s SET"
				 " verify_result = CASE WHEN u.ok THEN u.result ELSE s.verify_result END,"
				 " verified_at = CASE WHEN u.ok THEN pg_catalog.now() ELSE s.verified_at END,"
				 " verified_version = CASE WHEN u.ok THEN u.version"
				 "  ELSE s.verified_version END,"
				 " verify_errcode = u.errcode, verify_errmsg = u.errmsg,"
				 " verify_due_at = CASE"
				 "  WHEN (s.verify_version IS NULL) OPERATOR(pg_catalog.<>) (u.version IS NULL)"
				 "   OR s.verify_version OPERATOR(pg_catalog.<>) u.version"
				 "   OR NOT (u.plan OR u.ok) THEN s.verify_due_at"
				 "  ELSE u.next END"
				 " FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2),"
				 "  pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5),"
				 "  pg_catalog.unnest($6), pg_catalog.unnest($7), pg_catalog.unnest($8))"
				 "  AS u(order_id, version, ok, errcode, errmsg, result, next, plan), l"
				 " WHERE s.order_id OPERATOR(pg_catalog.=) u.order_id"
				 " AND l.order_id OPERATOR(pg_catalog.=) u.order_id"
				 " RETURNING s.order_id, s.verify_due_at AS hint_at, true AS as_planned),"
				 SU_SQL_HINT_CTES("", SU_HINT_VERIFY, "w")
				 " SELECT w.order_id, w.hint_at, w.as_planned FROM w",
				 8, types, 0);
	for (int c = 0; c < 8; c++)
	{
		v[c] = palloc(sizeof(Datum) * n);
		nul[c] = palloc0(sizeof(bool) * n);
	}
	for (int i = 0; i < n; i++)
	{
		SuUpload   *u = us[i];
		TimestampTz next = verify_next(u, now);

		v[0][i] = Int64GetDatum(u->order_id);
		v[1][i] = Int64GetDatum(u->version);
		nul[1][i] = (u->version == 0);
		v[2][i] = BoolGetDatum(u->cls == SU_CLASS_OK);
		v[3][i] = Int32GetDatum(u->errcode);
		if (u->errmsg)
			v[4][i] = CStringGetTextDatum(u->errmsg);
		else
			nul[4][i] = true;
		if (u->verify_result)
			v[5][i] = CStringGetTextDatum(u->verify_result);
		else
			nul[5][i] = true;
		v[6][i] = TimestampTzGetDatum(next);
		nul[6][i] = (next == 0);
		v[7][i] = BoolGetDatum(!u->by_hand);
		recorded[i] = false;
	}
	args[0] = su_array(v[0], nul[0], n, INT8OID);
	args[1] = su_array(v[1], nul[1], n, INT8OID);
	args[2] = su_array(v[2], nul[2], n, BOOLOID);
	args[3] = su_array(v[3], nul[3], n, INT4OID);
	args[4] = su_array(v[4], nul[4], n, TEXTOID);
	args[5] = su_array(v[5], nul[5], n, TEXTOID);
	args[6] = su_array(v[6], nul[6], n, TIMESTAMPTZOID);
	args[7] = su_array(v[7], nul[7], n, BOOLOID);
	if (SPI_execute_plan(plan, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not record the outcome of %d verifies", n);
	n_recorded = su_queue_mark_recorded(us, n, recorded, earliest, SU_DUE_VERIFY);
	SPI_freetuptable(SPI_tuptable);
	if (n_recorded < n)
	{
		n_recorded += su_queue_mark_gone(us, n, recorded, args[0], SU_DUE_VERIFY);
		SPI_freetuptable(SPI_tuptable);
	}
	return n_recorded;
}

int
su_shipping_record(SuUpload **us, int n, bool *recorded, TimestampTz *earliest)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[7] = {INT8ARRAYOID, INT8ARRAYOID, TEXTARRAYOID,
	TIMESTAMPTZARRAYOID, BOOLARRAYOID, INT4ARRAYOID, TEXTARRAYOID};
	Datum		args[7];
	Datum	   *v[7];
	bool	   *nul[7];
	TimestampTz now = GetCurrentTimestamp();
	int			n_recorded;

	/* as su_queue_record() for orders: a change while in flight is due at once */
	su_kept_plan(&plan,
				 "WITH w AS (WITH l AS (SELECT h.order_id FROM " SU_SCHEMA ".shipping_state h"
				 "  WHERE h.order_id OPERATOR(pg_catalog.=) ANY ($1)"
				 "  FOR UPDATE SKIP LOCKED)"
				 " UPDATE " SU_SCHEMA ".shipping_state s SET"
				 " state = CASE WHEN s.version OPERATOR(pg_catalog.=) u.version"
				 "  THEN u.state ELSE 'pending' END,"
				 " next_attempt_at = CASE WHEN s.version OPERATOR(pg_catalog.=) u.version"
				 "  THEN u.next ELSE pg_catalog.now() END,"
				 " uploaded_version = CASE WHEN u.ok"
				 "  THEN greatest(s.uploaded_version, u.version)"
				 "  ELSE s.uploaded_version END,"
				 " last_errcode = u.errcode, last_errmsg = u.errmsg,"
				 " updated_at = pg_catalog.now()"
				 " FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2),"
				 "  pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5),"
				 "  pg_catalog.unnest($6), pg_catalog.unnest($7))"
				 "  AS u(order_id, version, state, next, ok, errcode, errmsg), l"
				 " WHERE s.order_id OPERATOR(pg_catalog.=) u.order_id"
				 " AND l.order_id OPERATOR(pg_catalog.=) u.order_id"
				 " RETURNING s.order_id, s.next_attempt_at AS hint_at,"
				 "  s.version OPERATOR(pg_catalog.=) u.version AS as_planned),"
				 SU_SQL_HINT_CTES("", SU_HINT_SHIPPING, "w")
				 " SELECT w.order_id, w.hint_at, w.as_planned FROM w",
				 7, types, 0);
	for (int c = 0; c < 7; c++)
	{
		v[c] = palloc(sizeof(Datum) * n);
		nul[c] = palloc0(sizeof(bool) * n);
	}
	for (int i = 0; i < n; i++)
	{
		SuUpload   *u = us[i];
		TimestampTz next;

		v[0][i] = Int64GetDatum(u->order_id);
		v[1][i] = Int64GetDatum(u->version);
		if (u->deferred)
		{
			/* its order's new version goes first: a look again shortly */
			next = TimestampTzPlusMilliseconds(now, SU_DEFERRED_RECHECK_MS);
			v[2][i] = CStringGetTextDatum("waiting_for_order");
		}
		else
		{
			u->next_state = su_queue_next_state(u, now, &next);
			v[2][i] = CStringGetTextDatum(u->next_state);
		}
		v[3][i] = TimestampTzGetDatum(next);
		nul[3][i] = (next == 0);
		v[4][i] = BoolGetDatum(u->cls == SU_CLASS_OK && !u->deferred);
		v[5][i] = Int32GetDatum(u->errcode);
		if (u->errmsg)
			v[6][i] = CStringGetTextDatum(u->errmsg);
		else
			nul[6][i] = true;
		recorded[i] = false;
	}
	args[0] = su_array(v[0], NULL, n, INT8OID);
	args[1] = su_array(v[1], NULL, n, INT8OID);
	args[2] = su_array(v[2], NULL, n, TEXTOID);
	args[3] = su_array(v[3], nul[3], n, TIMESTAMPTZOID);
	args[4] = su_array(v[4], NULL, n, BOOLOID);
	args[5] = su_array(v[5], NULL, n, INT4OID);
	args[6] = su_array(v[6], nul[6], n, TEXTOID);
	if (SPI_execute_plan(plan, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not record the outcome of %d shipping uploads", n);
	n_recorded = su_queue_mark_recorded(us, n, recorded, earliest, SU_DUE_SHIPPING);
	SPI_freetuptable(SPI_tuptable);
	if (n_recorded < n)
	{
		n_recorded += su_queue_mark_gone(us, n, recorded, args[0], SU_DUE_SHIPPING);
		SPI_freetuptable(SPI_tuptable);
	}
	return n_recorded;
}

enum
{
	Anum_vbegin_uploaded_version = 1,
	Anum_vbegin_verify_attempts
};

TimestampTz
su_verify_begin(int64 order_id, SuUpload *u)
{
	int64	   *version = &u->version;
	int		   *attempt = &u->attempt;

	static SPIPlanPtr order_plan = NULL;
	static SPIPlanPtr plan = NULL;
	Oid			types[1] = {INT8OID};
	Datum		args[1] = {Int64GetDatum(order_id)};
	bool		isnull;
	Datum		d;

	su_kept_plan(&order_plan,
				 "SELECT FROM " SU_SCHEMA ".orders o"
				 " WHERE o.order_id OPERATOR(pg_catalog.=) $1",
				 1, types, 0);
	if (SPI_execute_plan(order_plan, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read order " INT64_FORMAT, order_id);
	if (SPI_processed == 0)
		su_order_missing(order_id);

	/*
	 * The order's state stays locked until the transaction ends, as for
	 * upload_shopping_info(): the worker skips it meanwhile.
	 */
	su_kept_plan(&plan,
				 "SELECT st.uploaded_version, st.verify_attempts"
				 " FROM " SU_SCHEMA ".order_state st"
				 " WHERE st.order_id OPERATOR(pg_catalog.=) $1 FOR UPDATE",
				 1, types, 0);

	if (SPI_execute_plan(plan, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not start a verify of order " INT64_FORMAT, order_id);
	*version = 0;
	*attempt = 1;
	if (SPI_processed > 0)
	{
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
						  Anum_vbegin_uploaded_version, &isnull);
		*version = isnull ? 0 : DatumGetInt64(d);
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
						  Anum_vbegin_verify_attempts, &isnull);
		*attempt = DatumGetInt32(d) + 1;
	}
	SPI_freetuptable(SPI_tuptable);
	return 0;					/* a verify body has no upload_time */
}

enum
{
	Anum_sbegin_has_shipping = 1,
	Anum_sbegin_accepted
};

enum
{
	Anum_slease_upload_time = 1,
	Anum_slease_version,
	Anum_slease_attempts,
	Anum_slease_queued_at
};

/* su_shipping_begin()'s check: is a request of the shipping information in flight? */
enum
{
	Anum_sflight_in_flight = 1,
	Anum_sflight_accepted		/* WeChat has this version already */
};

TimestampTz
su_shipping_begin(int64 order_id, SuUpload *u)
{
	static SPIPlanPtr check_plan = NULL;
	static SPIPlanPtr flight_plan = NULL;
	static SPIPlanPtr plan = NULL;
	Oid			types[1] = {INT8OID};
	Datum		args[1] = {Int64GetDatum(order_id)};
	Oid			lease_types[2] = {INT8OID, FLOAT8OID};
	Datum		lease_args[2] = {Int64GetDatum(order_id), Float8GetDatum((double) su_lease_s)};
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	bool		has_shipping;
	bool		accepted;
	int			ret;

	su_kept_plan(&check_plan,
				 "SELECT EXISTS (SELECT FROM " SU_SCHEMA ".shippings h"
				 "  WHERE h.order_id OPERATOR(pg_catalog.=) o.order_id),"
				 " " SU_SQL_ORDER_ACCEPTED("o")
				 " FROM " SU_SCHEMA ".orders o WHERE o.order_id OPERATOR(pg_catalog.=) $1",
				 1, types, 0);

	/*
	 * The order's state row first (the writers' order: order, then
	 * shipping), waiting for a worker's claim of the order not committed
	 * yet: what follows then sees it, and one request per order is in
	 * flight.
	 */
	su_queue_lock_state(SU_DUE_ORDER, order_id);
	if (SPI_execute_plan(check_plan, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read order " INT64_FORMAT, order_id);
	if (SPI_processed == 0)
		su_order_missing(order_id);
	has_shipping = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
											  SPI_tuptable->tupdesc,
											  Anum_sbegin_has_shipping, &isnull));
	accepted = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc,
										  Anum_sbegin_accepted, &isnull));
	SPI_freetuptable(SPI_tuptable);
	if (!has_shipping)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("order " INT64_FORMAT " has no shipping information", order_id),
				 errhint("Store it with shopping_upload.import_shipping().")));
	if (!accepted)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("order " INT64_FORMAT " has not been uploaded yet", order_id),
				 errdetail("WeChat takes shipping information only for an order whose shopping information it accepted, as the order is now (its key and payer)."),
				 errhint("Upload the order first (shopping_upload.upload_shopping_info(), or let the worker); "
						 "the worker sends queued shipping information once the order is accepted.")));

	/* one request per order in flight: the state row, locked, says */
	su_kept_plan(&flight_plan,
				 "SELECT " SU_SQL_IN_FLIGHT("h") ", " SU_SQL_ACCEPTED("h")
				 " FROM " SU_SCHEMA ".shipping_state h"
				 " WHERE h.order_id OPERATOR(pg_catalog.=) $1 FOR UPDATE",
				 1, types, 0);
	if (SPI_execute_plan(flight_plan, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the shipping state of order " INT64_FORMAT, order_id);
	if (SPI_processed > 0 &&
		DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
								   Anum_sflight_in_flight, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("the shipping information of order " INT64_FORMAT " is being uploaded by the worker",
						order_id),
				 errdetail("One request per order is in flight at a time."),
				 errhint("Wait until its shipping_state in shopping_upload.order_status is no longer \"uploading\".")));
	u->was_accepted = SPI_processed > 0 &&
		DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
								   Anum_sflight_accepted, &isnull));

	/* leased, as su_queue_begin() leases an order */
	su_kept_plan(&plan, SU_SQL_HINTED(SU_HINT_SHIPPING,
									  "INSERT INTO " SU_SCHEMA ".shipping_state AS s"
									  " (order_id, last_upload_time, attempts, state, next_attempt_at)"
									  " VALUES ($1, pg_catalog.date_trunc('milliseconds',"
									  "  pg_catalog.clock_timestamp()), 1, 'uploading',"
									  "  pg_catalog.now() OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => $2))"
									  " ON CONFLICT (order_id) DO UPDATE SET"
									  " last_upload_time = greatest(EXCLUDED.last_upload_time,"
									  "  s.last_upload_time OPERATOR(pg_catalog.+) interval '1 millisecond'),"
									  " attempts = s.attempts OPERATOR(pg_catalog.+) 1,"
									  " state = 'uploading', next_attempt_at = EXCLUDED.next_attempt_at,"
									  " updated_at = pg_catalog.now()"
									  " RETURNING s.order_id, s.next_attempt_at AS hint_at,"
									  "  s.last_upload_time, s.version, s.attempts, s.queued_at",
									  "w.last_upload_time, w.version, w.attempts, w.queued_at"),
				 2, lease_types, 0);

	su_queue_own_insert(true);
	ret = SPI_execute_plan(plan, lease_args, NULL, false, 0);
	su_queue_own_insert(false);
	if (ret != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "could not start an attempt on the shipping information of order " INT64_FORMAT,
			 order_id);
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	u->version = DatumGetInt64(SPI_getbinval(tup, desc, Anum_slease_version, &isnull));
	u->attempt = DatumGetInt32(SPI_getbinval(tup, desc, Anum_slease_attempts, &isnull));
	u->lease_attempt = u->attempt;
	/* a version WeChat has already: sent again, not a new version's latency */
	u->queued_at = u->was_accepted ? 0 :
		DatumGetTimestampTz(SPI_getbinval(tup, desc, Anum_slease_queued_at, &isnull));
	return DatumGetTimestampTz(SPI_getbinval(tup, desc, Anum_slease_upload_time, &isnull));
}
