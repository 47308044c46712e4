/*-------------------------------------------------------------------------
 *
 * apps.c
 *		The worker's per-appid state: the rate bucket of shopping_upload.
 *		max_rate, and the hold that a 45009 or a permission error puts on
 *		every order of the appid (until when: retry.c).
 *
 * Only an appid whose request got a token has an entry (its credentials
 * are the administrator's): orders of made-up appids, which any writer can
 * write, take no entry, and cannot push a held appid out.  The worker's
 * own clock (monotonic) runs the buckets; holds end at wall-clock times.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/pg_prng.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "apps.h"
#include "mono.h"
#include "retry.h"
#include "settings.h"
#include "token.h"
#include "wake.h"

typedef struct AppState
{
	char		appid[SU_APPID_LEN];	/* hash key */
	double		tokens;			/* rate limiter bucket */
	TimestampTz refilled_at;	/* monotonic */
	TimestampTz held_until;		/* 45009, permission errors (wall clock) */
	SuErrClass	held_cls;
	int			held_errcode;
	char		held_errmsg[256];
} AppState;

/* the worker's appids */
static struct
{
	HTAB	   *by_appid;		/* AppState by appid; NULL until the first */
	uint32		releases_seen;	/* su_wake_holds_released(), as acted on */
} apps;

/* the appid's entry, or NULL */
static AppState *
app_find(const char *appid)
{
	char		key[SU_APPID_LEN];

	if (apps.by_appid == NULL || appid == NULL || strlen(appid) >= SU_APPID_LEN)
		return NULL;
	memset(key, 0, sizeof(key));
	strlcpy(key, appid, sizeof(key));
	return hash_search(apps.by_appid, key, HASH_FIND, NULL);
}

/* the entry of an appid whose request got a token, made if need be */
static AppState *
app_state(const char *appid)
{
	char		key[SU_APPID_LEN];
	AppState   *app;
	bool		found;

	if (apps.by_appid == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = SU_APPID_LEN;
		ctl.entrysize = sizeof(AppState);
		ctl.hcxt = TopMemoryContext;
		apps.by_appid = hash_create("shopping_upload appids", 64, &ctl,
									HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}
	memset(key, 0, sizeof(key));
	strlcpy(key, appid, sizeof(key));
	app = hash_search(apps.by_appid, key, HASH_ENTER, &found);
	if (!found)
	{
		app->tokens = 0;
		app->refilled_at = 0;
		app->held_until = 0;
		app->held_cls = SU_CLASS_OK;
		app->held_errcode = 0;
		app->held_errmsg[0] = '\0';
	}
	return app;
}

bool
su_apps_known(const char *appid)
{
	return app_find(appid) != NULL;
}

bool
su_apps_held(const char *appid, TimestampTz now, SuAppHold *hold)
{
	AppState   *app = app_find(appid);

	if (app == NULL || app->held_until <= now)
		return false;
	hold->cls = app->held_cls;
	hold->errcode = app->held_errcode;
	hold->errmsg = app->held_errmsg;
	return true;
}

/*
 * The clock is read here, not taken from the top of the round: a claim
 * between the two would otherwise refill the bucket for time already
 * spent, and let a second full bucket go out in the same second.
 */
static bool
rate_take(AppState *app)
{
	TimestampTz now;

	if (su_max_rate <= 0)
		return true;
	now = su_mono_now();
	if (app->refilled_at == 0)
		app->tokens = su_max_rate;
	else
		app->tokens = Min((double) su_max_rate,
						  app->tokens + (now - app->refilled_at) * su_max_rate / 1e6);
	app->refilled_at = now;
	if (app->tokens < 1.0)
		return false;
	app->tokens -= 1.0;
	return true;
}

bool
su_apps_rate_take(const char *appid)
{
	AppState   *app = app_find(appid);

	return app == NULL || rate_take(app);
}

void
su_apps_first_request(const char *appid)
{
	if (app_find(appid) == NULL)
		(void) rate_take(app_state(appid));
}

void
su_apps_maybe_hold(SuUpload *u)
{
	AppState   *app;
	TimestampTz until;
	TimestampTz now = GetCurrentTimestamp();
	SuRetryLimits limits = su_retry_limits();

	/*
	 * Only an appid whose request got a token is held as a whole: a failure
	 * before any request (no credentials, a made-up appid) holds the order
	 * alone, by its state.
	 */
	if (u->appid == NULL || u->token == NULL || !su_retry_holds_appid(u->cls))
		return;
	app = app_state(u->appid);
	if (app->held_until > now)
		return;
	(void) su_retry_next(&limits, u->cls, u->attempt, now,
						 pg_prng_double(&pg_global_prng_state), &until);
	app->held_until = until;
	app->held_cls = u->cls;
	app->held_errcode = u->errcode;
	snprintf(app->held_errmsg, sizeof(app->held_errmsg),
			 "held: uploads of appid %s wait until %s after errcode %d",
			 u->appid, timestamptz_to_str(until), u->errcode);
	ereport(WARNING,
			(errmsg("shopping_upload: uploads for appid \"%s\" are held until %s",
					u->appid, timestamptz_to_str(until)),
			 errdetail("WeChat answered errcode %d: %s", u->errcode,
					   u->errmsg ? u->errmsg : "(no errmsg)"),
			 errhint("%s", su_retry_hold_hint(u->cls, u->errcode))));
}

/*
 * requeue() of held orders ends every hold on purpose: the worker drops its
 * holds when a transaction that did so commits.
 */
void
su_apps_take_hold_releases(void)
{
	uint32		released = su_wake_holds_released();
	HASH_SEQ_STATUS seq;
	AppState   *app;

	if (released == apps.releases_seen)
		return;
	apps.releases_seen = released;
	if (apps.by_appid == NULL)
		return;
	hash_seq_init(&seq, apps.by_appid);
	while ((app = hash_seq_search(&seq)) != NULL)
		if (app->held_until != 0)
		{
			ereport(LOG,
					(errmsg("shopping_upload worker: the hold of appid \"%s\" is ended by requeue()",
							app->appid)));
			app->held_until = 0;
		}
}

void
su_apps_release_local(void)
{
	HASH_SEQ_STATUS seq;
	AppState   *app;

	if (apps.by_appid == NULL)
		return;
	hash_seq_init(&seq, apps.by_appid);
	while ((app = hash_seq_search(&seq)) != NULL)
		if (app->held_until != 0 && su_retry_is_local_config(app->held_errcode))
		{
			ereport(LOG,
					(errmsg("shopping_upload worker: the hold of appid \"%s\" (errcode %d) ends: the settings were reloaded",
							app->appid, app->held_errcode)));
			app->held_until = 0;
		}
}
