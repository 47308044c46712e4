/*-------------------------------------------------------------------------
 *
 * launcher.c
 *		The launcher: a static background worker, connected to no database,
 *		that keeps a worker in every database that has the extension.
 *
 * It reads pg_database every few seconds (as the autovacuum launcher does)
 * and starts a worker for each database it has not looked at: the worker
 * finds the extension and stays, or finds none, says so and leaves, and
 * the database costs nothing more until CREATE EXTENSION commits there
 * (a backend's hook tells the launcher).  A database with the extension
 * gets shopping_upload.workers_per_database workers, the first one alone
 * until it recovered what a previous worker left; a worker that stops is
 * started again.  When no background worker slot is free, one WARNING
 * names the databases left unserved; they are served as soon as one is.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "retry.h"
#include "settings.h"
#include "registry.h"
#include "shared.h"
#include "worker.h"

PGDLLEXPORT void su_launcher_main(Datum arg);

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

/* what the launcher keeps to itself */
static struct
{
	BackgroundWorkerHandle **handles;	/* per worker slot; NULL: none */
	TimestampTz next_start[SU_MAX_DATABASES];
	bool		waiting_slot[SU_MAX_DATABASES]; /* its last start found no slot */
	char	   *unserved_said;	/* the names the last WARNING gave, or NULL */
	char	   *missing_said;	/* the missing names last logged, or NULL */
	bool		full_said;		/* more databases than slots: said */
	MemoryContext cxt;			/* reset at every turn */
} me;

/* one row of pg_database, as the launcher needs it */
typedef struct DbRow
{
	Oid			oid;
	NameData	name;
	bool		allowed;
} DbRow;

/*
 * Reads pg_database as the autovacuum launcher does (no database needed):
 * the databases a worker may serve are those that allow connections, are
 * no template, are not being dropped, and that the settings allow.
 */
static int
read_databases(DbRow **rows)
{
	int			n = 0;
	int			max = 64;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	MemoryContext cxt = CurrentMemoryContext;

	*rows = palloc(sizeof(DbRow) * max);
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	(void) GetTransactionSnapshot();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);
		MemoryContext old = MemoryContextSwitchTo(cxt);

		if (n == max)
		{
			max *= 2;
			*rows = repalloc(*rows, sizeof(DbRow) * max);
		}
		(*rows)[n].oid = db->oid;
		(*rows)[n].name = db->datname;
		(*rows)[n].allowed = db->datallowconn && !db->datistemplate &&
			db->datconnlimit != -2 &&	/* -2: being dropped, or invalid */
			su_database_allowed(NameStr(db->datname));
		n++;
		MemoryContextSwitchTo(old);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return n;
}

/* the slot of database oid (mutex held), or NULL */
static SuDbSlot *
db_slot(Oid oid)
{
	for (int i = 0; i < su_shared->n_dbs; i++)
		if (su_shared->dbs[i].state != SU_DB_FREE && su_shared->dbs[i].dboid == oid)
			return &su_shared->dbs[i];
	return NULL;
}

static void
set_state(SuDbSlot *db, SuDbState state, TimestampTz now)
{
	if (db->state != state)
	{
		db->state = state;
		db->state_since = now;
	}
}

/*
 * The databases the settings name that do not exist: said once (again
 * when the list changes), as the launcher waits for them quietly.
 */
static void
say_missing(const DbRow *rows, int n)
{
	char	   *named = su_databases_named();
	StringInfoData missing;
	int			count = 0;

	initStringInfo(&missing);
	for (char *name = named; *name; name += strlen(name) + 1)
	{
		bool		found = false;

		for (int r = 0; r < n && !found; r++)
			found = strcmp(NameStr(rows[r].name), name) == 0;
		if (!found)
			appendStringInfo(&missing, "%s\"%s\"", count++ ? ", " : "", name);
	}
	if (count > 0 && (me.missing_said == NULL || strcmp(me.missing_said, missing.data) != 0))
		ereport(LOG,
				(errmsg("shopping_upload launcher: database%s %s do%s not exist; waiting for %s",
						count > 1 ? "s" : "", missing.data, count > 1 ? "" : "es",
						count > 1 ? "them" : "it"),
				 errhint("Create it (createdb, then CREATE EXTENSION shopping_upload in it), "
						 "or change shopping_upload.databases.")));
	if (me.missing_said)
		pfree(me.missing_said);
	me.missing_said = count > 0 ? MemoryContextStrdup(TopMemoryContext, missing.data) : NULL;
	pfree(missing.data);
	pfree(named);
}

/*
 * pg_database read again: new databases are to be looked at, dropped ones
 * gone, and the settings' choice applied.
 */
static void
scan_databases(TimestampTz now)
{
	DbRow	   *rows;
	int			n = read_databases(&rows);
	bool		full = false;

	SpinLockAcquire(&su_shared->mutex);
	for (int i = 0; i < su_shared->n_dbs; i++)
	{
		SuDbSlot   *db = &su_shared->dbs[i];
		bool		listed = false;

		for (int r = 0; r < n && !listed; r++)
			listed = rows[r].oid == db->dboid;
		if (db->state != SU_DB_FREE && !listed)
			set_state(db, SU_DB_GONE, now);
	}
	for (int r = 0; r < n; r++)
	{
		SuDbSlot   *db = db_slot(rows[r].oid);

		if (db == NULL)
		{
			if ((db = su_registry_new_db(rows[r].oid, NameStr(rows[r].name))) == NULL)
			{
				full |= rows[r].allowed;
				continue;
			}
			db->state = SU_DB_FREE;
			me.next_start[db - su_shared->dbs] = 0;
		}
		strlcpy(db->name, NameStr(rows[r].name), sizeof(db->name));
		if (!rows[r].allowed)
			set_state(db, SU_DB_EXCLUDED, now);
		else if (db->state == SU_DB_FREE || db->state == SU_DB_EXCLUDED ||
				 (db->state == SU_DB_NO_EXTENSION &&
				  db->creations != db->creations_looked))
			set_state(db, SU_DB_LOOK, now);
	}
	SpinLockRelease(&su_shared->mutex);
	/* a reused slot's count starts over (not under the spinlock: it may be one) */
	for (int d = 0; d < su_shared->n_dbs; d++)
	{
		bool		fresh;

		SpinLockAcquire(&su_shared->mutex);
		fresh = su_shared->dbs[d].fresh;
		su_shared->dbs[d].fresh = false;
		SpinLockRelease(&su_shared->mutex);
		if (fresh)
			pg_atomic_write_u64(&su_shared->dbs[d].audit_deleted, 0);
	}
	say_missing(rows, n);
	pfree(rows);
	if (full && !me.full_said)
		ereport(WARNING,
				(errmsg("shopping_upload launcher: more than %d databases: the others are not served",
						SU_MAX_DATABASES),
				 errhint("List the databases to serve in shopping_upload.databases.")));
	me.full_said = full;
}

/* starts worker index of database db; false when no slot was free */
static bool
start_worker(int dbi, int index, TimestampTz now)
{
	SuDbSlot   *db = &su_shared->dbs[dbi];
	BackgroundWorker w;
	BackgroundWorkerHandle *handle;
	int			slot = -1;
	Oid			dboid;
	MemoryContext old;
	bool		registered;

	SpinLockAcquire(&su_shared->mutex);
	for (int i = 0; i < su_shared->n_workers && slot < 0; i++)
		if (!OidIsValid(su_shared->workers[i].dboid))
		{
			slot = i;
			su_shared->workers[i].dboid = db->dboid;
			su_shared->workers[i].db = dbi;
			su_shared->workers[i].index = index;
			su_shared->workers[i].pid = 0;
			su_shared->workers[i].reserved_at = now;
		}
	dboid = db->dboid;
	SpinLockRelease(&su_shared->mutex);
	if (slot < 0)
		return false;

	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = BGW_NEVER_RESTART; /* the launcher restarts it */
	snprintf(w.bgw_library_name, BGW_MAXLEN, "shopping_upload");
	snprintf(w.bgw_function_name, BGW_MAXLEN, "su_worker_main");
	snprintf(w.bgw_name, BGW_MAXLEN, "shopping_upload worker %d for %s",
			 index + 1, db->name);
	snprintf(w.bgw_type, BGW_MAXLEN, "shopping_upload worker");
	w.bgw_main_arg = Int32GetDatum(slot);
	memcpy(w.bgw_extra, &dboid, sizeof(dboid));
	w.bgw_notify_pid = MyProcPid;
	/* the handle outlives the turn (me.cxt is reset at every one) */
	old = MemoryContextSwitchTo(TopMemoryContext);
	registered = RegisterDynamicBackgroundWorker(&w, &handle);
	MemoryContextSwitchTo(old);
	if (!registered)
	{
		SpinLockAcquire(&su_shared->mutex);
		su_shared->workers[slot].dboid = InvalidOid;
		SpinLockRelease(&su_shared->mutex);
		return false;
	}
	me.handles[slot] = handle;
	return true;
}

/* frees the slots of workers that stopped (mutex not held) */
static void
reap_workers(TimestampTz now)
{
	for (int i = 0; i < su_shared->n_workers; i++)
	{
		SuWorkerSlot *w = &su_shared->workers[i];
		bool		stopped = false;
		pid_t		pid;
		int			dbi;

		SpinLockAcquire(&su_shared->mutex);
		pid = w->pid;
		dbi = w->db;
		if (!OidIsValid(w->dboid))
			pid = -1;
		SpinLockRelease(&su_shared->mutex);
		if (pid < 0)
			continue;
		if (me.handles[i])
		{
			pid_t		p;

			stopped = GetBackgroundWorkerPid(me.handles[i], &p) == BGWH_STOPPED;
		}
		else if (pid == 0)
		{
			/* reserved by a launcher before this one, never attached */
			SpinLockAcquire(&su_shared->mutex);
			stopped = now - w->reserved_at > SU_LAUNCHER_ATTACH_MS * (int64) 1000;
			SpinLockRelease(&su_shared->mutex);
		}
		else
			stopped = kill(pid, 0) != 0 && errno == ESRCH;
		if (!stopped)
			continue;
		if (me.handles[i])
		{
			pfree(me.handles[i]);
			me.handles[i] = NULL;
		}
		SpinLockAcquire(&su_shared->mutex);
		w->dboid = InvalidOid;
		w->pid = 0;
		w->latch = NULL;
		SpinLockRelease(&su_shared->mutex);
		me.next_start[dbi] = TimestampTzPlusMilliseconds(now, SU_LAUNCHER_RESTART_MS);
		/* a slot is free: the databases that waited for one try now */
		for (int d = 0; d < su_shared->n_dbs; d++)
			if (d != dbi && me.waiting_slot[d])
				me.next_start[d] = 0;
	}
}

/*
 * Asks worker slot i to leave: no more claims, and out once what it sent
 * is answered and recorded, so that nothing it leased waits for the lease
 * to run out.  One that has not attached yet is stopped.
 */
static void
stop_worker(int i)
{
	SuWorkerSlot *w = &su_shared->workers[i];
	Latch	   *latch = NULL;
	bool		attached;

	SpinLockAcquire(&su_shared->mutex);
	attached = w->pid != 0;
	if (attached && !w->retire)
	{
		w->retire = true;
		latch = w->latch;
	}
	SpinLockRelease(&su_shared->mutex);
	if (latch)
		SetLatch(latch);
	else if (!attached && me.handles[i])
		TerminateBackgroundWorker(me.handles[i]);
}

/*
 * Every database as it should be: the workers it wants started, in order,
 * those it no longer wants stopped.  Returns whether something waits (a
 * start to try again soon).
 */
static bool
keep_databases(TimestampTz now)
{
	bool		pending = false;
	int			looks = 0;

	/* the looks under way: a few at a time, so that serving comes first */
	SpinLockAcquire(&su_shared->mutex);
	for (int i = 0; i < su_shared->n_workers; i++)
		if (OidIsValid(su_shared->workers[i].dboid) &&
			su_shared->dbs[su_shared->workers[i].db].state == SU_DB_LOOK)
			looks++;
	SpinLockRelease(&su_shared->mutex);

	for (int d = 0; d < su_shared->n_dbs; d++)
	{
		SuDbSlot   *db = &su_shared->dbs[d];
		uint32		present = 0;
		int			want;
		bool		no_slot = false;
		uint32		serving;
		SuDbState	state;
		int			stop[SU_MAX_WORKERS_PER_DATABASE];
		int			n_stop;

		SpinLockAcquire(&su_shared->mutex);
		state = db->state;
		serving = db->serving_mask;
		for (int i = 0; i < su_shared->n_workers; i++)
			if (OidIsValid(su_shared->workers[i].dboid) && su_shared->workers[i].db == d)
				present |= 1U << su_shared->workers[i].index;
		if (state == SU_DB_GONE && present == 0)
			db->state = SU_DB_FREE;
		want = state == SU_DB_LOOK ? 1 :
			state == SU_DB_SERVED ? su_workers_per_database : 0;
		if (db->paused_until > now)
		{
			/* kept out: looked at again once the pause is over */
			if (want > 0)
				pending = true;
			want = 0;
		}
		/* workers the database no longer wants */
		n_stop = 0;
		for (int i = 0; i < su_shared->n_workers; i++)
			if (OidIsValid(su_shared->workers[i].dboid) && su_shared->workers[i].db == d &&
				su_shared->workers[i].index >= want && db->paused_until <= now)
				stop[n_stop++] = i;
		SpinLockRelease(&su_shared->mutex);
		for (int k = 0; k < n_stop; k++)
			stop_worker(stop[k]);

		for (int index = 0; index < want && now >= me.next_start[d]; index++)
		{
			if (present & (1U << index))
				continue;
			if (state == SU_DB_LOOK && looks >= SU_LAUNCHER_MAX_LOOKS)
			{
				pending = true;
				break;
			}
			/* the others once the first serves (it recovers alone) */
			if (index > 0 && (serving & 1) == 0)
			{
				pending = true;
				break;
			}
			me.waiting_slot[d] = false;
			if (!start_worker(d, index, now))
			{
				me.waiting_slot[d] = true;
				no_slot = true;
				me.next_start[d] = TimestampTzPlusMilliseconds(now, SU_LAUNCHER_START_RETRY_MS);
				break;
			}
			present |= 1U << index;
			if (state == SU_DB_LOOK)
				looks++;
		}
		if (want > 0 && (present & ((1U << want) - 1)) != ((1U << want) - 1))
			pending = true;
		SpinLockAcquire(&su_shared->mutex);
		/* a first look that waits for a slot is said by nobody: it may find nothing */
		if (no_slot && su_db_has_extension(db))
			db->no_slot = true;
		else if (want == 0 || (present & ((1U << want) - 1)) == ((1U << want) - 1))
			db->no_slot = false;
		SpinLockRelease(&su_shared->mutex);
	}
	return pending;
}

/*
 * One WARNING when databases are left without a worker (a new one when
 * the list grows), one LOG line when every database is served again.
 */
static void
say_unserved(void)
{
	StringInfoData names;
	int			n = 0;

	initStringInfo(&names);
	SpinLockAcquire(&su_shared->mutex);
	for (int d = 0; d < su_shared->n_dbs; d++)
		if (su_shared->dbs[d].no_slot && su_db_has_extension(&su_shared->dbs[d]))
		{
			/* appendStringInfo may allocate: names are copied out first */
			char		name[NAMEDATALEN];

			strlcpy(name, su_shared->dbs[d].name, sizeof(name));
			SpinLockRelease(&su_shared->mutex);
			appendStringInfo(&names, "%s\"%s\"", n++ ? ", " : "", name);
			SpinLockAcquire(&su_shared->mutex);
		}
	SpinLockRelease(&su_shared->mutex);

	if (n > 0 && (me.unserved_said == NULL || strcmp(me.unserved_said, names.data) != 0))
	{
		ereport(WARNING,
				(errmsg("shopping_upload launcher: no background worker slot is free for database%s %s: "
						"their orders are queued but not uploaded",
						n > 1 ? "s" : "", names.data),
				 errdetail("max_worker_processes is %d and shopping_upload.workers_per_database is %d; "
						   "they are served as soon as a slot frees up.",
						   max_worker_processes, su_workers_per_database),
				 errhint("Raise max_worker_processes to at least 1 + %d x (databases with the extension), "
						 "plus the workers of parallel queries, logical replication and other extensions, "
						 "and restart the server; or list fewer databases in shopping_upload.databases.",
						 su_workers_per_database)));
		if (me.unserved_said)
			pfree(me.unserved_said);
		me.unserved_said = MemoryContextStrdup(TopMemoryContext, names.data);
	}
	else if (n == 0 && me.unserved_said)
	{
		ereport(LOG,
				(errmsg("shopping_upload launcher: every database with the extension has its workers again")));
		pfree(me.unserved_said);
		me.unserved_said = NULL;
	}
	pfree(names.data);
}

static void
forget_launcher(int code, Datum arg)
{
	(void) code;
	(void) arg;
	SpinLockAcquire(&su_shared->mutex);
	su_shared->launcher_latch = NULL;
	SpinLockRelease(&su_shared->mutex);
}

void
su_launcher_main(Datum arg)
{
	TimestampTz next_scan = 0;
	TimestampTz last_scan = 0;

	(void) arg;
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	me.handles = MemoryContextAllocZero(TopMemoryContext,
										sizeof(BackgroundWorkerHandle *) * su_shared->n_workers);
	me.cxt = AllocSetContextCreate(TopMemoryContext, "shopping_upload launcher",
								   ALLOCSET_DEFAULT_SIZES);

	/*
	 * Workers of a launcher before this one (it died, they did not) are
	 * kept; slots it reserved for workers that never attached are freed.
	 */
	SpinLockAcquire(&su_shared->mutex);
	su_shared->launcher_latch = MyLatch;
	if (su_shared->writable_since == 0)
		su_shared->writable_since = GetCurrentTimestamp();
	for (int i = 0; i < su_shared->n_workers; i++)
		if (su_shared->workers[i].pid == 0)
			su_shared->workers[i].dboid = InvalidOid;
	SpinLockRelease(&su_shared->mutex);
	before_shmem_exit(forget_launcher, (Datum) 0);

	for (;;)
	{
		TimestampTz now = GetCurrentTimestamp();
		bool		pending;

		CHECK_FOR_INTERRUPTS();
		if (ShutdownRequestPending)
			break;
		MemoryContextReset(me.cxt);
		MemoryContextSwitchTo(me.cxt);
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			next_scan = 0;
		}
		/* a CREATE EXTENSION asks for a scan: one a second at most */
		if (pg_atomic_read_u32(&su_shared->rescan) == 1 &&
			now >= TimestampTzPlusMilliseconds(last_scan, SU_LAUNCHER_RESCAN_MS))
		{
			pg_atomic_write_u32(&su_shared->rescan, 0);
			next_scan = 0;
		}
		if (now >= next_scan)
		{
			scan_databases(now);
			last_scan = now;
			next_scan = TimestampTzPlusMilliseconds(now, SU_LAUNCHER_SCAN_MS);
		}
		reap_workers(now);
		pending = keep_databases(now);
		say_unserved();

		if (pg_atomic_read_u32(&su_shared->rescan) == 1)
			pending = true;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 pending ? SU_LAUNCHER_RESTART_MS : SU_LAUNCHER_SCAN_MS,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	for (int i = 0; i < su_shared->n_workers; i++)
		if (me.handles[i])
			TerminateBackgroundWorker(me.handles[i]);
	proc_exit(0);
}
