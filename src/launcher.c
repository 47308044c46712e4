/*-------------------------------------------------------------------------
 *
 * launcher.c
 *		The launcher: a static background worker, connected to no database,
 *		that starts the worker when shopping_upload.database_name exists and
 *		restarts it when it stops; it waits quietly while the database does
 *		not exist.
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
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "retry.h"
#include "settings.h"
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
			next_start = TimestampTzPlusMilliseconds(now, SU_LAUNCHER_RESTART_MS);
		}
		if (handle == NULL && now >= next_start &&
			now - su_shared->drop_requested_at > SU_LAUNCHER_DROP_USECS)
		{
			if (database_exists())
			{
				said_missing = false;
				handle = start_worker();
				if (handle == NULL)
					next_start = TimestampTzPlusMilliseconds(now, SU_LAUNCHER_START_RETRY_MS);
			}
			else if (!said_missing)
			{
				ereport(LOG,
						(errmsg("shopping_upload launcher: database \"%s\" does not exist; waiting for it",
								su_database_name),
						 errhint("Create it (createdb %s, then CREATE EXTENSION shopping_upload in it), "
								 "or set shopping_upload.database_name to the database that holds the orders.",
								 su_database_name)));
				said_missing = true;
			}
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 handle ? SU_LAUNCHER_WAIT_RUNNING_MS : SU_LAUNCHER_WAIT_MS,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	if (handle)
		TerminateBackgroundWorker(handle);
	proc_exit(0);
}
