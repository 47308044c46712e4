/*-------------------------------------------------------------------------
 *
 * token.c
 *		Access tokens per appid.
 *
 * Tokens come from WeChat's stable_token endpoint (never GET /cgi-bin/token,
 * which would invalidate the token of every other service of the merchant)
 * or are handed in with set_access_token() by a third-party platform.  They
 * are cached in shared memory, one slot per appid, shared by every backend
 * and the worker, and used until about five minutes before they expire.
 * force_refresh is sent only when a token fetched after a rejection is
 * rejected again, at most 20 times a day (Beijing time) and 30 s apart.
 *
 * Without shared_preload_libraries the cache is local to the backend.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <json-c/json.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "http_sync.h"
#include "json_util.h"
#include "common.h"
#include "retry.h"
#include "settings.h"
#include "errcodes.h"
#include "token.h"
#include "validate.h"
#include "spi_util.h"


static SuTokenSlot *slots = NULL;
static LWLock *slots_lock = NULL;

Size
su_token_shmem_size(void)
{
	return mul_size(sizeof(SuTokenSlot), SU_MAX_APPIDS);
}

void
su_token_shmem_init(SuTokenSlot *shared, LWLock *lock)
{
	slots = shared;
	slots_lock = lock;
}

static void
lock_slots(LWLockMode mode)
{
	if (slots == NULL)
		slots = MemoryContextAllocZero(TopMemoryContext, su_token_shmem_size());
	if (slots_lock)
		LWLockAcquire(slots_lock, mode);
}

static void
unlock_slots(void)
{
	if (slots_lock)
		LWLockRelease(slots_lock);
}

/* the slot of an appid; with create, a free one is taken. Lock held. */
static SuTokenSlot *
find_slot(const char *appid, bool create)
{
	SuTokenSlot *free_slot = NULL;

	for (int i = 0; i < SU_MAX_APPIDS; i++)
	{
		if (strcmp(slots[i].appid, appid) == 0)
			return &slots[i];
		if (free_slot == NULL && slots[i].appid[0] == '\0')
			free_slot = &slots[i];
	}
	if (create && free_slot)
	{
		memset(free_slot, 0, sizeof(SuTokenSlot));
		strlcpy(free_slot->appid, appid, SU_APPID_LEN);
	}
	return create ? free_slot : NULL;
}

/* true when the slot's token may still be used at now */
static bool
slot_fresh(SuTokenSlot *s, TimestampTz now)
{
	int64		margin;

	if (s == NULL || s->token[0] == '\0')
		return false;
	margin = Min(SU_TOKEN_MARGIN_USECS, (s->expires_at - s->fetched_at) / 2);
	return now < s->expires_at - margin;
}

char *
su_token_peek(const char *appid)
{
	SuTokenSlot *s;
	char	   *token = NULL;

	lock_slots(LW_SHARED);
	s = find_slot(appid, false);
	if (slot_fresh(s, GetCurrentTimestamp()))
		token = pstrdup(s->token);
	unlock_slots();
	return token;
}

void
su_token_put(const char *appid, const char *token, TimestampTz expires_at)
{
	SuTokenSlot *s;

	if (strlen(appid) >= SU_APPID_LEN || strlen(token) >= SU_TOKEN_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("appid or access token is too long"),
				 errdetail("At most %d bytes of appid and %d bytes of token are kept.",
						   SU_APPID_LEN - 1, SU_TOKEN_LEN - 1)));
	lock_slots(LW_EXCLUSIVE);
	s = find_slot(appid, true);
	if (s != NULL)
	{
		strlcpy(s->token, token, SU_TOKEN_LEN);
		s->fetched_at = GetCurrentTimestamp();
		s->expires_at = expires_at;
	}
	unlock_slots();
	if (s == NULL)
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("the access token cache is full (%d appids); "
						"the token of appid \"%s\" is not shared",
						SU_MAX_APPIDS, appid)));
}

void
su_token_rejected(const char *appid, const char *token)
{
	SuTokenSlot *s;

	lock_slots(LW_EXCLUSIVE);
	s = find_slot(appid, false);
	if (s != NULL && strcmp(s->token, token) == 0)
	{
		s->token[0] = '\0';
		s->rejections++;
	}
	unlock_slots();
}

void
su_token_accepted(const char *appid)
{
	SuTokenSlot *s;
	bool		reset;

	/* nearly always nothing to do: look under a shared lock first */
	lock_slots(LW_SHARED);
	s = find_slot(appid, false);
	reset = (s != NULL && s->rejections != 0);
	unlock_slots();
	if (!reset)
		return;
	lock_slots(LW_EXCLUSIVE);
	if ((s = find_slot(appid, false)) != NULL)
		s->rejections = 0;
	unlock_slots();
}

int
su_token_snapshot(SuTokenSlot *out)
{
	int			n = 0;

	lock_slots(LW_SHARED);
	for (int i = 0; i < SU_MAX_APPIDS; i++)
		if (slots[i].appid[0] != '\0')
		{
			out[n] = slots[i];
			/* the token itself stays in the cache */
			out[n].token[0] = slots[i].token[0] ? 'x' : '\0';
			out[n].token[1] = '\0';
			n++;
		}
	unlock_slots();
	return n;
}

void
su_credentials_load(const char *appid, SuCredentials *creds)
{
	static SPIPlanPtr plan = NULL;
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	bool		isnull;
	MemoryContext cxt = CurrentMemoryContext;	/* SPI calls leave it */

	/* the columns of the SELECT below */
	enum
	{
		Anum_credentials_secret = 1,
		Anum_credentials_access_token,
		Anum_credentials_token_expires_at
	};

	memset(creds, 0, sizeof(SuCredentials));
	creds->appid = pstrdup(appid);
	su_kept_plan(&plan, "SELECT secret, access_token, token_expires_at"
				 " FROM " SU_SCHEMA ".accounts WHERE appid OPERATOR(pg_catalog.=) $1",
				 1, argtypes, 0);
	args[0] = su_text_datum(appid);
	if (SPI_execute_plan(plan, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read shopping_upload.accounts");
	MemoryContextSwitchTo(cxt);
	if (SPI_processed == 1)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		Datum		d;

		creds->secret = SPI_getvalue(tup, desc, Anum_credentials_secret);
		if (creds->secret != NULL)
			creds->secret_from = "shopping_upload.accounts";
		creds->access_token = SPI_getvalue(tup, desc, Anum_credentials_access_token);
		d = SPI_getbinval(tup, desc, Anum_credentials_token_expires_at, &isnull);
		creds->token_expires_at = isnull ? 0 : DatumGetTimestampTz(d);
	}
	SPI_freetuptable(SPI_tuptable);
	if (creds->secret == NULL && su_appid && strcmp(su_appid, appid) == 0)
	{
		creds->secret = su_config_secret(&creds->secret_problem);
		creds->secret_from = su_secret != NULL && su_secret[0] != '\0' ?
			"shopping_upload.secret" : "shopping_upload.secret_file";
	}
}

/* may this fetch use force_refresh? (counts it if so) */
static bool
take_force(const char *appid)
{
	SuTokenSlot *s;
	TimestampTz now = GetCurrentTimestamp();
	bool		force = false;

	lock_slots(LW_EXCLUSIVE);
	s = find_slot(appid, false);
	if (s != NULL && s->rejections >= 2)
	{
		if (s->force_day != su_beijing_day(now))
		{
			s->force_day = su_beijing_day(now);
			s->force_count = 0;
		}
		if (s->force_count < SU_FORCE_PER_DAY &&
			now - s->last_force >= SU_FORCE_GAP_USECS)
		{
			s->force_count++;
			s->last_force = now;
			force = true;
		}
	}
	unlock_slots();
	return force;
}

static void
count_fetch(const char *appid)
{
	SuTokenSlot *s;

	lock_slots(LW_EXCLUSIVE);
	if ((s = find_slot(appid, true)) != NULL)
		s->fetches++;
	unlock_slots();
}

/* a fetch failed: the next waits 1 s, 2 s, 4 s ... (retry.c says how long) */
static void
fetch_failed(const char *appid, int errcode)
{
	SuTokenSlot *s;
	TimestampTz now = GetCurrentTimestamp();

	lock_slots(LW_EXCLUSIVE);
	if ((s = find_slot(appid, true)) != NULL)
	{
		s->retry_at = now + su_retry_token_backoff_usecs(s->failures);
		s->failures++;
		s->last_errcode = errcode;
	}
	unlock_slots();
}

void
su_token_clear_backoff(void)
{
	lock_slots(LW_EXCLUSIVE);
	for (int i = 0; i < SU_MAX_APPIDS; i++)
		if (slots[i].failures > 0 && su_retry_is_local_config(slots[i].last_errcode))
		{
			slots[i].failures = 0;
			slots[i].retry_at = 0;
			slots[i].last_errcode = 0;
		}
	unlock_slots();
}

static void
fetch_succeeded(const char *appid)
{
	SuTokenSlot *s;

	lock_slots(LW_EXCLUSIVE);
	if ((s = find_slot(appid, false)) != NULL)
	{
		s->failures = 0;
		s->retry_at = 0;
	}
	unlock_slots();
}

/* after failures: when the next fetch may go, or 0 */
static TimestampTz
fetch_not_before(const char *appid, int *errcode)
{
	SuTokenSlot *s;
	TimestampTz at = 0;

	*errcode = WX_ERR_SYSTEM_BUSY;
	lock_slots(LW_SHARED);
	if ((s = find_slot(appid, false)) != NULL)
	{
		at = s->retry_at;
		if (s->last_errcode != 0)
			*errcode = s->last_errcode;
	}
	unlock_slots();
	return at;
}

static bool
fetch_stable_token(const SuCredentials *creds, bool force, bool count, SuTokenResult *res)
{
	json_object *body = json_object_new_object();
	json_object *answer = NULL;
	json_object *v;
	const char *hint;
	SuHttpRequest req;
	char	   *text;
	size_t		len;
	size_t		response_len;
	int64		expires_in = 7200;

	su_json_track(body);
	json_object_object_add(body, "grant_type", json_object_new_string("client_credential"));
	json_object_object_add(body, "appid", json_object_new_string(creds->appid));
	json_object_object_add(body, "secret", json_object_new_string(creds->secret));
	if (force)
		json_object_object_add(body, "force_refresh", json_object_new_boolean(1));
	text = su_json_text(body, &len);

	memset(&req, 0, sizeof(req));
	req.url = psprintf("%s/cgi-bin/stable_token", su_api_base());
	req.body = text;
	req.body_len = len;
	su_http_settings(&req);
	su_http_perform(&req);
	count_fetch(creds->appid);

	/* the request held the secret: wipe it before the memory is reused */
	explicit_bzero(text, len);

	if (req.curl_code != 0 || req.http_status != 200)
	{
		res->errcode = su_http_local_problem(&req) ? SU_ERR_LOCAL_CONFIG :
			WX_ERR_SYSTEM_BUSY;
		res->errmsg = req.curl_code != 0 ?
			psprintf("could not get an access token for appid \"%s\": %s",
					 creds->appid, req.error) :
			psprintf("could not get an access token for appid \"%s\": HTTP status %ld",
					 creds->appid, req.http_status);
		su_http_release(&req);
		if (count)
			fetch_failed(creds->appid, res->errcode);
		return false;
	}
	answer = json_tokener_parse(req.response ? req.response : "");
	su_json_track(answer);
	response_len = req.response_len;
	su_http_release(&req);

	if (!json_object_is_type(answer, json_type_object))
	{
		res->errcode = WX_ERR_SYSTEM_BUSY;
		res->errmsg = psprintf("stable_token answered something that is not a JSON object "
							   "(%zu bytes) for appid \"%s\"", response_len, creds->appid);
		if (count)
			fetch_failed(creds->appid, res->errcode);
		return false;
	}
	if (json_object_object_get_ex(answer, "access_token", &v) &&
		json_object_is_type(v, json_type_string) &&
		json_object_get_string_len(v) > 0)
	{
		json_object *e;
		size_t		tlen = (size_t) json_object_get_string_len(v);

		if (tlen >= SU_TOKEN_LEN || strlen(json_object_get_string(v)) != tlen)
		{
			res->errcode = WX_ERR_SYSTEM_BUSY;
			res->errmsg = psprintf("stable_token answered an access_token of %zu bytes for appid \"%s\"; "
								   "at most %d are kept, without NUL",
								   tlen, creds->appid, SU_TOKEN_LEN - 1);
			if (count)
				fetch_failed(creds->appid, res->errcode);
			return false;
		}

		/*
		 * expires_in: an integer of seconds; absent means WeChat's 7200.
		 * Anything else is refused; a value is kept within [60, 7200], so
		 * that a token is neither fetched at every call nor kept past what
		 * WeChat gives.
		 */
		if (json_object_object_get_ex(answer, "expires_in", &e))
		{
			if (!json_object_is_type(e, json_type_int))
			{
				res->errcode = WX_ERR_SYSTEM_BUSY;
				res->errmsg = psprintf("stable_token answered an expires_in that is %s, not an integer, for appid \"%s\"",
									   su_json_type_phrase(e), creds->appid);
				if (count)
					fetch_failed(creds->appid, res->errcode);
				return false;
			}
			expires_in = json_object_get_int64(e);
			expires_in = Max(60, Min(expires_in, 7200));
		}
		res->token = pstrdup(json_object_get_string(v));
		su_token_put(creds->appid, res->token,
					 TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
												 expires_in * 1000));
		fetch_succeeded(creds->appid);
		return true;
	}

	/* no token: a failure, whatever errcode says (never 0) */
	res->errcode = json_object_object_get_ex(answer, "errcode", &v) &&
		json_object_is_type(v, json_type_int) && json_object_get_int(v) != 0 ?
		json_object_get_int(v) : WX_ERR_SYSTEM_BUSY;
	hint = su_retry_token_hint(res->errcode);
	res->errmsg = psprintf("stable_token gave no access token for appid \"%s\": errcode %d, %s%s%s",
						   creds->appid, res->errcode,
						   json_object_object_get_ex(answer, "errmsg", &v) &&
						   json_object_is_type(v, json_type_string) ?
						   json_object_get_string(v) : "(no errmsg)",
						   hint ? " (" : "", hint ? hint : "");
	if (hint)
		res->errmsg = psprintf("%s)", res->errmsg);
	if (count)
		fetch_failed(creds->appid, res->errcode);
	return false;
}

bool
su_credentials_present(const SuCredentials *creds)
{
	return (creds->secret != NULL && creds->secret[0] != '\0') ||
		(creds->access_token != NULL && creds->access_token[0] != '\0');
}

bool
su_token_get(const SuCredentials *creds, SuTokenResult *res)
{
	memset(res, 0, sizeof(SuTokenResult));
	if (strlen(creds->appid) >= SU_APPID_LEN)
	{
		res->errcode = WX_ERR_INVALID_APPID;
		res->errmsg = psprintf("the appid \"%.*s...\" is longer than %d bytes",
							   32, creds->appid, SU_APPID_LEN - 1);
		return false;
	}
	/*
	 * The cache is shared by every database of the server: a token in it is
	 * used only for a caller whose database has credentials for the appid
	 * (an order written in another database, for another's appid, must not
	 * travel on its token).
	 */
	if (su_credentials_present(creds) &&
		(res->token = su_token_peek(creds->appid)) != NULL)
		return true;

	if (creds->secret != NULL && creds->secret[0] != '\0')
	{
		int			last_errcode;
		TimestampTz not_before = fetch_not_before(creds->appid, &last_errcode);

		/*
		 * A token endpoint that keeps failing is asked less and less often;
		 * meanwhile an attempt fails as the last fetch did (a wrong secret
		 * stays a configuration problem, never a passing one).
		 */
		if (not_before > GetCurrentTimestamp())
		{
			const char *hint = su_retry_token_hint(last_errcode);

			res->errcode = last_errcode;
			res->errmsg = psprintf("the last access token requests for appid \"%s\" failed "
								   "(errcode %d%s%s); the next is made at %s",
								   creds->appid, last_errcode, hint ? ": " : "",
								   hint ? hint : "", timestamptz_to_str(not_before));
			return false;
		}
		return fetch_stable_token(creds, take_force(creds->appid), true, res);
	}

	/* a configuration error: the appid is held, its orders never dead */
	if (creds->secret_problem != NULL)
	{
		res->errcode = WX_ERR_NO_SECRET;
		res->errmsg = pstrdup(creds->secret_problem);
		return false;
	}

	if (creds->access_token != NULL && creds->access_token[0] != '\0' &&
		creds->token_expires_at > GetCurrentTimestamp())
	{
		su_token_put(creds->appid, creds->access_token, creds->token_expires_at);
		res->token = pstrdup(creds->access_token);
		return true;
	}

	res->errcode = WX_ERR_NO_SECRET;
	res->errmsg = psprintf("no secret and no valid access token for appid \"%s\"; "
						   "add it to shopping_upload.accounts, or set "
						   "shopping_upload.secret_file for shopping_upload.appid",
						   creds->appid);
	return false;
}

bool
su_token_check(const SuCredentials *creds, SuTokenResult *res)
{
	/*
	 * Asked on purpose (check_setup(), for the extension's owner): WeChat is
	 * asked now, whatever the cache holds or the backoff says, and a failure
	 * here leaves the worker's backoff alone: an operator's trial settings
	 * must not hold the worker's orders.
	 */
	if (creds->secret == NULL || creds->secret[0] == '\0' ||
		strlen(creds->appid) >= SU_APPID_LEN)
		return su_token_get(creds, res);
	memset(res, 0, sizeof(SuTokenResult));
	return fetch_stable_token(creds, false, false, res);
}
