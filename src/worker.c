/*-------------------------------------------------------------------------
 *
 * worker.c
 *		The launcher and the upload worker.
 *
 * The launcher (a static background worker, connected to no database)
 * starts the worker when shopping_upload.database_name exists and restarts
 * it when it stops; it waits quietly while the database does not exist.
 *
 * The worker's loop:
 *   claim due orders in a short transaction (FOR UPDATE SKIP LOCKED, with a
 *   lease), build and validate them there;
 *   send them with no transaction open, many in flight (libcurl multi,
 *   keep-alive), at most shopping_upload.max_rate a second per appid;
 *   record the answers (audit rows, next states) in a second short
 *   transaction.
 * It sleeps on its latch, which committing transactions that queued an
 * order set, or until the next retry is due.  A worker that dies leaves its
 * orders "uploading" until their lease runs out; the next worker takes them
 * again at once: delivery is at-least-once.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "lib/ilist.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "http.h"
#include "queue.h"
#include "shopping_upload.h"
#include "token.h"
#include "upload.h"

PGDLLEXPORT void su_launcher_main(Datum arg);
PGDLLEXPORT void su_worker_main(Datum arg);

#define CLAIM_MAX			500
#define AUDIT_TRIM_BATCH	1000
#define MAX_APPS			64

/* ---------------------------------------------------------------------
 * Waking the worker (any backend)
 * ---------------------------------------------------------------------
 */

void
su_wake_worker(void)
{
	if (su_shared == NULL)
		return;
	SpinLockAcquire(&su_shared->mutex);
	if (su_shared->worker_latch && su_shared->worker_dboid == MyDatabaseId)
		SetLatch(su_shared->worker_latch);
	SpinLockRelease(&su_shared->mutex);
}

static void
publish_worker(int code, Datum arg)
{
	bool		on = DatumGetBool(arg);

	(void) code;
	SpinLockAcquire(&su_shared->mutex);
	su_shared->worker_latch = on ? MyLatch : NULL;
	su_shared->worker_pid = on ? MyProcPid : 0;
	su_shared->worker_dboid = on ? MyDatabaseId : InvalidOid;
	SpinLockRelease(&su_shared->mutex);
}

/* ---------------------------------------------------------------------
 * The launcher
 * ---------------------------------------------------------------------
 */

void
su_register_launcher(void)
{
	BackgroundWorker w;

	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = 5;
	snprintf(w.bgw_library_name, BGW_MAXLEN, "shopping_upload");
	snprintf(w.bgw_function_name, BGW_MAXLEN, "su_launcher_main");
	snprintf(w.bgw_name, BGW_MAXLEN, "shopping_upload launcher");
	snprintf(w.bgw_type, BGW_MAXLEN, "shopping_upload launcher");
	RegisterBackgroundWorker(&w);
}

/* scans pg_database as the autovacuum launcher does: no database needed */
static bool
database_exists(void)
{
	bool		exists = false;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while (!exists && (tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		exists = strcmp(NameStr(db->datname), su_database_name) == 0 &&
			db->datconnlimit != -2; /* -2: being dropped */
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return exists;
}

static BackgroundWorkerHandle *
start_worker(void)
{
	BackgroundWorker w;
	BackgroundWorkerHandle *handle;

	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = BGW_NEVER_RESTART; /* the launcher restarts it */
	snprintf(w.bgw_library_name, BGW_MAXLEN, "shopping_upload");
	snprintf(w.bgw_function_name, BGW_MAXLEN, "su_worker_main");
	snprintf(w.bgw_name, BGW_MAXLEN, "shopping_upload worker");
	snprintf(w.bgw_type, BGW_MAXLEN, "shopping_upload worker");
	w.bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(&w, &handle))
		return NULL;
	return handle;
}

void
su_launcher_main(Datum arg)
{
	BackgroundWorkerHandle *handle = NULL;
	TimestampTz next_start = 0;
	bool		said_missing = false;

	(void) arg;
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	su_shared->launcher_pid = MyProcPid;

	for (;;)
	{
		TimestampTz now = GetCurrentTimestamp();
		pid_t		pid;

		CHECK_FOR_INTERRUPTS();
		if (ShutdownRequestPending)
			break;
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		if (handle && GetBackgroundWorkerPid(handle, &pid) == BGWH_STOPPED)
		{
			pfree(handle);
			handle = NULL;
			next_start = TimestampTzPlusMilliseconds(now, 1000);
		}
		if (handle == NULL && now >= next_start &&
			now - su_shared->drop_requested_at > 10 * USECS_PER_SEC)
		{
			if (database_exists())
			{
				said_missing = false;
				handle = start_worker();
				if (handle == NULL)
					next_start = TimestampTzPlusMilliseconds(now, 5000);
			}
			else if (!said_missing)
			{
				ereport(LOG,
						(errmsg("shopping_upload launcher: database \"%s\" does not exist; waiting for it",
								su_database_name),
						 errhint("Set shopping_upload.database_name to the database that holds the orders.")));
				said_missing = true;
			}
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 handle ? 10000 : 1000, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	if (handle)
		TerminateBackgroundWorker(handle);
	proc_exit(0);
}

/* ---------------------------------------------------------------------
 * The worker's state
 * ---------------------------------------------------------------------
 */

typedef struct Flight
{
	dlist_node	node;
	MemoryContext cxt;
	SuUpload	u;
	bool		attempted;		/* false: released without an attempt */
} Flight;

typedef struct AppState
{
	char		appid[SU_APPID_LEN];
	double		tokens;			/* rate limiter bucket */
	TimestampTz refilled_at;
	TimestampTz held_until;		/* 45009, permission errors */
	SuErrClass	held_cls;
	int			held_errcode;
	char		held_errmsg[256];
} AppState;

static MemoryContext flights_cxt;
static dlist_head ready = DLIST_STATIC_INIT(ready); /* claimed, not sent */
static dlist_head inflight = DLIST_STATIC_INIT(inflight);	/* sent */
static dlist_head done = DLIST_STATIC_INIT(done);	/* to record */
static int	n_ready = 0;
static int	n_inflight = 0;
static int	n_done = 0;			/* left by the last record_done() */
static TimestampTz last_record = 0;
static TimestampTz next_due = 0;	/* earliest planned retry, 0: none */
static TimestampTz next_trim = 0;	/* next deletion of old audit rows */
static bool claim_wanted = true;	/* the queue may hold due orders */
static TimestampTz last_claim = 0;	/* when the last claim ran */
static AppState apps[MAX_APPS];
static int	n_apps = 0;

static AppState *
app_state(const char *appid)
{
	for (int i = 0; i < n_apps; i++)
		if (strcmp(apps[i].appid, appid) == 0)
			return &apps[i];
	if (n_apps == MAX_APPS)
		n_apps = 0;				/* forget the oldest: only limits are lost */
	memset(&apps[n_apps], 0, sizeof(AppState));
	strlcpy(apps[n_apps].appid, appid, SU_APPID_LEN);
	return &apps[n_apps++];
}

static Flight *
new_flight(void)
{
	MemoryContext cxt = AllocSetContextCreate(flights_cxt, "shopping_upload flight",
											  ALLOCSET_SMALL_SIZES);
	Flight	   *f = MemoryContextAllocZero(cxt, sizeof(Flight));

	f->cxt = cxt;
	f->u.via = "worker";
	f->attempted = true;
	return f;
}

static void
free_flight(Flight *f)
{
	MemoryContextDelete(f->cxt);
}

/* the order's appid is held: release it without an attempt */
static void
release_held(Flight *f, AppState *app)
{
	f->attempted = false;
	f->u.cls = app->held_cls;
	f->u.errcode = app->held_errcode;
	f->u.errmsg = MemoryContextStrdup(f->cxt, app->held_errmsg);
	dlist_push_tail(&done, &f->node);
}

/* 45009 or a permission error: hold the appid, and say so once */
static void
maybe_hold(SuUpload *u)
{
	AppState   *app;
	TimestampTz until;
	TimestampTz now = GetCurrentTimestamp();

	if (u->appid == NULL ||
		(u->cls != SU_CLASS_QUOTA_DAY && u->cls != SU_CLASS_CONFIG))
		return;
	app = app_state(u->appid);
	if (app->held_until > now)
		return;
	(void) su_queue_next_state(u, now, &until);
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
			 errhint(u->cls == SU_CLASS_QUOTA_DAY ?
					 "The daily quota is used up; uploads go on at midnight, Beijing time." :
					 "Check the appid's permission for uploadShoppingInfo and its credentials.")));
}

/* rate limiter: may one more request of this appid start now? */
static bool
rate_take(AppState *app, TimestampTz now)
{
	if (su_max_rate <= 0)
		return true;
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

/* ---------------------------------------------------------------------
 * The worker's transactions
 * ---------------------------------------------------------------------
 */

static MemoryContext txn_caller_cxt = NULL;

/* a short transaction with SPI; commit_txn() returns to the caller's context */
static void
begin_txn(const char *what)
{
	txn_caller_cxt = CurrentMemoryContext;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, what);

	/*
	 * A session that called upload_shopping_info() holds its order's state
	 * until it commits: never wait on it for long.  An error ends the round;
	 * the leases bring its orders back.
	 */
	(void) set_config_option("lock_timeout", "10s", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
}

static void
commit_txn(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	MemoryContextSwitchTo(txn_caller_cxt);
}

static bool
extension_exists(void)
{
	bool		exists;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	exists = OidIsValid(get_extension_oid("shopping_upload", true));
	CommitTransactionCommand();
	return exists;
}

/*
 * Claims up to max due orders; builds and validates them.  Refused ones are
 * recorded at once; the others join the ready list.  Returns the count.
 */
static int
claim(int max, TimestampTz *next_due)
{
	SuClaim    *claims = palloc(sizeof(SuClaim) * max);
	Flight	  **flights;
	SuUpload  **uploads;
	TimestampTz *times;
	MemoryContext *cxts;
	bool	   *ok;
	dlist_head	batch;
	dlist_head	refused;
	int			n;

	dlist_init(&batch);
	dlist_init(&refused);
	begin_txn("claiming orders");

	/*
	 * A claim lost in a crash costs nothing (the order is due again), so its
	 * commit need not wait for the WAL flush.  The record transaction's does.
	 */
	(void) set_config_option("synchronous_commit", "off", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
	n = su_queue_claim(max, claims);
	flights = palloc(sizeof(Flight *) * Max(n, 1));
	uploads = palloc(sizeof(SuUpload *) * Max(n, 1));
	times = palloc(sizeof(TimestampTz) * Max(n, 1));
	cxts = palloc(sizeof(MemoryContext) * Max(n, 1));
	ok = palloc(sizeof(bool) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		Flight	   *f = flights[i] = new_flight();

		f->u.order_id = claims[i].order_id;
		f->u.version = claims[i].version;
		f->u.attempt = claims[i].attempt;
		uploads[i] = &f->u;
		times[i] = claims[i].upload_time;
		cxts[i] = f->cxt;
	}
	if (n > 0)
		su_upload_prepare(n, uploads, times, cxts, ok);
	for (int i = 0; i < n; i++)
	{
		Flight	   *f = flights[i];

		if (ok[i])
			dlist_push_tail(&batch, &f->node);
		else if (f->u.gone)
		{
			/* deleted behind the triggers' back (replica role): forget it */
			su_queue_forget(f->u.order_id);
			free_flight(f);
		}
		else
		{
			/* refused before sending: recorded with the answers */
			maybe_hold(&f->u);
			dlist_push_tail(&refused, &f->node);
		}
	}
	if (n < max)
		*next_due = su_queue_next_due();
	commit_txn();

	/* only now are the claims ours */
	while (!dlist_is_empty(&batch))
	{
		dlist_push_tail(&ready, dlist_pop_head_node(&batch));
		n_ready++;
	}
	while (!dlist_is_empty(&refused))
		dlist_push_tail(&done, dlist_pop_head_node(&refused));
	pfree(claims);
	return n;
}

/*
 * Writes the audit rows and next states of the finished flights.  A flight
 * whose order's state another transaction holds stays in the done list for
 * a later round: its answer is never thrown away.
 */
static void
record_done(void)
{
	dlist_mutable_iter iter;
	Flight	  **flights;
	SuUpload  **all;
	SuUpload  **attempted;
	bool	   *recorded;
	int			n = 0;
	int			n_attempted = 0;

	dlist_foreach_modify(iter, &done)
		n++;
	flights = palloc(sizeof(Flight *) * n);
	all = palloc(sizeof(SuUpload *) * n);
	attempted = palloc(sizeof(SuUpload *) * n);
	recorded = palloc(sizeof(bool) * n);
	n = 0;
	dlist_foreach_modify(iter, &done)
	{
		Flight	   *f = dlist_container(Flight, node, iter.cur);

		flights[n] = f;
		all[n++] = &f->u;
	}

	begin_txn("recording uploads");
	(void) su_queue_record(all, n, recorded);
	for (int i = 0; i < n; i++)
		if (recorded[i] && flights[i]->attempted)
			attempted[n_attempted++] = all[i];
	su_audit_insert(attempted, n_attempted);
	commit_txn();

	for (int i = 0; i < n; i++)
		if (recorded[i])
		{
			dlist_delete(&flights[i]->node);
			free_flight(flights[i]);
		}
	n_done = 0;
	dlist_foreach_modify(iter, &done)
		n_done++;
}

/* a token for the appid, fetching one (with its credentials) if needed */
static bool
worker_token(Flight *f, char **token)
{
	SuCredentials creds;
	SuTokenResult res;
	MemoryContext old;

	if ((*token = su_token_peek(f->u.appid)) != NULL)
		return true;
	old = MemoryContextSwitchTo(f->cxt);
	begin_txn("reading credentials");
	MemoryContextSwitchTo(f->cxt);
	su_credentials_load(f->u.appid, &creds);
	commit_txn();
	if (su_token_get(&creds, &res))
		*token = res.token;
	else
		su_upload_token_failed(&f->u, res.errcode, res.errmsg);
	MemoryContextSwitchTo(old);
	return *token != NULL;
}

/* Starts what the in-flight cap and the rate limits allow. */
static void
start_ready(SuHttpClient *client, TimestampTz now, bool *rate_limited)
{
	dlist_mutable_iter iter;

	*rate_limited = false;
	dlist_foreach_modify(iter, &ready)
	{
		Flight	   *f = dlist_container(Flight, node, iter.cur);
		AppState   *app = app_state(f->u.appid);
		char	   *token;
		MemoryContext old;

		if (n_inflight >= su_max_inflight)
			break;
		if (app->held_until > now)
		{
			dlist_delete(&f->node);
			n_ready--;
			release_held(f, app);
			continue;
		}
		if (!rate_take(app, now))
		{
			*rate_limited = true;
			continue;
		}
		dlist_delete(&f->node);
		n_ready--;
		if (!worker_token(f, &token))
		{
			maybe_hold(&f->u);
			dlist_push_tail(&done, &f->node);
			continue;
		}
		old = MemoryContextSwitchTo(f->cxt);
		su_upload_request(&f->u, token);
		f->u.req.user = f;
		MemoryContextSwitchTo(old);
		if (su_http_start(client, &f->u.req))
		{
			dlist_push_tail(&inflight, &f->node);
			n_inflight++;
		}
		else
		{
			old = MemoryContextSwitchTo(f->cxt);
			su_upload_conclude(&f->u);
			MemoryContextSwitchTo(old);
			dlist_push_tail(&done, &f->node);
		}
	}
}

/* Moves finished requests to the done list. */
static void
collect(SuHttpClient *client)
{
	SuHttpRequest *req;

	while ((req = su_http_next_done(client)) != NULL)
	{
		Flight	   *f = req->user;
		MemoryContext old = MemoryContextSwitchTo(f->cxt);

		dlist_delete(&f->node);
		n_inflight--;
		su_upload_conclude(&f->u);
		maybe_hold(&f->u);
		MemoryContextSwitchTo(old);
		dlist_push_tail(&done, &f->node);
	}
}

/*
 * after an error: drop what was in hand but the answers; leases bring the
 * orders back
 */
static void
drop_all(SuHttpClient *client)
{
	while (!dlist_is_empty(&ready))
		free_flight(dlist_container(Flight, node, dlist_pop_head_node(&ready)));
	while (!dlist_is_empty(&inflight))
	{
		Flight	   *f = dlist_container(Flight, node, dlist_pop_head_node(&inflight));

		su_http_cancel(client, &f->u.req);
		free_flight(f);
	}
	n_ready = 0;
	n_inflight = 0;
}

static void
wait_for_extension(void)
{
	bool		said = false;

	while (!extension_exists())
	{
		if (!said)
			ereport(LOG,
					(errmsg("shopping_upload worker: waiting for CREATE EXTENSION shopping_upload in database \"%s\"",
							su_database_name)));
		said = true;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 5000, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
	}
	begin_txn("recovering");
	su_queue_recover();
	commit_txn();
}

void
su_worker_main(Datum arg)
{
	SuHttpClient *client;
	MemoryContext loop_cxt;

	(void) arg;
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(su_database_name, NULL, 0);
	pgstat_report_appname("shopping_upload worker");
	/* short, frequent queries: compiling them would cost more than it saves */
	SetConfigOption("jit", "off", PGC_SUSET, PGC_S_OVERRIDE);

	publish_worker(0, BoolGetDatum(true));
	before_shmem_exit(publish_worker, BoolGetDatum(false));

	client = su_http_client();
	if (client == NULL)
		ereport(FATAL,
				(errmsg("shopping_upload worker: could not initialize libcurl")));
	flights_cxt = AllocSetContextCreate(TopMemoryContext, "shopping_upload flights",
										ALLOCSET_DEFAULT_SIZES);
	loop_cxt = AllocSetContextCreate(TopMemoryContext, "shopping_upload loop",
									 ALLOCSET_DEFAULT_SIZES);
	wait_for_extension();

	for (;;)
	{
		TimestampTz now;
		bool		rate_limited = false;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			next_trim = 0;		/* a new retention applies at once */
			claim_wanted = true;
		}
		MemoryContextReset(loop_cxt);
		MemoryContextSwitchTo(loop_cxt);
		now = GetCurrentTimestamp();

		PG_TRY();
		{
			int			room = su_max_inflight - n_inflight - n_ready;

			/*
			 * Claims are at least claim_interval apart: under a stream of
			 * small transactions, the orders of several go in one batch.
			 */
			if (room > 0 && (claim_wanted || (next_due != 0 && now >= next_due)) &&
				now - last_claim >= su_claim_interval_ms * (int64) 1000)
			{
				int			want = Min(room, CLAIM_MAX);

				last_claim = now;
				claim_wanted = (claim(want, &next_due) == want);
			}
			start_ready(client, now, &rate_limited);
			if (n_inflight > 0)
			{
				su_http_wait(client, 10);
				collect(client);
			}
			if (!dlist_is_empty(&done) &&
				(n_done == 0 || now - last_record >= 20 * 1000))
			{
				last_record = now;
				record_done();
				claim_wanted = true;	/* retries may be due; room was made */
			}
			if (su_audit_retention_s > 0 && now >= next_trim)
			{
				begin_txn("deleting old audit rows");
				next_trim = su_audit_trim(AUDIT_TRIM_BATCH) == AUDIT_TRIM_BATCH ?
					now : TimestampTzPlusMilliseconds(now, 60000);
				commit_txn();
			}
		}
		PG_CATCH();
		{
			MemoryContextSwitchTo(loop_cxt);
			EmitErrorReport();
			FlushErrorState();
			AbortCurrentTransaction();
			pgstat_report_activity(STATE_IDLE, NULL);
			drop_all(client);
			claim_wanted = true;
			next_due = 0;
			/* a dropped extension, or a passing problem: wait a little */
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 1000, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			wait_for_extension();
			continue;
		}
		PG_END_TRY();

		if (n_inflight == 0 && (n_ready == 0 || rate_limited))
		{
			TimestampTz t = GetCurrentTimestamp();
			TimestampTz next_claim = last_claim + su_claim_interval_ms * (int64) 1000;
			long		timeout = 60000;

			if (claim_wanted || (next_due != 0 && next_due <= t))
				timeout = next_claim > t ? (next_claim - t + 999) / 1000 : 0;
			else if (next_due != 0)
				timeout = Min(timeout, (next_due - t) / 1000 + 1);
			if (rate_limited)
				timeout = Min(timeout, 5);
			if (n_done > 0)
				timeout = Min(timeout, 20);	/* answers to record */
			if (timeout > 0)
			{
				(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								 timeout, PG_WAIT_EXTENSION);
				ResetLatch(MyLatch);
				claim_wanted = true;
			}
		}
		else if (MyLatch->is_set)
		{
			ResetLatch(MyLatch);
			claim_wanted = true;
		}
	}
}
