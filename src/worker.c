/*-------------------------------------------------------------------------
 *
 * worker.c
 *		The launcher and the upload worker.
 *
 * The launcher (a static background worker, connected to no database)
 * starts the worker when shopping_upload.database_name exists and restarts
 * it when it stops; it waits quietly while the database does not exist.
 *
 * The worker's loop is a round of named steps:
 *   claim    due orders, in a short transaction (FOR UPDATE SKIP LOCKED, with
 *            a lease); build and validate them there, from one snapshot
 *            taken after the claim.  At everyday rates the same transaction
 *            first records the answers of the round before;
 *   send     what the in-flight cap and the rate limits allow (libcurl
 *            multi, keep-alive), with no transaction open;
 *   collect  the finished requests;
 *   record   the answers (audit rows, next states) that no claim carried, in
 *            a transaction of their own, skipping state rows others hold;
 *   trim     the audit rows past retention, within a time budget;
 *   wait     on the latch (committing transactions that queued an order set
 *            it), libcurl's sockets (left out while answers wait for the next
 *            claim), and the earliest of the next retry, the next claim and
 *            libcurl's timer.
 * An error ends the round the way autovacuum recovers: the transaction is
 * aborted, and every answer already received is kept and recorded later.
 * A worker that dies leaves its orders "uploading" until their lease runs
 * out; the next worker takes them again at once: delivery is at-least-once.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <setjmp.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_database.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "lib/ilist.h"
#include "libpq/pqsignal.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/resowner.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "audit.h"
#include "http.h"
#include "queue.h"
#include "common.h"
#include "settings.h"
#include "worker.h"
#include "token.h"
#include "upload.h"

PGDLLEXPORT void su_launcher_main(Datum arg);

StaticAssertDecl(SU_KINDS == lengthof(((SuShared *) NULL)->claim_wait),
				 "one claim_wait per kind");
PGDLLEXPORT void su_worker_main(Datum arg);

#define CLAIM_MAX			500
#define CLOCK_STEP_USECS	(1 * USECS_PER_SEC)	/* a wall-clock step seen */
#define AUDIT_TRIM_BATCH	1000
#define AUDIT_TRIM_BUDGET_MS 20		/* per round, while behind */
#define RECORD_RETRY_MS		20	/* answers whose state row was held */
#define RECORD_BATCH		64	/* answers recorded in one transaction */
#define ERROR_PAUSE_MS		1000	/* after an error */
#define LOCKED_RETRY_MS		100 /* a due order another transaction holds */
#define NEXT_DUE_READ_MS	250 /* least time between two reads of next due
								 * times while claims keep taking orders */

/* the worker's latch, published for the backends that wake it */
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

/*
 * What the worker keeps of an appid: its rate bucket and its hold.  Only an
 * appid whose request got a token has one (its credentials are the
 * administrator's): orders of made-up appids, which any writer can write,
 * take no entry, and cannot push a held appid out.
 */
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

static SuHttpClient *client;
static WaitEventSet *wait_set;	/* the latch and libcurl's sockets */
static WaitEventSet *latch_set; /* the latch alone: answers wait */
static MemoryContext flights_cxt;	/* one child context per flight */
static MemoryContext round_cxt;		/* reset at every round */

static dlist_head claiming = DLIST_STATIC_INIT(claiming);	/* in the claim txn */
static dlist_head ready = DLIST_STATIC_INIT(ready); /* claimed, not sent */
static dlist_head inflight = DLIST_STATIC_INIT(inflight);	/* sent */
static dlist_head done = DLIST_STATIC_INIT(done);	/* to record */
static Flight *in_hand = NULL;	/* off every list, being sent or concluded */
static int	n_ready = 0;
static int	n_inflight = 0;

static bool claim_wanted[SU_KINDS] = {true, true, true};	/* may hold due rows */
static bool backlog = false;	/* the last claim took all it asked for */
static bool rate_limited = false;	/* a ready order waits for its rate */
static bool extension_ready = false;	/* checked since the last error */
static TimestampTz last_claim = 0;	/* when the last claim ran */
static TimestampTz next_due[SU_KINDS];	/* earliest planned attempt, 0: none */
static TimestampTz next_record = 0; /* held answers: when to try again */
static TimestampTz done_since = 0;	/* when the done list was found non-empty */
static TimestampTz next_trim = 0;	/* next deletion of old audit rows */
static TimestampTz next_look = 0;	/* next look at every kind, whatever */
static TimestampTz next_due_read = 0;	/* when su_queue_next_due() last ran */
static TimestampTz kind_held_until[SU_KINDS];	/* a body table was locked */
static bool round_failed = false;	/* the last round ended in an error */
static HTAB *apps = NULL;		/* AppState by appid */
static uint32 holds_seen = 0;	/* su_shared->holds_released, as last acted on */
static TimestampTz clock_offset = 0;	/* wall clock minus monotonic clock */
static int64 clock_stepped_back = 0;	/* usecs the wall clock went back */

/* ---------------------------------------------------------------------
 * Flights
 * ---------------------------------------------------------------------
 */

/*
 * The worker's own schedule (claims, records, trims, rate buckets) runs on
 * the monotonic clock, in microseconds: a step of the wall clock, either
 * way, neither stops nor floods it.  Times planned in the database (a retry,
 * a verify) are wall-clock times, turned into this clock when read.
 */
static void want_all(void);

static TimestampTz
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (TimestampTz) ts.tv_sec * USECS_PER_SEC + ts.tv_nsec / 1000;
}

/* a wall-clock time planned in the database, on the monotonic clock */
static TimestampTz
wall_to_mono(TimestampTz wall)
{
	if (wall == 0)
		return 0;
	return mono_now() + (wall - GetCurrentTimestamp());
}

/*
 * Notes a step back of the wall clock (more than a second): the rows queued
 * or planned before it would wait as long as the step, their due times now
 * in the future; the next claim brings them forward (see claim()).
 */
static void
watch_clock(void)
{
	TimestampTz offset = GetCurrentTimestamp() - mono_now();

	if (clock_offset != 0 && offset < clock_offset - CLOCK_STEP_USECS)
	{
		clock_stepped_back += clock_offset - offset;
		want_all();				/* the next round claims, and brings them forward */
		ereport(LOG,
				(errmsg("shopping_upload worker: the wall clock went back %.1f s; what was planned before it is brought forward by as much",
						(double) (clock_offset - offset) / USECS_PER_SEC)));
	}
	clock_offset = offset;
}

/* the appid's entry, or NULL */
static AppState *
app_find(const char *appid)
{
	char		key[SU_APPID_LEN];

	if (apps == NULL || appid == NULL || strlen(appid) >= SU_APPID_LEN)
		return NULL;
	memset(key, 0, sizeof(key));
	strlcpy(key, appid, sizeof(key));
	return hash_search(apps, key, HASH_FIND, NULL);
}

/* the entry of an appid whose request got a token, made if need be */
static AppState *
app_state(const char *appid)
{
	char		key[SU_APPID_LEN];
	AppState   *app;
	bool		found;

	if (apps == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = SU_APPID_LEN;
		ctl.entrysize = sizeof(AppState);
		ctl.hcxt = TopMemoryContext;
		apps = hash_create("shopping_upload appids", 64, &ctl,
						   HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}
	memset(key, 0, sizeof(key));
	strlcpy(key, appid, sizeof(key));
	app = hash_search(apps, key, HASH_ENTER, &found);
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

/*
 * requeue() of held orders ends every hold on purpose: the worker drops its
 * holds when a transaction that did so commits.
 */
static void
take_hold_releases(void)
{
	uint32		released = pg_atomic_read_u32(&su_shared->holds_released);
	HASH_SEQ_STATUS seq;
	AppState   *app;

	if (released == holds_seen)
		return;
	holds_seen = released;
	if (apps == NULL)
		return;
	hash_seq_init(&seq, apps);
	while ((app = hash_seq_search(&seq)) != NULL)
		if (app->held_until != 0)
		{
			ereport(LOG,
					(errmsg("shopping_upload worker: the hold of appid \"%s\" is ended by requeue()",
							app->appid)));
			app->held_until = 0;
		}
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

	/*
	 * Only an appid whose request got a token is held as a whole: a failure
	 * before any request (no credentials, a made-up appid) holds the order
	 * alone, by its state.
	 */
	if (u->appid == NULL || u->token == NULL ||
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

/*
 * rate limiter: may one more request of this appid start now?  The clock is
 * read here, not taken from the top of the round: a claim between the two
 * would otherwise refill the bucket for time already spent, and let a second
 * full bucket go out in the same second.
 */
static bool
rate_take(AppState *app)
{
	TimestampTz now;

	if (su_max_rate <= 0)
		return true;
	now = mono_now();
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
 * Transactions, waits, settings
 * ---------------------------------------------------------------------
 */

static MemoryContext txn_caller_cxt = NULL;

static void want_all(void);
static void worker_wait_on(WaitEventSet *set, long timeout_ms);
static void take_queued_kinds(bool clear);
static int	done_array(Flight ***flights, bool **recorded);
static void record_flights(Flight **flights, int n, bool *recorded);
static void records_committed(Flight **flights, int n, const bool *recorded,
							  TimestampTz now);
static void record_batch_failed(MemoryContext cxt, Flight **flights, int n,
								bool *recorded);

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

/*
 * The one wait: until the latch is set, libcurl has work, or timeout_ms
 * (-1: no timeout) has passed.  A set latch means orders may be due.
 */
static void
worker_wait(long timeout_ms)
{
	worker_wait_on(wait_set, timeout_ms);
}

/* a wait event set of the latch and the postmaster's death, room for size */
static WaitEventSet *
latch_wait_set(int size)
{
	WaitEventSet *set;

#if PG_VERSION_NUM >= 170000
	set = CreateWaitEventSet(NULL, size);
#else
	set = CreateWaitEventSet(TopMemoryContext, size);
#endif
	AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	return set;
}

static void
worker_wait_on(WaitEventSet *set, long timeout_ms)
{
	WaitEvent	events[3];
	int			n;

	n = WaitEventSetWait(set, timeout_ms, events, lengthof(events),
						 PG_WAIT_EXTENSION);
	for (int i = 0; i < n; i++)
		if (events[i].events & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			take_queued_kinds(false);
		}
}

/* SIGHUP: the new settings apply from this round on */
static void
reload_settings(void)
{
	if (!ConfigReloadPending)
		return;
	ConfigReloadPending = false;
	ProcessConfigFile(PGC_SIGHUP);
	next_trim = 0;				/* a new retention applies at once */
	want_all();
}

/* the extension's version in the worker's database, or NULL */
static char *
installed_version(void)
{
	char	   *version;
	MemoryContext caller = CurrentMemoryContext;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	version = su_installed_version(caller);
	CommitTransactionCommand();
	MemoryContextSwitchTo(caller);
	return version;
}

/*
 * Is the extension installed, in the version of this library?  Its plans
 * name the tables and columns of that version only.
 */
static bool
extension_matches(char **version)
{
	*version = installed_version();
	return *version != NULL && strcmp(*version, SU_EXTVERSION) == 0;
}

/* ---------------------------------------------------------------------
 * The steps of a round
 * ---------------------------------------------------------------------
 */

/*
 * Claims up to max due orders; builds and validates them.  Refused ones go
 * to the done list, the others to the ready list, once the claim commits.
 * Returns the count.
 */
/* Everything is to be looked at: at start, after an error, a reload. */
static void
want_all(void)
{
	for (int kind = 0; kind < SU_KINDS; kind++)
		claim_wanted[kind] = true;
}

/*
 * The kinds that commits queued since the last claim are wanted; clear: the
 * claim that is about to look at them takes them.
 */
static void
take_queued_kinds(bool clear)
{
	uint32		kinds = clear ? pg_atomic_exchange_u32(&su_shared->queued_kinds, 0) :
		pg_atomic_read_u32(&su_shared->queued_kinds);

	for (int kind = 0; kind < SU_KINDS; kind++)
		if (kinds & (1 << kind))
			claim_wanted[kind] = true;
}

/*
 * is a claim of this kind due: asked for, or planned for now, and its body
 * tables not found locked a moment ago
 */
static bool
kind_due(int kind, TimestampTz now)
{
	if (now < kind_held_until[kind])
		return false;
	return claim_wanted[kind] || (next_due[kind] != 0 && now >= next_due[kind]);
}

static bool
any_due(TimestampTz now)
{
	for (int kind = 0; kind < SU_KINDS; kind++)
		if (kind_due(kind, now))
			return true;
	return false;
}

/* rows of a kind gone behind the triggers' back (replica role): forget them */
static void
forget_gone(SuUpload *u)
{
	su_queue_forget(u->order_id, u->kind == SU_KIND_SHIPPING);
}

/*
 * Claims up to max due rows of one kind and prepares them (in the claim
 * transaction), onto the claiming list; *looked_at: how many due rows the
 * claim took.  ok[] of the flights tells which go out.
 */
static int
claim_kind(SuKind kind, int max, int *looked_at, Flight **flights, bool *ok)
{
	SuClaim    *claims = palloc(sizeof(SuClaim) * max);
	SuUpload  **uploads;
	TimestampTz *times;
	MemoryContext *cxts;
	int			n;

	if (kind == SU_KIND_ORDER)
		*looked_at = n = su_queue_claim(max, claims);
	else if (kind == SU_KIND_VERIFY)
		*looked_at = n = su_verify_claim(max, claims);
	else
		n = su_shipping_claim(max, claims, looked_at);
	uploads = palloc(sizeof(SuUpload *) * Max(n, 1));
	times = palloc(sizeof(TimestampTz) * Max(n, 1));
	cxts = palloc(sizeof(MemoryContext) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		Flight	   *f = flights[i] = new_flight();

		dlist_push_tail(&claiming, &f->node);
		f->u.order_id = claims[i].order_id;
		f->u.kind = kind;
		f->u.version = claims[i].version;
		f->u.attempt = claims[i].attempt;
		uploads[i] = &f->u;
		times[i] = claims[i].upload_time;
		cxts[i] = f->cxt;
	}
	if (n > 0 && kind == SU_KIND_ORDER)
		su_upload_prepare(n, uploads, times, cxts, ok);
	else if (n > 0 && kind == SU_KIND_VERIFY)
		su_verify_prepare(n, uploads, cxts, ok);
	else if (n > 0)
		su_shipping_prepare(n, uploads, times, cxts, ok);
	for (int i = 0; i < n; i++)
	{
		Flight	   *f = flights[i];

		if (!ok[i] && f->u.gone)
		{
			forget_gone(&f->u);
			dlist_delete(&f->node);
			free_flight(f);
			flights[i] = NULL;
		}
		else if (!ok[i] && f->u.deferred)
			f->attempted = false;	/* no attempt: no audit row */
		else if (!ok[i])
			maybe_hold(&f->u);	/* refused before sending */
	}
	return n;
}

/* what a kind's claims wait for, in shared memory (NULL: nothing) */
static void
publish_wait(SuKind kind, const char *table, TimestampTz wall)
{
	SpinLockAcquire(&su_shared->mutex);
	if (table == NULL)
		su_shared->claim_wait[kind][0] = '\0';
	else if (strcmp(su_shared->claim_wait[kind], table) != 0)
	{
		strlcpy(su_shared->claim_wait[kind], table, sizeof(su_shared->claim_wait[kind]));
		su_shared->claim_wait_since[kind] = wall;
	}
	SpinLockRelease(&su_shared->mutex);
}

/*
 * One claim transaction: orders first, then shipping information, then
 * verifies, each kind that is due, up to max in all.  Returns the count.
 */
static int
claim(int max, TimestampTz now, bool *full)
{
	static const SuKind order[SU_KINDS] = {SU_KIND_ORDER, SU_KIND_SHIPPING, SU_KIND_VERIFY};
	Flight	  **flights = palloc(sizeof(Flight *) * max);
	bool	   *ok = palloc(sizeof(bool) * max);
	int			total = 0;
	bool		short_claim = false;
	bool		was_due[SU_KINDS];

	Flight	  **rec = NULL;
	bool	   *rec_ok = NULL;
	volatile int n_rec = 0;
	MemoryContext cxt = CurrentMemoryContext;

	/*
	 * The answers this claim's transaction records (see below), listed in
	 * the caller's context: SPI's, in the transaction, ends at its commit.
	 * None after an error: a claim that keeps failing must not hold them.
	 */
	if (!backlog && !round_failed && !dlist_is_empty(&done) && now >= next_record)
		n_rec = done_array(&rec, &rec_ok);

	/* from now on a commit that queues wakes us (see su_wake_worker) */
	pg_atomic_write_u32(&su_shared->wake_wanted, 1);
	pg_memory_barrier();
	take_queued_kinds(true);
	begin_txn("claiming");

	/*
	 * At everyday rates the answers waiting to be recorded go first, in this
	 * transaction: one commit a round.  They leave the done list only once it
	 * committed; a batch that cannot be written is recorded one by one on its
	 * own, and the claim goes on in a new transaction.  Not in a backlog:
	 * there claims come every few milliseconds, and each would wait for a WAL
	 * flush and record a small batch (step_record() records 64 at a time,
	 * and claims commit without waiting for the flush).
	 */
	if (n_rec > 0)
	{
		PG_TRY();
		{
			record_flights(rec, n_rec, rec_ok);
		}
		PG_CATCH();
		{
			record_batch_failed(cxt, rec, n_rec, rec_ok);
			records_committed(rec, n_rec, rec_ok, now);
			n_rec = 0;
			begin_txn("claiming");
		}
		PG_END_TRY();
	}
	/* after a step back of the wall clock: what was planned before it */
	if (clock_stepped_back > 0)
	{
		su_queue_clock_stepped_back(clock_stepped_back);
		clock_stepped_back = 0;
		want_all();
	}

	/*
	 * A claim lost in a crash costs nothing (the row is due again), so its
	 * commit need not wait for the WAL flush.  A record's does.
	 */
	if (n_rec == 0)
		(void) set_config_option("synchronous_commit", "off", PGC_USERSET,
								 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
	*full = false;
	for (int k = 0; k < SU_KINDS; k++)
	{
		SuKind		kind = order[k];
		int			looked_at;
		int			n;

		const char *blocker;

		was_due[kind] = kind_due(kind, now);
		if (!was_due[kind] || total >= max)
			continue;
		/*
		 * The tables a kind's claim reads bodies from, locked (ACCESS SHARE,
		 * as its reads would) before it takes any state row of that kind,
		 * without waiting: if one is locked (or wanted) in a stronger mode,
		 * that kind is not claimed this round, the others are.  A TRUNCATE
		 * of one of them, whose trigger requeues every state row, would
		 * otherwise deadlock with a claim that holds some of those rows and
		 * then waits to read the table; and an ALTER TABLE, a VACUUM FULL or
		 * a writer's LOCK TABLE would stall the worker's rounds, recording
		 * included.  The kind is tried again LOCKED_RETRY_MS later, and
		 * claim_waits() says why it waits.
		 */
		if (!su_lock_kind_tables(kind, false, &blocker))
		{
			kind_held_until[kind] = TimestampTzPlusMilliseconds(now, LOCKED_RETRY_MS);
			publish_wait(kind, blocker, GetCurrentTimestamp());
			continue;
		}
		if (kind_held_until[kind] != 0)
		{
			kind_held_until[kind] = 0;
			publish_wait(kind, NULL, 0);
		}
		n = claim_kind(kind, max - total, &looked_at, flights + total, ok + total);
		claim_wanted[kind] = (looked_at == max - total);
		if (claim_wanted[kind])
			*full = true;
		else
			short_claim = true;
		total += n;
	}
	if (short_claim && total > 0 && now < next_due_read + NEXT_DUE_READ_MS * (int64) 1000)
	{
		/*
		 * Orders keep coming (this claim took some): the queue's next due
		 * times were read a moment ago.  Look again at the latest when they
		 * are read next, or earlier for a retry recorded meanwhile; commits
		 * that queue wake us anyway.  A statement less in most rounds.
		 */
		TimestampTz later = next_due_read + NEXT_DUE_READ_MS * (int64) 1000;

		for (int kind = 0; kind < SU_KINDS; kind++)
			if (was_due[kind] && !claim_wanted[kind] &&
				(next_due[kind] <= now || next_due[kind] > later))
				next_due[kind] = later;
	}
	else if (short_claim)
	{
		TimestampTz due[SU_KINDS];

		su_queue_next_due(due);
		next_due_read = now;
		for (int kind = 0; kind < SU_KINDS; kind++)
		{
			if (!was_due[kind] || claim_wanted[kind])
				continue;
			next_due[kind] = wall_to_mono(due[kind]);

			/*
			 * A due row the claim skipped is held by another transaction
			 * (one that called upload_shopping_info(), say): look again in a
			 * while, not at every claim_interval.
			 */
			if (next_due[kind] != 0 && next_due[kind] <= now)
				next_due[kind] = TimestampTzPlusMilliseconds(now, LOCKED_RETRY_MS);
		}
	}
	commit_txn();
	if (n_rec > 0)
		records_committed(rec, n_rec, rec_ok, now);
	round_failed = false;

	/* only now are the claims ours */
	for (int i = 0; i < total; i++)
	{
		Flight	   *f = flights[i];

		if (f == NULL)
			continue;
		dlist_delete(&f->node);
		if (ok[i])
		{
			dlist_push_tail(&ready, &f->node);
			n_ready++;
		}
		else
			dlist_push_tail(&done, &f->node);
	}
	return total;
}

static void
step_claim(TimestampTz now)
{
	int			room = su_max_inflight - n_inflight - n_ready;
	int			want;
	bool		full;

	if (room <= 0 || !any_due(now))
		return;

	/*
	 * A backlog is claimed as fast as room is made, in batches of at least a
	 * quarter of max_inflight.  Otherwise claims are claim_interval apart:
	 * orders committed one at a time travel in batches, a claim and a record
	 * transaction for several (the first after a quiet spell goes at once).
	 */
	if (backlog)
	{
		if (room < Max(1, su_max_inflight / 4) && n_inflight + n_ready > 0)
			return;
	}
	else if (now - last_claim < su_claim_interval_ms * (int64) 1000)
		return;
	want = Min(room, CLAIM_MAX);
	last_claim = now;
	(void) claim(want, now, &full);
	/* a full claim of a few, when little room was left, is no backlog */
	backlog = (full && want >= Max(1, su_max_inflight / 4));
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
step_send(TimestampTz now)
{
	dlist_mutable_iter iter;

	TimestampTz wall = GetCurrentTimestamp();	/* holds are wall-clock times */

	(void) now;
	rate_limited = false;
	dlist_foreach_modify(iter, &ready)
	{
		Flight	   *f = dlist_container(Flight, node, iter.cur);
		AppState   *app = app_find(f->u.appid);
		char	   *token;
		MemoryContext old;

		if (n_inflight >= su_max_inflight)
			break;
		if (app && app->held_until > wall)
		{
			dlist_delete(&f->node);
			n_ready--;
			release_held(f, app);
			continue;
		}
		if (app && !rate_take(app))
		{
			rate_limited = true;
			continue;
		}
		dlist_delete(&f->node);
		n_ready--;
		in_hand = f;
		if (!worker_token(f, &token))
		{
			maybe_hold(&f->u);
			in_hand = NULL;
			dlist_push_tail(&done, &f->node);
			continue;
		}
		/* the first request of an appid with credentials: its entry */
		if (app == NULL)
			(void) rate_take(app_state(f->u.appid));
		old = MemoryContextSwitchTo(f->cxt);
		su_upload_request(&f->u, token);
		f->u.req.user = f;
		if (su_http_start(client, &f->u.req))
		{
			dlist_push_tail(&inflight, &f->node);
			n_inflight++;
		}
		else
		{
			su_upload_conclude(&f->u);
			dlist_push_tail(&done, &f->node);
		}
		in_hand = NULL;
		MemoryContextSwitchTo(old);
	}
}

/* Moves the transfers on, and finished requests to the done list. */
static void
step_collect(void)
{
	SuHttpRequest *req;

	if (n_inflight == 0)
		return;
	su_http_drive(client);
	while ((req = su_http_next_done(client)) != NULL)
	{
		Flight	   *f = req->user;
		MemoryContext old = MemoryContextSwitchTo(f->cxt);

		dlist_delete(&f->node);
		n_inflight--;
		in_hand = f;
		su_upload_conclude(&f->u);
		maybe_hold(&f->u);
		in_hand = NULL;
		MemoryContextSwitchTo(old);
		dlist_push_tail(&done, &f->node);
	}
}

/* the audit rows and next states of n finished flights (in a transaction) */
static void
record_flights(Flight **flights, int n, bool *recorded)
{
	SuUpload  **group = palloc(sizeof(SuUpload *) * n);
	bool	   *group_recorded = palloc(sizeof(bool) * n);
	int		   *pos = palloc(sizeof(int) * n);
	SuUpload  **attempted = palloc(sizeof(SuUpload *) * n);
	int			n_attempted = 0;
	TimestampTz earliest[SU_KINDS] = {0};

	/* each kind's states in one statement */
	for (int kind = 0; kind < SU_KINDS; kind++)
	{
		int			m = 0;

		for (int i = 0; i < n; i++)
			if ((int) flights[i]->u.kind == kind)
			{
				pos[m] = i;
				group[m++] = &flights[i]->u;
			}
		if (m == 0)
			continue;
		(void) su_queue_record(group, m, group_recorded, earliest);
		for (int j = 0; j < m; j++)
			recorded[pos[j]] = group_recorded[j];
	}
	for (int kind = 0; kind < SU_KINDS; kind++)
		if (earliest[kind] != 0)
			su_earlier(&next_due[kind], wall_to_mono(earliest[kind]));
	for (int i = 0; i < n; i++)
		if (recorded[i] && flights[i]->attempted)
			attempted[n_attempted++] = &flights[i]->u;
	su_audit_insert(attempted, n_attempted);
}

/* the same in a subtransaction: false, with a warning, if it failed */
static bool
record_flights_alone(Flight **flights, int n, bool *recorded)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool ok = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		record_flights(flights, n, recorded);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		ereport(WARNING,
				(errmsg("shopping_upload worker: could not record the answer for order " INT64_FORMAT ": %s",
						flights[0]->u.order_id, edata->message)));
		FreeErrorData(edata);
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	return ok;
}

/*
 * After a batch failed: each flight on its own, so that one that cannot be
 * written fails alone.  One that still fails is recorded without what is in
 * the way (its request body, then its audit row): its outcome, the answer
 * WeChat gave, is never dropped.
 */
static void
record_one_by_one(Flight **flights, int n, bool *recorded)
{
	for (int i = 0; i < n; i++)
	{
		SuUpload   *u = &flights[i]->u;

		if (record_flights_alone(&flights[i], 1, &recorded[i]))
			continue;
		u->payload = NULL;
		u->body = NULL;
		if (u->errmsg && strlen(u->errmsg) > 1024)
			u->errmsg[1024] = '\0';
		if (record_flights_alone(&flights[i], 1, &recorded[i]))
			continue;
		flights[i]->attempted = false;	/* its state only */
		if (!record_flights_alone(&flights[i], 1, &recorded[i]))
			recorded[i] = false;	/* kept: tried again in a later round */
	}
}

/* frees the recorded flights; returns their count */
static int
drop_recorded(Flight **flights, int n, const bool *recorded)
{
	int			n_recorded = 0;

	for (int i = 0; i < n; i++)
		if (recorded[i])
		{
			dlist_delete(&flights[i]->node);
			free_flight(flights[i]);
			n_recorded++;
		}
	return n_recorded;
}

/* the done list as an array, with a recorded flag for each (all false) */
static int
done_array(Flight ***flights, bool **recorded)
{
	dlist_iter	iter;
	int			n = 0;

	dlist_foreach(iter, &done)
		n++;
	*flights = palloc(sizeof(Flight *) * Max(n, 1));
	*recorded = palloc0(sizeof(bool) * Max(n, 1));
	n = 0;
	dlist_foreach(iter, &done)
		(*flights)[n++] = dlist_container(Flight, node, iter.cur);
	return n;
}

/* once the transaction that recorded them committed: drops the recorded */
static void
records_committed(Flight **flights, int n, const bool *recorded, TimestampTz now)
{
	next_record = drop_recorded(flights, n, recorded) < n ?
		TimestampTzPlusMilliseconds(now, RECORD_RETRY_MS) : 0;
	done_since = 0;
}

/*
 * A batch's recording failed (the error is being handled): says why, aborts
 * its transaction and records one by one, in a transaction of their own.
 */
static void
record_batch_failed(MemoryContext cxt, Flight **flights, int n, bool *recorded)
{
	HOLD_INTERRUPTS();
	MemoryContextSwitchTo(cxt);
	EmitErrorReport();
	AbortCurrentTransaction();
	FlushErrorState();
	RESUME_INTERRUPTS();
	MemoryContextSwitchTo(cxt);
	memset(recorded, 0, sizeof(bool) * n);
	begin_txn("recording uploads one by one");
	record_one_by_one(flights, n, recorded);
	commit_txn();
}

/*
 * Writes the audit rows and next states of the finished flights, when no
 * claim carried them (see claim()).  A flight whose order's state another
 * transaction holds stays in the done list for a later round: its answer is
 * never thrown away.
 */
static void
step_record(TimestampTz now)
{
	dlist_iter	iter;
	Flight	  **flights;
	bool	   *recorded;
	int			n = 0;
	MemoryContext cxt = CurrentMemoryContext;

	if (dlist_is_empty(&done) || now < next_record)
		return;
	dlist_foreach(iter, &done)
		n++;

	/*
	 * Answers are gathered for up to claim_interval, or a batch: one
	 * transaction records many, and at everyday rates the next claim's
	 * transaction records them (one transaction a round, not two).  In a
	 * backlog no claim carries them, and with nothing in flight they are
	 * recorded at once: only they make room for the next claim.  After an
	 * error they go at once, until a claim succeeds again.
	 */
	if (done_since == 0)
		done_since = now;
	if ((n_inflight > 0 || !backlog) && !round_failed && n < RECORD_BATCH &&
		now - done_since < su_claim_interval_ms * (int64) 1000)
		return;
	n = done_array(&flights, &recorded);

	PG_TRY();
	{
		begin_txn("recording uploads");
		record_flights(flights, n, recorded);
		commit_txn();
	}
	PG_CATCH();
	{
		record_batch_failed(cxt, flights, n, recorded);
	}
	PG_END_TRY();
	records_committed(flights, n, recorded, now);

	/*
	 * Room was made for a backlog (its kinds are still wanted: their last
	 * claim was full); retries and changed orders set next_due.
	 */
}

/* Deletes audit rows past retention, a bounded time a round. */
static void
step_trim(TimestampTz now)
{
	bool		caught_up;
	int64		deleted;

	if (su_audit_retention_s <= 0 || now < next_trim)
		return;
	begin_txn("deleting old audit rows");
	deleted = su_audit_trim(AUDIT_TRIM_BATCH, AUDIT_TRIM_BUDGET_MS, &caught_up);
	commit_txn();
	pg_atomic_fetch_add_u64(&su_shared->audit_deleted, (uint64) deleted);
	next_trim = caught_up ? TimestampTzPlusMilliseconds(now, 60000) : now;
}

/* Waits until the next step has something to do. */
static void
step_wait(void)
{
	TimestampTz now = mono_now();
	TimestampTz wake = TimestampTzPlusMilliseconds(now, 60000);
	/* the next claim's time: claim_interval on (a held kind: not before) */
	TimestampTz tick = last_claim + su_claim_interval_ms * (int64) 1000;
	long		curl_ms = su_http_timeout(client);
	long		timeout_ms;
	bool		hold_answers;

	if (backlog)
	{
		/* room is made by answers: libcurl's sockets wake us */
		if (su_max_inflight - n_inflight - n_ready >= Max(1, su_max_inflight / 4) ||
			n_inflight + n_ready == 0)
			for (int kind = 0; kind < SU_KINDS; kind++)
				if (claim_wanted[kind])
					wake = Min(wake, Max(now, kind_held_until[kind]));
	}
	else if (su_max_inflight - n_inflight - n_ready > 0)
	{
		for (int kind = 0; kind < SU_KINDS; kind++)
		{
			TimestampTz kind_tick = Max(tick, kind_held_until[kind]);

			if (claim_wanted[kind])
				wake = Min(wake, kind_tick);
			else if (next_due[kind] != 0)
				wake = Min(wake, Max(next_due[kind], kind_tick));
		}
	}
	if (rate_limited)
		wake = Min(wake, TimestampTzPlusMilliseconds(now, 5));
	if (!dlist_is_empty(&done))
		wake = Min(wake, Max(next_record,
							 done_since + su_claim_interval_ms * (int64) 1000));
	if (su_audit_retention_s > 0)
		wake = Min(wake, next_trim);
	wake = Min(wake, next_look);

	/*
	 * At everyday rates the next claim's transaction records the answers:
	 * until its time they wait in their sockets (libcurl's own timers still
	 * wake us), and one wake-up serves a round's answers, not one each.  Past
	 * that time, with no claim, each answer wakes us again.  Not while a
	 * connection is being made: its handshakes need the sockets watched.
	 */
	hold_answers = !backlog && n_inflight > 0 && now < tick &&
		su_http_connecting(client) == 0;
	if (hold_answers)
		wake = Min(wake, tick);
	timeout_ms = wake <= now ? 0 : (long) ((wake - now + 999) / 1000);

	/*
	 * A claim is planned (the next one sets wake_wanted again before its
	 * snapshot): commits meanwhile need not wake us.
	 */
	for (int kind = 0; kind < SU_KINDS; kind++)
		if (claim_wanted[kind])
		{
			pg_atomic_write_u32(&su_shared->wake_wanted, 0);
			break;
		}
	if (n_inflight > 0 && curl_ms >= 0)
		timeout_ms = Min(timeout_ms, curl_ms);
	worker_wait_on(hold_answers ? latch_set : wait_set, timeout_ms);
}

/* ---------------------------------------------------------------------
 * Start, errors, the loop
 * ---------------------------------------------------------------------
 */

/* Drops every flight: the extension is gone, and its orders with it. */
static void
drop_all(void)
{
	dlist_head *lists[] = {&claiming, &ready, &done};

	for (int l = 0; l < (int) lengthof(lists); l++)
		while (!dlist_is_empty(lists[l]))
			free_flight(dlist_container(Flight, node, dlist_pop_head_node(lists[l])));
	while (!dlist_is_empty(&inflight))
	{
		Flight	   *f = dlist_container(Flight, node, dlist_pop_head_node(&inflight));

		su_http_cancel(client, &f->u.req);
		free_flight(f);
	}
	if (in_hand)
		free_flight(in_hand);
	in_hand = NULL;
	n_ready = 0;
	n_inflight = 0;
}

/*
 * Waits for the extension; at start, or when it was created anew, makes
 * the orders a dead worker left uploading due at once.  After an error with
 * the extension still there, keeps every flight.
 */
static void
wait_for_extension(bool at_start)
{
	char	   *version;
	char	   *said = NULL;	/* the version the last log line named */

	if (!at_start && extension_matches(&version))
	{
		pfree(version);
		extension_ready = true;
		return;
	}
	if (!at_start)
		drop_all();
	while (!extension_matches(&version))
	{
		/* one line per state seen, not one per poll */
		if (said == NULL || strcmp(said, version ? version : "") != 0)
		{
			if (version == NULL)
				ereport(LOG,
						(errmsg("shopping_upload worker: waiting for CREATE EXTENSION shopping_upload in database \"%s\"",
								su_database_name)));
			else
				ereport(LOG,
						(errmsg("shopping_upload worker: database \"%s\" has shopping_upload version %s, this library is version %s: waiting for ALTER EXTENSION shopping_upload UPDATE",
								su_database_name, version, SU_EXTVERSION),
						 errhint("Run ALTER EXTENSION shopping_upload UPDATE in database \"%s\"; nothing is uploaded until the versions agree.",
								 su_database_name)));
			if (said)
				pfree(said);
			said = MemoryContextStrdup(TopMemoryContext, version ? version : "");
		}
		if (version)
			pfree(version);
		worker_wait(5000);
		CHECK_FOR_INTERRUPTS();
		reload_settings();
	}
	if (version)
		pfree(version);
	if (said)
		pfree(said);
	begin_txn("recovering");
	su_queue_recover();
	commit_txn();
	extension_ready = true;
	want_all();
}

/*
 * After an error: the claim under way is undone with its transaction (its
 * orders are due again); a flight that was being sent or concluded is
 * recorded as a transient failure, with the error as its reason; the rest
 * stays as it was, answers included.  Called with the error data copied.
 */
static void
recover_flights(ErrorData *edata)
{
	while (!dlist_is_empty(&claiming))
		free_flight(dlist_container(Flight, node, dlist_pop_head_node(&claiming)));
	if (in_hand)
	{
		SuUpload   *u = &in_hand->u;
		MemoryContext old = MemoryContextSwitchTo(in_hand->cxt);

		if (u->req.easy)
			su_http_cancel(client, &u->req);
		u->sent = false;
		u->errcode = WX_ERR_SYSTEM_BUSY;
		u->errmsg = psprintf("the worker failed before an answer: %s",
							 edata->message ? edata->message : "?");
		MemoryContextSwitchTo(old);
		u->transport_error = u->errmsg;
		u->cls = SU_CLASS_RETRY;
		dlist_push_tail(&done, &in_hand->node);
		in_hand = NULL;
	}
	want_all();
	memset(next_due, 0, sizeof(next_due));
}

void
su_worker_main(Datum arg)
{
	sigjmp_buf	local_sigjmp_buf;

	(void) arg;
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(su_database_name, NULL, 0);
	pgstat_report_appname("shopping_upload worker");
	/* short, frequent queries: compiling them would cost more than it saves */
	SetConfigOption("jit", "off", PGC_SUSET, PGC_S_OVERRIDE);

	/*
	 * Every statement of the worker reads or writes a few rows by key, and
	 * keeps its plan.  A plan made while the queue was small (a new
	 * database, before autovacuum's first ANALYZE) would scan whole tables
	 * at every round as they grow: a scan by index is always wanted.
	 */
	SetConfigOption("enable_seqscan", "off", PGC_SUSET, PGC_S_OVERRIDE);
	/* no object of anyone's schema is ever resolved by the worker's statements */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);

	/*
	 * A session that called upload_shopping_info() holds its order's state
	 * until it commits; the worker skips such rows, and never waits long for
	 * any other lock.
	 */
	SetConfigOption("lock_timeout", "10s", PGC_SUSET, PGC_S_OVERRIDE);

	publish_worker(0, BoolGetDatum(true));
	before_shmem_exit(publish_worker, BoolGetDatum(false));

	client = su_http_client();
	if (client == NULL)
		ereport(FATAL,
				(errmsg("shopping_upload worker: could not initialize libcurl")));
	flights_cxt = AllocSetContextCreate(TopMemoryContext, "shopping_upload flights",
										ALLOCSET_DEFAULT_SIZES);
	round_cxt = AllocSetContextCreate(TopMemoryContext, "shopping_upload round",
									  ALLOCSET_DEFAULT_SIZES);
	wait_set = latch_wait_set(3);
	AddWaitEventToSet(wait_set, WL_SOCKET_READABLE, su_http_socket(client), NULL, NULL);
	latch_set = latch_wait_set(2);

	wait_for_extension(true);

	/* error recovery, as autovacuum's */
	if (sigsetjmp(local_sigjmp_buf, 1) != 0)
	{
		ErrorData  *edata;

		HOLD_INTERRUPTS();
		error_context_stack = NULL;
		EmitErrorReport();
		AbortCurrentTransaction();
		pgstat_report_activity(STATE_IDLE, NULL);
		MemoryContextSwitchTo(TopMemoryContext);
		edata = CopyErrorData();
		FlushErrorState();
		recover_flights(edata);
		FreeErrorData(edata);
		extension_ready = false;
		round_failed = true;	/* answers are recorded apart until a claim
								 * succeeds */
		RESUME_INTERRUPTS();

		/*
		 * A dropped extension, or a passing problem: wait a little.  Not on
		 * libcurl's sockets: an answer waiting in one would end the pause at
		 * once.
		 */
		worker_wait_on(latch_set, ERROR_PAUSE_MS);
	}
	PG_exception_stack = &local_sigjmp_buf;

	for (;;)
	{
		TimestampTz now;

		CHECK_FOR_INTERRUPTS();
		reload_settings();
		if (!extension_ready)
			wait_for_extension(false);
		MemoryContextReset(round_cxt);
		MemoryContextSwitchTo(round_cxt);
		watch_clock();
		take_hold_releases();
		now = mono_now();

		/*
		 * Once a minute every kind is looked at, whatever the worker knows:
		 * rows made due by another hand than a queueing commit (a direct
		 * UPDATE of the states, a clock that moved) are not left waiting.
		 */
		if (now >= next_look)
		{
			want_all();
			next_look = TimestampTzPlusMilliseconds(now, 60000);
		}
		step_claim(now);
		step_send(now);
		step_collect();
		step_record(now);
		step_trim(now);
		step_wait();
	}
}
