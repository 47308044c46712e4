/*-------------------------------------------------------------------------
 *
 * alerts.c
 *		WARNINGs worth alerting on: an order the worker could not upload and
 *		that will not go by itself (rejected, dead) or not soon (held).
 *		One a minute at most per appid and errcode, so that a bad batch or a
 *		wrong secret makes one line; the ones not logged are counted, and
 *		said once the minute is over.
 *
 * An appid has a count of its own only when the worker holds credentials
 * for it (apps.c): any writer can make up appids, and they share one count
 * per errcode, so that they can neither grow the table nor push a real
 * appid's alerts out.  The appid a line names is cut and cleaned: it is a
 * writer's text.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "alerts.h"
#include "apps.h"
#include "kinds.h"
#include "mono.h"
#include "retry.h"
#include "token.h"

#define ALERT_WINDOW_USECS	(60 * USECS_PER_SEC)
#define ALERT_MAX_KEYS		256

typedef struct AlertKey
{
	char		appid[SU_APPID_LEN];	/* "": an appid without credentials */
	int			errcode;
} AlertKey;

typedef struct AlertState
{
	AlertKey	key;			/* hash key */
	TimestampTz logged_at;		/* monotonic; when the last one was logged */
	int64		unlogged;		/* since then, counted, not logged */
	const char *state;			/* the last one's state (a static string) */
} AlertState;

static HTAB *alerts = NULL;
static TimestampTz flushed_at = 0;

/* an appid for a log line: at most 63 bytes, whole characters, printable */
static char *
shown_appid(const char *appid)
{
	char	   *s;
	int			len;

	if (appid == NULL || appid[0] == '\0')
		return pstrdup("(none)");
	len = pg_mbcliplen(appid, (int) strnlen(appid, 4 * SU_APPID_LEN), SU_APPID_LEN - 1);
	s = pnstrdup(appid, len);
	for (char *p = s; *p; p++)
		if ((unsigned char) *p < 0x20 || *p == 0x7f)
			*p = '?';
	return s;
}

/* what an operator does about a row left in this state */
static const char *
hint_for(const char *state, int errcode)
{
	if (strcmp(state, "rejected") == 0)
		return "WeChat (or the validator) refused the order's data: shopping_upload.order_status shows why; "
			"a change to the order queues it again.";
	if (strcmp(state, "dead") == 0)
		return "Every attempt failed (max_attempts): once the cause is gone, "
			"shopping_upload.requeue(order_id) sends it again.";
	if (errcode == SU_ERR_LOCAL_CONFIG)
		return su_retry_hold_hint(SU_CLASS_CONFIG, errcode);
	return "Held until the time in shopping_upload.holds: fix the cause (the message says which), "
		"then shopping_upload.requeue(NULL, '{held}') sends what it held at once.";
}

/* drops the counts whose minute is over and that have nothing to say */
static void
evict(TimestampTz now)
{
	HASH_SEQ_STATUS seq;
	AlertState *a;

	hash_seq_init(&seq, alerts);
	while ((a = hash_seq_search(&seq)) != NULL)
		if (a->unlogged == 0 && now - a->logged_at >= ALERT_WINDOW_USECS)
			(void) hash_search(alerts, &a->key, HASH_REMOVE, NULL);
}

static AlertState *
alert_state(const SuUpload *u, TimestampTz now)
{
	AlertKey	key;
	AlertState *a;
	bool		found;

	if (alerts == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(AlertKey);
		ctl.entrysize = sizeof(AlertState);
		ctl.hcxt = TopMemoryContext;
		alerts = hash_create("shopping_upload alerts", 64, &ctl,
							 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	memset(&key, 0, sizeof(key));
	if (u->appid != NULL && strlen(u->appid) < SU_APPID_LEN && su_apps_known(u->appid))
		strlcpy(key.appid, u->appid, sizeof(key.appid));
	key.errcode = u->errcode;
	if (hash_get_num_entries(alerts) >= ALERT_MAX_KEYS &&
		hash_search(alerts, &key, HASH_FIND, NULL) == NULL)
	{
		evict(now);
		if (hash_get_num_entries(alerts) >= ALERT_MAX_KEYS)
			memset(&key, 0, sizeof(key));	/* one count for the rest */
	}
	a = hash_search(alerts, &key, HASH_ENTER, &found);
	if (!found)
	{
		a->logged_at = 0;
		a->unlogged = 0;
		a->state = NULL;
	}
	return a;
}

void
su_alert_outcome(const SuUpload *u)
{
	AlertState *a;
	TimestampTz now = su_mono_now();

	if (u->next_state == NULL ||
		(strcmp(u->next_state, "rejected") != 0 && strcmp(u->next_state, "dead") != 0 &&
		 strcmp(u->next_state, "held") != 0))
		return;
	a = alert_state(u, now);
	if (a->logged_at != 0 && now - a->logged_at < ALERT_WINDOW_USECS)
	{
		a->unlogged++;
		a->state = u->next_state;
		return;
	}
	ereport(WARNING,
			(errmsg("shopping_upload: order " INT64_FORMAT " (%s, appid %s) is %s after errcode %d: %s",
					u->order_id, su_kind(u->kind)->name, shown_appid(u->appid),
					u->next_state, u->errcode, u->errmsg ? u->errmsg : "(no errmsg)"),
			 errhint("%s", hint_for(u->next_state, u->errcode))));
	a->logged_at = now;
	a->unlogged = 0;
	a->state = u->next_state;
}

void
su_alert_flush(void)
{
	HASH_SEQ_STATUS seq;
	AlertState *a;
	TimestampTz now = su_mono_now();

	if (alerts == NULL || now - flushed_at < USECS_PER_SEC)
		return;
	flushed_at = now;
	hash_seq_init(&seq, alerts);
	while ((a = hash_seq_search(&seq)) != NULL)
		if (a->unlogged > 0 && now - a->logged_at >= ALERT_WINDOW_USECS)
		{
			ereport(WARNING,
					(errmsg("shopping_upload: " INT64_FORMAT " more orders of %s%s ended %s after errcode %d in the last minute",
							a->unlogged,
							a->key.appid[0] ? "appid " : "appids without credentials",
							a->key.appid[0] ? shown_appid(a->key.appid) : "",
							a->state ? a->state : "rejected, dead or held",
							a->key.errcode),
					 errhint("%s", hint_for(a->state ? a->state : "held", a->key.errcode))));
			a->logged_at = now;
			a->unlogged = 0;
		}
}
