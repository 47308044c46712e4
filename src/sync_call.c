/*-------------------------------------------------------------------------
 *
 * sync_call.c
 *		The calls by hand, each in a background worker of its own.
 *
 * upload_shopping_info(), verify_shopping_info() and upload_shipping_info()
 * send a request that WeChat keeps whatever the database does next.  Made in
 * the caller's transaction, a request would carry rows that a ROLLBACK (or
 * a ROLLBACK PREPARED) later takes back, and its audit row and state would
 * go with them: WeChat would keep content the database never committed,
 * with no trace.  So the call is made in a transaction of its own, by a
 * short-lived background worker connected to the same database as the
 * function's owner (the functions are SECURITY DEFINER): it reads committed
 * rows only, and commits its audit row and state before it answers.  The
 * caller waits for it, cancellably; a caller cancelled meanwhile leaves the
 * call to finish and be recorded.
 *
 * A transaction that wrote to the extension's tables is refused: what it
 * wrote is not committed, so it is not what would be sent.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "call.h"
#include "common.h"
#include "http_sync.h"
#include "kinds.h"
#include "retry.h"
#include "sync_call.h"
#include "token.h"
#include "extversion.h"
#include "queue_commit.h"

PGDLLEXPORT void su_sync_main(Datum arg);

#define MSG_LEN				2048

/*
 * The settings a caller may have set in its session that shape a call; the
 * others come from the configuration, which the worker reads as well.
 */
static const char *const passed_settings[] = {
	"shopping_upload.appid",
	"shopping_upload.secret",
	"shopping_upload.api_base_url",
	"shopping_upload.ca_file",
	"shopping_upload.allow_insecure_http",
	"shopping_upload.proxy",
	"shopping_upload.connect_timeout",
	"shopping_upload.timeout",
};

#define N_PASSED lengthof(passed_settings)
#define SETTING_LEN 1024

/* The call and its answer, in a dynamic shared memory segment. */
typedef struct SyncSlot
{
	/* the call */
	char		kind[NAMEDATALEN];	/* its name: the call's worker may have
									 * loaded another build of the library */
	int64		order_id;
	TimestampTz given_at;		/* a timestamp the call is given (0: none) */
	Oid			dboid;
	Oid			roleoid;
	Oid			caller;			/* the role that called the function */
	Oid			session_user;	/* and the session's */
	bool		setting_null[N_PASSED];
	char		settings[N_PASSED][SETTING_LEN];

	/* the caller was cancelled: end the request (see su_http_stop) */
	volatile bool stop;
	Latch	   *worker_latch;	/* the call's worker's, once it runs */

	/* the answer, written before the worker exits */
	bool		answered;		/* the call ended (with a result or an error) */
	bool		failed;			/* it raised an error: sqlerrcode... */
	int			sqlerrcode;
	char		message[MSG_LEN];
	char		detail[MSG_LEN];
	char		hint[MSG_LEN];
	int			errcode;
	bool		has_errmsg;
	char		errmsg[MSG_LEN];
	long		http_status;
	bool		sent;
	int64		audit_id;
	bool		has_verify_result;
	char		verify_result[MSG_LEN];
	bool		has_result;
	char		result[SU_RESULT_MAX_BYTES + 1];	/* whole, or not at all */
} SyncSlot;

/* the SQL function that makes a call of this kind */
static const char *
call_name(SuKind kind)
{
	return su_kind(kind)->function;
}

/* copies s into a MSG_LEN buffer, cut at a character */
static void
copy_text(char *dst, const char *s)
{
	int			len;

	if (s == NULL)
	{
		dst[0] = '\0';
		return;
	}
	len = (int) strlen(s);
	if (len >= MSG_LEN)
		len = pg_mbcliplen(s, len, MSG_LEN - 1);
	memcpy(dst, s, len);
	dst[len] = '\0';
}

/* ---------------------------------------------------------------------
 * The caller's side
 * ---------------------------------------------------------------------
 */

static BackgroundWorkerHandle *
start_call(dsm_segment *seg, SuKind kind, int64 order_id)
{
	BackgroundWorker w;
	BackgroundWorkerHandle *handle;

	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(w.bgw_library_name, BGW_MAXLEN, "shopping_upload");
	snprintf(w.bgw_function_name, BGW_MAXLEN, "su_sync_main");
	snprintf(w.bgw_name, BGW_MAXLEN, "shopping_upload %s(" INT64_FORMAT ")",
			 call_name(kind), order_id);
	snprintf(w.bgw_type, BGW_MAXLEN, "shopping_upload call");
	w.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(seg));
	w.bgw_notify_pid = MyProcPid;

	for (int waited = 0;; waited += SU_SLOT_RETRY_MS)
	{
		if (RegisterDynamicBackgroundWorker(&w, &handle))
			return handle;
		if (waited >= SU_SLOT_WAIT_MS)
			ereport(ERROR,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("no background worker slot is free for %s()", call_name(kind)),
					 errdetail("Each call by hand runs in a background worker of its own for its duration; "
							   "every slot stayed taken for %d ms.", SU_SLOT_WAIT_MS),
					 errhint("Raise max_worker_processes (a restart), or make fewer calls at once.")));
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 SU_SLOT_RETRY_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

void
su_sync_call(SuKind kind, int64 order_id, SuSyncResult *res)
{
	su_sync_call_at(kind, order_id, 0, res);
}

void
su_sync_call_at(SuKind kind, int64 order_id, TimestampTz given_at,
				SuSyncResult *res)
{
	dsm_segment *seg;
	SyncSlot   *slot;
	BackgroundWorkerHandle *handle;
	BgwHandleStatus status;

	memset(res, 0, sizeof(SuSyncResult));

	/*
	 * A standby sends nothing: its call's worker would wait for the end of
	 * recovery, and the primary's worker uploads the order anyway.
	 */
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("%s() cannot run on a standby in recovery", call_name(kind)),
				 errdetail("A call sends the order and records WeChat's answer, which a standby cannot write; nothing was sent."),
				 errhint("Call it on the primary, whose worker uploads the order in any case.")));
	if (su_queue_wrote())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s() cannot run in a transaction that wrote to the tables of shopping_upload",
						call_name(kind)),
				 errdetail("The call sends committed rows only, in a transaction of its own: "
						   "what this transaction wrote is not committed, and would not be sent."),
				 errhint("COMMIT first, then call %s(); or let the worker upload the order after the commit.",
						 call_name(kind))));

	seg = dsm_create(sizeof(SyncSlot), 0);
	slot = dsm_segment_address(seg);
	memset(slot, 0, sizeof(SyncSlot));
	strlcpy(slot->kind, su_kind(kind)->name, sizeof(slot->kind));
	slot->order_id = order_id;
	slot->given_at = given_at;
	slot->dboid = MyDatabaseId;
	slot->roleoid = GetUserId();	/* the function's owner: SECURITY DEFINER */
	slot->caller = GetOuterUserId();	/* outside the function */
	slot->session_user = GetSessionUserId();
	for (int i = 0; i < (int) N_PASSED; i++)
	{
		const char *v = GetConfigOption(passed_settings[i], true, false);

		slot->setting_null[i] = (v == NULL);
		if (v != NULL && strlen(v) >= SETTING_LEN)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s is longer than %d bytes", passed_settings[i], SETTING_LEN - 1)));
		if (v != NULL)
			strlcpy(slot->settings[i], v, SETTING_LEN);
	}

	handle = start_call(seg, kind, order_id);

	/*
	 * Until the worker exits (the postmaster then sets our latch): a cancel
	 * or a statement_timeout ends the wait, not the call, which is recorded
	 * all the same.
	 */
	PG_TRY();
	{
		status = WaitForBackgroundWorkerShutdown(handle);
	}
	PG_CATCH();
	{
		/*
		 * Cancelled: the request in flight ends now, as a transport failure
		 * that the call records (and the worker retries).
		 */
		Latch	   *latch = slot->worker_latch;

		slot->stop = true;
		pg_memory_barrier();
		if (latch)
			SetLatch(latch);
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (status != BGWH_STOPPED)
		ereport(ERROR,
				(errcode(ERRCODE_ADMIN_SHUTDOWN),
				 errmsg("the server is shutting down")));
	pg_read_barrier();
	if (!slot->answered)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("%s(" INT64_FORMAT ") ended without an answer", call_name(kind), order_id),
				 errdetail("Its background worker exited before it answered; the server log says why."),
				 errhint("Look at shopping_upload.order_status and shopping_upload.audit for what was done.")));
	if (slot->failed)
		ereport(ERROR,
				(errcode(slot->sqlerrcode),
				 errmsg_internal("%s", slot->message),
				 slot->detail[0] ? errdetail_internal("%s", slot->detail) : 0,
				 slot->hint[0] ? errhint("%s", slot->hint) :
				 slot->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE ?
				 errhint("The call runs in a transaction of its own: a lock this transaction holds "
						 "on the extension's tables makes it wait.  COMMIT first.") : 0));
	res->errcode = slot->errcode;
	res->errmsg = slot->has_errmsg ? pstrdup(slot->errmsg) : NULL;
	res->http_status = slot->http_status;
	res->sent = slot->sent;
	res->audit_id = slot->audit_id;
	res->verify_result = slot->has_verify_result ? pstrdup(slot->verify_result) : NULL;
	res->result = slot->has_result ? pstrdup(slot->result) : NULL;
	dsm_detach(seg);
}

/* ---------------------------------------------------------------------
 * The call's background worker
 * ---------------------------------------------------------------------
 */

static void
answer(SyncSlot *slot, const SuUpload *u)
{
	slot->errcode = u->errcode;
	slot->has_errmsg = (u->errmsg != NULL);
	copy_text(slot->errmsg, u->errmsg);
	slot->http_status = u->http_status;
	slot->sent = u->sent;
	slot->audit_id = u->audit_id;
	slot->has_verify_result = (u->verify_result != NULL);
	copy_text(slot->verify_result, u->verify_result);
	slot->has_result = u->result != NULL && strlen(u->result) <= SU_RESULT_MAX_BYTES;
	if (slot->has_result)
		strlcpy(slot->result, u->result, sizeof(slot->result));
}

/*
 * Writers limited to appids (appid_grants) upload by hand only the orders of
 * their appids: the calling role and the session's role are both checked,
 * with the rows committed now (in the call's own transaction: a caller's
 * older snapshot does not decide).  An order that does not exist is left to
 * the call, which says so.
 */
void
su_check_caller(const char *function, int64 order_id, Oid caller, Oid session_user)
{
	Oid			types[3] = {NAMEOID, INT8OID, NAMEOID};
	Datum		args[3];
	bool		allowed;
	bool		isnull;
	MemoryContext cxt = CurrentMemoryContext;	/* SPI calls leave it */

	/* the columns of the SELECT below */
	enum
	{
		Anum_check_caller_allowed = 1
	};

	if (superuser_arg(caller) && superuser_arg(session_user))
		return;
	args[0] = DirectFunctionCall1(namein, CStringGetDatum(GetUserNameFromId(caller, false)));
	args[1] = Int64GetDatum(order_id);
	args[2] = DirectFunctionCall1(namein, CStringGetDatum(GetUserNameFromId(session_user, false)));
	if (SPI_execute_with_args("SELECT NOT EXISTS (SELECT FROM " SU_SCHEMA ".appid_grants)"
							  " OR NOT EXISTS (SELECT FROM " SU_SCHEMA ".orders o"
							  "  WHERE o.order_id OPERATOR(pg_catalog.=) $2)"
							  " OR (" SU_SCHEMA ".order_allowed($1, $2)"
							  "  AND " SU_SCHEMA ".order_allowed($3, $2))",
							  3, types, args, NULL, false, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "could not check the appid of order " INT64_FORMAT, order_id);
	allowed = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
										 Anum_check_caller_allowed, &isnull));
	SPI_freetuptable(SPI_tuptable);
	MemoryContextSwitchTo(cxt);
	if (isnull || !allowed)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" may not upload order " INT64_FORMAT,
						GetUserNameFromId(caller, false), order_id),
				 errdetail("%s() of an order is allowed to the roles its appid is granted to "
						   "(shopping_upload.appid_grants).", function)));
}

/* a transaction with SPI connected, the call's context current */
static void
begin_call_txn(void)
{
	MemoryContext cxt = CurrentMemoryContext;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	MemoryContextSwitchTo(cxt);
}

static void
commit_call_txn(MemoryContext cxt)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(cxt);
}

/* in an error's handler: its data, copied into cxt; the transaction aborted */
static ErrorData *
abort_with_error(MemoryContext cxt)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(cxt);
	edata = CopyErrorData();
	FlushErrorState();
	AbortCurrentTransaction();
	MemoryContextSwitchTo(cxt);
	return edata;
}

/*
 * The state an attempt leads to, in a transaction of its own.  If it cannot
 * be written (its row held past lock_timeout), the order stays leased: the
 * worker takes it again when the lease ends, and the log says why.
 */
static void
record_state(SuUpload *u)
{
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		begin_call_txn();
		su_call_record_state(u);
		commit_call_txn(cxt);
	}
	PG_CATCH();
	{
		ErrorData  *edata = abort_with_error(cxt);

		ereport(WARNING,
				(errmsg("shopping_upload: the state of order " INT64_FORMAT " after a call by hand could not be recorded: %s",
						u->order_id, edata->message),
				 errdetail("Its audit row is recorded; the worker takes the order again when its lease ends.")));
		FreeErrorData(edata);
	}
	PG_END_TRY();
}

void
su_sync_main(Datum arg)
{
	dsm_segment *seg;
	SyncSlot   *slot;
	MemoryContext cxt;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	seg = dsm_attach((dsm_handle) DatumGetUInt32(arg));
	if (seg == NULL)
		proc_exit(0);			/* the caller is gone, before anything was done */
	slot = dsm_segment_address(seg);
	/*
	 * As the function's owner, who may be a role that cannot log in
	 * (PostgreSQL 17 lets a worker say so; before, such an owner fails here
	 * and the caller is told the call ended without an answer).
	 */
#ifdef BGWORKER_BYPASS_ROLELOGINCHECK
	BackgroundWorkerInitializeConnectionByOid(slot->dboid, slot->roleoid,
											  BGWORKER_BYPASS_ROLELOGINCHECK);
#else
	BackgroundWorkerInitializeConnectionByOid(slot->dboid, slot->roleoid, 0);
#endif
	su_http_stop = &slot->stop;
	slot->worker_latch = MyLatch;
	pg_memory_barrier();
	pgstat_report_appname("shopping_upload call");

	/* no object of anyone's schema is ever resolved by the call's statements */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	/* every statement reaches its rows by key (as the worker's) */
	SetConfigOption("enable_seqscan", "off", PGC_SUSET, PGC_S_OVERRIDE);
	/* a lock the caller holds must not make the call wait for ever */
	SetConfigOption("lock_timeout", "10s", PGC_SUSET, PGC_S_OVERRIDE);
	/* the queue's statements are READ COMMITTED and write (as the worker's) */
	SetConfigOption("default_transaction_isolation", "read committed",
					PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("default_transaction_read_only", "off",
					PGC_SUSET, PGC_S_OVERRIDE);

	cxt = AllocSetContextCreate(TopMemoryContext, "shopping_upload call",
								ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		SuUpload	u;
		SuCredentials creds;
		bool		final = true;
		SuKind		kind;

		/* 1. prepare: a short transaction (the order is leased) */
		begin_call_txn();
		for (int i = 0; i < (int) N_PASSED; i++)
			if (!slot->setting_null[i])
				(void) set_config_option(passed_settings[i], slot->settings[i],
										 PGC_SUSET, PGC_S_SESSION,
										 GUC_ACTION_SET, true, DEBUG1, false);
		kind = su_kind_by_name(slot->kind);
		pgstat_report_activity(STATE_RUNNING, call_name(kind));
		su_require_extension_version();
		su_check_caller(call_name(kind), slot->order_id, slot->caller, slot->session_user);
		if (su_call_prepare(kind, slot->order_id, slot->given_at, &u, &creds))
		{
			commit_call_txn(cxt);

			/*
			 * 2. send, with no transaction open (not if the caller was
			 * cancelled meanwhile); 3. the audit row, in a transaction of its
			 * own, then the state in another: a state row held long by
			 * another transaction (a prepared one, say) costs the state, left
			 * to the lease, never the audit row of a request sent.  A
			 * rejected token: that attempt is audited, and the request is
			 * sent once more with a fresh token.
			 */
			for (int round = 0; round < 2; round++)
			{
				if (slot->stop)
				{
					u.sent = false;
					u.errcode = WX_ERR_SYSTEM_BUSY;
					u.errmsg = u.transport_error =
						pstrdup("the caller was cancelled before the request was sent");
					u.cls = SU_CLASS_RETRY;
					final = true;
				}
				else
					final = su_call_send(&u, &creds, round);
				begin_call_txn();
				su_call_record(&u, false);
				commit_call_txn(cxt);
				if (final)
					break;
			}
			answer(slot, &u);
			record_state(&u);
		}
		else
		{
			/* refused before sending: audited and recorded at once */
			answer(slot, &u);
			commit_call_txn(cxt);
		}
	}
	PG_CATCH();
	{
		ErrorData  *edata = abort_with_error(cxt);

		slot->failed = true;
		slot->sqlerrcode = edata->sqlerrcode;
		copy_text(slot->message, edata->message);
		copy_text(slot->detail, edata->detail);
		copy_text(slot->hint, edata->hint);
	}
	PG_END_TRY();
	pg_write_barrier();
	slot->answered = true;
	pgstat_report_activity(STATE_IDLE, NULL);
	dsm_detach(seg);
	proc_exit(0);
}
