/*-------------------------------------------------------------------------
 *
 * queue.c
 *		Where every order stands: shopping_upload.order_state, one row per
 *		order, written by the queueing trigger, by upload_shopping_info() and
 *		by the worker.
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
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "queue.h"
#include "shopping_upload.h"

static SPIPlanPtr begin_plan = NULL;
static SPIPlanPtr record_plan = NULL;

TimestampTz
su_queue_begin(int64 order_id, int64 *version, int *attempt)
{
	Oid			types[1] = {INT8OID};
	Datum		args[1] = {Int64GetDatum(order_id)};
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;

	su_kept_plan(&begin_plan,
				 "INSERT INTO " SU_SCHEMA ".order_state AS s"
				 " (order_id, last_upload_time, attempts)"
				 " SELECT o.order_id, date_trunc('milliseconds', clock_timestamp()), 1"
				 " FROM " SU_SCHEMA ".orders o WHERE o.order_id = $1"
				 " ON CONFLICT (order_id) DO UPDATE SET"
				 " last_upload_time = greatest(EXCLUDED.last_upload_time,"
				 "  s.last_upload_time + interval '1 millisecond'),"
				 " attempts = s.attempts + 1"
				 " RETURNING last_upload_time, version, attempts",
				 1, types, 0);
	if (SPI_execute_plan(begin_plan, args, NULL, false, 0) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "could not start an attempt on order " INT64_FORMAT, order_id);
	if (SPI_processed == 0)
		su_order_missing(order_id);
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	*version = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
	*attempt = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
	return DatumGetTimestampTz(SPI_getbinval(tup, desc, 1, &isnull));
}

/* exponential backoff with jitter: base * 2^(attempt-1), capped, times [0.5, 1) */
static int64
backoff_usecs(int attempt)
{
	double		ms = su_retry_base_ms;

	for (int i = 1; i < attempt && ms < su_retry_max_ms; i++)
		ms *= 2;
	if (ms > su_retry_max_ms)
		ms = su_retry_max_ms;
	ms *= 0.5 + pg_prng_double(&pg_global_prng_state) / 2;
	return (int64) (ms * 1000);
}

const char *
su_queue_next_state(SuUpload *u, TimestampTz now, TimestampTz *next)
{
	*next = 0;
	switch (u->cls)
	{
		case SU_CLASS_OK:
			return "uploaded";
		case SU_CLASS_RETRY:
		case SU_CLASS_REFRESH_TOKEN:
			if (u->attempt >= su_max_attempts)
				return "dead";
			*next = now + (u->cls == SU_CLASS_RETRY ? backoff_usecs(u->attempt) : 0);
			return "retrying";
		case SU_CLASS_QUOTA_MINUTE:
			*next = now + 60 * USECS_PER_SEC;
			return "retrying";
		case SU_CLASS_QUOTA_DAY:
			/* the next midnight in Beijing (UTC+8) */
			*next = ((now + SU_BEIJING_OFFSET_USECS) / USECS_PER_DAY + 1) * USECS_PER_DAY
				- SU_BEIJING_OFFSET_USECS;
			return "held";
		case SU_CLASS_CONFIG:
			*next = now + (int64) su_config_retry_s * USECS_PER_SEC;
			return "held";
		case SU_CLASS_DATA:
		case SU_CLASS_UNKNOWN:
			break;
	}
	return "rejected";
}

void
su_queue_record(SuUpload **us, int n)
{
	Oid			types[7] = {INT8ARRAYOID, INT8ARRAYOID, TEXTARRAYOID,
	TIMESTAMPTZARRAYOID, BOOLARRAYOID, INT4ARRAYOID, TEXTARRAYOID};
	Datum		args[7];
	Datum	   *ids = palloc(sizeof(Datum) * n);
	Datum	   *versions = palloc(sizeof(Datum) * n);
	Datum	   *states = palloc(sizeof(Datum) * n);
	Datum	   *nexts = palloc(sizeof(Datum) * n);
	bool	   *next_nulls = palloc0(sizeof(bool) * n);
	Datum	   *oks = palloc(sizeof(Datum) * n);
	Datum	   *codes = palloc(sizeof(Datum) * n);
	Datum	   *msgs = palloc(sizeof(Datum) * n);
	bool	   *msg_nulls = palloc0(sizeof(bool) * n);
	TimestampTz now = GetCurrentTimestamp();

	if (n == 0)
		return;
	su_kept_plan(&record_plan,
				 "UPDATE " SU_SCHEMA ".order_state s SET"
				 " state = CASE WHEN s.version = u.version THEN u.state ELSE s.state END,"
				 " next_attempt_at = CASE WHEN s.version = u.version THEN u.next"
				 "  ELSE s.next_attempt_at END,"
				 " uploaded_version = CASE WHEN u.ok THEN greatest(s.uploaded_version, u.version)"
				 "  ELSE s.uploaded_version END,"
				 " last_errcode = u.errcode, last_errmsg = u.errmsg, updated_at = now()"
				 " FROM unnest($1, $2, $3, $4, $5, $6, $7)"
				 "  AS u(order_id, version, state, next, ok, errcode, errmsg)"
				 " WHERE s.order_id = u.order_id",
				 7, types, 0);
	for (int i = 0; i < n; i++)
	{
		SuUpload   *u = us[i];
		TimestampTz next;

		ids[i] = Int64GetDatum(u->order_id);
		versions[i] = Int64GetDatum(u->version);
		states[i] = CStringGetTextDatum(su_queue_next_state(u, now, &next));
		nexts[i] = TimestampTzGetDatum(next);
		next_nulls[i] = (next == 0);
		oks[i] = BoolGetDatum(u->cls == SU_CLASS_OK);
		codes[i] = Int32GetDatum(u->errcode);
		if (u->errmsg)
			msgs[i] = CStringGetTextDatum(u->errmsg);
		else
			msg_nulls[i] = true;
	}
	args[0] = su_array(ids, NULL, n, INT8OID);
	args[1] = su_array(versions, NULL, n, INT8OID);
	args[2] = su_array(states, NULL, n, TEXTOID);
	args[3] = su_array(nexts, next_nulls, n, TIMESTAMPTZOID);
	args[4] = su_array(oks, NULL, n, BOOLOID);
	args[5] = su_array(codes, NULL, n, INT4OID);
	args[6] = su_array(msgs, msg_nulls, n, TEXTOID);
	if (SPI_execute_plan(record_plan, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not record the outcome of %d uploads", n);
}

/* ---------------------------------------------------------------------
 * Queueing: the trigger on the order tables and enqueue()
 * ---------------------------------------------------------------------
 */

/* orders queued by the current transaction, so each is queued once */
static HTAB *queued = NULL;
static bool queued_any = false;
static SPIPlanPtr queue_plan = NULL;

static void
queue_xact_callback(XactEvent event, void *arg)
{
	(void) arg;
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (queued_any)
				su_wake_worker();
			/* FALLTHROUGH */
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			queued = NULL;		/* lived in TopTransactionContext */
			queued_any = false;
			break;
		default:
			break;
	}
}

static void
queue_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	(void) mySubid;
	(void) parentSubid;
	(void) arg;
	/* what a rolled back subtransaction queued is gone: forget all of it */
	if (event == SUBXACT_EVENT_ABORT_SUB && queued != NULL)
	{
		hash_destroy(queued);
		queued = NULL;
	}
}

void
su_queue_init(void)
{
	RegisterXactCallback(queue_xact_callback, NULL);
	RegisterSubXactCallback(queue_subxact_callback, NULL);
}

void
su_queue_wake_at_commit(void)
{
	queued_any = true;
}

bool
su_queue_order(int64 order_id, bool exists)
{
	static SPIPlanPtr checked_plan = NULL;
	Oid			types[1] = {INT8OID};
	Datum		args[1] = {Int64GetDatum(order_id)};
	SPIPlanPtr	plan;

#define QUEUE_UPSERT " ON CONFLICT (order_id) DO UPDATE SET state = 'pending'," \
		" version = s.version + 1, attempts = 0," \
		" next_attempt_at = now(), queued_at = now(), updated_at = now()"

	if (exists)
		plan = su_kept_plan(&queue_plan,
							"INSERT INTO " SU_SCHEMA ".order_state AS s (order_id)"
							" VALUES ($1)" QUEUE_UPSERT,
							1, types, 0);
	else
		plan = su_kept_plan(&checked_plan,
							"INSERT INTO " SU_SCHEMA ".order_state AS s (order_id)"
							" SELECT order_id FROM " SU_SCHEMA ".orders WHERE order_id = $1"
							QUEUE_UPSERT,
							1, types, 0);
#undef QUEUE_UPSERT
	if (SPI_execute_plan(plan, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not queue order " INT64_FORMAT, order_id);
	if (SPI_processed > 0)
		queued_any = true;
	return SPI_processed > 0;
}

/* queues order_id unless this transaction did already */
static void
queue_once(int64 order_id, bool exists)
{
	bool		queued_now;

	if (queued == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(int64);
		ctl.entrysize = sizeof(int64);
		ctl.hcxt = TopTransactionContext;
		queued = hash_create("shopping_upload queued orders", 64, &ctl,
							 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	if (hash_search(queued, &order_id, HASH_FIND, NULL) != NULL)
		return;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	queued_now = su_queue_order(order_id, exists);
	SPI_finish();
	/* an order being deleted is not queued: a later insert must queue it */
	if (queued_now)
		hash_search(queued, &order_id, HASH_ENTER, NULL);
}

void
su_queue_forget(int64 order_id)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[1] = {INT8OID};
	Datum		args[1] = {Int64GetDatum(order_id)};

	su_kept_plan(&plan,
				 "DELETE FROM " SU_SCHEMA ".order_state WHERE order_id = $1",
				 1, types, 0);
	if (SPI_execute_plan(plan, args, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not delete the state of order " INT64_FORMAT, order_id);
}

/* an order is gone: so is its state (and this transaction may queue it anew) */
static void
forget_order(int64 order_id)
{
	if (queued != NULL)
		hash_search(queued, &order_id, HASH_REMOVE, NULL);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	su_queue_forget(order_id);
	SPI_finish();
}

static int64
tuple_order_id(TriggerData *td, HeapTuple tuple, bool *isnull)
{
	int			attnum = SPI_fnumber(td->tg_relation->rd_att, "order_id");

	if (attnum <= 0)
		elog(ERROR, "table \"%s\" has no order_id column",
			 RelationGetRelationName(td->tg_relation));
	return DatumGetInt64(heap_getattr(tuple, attnum, td->tg_relation->rd_att,
									  isnull));
}

/*
 * exists: the row written refers to an existing order (a foreign key makes
 * sure of it); a deleted row's order may be gone too.
 */
static void
queue_tuple(TriggerData *td, HeapTuple tuple, bool exists)
{
	bool		isnull;
	int64		order_id = tuple_order_id(td, tuple, &isnull);

	if (!isnull)
		queue_once(order_id, exists);
}

/*
 * AFTER INSERT OR UPDATE OR DELETE ... FOR EACH ROW on orders, sub_orders
 * and items: queue the order whose row changed, once per transaction.  A
 * deleted order takes its state along; AFTER TRUNCATE on orders, all of it.
 */
PG_FUNCTION_INFO_V1(su_queue_trigger);
Datum
su_queue_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	bool		is_orders;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("queue_trigger() must be called as a trigger")));
	is_orders = strcmp(RelationGetRelationName(td->tg_relation), "orders") == 0;

	if (TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (SPI_execute("DELETE FROM " SU_SCHEMA ".order_state", false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not delete the states of truncated orders");
		SPI_finish();
		if (queued != NULL)
		{
			hash_destroy(queued);
			queued = NULL;
		}
		return PointerGetDatum(NULL);
	}
	if (TRIGGER_FIRED_BY_DELETE(td->tg_event) && is_orders)
	{
		bool		isnull;
		int64		order_id = tuple_order_id(td, td->tg_trigtuple, &isnull);

		if (!isnull)
			forget_order(order_id);
		return PointerGetDatum(NULL);
	}
	if (!su_auto_upload)
		return PointerGetDatum(NULL);

	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
		queue_tuple(td, td->tg_trigtuple, true);
	else if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		queue_tuple(td, td->tg_newtuple, true);
		queue_tuple(td, td->tg_trigtuple, false);	/* moved from another
													 * order */
	}
	else if (TRIGGER_FIRED_BY_DELETE(td->tg_event))
		queue_tuple(td, td->tg_trigtuple, false);
	return PointerGetDatum(NULL);
}

/* ---------------------------------------------------------------------
 * The worker's side: claim, recover, trim
 * ---------------------------------------------------------------------
 */

static SPIPlanPtr claim_plan = NULL;
static SPIPlanPtr due_plan = NULL;
static SPIPlanPtr trim_plan = NULL;

int
su_queue_claim(int max, SuClaim *out)
{
	Oid			types[2] = {INT4OID, INT4OID};
	Datum		args[2] = {Int32GetDatum(max), Int32GetDatum(su_lease_s)};
	bool		isnull;

	su_kept_plan(&claim_plan,
				 "WITH due AS (SELECT order_id FROM " SU_SCHEMA ".order_state"
				 "  WHERE next_attempt_at <= now()"
				 "  ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)"
				 " UPDATE " SU_SCHEMA ".order_state s SET state = 'uploading',"
				 " next_attempt_at = now() + make_interval(secs => $2),"
				 " attempts = s.attempts + 1,"
				 " last_upload_time = greatest(date_trunc('milliseconds', clock_timestamp()),"
				 "  s.last_upload_time + interval '1 millisecond'),"
				 " updated_at = now()"
				 " FROM due WHERE s.order_id = due.order_id"
				 " RETURNING s.order_id, s.version, s.attempts, s.last_upload_time",
				 2, types, 0);
	if (SPI_execute_plan(claim_plan, args, NULL, false, 0) != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not claim orders");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;

		out[i].order_id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		out[i].version = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
		out[i].attempt = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
		out[i].upload_time = DatumGetTimestampTz(SPI_getbinval(tup, desc, 4, &isnull));
	}
	return (int) SPI_processed;
}

TimestampTz
su_queue_next_due(void)
{
	bool		isnull;
	Datum		d;

	su_kept_plan(&due_plan,
				 "SELECT min(next_attempt_at) FROM " SU_SCHEMA ".order_state",
				 0, NULL, 0);
	if (SPI_execute_plan(due_plan, NULL, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the queue");
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return isnull ? 0 : DatumGetTimestampTz(d);
}

void
su_queue_recover(void)
{
	if (SPI_execute("UPDATE " SU_SCHEMA ".order_state SET next_attempt_at = now()"
					" WHERE state = 'uploading'", false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not recover the orders of a previous worker");
	if (SPI_processed > 0)
		ereport(LOG,
				(errmsg("shopping_upload worker: %llu orders left uploading by a previous worker are due again",
						(unsigned long long) SPI_processed)));
}

int
su_audit_trim(int limit)
{
	Oid			types[2] = {INT4OID, INT4OID};
	Datum		args[2] = {Int32GetDatum(su_audit_retention_s), Int32GetDatum(limit)};

	if (su_audit_retention_s <= 0)
		return 0;
	su_kept_plan(&trim_plan,
				 "DELETE FROM " SU_SCHEMA ".audit WHERE audit_id IN"
				 " (SELECT audit_id FROM " SU_SCHEMA ".audit"
				 "  WHERE created_at < now() - make_interval(secs => $1)"
				 "  ORDER BY created_at LIMIT $2)",
				 2, types, 0);
	if (SPI_execute_plan(trim_plan, args, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not delete old audit rows");
	return (int) SPI_processed;
}
