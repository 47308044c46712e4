/*-------------------------------------------------------------------------
 *
 * call.c
 *		A call by hand, in three steps (sync_call.c runs them in a background
 *		worker of its own): prepare in a transaction, send with none open,
 *		record in a transaction.  No transaction is open while the request
 *		waits for WeChat: a writer of the order never waits for it at its
 *		commit.  Each step asks the kind's row of the table (kinds.c) what
 *		to do.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/memutils.h"

#include "audit.h"
#include "call.h"
#include "common.h"
#include "http_sync.h"
#include "kinds.h"
#include "queue.h"
#include "token.h"
#include "upload.h"
#include "queue_commit.h"

/*
 * Asks the worker to look at the rows the record planned (a retry, a hold,
 * a version written while the request was in flight, the verify and the
 * waiting shipping information of an accepted upload): it learns of them
 * at commit.
 */
static void
wake_for(const TimestampTz *earliest)
{
	for (int due = 0; due < SU_DUES; due++)
		if (earliest[due] != 0)
			su_queue_wake_at_commit((SuDue) due);
}

/*
 * A call refused before sending (the validator, a token, a local setting)
 * never changes the state of a version WeChat already has: its lease ends,
 * the audit row says what happened.  True when so.
 */
static bool
restored(SuUpload *u, TimestampTz *earliest)
{
	return !u->sent && u->was_accepted &&
		su_queue_restore(su_kind(u->kind)->due, u->order_id, u->version,
						 u->lease_attempt, earliest);
}

bool
su_call_prepare(SuKind kind, int64 order_id, TimestampTz given_at, SuUpload *u,
				SuCredentials *creds)
{
	const SuKindInfo *k = su_kind(kind);
	MemoryContext cxt = CurrentMemoryContext;
	TimestampTz upload_time;
	bool		prepared = false;
	bool		recorded;
	TimestampTz earliest[SU_DUES] = {0};

	memset(u, 0, sizeof(SuUpload));
	u->by_hand = true;
	u->kind = kind;
	u->order_id = order_id;
	u->given_at = given_at;

	/*
	 * The body tables first, as the worker's claim takes them, waiting: a
	 * TRUNCATE of one of them, whose trigger queues every state row at
	 * commit, is waited for instead of deadlocking with a call that holds a
	 * state row and then waits to read the table.
	 */
	(void) su_lock_kind_tables(kind, true, NULL);
	upload_time = k->begin(order_id, u);
	k->prepare(1, &u, &upload_time, &cxt, &prepared);
	MemoryContextSwitchTo(cxt);
	if (u->deferred && u->next_state != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s(" INT64_FORMAT ") sent nothing: %s",
						k->function, order_id, u->errmsg),
				 strcmp(u->next_state, "needs_reship") == 0 ?
				 errhint("Call shopping_upload.reship(" INT64_FORMAT ") to send it as the payment's one re-ship.",
						 order_id) : 0));
	if (u->deferred)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("order " INT64_FORMAT " has not been uploaded yet", order_id),
				 errdetail("Its current version was written after the check: WeChat does not have it yet."),
				 errhint("Try again once the order is uploaded.")));
	if (!prepared && u->gone)
		su_order_missing(order_id);
	if (!prepared)
	{
		/* refused before sending: audited and recorded at once */
		su_audit_insert(&u, 1);
		if (!restored(u, earliest))
			(void) k->record(&u, 1, &recorded, earliest);
		MemoryContextSwitchTo(cxt);
		wake_for(earliest);
		return false;
	}
	su_credentials_load(u->appid, creds);
	return true;
}

bool
su_call_send(SuUpload *u, const SuCredentials *creds, int round)
{
	SuTokenResult tok;

	if (round > 0)
	{
		/* a second attempt, audited on its own, with a fresh token */
		u->attempt++;
		u->errmsg = u->transport_error = u->verify_result = NULL;
		u->http_status = 0;
		u->cls = SU_CLASS_OK;
	}
	if (!su_token_get(creds, &tok))
	{
		su_upload_token_failed(u, tok.errcode, tok.errmsg);
		return true;
	}
	su_upload_request(u, su_kind(u->kind)->path, tok.token);
	su_http_perform(&u->req);
	su_upload_conclude(u, su_kind(u->kind)->classify);
	return u->cls != SU_CLASS_REFRESH_TOKEN || round > 0;
}

void
su_call_record(SuUpload *u, bool final)
{
	MemoryContext cxt = CurrentMemoryContext;

	su_audit_insert(&u, 1);
	MemoryContextSwitchTo(cxt);
	if (final)
		su_call_record_state(u);
}

void
su_call_record_state(SuUpload *u)
{
	const SuKindInfo *k = su_kind(u->kind);
	MemoryContext cxt = CurrentMemoryContext;
	bool		recorded;
	TimestampTz earliest[SU_DUES] = {0};

	/* writers hold the state row a moment at their commit: waited for */
	su_queue_lock_state(k->due, u->order_id);
	if (restored(u, earliest))
	{
		MemoryContextSwitchTo(cxt);
		wake_for(earliest);
		return;
	}
	(void) k->record(&u, 1, &recorded, earliest);
	MemoryContextSwitchTo(cxt);
	wake_for(earliest);
}
