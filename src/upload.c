/*-------------------------------------------------------------------------
 *
 * upload.c
 *		One upload attempt end to end, shared by upload_shopping_info() and
 *		the background worker: build the payload, validate it, POST it with
 *		an access token, read WeChat's errcode, write the audit row.
 *
 * The token travels in the URL only; it never reaches a message, a log line
 * or the audit table.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <json-c/json.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/timestamp.h"

#include "payload.h"
#include "retry.h"
#include "shipping.h"
#include "common.h"
#include "settings.h"
#include "token.h"
#include "upload.h"
#include "validate.h"
#include "validate_shipping.h"
#include "validate_trade.h"
#include "spi_util.h"
#include "text_clean.h"
#include "queue_sql.h"

typedef struct FirstViolation
{
	int			count;
	int			errcode;
	char	   *errmsg;
	char	   *field;
} FirstViolation;

static void
keep_first(void *arg, int errcode, const char *field, const char *errmsg)
{
	FirstViolation *v = arg;

	if (v->count++ == 0)
	{
		v->errcode = errcode;
		v->errmsg = pstrdup(errmsg);
		v->field = pstrdup(field);
	}
}

/* the built payload's text and verdict; false if it is not to be sent */
/* the validator's stop callback: an interrupt is pending */
static bool
interrupt_pending(void *arg)
{
	(void) arg;
	return INTERRUPTS_PENDING_CONDITION();
}

/* false, with the refusal set, when the attempt has no appid to go with */
static bool
appid_known(SuUpload *u)
{
	if (u->appid != NULL)
		return true;
	u->errcode = WX_ERR_NO_SECRET;
	u->errmsg = pstrdup("the order has no appid and shopping_upload.appid is not set");
	u->cls = SU_CLASS_CONFIG;
	return false;
}

static bool
check_payload(SuUpload *u, json_object *payload, TimestampTz upload_time,
			  bool oversized)
{
	FirstViolation v = {0};

	u->upload_time = su_format_upload_time(upload_time);
	u->payload = payload;
	if (oversized)
	{
		/* audited small: the order's key and a mark, never the text */
		json_object *small = json_object_new_object();
		json_object *key;

		su_json_track(small);
		if (json_object_object_get_ex(payload, "order_key", &key))
			json_object_object_add(small, "order_key", json_object_get(key));
		json_object_object_add(small, "truncated", json_object_new_boolean(1));
		u->payload = small;
		u->errcode = WX_ERR_POST_DATA_TOO_LONG;
		u->errmsg = psprintf("the order's text is over %d bytes, the most a body may hold; "
							 "it was not built in full nor sent",
							 SU_MAX_BODY_BYTES);
		u->cls = su_retry_classify(u->errcode);
		return false;
	}
	u->body = su_json_text(payload, &u->body_len);
	{
		json_object *key_body = json_object_new_object();
		json_object *part;
		size_t		len;

		if (json_object_object_get_ex(payload, "order_key", &part))
			json_object_object_add(key_body, "order_key", json_object_get(part));
		if (json_object_object_get_ex(payload, "payer", &part))
			json_object_object_add(key_body, "payer", json_object_get(part));
		u->key_body = su_json_text(key_body, &len);
		json_object_put(key_body);
	}
	su_validate_payload_ex(payload, u->appid, keep_first, &v,
						   interrupt_pending, NULL);
	CHECK_FOR_INTERRUPTS();
	if (v.count > 0)
	{
		u->errcode = v.errcode;
		u->errmsg = v.errmsg;
		u->field = v.field;
		u->cls = su_retry_classify(v.errcode);
		return false;
	}
	return appid_known(u);
}

void
su_upload_prepare(int n, SuUpload **us, const TimestampTz *upload_times,
				  MemoryContext *cxts, bool *ok)
{
	int64	   *ids = palloc(sizeof(int64) * n);
	json_object **payloads = palloc(sizeof(json_object *) * n);
	char	  **appids = palloc(sizeof(char *) * n);
	int64	   *versions = palloc(sizeof(int64) * n);
	bool	   *oversized = palloc(sizeof(bool) * n);
	MemoryContext caller = CurrentMemoryContext;

	for (int i = 0; i < n; i++)
		ids[i] = us[i]->order_id;
	su_build_payloads(n, ids, upload_times, cxts, payloads, appids, versions,
					  oversized);
	for (int i = 0; i < n; i++)
	{
		SuUpload   *u = us[i];

		MemoryContextSwitchTo(cxts ? cxts[i] : caller);
		u->sent = false;
		u->cls = SU_CLASS_OK;
		u->appid = appids[i];
		u->gone = (payloads[i] == NULL);
		/* the version whose content was read, which may be newer than claimed */
		if (versions[i] != 0)
			u->version = versions[i];
		ok[i] = !u->gone && check_payload(u, payloads[i], upload_times[i],
										  oversized[i]);
	}
	MemoryContextSwitchTo(caller);
}

void
su_upload_request(SuUpload *u, const char *path, const char *token)
{
	char	   *escaped = su_http_escape(token);

	if (escaped == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	u->token = pstrdup(token);
	memset(&u->req, 0, sizeof(SuHttpRequest));
	u->req.url = psprintf("%s%s?access_token=%s",
						  su_api_base(), path, escaped);
	free(escaped);
	u->req.body = u->body;
	u->req.body_len = u->body_len;
	su_http_settings(&u->req);
	u->req.user = u;
	u->sent = true;
}

static void
transport_failure(SuUpload *u, char *what)
{
	u->errcode = WX_ERR_SYSTEM_BUSY;
	u->errmsg = what;
	u->transport_error = what;
	u->cls = SU_CLASS_RETRY;
}

void
su_upload_conclude(SuUpload *u, SuErrClass (*classify) (int errcode))
{
	SuHttpRequest *req = &u->req;
	char		host[256];
	json_object *answer;
	json_object *v;
	enum json_tokener_error jerr;

	u->http_status = req->http_status;
	u->duration_ms = req->duration_ms;
	su_http_host(req->url, host, sizeof(host));

	if (req->curl_code != 0 && su_http_local_problem(req))
	{
		/* this server's settings stop every request: held, fixed by hand */
		transport_failure(u, su_clean_text_capped(req->error));
		u->sent = false;		/* it never left this server */
		u->errcode = SU_ERR_LOCAL_CONFIG;
		u->cls = su_retry_classify(u->errcode);
	}
	else if (req->curl_code != 0)
		transport_failure(u, su_clean_text_capped(req->error));
	else if (req->http_status != 200)
		transport_failure(u, psprintf("HTTP status %ld from %s",
									  req->http_status, host));
	else
	{
		answer = json_tokener_parse_verbose(req->response ? req->response : "",
											&jerr);
		if (answer == NULL || !json_object_is_type(answer, json_type_object))
			transport_failure(u, psprintf("the answer of %s is not a JSON object (%zu bytes)",
										  host, req->response_len));
		else if (!json_object_object_get_ex(answer, "errcode", &v) ||
				 !json_object_is_type(v, json_type_int))
			transport_failure(u, psprintf("the answer of %s has no integer errcode",
										  host));
		else
		{
			u->errcode = json_object_get_int(v);
			u->errmsg = json_object_object_get_ex(answer, "errmsg", &v) &&
				!json_object_is_type(v, json_type_null) ?
				su_clean_text_capped(json_object_get_string(v)) : NULL;
			/* the kind's reading (the shipping management service has its own) */
			u->cls = classify(u->errcode);
			/* a kind's answer member (get_order's order), as JSON text */
			if (u->result_member && u->cls == SU_CLASS_OK &&
				json_object_object_get_ex(answer, u->result_member, &v) &&
				json_object_is_type(v, json_type_object))
			{
				const char *text = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);

				if (strlen(text) <= SU_RESULT_MAX_BYTES)
					u->result = pstrdup(text);
			}
			/* a verify's verdict, kept verbatim (a string, or the JSON text) */
			if (u->keep_result && u->errcode == WX_ERR_OK &&
				json_object_object_get_ex(answer, "verify_result", &v) &&
				!json_object_is_type(v, json_type_null))
				u->verify_result = su_clean_text_capped(json_object_get_string(v));
		}
		json_object_put(answer);
	}
	su_http_release(req);

	if (u->cls == SU_CLASS_OK)
		su_token_accepted(u->appid);
	else if (u->cls == SU_CLASS_REFRESH_TOKEN)
		su_token_rejected(u->appid, u->token);
}

void
su_upload_token_failed(SuUpload *u, int errcode, const char *errmsg)
{
	u->sent = false;
	u->errcode = errcode;
	u->errmsg = su_clean_text_capped(errmsg);
	u->cls = su_retry_token_failure_class(errcode);
	if (u->cls == SU_CLASS_RETRY)
		u->transport_error = u->errmsg;
}

/* ---------------------------------------------------------------------
 * After the upload: verify, and shipping information
 * ---------------------------------------------------------------------
 */

/* the columns of su_verify_prepare()'s statement */
enum
{
	Anum_verify_order_id = 1,
	Anum_verify_order_number_type,
	Anum_verify_transaction_id,
	Anum_verify_mchid,
	Anum_verify_out_trade_no,
	Anum_verify_openid,
	Anum_verify_appid,
	Anum_verify_uploaded_key
};

/* the first rule a verify body breaks (its fields are the order's), or 0 */
static int
verify_violation(HeapTuple tup, TupleDesc desc, const char **field)
{
	bool		isnull;
	Datum		type = SPI_getbinval(tup, desc, Anum_verify_order_number_type, &isnull);

	*field = "order_key.order_number_type";
	if (isnull || (DatumGetInt32(type) != 1 && DatumGetInt32(type) != 2))
		return WX_ERR_ORDER_KEY_MISSING;
	if (DatumGetInt32(type) == 2)
	{
		*field = "order_key.transaction_id";
		SPI_getbinval(tup, desc, Anum_verify_transaction_id, &isnull);
		if (isnull)
			return WX_ERR_TRANSACTION_ID_MISSING;
	}
	else
	{
		*field = "order_key.mchid";
		SPI_getbinval(tup, desc, Anum_verify_mchid, &isnull);
		if (isnull)
			return WX_ERR_MCHID_MISSING;
		*field = "order_key.out_trade_no";
		SPI_getbinval(tup, desc, Anum_verify_out_trade_no, &isnull);
		if (isnull)
			return WX_ERR_OUT_TRADE_NO_MISSING;
	}
	*field = "payer.openid";
	SPI_getbinval(tup, desc, Anum_verify_openid, &isnull);
	if (isnull)
		return WX_ERR_PAYER_OPENID_MISSING;
	return 0;
}

void
su_verify_prepare(int n, SuUpload **us, const TimestampTz *upload_times,
				  MemoryContext *cxts, bool *ok)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[1] = {INT8ARRAYOID};
	Datum	   *ids = palloc(sizeof(Datum) * n);
	Datum		args[1];
	MemoryContext caller = CurrentMemoryContext;
	SPITupleTable *tt;

	(void) upload_times;		/* a verify body has none */
	for (int i = 0; i < n; i++)
	{
		ids[i] = Int64GetDatum(us[i]->order_id);
		us[i]->keep_result = true;
		us[i]->gone = true;
		us[i]->sent = false;
		us[i]->cls = SU_CLASS_OK;
		ok[i] = false;
	}
	args[0] = su_array(ids, NULL, n, INT8OID);
	su_kept_plan(&plan,
				 "SELECT o.order_id, o.order_number_type, o.transaction_id,"
				 " o.mchid, o.out_trade_no, o.openid, o.appid,"
				 " " SU_SQL_ORDER_UPLOADED_KEY("o")
				 " FROM pg_catalog.unnest($1) AS k(order_id), LATERAL"
				 " (SELECT * FROM " SU_SCHEMA ".orders o"
				 "  WHERE o.order_id OPERATOR(pg_catalog.=) k.order_id OFFSET 0) o",
				 1, types, CURSOR_OPT_GENERIC_PLAN);
	CommandCounterIncrement();
	if (SPI_execute_plan(plan, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the orders to verify");
	tt = SPI_tuptable;
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = tt->vals[r];
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(tup, tt->tupdesc,
													 Anum_verify_order_id, &isnull));

		for (int i = 0; i < n; i++)
		{
			SuUpload   *u = us[i];
			json_object *root;
			json_object *payer;
			const char *field;
			char	   *openid;

			if (u->order_id != id || !u->gone)
				continue;
			MemoryContextSwitchTo(cxts ? cxts[i] : caller);
			u->gone = false;

			/*
			 * Capped before it is built, from the row's sizes: a payer or
			 * key of tens of megabytes is refused without being read.
			 */
			if (su_row_bytes(tup, tt->tupdesc) > SU_MAX_BODY_BYTES)
			{
				u->errcode = WX_ERR_POST_DATA_TOO_LONG;
				u->errmsg = psprintf("the order's key and payer are over %d bytes, the most a body may hold; "
									 "the verify was not built nor sent", SU_MAX_BODY_BYTES);
				u->cls = su_retry_classify(u->errcode);
				break;
			}
			u->appid = SPI_getvalue(tup, tt->tupdesc, Anum_verify_appid);
			if (u->appid == NULL && su_appid != NULL && su_appid[0] != '\0')
				u->appid = pstrdup(su_appid);

			/*
			 * The order_key and payer that the accepted upload sent: the
			 * verify asks about them, whatever the order says now (a payer
			 * changed since, whose upload failed, is not what WeChat has).
			 * An upload accepted before 1.2 kept none: the order's own.
			 */
			u->body = SPI_getvalue(tup, tt->tupdesc, Anum_verify_uploaded_key);
			if (u->body != NULL)
			{
				u->body_len = strlen(u->body);
				ok[i] = appid_known(u);
				break;
			}
			root = json_object_new_object();
			su_json_track(root);
			/* order_number_type and the three key columns that follow it */
			su_add_order_key(root, tup, tt->tupdesc, Anum_verify_order_number_type);
			payer = json_object_new_object();
			json_object_object_add(root, "payer", payer);
			openid = SPI_getvalue(tup, tt->tupdesc, Anum_verify_openid);
			if (openid)
				json_object_object_add(payer, "openid", json_object_new_string(openid));
			u->payload = root;
			u->body = su_json_text(root, &u->body_len);
			if ((u->errcode = verify_violation(tup, tt->tupdesc, &field)) != 0)
			{
				u->field = pstrdup(field);
				u->errmsg = psprintf("the order's %s is missing or invalid: it cannot be verified",
									 field);
				u->cls = su_retry_classify(u->errcode);
			}
			else
				ok[i] = appid_known(u);
			break;
		}
	}
	SPI_freetuptable(tt);
	MemoryContextSwitchTo(caller);
}

void
su_shipping_prepare(int n, SuUpload **us, const TimestampTz *upload_times,
					MemoryContext *cxts, bool *ok)
{
	MemoryContext caller = CurrentMemoryContext;

	for (int i = 0; i < n; i++)
	{
		SuUpload   *u = us[i];
		MemoryContext cxt = cxts ? cxts[i] : caller;
		FirstViolation v = {0};
		json_object *payload;
		char	   *appid = NULL;
		char	  **item_ids;
		int			n_items;
		bool		accepted = false;
		bool		oversized = false;

		/* tracked in SPI's memory: what the flight keeps is copied out */
		payload = su_build_shipping_payload_ex(u->order_id, upload_times[i],
											   true, &appid, &accepted,
											   &oversized);
		MemoryContextSwitchTo(cxt);
		u->sent = false;
		u->cls = SU_CLASS_OK;
		u->gone = (payload == NULL);
		ok[i] = false;
		if (u->gone)
			continue;

		/*
		 * The claim saw the order accepted; the body, read later, may hold a
		 * newer version of it (a new payer) that WeChat does not have yet:
		 * not sent, looked at again shortly.
		 */
		if (oversized)
		{
			u->upload_time = su_format_upload_time(upload_times[i]);
			u->errcode = WX_ERR_POST_DATA_TOO_LONG;
			u->errmsg = psprintf("the shipping information's text is over %d bytes, the most a body may hold; "
								 "it was not built nor sent", SU_MAX_BODY_BYTES);
			u->cls = su_retry_classify(u->errcode);
			continue;
		}
		if (!accepted)
		{
			u->deferred = true;
			u->errcode = WX_ERR_OK;
			u->errmsg = pstrdup("waiting for the order's current version to be accepted");
			continue;
		}
		u->appid = appid ? pstrdup(appid) : NULL;
		u->upload_time = su_format_upload_time(upload_times[i]);
		u->body = su_json_text(payload, &u->body_len);
		u->payload = NULL;		/* the audit reads the body */
		item_ids = su_order_item_ids(u->order_id, cxt, &n_items);
		MemoryContextSwitchTo(cxt);
		su_validate_shipping(payload, (const char *const *) item_ids,
							 (size_t) n_items, keep_first, &v,
							 interrupt_pending, NULL);
		CHECK_FOR_INTERRUPTS();
		if (v.count > 0)
		{
			u->errcode = v.errcode;
			u->errmsg = v.errmsg;
			u->field = v.field;
			u->cls = su_retry_classify(v.errcode);
		}
		else
			ok[i] = appid_known(u);
	}
	MemoryContextSwitchTo(caller);
}

/* su_trade_prepare()'s look at the payment's state, with the body built */
#define TRADE_STATE_SQL \
	"SELECT o.appid, coalesce(st.finish_count, 0), coalesce(st.reship_allowed, false)," \
	" coalesce(st.reship_used, false), st.uploaded_version IS NOT NULL," \
	" st.payment_wait_since," \
	" coalesce(st.uploaded_body OPERATOR(pg_catalog.=) (CAST($2 AS pg_catalog.jsonb)" \
	"  OPERATOR(pg_catalog.-) 'upload_time'), false)," \
	" coalesce((st.uploaded_body OPERATOR(pg_catalog.->) 'delivery_mode')" \
	"  OPERATOR(pg_catalog.<>) (CAST($2 AS pg_catalog.jsonb) OPERATOR(pg_catalog.->) 'delivery_mode')" \
	"  OR (st.uploaded_body OPERATOR(pg_catalog.->) 'logistics_type')" \
	"  OPERATOR(pg_catalog.<>) (CAST($2 AS pg_catalog.jsonb) OPERATOR(pg_catalog.->) 'logistics_type')," \
	"  false)" \
	" FROM " SU_SCHEMA ".orders o" \
	" LEFT JOIN " SU_SCHEMA ".trade_state st ON st.order_id OPERATOR(pg_catalog.=) o.order_id" \
	" WHERE o.order_id OPERATOR(pg_catalog.=) $1"
enum
{
	Anum_tstate_appid = 1,
	Anum_tstate_finish_count,
	Anum_tstate_reship_allowed,
	Anum_tstate_reship_used,
	Anum_tstate_has_uploaded,
	Anum_tstate_payment_wait_since,
	Anum_tstate_unchanged,		/* the body is the accepted one */
	Anum_tstate_mode_changed	/* its delivery_mode or logistics_type is not */
};

/* an integer member of a built body (0: none) */
static int
body_int(json_object *payload, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(payload, key, &v) &&
		json_object_is_type(v, json_type_int) ? json_object_get_int(v) : 0;
}

/*
 * The decision the service's one re-ship asks for, before the body is
 * validated: false when it is not to be sent (deferred: needs_reship, or
 * unchanged since its accepted upload; or refused here with 10060003).
 */
static bool
trade_may_send(SuUpload *u, HeapTuple tup, TupleDesc desc)
{
	bool		isnull;
	int			finish_count = DatumGetInt32(SPI_getbinval(tup, desc, Anum_tstate_finish_count, &isnull));
	bool		allowed = DatumGetBool(SPI_getbinval(tup, desc, Anum_tstate_reship_allowed, &isnull));
	bool		used = DatumGetBool(SPI_getbinval(tup, desc, Anum_tstate_reship_used, &isnull));
	bool		has_uploaded = DatumGetBool(SPI_getbinval(tup, desc, Anum_tstate_has_uploaded, &isnull));
	bool		unchanged = DatumGetBool(SPI_getbinval(tup, desc, Anum_tstate_unchanged, &isnull));
	bool		mode_changed = DatumGetBool(SPI_getbinval(tup, desc, Anum_tstate_mode_changed, &isnull));
	Datum		since = SPI_getbinval(tup, desc, Anum_tstate_payment_wait_since, &isnull);

	/* a complete shipping accepted, or a new delivery_mode or logistics_type */
	bool		reship = finish_count >= 1 || (has_uploaded && mode_changed);

	u->payment_wait_since = isnull ? 0 : DatumGetTimestampTz(since);
	u->reship = false;			/* until it is sent as one */
	if (has_uploaded && unchanged && !allowed)
	{
		/* WeChat has it: nothing to send (after completion, it would be a re-ship) */
		u->deferred = true;
		u->next_state = "uploaded";
		u->errcode = WX_ERR_OK;
		u->errmsg = pstrdup("unchanged since its accepted upload: not sent");
		return false;
	}
	if (reship && used)
	{
		u->errcode = WX_ERR_TRADE_RESHIP_USED;
		u->errmsg = pstrdup("the payment's one re-ship was used: WeChat takes no further change "
							"of its shipping information (refused here, not sent)");
		u->cls = su_retry_trade_classify(u->errcode);
		return false;
	}
	if (reship && !allowed)
	{
		u->deferred = true;
		u->next_state = "needs_reship";
		u->errcode = WX_ERR_OK;
		u->cls = SU_CLASS_DATA;
		u->errmsg = pstrdup(finish_count >= 1 ?
							"the shipping was complete and accepted: this change is the payment's one re-ship, "
							"sent once shopping_upload.reship(order_id) allows it" :
							"a new delivery_mode or logistics_type after an accepted upload is the payment's one "
							"re-ship, sent once shopping_upload.reship(order_id) allows it");
		return false;
	}
	u->reship = reship;
	return true;
}

void
su_trade_prepare(int n, SuUpload **us, const TimestampTz *upload_times,
				 MemoryContext *cxts, bool *ok)
{
	static SPIPlanPtr plan = NULL;
	MemoryContext caller = CurrentMemoryContext;
	Oid			types[2] = {INT8OID, TEXTOID};
	char	  **ids;
	int			n_ids = 0;

	su_kept_plan(&plan, TRADE_STATE_SQL, 2, types, 0);
	ids = su_delivery_ids(caller, &n_ids);
	for (int i = 0; i < n; i++)
	{
		SuUpload   *u = us[i];
		MemoryContext cxt = cxts ? cxts[i] : caller;
		FirstViolation v = {0};
		json_object *payload;
		bool		oversized = false;
		Datum		args[2];
		char	   *appid;

		payload = su_build_trade_shipping_payload_ex(u->order_id, upload_times[i],
													 true, &oversized);
		MemoryContextSwitchTo(cxt);
		u->sent = false;
		u->cls = SU_CLASS_OK;
		u->gone = (payload == NULL);
		ok[i] = false;
		if (u->gone)
			continue;
		u->upload_time = su_format_upload_time(upload_times[i]);
		if (oversized)
		{
			u->errcode = WX_ERR_POST_DATA_TOO_LONG;
			u->errmsg = psprintf("the shipping information's text is over %d bytes, the most a body may hold; "
								 "it was not built nor sent", SU_MAX_BODY_BYTES);
			u->cls = su_retry_classify(u->errcode);
			continue;
		}
		u->body = su_json_text(payload, &u->body_len);
		u->payload = NULL;		/* the audit reads the body */
		u->completes = body_int(payload, "delivery_mode") == 1;
		{
			json_object *all;

			if (json_object_object_get_ex(payload, "is_all_delivered", &all) &&
				json_object_is_type(all, json_type_boolean) &&
				json_object_get_boolean(all))
				u->completes = true;
		}

		args[0] = Int64GetDatum(u->order_id);
		args[1] = su_text_datum(u->body);
		/*
		 * Not read-only: a new snapshot (READ COMMITTED), that sees a
		 * reship() or an accepted upload by hand committed since the
		 * claim's transaction began; the row is locked by the claim (or the
		 * call's lease), so nothing changes it until the record.
		 */
		if (SPI_execute_plan(plan, args, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not read the trade shipping state of order " INT64_FORMAT,
				 u->order_id);
		MemoryContextSwitchTo(cxt);
		if (SPI_processed == 0)
		{
			u->gone = true;
			continue;
		}
		appid = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, Anum_tstate_appid);
		u->appid = appid ? pstrdup(appid) :
			(su_appid != NULL && su_appid[0] != '\0') ? pstrdup(su_appid) : NULL;
		if (!trade_may_send(u, SPI_tuptable->vals[0], SPI_tuptable->tupdesc))
		{
			SPI_freetuptable(SPI_tuptable);
			MemoryContextSwitchTo(cxt);
			continue;
		}
		SPI_freetuptable(SPI_tuptable);
		MemoryContextSwitchTo(cxt);
		su_validate_trade_shipping(payload, (const char *const *) ids, (size_t) n_ids,
								   keep_first, &v, interrupt_pending, NULL);
		CHECK_FOR_INTERRUPTS();
		if (v.count > 0)
		{
			u->errcode = v.errcode;
			u->errmsg = v.errmsg;
			u->field = v.field;
			u->cls = su_retry_trade_classify(v.errcode);
		}
		else
			ok[i] = appid_known(u);
	}
	MemoryContextSwitchTo(caller);
}

/*
 * The query key of a get_order or notify_confirm_receive body, with the
 * order's appid: false (refused, not sent) when the order has none.
 */
static bool
trade_query_body(SuUpload *u, json_object *payload, const char *appid)
{
	u->appid = appid ? pstrdup(appid) : NULL;
	if (json_object_object_length(payload) == 0 ||
		(!json_object_object_get_ex(payload, "transaction_id", NULL) &&
		 (!json_object_object_get_ex(payload, "merchant_id", NULL) ||
		  !json_object_object_get_ex(payload, "merchant_trade_no", NULL))))
	{
		u->errcode = WX_ERR_TRADE_PARAMETER;
		u->field = pstrdup("order_key");
		u->errmsg = pstrdup("the order has no transaction_id (order_number_type 2), nor mchid and "
							"out_trade_no (type 1): WeChat finds a payment by one of them");
		u->cls = su_retry_trade_classify(u->errcode);
		return false;
	}
	return true;
}

void
su_trade_check_prepare(int n, SuUpload **us, const TimestampTz *upload_times,
					   MemoryContext *cxts, bool *ok)
{
	MemoryContext caller = CurrentMemoryContext;

	(void) upload_times;		/* a get_order body has none */
	for (int i = 0; i < n; i++)
	{
		SuUpload   *u = us[i];
		MemoryContext cxt = cxts ? cxts[i] : caller;
		char	   *appid = NULL;
		TimestampTz received;
		int			logistics;
		json_object *payload = su_build_trade_query_payload(u->order_id, &appid,
															&received, &logistics);

		MemoryContextSwitchTo(cxt);
		u->sent = false;
		u->cls = SU_CLASS_OK;
		u->gone = (payload == NULL);
		u->result_member = "order";
		ok[i] = false;
		if (u->gone || !trade_query_body(u, payload, appid))
			continue;
		u->body = su_json_text(payload, &u->body_len);
		ok[i] = appid_known(u);
	}
	MemoryContextSwitchTo(caller);
}

void
su_trade_confirm_prepare(int n, SuUpload **us, const TimestampTz *upload_times,
						 MemoryContext *cxts, bool *ok)
{
	MemoryContext caller = CurrentMemoryContext;

	(void) upload_times;
	for (int i = 0; i < n; i++)
	{
		SuUpload   *u = us[i];
		MemoryContext cxt = cxts ? cxts[i] : caller;
		char	   *appid = NULL;
		TimestampTz received;
		int			logistics;
		json_object *payload = su_build_trade_query_payload(u->order_id, &appid,
															&received, &logistics);

		MemoryContextSwitchTo(cxt);
		u->sent = false;
		u->cls = SU_CLASS_OK;
		u->gone = (payload == NULL);
		ok[i] = false;
		if (u->gone || !trade_query_body(u, payload, appid))
			continue;
		if (u->given_at != 0)
			received = u->given_at;
		if (received == 0)
		{
			/* received_at was cleared since: nothing to remind of */
			u->deferred = true;
			u->next_state = "none";
			u->errcode = WX_ERR_OK;
			u->errmsg = pstrdup("shippings.received_at is not set: no receipt reminder");
			continue;
		}
		if (logistics != 1)
		{
			u->errcode = WX_ERR_TRADE_CONFIRM_NOT_EXPRESS;
			u->field = pstrdup("logistics_type");
			u->errmsg = psprintf("the receipt reminder is for express delivery only (logistics_type 1, not %d): "
								 "refused here, not sent", logistics);
			u->cls = su_retry_trade_confirm_classify(u->errcode);
			continue;
		}
		json_object_object_add(payload, "received_time",
							   json_object_new_int64((int64) su_unix_seconds(received)));
		u->body = su_json_text(payload, &u->body_len);
		ok[i] = appid_known(u);
	}
	MemoryContextSwitchTo(caller);
}
