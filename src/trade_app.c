/*-------------------------------------------------------------------------
 *
 * trade_app.c
 *		The order shipping management service's calls about an appid, not a
 *		payment: is_trade_managed (is the app in the service?),
 *		get_delivery_list (WeChat's delivery companies), set_msg_jump_path;
 *		and the one about a payment that no queue follows, opspecialorder.
 *		Each is one request, made and waited for here (su_http_perform()),
 *		with the appid's token (once more with a fresh token when WeChat
 *		rejects it); WeChat's refusal is an error naming its errcode.
 *
 * The worker asks is_trade_managed for every appid it serves once a day,
 * and fills delivery_companies once a day (su_trade_apps_refresh()).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <json-c/json.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "common.h"
#include "errcodes.h"
#include "http_sync.h"
#include "json_util.h"
#include "settings.h"
#include "spi_util.h"
#include "text_clean.h"
#include "token.h"
#include "trade_app.h"

/* the appid a call is for: the one named, else the configured one */
static const char *
app_or_configured(const char *appid)
{
	if (appid != NULL && appid[0] != '\0')
		return appid;
	if (su_appid != NULL && su_appid[0] != '\0')
		return su_appid;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("no appid was given and shopping_upload.appid is not set")));
	pg_unreachable();
}

/* one attempt: WeChat's answer (tracked), or an error; *rejected: a bad token */
static json_object *
attempt(const char *appid, const char *path, const char *body, const char *token,
		bool *rejected)
{
	char	   *escaped = su_http_escape(token);
	SuHttpRequest req;
	json_object *answer;
	json_object *v;
	int			wx_errcode;

	if (escaped == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	memset(&req, 0, sizeof(req));
	req.url = psprintf("%s%s?access_token=%s", su_api_base(), path, escaped);
	free(escaped);
	req.body = body;
	req.body_len = strlen(body);
	su_http_settings(&req);
	su_http_perform(&req);
	*rejected = false;
	if (req.curl_code != 0 || req.http_status != 200)
	{
		char	   *what = req.curl_code != 0 ? su_clean_text_capped(req.error) :
			psprintf("HTTP status %ld", req.http_status);

		su_http_release(&req);
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("%s for appid %s got no answer: %s", path, appid, what),
				 errhint("Try again; shopping_upload.api_base_url, timeout and ca_file say how WeChat is reached.")));
	}
	answer = json_tokener_parse(req.response ? req.response : "");
	su_http_release(&req);
	if (answer == NULL || !json_object_is_type(answer, json_type_object) ||
		!json_object_object_get_ex(answer, "errcode", &v) ||
		!json_object_is_type(v, json_type_int))
	{
		if (answer)
			json_object_put(answer);
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("the answer of %s for appid %s is not a JSON object with an integer errcode",
						path, appid)));
	}
	su_json_track(answer);
	wx_errcode = json_object_get_int(v);
	if (wx_errcode == WX_ERR_INVALID_CREDENTIAL || wx_errcode == WX_ERR_INVALID_ACCESS_TOKEN ||
		wx_errcode == WX_ERR_ACCESS_TOKEN_EXPIRED)
	{
		su_token_rejected(appid, token);
		*rejected = true;
	}
	else if (wx_errcode == WX_ERR_OK)
		su_token_accepted(appid);
	return answer;
}

json_object *
su_trade_app_call(const char *appid, const char *path, json_object *body)
{
	SuCredentials creds;
	const char *text = json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN);
	json_object *answer = NULL;
	json_object *v;
	int			wx_errcode;

	appid = app_or_configured(appid);
	su_credentials_load(appid, &creds);
	for (int round = 0; round < 2; round++)
	{
		SuTokenResult tok;
		bool		rejected;

		if (!su_token_get(&creds, &tok))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
					 errmsg("no access token for appid %s: errcode %d: %s", appid,
							tok.errcode, tok.errmsg ? tok.errmsg : ""),
					 errhint("SELECT * FROM shopping_upload.check_setup('%s') says what is wrong.", appid)));
		answer = attempt(appid, path, text, tok.token, &rejected);
		if (!rejected)
			break;
	}
	json_object_object_get_ex(answer, "errcode", &v);
	wx_errcode = json_object_get_int(v);
	if (wx_errcode != WX_ERR_OK)
	{
		const char *msg = json_object_object_get_ex(answer, "errmsg", &v) &&
			json_object_is_type(v, json_type_string) ?
			su_clean_text_capped(json_object_get_string(v)) : "";

		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("%s for appid %s: WeChat answered errcode %d: %s", path, appid, wx_errcode, msg),
				 wx_errcode == WX_ERR_API_UNAUTHORIZED ?
				 errhint("48001: the appid may not make this call (for the shipping management service: it is not in it).") :
				 wx_errcode == WX_ERR_SYSTEM_BUSY ? errhint("-1: WeChat is busy; try again.") : 0));
	}
	ereport(DEBUG1,
			(errmsg("shopping_upload: %s for appid %s answered", path, appid)));
	return answer;
}

bool
su_trade_app_managed(const char *appid)
{
	json_object *body = json_object_new_object();
	json_object *answer;
	json_object *v;
	bool		managed;
	Oid			types[2] = {TEXTOID, BOOLOID};
	Datum		args[2];

	appid = app_or_configured(appid);
	su_json_track(body);
	json_object_object_add(body, "appid", json_object_new_string(appid));
	answer = su_trade_app_call(appid, "/wxa/sec/order/is_trade_managed", body);
	if (!json_object_object_get_ex(answer, "is_trade_managed", &v) ||
		!json_object_is_type(v, json_type_boolean))
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("is_trade_managed for appid %s answered no boolean is_trade_managed", appid)));
	managed = json_object_get_boolean(v);
	args[0] = su_text_datum(appid);
	args[1] = BoolGetDatum(managed);
	if (SPI_execute_with_args("INSERT INTO " SU_SCHEMA ".trade_apps AS a (appid, managed, checked_at)"
							  " VALUES ($1, $2, pg_catalog.now())"
							  " ON CONFLICT (appid) DO UPDATE SET managed = EXCLUDED.managed,"
							  " checked_at = EXCLUDED.checked_at, updated_at = pg_catalog.now()",
							  2, types, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not store the service of appid %s", appid);
	return managed;
}

int
su_trade_app_delivery_companies(const char *appid)
{
	json_object *body = json_object_new_object();
	json_object *answer;
	json_object *list;
	int			n = 0;
	Oid			types[2] = {TEXTOID, TEXTOID};

	su_json_track(body);
	answer = su_trade_app_call(appid, "/cgi-bin/express/delivery/open_msg/get_delivery_list",
							   body);
	if (!json_object_object_get_ex(answer, "delivery_list", &list) ||
		!json_object_is_type(list, json_type_array) ||
		json_object_array_length(list) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("get_delivery_list answered no delivery_list (a non-empty array)"),
				 errdetail("delivery_companies is left as it was.")));
	/* the list replaces the table, in the caller's transaction */
	if (SPI_execute("DELETE FROM " SU_SCHEMA ".delivery_companies", false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not empty delivery_companies");
	for (size_t i = 0; i < json_object_array_length(list); i++)
	{
		json_object *e = json_object_array_get_idx(list, i);
		json_object *id;
		json_object *name;
		Datum		args[2];
		char		nulls[2] = {' ', ' '};

		if (e == NULL || !json_object_is_type(e, json_type_object) ||
			!json_object_object_get_ex(e, "delivery_id", &id) ||
			!json_object_is_type(id, json_type_string) ||
			json_object_get_string_len(id) == 0 ||
			strlen(json_object_get_string(id)) != (size_t) json_object_get_string_len(id))
			continue;			/* not a company WeChat could name */
		args[0] = su_text_datum(json_object_get_string(id));
		if (json_object_object_get_ex(e, "delivery_name", &name) &&
			json_object_is_type(name, json_type_string))
			args[1] = su_text_datum(su_clean_text_capped(json_object_get_string(name)));
		else
			nulls[1] = 'n';
		if (SPI_execute_with_args("INSERT INTO " SU_SCHEMA ".delivery_companies AS d"
								  " (delivery_id, delivery_name) VALUES ($1, $2)"
								  " ON CONFLICT (delivery_id) DO UPDATE SET"
								  " delivery_name = EXCLUDED.delivery_name",
								  2, types, args, nulls, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not store a delivery company");
		n++;
	}
	return n;
}

/*
 * The appids the worker's database serves (its accounts, and the configured
 * one); WeChat is asked about them while shopping_upload.trade_managed is
 * auto (those pinned in trade_apps excepted).
 */
#define SERVED_APPIDS_SQL \
	"SELECT x.appid, pg_catalog.current_setting('shopping_upload.trade_managed', true)" \
	"  OPERATOR(pg_catalog.=) 'auto'" \
	" FROM (SELECT a.appid FROM " SU_SCHEMA ".accounts a" \
	" UNION SELECT NULLIF(pg_catalog.current_setting('shopping_upload.appid', true), '')) x" \
	" WHERE x.appid IS NOT NULL ORDER BY x.appid"

/* is appid in the service (as the queue decides: pinned, the setting, WeChat's answer)? */
static bool
trade_app_in_service(const char *appid)
{
	Oid			types[1] = {TEXTOID};
	Datum		args[1] = {su_text_datum(appid)};
	bool		isnull;
	bool		in;

	if (SPI_execute_with_args("SELECT coalesce("
							  " (SELECT a.pinned FROM " SU_SCHEMA ".trade_apps a"
							  "  WHERE a.appid OPERATOR(pg_catalog.=) $1),"
							  " CASE pg_catalog.current_setting('shopping_upload.trade_managed', true)"
							  "  WHEN 'on' THEN true WHEN 'off' THEN false END,"
							  " (SELECT a.managed FROM " SU_SCHEMA ".trade_apps a"
							  "  WHERE a.appid OPERATOR(pg_catalog.=) $1), false)",
							  1, types, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read trade_apps");
	in = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_freetuptable(SPI_tuptable);
	return in;
}

/* has trade_apps a pin for appid? */
static bool
trade_app_pinned(const char *appid)
{
	Oid			types[1] = {TEXTOID};
	Datum		args[1] = {su_text_datum(appid)};
	bool		pinned;

	if (SPI_execute_with_args("SELECT FROM " SU_SCHEMA ".trade_apps a"
							  " WHERE a.appid OPERATOR(pg_catalog.=) $1 AND a.pinned IS NOT NULL",
							  1, types, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read trade_apps");
	pinned = SPI_processed > 0;
	SPI_freetuptable(SPI_tuptable);
	return pinned;
}

void
su_trade_apps_refresh(bool delivery)
{
	MemoryContext cxt = CurrentMemoryContext;
	char	  **appids;
	bool	   *asked;
	volatile int n = 0;

	if (SPI_execute(SERVED_APPIDS_SQL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the appids served");
	appids = palloc(sizeof(char *) * Max(SPI_processed, 1));
	asked = palloc(sizeof(bool) * Max(SPI_processed, 1));
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		char	   *a = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1);
		bool		isnull;

		asked[n] = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc,
											  2, &isnull));
		if (a != NULL)
			appids[n++] = MemoryContextStrdup(cxt, a);
	}
	SPI_freetuptable(SPI_tuptable);
	MemoryContextSwitchTo(cxt);

	/* each in a subtransaction: one appid that fails does not stop the rest */
	for (int i = 0; i < n + 1; i++)
	{
		ResourceOwner owner = CurrentResourceOwner;

		BeginInternalSubTransaction(NULL);
		PG_TRY();
		{
			if (i < n && (!asked[i] || trade_app_pinned(appids[i])))
				;				/* pinned: WeChat is not asked */
			else if (i < n)
			{
				bool		managed = su_trade_app_managed(appids[i]);

				ereport(LOG,
						(errmsg("shopping_upload worker: appid %s is %sin the order shipping management service",
								appids[i], managed ? "" : "not ")));
			}
			else if (i == n && delivery)
			{
				/* with the token of an appid in the service: no other needs the list */
				for (int j = 0; j < n; j++)
					if (trade_app_in_service(appids[j]))
					{
						ereport(LOG,
								(errmsg("shopping_upload worker: %d delivery companies read from WeChat",
										su_trade_app_delivery_companies(appids[j]))));
						break;
					}
			}
			ReleaseCurrentSubTransaction();
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(cxt);
			edata = CopyErrorData();
			FlushErrorState();
			RollbackAndReleaseCurrentSubTransaction();
			ereport(LOG,
					(errmsg("shopping_upload worker: %s", edata->message),
					 errdetail("Asked again tomorrow, or by hand: is_trade_managed(), refresh_delivery_companies().")));
			FreeErrorData(edata);
		}
		PG_END_TRY();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
}
