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

#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "queue.h"
#include "shopping_upload.h"

#define BEIJING_OFFSET_USECS (8 * USECS_PER_HOUR)

static SPIPlanPtr begin_plan = NULL;
static SPIPlanPtr record_plan = NULL;

static SPIPlanPtr
keep_plan(SPIPlanPtr *cache, const char *sql, int nargs, Oid *types)
{
	if (*cache == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(sql, nargs, types);

		if (plan == NULL || SPI_keepplan(plan) != 0)
			elog(ERROR, "could not prepare \"%s\": %s", sql,
				 SPI_result_code_string(SPI_result));
		*cache = plan;
	}
	return *cache;
}

TimestampTz
su_queue_begin(int64 order_id, int64 *version, int *attempt)
{
	Oid			types[1] = {INT8OID};
	Datum		args[1] = {Int64GetDatum(order_id)};
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;

	keep_plan(&begin_plan,
			  "INSERT INTO " SU_SCHEMA ".order_state AS s"
			  " (order_id, last_upload_time, attempts)"
			  " SELECT o.order_id, date_trunc('milliseconds', clock_timestamp()), 1"
			  " FROM " SU_SCHEMA ".orders o WHERE o.order_id = $1"
			  " ON CONFLICT (order_id) DO UPDATE SET"
			  " last_upload_time = greatest(EXCLUDED.last_upload_time,"
			  "  s.last_upload_time + interval '1 millisecond'),"
			  " attempts = s.attempts + 1"
			  " RETURNING last_upload_time, version, attempts",
			  1, types);
	if (SPI_execute_plan(begin_plan, args, NULL, false, 0) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "could not start an attempt on order " INT64_FORMAT, order_id);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("order " INT64_FORMAT " does not exist", order_id),
				 errhint("Orders are rows of shopping_upload.orders.")));
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
			*next = ((now + BEIJING_OFFSET_USECS) / USECS_PER_DAY + 1) * USECS_PER_DAY
				- BEIJING_OFFSET_USECS;
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
su_queue_record(SuUpload *u)
{
	Oid			types[8] = {INT8OID, INT8OID, TEXTOID, TIMESTAMPTZOID, BOOLOID,
	INT4OID, TEXTOID, INT8OID};
	Datum		values[8];
	char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	TimestampTz next;
	const char *state = su_queue_next_state(u, GetCurrentTimestamp(), &next);

	keep_plan(&record_plan,
			  "UPDATE " SU_SCHEMA ".order_state SET"
			  " state = CASE WHEN version = $2 THEN $3 ELSE state END,"
			  " next_attempt_at = CASE WHEN version = $2 THEN $4 ELSE next_attempt_at END,"
			  " lease_until = CASE WHEN version = $2 THEN NULL ELSE lease_until END,"
			  " uploaded_version = CASE WHEN $5 THEN greatest(uploaded_version, $2)"
			  "  ELSE uploaded_version END,"
			  " last_errcode = $6, last_errmsg = $7, last_audit_id = $8,"
			  " updated_at = now()"
			  " WHERE order_id = $1",
			  8, types);
	values[0] = Int64GetDatum(u->order_id);
	values[1] = Int64GetDatum(u->version);
	values[2] = CStringGetTextDatum(state);
	values[3] = TimestampTzGetDatum(next);
	if (next == 0)
		nulls[3] = 'n';
	values[4] = BoolGetDatum(u->cls == SU_CLASS_OK);
	values[5] = Int32GetDatum(u->errcode);
	values[6] = u->errmsg ? CStringGetTextDatum(u->errmsg) : (Datum) 0;
	if (u->errmsg == NULL)
		nulls[6] = 'n';
	values[7] = Int64GetDatum(u->audit_id);
	if (SPI_execute_plan(record_plan, values, nulls, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not record the outcome of order " INT64_FORMAT,
			 u->order_id);
}
