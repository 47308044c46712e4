/*-------------------------------------------------------------------------
 *
 * functions.c
 *		The SQL-callable wrappers.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <json-c/json.h>

#include "access/detoast.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "catalog/pg_type.h"
#include "json_util.h"
#include "payload.h"
#include "queue.h"
#include "common.h"
#include "retry.h"
#include "settings.h"
#include "shipping.h"
#include "sync_call.h"
#include "trade_app.h"
#include "token.h"
#include "kinds.h"
#include "upload.h"
#include "validate.h"
#include "validate_shipping.h"
#include "validate_trade.h"
#include "extversion.h"
#include "shared.h"
#include "queue_commit.h"

/* utils/builtins.h cannot be included next to json-c (see payload.h) */
extern Datum jsonb_in(PG_FUNCTION_ARGS);
extern text *cstring_to_text(const char *s);
extern char *text_to_cstring(const text *t);

PG_FUNCTION_INFO_V1(su_validate_payload_sql);
PG_FUNCTION_INFO_V1(su_validate_order_sql);
PG_FUNCTION_INFO_V1(su_build_payload_sql);
PG_FUNCTION_INFO_V1(su_import_order_sql);
PG_FUNCTION_INFO_V1(su_upload_shopping_info_sql);
PG_FUNCTION_INFO_V1(su_set_access_token_sql);
PG_FUNCTION_INFO_V1(su_token_cache_sql);
PG_FUNCTION_INFO_V1(su_enqueue_sql);
PG_FUNCTION_INFO_V1(su_requeue_sql);
PG_FUNCTION_INFO_V1(su_claim_sql);
PG_FUNCTION_INFO_V1(su_audit_rows_deleted_sql);
PG_FUNCTION_INFO_V1(su_validate_shipping_payload_sql);
PG_FUNCTION_INFO_V1(su_import_shipping_sql);
PG_FUNCTION_INFO_V1(su_build_shipping_payload_sql);
PG_FUNCTION_INFO_V1(su_build_trade_shipping_payload_sql);
PG_FUNCTION_INFO_V1(su_validate_trade_shipping_payload_sql);
PG_FUNCTION_INFO_V1(su_verify_shopping_info_sql);
PG_FUNCTION_INFO_V1(su_upload_shipping_info_sql);
PG_FUNCTION_INFO_V1(su_upload_trade_shipping_sql);
PG_FUNCTION_INFO_V1(su_reship_sql);
PG_FUNCTION_INFO_V1(su_get_trade_order_sql);
PG_FUNCTION_INFO_V1(su_is_trade_managed_sql);
PG_FUNCTION_INFO_V1(su_refresh_delivery_companies_sql);
PG_FUNCTION_INFO_V1(su_set_msg_jump_path_sql);
PG_FUNCTION_INFO_V1(su_report_special_order_sql);
PG_FUNCTION_INFO_V1(su_notify_confirm_receive_sql);
PG_FUNCTION_INFO_V1(su_claim_waits_sql);
PG_FUNCTION_INFO_V1(su_worker_status_sql);


/* one violation -> one row of the result's tuplestore */
static void
violation_row(void *arg, int errcode, const char *field, const char *errmsg)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) arg;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	values[0] = Int32GetDatum(errcode);
	values[1] = PointerGetDatum(cstring_to_text(errmsg));
	values[2] = PointerGetDatum(cstring_to_text(field));
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/* the validator's stop callback: an interrupt is pending */
static bool
interrupt_pending(void *arg)
{
	(void) arg;
	return INTERRUPTS_PENDING_CONDITION();
}

static void
validate_into(FunctionCallInfo fcinfo, json_object *payload, const char *appid)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	su_validate_payload_ex(payload, appid, violation_row, rsinfo,
						   interrupt_pending, NULL);
	CHECK_FOR_INTERRUPTS();
}

/* validate_payload()'s one row for a payload past the size cap */
static Datum
oversized_row(FunctionCallInfo fcinfo, const char *about, Size size)
{
	char		msg[160];

	snprintf(msg, sizeof(msg), "the payload is %s%zu bytes; a body holds at most %d",
			 about, size, SU_MAX_BODY_BYTES);
	InitMaterializedSRF(fcinfo, 0);
	violation_row(fcinfo->resultinfo, WX_ERR_POST_DATA_TOO_LONG, "", msg);
	return (Datum) 0;
}

/*
 * The payload argument (arg 0) as json-c, or false after returning
 * validate_payload()'s one row for a payload past the size cap.  Past it
 * the payload is refused before any work: jsonb's binary form is near its
 * text's size, a body of at most SU_MAX_BODY_BYTES.
 */
static bool
capped_payload(FunctionCallInfo fcinfo, json_object **payload)
{
	Size		size = toast_raw_datum_size(PG_GETARG_DATUM(0)) - VARHDRSZ;

	if (size > 2 * (Size) SU_MAX_BODY_BYTES)
	{
		oversized_row(fcinfo, "about ", size);
		return false;
	}
	*payload = su_jsonb_to_json(PG_GETARG_JSONB_P(0));
	if (*payload != NULL &&
		(size = strlen(json_object_to_json_string_ext(*payload,
													  JSON_C_TO_STRING_PLAIN |
													  JSON_C_TO_STRING_NOSLASHESCAPE)))
		> SU_MAX_BODY_BYTES)
	{
		oversized_row(fcinfo, "", size);
		return false;
	}
	return true;
}

/*
 * validate_payload(payload jsonb, appid text DEFAULT NULL)
 *		RETURNS TABLE (errcode integer, errmsg text, field text)
 */
Datum
su_validate_payload_sql(PG_FUNCTION_ARGS)
{
	json_object *payload;
	char	   *appid = NULL;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("payload must not be NULL")));
	if (!PG_ARGISNULL(1))
		appid = text_to_cstring(PG_GETARG_TEXT_PP(1));

	if (!capped_payload(fcinfo, &payload))
		return (Datum) 0;
	validate_into(fcinfo, payload, appid);
	return (Datum) 0;
}

/*
 * validate_order(order_id bigint)
 *		RETURNS TABLE (errcode integer, errmsg text, field text)
 */
Datum
su_validate_order_sql(PG_FUNCTION_ARGS)
{
	int64		order_id = PG_GETARG_INT64(0);
	json_object *payload;
	char	   *appid;

	su_require_extension_version();

	SPI_connect();
	payload = su_build_payload(order_id, GetCurrentTimestamp(), &appid, false);
	validate_into(fcinfo, payload, appid);
	SPI_finish();
	return (Datum) 0;
}

/*
 * build_payload(order_id bigint) RETURNS jsonb
 */
Datum
su_build_payload_sql(PG_FUNCTION_ARGS)
{
	int64		order_id = PG_GETARG_INT64(0);
	MemoryContext caller = CurrentMemoryContext;
	json_object *payload;
	Datum		result;

	su_require_extension_version();

	SPI_connect();
	payload = su_build_payload(order_id, GetCurrentTimestamp(), NULL, false);
	MemoryContextSwitchTo(caller);
	result = su_json_to_jsonb(payload);
	SPI_finish();
	PG_RETURN_DATUM(result);
}

/*
 * import_order(payload jsonb, appid text DEFAULT NULL) RETURNS bigint
 */
Datum
su_import_order_sql(PG_FUNCTION_ARGS)
{
	json_object *payload;
	char	   *appid = NULL;
	int64		order_id;

	su_require_extension_version();

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("payload must not be NULL")));
	if (!PG_ARGISNULL(1))
		appid = text_to_cstring(PG_GETARG_TEXT_PP(1));
	payload = su_jsonb_to_json(PG_GETARG_JSONB_P(0));
	SPI_connect();
	order_id = su_import_order(payload, appid);
	SPI_finish();
	PG_RETURN_INT64(order_id);
}

/*
 * upload_shopping_info(order_id bigint, OUT errcode integer, OUT errmsg text,
 *		OUT http_status integer, OUT audit_id bigint)
 */
Datum
su_upload_shopping_info_sql(PG_FUNCTION_ARGS)
{
	int64		order_id = PG_GETARG_INT64(0);
	TupleDesc	desc;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};
	SuSyncResult u;
	HeapTuple	tup;

	su_require_extension_version();

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	su_sync_call(SU_KIND_ORDER, order_id, &u);
	values[0] = Int32GetDatum(u.errcode);
	if (u.errmsg)
		values[1] = PointerGetDatum(cstring_to_text(u.errmsg));
	else
		nulls[1] = true;
	values[2] = Int32GetDatum((int32) u.http_status);
	nulls[2] = !u.sent || u.http_status == 0;
	values[3] = Int64GetDatum(u.audit_id);
	tup = heap_form_tuple(BlessTupleDesc(desc), values, nulls);
	PG_RETURN_DATUM(HeapTupleGetDatum(tup));
}

/*
 * verify_shopping_info(order_id bigint)
 *		RETURNS TABLE (errcode integer, errmsg text, verify_result text)
 */
Datum
su_verify_shopping_info_sql(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int64		order_id = PG_GETARG_INT64(0);
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	SuSyncResult u;

	su_require_extension_version();
	InitMaterializedSRF(fcinfo, 0);

	su_sync_call(SU_KIND_VERIFY, order_id, &u);
	values[0] = Int32GetDatum(u.errcode);
	if (u.errmsg)
		values[1] = PointerGetDatum(cstring_to_text(u.errmsg));
	else
		nulls[1] = true;
	if (u.verify_result)
		values[2] = PointerGetDatum(cstring_to_text(u.verify_result));
	else
		nulls[2] = true;
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return (Datum) 0;
}

/*
 * One call by hand of kind, its outcome as the one row of TABLE (errcode,
 * errmsg, http_status, audit_id); given_at: the timestamp the call is
 * given (0: none).
 */
static Datum
call_row(FunctionCallInfo fcinfo, SuKind kind, int64 order_id, TimestampTz given_at)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};
	SuSyncResult u;

	InitMaterializedSRF(fcinfo, 0);
	su_sync_call_at(kind, order_id, given_at, &u);
	values[0] = Int32GetDatum(u.errcode);
	if (u.errmsg)
		values[1] = PointerGetDatum(cstring_to_text(u.errmsg));
	else
		nulls[1] = true;
	values[2] = Int32GetDatum((int32) u.http_status);
	nulls[2] = !u.sent || u.http_status == 0;
	values[3] = Int64GetDatum(u.audit_id);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return (Datum) 0;
}

/*
 * upload_shipping_info(order_id bigint)
 *		RETURNS TABLE (errcode integer, errmsg text, http_status integer,
 *					   audit_id bigint)
 */
Datum
su_upload_shipping_info_sql(PG_FUNCTION_ARGS)
{
	su_require_extension_version();
	return call_row(fcinfo, SU_KIND_SHIPPING, PG_GETARG_INT64(0), 0);
}

/*
 * upload_trade_shipping(order_id bigint)
 *		RETURNS TABLE (errcode integer, errmsg text, http_status integer,
 *					   audit_id bigint)
 */
Datum
su_upload_trade_shipping_sql(PG_FUNCTION_ARGS)
{
	su_require_extension_version();
	return call_row(fcinfo, SU_KIND_TRADE_SHIPPING, PG_GETARG_INT64(0), 0);
}

/*
 * get_trade_order(order_id bigint) RETURNS jsonb: WeChat's order object
 * (NULL when its answer had none); WeChat's refusal is an error.
 */
Datum
su_get_trade_order_sql(PG_FUNCTION_ARGS)
{
	int64		order_id = PG_GETARG_INT64(0);
	SuSyncResult u;

	su_require_extension_version();
	su_sync_call(SU_KIND_TRADE_ORDER, order_id, &u);
	if (u.errcode != 0)
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("get_order of order " INT64_FORMAT " failed: errcode %d: %s",
						order_id, u.errcode, u.errmsg ? u.errmsg : ""),
				 u.audit_id != 0 ? errdetail("Audit row " INT64_FORMAT ".", u.audit_id) : 0,
				 errhint("10060001: WeChat does not find the payment (its key, or not paid through this Mini Program); "
						 "-1 and 10060012: try again.")));
	if (u.result == NULL)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(u.result)));
}

/*
 * notify_confirm_receive(order_id bigint, received_at timestamptz DEFAULT
 * NULL) RETURNS TABLE (errcode, errmsg, http_status, audit_id)
 */
Datum
su_notify_confirm_receive_sql(PG_FUNCTION_ARGS)
{
	su_require_extension_version();
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("order_id must not be NULL")));
	return call_row(fcinfo, SU_KIND_TRADE_CONFIRM, PG_GETARG_INT64(0),
					PG_ARGISNULL(1) ? 0 : PG_GETARG_TIMESTAMPTZ(1));
}

/* an optional text argument, NULL when NULL */
#define TEXT_ARG_OR_NULL(n) (PG_ARGISNULL(n) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(n)))

/*
 * is_trade_managed(appid text DEFAULT NULL) RETURNS boolean: WeChat's
 * answer, kept in trade_apps.
 */
Datum
su_is_trade_managed_sql(PG_FUNCTION_ARGS)
{
	char	   *appid = TEXT_ARG_OR_NULL(0);
	bool		managed;

	su_require_extension_version();
	SPI_connect();
	managed = su_trade_app_managed(appid);
	SPI_finish();
	PG_RETURN_BOOL(managed);
}

/* refresh_delivery_companies(appid text DEFAULT NULL) RETURNS integer */
Datum
su_refresh_delivery_companies_sql(PG_FUNCTION_ARGS)
{
	char	   *appid = TEXT_ARG_OR_NULL(0);
	int			n;

	su_require_extension_version();
	SPI_connect();
	n = su_trade_app_delivery_companies(appid);
	SPI_finish();
	PG_RETURN_INT32(n);
}

/* set_msg_jump_path(path text, appid text DEFAULT NULL) */
Datum
su_set_msg_jump_path_sql(PG_FUNCTION_ARGS)
{
	char	   *appid = TEXT_ARG_OR_NULL(1);
	json_object *body;

	su_require_extension_version();
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("path must not be NULL"),
				 errhint("An empty path ('') brings back WeChat's own page.")));
	body = json_object_new_object();
	su_json_track(body);
	json_object_object_add(body, "path",
						   json_object_new_string(text_to_cstring(PG_GETARG_TEXT_PP(0))));
	SPI_connect();
	(void) su_trade_app_call(appid, "/wxa/sec/order/set_msg_jump_path", body);
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * report_special_order(order_id bigint, kind text, ship_by timestamptz
 * DEFAULT NULL): opspecialorder, a pre-sale order (ship_by: when it ships,
 * 15 to 330 days after payment) or a test order.
 */
Datum
su_report_special_order_sql(PG_FUNCTION_ARGS)
{
	int64		order_id;
	char	   *kind;
	json_object *body;
	json_object *key;
	json_object *v;
	char	   *appid = NULL;
	TimestampTz received;
	int			logistics;
	const char *id;

	su_require_extension_version();
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("order_id and kind must not be NULL")));
	order_id = PG_GETARG_INT64(0);
	kind = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (strcmp(kind, "presale") != 0 && strcmp(kind, "test") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("kind must be 'presale' or 'test', not \"%s\"", kind)));
	if (strcmp(kind, "presale") == 0 && PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("a pre-sale order needs ship_by, when it will ship"),
				 errdetail("WeChat takes a time 15 to 330 days after the payment (268546001 otherwise).")));
	if (strcmp(kind, "presale") == 0 && PG_GETARG_TIMESTAMPTZ(2) <= GetCurrentTimestamp())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ship_by must lie in the future")));
	SPI_connect();
	key = su_build_trade_query_payload(order_id, &appid, &received, &logistics);
	if (key == NULL)
		su_order_missing(order_id);
	/* WeChat Pay's transaction id, else the merchant's order number */
	id = json_object_object_get_ex(key, "transaction_id", &v) ? json_object_get_string(v) :
		json_object_object_get_ex(key, "merchant_trade_no", &v) ? json_object_get_string(v) : NULL;
	if (id == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("order " INT64_FORMAT " has no transaction_id nor out_trade_no", order_id)));
	body = json_object_new_object();
	su_json_track(body);
	json_object_object_add(body, "order_id", json_object_new_string(id));
	json_object_object_add(body, "type", json_object_new_int(strcmp(kind, "presale") == 0 ? 1 : 2));
	if (strcmp(kind, "presale") == 0)
		json_object_object_add(body, "delay_to",
							   json_object_new_int64(su_unix_seconds(PG_GETARG_TIMESTAMPTZ(2))));
	(void) su_trade_app_call(appid, "/wxa/sec/order/opspecialorder", body);
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * reship(order_id bigint): allows the payment's one re-ship.
 */
Datum
su_reship_sql(PG_FUNCTION_ARGS)
{
	int64		order_id = PG_GETARG_INT64(0);
	Oid			types[1] = {INT8OID};
	Datum		args[1] = {Int64GetDatum(order_id)};
	bool		isnull;
	bool		used;

	su_require_extension_version();
	SPI_connect();
	/* SECURITY DEFINER: a role limited to appids re-ships its own orders only */
	su_check_caller("reship", order_id, GetOuterUserId(), GetSessionUserId());
	if (su_trade_reship(order_id))
	{
		SPI_finish();
		PG_RETURN_VOID();
	}
	if (SPI_execute_with_args("SELECT st.reship_used FROM " SU_SCHEMA ".trade_state st"
							  " WHERE st.order_id OPERATOR(pg_catalog.=) $1",
							  1, types, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the trade shipping state of order " INT64_FORMAT, order_id);
	used = SPI_processed > 0 &&
		DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (used)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the payment of order " INT64_FORMAT " has used its one re-ship", order_id),
				 errdetail("WeChat allows one re-ship a payment (10060003 afterwards).")));
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("the shipping of order " INT64_FORMAT " was not complete and accepted by the shipping management service",
					order_id),
			 errdetail("A re-ship is a change after the shipping was complete (unified, or split with is_all_delivered true) and accepted, "
					   "or a new delivery_mode or logistics_type after an accepted upload; any other change is sent as it comes."),
			 errhint("See trade_shipping_state in shopping_upload.order_status.")));
	PG_RETURN_VOID();
}

/*
 * set_access_token(appid text, access_token text, expires_at timestamptz)
 */
Datum
su_set_access_token_sql(PG_FUNCTION_ARGS)
{
	char	   *appid = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *token = text_to_cstring(PG_GETARG_TEXT_PP(1));
	TimestampTz expires_at = PG_GETARG_TIMESTAMPTZ(2);
	Oid			types[3] = {TEXTOID, TEXTOID, TIMESTAMPTZOID};
	Datum		values[3];

	su_require_extension_version();

	if (appid[0] == '\0' || token[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("appid and access_token must not be empty")));
	if (expires_at <= GetCurrentTimestamp())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("expires_at must be in the future")));
	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_GETARG_DATUM(1);
	values[2] = PG_GETARG_DATUM(2);
	SPI_connect();
	if (SPI_execute_with_args("INSERT INTO " SU_SCHEMA ".accounts AS a"
							  " (appid, access_token, token_expires_at)"
							  " VALUES ($1, $2, $3) ON CONFLICT (appid) DO UPDATE"
							  " SET access_token = EXCLUDED.access_token,"
							  " token_expires_at = EXCLUDED.token_expires_at",
							  3, types, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not store the access token");
	SPI_finish();
	su_token_put(appid, token, expires_at);
	PG_RETURN_VOID();
}

/*
 * token_cache() RETURNS SETOF record: the shared cache, without the tokens.
 */
Datum
su_token_cache_sql(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	SuTokenSlot *snap = palloc(sizeof(SuTokenSlot) * SU_MAX_APPIDS);
	int			n = su_token_snapshot(snap);
	TimestampTz now = GetCurrentTimestamp();

	su_require_extension_version();

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < n; i++)
	{
		Datum		values[7];
		bool		nulls[7] = {false, false, false, false, false, false, false};

		values[0] = PointerGetDatum(cstring_to_text(snap[i].appid));
		values[1] = BoolGetDatum(snap[i].token[0] != '\0');
		values[2] = TimestampTzGetDatum(snap[i].expires_at);
		nulls[2] = snap[i].expires_at == 0;
		values[3] = TimestampTzGetDatum(snap[i].fetched_at);
		nulls[3] = snap[i].fetched_at == 0;
		values[4] = Int32GetDatum(snap[i].rejections);
		values[5] = Int32GetDatum(snap[i].force_day == su_beijing_day(now) ? snap[i].force_count : 0);
		values[6] = Int64GetDatum(snap[i].fetches);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * enqueue(order_id bigint): queue an order by hand.
 */
Datum
su_enqueue_sql(PG_FUNCTION_ARGS)
{
	int64		order_id = PG_GETARG_INT64(0);
	bool		found;

	su_require_extension_version();

	SPI_connect();
	found = su_queue_order(order_id);
	SPI_finish();
	if (!found)
		su_order_missing(order_id);
	PG_RETURN_VOID();
}

/*
 * requeue(order_id bigint DEFAULT NULL, states text[] DEFAULT '{dead,rejected}')
 *		RETURNS bigint: puts dead or rejected orders back in the queue.
 */
Datum
su_requeue_sql(PG_FUNCTION_ARGS)
{
	int64		n;

	su_require_extension_version();

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("states must not be NULL")));
	SPI_connect();
	n = su_queue_requeue(PG_ARGISNULL(0) ? 0 : PG_GETARG_INT64(0),
						 PG_ARGISNULL(0), PG_GETARG_DATUM(1));
	SPI_finish();
	PG_RETURN_INT64(n);
}

/*
 * claim(max integer) RETURNS TABLE (order_id, version, attempt, upload_time):
 * the worker's claim, callable from SQL.
 */
Datum
su_claim_sql(PG_FUNCTION_ARGS)
{
	int32		max = PG_GETARG_INT32(0);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	SuClaim    *claims;
	int			n;
	int			looked_at;
	SuPartition all = {1, 0};
	int			nestlevel;

	su_require_extension_version();

	if (max < 1 || max > 10000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max must be between 1 and 10000")));
	InitMaterializedSRF(fcinfo, 0);
	claims = palloc(sizeof(SuClaim) * max);
	SPI_connect();

	/*
	 * Planned as the worker's claim is (worker.c): a plan kept from while
	 * due was small must read its first hints by due_at_idx, not all of them.
	 */
	nestlevel = NewGUCNestLevel();
	(void) set_config_option("enable_bitmapscan", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("enable_seqscan", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	n = su_queue_claim(max, &all, claims, &looked_at);
	AtEOXact_GUC(true, nestlevel);
	SPI_finish();
	for (int i = 0; i < n; i++)
	{
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};

		values[0] = Int64GetDatum(claims[i].order_id);
		values[1] = Int64GetDatum(claims[i].version);
		values[2] = Int32GetDatum(claims[i].attempt);
		values[3] = TimestampTzGetDatum(claims[i].upload_time);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PG_RETURN_VOID();
}

/*
 * claim_waits() RETURNS TABLE (kind text, waiting_for text, since timestamptz):
 * the kinds whose claims wait, and for what (a table locked by another
 * transaction), as the worker last found them.
 */
Datum
su_claim_waits_sql(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	if (su_shared == NULL)
		return (Datum) 0;
	for (int kind = 0; kind < SU_KINDS; kind++)
	{
		char		table[sizeof(su_shared->workers[0].claim_wait[0])];
		TimestampTz since = 0;
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		/* the earliest wait of this database's workers */
		table[0] = '\0';
		SpinLockAcquire(&su_shared->mutex);
		for (int i = 0; i < su_shared->n_workers; i++)
		{
			SuWorkerSlot *w = &su_shared->workers[i];

			if (w->dboid == MyDatabaseId && w->pid != 0 && w->claim_wait[kind][0] != '\0' &&
				(table[0] == '\0' || w->claim_wait_since[kind] < since))
			{
				strlcpy(table, w->claim_wait[kind], sizeof(table));
				since = w->claim_wait_since[kind];
			}
		}
		SpinLockRelease(&su_shared->mutex);
		if (table[0] == '\0')
			continue;
		values[0] = PointerGetDatum(cstring_to_text(su_kind((SuKind) kind)->name));
		values[1] = PointerGetDatum(cstring_to_text(psprintf("a lock on " SU_SCHEMA ".%s", table)));
		values[2] = TimestampTzGetDatum(since);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * worker_status() RETURNS TABLE (database name, state text, workers integer,
 * wanted integer, pids integer[], since timestamptz): every database the
 * launcher knows, as the launcher and the workers left it in shared memory.
 */
Datum
su_worker_status_sql(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TimestampTz now = GetCurrentTimestamp();

	InitMaterializedSRF(fcinfo, 0);
	if (su_shared == NULL)
		return (Datum) 0;
	for (int d = 0; d < SU_MAX_DATABASES; d++)
	{
		SuDbSlot   *db = &su_shared->dbs[d];
		char		name[NAMEDATALEN];
		const char *state;
		Datum		pids[SU_MAX_WORKERS_PER_DATABASE];
		int			n = 0;
		int			wanted;
		TimestampTz since;
		Datum		values[6];
		bool		nulls[6] = {false, false, false, false, false, false};

		SpinLockAcquire(&su_shared->mutex);
		if (d >= su_shared->n_dbs || db->state == SU_DB_FREE)
		{
			SpinLockRelease(&su_shared->mutex);
			continue;
		}
		strlcpy(name, db->name, sizeof(name));
		since = db->state_since;
		state = db->state == SU_DB_LOOK ? "looking" :
			db->state == SU_DB_SERVED ? "served" :
			db->state == SU_DB_NO_EXTENSION ? "no_extension" :
			db->state == SU_DB_EXCLUDED ? "excluded" : "dropped";
		wanted = db->state == SU_DB_LOOK ? 1 :
			db->state == SU_DB_SERVED ? su_workers_per_database : 0;
		if (db->paused_until > now)
			state = "paused";
		else if (db->no_slot && su_db_has_extension(db))
			state = "no_slot";
		for (int i = 0; i < su_shared->n_workers && n < (int) lengthof(pids); i++)
			if (su_shared->workers[i].dboid == db->dboid && su_shared->workers[i].pid != 0)
				pids[n++] = Int32GetDatum((int32) su_shared->workers[i].pid);
		SpinLockRelease(&su_shared->mutex);

		values[0] = PointerGetDatum(palloc0(NAMEDATALEN));
		strlcpy(DatumGetPointer(values[0]), name, NAMEDATALEN);
		values[1] = PointerGetDatum(cstring_to_text(state));
		values[2] = Int32GetDatum(n);
		values[3] = Int32GetDatum(wanted);
		values[4] = PointerGetDatum(construct_array(pids, n, INT4OID, sizeof(int32),
													true, TYPALIGN_INT));
		values[5] = TimestampTzGetDatum(since);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * audit_rows_deleted() RETURNS bigint: audit rows the worker deleted past
 * retention since the server started (0 without the preload).
 */
Datum
su_audit_rows_deleted_sql(PG_FUNCTION_ARGS)
{
	uint64		deleted = 0;
	int			found = -1;

	(void) fcinfo;
	if (su_shared == NULL)
		PG_RETURN_INT64(0);

	SpinLockAcquire(&su_shared->mutex);
	for (int d = 0; d < su_shared->n_dbs; d++)
		if (su_shared->dbs[d].state != SU_DB_FREE && su_shared->dbs[d].dboid == MyDatabaseId)
			found = d;
	SpinLockRelease(&su_shared->mutex);
	/* not under the spinlock: a 64-bit atomic may be one */
	if (found >= 0)
		deleted = pg_atomic_read_u64(&su_shared->dbs[found].audit_deleted);
	PG_RETURN_INT64((int64) deleted);
}

/*
 * validate_shipping_payload(payload jsonb, appid text DEFAULT NULL)
 *		RETURNS TABLE (errcode integer, errmsg text, field text)
 *
 * When the payload's order_key finds a stored order (for appid, as
 * import_shipping() finds it), its items are the ones a split shipment may
 * hold; else that rule is skipped.
 */
Datum
su_validate_shipping_payload_sql(PG_FUNCTION_ARGS)
{
	MemoryContext caller = CurrentMemoryContext;
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	json_object *payload;
	char	   *appid = NULL;
	char	  **ids = NULL;
	int			n_ids = 0;
	int64		order_id;

	su_require_extension_version();

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("payload must not be NULL")));
	if (!PG_ARGISNULL(1))
		appid = text_to_cstring(PG_GETARG_TEXT_PP(1));

	if (!capped_payload(fcinfo, &payload))
		return (Datum) 0;

	SPI_connect();
	order_id = su_find_order_by_key(payload, appid, true, true);
	if (order_id != 0)
		ids = su_order_item_ids(order_id, caller, &n_ids);
	SPI_finish();

	InitMaterializedSRF(fcinfo, 0);
	su_validate_shipping(payload, (const char *const *) ids, (size_t) n_ids,
						 violation_row, rsinfo, interrupt_pending, NULL);
	CHECK_FOR_INTERRUPTS();
	return (Datum) 0;
}

/*
 * import_shipping(payload jsonb, appid text DEFAULT NULL) RETURNS bigint
 */
Datum
su_import_shipping_sql(PG_FUNCTION_ARGS)
{
	json_object *payload;
	char	   *appid = NULL;
	int64		order_id;

	su_require_extension_version();

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("payload must not be NULL")));
	if (!PG_ARGISNULL(1))
		appid = text_to_cstring(PG_GETARG_TEXT_PP(1));
	payload = su_jsonb_to_json(PG_GETARG_JSONB_P(0));
	SPI_connect();
	order_id = su_import_shipping(payload, appid);
	SPI_finish();
	PG_RETURN_INT64(order_id);
}

/*
 * build_shipping_payload(order_id bigint) RETURNS jsonb
 */
/* a shipping body of order_id, built now, as jsonb */
static Datum
built_shipping_body(int64 order_id, bool trade)
{
	MemoryContext caller = CurrentMemoryContext;
	json_object *payload;
	Datum		result;

	su_require_extension_version();

	SPI_connect();
	payload = trade ?
		su_build_trade_shipping_payload(order_id, GetCurrentTimestamp()) :
		su_build_shipping_payload(order_id, GetCurrentTimestamp());
	MemoryContextSwitchTo(caller);
	result = su_json_to_jsonb(payload);
	SPI_finish();
	return result;
}

Datum
su_build_shipping_payload_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_DATUM(built_shipping_body(PG_GETARG_INT64(0), false));
}

/*
 * build_trade_shipping_payload(order_id bigint) RETURNS jsonb
 */
Datum
su_build_trade_shipping_payload_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_DATUM(built_shipping_body(PG_GETARG_INT64(0), true));
}

/*
 * validate_trade_shipping_payload(payload jsonb, appid text DEFAULT NULL)
 *		RETURNS TABLE (errcode integer, errmsg text, field text)
 *
 * appid: the app the body is for; today's rules are the same for every app
 * (delivery_companies is WeChat's one list).
 */
Datum
su_validate_trade_shipping_payload_sql(PG_FUNCTION_ARGS)
{
	MemoryContext caller = CurrentMemoryContext;
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	json_object *payload;
	char	  **ids;
	int			n_ids = 0;

	su_require_extension_version();

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("payload must not be NULL")));

	if (!capped_payload(fcinfo, &payload))
		return (Datum) 0;

	SPI_connect();
	ids = su_delivery_ids(caller, &n_ids);
	SPI_finish();

	InitMaterializedSRF(fcinfo, 0);
	su_validate_trade_shipping(payload, (const char *const *) ids, (size_t) n_ids,
							   violation_row, rsinfo, interrupt_pending, NULL);
	CHECK_FOR_INTERRUPTS();
	return (Datum) 0;
}
