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

#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/timestamp.h"

#include "apps.h"
#include "queue.h"
#include "queue_commit.h"
#include "registry.h"
#include "settings.h"
#include "token.h"
#include "wake.h"
#include "worker.h"

PG_MODULE_MAGIC;

extern PGDLLEXPORT void _PG_init(void);

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static ProcessUtility_hook_type prev_process_utility = NULL;

static void
su_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(add_size(su_shared_size(),
									add_size(su_token_shmem_size(), su_apps_shmem_size())));
	RequestNamedLWLockTranche("shopping_upload", 2);
}

static void
su_shmem_startup(void)
{
	bool		found;
	SuTokenSlot *slots;
	void	   *apps;
	LWLockPadded *locks;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	locks = GetNamedLWLockTranche("shopping_upload");
	slots = ShmemInitStruct("shopping_upload tokens", su_token_shmem_size(), &found);
	if (!found)
		memset(slots, 0, su_token_shmem_size());
	su_token_shmem_init(slots, &locks[0].lock);
	apps = ShmemInitStruct("shopping_upload appids", su_apps_shmem_size(), &found);
	su_apps_shmem_init(apps, !found, &locks[1].lock);
	su_shared = ShmemInitStruct("shopping_upload state", su_shared_size(), &found);
	if (!found)
		su_shared_init(su_shared);
	LWLockRelease(AddinShmemInitLock);
}

/*
 * The database a statement needs every other session out of (our workers
 * included), or NULL: DROP DATABASE, ALTER DATABASE ... RENAME, ALTER
 * DATABASE ... SET TABLESPACE, CREATE DATABASE ... TEMPLATE.
 */
static const char *
database_wanted_alone(Node *parsetree)
{
	ListCell   *lc;

	switch (nodeTag(parsetree))
	{
		case T_DropdbStmt:
			return ((DropdbStmt *) parsetree)->dbname;
		case T_RenameStmt:
			if (((RenameStmt *) parsetree)->renameType == OBJECT_DATABASE)
				return ((RenameStmt *) parsetree)->subname;
			return NULL;
		case T_AlterDatabaseStmt:
			foreach(lc, ((AlterDatabaseStmt *) parsetree)->options)
				if (strcmp(((DefElem *) lfirst(lc))->defname, "tablespace") == 0)
					return ((AlterDatabaseStmt *) parsetree)->dbname;
			return NULL;
		case T_CreatedbStmt:
			foreach(lc, ((CreatedbStmt *) parsetree)->options)
			{
				DefElem    *opt = (DefElem *) lfirst(lc);

				if (strcmp(opt->defname, "template") == 0 && opt->arg)
					return defGetString(opt);
			}
			return NULL;
		default:
			return NULL;
	}
}

/* might the statement create, update or drop our extension? */
static bool
may_change_extension(Node *parsetree)
{
	switch (nodeTag(parsetree))
	{
		case T_CreateExtensionStmt:
			return strcmp(((CreateExtensionStmt *) parsetree)->extname, "shopping_upload") == 0;
		case T_AlterExtensionStmt:
			return strcmp(((AlterExtensionStmt *) parsetree)->extname, "shopping_upload") == 0;
		case T_DropStmt:
			return ((DropStmt *) parsetree)->removeType == OBJECT_EXTENSION ||
				((DropStmt *) parsetree)->removeType == OBJECT_SCHEMA;
		case T_DropOwnedStmt:
			return true;
		case T_TransactionStmt:
			return ((TransactionStmt *) parsetree)->kind == TRANS_STMT_COMMIT_PREPARED;
		default:
			return false;
	}
}

/*
 * The extension as the statement left it: created or updated (the launcher
 * looks again at commit), or dropped (the workers leave at commit).  A
 * statement that changed nothing (IF NOT EXISTS, a DROP of something else)
 * tells no one: any role could make the launcher or the workers spin.
 */
static void
note_extension(Node *parsetree, Oid before)
{
	Oid			after = get_extension_oid("shopping_upload", true);

	if (OidIsValid(after) &&
		(after != before || IsA(parsetree, AlterExtensionStmt) ||
		 IsA(parsetree, TransactionStmt)))
		su_registry_extension_created();
	else if (!OidIsValid(after) &&
			 (OidIsValid(before) || IsA(parsetree, TransactionStmt)))
		su_registry_something_dropped();
}

/*
 * A statement that needs a database to itself would wait for its workers,
 * then fail: they are asked to leave first, and the launcher keeps them
 * out a while (registry.c checks that the role may run it, so that no one
 * else can pause the uploads with a statement that fails).  Statements
 * that create or drop the extension tell the launcher and the workers.
 */
static void
su_process_utility(PlannedStmt *pstmt, const char *queryString,
				   bool readOnlyTree, ProcessUtilityContext context,
				   ParamListInfo params, QueryEnvironment *queryEnv,
				   DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;
	const char *alone = su_shared ? database_wanted_alone(parsetree) : NULL;
	bool		watch = su_shared != NULL && IsTransactionState() &&
		may_change_extension(parsetree);
	Oid			before = watch ? get_extension_oid("shopping_upload", true) : InvalidOid;

	if (alone)
		su_registry_keep_out(alone);
	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context,
							 params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
	if (watch && IsTransactionState())
		note_extension(parsetree, before);

	/*
	 * COMMIT PREPARED makes visible what another session queued, without
	 * that session's commit callback: the workers are woken for every kind,
	 * as a commit that queued would wake them (note_extension() told the
	 * launcher or the workers if it left the extension there or not).
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
