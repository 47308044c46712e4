/*-------------------------------------------------------------------------
 *
 * worker.c
 *		The upload worker: claims due rows of every kind of call, sends
 *		them, records the answers (launcher.c starts it).
 *
 * The worker's loop is a round of named steps:
 *   claim    due rows of each kind (kinds.c, in its table's order), in a
 *            short transaction (FOR UPDATE SKIP LOCKED, with a lease); build
 *            and validate them there, from one snapshot taken after the
 *            claim.  At everyday rates the same transaction first records
 *            the answers of the round before;
 *   send     what the in-flight cap and the rate limits allow (libcurl
 *            multi, keep-alive), with no transaction open;
 *   collect  the finished requests;
 *   record   the answers (audit rows, next states) that no claim carried, in
 *            a transaction of their own, skipping state rows others hold;
 *   trim     the audit rows past retention, within a time budget;
 *   wait     on the latch (committing transactions that queued an order set
 *            it, wake.c), libcurl's sockets (left out while answers wait for
 *            the next claim), and the earliest of the next retry, the next
 *            claim and libcurl's timer.
 * An error ends the round the way autovacuum recovers: the transaction is
 * aborted, and every answer already received is kept and recorded later.
 * A worker that dies leaves its orders "uploading" until their lease runs
 * out; the next worker takes them again at once: delivery is at-least-once.
 * When to try again, and for how long an appid is held, is retry.c's
 * decision; apps.c keeps the holds and the rate buckets.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <setjmp.h>

#include "access/xact.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "lib/ilist.h"
#include "libpq/pqsignal.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "alerts.h"
#include "apps.h"
#include "audit.h"
#include "common.h"
#include "extversion.h"
#include "http.h"
#include "kinds.h"
#include "mono.h"
#include "queue.h"
#include "registry.h"
#include "retry.h"
#include "settings.h"
#include "shared.h"
#include "token.h"
#include "trade_app.h"
#include "upload.h"
#include "wake.h"
#include "worker.h"

StaticAssertDecl(SU_KINDS == lengthof(((SuWorkerSlot *) NULL)->claim_wait),
				 "one claim_wait per kind");
PGDLLEXPORT void su_worker_main(Datum arg);

#define CLAIM_MAX			500 /* rows a claim takes at most */
#define AUDIT_TRIM_BATCH	1000	/* audit rows deleted by one statement */
#define RECORD_BATCH		64	/* answers recorded in one transaction */

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

/* the flights: every claimed row, from its claim until its answer is recorded */
static struct
{
	MemoryContext cxt;			/* one child context per flight */
	dlist_head	claiming;		/* in the claim transaction */
	dlist_head	ready;			/* claimed, not sent */
	dlist_head	inflight;		/* sent */
	dlist_head	done;			/* to record */
	Flight	   *in_hand;		/* off every list, being sent or concluded */
	int			n_ready;
	int			n_inflight;
}			fleet = {
	.claiming = DLIST_STATIC_INIT(fleet.claiming),
	.ready = DLIST_STATIC_INIT(fleet.ready),
	.inflight = DLIST_STATIC_INIT(fleet.inflight),
	.done = DLIST_STATIC_INIT(fleet.done),
};

/* the rounds' schedule, on the monotonic clock (mono.h) */
static struct
{
	MemoryContext cxt;			/* reset at every round */
	bool		claim_wanted[SU_KINDS]; /* may hold due rows */
	bool		backlog;		/* the last claim took all it asked for */
	bool		rate_limited;	/* a ready order waits for its rate */
	bool		extension_ready;	/* checked since the last error */
	bool		failed;			/* the last round ended in an error */
	bool		release_local;	/* settings reloaded: rows held by a local
								 * configuration problem are due again */
	TimestampTz last_claim;		/* when the last claim ran */
	TimestampTz next_due[SU_KINDS]; /* earliest planned attempt, 0: none */
	TimestampTz kind_held_until[SU_KINDS];	/* a body table was locked */
	TimestampTz next_record;	/* held answers: when to try again */
	TimestampTz done_since;		/* when the done list was found non-empty */
	TimestampTz next_trim;		/* next deletion of old audit rows */
	TimestampTz next_apps;		/* next look at the appids' service */
	TimestampTz next_look;		/* next look at every kind, whatever */
	TimestampTz next_due_read;	/* when su_queue_next_due() last ran */
	SuPartition share;			/* of the last claim (registry.c) */
	uint32		ext_changes;	/* su_registry_ext_changes(), as checked */
	char	   *dbname;			/* for log lines */
}			sched;

/* the wall clock, as the worker watches it for steps back */
static struct
{
	TimestampTz offset;			/* wall clock minus monotonic clock */
	int64		stepped_back;	/* usecs it went back, not acted on yet */
}			wall;

/* what the worker waits on */
static struct
{
	SuHttpClient *client;
	WaitEventSet *wait_set;		/* the latch and libcurl's sockets */
	WaitEventSet *latch_set;	/* the latch alone: answers wait */
}			io;

/* ---------------------------------------------------------------------
 * Flights
 * ---------------------------------------------------------------------
 */

static void want_all(void);

/*
 * Notes a step back of the wall clock (more than a second): the rows queued
 * or planned before it would wait as long as the step, their due times now
 * in the future; the next claim brings them forward (see claim()).
 */
static void
watch_clock(void)
{
	TimestampTz offset = GetCurrentTimestamp() - su_mono_now();

	if (wall.offset != 0 && offset < wall.offset - SU_CLOCK_STEP_USECS)
	{
		wall.stepped_back += wall.offset - offset;
		want_all();				/* the next round claims, and brings them forward */
		ereport(LOG,
				(errmsg("shopping_upload worker: the wall clock went back %.1f s; what was planned before it is brought forward by as much",
						(double) (wall.offset - offset) / USECS_PER_SEC)));
	}
	wall.offset = offset;
}

static Flight *
new_flight(void)
{
	MemoryContext cxt = AllocSetContextCreate(fleet.cxt, "shopping_upload flight",
											  ALLOCSET_SMALL_SIZES);
	Flight	   *f = MemoryContextAllocZero(cxt, sizeof(Flight));

	f->cxt = cxt;
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
release_held(Flight *f, const SuAppHold *hold)
{
	f->attempted = false;
	f->u.cls = hold->cls;
	f->u.errcode = hold->errcode;
	f->u.errmsg = MemoryContextStrdup(f->cxt, hold->errmsg);
	dlist_push_tail(&fleet.done, &f->node);
}

/* ---------------------------------------------------------------------
 * Transactions, waits, settings
 * ---------------------------------------------------------------------
 */

static MemoryContext txn_caller_cxt = NULL;

static void want_all(void);
static void worker_wait_on(WaitEventSet *set, long timeout_ms);
static void take_queued(uint32 dues);
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
	worker_wait_on(io.wait_set, timeout_ms);
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
			take_queued(su_wake_peek());
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
	sched.next_trim = 0;				/* a new retention applies at once */
	sched.release_local = true;	/* a fixed setting lets held rows go */
	su_apps_release_local();
	su_token_clear_backoff();	/* and their tokens are asked for again */
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

/* Everything is to be looked at: at start, after an error, a reload. */
static void
want_all(void)
{
	for (int kind = 0; kind < SU_KINDS; kind++)
		sched.claim_wanted[kind] = true;
}

/*
 * The kinds whose due columns commits queued since the last claim (bits
 * 1 << SuDue, from wake.c) are wanted.
 */
static void
take_queued(uint32 dues)
{
	for (int kind = 0; kind < SU_KINDS; kind++)
		if (dues & (1 << su_kind((SuKind) kind)->due))
			sched.claim_wanted[kind] = true;
}

/*
 * is a claim of this kind due: asked for, or planned for now, and its body
 * tables not found locked a moment ago
 */
static bool
kind_due(int kind, TimestampTz now)
{
	if (now < sched.kind_held_until[kind])
		return false;
	return sched.claim_wanted[kind] || (sched.next_due[kind] != 0 && now >= sched.next_due[kind]);
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
	su_queue_forget(u->order_id, su_kind(u->kind)->due);
}

/*
 * Claims up to max due rows of one kind and prepares them (in the claim
 * transaction), onto the claiming list; *looked_at: how many due rows the
 * claim took.  ok[] of the flights tells which go out.
 */
static int
claim_kind(SuKind kind, int max, int *looked_at, Flight **flights, bool *ok)
{
	const SuKindInfo *k = su_kind(kind);
	SuClaim    *claims = palloc(sizeof(SuClaim) * max);
	SuUpload  **uploads;
	TimestampTz *times;
	MemoryContext *cxts;
	int			n;

	n = k->claim(max, &sched.share, claims, looked_at);
	uploads = palloc(sizeof(SuUpload *) * Max(n, 1));
	times = palloc(sizeof(TimestampTz) * Max(n, 1));
	cxts = palloc(sizeof(MemoryContext) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		Flight	   *f = flights[i] = new_flight();

		dlist_push_tail(&fleet.claiming, &f->node);
		f->u.order_id = claims[i].order_id;
		f->u.kind = kind;
		f->u.version = claims[i].version;
		f->u.attempt = claims[i].attempt;
		f->u.queued_at = claims[i].queued_at;
		uploads[i] = &f->u;
		times[i] = claims[i].upload_time;
		cxts[i] = f->cxt;
	}
	if (n > 0)
		k->prepare(n, uploads, times, cxts, ok);
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
			su_apps_maybe_hold(&f->u);	/* refused before sending */
	}
	return n;
}

/* what a kind's claims wait for, in shared memory (NULL: nothing) */
static void
publish_wait(SuKind kind, const char *table, TimestampTz since)
{
	SpinLockAcquire(&su_shared->mutex);
	if (table == NULL)
		su_my_worker->claim_wait[kind][0] = '\0';
	else if (strcmp(su_my_worker->claim_wait[kind], table) != 0)
	{
		strlcpy(su_my_worker->claim_wait[kind], table, sizeof(su_my_worker->claim_wait[kind]));
		su_my_worker->claim_wait_since[kind] = since;
	}
	SpinLockRelease(&su_shared->mutex);
}

/*
 * Locks the tables a kind's claim reads bodies from (ACCESS SHARE, as its
 * reads would) before it takes any state row of that kind, without
 * waiting: if one is locked (or wanted) in a stronger mode, that kind is
 * not claimed this round, the others are.  A TRUNCATE of one of them, whose
 * trigger requeues every state row, would otherwise deadlock with a claim
 * that holds some of those rows and then waits to read the table; and an
 * ALTER TABLE, a VACUUM FULL or a writer's LOCK TABLE would stall the
 * worker's rounds, recording included.  The kind is tried again
 * SU_LOCKED_RETRY_MS later, and claim_waits() says why it waits.
 */
static bool
kind_unlocked(SuKind kind, TimestampTz now)
{
	const char *blocker;

	if (!su_lock_kind_tables(kind, false, &blocker))
	{
		sched.kind_held_until[kind] = TimestampTzPlusMilliseconds(now, SU_LOCKED_RETRY_MS);
		publish_wait(kind, blocker, GetCurrentTimestamp());
		return false;
	}
	if (sched.kind_held_until[kind] != 0)
	{
		sched.kind_held_until[kind] = 0;
		publish_wait(kind, NULL, 0);
	}
	return true;
}

/*
 * Claims each due kind in the table's order, up to max rows in all, into
 * flights and ok; was_due[] says which kinds were looked at, *full whether
 * one took all it asked for, *short_claim whether one took less.  Returns
 * the count.
 */
static int
claim_kinds(int max, TimestampTz now, Flight **flights, bool *ok,
			bool *was_due, bool *full, bool *short_claim)
{
	int			total = 0;

	*full = false;
	*short_claim = false;
	for (int k = 0; k < SU_KINDS; k++)
	{
		SuKind		kind = (SuKind) k;	/* the table's order */
		int			looked_at;
		int			n;

		was_due[kind] = kind_due(kind, now);
		if (!was_due[kind] || total >= max || !kind_unlocked(kind, now))
			continue;
		n = claim_kind(kind, max - total, &looked_at, flights + total, ok + total);
		sched.claim_wanted[kind] = (looked_at == max - total);
		if (sched.claim_wanted[kind])
			*full = true;
		else
			*short_claim = true;
		total += n;
	}
	return total;
}

/*
 * After a claim that took less than it asked for of some kind: when to
 * look at those kinds again.
 */
static void
plan_next_due(TimestampTz now, int total, const bool *was_due)
{
	if (total > 0 && now < sched.next_due_read + SU_NEXT_DUE_READ_MS * (int64) 1000)
	{
		/*
		 * Orders keep coming (this claim took some): the queue's next due
		 * times were read a moment ago.  Look again at the latest when they
		 * are read next, or earlier for a retry recorded meanwhile; commits
		 * that queue wake us anyway.  A statement less in most rounds.
		 */
		TimestampTz later = sched.next_due_read + SU_NEXT_DUE_READ_MS * (int64) 1000;

		for (int kind = 0; kind < SU_KINDS; kind++)
			if (was_due[kind] && !sched.claim_wanted[kind] &&
				(sched.next_due[kind] <= now || sched.next_due[kind] > later))
				sched.next_due[kind] = later;
	}
	else
	{
		TimestampTz due[SU_DUES];

		su_queue_next_due(due);
		sched.next_due_read = now;
		for (int kind = 0; kind < SU_KINDS; kind++)
		{
			if (!was_due[kind] || sched.claim_wanted[kind])
				continue;
			sched.next_due[kind] = su_wall_to_mono(due[su_kind((SuKind) kind)->due]);

			/*
			 * A due row the claim skipped is held by another transaction
			 * (one that called upload_shopping_info(), say): look again in a
			 * while, not at every claim_interval.
			 */
			if (sched.next_due[kind] != 0 && sched.next_due[kind] <= now)
				sched.next_due[kind] = TimestampTzPlusMilliseconds(now, SU_LOCKED_RETRY_MS);
		}
	}
}

/* the claimed flights, once their claim committed: ready, or done */
static void
take_claims(Flight **flights, const bool *ok, int total)
{
	for (int i = 0; i < total; i++)
	{
		Flight	   *f = flights[i];

		if (f == NULL)
			continue;
		dlist_delete(&f->node);
		if (ok[i])
		{
			dlist_push_tail(&fleet.ready, &f->node);
			fleet.n_ready++;
		}
		else
			dlist_push_tail(&fleet.done, &f->node);
	}
}

/*
 * One claim transaction: orders first, then shipping information, then
 * verifies, each kind that is due, up to max in all.  Returns the count.
 */
static int
claim(int max, TimestampTz now, bool *full)
{
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
	if (!sched.backlog && !sched.failed && !dlist_is_empty(&fleet.done) && now >= sched.next_record)
		n_rec = done_array(&rec, &rec_ok);

	/* from now on a commit that queues wakes us (see su_wake_worker) */
	take_queued(su_wake_expect());
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
	/*
	 * This worker's share of the orders, fixed until the commit; none until
	 * it joined its database's claims.
	 */
	su_registry_partition(&sched.share.n, &sched.share.part);

	/*
	 * After a step back of the wall clock: what was planned before it (every
	 * worker saw the step; the first share's brings every row forward).
	 */
	if (wall.stepped_back > 0 && sched.share.part != 0)
		wall.stepped_back = 0;
	if (wall.stepped_back > 0)
	{
		su_queue_clock_stepped_back(wall.stepped_back);
		wall.stepped_back = 0;
		want_all();
	}
	/* after a reload: what a local configuration problem held */
	if (sched.release_local)
	{
		int64		released = su_queue_release_local_holds();

		sched.release_local = false;
		if (released > 0)
			ereport(LOG,
					(errmsg("shopping_upload worker: the settings were reloaded: " INT64_FORMAT " rows held by a local configuration problem are due again",
							released)));
	}

	/*
	 * A claim lost in a crash costs nothing (the row is due again), so its
	 * commit need not wait for the WAL flush.  A record's does.
	 */
	if (n_rec == 0)
		(void) set_config_option("synchronous_commit", "off", PGC_USERSET,
								 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
	total = sched.share.n == 0 ? 0 :
		claim_kinds(max, now, flights, ok, was_due, full, &short_claim);
	if (short_claim)
		plan_next_due(now, total, was_due);
	commit_txn();
	if (n_rec > 0)
		records_committed(rec, n_rec, rec_ok, now);
	sched.failed = false;

	/* only now are the claims ours */
	take_claims(flights, ok, total);
	return total;
}

static void
step_claim(TimestampTz now)
{
	int			room = su_max_inflight - fleet.n_inflight - fleet.n_ready;
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
	if (sched.backlog)
	{
		if (room < Max(1, su_max_inflight / 4) && fleet.n_inflight + fleet.n_ready > 0)
			return;
	}
	else if (now - sched.last_claim < su_claim_interval_ms * (int64) 1000)
		return;
	want = Min(room, CLAIM_MAX);
	sched.last_claim = now;
	(void) claim(want, now, &full);
	/* a full claim of a few, when little room was left, is no backlog */
	sched.backlog = (full && want >= Max(1, su_max_inflight / 4));
}

/*
 * The appids this database has credentials for, as last read: the shared
 * token cache, rate buckets and holds serve every database of the server,
 * and an appid's token is used only for orders of a database that has its
 * credentials (su_credentials_present()).  Read again every
 * SU_CREDENTIALS_RECHECK_MS.
 */
typedef struct CredsSeen
{
	char		appid[SU_APPID_LEN];	/* hash key */
	TimestampTz until;			/* monotonic */
} CredsSeen;

static HTAB *creds_seen = NULL;

static bool
creds_fresh(const char *appid)
{
	char		key[SU_APPID_LEN];
	CredsSeen  *seen;

	if (creds_seen == NULL || appid == NULL || strlen(appid) >= SU_APPID_LEN)
		return false;
	memset(key, 0, sizeof(key));
	strlcpy(key, appid, sizeof(key));
	seen = hash_search(creds_seen, key, HASH_FIND, NULL);
	return seen != NULL && seen->until > su_mono_now();
}

static void
creds_note(const char *appid)
{
	char		key[SU_APPID_LEN];
	CredsSeen  *seen;

	if (appid == NULL || strlen(appid) >= SU_APPID_LEN)
		return;
	if (creds_seen == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = SU_APPID_LEN;
		ctl.entrysize = sizeof(CredsSeen);
		ctl.hcxt = TopMemoryContext;
		creds_seen = hash_create("shopping_upload credentials seen", 16, &ctl,
								 HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}
	memset(key, 0, sizeof(key));
	strlcpy(key, appid, sizeof(key));
	seen = hash_search(creds_seen, key, HASH_ENTER, NULL);
	seen->until = TimestampTzPlusMilliseconds(su_mono_now(), SU_CREDENTIALS_RECHECK_MS);
}

/* a token for the appid, fetching one (with its credentials) if needed */
static bool
worker_token(Flight *f, char **token)
{
	SuCredentials creds;
	SuTokenResult res;
	MemoryContext old;

	if (creds_fresh(f->u.appid) && (*token = su_token_peek(f->u.appid)) != NULL)
		return true;
	old = MemoryContextSwitchTo(f->cxt);
	begin_txn("reading credentials");
	MemoryContextSwitchTo(f->cxt);
	su_credentials_load(f->u.appid, &creds);
	commit_txn();
	if (su_token_get(&creds, &res))
	{
		*token = res.token;
		creds_note(f->u.appid);
	}
	else
		su_upload_token_failed(&f->u, res.errcode, res.errmsg);
	MemoryContextSwitchTo(old);
	return *token != NULL;
}

/*
 * Starts what the in-flight cap and the rate limits allow.  Not inlined into
 * su_worker_main(), whose sigsetjmp() would make its locals "clobbered".
 */
static pg_noinline void
step_send(TimestampTz now)
{
	dlist_mutable_iter iter;

	TimestampTz wall_now = GetCurrentTimestamp();	/* holds are wall-clock times */

	(void) now;
	sched.rate_limited = false;
	dlist_foreach_modify(iter, &fleet.ready)
	{
		Flight	   *f = dlist_container(Flight, node, iter.cur);
		SuAppHold	hold;
		char	   *token;
		MemoryContext old;

		if (fleet.n_inflight >= su_max_inflight)
			break;
		if (su_apps_held(f->u.appid, wall_now, &hold))
		{
			dlist_delete(&f->node);
			fleet.n_ready--;
			release_held(f, &hold);
			continue;
		}
		/*
		 * The appid's bucket is the whole server's: only an order of a
		 * database known to have the appid's credentials takes from it (the
		 * first of a while is sent without, once worker_token() read them).
		 */
		if (creds_fresh(f->u.appid) && !su_apps_rate_take(f->u.appid))
		{
			sched.rate_limited = true;
			continue;
		}
		dlist_delete(&f->node);
		fleet.n_ready--;
		fleet.in_hand = f;
		if (!worker_token(f, &token))
		{
			su_apps_maybe_hold(&f->u);
			fleet.in_hand = NULL;
			dlist_push_tail(&fleet.done, &f->node);
			continue;
		}
		/* the first request of an appid with credentials: its entry */
		su_apps_first_request(f->u.appid);
		old = MemoryContextSwitchTo(f->cxt);
		su_upload_request(&f->u, su_kind(f->u.kind)->path, token);
		f->u.req.user = f;
		if (su_http_start(io.client, &f->u.req))
		{
			dlist_push_tail(&fleet.inflight, &f->node);
			fleet.n_inflight++;
		}
		else
		{
			su_upload_conclude(&f->u, su_kind(f->u.kind)->classify);
			dlist_push_tail(&fleet.done, &f->node);
		}
		fleet.in_hand = NULL;
		MemoryContextSwitchTo(old);
	}
}

/* Moves the transfers on, and finished requests to the done list. */
static void
step_collect(void)
{
	SuHttpRequest *req;

	if (fleet.n_inflight == 0)
		return;
	su_http_drive(io.client);
	while ((req = su_http_next_done(io.client)) != NULL)
	{
		Flight	   *f = req->user;
		MemoryContext old = MemoryContextSwitchTo(f->cxt);

		dlist_delete(&f->node);
		fleet.n_inflight--;
		fleet.in_hand = f;
		su_upload_conclude(&f->u, su_kind(f->u.kind)->classify);
		su_apps_maybe_hold(&f->u);
		fleet.in_hand = NULL;
		MemoryContextSwitchTo(old);
		dlist_push_tail(&fleet.done, &f->node);
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
	TimestampTz earliest[SU_DUES] = {0};

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
		(void) su_kind((SuKind) kind)->record(group, m, group_recorded, earliest);
		for (int j = 0; j < m; j++)
			recorded[pos[j]] = group_recorded[j];
	}
	for (int kind = 0; kind < SU_KINDS; kind++)
	{
		TimestampTz t = earliest[su_kind((SuKind) kind)->due];

		if (t != 0)
			su_earlier(&sched.next_due[kind], su_wall_to_mono(t));
	}
	for (int i = 0; i < n; i++)
	{
		if (recorded[i] && flights[i]->attempted)
			attempted[n_attempted++] = &flights[i]->u;
		/* the shipping management service refused the appid: ask again now */
		if (flights[i]->u.errcode == WX_ERR_API_UNAUTHORIZED &&
			strncmp(su_kind(flights[i]->u.kind)->path, SU_TRADE_PATH_PREFIX,
					strlen(SU_TRADE_PATH_PREFIX)) == 0)
			sched.next_apps = 0;
	}
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
		su_audit_digest(u);		/* kept: the row proves what was sent */
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
			/* committed: a rejected, dead or held order is worth a line */
			if (flights[i]->attempted)
				su_alert_outcome(&flights[i]->u);
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

	dlist_foreach(iter, &fleet.done)
		n++;
	*flights = palloc(sizeof(Flight *) * Max(n, 1));
	*recorded = palloc0(sizeof(bool) * Max(n, 1));
	n = 0;
	dlist_foreach(iter, &fleet.done)
		(*flights)[n++] = dlist_container(Flight, node, iter.cur);
	return n;
}

/* once the transaction that recorded them committed: drops the recorded */
static void
records_committed(Flight **flights, int n, const bool *recorded, TimestampTz now)
{
	sched.next_record = drop_recorded(flights, n, recorded) < n ?
		TimestampTzPlusMilliseconds(now, SU_RECORD_RETRY_MS) : 0;
	sched.done_since = 0;
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

	if (dlist_is_empty(&fleet.done) || now < sched.next_record)
		return;
	dlist_foreach(iter, &fleet.done)
		n++;

	/*
	 * Answers are gathered for up to claim_interval, or a batch: one
	 * transaction records many, and at everyday rates the next claim's
	 * transaction records them (one transaction a round, not two).  In a
	 * backlog no claim carries them, and with nothing in flight they are
	 * recorded at once: only they make room for the next claim.  After an
	 * error they go at once, until a claim succeeds again.
	 */
	if (sched.done_since == 0)
		sched.done_since = now;
	if ((fleet.n_inflight > 0 || !sched.backlog) && !sched.failed && n < RECORD_BATCH &&
		now - sched.done_since < su_claim_interval_ms * (int64) 1000)
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

/*
 * The launcher wants one worker less (workers_per_database lowered, the
 * database left out): no more claims; once every flight is answered and
 * recorded, the worker leaves, its leases all ended.
 */
static void
step_retire(void)
{
	if (fleet.n_ready > 0 || fleet.n_inflight > 0 || fleet.in_hand != NULL ||
		!dlist_is_empty(&fleet.done) || !dlist_is_empty(&fleet.claiming))
		return;
	ereport(LOG,
			(errmsg("shopping_upload worker: worker %d of database \"%s\" leaves: the launcher wants fewer",
					su_my_worker->index + 1, sched.dbname)));
	proc_exit(0);
}

/* Deletes audit rows past retention, a bounded time a round. */
static void
step_trim(TimestampTz now)
{
	bool		caught_up;
	int64		deleted;

	/* the first share's worker deletes for all */
	if (su_audit_retention_s <= 0 || now < sched.next_trim || sched.share.part != 0)
		return;
	begin_txn("deleting old audit rows");
	deleted = su_audit_trim(AUDIT_TRIM_BATCH, SU_AUDIT_TRIM_BUDGET_MS, &caught_up);
	commit_txn();
	pg_atomic_fetch_add_u64(&su_registry_my_db()->audit_deleted, (uint64) deleted);
	sched.next_trim = caught_up ? TimestampTzPlusMilliseconds(now, SU_AUDIT_TRIM_IDLE_MS) : now;
}

/*
 * Once a day (and at once after the service answered 48001): which appids
 * are in the order shipping management service, and WeChat's delivery
 * companies.  The first share's worker asks for all.
 */
static void
step_trade_apps(TimestampTz now)
{
	if (now < sched.next_apps || sched.share.part != 0)
		return;
	begin_txn("asking WeChat which appids are in the shipping management service");
	su_trade_apps_refresh(true);
	commit_txn();
	sched.next_apps = TimestampTzPlusMilliseconds(now, SU_TRADE_APPS_MS);
}

/* Waits until the next step has something to do. */
static void
step_wait(void)
{
	TimestampTz now = su_mono_now();
	TimestampTz wake = TimestampTzPlusMilliseconds(now, SU_WAIT_MAX_MS);
	/* the next claim's time: claim_interval on (a held kind: not before) */
	TimestampTz tick = sched.last_claim + su_claim_interval_ms * (int64) 1000;
	long		curl_ms = su_http_timeout(io.client);
	long		timeout_ms;
	bool		hold_answers;

	if (sched.backlog)
	{
		/* room is made by answers: libcurl's sockets wake us */
		if (su_max_inflight - fleet.n_inflight - fleet.n_ready >= Max(1, su_max_inflight / 4) ||
			fleet.n_inflight + fleet.n_ready == 0)
			for (int kind = 0; kind < SU_KINDS; kind++)
				if (sched.claim_wanted[kind])
					wake = Min(wake, Max(now, sched.kind_held_until[kind]));
	}
	else if (su_max_inflight - fleet.n_inflight - fleet.n_ready > 0)
	{
		for (int kind = 0; kind < SU_KINDS; kind++)
		{
			TimestampTz kind_tick = Max(tick, sched.kind_held_until[kind]);

			if (sched.claim_wanted[kind])
				wake = Min(wake, kind_tick);
			else if (sched.next_due[kind] != 0)
				wake = Min(wake, Max(sched.next_due[kind], kind_tick));
		}
	}
	if (sched.rate_limited)
		wake = Min(wake, TimestampTzPlusMilliseconds(now, SU_RATE_LIMITED_MS));
	if (!dlist_is_empty(&fleet.done))
		wake = Min(wake, Max(sched.next_record,
							 sched.done_since + su_claim_interval_ms * (int64) 1000));
	if (su_audit_retention_s > 0)
		wake = Min(wake, sched.next_trim);
	wake = Min(wake, sched.next_look);

	/*
	 * At everyday rates the next claim's transaction records the answers:
	 * until its time they wait in their sockets (libcurl's own timers still
	 * wake us), and one wake-up serves a round's answers, not one each.  Past
	 * that time, with no claim, each answer wakes us again.  Not while a
	 * connection is being made: its handshakes need the sockets watched.
	 */
	hold_answers = !sched.backlog && fleet.n_inflight > 0 && now < tick &&
		su_http_connecting(io.client) == 0;
	if (hold_answers)
		wake = Min(wake, tick);
	timeout_ms = wake <= now ? 0 : (long) ((wake - now + 999) / 1000);

	/* a claim is planned: commits meanwhile need not wake us (wake.c) */
	for (int kind = 0; kind < SU_KINDS; kind++)
		if (sched.claim_wanted[kind])
		{
			su_wake_planned();
			break;
		}
	if (fleet.n_inflight > 0 && curl_ms >= 0)
		timeout_ms = Min(timeout_ms, curl_ms);

	/*
	 * Answers that a request waited for in between (a token, the appids of
	 * the shipping management service: su_http_perform() moves every
	 * transfer of the client on) brought to their end wait in no socket:
	 * nothing would wake us for them before the longest wait.  Taken now.
	 */
	if (!hold_answers && su_http_has_done(io.client))
		timeout_ms = 0;
	worker_wait_on(hold_answers ? io.latch_set : io.wait_set, timeout_ms);
}

/* ---------------------------------------------------------------------
 * Start, errors, the loop
 * ---------------------------------------------------------------------
 */

/* Drops every flight: the extension is gone, and its orders with it. */
static void
drop_all(void)
{
	dlist_head *lists[] = {&fleet.claiming, &fleet.ready, &fleet.done};

	for (int l = 0; l < (int) lengthof(lists); l++)
		while (!dlist_is_empty(lists[l]))
			free_flight(dlist_container(Flight, node, dlist_pop_head_node(lists[l])));
	while (!dlist_is_empty(&fleet.inflight))
	{
		Flight	   *f = dlist_container(Flight, node, dlist_pop_head_node(&fleet.inflight));

		su_http_cancel(io.client, &f->u.req);
		free_flight(f);
	}
	if (fleet.in_hand)
		free_flight(fleet.in_hand);
	fleet.in_hand = NULL;
	fleet.n_ready = 0;
	fleet.n_inflight = 0;
}

/*
 * One line, at start and when the worker resumes after waiting for the
 * extension: the database, the appids it has credentials for, the endpoint
 * (SPI connected).
 */
static void
say_serving(bool at_start)
{
	char	   *appids = NULL;
	bool		isnull;

	if (SPI_execute("SELECT pg_catalog.string_agg(a.appid, ', ' ORDER BY a.appid)"
					" FROM " SU_SCHEMA ".accounts a", true, 0) == SPI_OK_SELECT &&
		SPI_processed == 1)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			appids = TextDatumGetCString(d);	/* SPI's, until commit_txn() */
	}
	ereport(LOG,
			(errmsg("shopping_upload worker: %s database \"%s\"%s for appid %s%s%s at %s",
					at_start ? "serving" : "serving again",
					sched.dbname,
					su_workers_per_database > 1 ?
					psprintf(" (worker %d of %d)", su_my_worker->index + 1,
							 su_workers_per_database) : "",
					su_appid && su_appid[0] ? su_appid : "(none set)",
					appids ? " and the accounts " : "", appids ? appids : "",
					su_api_base())));
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

	su_registry_looking();
	if (!at_start && extension_matches(&version))
	{
		pfree(version);
		sched.extension_ready = true;
		return;
	}
	if (!at_start)
		drop_all();
	while (!extension_matches(&version))
	{
		if (version == NULL)
		{
			/*
			 * No extension here: the worker leaves, and the launcher looks
			 * again only when CREATE EXTENSION commits in this database.  A
			 * database that never had it is not logged at every start.
			 */
			ereport(at_start ? DEBUG1 : LOG,
					(errmsg("shopping_upload worker: database \"%s\" has no shopping_upload extension; its worker stops until CREATE EXTENSION shopping_upload",
							sched.dbname)));
			su_registry_found(SU_DB_NO_EXTENSION);
			proc_exit(0);
		}
		su_registry_found(SU_DB_SERVED);
		/* one line per version seen, not one per poll */
		if (said == NULL || strcmp(said, version) != 0)
		{
			ereport(LOG,
					(errmsg("shopping_upload worker: database \"%s\" has shopping_upload version %s, this library is version %s: waiting for ALTER EXTENSION shopping_upload UPDATE",
							sched.dbname, version, SU_EXTVERSION),
					 errhint("Run ALTER EXTENSION shopping_upload UPDATE in database \"%s\"; nothing is uploaded until the versions agree.",
							 sched.dbname)));
			if (said)
				pfree(said);
			said = MemoryContextStrdup(TopMemoryContext, version);
		}
		pfree(version);
		worker_wait(SU_EXTENSION_POLL_MS);
		CHECK_FOR_INTERRUPTS();
		reload_settings();
		su_registry_looking();
	}
	if (version)
		pfree(version);
	if (said)
		pfree(said);
	su_registry_found(SU_DB_SERVED);
	begin_txn("recovering");

	/*
	 * What a process that died with the server left uploading is due at
	 * once (the first worker looks): another's leases are its own, and run
	 * out by themselves (shopping_upload.lease).
	 */
	if (su_my_worker->index == 0)
		su_queue_recover(su_registry_writable_since());
	su_registry_join();
	say_serving(at_start);
	commit_txn();
	sched.extension_ready = true;
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
	while (!dlist_is_empty(&fleet.claiming))
		free_flight(dlist_container(Flight, node, dlist_pop_head_node(&fleet.claiming)));
	if (fleet.in_hand)
	{
		SuUpload   *u = &fleet.in_hand->u;
		MemoryContext old = MemoryContextSwitchTo(fleet.in_hand->cxt);

		if (u->req.easy)
			su_http_cancel(io.client, &u->req);
		u->sent = false;
		u->errcode = WX_ERR_SYSTEM_BUSY;
		u->errmsg = psprintf("the worker failed before an answer: %s",
							 edata->message ? edata->message : "?");
		MemoryContextSwitchTo(old);
		u->transport_error = u->errmsg;
		u->cls = SU_CLASS_RETRY;
		dlist_push_tail(&fleet.done, &fleet.in_hand->node);
		fleet.in_hand = NULL;
	}
	want_all();
	memset(sched.next_due, 0, sizeof(sched.next_due));
}

void
su_worker_main(Datum arg)
{
	sigjmp_buf	local_sigjmp_buf;
	Oid			dboid;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	/* the slot the launcher reserved, and its database */
	memcpy(&dboid, MyBgworkerEntry->bgw_extra, sizeof(dboid));
	if (!su_registry_attach(DatumGetInt32(arg), dboid))
		proc_exit(0);			/* a new launcher took the slot back */
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	sched.ext_changes = su_registry_ext_changes();
	StartTransactionCommand();
	sched.dbname = get_database_name(MyDatabaseId);
	if (sched.dbname)
		sched.dbname = MemoryContextStrdup(TopMemoryContext, sched.dbname);
	CommitTransactionCommand();
	if (sched.dbname == NULL)
		proc_exit(0);			/* dropped meanwhile */
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

	/*
	 * The same for bitmap scans: a claim reads the first due hints in the
	 * order of due_at_idx, and a bitmap scan of that index (then a sort),
	 * planned while due held a few hints, would read every hint that has
	 * come at each claim of a backlog.
	 */
	SetConfigOption("enable_bitmapscan", "off", PGC_SUSET, PGC_S_OVERRIDE);
	/* no object of anyone's schema is ever resolved by the worker's statements */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);

	/*
	 * A session that called upload_shopping_info() holds its order's state
	 * until it commits; the worker skips such rows, and never waits long for
	 * any other lock.
	 */
	SetConfigOption("lock_timeout", "10s", PGC_SUSET, PGC_S_OVERRIDE);

	/*
	 * The queue's statements are written for READ COMMITTED (each statement
	 * sees what committed before it, a locked row's newest version) and
	 * write: a database or role default of another isolation level, or of
	 * read-only transactions, is not the worker's.
	 */
	SetConfigOption("default_transaction_isolation", "read committed",
					PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("default_transaction_read_only", "off",
					PGC_SUSET, PGC_S_OVERRIDE);

	io.client = su_http_client();
	if (io.client == NULL)
		ereport(FATAL,
				(errmsg("shopping_upload worker: could not initialize libcurl")));
	fleet.cxt = AllocSetContextCreate(TopMemoryContext, "shopping_upload flights",
										ALLOCSET_DEFAULT_SIZES);
	sched.cxt = AllocSetContextCreate(TopMemoryContext, "shopping_upload round",
									  ALLOCSET_DEFAULT_SIZES);
	io.wait_set = latch_wait_set(3);
	AddWaitEventToSet(io.wait_set, WL_SOCKET_READABLE, su_http_socket(io.client), NULL, NULL);
	io.latch_set = latch_wait_set(2);

	wait_for_extension(true);

	/* error recovery, as autovacuum's */
	if (sigsetjmp(local_sigjmp_buf, 1) != 0)
	{
		ErrorData  *edata;

		HOLD_INTERRUPTS();
		error_context_stack = NULL;

		/* as autovacuum: no timeout of the failed statement stays armed */
		disable_all_timeouts(false);
		QueryCancelPending = false;
		EmitErrorReport();
		AbortCurrentTransaction();
		pgstat_report_activity(STATE_IDLE, NULL);
		MemoryContextSwitchTo(TopMemoryContext);
		edata = CopyErrorData();
		FlushErrorState();
		recover_flights(edata);
		FreeErrorData(edata);
		sched.extension_ready = false;
		sched.failed = true;	/* answers are recorded apart until a claim
								 * succeeds */
		RESUME_INTERRUPTS();

		/*
		 * A dropped extension, or a passing problem: wait a little.  Not on
		 * libcurl's sockets: an answer waiting in one would end the pause at
		 * once.
		 */
		worker_wait_on(io.latch_set, SU_ERROR_PAUSE_MS);
	}
	PG_exception_stack = &local_sigjmp_buf;

	for (;;)
	{
		TimestampTz now;

		CHECK_FOR_INTERRUPTS();
		reload_settings();
		/* a DROP committed here: is the extension still there? */
		if (su_registry_ext_changes() != sched.ext_changes)
		{
			sched.ext_changes = su_registry_ext_changes();
			sched.extension_ready = false;
		}
		if (!sched.extension_ready)
			wait_for_extension(false);
		MemoryContextReset(sched.cxt);
		MemoryContextSwitchTo(sched.cxt);
		/* a worker of this database left: its share goes to the others */
		if (su_registry_must_fold())
		{
			begin_txn("taking a share over");
			su_registry_fold();
			commit_txn();
		}
		watch_clock();
		su_apps_take_hold_releases();
		now = su_mono_now();

		/*
		 * Once a minute every kind is looked at, whatever the worker knows:
		 * rows made due by another hand than a queueing commit (a direct
		 * UPDATE of the states, a clock that moved) are not left waiting.
		 */
		if (now >= sched.next_look)
		{
			want_all();
			sched.next_look = TimestampTzPlusMilliseconds(now, SU_LOOK_ALL_MS);
		}
		if (su_registry_retiring())
			step_retire();
		else
			step_claim(now);
		step_send(now);
		step_collect();
		step_record(now);
		step_trim(now);
		step_trade_apps(now);
		su_alert_flush();
		step_wait();
	}
}
