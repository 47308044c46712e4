/*-------------------------------------------------------------------------
 *
 * queue_trade.c
 *		Where each payment's shipping information stands at WeChat's order
 *		shipping management service (shopping_upload.trade_state): its
 *		claim, its lease by hand, the record of its answers and reship().
 *
 * The service's rules that span calls live here and in retry.c: a payment
 * WeChat has not found yet (10060001) waits for it, waiting_for_payment,
 * for up to shopping_upload.payment_wait; once a payment's shipping is
 * complete and accepted (finish_count 1), a change is the payment's one
 * re-ship, sent only after reship() (needs_reship until then), and after it
 * (reship_used) a change is refused here with 10060003.  Which body is a
 * re-ship is decided when it is built (su_trade_prepare(), upload.c), in
 * the claim's transaction, from the row the claim locked.
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
	Anum_tclaim_order_id = 1,
	Anum_tclaim_version,
	Anum_tclaim_attempts,
	Anum_tclaim_upload_time,
	Anum_tclaim_queued_at
};

int
su_trade_claim(int max, const SuPartition *share, SuClaim *out, int *looked_at)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[4] = {INT4OID, FLOAT8OID, INT4OID, INT4OID};
	Datum		args[4] = {Int32GetDatum(max), Float8GetDatum((double) su_lease_s),
	Int32GetDatum(share->n), Int32GetDatum(share->part)};
	bool		isnull;

	/* as su_queue_claim(): the first due hints, their rows locked, leased */
	su_kept_plan(&plan,
				 "WITH c AS (SELECT d.order_id, d.next_attempt_at,"
				 "  coalesce(d.next_attempt_at OPERATOR(pg_catalog.<=) pg_catalog.now(),"
				 "   false) AS go"
				 "  FROM " SU_SCHEMA ".trade_state d"
				 "  WHERE d.order_id OPERATOR(pg_catalog.=) ANY (ARRAY("
				 "   SELECT t.order_id FROM " SU_SCHEMA ".due t"
				 "   WHERE " SU_SQL_DUE_KIND("t", SU_HINT_TRADE)
				 "   AND t.at OPERATOR(pg_catalog.<=) pg_catalog.now()"
				 "   AND " SU_SQL_IN_SHARE("t", "$3", "$4")
				 "   ORDER BY t.at LIMIT $1 OPERATOR(pg_catalog.*) " SU_CLAIM_CANDIDATES "))"
				 "  LIMIT $1 FOR UPDATE OF d SKIP LOCKED),"
				 " w AS (UPDATE " SU_SCHEMA ".trade_state s SET state = 'uploading',"
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
				 SU_SQL_HINT_CTES("", SU_HINT_TRADE, "f")
				 " SELECT w.order_id, w.version, w.attempts, w.last_upload_time, w.queued_at FROM w",
				 4, types, CURSOR_OPT_GENERIC_PLAN);
	if (SPI_execute_plan(plan, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not claim trade shipping uploads");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;

		out[i].order_id = DatumGetInt64(SPI_getbinval(tup, desc, Anum_tclaim_order_id, &isnull));
		out[i].version = DatumGetInt64(SPI_getbinval(tup, desc, Anum_tclaim_version, &isnull));
		out[i].attempt = DatumGetInt32(SPI_getbinval(tup, desc, Anum_tclaim_attempts, &isnull));
		out[i].upload_time = DatumGetTimestampTz(SPI_getbinval(tup, desc, Anum_tclaim_upload_time, &isnull));
		out[i].queued_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, Anum_tclaim_queued_at, &isnull));
		if (isnull)
			out[i].queued_at = 0;
	}
	*looked_at = (int) SPI_processed;
	return (int) SPI_processed;
}

enum
{
	Anum_tbegin_has_shipping = 1
};

enum
{
	Anum_tflight_in_flight = 1,
	Anum_tflight_accepted
};

enum
{
	Anum_tlease_upload_time = 1,
	Anum_tlease_version,
	Anum_tlease_attempts,
	Anum_tlease_queued_at
};

TimestampTz
su_trade_begin(int64 order_id, SuUpload *u)
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
	int			ret;

	su_kept_plan(&check_plan,
				 "SELECT EXISTS (SELECT FROM " SU_SCHEMA ".shippings h"
				 "  WHERE h.order_id OPERATOR(pg_catalog.=) o.order_id)"
				 " FROM " SU_SCHEMA ".orders o WHERE o.order_id OPERATOR(pg_catalog.=) $1",
				 1, types, 0);
	if (SPI_execute_plan(check_plan, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read order " INT64_FORMAT, order_id);
	if (SPI_processed == 0)
		su_order_missing(order_id);
	if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
									Anum_tbegin_has_shipping, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("order " INT64_FORMAT " has no shipping information", order_id),
				 errhint("Store it in shopping_upload.shippings and shipments, or with shopping_upload.import_shipping().")));
	SPI_freetuptable(SPI_tuptable);

	/* one request per payment in flight: the state row, locked, says */
	su_kept_plan(&flight_plan,
				 "SELECT " SU_SQL_IN_FLIGHT("h") ", " SU_SQL_ACCEPTED("h")
				 " FROM " SU_SCHEMA ".trade_state h"
				 " WHERE h.order_id OPERATOR(pg_catalog.=) $1 FOR UPDATE",
				 1, types, 0);
	if (SPI_execute_plan(flight_plan, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the trade shipping state of order " INT64_FORMAT, order_id);
	if (SPI_processed > 0 &&
		DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
								   Anum_tflight_in_flight, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("the shipping information of order " INT64_FORMAT " is being uploaded to the shipping management service by the worker",
						order_id),
				 errdetail("One request per payment is in flight at a time."),
				 errhint("Wait until its trade_shipping_state in shopping_upload.order_status is no longer \"uploading\".")));
	u->was_accepted = SPI_processed > 0 &&
		DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
								   Anum_tflight_accepted, &isnull));

	/* leased, as su_shipping_begin() leases shipping information */
	su_kept_plan(&plan, SU_SQL_HINTED(SU_HINT_TRADE,
									  "INSERT INTO " SU_SCHEMA ".trade_state AS s"
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
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not start an attempt on the trade shipping of order " INT64_FORMAT,
			 order_id);
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	u->version = DatumGetInt64(SPI_getbinval(tup, desc, Anum_tlease_version, &isnull));
	u->attempt = DatumGetInt32(SPI_getbinval(tup, desc, Anum_tlease_attempts, &isnull));
	u->lease_attempt = u->attempt;
	u->queued_at = u->was_accepted ? 0 :
		DatumGetTimestampTz(SPI_getbinval(tup, desc, Anum_tlease_queued_at, &isnull));
	return DatumGetTimestampTz(SPI_getbinval(tup, desc, Anum_tlease_upload_time, &isnull));
}

/*
 * The state an answer leads to (retry.c decides; the jitter is drawn here),
 * and the reason kept with it: a payment never found gets its own.
 */
static const char *
trade_next_state(SuUpload *u, TimestampTz now, TimestampTz *next, char **reason)
{
	SuRetryLimits limits = su_retry_limits();
	SuNextState st;

	st = su_retry_trade_next(&limits, u->cls, u->errcode, u->attempt, now,
							 u->payment_wait_since,
							 pg_prng_double(&pg_global_prng_state), next);
	*reason = u->errmsg;
	if (st == SU_NEXT_REJECTED && u->errcode == WX_ERR_TRADE_PAYMENT_NOT_FOUND)
		*reason = psprintf("WeChat did not find the payment within shopping_upload.payment_wait "
						   "(%d s after its first 10060001): check the order's key (transaction_id, "
						   "or mchid and out_trade_no) and that the payment was made through this "
						   "Mini Program; shopping_upload.upload_trade_shipping(order_id) tries again. WeChat said: %s",
						   limits.payment_wait_s, u->errmsg ? u->errmsg : "");
	return su_retry_state_name(st);
}

/*
 * The row is due again at once, whatever the answer planned: a change
 * written while the request was in flight (its version), or a reship()
 * made since the body was found to need one.
 */
#define REDO \
	"(s.version OPERATOR(pg_catalog.<>) u.version" \
	" OR (u.state OPERATOR(pg_catalog.=) 'needs_reship' AND s.reship_allowed))"

/* su_trade_record()'s RETURNING after su_queue_mark_recorded()'s three */
enum
{
	Anum_trecorded_check_due_at = 4,
	Anum_trecorded_confirm_due_at
};

/* get_order once this long after an accepted upload (or reconcile_interval) */
#define SU_TRADE_CHECK_AFTER_S	60

/*
 * The receipt reminder is due once an accepted upload (or one found
 * unchanged) completed an express shipping whose parcel is signed for
 * (shippings.received_at), unless it was done or planned.
 */
#define CONFIRM_NOW \
	"(u.ok AND s.confirm_notified_at IS NULL AND s.confirm_due_at IS NULL" \
	" AND (u.completes OR s.finish_count OPERATOR(pg_catalog.>=) 1)" \
	" AND coalesce(CAST(u.body AS pg_catalog.jsonb), s.uploaded_body)" \
	"  OPERATOR(pg_catalog.->>) 'logistics_type' OPERATOR(pg_catalog.=) '1'" \
	" AND EXISTS (SELECT FROM " SU_SCHEMA ".shippings h" \
	"  WHERE h.order_id OPERATOR(pg_catalog.=) s.order_id AND h.received_at IS NOT NULL))"

int
su_trade_record(SuUpload **us, int n, bool *recorded, TimestampTz *earliest)
{
	static SPIPlanPtr plan = NULL;
#define NCOLS 11
	Oid			types[NCOLS + 1] = {INT8ARRAYOID, INT8ARRAYOID, TEXTARRAYOID,
		TIMESTAMPTZARRAYOID, BOOLARRAYOID, INT4ARRAYOID, TEXTARRAYOID,
	BOOLARRAYOID, BOOLARRAYOID, TEXTARRAYOID, BOOLARRAYOID, FLOAT8OID};
	Datum		args[NCOLS + 1];
	SuRetryLimits limits = su_retry_limits();
	Datum	   *v[NCOLS];
	bool	   *nul[NCOLS];
	TimestampTz now = GetCurrentTimestamp();
	int			n_recorded;

	/*
	 * As su_shipping_record(): a change while in flight is due at once (its
	 * body is decided again: a re-ship or not).  What an accepted body did
	 * is kept whatever: it completed the shipping (finish_count), it was
	 * the one re-ship (reship_used; not when WeChat changed nothing,
	 * 10060023), and the body itself, to tell a later change from none.  A
	 * body not sent (u.sent_none: needs_reship, or unchanged) gives its
	 * claim's attempt back.
	 */
	su_kept_plan(&plan,
				 "WITH w AS (WITH l AS (SELECT h.order_id FROM " SU_SCHEMA ".trade_state h"
				 "  WHERE h.order_id OPERATOR(pg_catalog.=) ANY ($1)"
				 "  FOR UPDATE SKIP LOCKED)"
				 " UPDATE " SU_SCHEMA ".trade_state s SET"
				 " state = CASE WHEN " REDO " THEN 'pending' ELSE u.state END,"
				 " next_attempt_at = CASE WHEN " REDO " THEN pg_catalog.now() ELSE u.next END,"
				 " uploaded_version = CASE WHEN u.ok"
				 "  THEN greatest(s.uploaded_version, u.version)"
				 "  ELSE s.uploaded_version END,"
				 " attempts = CASE WHEN u.unsent"
				 "  THEN greatest(s.attempts OPERATOR(pg_catalog.-) 1, 0) ELSE s.attempts END,"
				 " last_errcode = u.errcode, last_errmsg = u.errmsg,"
				 " payment_wait_since = CASE WHEN u.errcode OPERATOR(pg_catalog.=) 10060001"
				 "  THEN coalesce(s.payment_wait_since, pg_catalog.now()) ELSE NULL END,"
				 " finish_count = CASE WHEN u.ok AND u.reship AND u.errcode OPERATOR(pg_catalog.=) 0 THEN 2"
				 "  WHEN u.ok AND u.completes THEN greatest(s.finish_count, 1)"
				 "  ELSE s.finish_count END,"
				 " reship_used = s.reship_used OR (u.ok AND u.reship AND u.errcode OPERATOR(pg_catalog.=) 0),"
				 " reship_allowed = s.reship_allowed AND NOT (u.ok AND u.reship),"
				 " uploaded_body = CASE WHEN u.ok AND u.body IS NOT NULL"
				 "  THEN CAST(u.body AS pg_catalog.jsonb) OPERATOR(pg_catalog.-) 'upload_time'"
				 "  ELSE s.uploaded_body END,"
				 " check_due_at = CASE WHEN u.ok AND NOT u.unsent"
				 "  THEN least(s.check_due_at, pg_catalog.now() OPERATOR(pg_catalog.+)"
				 "   pg_catalog.make_interval(secs => $12)) ELSE s.check_due_at END,"
				 " confirm_due_at = CASE WHEN " CONFIRM_NOW " THEN pg_catalog.now()"
				 "  ELSE s.confirm_due_at END,"
				 " updated_at = pg_catalog.now()"
				 " FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2),"
				 "  pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5),"
				 "  pg_catalog.unnest($6), pg_catalog.unnest($7), pg_catalog.unnest($8),"
				 "  pg_catalog.unnest($9), pg_catalog.unnest($10), pg_catalog.unnest($11))"
				 "  AS u(order_id, version, state, next, ok, errcode, errmsg, reship,"
				 "   completes, body, unsent), l"
				 " WHERE s.order_id OPERATOR(pg_catalog.=) u.order_id"
				 " AND l.order_id OPERATOR(pg_catalog.=) u.order_id"
				 " RETURNING s.order_id, s.next_attempt_at AS hint_at,"
				 "  s.state OPERATOR(pg_catalog.=) u.state AS as_planned,"
				 "  s.check_due_at, s.confirm_due_at),"
				 SU_SQL_HINT_CTES("", SU_HINT_TRADE, "w")
				 ", wg AS (SELECT w.order_id, w.check_due_at AS hint_at FROM w"
				 "  WHERE w.check_due_at IS NOT NULL),"
				 SU_SQL_HINT_CTES("g", SU_HINT_TRADE_CHECK, "wg")
				 ", wc AS (SELECT w.order_id, w.confirm_due_at AS hint_at FROM w"
				 "  WHERE w.confirm_due_at IS NOT NULL),"
				 SU_SQL_HINT_CTES("c", SU_HINT_TRADE_CONFIRM, "wc")
				 " SELECT w.order_id, w.hint_at, w.as_planned, w.check_due_at,"
				 "  w.confirm_due_at FROM w",
				 NCOLS + 1, types, 0);
	for (int c = 0; c < NCOLS; c++)
	{
		v[c] = palloc(sizeof(Datum) * n);
		nul[c] = palloc0(sizeof(bool) * n);
	}
	for (int i = 0; i < n; i++)
	{
		SuUpload   *u = us[i];
		TimestampTz next = 0;
		char	   *reason = u->errmsg;
		bool		ok;

		if (u->deferred)
			next = 0;			/* needs_reship, or unchanged: nothing planned */
		else
			u->next_state = trade_next_state(u, now, &next, &reason);
		ok = (u->cls == SU_CLASS_OK);
		v[0][i] = Int64GetDatum(u->order_id);
		v[1][i] = Int64GetDatum(u->version);
		v[2][i] = CStringGetTextDatum(u->next_state);
		v[3][i] = TimestampTzGetDatum(next);
		nul[3][i] = (next == 0);
		v[4][i] = BoolGetDatum(ok);
		v[5][i] = Int32GetDatum(u->errcode);
		if (reason)
			v[6][i] = CStringGetTextDatum(reason);
		else
			nul[6][i] = true;
		v[7][i] = BoolGetDatum(u->reship);
		v[8][i] = BoolGetDatum(u->completes);
		if (ok && u->sent && u->body)
			v[9][i] = CStringGetTextDatum(u->body);
		else
			nul[9][i] = true;
		v[10][i] = BoolGetDatum(u->deferred);
		recorded[i] = false;
	}
	args[0] = su_array(v[0], NULL, n, INT8OID);
	args[1] = su_array(v[1], NULL, n, INT8OID);
	args[2] = su_array(v[2], NULL, n, TEXTOID);
	args[3] = su_array(v[3], nul[3], n, TIMESTAMPTZOID);
	args[4] = su_array(v[4], NULL, n, BOOLOID);
	args[5] = su_array(v[5], NULL, n, INT4OID);
	args[6] = su_array(v[6], nul[6], n, TEXTOID);
	args[7] = su_array(v[7], NULL, n, BOOLOID);
	args[8] = su_array(v[8], NULL, n, BOOLOID);
	args[9] = su_array(v[9], nul[9], n, TEXTOID);
	args[10] = su_array(v[10], NULL, n, BOOLOID);
	/* get_order once shortly after each accepted upload */
	args[11] = Float8GetDatum((double) Min(SU_TRADE_CHECK_AFTER_S, limits.reconcile_s));
#undef NCOLS
	if (SPI_execute_plan(plan, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not record the outcome of %d trade shipping uploads", n);
	n_recorded = su_queue_mark_recorded(us, n, recorded, earliest, SU_DUE_TRADE);
	for (uint64 r = 0; r < SPI_processed && earliest; r++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc,
									  Anum_trecorded_check_due_at, &isnull);

		if (!isnull)
			su_earlier(&earliest[SU_DUE_TRADE_CHECK], DatumGetTimestampTz(d));
		d = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc,
						  Anum_trecorded_confirm_due_at, &isnull);
		if (!isnull)
			su_earlier(&earliest[SU_DUE_TRADE_CONFIRM], DatumGetTimestampTz(d));
	}
	SPI_freetuptable(SPI_tuptable);
	if (n_recorded < n)
	{
		n_recorded += su_queue_mark_gone(us, n, recorded, args[0], SU_DUE_TRADE);
		SPI_freetuptable(SPI_tuptable);
	}
	return n_recorded;
}

bool
su_trade_reship(int64 order_id)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[1] = {INT8OID};
	Datum		args[1] = {Int64GetDatum(order_id)};

	/*
	 * Allowed once the shipping was complete and accepted, or a change waits
	 * for it (a new delivery_mode or logistics_type), and the re-ship not
	 * used: the row is due now, and its body goes as the re-ship (a
	 * request in flight keeps its lease; the record makes it due).
	 */
	su_kept_plan(&plan, SU_SQL_HINTED(SU_HINT_TRADE,
									  "UPDATE " SU_SCHEMA ".trade_state s SET reship_allowed = true,"
									  " state = CASE WHEN " SU_SQL_IN_FLIGHT("s") " THEN s.state ELSE 'pending' END,"
									  " next_attempt_at = CASE WHEN " SU_SQL_IN_FLIGHT("s")
									  "  THEN s.next_attempt_at ELSE pg_catalog.now() END,"
									  " attempts = 0, updated_at = pg_catalog.now()"
									  " WHERE s.order_id OPERATOR(pg_catalog.=) $1"
									  " AND (s.finish_count OPERATOR(pg_catalog.>=) 1"
									  "  OR s.state OPERATOR(pg_catalog.=) 'needs_reship')"
									  " AND NOT s.reship_used"
									  " RETURNING s.order_id, s.next_attempt_at AS hint_at",
									  "w.order_id"),
				 1, types, 0);
	if (SPI_execute_plan(plan, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not allow the re-ship of order " INT64_FORMAT, order_id);
	if (SPI_processed == 0)
		return false;
	su_queue_wake_at_commit(SU_DUE_TRADE);
	return true;
}

/* ---------------------------------------------------------------------
 * get_order (the worker's reconciliation) and the receipt reminder: each
 * with a due column of trade_state, as verify's of order_state
 * ---------------------------------------------------------------------
 */

enum
{
	Anum_fclaim_order_id = 1,
	Anum_fclaim_version,
	Anum_fclaim_attempts
};

/*
 * The claim of a follow-up: column col's due rows (hint kind), leased (col
 * set to the lease's end, attempts col counted).  One request per payment
 * in flight: a row whose upload is in flight waits for its answer (its
 * hint is moved to the upload's lease end; the record makes it due).
 */
#define FOLLOWUP_CLAIM_SQL(kind, col, attempts) \
	"WITH c AS (SELECT d.order_id," \
	"  CASE WHEN " SU_SQL_IN_FLIGHT("d") " THEN greatest(d." col ", d.next_attempt_at)" \
	"  ELSE d." col " END AS " col "," \
	"  coalesce(d." col " OPERATOR(pg_catalog.<=) pg_catalog.now()" \
	"   AND NOT " SU_SQL_IN_FLIGHT("d") ", false) AS go" \
	"  FROM " SU_SCHEMA ".trade_state d" \
	"  WHERE d.order_id OPERATOR(pg_catalog.=) ANY (ARRAY(" \
	"   SELECT t.order_id FROM " SU_SCHEMA ".due t" \
	"   WHERE " SU_SQL_DUE_KIND("t", kind) \
	"   AND t.at OPERATOR(pg_catalog.<=) pg_catalog.now()" \
	"   AND " SU_SQL_IN_SHARE("t", "$3", "$4") \
	"   ORDER BY t.at LIMIT $1 OPERATOR(pg_catalog.*) " SU_CLAIM_CANDIDATES "))" \
	"  LIMIT $1 FOR UPDATE OF d SKIP LOCKED)," \
	" w AS (UPDATE " SU_SCHEMA ".trade_state s SET" \
	" " col " = pg_catalog.now() OPERATOR(pg_catalog.+) pg_catalog.make_interval(secs => $2)," \
	" " attempts " = s." attempts " OPERATOR(pg_catalog.+) 1" \
	" WHERE s.order_id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT c.order_id FROM c WHERE c.go))" \
	" RETURNING s.order_id, s.uploaded_version, s." attempts ", s." col ")," \
	" f AS (SELECT w.order_id, w." col " AS hint_at FROM w" \
	"  UNION ALL SELECT c.order_id, c." col " FROM c WHERE NOT c.go)," \
	SU_SQL_HINT_CTES("", kind, "f") \
	" SELECT w.order_id, w.uploaded_version, w." attempts " FROM w"

static int
followup_claim(SPIPlanPtr *plan, const char *sql, int max,
			   const SuPartition *share, SuClaim *out, int *looked_at)
{
	Oid			types[4] = {INT4OID, FLOAT8OID, INT4OID, INT4OID};
	Datum		args[4] = {Int32GetDatum(max), Float8GetDatum((double) su_lease_s),
	Int32GetDatum(share->n), Int32GetDatum(share->part)};
	bool		isnull;

	su_kept_plan(plan, sql, 4, types, CURSOR_OPT_GENERIC_PLAN);
	if (SPI_execute_plan(*plan, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not claim the payments' follow-up calls");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		Datum		v = SPI_getbinval(tup, desc, Anum_fclaim_version, &isnull);

		out[i].order_id = DatumGetInt64(SPI_getbinval(tup, desc, Anum_fclaim_order_id, &isnull));
		SPI_getbinval(tup, desc, Anum_fclaim_version, &isnull);
		out[i].version = isnull ? 0 : DatumGetInt64(v);
		out[i].attempt = DatumGetInt32(SPI_getbinval(tup, desc, Anum_fclaim_attempts, &isnull));
		out[i].upload_time = 0;
		out[i].queued_at = 0;
	}
	*looked_at = (int) SPI_processed;
	return (int) SPI_processed;
}

int
su_trade_check_claim(int max, const SuPartition *share, SuClaim *out, int *looked_at)
{
	static SPIPlanPtr plan = NULL;

	return followup_claim(&plan, FOLLOWUP_CLAIM_SQL(SU_HINT_TRADE_CHECK, "check_due_at",
													"check_attempts"),
						  max, share, out, looked_at);
}

int
su_trade_confirm_claim(int max, const SuPartition *share, SuClaim *out, int *looked_at)
{
	static SPIPlanPtr plan = NULL;

	return followup_claim(&plan, FOLLOWUP_CLAIM_SQL(SU_HINT_TRADE_CONFIRM, "confirm_due_at",
													"confirm_attempts"),
						  max, share, out, looked_at);
}

/*
 * A follow-up by hand: the order must exist; its trade_state row, if any,
 * stays locked until the call's (short) transaction ends, so that the
 * worker skips it meanwhile.
 */
static void
followup_begin(SPIPlanPtr *plan, const char *sql, int64 order_id, SuUpload *u)
{
	static SPIPlanPtr order_plan = NULL;
	Oid			types[1] = {INT8OID};
	Datum		args[1] = {Int64GetDatum(order_id)};
	bool		isnull;

	su_kept_plan(&order_plan,
				 "SELECT FROM " SU_SCHEMA ".orders o"
				 " WHERE o.order_id OPERATOR(pg_catalog.=) $1",
				 1, types, 0);
	if (SPI_execute_plan(order_plan, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read order " INT64_FORMAT, order_id);
	if (SPI_processed == 0)
		su_order_missing(order_id);
	su_kept_plan(plan, sql, 1, types, 0);
	if (SPI_execute_plan(*plan, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the trade shipping state of order " INT64_FORMAT, order_id);
	u->version = 0;
	u->attempt = 1;
	if (SPI_processed > 0)
	{
		Datum		v = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		u->version = isnull ? 0 : DatumGetInt64(v);
		u->attempt = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
												 2, &isnull)) + 1;
	}
	SPI_freetuptable(SPI_tuptable);
}

TimestampTz
su_trade_check_begin(int64 order_id, SuUpload *u)
{
	static SPIPlanPtr plan = NULL;

	followup_begin(&plan, "SELECT st.uploaded_version, st.check_attempts"
				   " FROM " SU_SCHEMA ".trade_state st"
				   " WHERE st.order_id OPERATOR(pg_catalog.=) $1 FOR UPDATE",
				   order_id, u);
	return 0;					/* a get_order body has no upload_time */
}

TimestampTz
su_trade_confirm_begin(int64 order_id, SuUpload *u)
{
	static SPIPlanPtr plan = NULL;

	followup_begin(&plan, "SELECT st.uploaded_version, st.confirm_attempts"
				   " FROM " SU_SCHEMA ".trade_state st"
				   " WHERE st.order_id OPERATOR(pg_catalog.=) $1 FOR UPDATE",
				   order_id, u);
	return 0;
}

/* the next get_order (retry.c decides), or the receipt reminder's retry */
static TimestampTz
check_next(SuUpload *u, TimestampTz now)
{
	SuRetryLimits limits = su_retry_limits();

	return su_retry_trade_check_next(&limits, u->cls, u->attempt, now,
									 pg_prng_double(&pg_global_prng_state));
}

static TimestampTz
confirm_next(SuUpload *u, TimestampTz now)
{
	SuRetryLimits limits = su_retry_limits();

	if (u->deferred)
		return 0;
	return su_retry_trade_confirm_next(&limits, u->cls, u->attempt, now,
									   pg_prng_double(&pg_global_prng_state));
}

/*
 * Records follow-up answers with statement sql ($1 order_ids, $2 ok, $3
 * errcode, $4 errmsg, $5 next due, $6 result JSON, $7 by hand); the rows'
 * due column for hint kind due.
 */
static int
followup_record(SPIPlanPtr *plan, const char *sql, SuDue due,
				TimestampTz (*next_fn) (SuUpload *u, TimestampTz now),
				SuUpload **us, int n, bool *recorded, TimestampTz *earliest)
{
	Oid			types[7] = {INT8ARRAYOID, BOOLARRAYOID, INT4ARRAYOID, TEXTARRAYOID,
	TIMESTAMPTZARRAYOID, TEXTARRAYOID, BOOLARRAYOID};
	Datum		args[7];
	Datum	   *v[7];
	bool	   *nul[7];
	TimestampTz now = GetCurrentTimestamp();
	int			n_recorded;

	su_kept_plan(plan, sql, 7, types, 0);
	for (int c = 0; c < 7; c++)
	{
		v[c] = palloc(sizeof(Datum) * n);
		nul[c] = palloc0(sizeof(bool) * n);
	}
	for (int i = 0; i < n; i++)
	{
		SuUpload   *u = us[i];
		TimestampTz next = next_fn(u, now);

		v[0][i] = Int64GetDatum(u->order_id);
		v[1][i] = BoolGetDatum(u->cls == SU_CLASS_OK && !u->deferred);
		v[2][i] = Int32GetDatum(u->errcode);
		if (u->errmsg)
			v[3][i] = CStringGetTextDatum(u->errmsg);
		else
			nul[3][i] = true;
		v[4][i] = TimestampTzGetDatum(next);
		nul[4][i] = (next == 0);
		if (u->result)
			v[5][i] = CStringGetTextDatum(u->result);
		else
			nul[5][i] = true;
		v[6][i] = BoolGetDatum(u->by_hand);
		recorded[i] = false;
	}
	args[0] = su_array(v[0], NULL, n, INT8OID);
	args[1] = su_array(v[1], NULL, n, BOOLOID);
	args[2] = su_array(v[2], NULL, n, INT4OID);
	args[3] = su_array(v[3], nul[3], n, TEXTOID);
	args[4] = su_array(v[4], nul[4], n, TIMESTAMPTZOID);
	args[5] = su_array(v[5], nul[5], n, TEXTOID);
	args[6] = su_array(v[6], NULL, n, BOOLOID);
	if (SPI_execute_plan(*plan, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not record the outcome of %d follow-up calls", n);
	n_recorded = su_queue_mark_recorded(us, n, recorded, earliest, due);
	/* a payment sent again (get_order showed it unshipped): its upload is due */
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool		isnull;

		if (SPI_tuptable->tupdesc->natts >= 4 &&
			DatumGetBool(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 4, &isnull)))
			su_earlier(&earliest[SU_DUE_TRADE], now);
	}
	SPI_freetuptable(SPI_tuptable);
	if (n_recorded < n)
	{
		n_recorded += su_queue_mark_gone(us, n, recorded, args[0], due);
		SPI_freetuptable(SPI_tuptable);
	}
	return n_recorded;
}

/*
 * get_order's answer: WeChat's state of the payment kept (order_state,
 * in_complaint, the order object).  The next look: none once the payment is
 * complete (4), refunded (5) or settled; else reconcile_interval later (a
 * failure sooner, with backoff).  A call by hand keeps the worker's plan.
 * A payment WeChat shows awaiting shipment (1) whose shipping we had
 * accepted is sent again, as a first upload (WeChat has no shipping for it,
 * so it is no re-ship): at most twice a payment, so that a payment WeChat
 * keeps losing stays visible (last_errmsg says so) instead of looping.
 */
#define SU_UNSHIPPED_RESENDS_MAX "2"
#define UNSHIPPED \
	"(u.ok AND pg_catalog.jsonb_typeof(CAST(u.result AS pg_catalog.jsonb) OPERATOR(pg_catalog.->) 'order_state')" \
	"  OPERATOR(pg_catalog.=) 'number'" \
	" AND CAST(u.result AS pg_catalog.jsonb) OPERATOR(pg_catalog.->>) 'order_state' OPERATOR(pg_catalog.=) '1'" \
	" AND l.finish_count OPERATOR(pg_catalog.>=) 1 AND l.state OPERATOR(pg_catalog.=) 'uploaded'" \
	" AND l.unshipped_resends OPERATOR(pg_catalog.<) " SU_UNSHIPPED_RESENDS_MAX ")"
#define ORDER_STATE \
	"CASE WHEN pg_catalog.jsonb_typeof(CAST(u.result AS pg_catalog.jsonb) OPERATOR(pg_catalog.->) 'order_state')" \
	"  OPERATOR(pg_catalog.=) 'number'" \
	" THEN CAST(CAST(CAST(u.result AS pg_catalog.jsonb) OPERATOR(pg_catalog.->) 'order_state'" \
	"  AS pg_catalog.numeric) AS pg_catalog.int4) END"

/*
 * An answer newer than what the row holds: a settlement event recorded
 * while a get_order was in flight is not undone by its older answer (a
 * settled payment is complete or refunded, nothing before)
 */
#define FRESH \
	"(u.ok AND u.result IS NOT NULL AND NOT (s.settled_at IS NOT NULL" \
	" AND coalesce(" ORDER_STATE " OPERATOR(pg_catalog.<>) ALL ('{4,5}'), true)))"

int
su_trade_check_record(SuUpload **us, int n, bool *recorded, TimestampTz *earliest)
{
	static SPIPlanPtr plan = NULL;

	return followup_record(&plan,
						   "WITH w AS (WITH l AS (SELECT h.order_id, h.finish_count, h.state, h.unshipped_resends"
						   "  FROM " SU_SCHEMA ".trade_state h"
						   "  WHERE h.order_id OPERATOR(pg_catalog.=) ANY ($1) FOR UPDATE SKIP LOCKED)"
						   " UPDATE " SU_SCHEMA ".trade_state s SET"
						   " wechat_order = CASE WHEN " FRESH
						   "  THEN CAST(u.result AS pg_catalog.jsonb) ELSE s.wechat_order END,"
						   " wechat_order_state = CASE WHEN " FRESH
						   "  THEN " ORDER_STATE " ELSE s.wechat_order_state END,"
						   " in_complaint = CASE WHEN " FRESH " AND"
						   "  pg_catalog.jsonb_typeof(CAST(u.result AS pg_catalog.jsonb) OPERATOR(pg_catalog.->) 'in_complaint')"
						   "  OPERATOR(pg_catalog.=) 'boolean'"
						   "  THEN CAST(CAST(u.result AS pg_catalog.jsonb) OPERATOR(pg_catalog.->>) 'in_complaint' AS pg_catalog.bool)"
						   "  ELSE s.in_complaint END,"
						   " checked_at = CASE WHEN u.ok THEN pg_catalog.now() ELSE s.checked_at END,"
						   " check_errcode = u.errcode, check_errmsg = u.errmsg,"
						   " check_attempts = CASE WHEN u.ok THEN 0 ELSE s.check_attempts END,"
						   " check_due_at = CASE"
						   "  WHEN u.ok AND (" ORDER_STATE " OPERATOR(pg_catalog.=) ANY ('{4,5}')"
						   "   OR s.settled_at IS NOT NULL) THEN NULL"
						   "  WHEN u.by_hand THEN s.check_due_at"
						   "  ELSE u.next END,"
						   " state = CASE WHEN " UNSHIPPED " THEN 'pending' ELSE s.state END,"
						   " next_attempt_at = CASE WHEN " UNSHIPPED " THEN pg_catalog.now()"
						   "  ELSE s.next_attempt_at END,"
						   " finish_count = CASE WHEN " UNSHIPPED " THEN 0 ELSE s.finish_count END,"
						   " uploaded_body = CASE WHEN " UNSHIPPED " THEN NULL ELSE s.uploaded_body END,"
						   " last_errmsg = CASE WHEN " UNSHIPPED
						   "  THEN 'WeChat showed the payment awaiting shipment (get_order order_state 1) after its "
						   "shipping was accepted: sent again, as a first upload (at most " SU_UNSHIPPED_RESENDS_MAX
						   " times a payment)' ELSE s.last_errmsg END,"
						   " unshipped_resends = s.unshipped_resends OPERATOR(pg_catalog.+)"
						   "  CASE WHEN " UNSHIPPED " THEN 1 ELSE 0 END,"
						   " updated_at = pg_catalog.now()"
						   " FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2),"
						   "  pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5),"
						   "  pg_catalog.unnest($6), pg_catalog.unnest($7))"
						   "  AS u(order_id, ok, errcode, errmsg, next, result, by_hand), l"
						   " WHERE s.order_id OPERATOR(pg_catalog.=) u.order_id"
						   " AND l.order_id OPERATOR(pg_catalog.=) u.order_id"
						   " RETURNING s.order_id, s.check_due_at AS hint_at, true AS as_planned,"
						   "  " UNSHIPPED " AS resent, s.next_attempt_at),"
						   SU_SQL_HINT_CTES("", SU_HINT_TRADE_CHECK, "w")
						   ", w2 AS (SELECT w.order_id, w.next_attempt_at AS hint_at FROM w WHERE w.resent),"
						   SU_SQL_HINT_CTES("2", SU_HINT_TRADE, "w2")
						   " SELECT w.order_id, w.hint_at, w.as_planned, w.resent FROM w",
						   SU_DUE_TRADE_CHECK, check_next, us, n, recorded, earliest);
}

/*
 * The receipt reminder's answer: done (10060030 too: it was done before),
 * kept once; a refusal that will not change (not shipped, not express, a
 * received_time before the shipping) ends it, with its errcode; other
 * failures are tried again with backoff.
 */
int
su_trade_confirm_record(SuUpload **us, int n, bool *recorded, TimestampTz *earliest)
{
	static SPIPlanPtr plan = NULL;

	return followup_record(&plan,
						   "WITH w AS (WITH l AS (SELECT h.order_id FROM " SU_SCHEMA ".trade_state h"
						   "  WHERE h.order_id OPERATOR(pg_catalog.=) ANY ($1) FOR UPDATE SKIP LOCKED)"
						   " UPDATE " SU_SCHEMA ".trade_state s SET"
						   " confirm_notified_at = CASE WHEN u.ok"
						   "  THEN coalesce(s.confirm_notified_at, pg_catalog.now()) ELSE s.confirm_notified_at END,"
						   " confirm_errcode = u.errcode, confirm_errmsg = u.errmsg,"
						   " confirm_attempts = CASE WHEN u.ok THEN 0 ELSE s.confirm_attempts END,"
						   " confirm_due_at = CASE WHEN u.ok THEN NULL"
						   "  WHEN u.by_hand THEN s.confirm_due_at ELSE u.next END,"
						   " updated_at = pg_catalog.now()"
						   " FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2),"
						   "  pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5),"
						   "  pg_catalog.unnest($6), pg_catalog.unnest($7))"
						   "  AS u(order_id, ok, errcode, errmsg, next, result, by_hand), l"
						   " WHERE s.order_id OPERATOR(pg_catalog.=) u.order_id"
						   " AND l.order_id OPERATOR(pg_catalog.=) u.order_id"
						   " RETURNING s.order_id, s.confirm_due_at AS hint_at, true AS as_planned),"
						   SU_SQL_HINT_CTES("", SU_HINT_TRADE_CONFIRM, "w")
						   " SELECT w.order_id, w.hint_at, w.as_planned FROM w",
						   SU_DUE_TRADE_CONFIRM, confirm_next, us, n, recorded, earliest);
}
