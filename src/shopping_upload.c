/*-------------------------------------------------------------------------
 *
 * shopping_upload.c
 *		Module entry: _PG_init, the shared memory, the hooks, the launcher's
 *		registration.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/timestamp.h"

#include "queue.h"
#include "settings.h"
#include "worker.h"
#include "token.h"
#include "shared.h"
#include "wake.h"
#include "queue_commit.h"

PG_MODULE_MAGIC;

SuShared   *su_shared = NULL;

extern PGDLLEXPORT void _PG_init(void);

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static ProcessUtility_hook_type prev_process_utility = NULL;

static void
su_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(add_size(sizeof(SuShared), su_token_shmem_size()));
	RequestNamedLWLockTranche("shopping_upload", 1);
}

static void
su_shmem_startup(void)
{
	bool		found;
	SuTokenSlot *slots;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	slots = ShmemInitStruct("shopping_upload tokens", su_token_shmem_size(), &found);
	if (!found)
		memset(slots, 0, su_token_shmem_size());
	su_token_shmem_init(slots, &(GetNamedLWLockTranche("shopping_upload"))->lock);
	su_shared = ShmemInitStruct("shopping_upload state", sizeof(SuShared), &found);
	if (!found)
	{
		memset(su_shared, 0, sizeof(SuShared));
		SpinLockInit(&su_shared->mutex);
		pg_atomic_init_u64(&su_shared->audit_deleted, 0);
		pg_atomic_init_u32(&su_shared->wake_wanted, 1);
		pg_atomic_init_u32(&su_shared->queued_dues, 0);
		pg_atomic_init_u32(&su_shared->holds_released, 0);
	}
	LWLockRelease(AddinShmemInitLock);
}

/* would DROP DATABASE dbname get past its permission checks? */
static bool
may_drop(const char *dbname)
{
	Oid			dboid = get_database_oid(dbname, true);

	if (!OidIsValid(dboid) || dboid == MyDatabaseId)
		return false;
#if PG_VERSION_NUM >= 160000
	return object_ownercheck(DatabaseRelationId, dboid, GetUserId());
#else
	return pg_database_ownercheck(dboid, GetUserId());
#endif
}

/*
 * DROP DATABASE of the worker's database would wait for the worker, then
 * fail: ask the worker to leave first, and the launcher to let it be; only
 * for a role allowed to drop it (its owner or a superuser), so that no one
 * else can pause the uploads with a DROP DATABASE that fails.
 */
static void
su_process_utility(PlannedStmt *pstmt, const char *queryString,
				   bool readOnlyTree, ProcessUtilityContext context,
				   ParamListInfo params, QueryEnvironment *queryEnv,
				   DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;

	if (su_shared && IsA(parsetree, DropdbStmt) &&
		strcmp(((DropdbStmt *) parsetree)->dbname, su_database_name) == 0 &&
		may_drop(((DropdbStmt *) parsetree)->dbname))
	{
		su_shared->drop_requested_at = GetCurrentTimestamp();
		if (su_shared->worker_pid > 0)
			kill(su_shared->worker_pid, SIGTERM);
	}
	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context,
							 params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);

	/*
	 * COMMIT PREPARED makes visible what another session queued, without
	 * that session's commit callback: the worker is woken for every kind, as
	 * a commit that queued would wake it.
	 */
	if (IsA(parsetree, TransactionStmt) &&
		((TransactionStmt *) parsetree)->kind == TRANS_STMT_COMMIT_PREPARED)
		su_wake_worker((1U << SU_DUES) - 1);
}

void
_PG_init(void)
{
	su_define_settings(process_shared_preload_libraries_in_progress);
	su_queue_init();

	if (!process_shared_preload_libraries_in_progress)
		return;

	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = su_process_utility;
	su_register_launcher();

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = su_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = su_shmem_startup;
}
