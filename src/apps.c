/*-------------------------------------------------------------------------
 *
 * apps.c
 *		Every worker's per-appid state, in shared memory: the rate bucket of
 *		shopping_upload.max_rate, and the hold that a 45009 or a permission
 *		error puts on every order of the appid (until when: retry.c).
 *		WeChat's quotas are per appid, whatever the database: the workers of
 *		every database share one bucket and one hold per appid.
 *
 * Only an appid whose request got a token has an entry (its credentials
 * are the administrator's): orders of made-up appids, which any writer can
 * write, take no entry, and cannot push a held appid out.  The monotonic
 * clock (the same for every process) runs the buckets; holds end at
 * wall-clock times.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/pg_prng.h"
#include "storage/lwlock.h"
#include "utils/timestamp.h"

#include "apps.h"
#include "mono.h"
#include "retry.h"
#include "settings.h"
#include "token.h"
#include "wake.h"

typedef struct AppState
{
	char		appid[SU_APPID_LEN];	/* "" = free */
	double		tokens;			/* rate limiter bucket */
	TimestampTz refilled_at;	/* monotonic */
	TimestampTz held_until;		/* 45009, permission errors (wall clock) */
	SuErrClass	held_cls;
	int			held_errcode;
	char		held_errmsg[256];
} AppState;

typedef struct AppTable
{
	uint32		releases_applied;	/* su_wake_holds_released(), acted on */
	bool		full_said;
	AppState	apps[SU_MAX_APPIDS];
} AppTable;

static AppTable *table = NULL;
static LWLock *table_lock = NULL;

Size
su_apps_shmem_size(void)
{
	return sizeof(AppTable);
}

void
su_apps_shmem_init(void *mem, bool fresh, LWLock *lock)
{
	table = (AppTable *) mem;
	table_lock = lock;
	if (fresh)
		memset(table, 0, sizeof(AppTable));
}

/* the appid's entry (lock held), or NULL */
static AppState *
app_find(const char *appid)
{
	if (table == NULL || appid == NULL || appid[0] == '\0' ||
		strlen(appid) >= SU_APPID_LEN)
		return NULL;
	for (int i = 0; i < SU_MAX_APPIDS; i++)
		if (strcmp(table->apps[i].appid, appid) == 0)
			return &table->apps[i];
	return NULL;
}

bool
su_apps_known(const char *appid)
{
	bool		known;

	if (table == NULL)
		return false;
	LWLockAcquire(table_lock, LW_SHARED);
	known = app_find(appid) != NULL;
	LWLockRelease(table_lock);
	return known;
}

bool
su_apps_held(const char *appid, TimestampTz now, SuAppHold *hold)
{
	/* the caller's copy: the shared one may change under it */
	static char errmsg[sizeof(((AppState *) NULL)->held_errmsg)];
	AppState   *app;
	bool		held = false;

	if (table == NULL)
		return false;
	LWLockAcquire(table_lock, LW_SHARED);
	app = app_find(appid);
	if (app != NULL && app->held_until > now)
	{
		held = true;
		hold->cls = app->held_cls;
		hold->errcode = app->held_errcode;
		strlcpy(errmsg, app->held_errmsg, sizeof(errmsg));
		hold->errmsg = errmsg;
	}
	LWLockRelease(table_lock);
	return held;
}

/*
 * The clock is read here, not taken from the top of the round: a claim
 * between the two would otherwise refill the bucket for time already
 * spent, and let a second full bucket go out in the same second.  Lock
 * held exclusively.
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
	app->refilled_at = Max(now, app->refilled_at);
	if (app->tokens < 1.0)
		return false;
	app->tokens -= 1.0;
	return true;
}

bool
su_apps_rate_take(const char *appid)
{
	AppState   *app;
	bool		ok = true;

	if (table == NULL || su_max_rate <= 0)
		return true;
	LWLockAcquire(table_lock, LW_EXCLUSIVE);
	if ((app = app_find(appid)) != NULL)
		ok = rate_take(app);
	LWLockRelease(table_lock);
	return ok;
}

void
su_apps_first_request(const char *appid)
{
	AppState   *app;
	bool		full = false;

	if (table == NULL || appid == NULL || appid[0] == '\0' ||
		strlen(appid) >= SU_APPID_LEN)
		return;
	LWLockAcquire(table_lock, LW_EXCLUSIVE);
	if ((app = app_find(appid)) == NULL)
	{
		for (int i = 0; i < SU_MAX_APPIDS && app == NULL; i++)
			if (table->apps[i].appid[0] == '\0')
				app = &table->apps[i];
		if (app != NULL)
		{
			memset(app, 0, sizeof(AppState));
			strlcpy(app->appid, appid, sizeof(app->appid));
			app->held_cls = SU_CLASS_OK;
			(void) rate_take(app);
		}
		else if (!table->full_said)
			full = table->full_said = true;
	}
	LWLockRelease(table_lock);
	if (full)
		ereport(WARNING,
				(errmsg("shopping_upload: more than %d appids have credentials: the others get no rate limit and no hold",
						SU_MAX_APPIDS)));
}

void
su_apps_maybe_hold(SuUpload *u)
{
	AppState   *app;
	TimestampTz until;
	TimestampTz now = GetCurrentTimestamp();
	SuRetryLimits limits = su_retry_limits();
	bool		said;

	/*
	 * Only an appid whose request got a token is held as a whole: a failure
	 * before any request (no credentials, a made-up appid) holds the order
	 * alone, by its state.
	 */
	if (table == NULL || u->appid == NULL || u->token == NULL || !su_retry_holds_appid(u->cls))
		return;
	(void) su_retry_next(&limits, u->cls, u->attempt, now,
						 pg_prng_double(&pg_global_prng_state), &until);
	LWLockAcquire(table_lock, LW_EXCLUSIVE);
	app = app_find(u->appid);
	/* held already (by this worker or another): said then */
	said = app == NULL || app->held_until > now;
	if (!said)
	{
		app->held_until = until;
		app->held_cls = u->cls;
		app->held_errcode = u->errcode;
		snprintf(app->held_errmsg, sizeof(app->held_errmsg),
				 "held: uploads of appid %s wait until %s after errcode %d",
				 u->appid, timestamptz_to_str(until), u->errcode);
	}
	LWLockRelease(table_lock);
	if (said)
		return;
	ereport(WARNING,
			(errmsg("shopping_upload: uploads for appid \"%s\" are held until %s",
					u->appid, timestamptz_to_str(until)),
			 errdetail("WeChat answered errcode %d: %s", u->errcode,
					   u->errmsg ? u->errmsg : "(no errmsg)"),
			 errhint("%s", su_retry_hold_hint(u->cls, u->errcode))));
}

/*
 * Ends the holds that keep(app) says (lock not held), logging each with
 * why; returns how many ended.
 */
static int
end_holds(bool (*keep) (const AppState *app), const char *why)
{
	char		ended[SU_MAX_APPIDS][SU_APPID_LEN];
	int			codes[SU_MAX_APPIDS];
	int			n = 0;

	LWLockAcquire(table_lock, LW_EXCLUSIVE);
	for (int i = 0; i < SU_MAX_APPIDS; i++)
	{
		AppState   *app = &table->apps[i];

		if (app->appid[0] != '\0' && app->held_until != 0 && !keep(app))
		{
			strlcpy(ended[n], app->appid, SU_APPID_LEN);
			codes[n++] = app->held_errcode;
			app->held_until = 0;
		}
	}
	LWLockRelease(table_lock);
	for (int i = 0; i < n; i++)
		ereport(LOG,
				(errmsg("shopping_upload worker: the hold of appid \"%s\" (errcode %d) ends: %s",
						ended[i], codes[i], why)));
	return n;
}

static bool
keep_none(const AppState *app)
{
	(void) app;
	return false;
}

static bool
keep_unless_local(const AppState *app)
{
	return !su_retry_is_local_config(app->held_errcode);
}

/*
 * requeue() of held orders ends every hold on purpose: the first worker
 * that sees such a transaction's commit ends them for all.
 */
void
su_apps_take_hold_releases(void)
{
	uint32		released = su_wake_holds_released();
	bool		mine = false;

	if (table == NULL || released == table->releases_applied)
		return;
	LWLockAcquire(table_lock, LW_EXCLUSIVE);
	if (table->releases_applied != released)
	{
		table->releases_applied = released;
		mine = true;
	}
	LWLockRelease(table_lock);
	if (mine)
		(void) end_holds(keep_none, "requeue() ended it");
}

void
su_apps_release_local(void)
{
	if (table != NULL)
		(void) end_holds(keep_unless_local, "the settings were reloaded");
}
