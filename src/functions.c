/*-------------------------------------------------------------------------
 *
 * functions.c
 *		The SQL-callable wrappers.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <json-c/json.h>

#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "payload.h"
#include "shopping_upload.h"
#include "validate.h"

/* utils/builtins.h cannot be included next to json-c (see payload.h) */
extern Datum jsonb_in(PG_FUNCTION_ARGS);
extern text *cstring_to_text(const char *s);
extern char *text_to_cstring(const text *t);

PG_FUNCTION_INFO_V1(su_validate_payload_sql);
PG_FUNCTION_INFO_V1(su_validate_order_sql);
PG_FUNCTION_INFO_V1(su_build_payload_sql);
PG_FUNCTION_INFO_V1(su_import_order_sql);

static json_object *
jsonb_to_json_c(Jsonb *jb)
{
	char	   *text = JsonbToCString(NULL, &jb->root, VARSIZE(jb));

	return su_json_parse(text, strlen(text));
}

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

static void
validate_into(FunctionCallInfo fcinfo, json_object *payload, const char *appid)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	su_validate_payload(payload, appid, violation_row, rsinfo);
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
	payload = jsonb_to_json_c(PG_GETARG_JSONB_P(0));
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

	SPI_connect();
	payload = su_build_payload(order_id, GetCurrentTimestamp(), &appid);
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
	char	   *text;
	Datum		result;

	SPI_connect();
	payload = su_build_payload(order_id, GetCurrentTimestamp(), NULL);
	MemoryContextSwitchTo(caller);
	text = su_json_text(payload, NULL);
	result = DirectFunctionCall1(jsonb_in, CStringGetDatum(text));
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

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("payload must not be NULL")));
	if (!PG_ARGISNULL(1))
		appid = text_to_cstring(PG_GETARG_TEXT_PP(1));
	payload = jsonb_to_json_c(PG_GETARG_JSONB_P(0));
	SPI_connect();
	order_id = su_import_order(payload, appid);
	SPI_finish();
	PG_RETURN_INT64(order_id);
}
