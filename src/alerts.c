/*-------------------------------------------------------------------------
 *
 * alerts.c
 *		WARNINGs worth alerting on: an order the worker could not upload and
 *		that will not go by itself (rejected, dead) or not soon (held).
 *		One a minute at most per appid and errcode, so that a bad batch or a
 *		wrong secret makes one line, with a count of the ones not logged.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "alerts.h"
#include "kinds.h"
#include "mono.h"
#include "retry.h"
#include "token.h"

#define ALERT_WINDOW_USECS	(60 * USECS_PER_SEC)

typedef struct AlertKey
{
	char		appid[SU_APPID_LEN];
	int			errcode;
} AlertKey;

typedef struct AlertState
{
	AlertKey	key;			/* hash key */
	TimestampTz logged_at;		/* monotonic; when the last one was logged */
	int64		unlogged;		/* since then, counted, not logged */
} AlertState;

static HTAB *alerts = NULL;

/* what an operator does about a row left in this state */
static const char *
hint_for(const char *state)
{
	if (strcmp(state, "rejected") == 0)
		return "WeChat (or the validator) refused the order's data: shopping_upload.order_status shows why; "
			"a change to the order queues it again.";
	if (strcmp(state, "dead") == 0)
		return "Every attempt failed (max_attempts): once the cause is gone, "
			"shopping_upload.requeue(order_id) sends it again.";
	return "Held until the time in shopping_upload.holds: fix the cause (the detail says which), "
		"then shopping_upload.requeue(NULL, '{held}') sends what it held at once.";
}

void
su_alert_outcome(const SuUpload *u)
{
	AlertKey	key;
	AlertState *a;
	bool		found;
	TimestampTz now = su_mono_now();

	if (u->next_state == NULL ||
		(strcmp(u->next_state, "rejected") != 0 && strcmp(u->next_state, "dead") != 0 &&
		 strcmp(u->next_state, "held") != 0))
		return;
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
	if (u->appid != NULL)
		strlcpy(key.appid, u->appid, sizeof(key.appid));
	key.errcode = u->errcode;
	/* a made-up appid per order must not grow the table without end */
	if (hash_get_num_entries(alerts) >= 1024 &&
		hash_search(alerts, &key, HASH_FIND, NULL) == NULL)
		memset(key.appid, 0, sizeof(key.appid));
	a = hash_search(alerts, &key, HASH_ENTER, &found);
	if (!found)
	{
		a->logged_at = 0;
		a->unlogged = 0;
	}
	if (a->logged_at != 0 && now - a->logged_at < ALERT_WINDOW_USECS)
	{
		a->unlogged++;
		return;
	}
	ereport(WARNING,
			(errmsg("shopping_upload: order " INT64_FORMAT " (%s, appid %s) is %s after errcode %d: %s",
					u->order_id, su_kind(u->kind)->name,
					u->appid ? u->appid : "none", u->next_state, u->errcode,
					u->errmsg ? u->errmsg : "(no errmsg)"),
			 a->unlogged > 0 ?
			 errdetail("And " INT64_FORMAT " more of appid %s with errcode %d since the last such line, not logged.",
					   a->unlogged, u->appid ? u->appid : "none", u->errcode) : 0,
			 errhint("%s", hint_for(u->next_state))));
	a->logged_at = now;
	a->unlogged = 0;
}
