/*-------------------------------------------------------------------------
 *
 * registry.c
 *		The databases and workers in shared memory: a worker's slot, its
 *		database's partitions, and what other backends' statements tell the
 *		launcher and the workers (see shared.h).
 *
 * The partitions: worker i of a database claims the orders whose hash
 * falls in its share, so that every kind of call for one order goes
 * through one process, one at a time, as with a single worker.  The
 * partitions change only when a worker joins, under a lock that every
 * claim holds (shared) until it commits: two claims never see different
 * partitions.  A worker that leaves has no claim left (its transaction
 * ended with it), and the others take its share at their next claim.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "port/pg_bitutils.h"
#include "storage/ipc.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/acl.h"
#include "utils/timestamp.h"

#include "registry.h"
#include "retry.h"
#include "settings.h"

SuShared   *su_shared = NULL;
SuWorkerSlot *su_my_worker = NULL;

/* the worker's: its database's creations when its look began */
static uint32 looked_creations = 0;

/* the lock of a database's partitions: an advisory tag no SQL call makes */
#define SU_PARTITION_LOCK_CLASS 0x5355

Size
su_shared_size(void)
{
	return add_size(offsetof(SuShared, workers),
					mul_size(sizeof(SuWorkerSlot), max_worker_processes));
}

void
su_shared_init(SuShared *shared)
{
	memset(shared, 0, su_shared_size());
	SpinLockInit(&shared->mutex);
	pg_atomic_init_u32(&shared->rescan, 0);
	pg_atomic_init_u32(&shared->holds_released, 0);
	for (int i = 0; i < SU_MAX_DATABASES; i++)
		pg_atomic_init_u64(&shared->dbs[i].audit_deleted, 0);
	shared->n_workers = max_worker_processes;
	for (int i = 0; i < shared->n_workers; i++)
	{
		pg_atomic_init_u32(&shared->workers[i].wake_wanted, 1);
		pg_atomic_init_u32(&shared->workers[i].queued_dues, 0);
	}
}

/* ---------------------------------------------------------------------
 * The worker's side
 * ---------------------------------------------------------------------
 */

static void
detach(int code, Datum arg)
{
	SuWorkerSlot *w = su_my_worker;

	(void) code;
	(void) arg;
	if (w == NULL)
		return;
	SpinLockAcquire(&su_shared->mutex);
	/* the others take its share once one of them folds it (under the lock) */
	if (su_shared->dbs[w->db].serving_mask & (1U << w->index))
		su_shared->dbs[w->db].leaving_mask |= 1U << w->index;
	w->latch = NULL;
	w->pid = 0;
	SpinLockRelease(&su_shared->mutex);
	su_my_worker = NULL;
}

bool
su_registry_attach(int slot, Oid dboid)
{
	SuWorkerSlot *w;
	bool		mine;

	if (slot < 0 || slot >= su_shared->n_workers)
		return false;
	w = &su_shared->workers[slot];
	SpinLockAcquire(&su_shared->mutex);
	/* not while DROP DATABASE or the like wants the database to itself */
	mine = w->dboid == dboid && w->pid == 0 &&
		su_shared->dbs[w->db].paused_until <= GetCurrentTimestamp();
	if (mine)
	{
		w->pid = MyProcPid;
		w->latch = MyLatch;
		w->retire = false;
		memset(w->claim_wait, 0, sizeof(w->claim_wait));
		pg_atomic_write_u32(&w->wake_wanted, 1);
		pg_atomic_write_u32(&w->queued_dues, 0);
	}
	SpinLockRelease(&su_shared->mutex);
	if (!mine)
		return false;
	su_my_worker = w;
	before_shmem_exit(detach, (Datum) 0);
	return true;
}

SuDbSlot *
su_registry_my_db(void)
{
	return &su_shared->dbs[su_my_worker->db];
}

void
su_registry_found(SuDbState state)
{
	SuDbSlot   *db = su_registry_my_db();
	Latch	   *launcher = NULL;

	SpinLockAcquire(&su_shared->mutex);

	/*
	 * No extension, but a CREATE EXTENSION committed since this look began
	 * (its snapshot may predate it): look again.
	 */
	if (state == SU_DB_NO_EXTENSION)
	{
		if (db->creations != looked_creations)
			state = SU_DB_LOOK;
		else
			db->creations_looked = looked_creations;
	}
	if (db->dboid == MyDatabaseId && db->state != state &&
		(db->state == SU_DB_LOOK || db->state == SU_DB_SERVED))
	{
		db->state = state;
		db->state_since = GetCurrentTimestamp();
		launcher = su_shared->launcher_latch;
	}
	SpinLockRelease(&su_shared->mutex);
	if (launcher)
		SetLatch(launcher);
}

void
su_registry_looking(void)
{
	SpinLockAcquire(&su_shared->mutex);
	looked_creations = su_registry_my_db()->creations;
	SpinLockRelease(&su_shared->mutex);
}

static void
partition_locktag(LOCKTAG *tag)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, 0, 0, SU_PARTITION_LOCK_CLASS);
}

/*
 * The shares change (a worker joins, or those that left are folded into
 * the others'), once every claim under way has committed.
 */
static void
change_shares(bool join)
{
	LOCKTAG		tag;
	SuDbSlot   *db = su_registry_my_db();

	partition_locktag(&tag);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
	SpinLockAcquire(&su_shared->mutex);
	db->serving_mask &= ~db->leaving_mask;
	db->leaving_mask = 0;
	if (join)
		db->serving_mask |= 1U << su_my_worker->index;
	SpinLockRelease(&su_shared->mutex);
}

void
su_registry_join(void)
{
	change_shares(true);
}

bool
su_registry_must_fold(void)
{
	bool		leaving;

	SpinLockAcquire(&su_shared->mutex);
	leaving = su_registry_my_db()->leaving_mask != 0;
	SpinLockRelease(&su_shared->mutex);
	return leaving;
}

void
su_registry_fold(void)
{
	change_shares(false);
}

void
su_registry_partition(int *n, int *part)
{
	LOCKTAG		tag;
	uint32		mask;
	uint32		me = 1U << su_my_worker->index;

	partition_locktag(&tag);
	(void) LockAcquire(&tag, ShareLock, false, false);
	SpinLockAcquire(&su_shared->mutex);
	mask = su_registry_my_db()->serving_mask;
	SpinLockRelease(&su_shared->mutex);
	if ((mask & me) == 0)
	{
		/* not joined yet: claims nothing of anyone's */
		*n = 0;
		*part = 0;
		return;
	}
	*n = pg_popcount32(mask);
	*part = pg_popcount32(mask & (me - 1));
}

TimestampTz
su_registry_writable_since(void)
{
	TimestampTz since;

	SpinLockAcquire(&su_shared->mutex);
	since = su_shared->writable_since;
	SpinLockRelease(&su_shared->mutex);
	return since;
}

bool
su_registry_retiring(void)
{
	bool		retire;

	SpinLockAcquire(&su_shared->mutex);
	retire = su_my_worker->retire;
	SpinLockRelease(&su_shared->mutex);
	return retire;
}

uint32
su_registry_ext_changes(void)
{
	uint32		changes;

	SpinLockAcquire(&su_shared->mutex);
	changes = su_registry_my_db()->ext_changes;
	SpinLockRelease(&su_shared->mutex);
	return changes;
}

/* ---------------------------------------------------------------------
 * Other backends' side
 * ---------------------------------------------------------------------
 */

/* the slot of a database by name or oid (mutex held), or NULL */
static SuDbSlot *
find_db(const char *name, Oid dboid)
{
	for (int i = 0; i < su_shared->n_dbs; i++)
	{
		SuDbSlot   *db = &su_shared->dbs[i];

		if (db->state == SU_DB_FREE)
			continue;
		if (name ? strcmp(db->name, name) == 0 : db->dboid == dboid)
			return db;
	}
	return NULL;
}

/* would the statement on database dboid get past its permission checks? */
static bool
may_alter(Oid dboid)
{
	if (!OidIsValid(dboid) || dboid == MyDatabaseId)
		return false;
#if PG_VERSION_NUM >= 160000
	return object_ownercheck(DatabaseRelationId, dboid, GetUserId());
#else
	return pg_database_ownercheck(dboid, GetUserId());
#endif
}

void
su_registry_keep_out(const char *dbname)
{
	Oid			dboid = get_database_oid(dbname, true);
	pid_t		pids[SU_MAX_WORKERS_PER_DATABASE * 2];
	int			n = 0;
	SuDbSlot   *db;

	if (su_shared == NULL || !may_alter(dboid))
		return;
	SpinLockAcquire(&su_shared->mutex);
	db = find_db(NULL, dboid);
	if (db)
	{
		db->paused_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   SU_LAUNCHER_KEEP_OUT_MS);
		/* workers started but not attached refuse to attach (su_registry_attach) */
		for (int i = 0; i < su_shared->n_workers && n < (int) lengthof(pids); i++)
			if (su_shared->workers[i].dboid == dboid && su_shared->workers[i].pid != 0)
				pids[n++] = su_shared->workers[i].pid;
	}
	SpinLockRelease(&su_shared->mutex);
	for (int i = 0; i < n; i++)
		kill(pids[i], SIGTERM);
}

SuDbSlot *
su_registry_new_db(Oid dboid, const char *name)
{
	SuDbSlot   *db = NULL;

	for (int i = 0; i < su_shared->n_dbs && db == NULL; i++)
		if (su_shared->dbs[i].state == SU_DB_FREE)
			db = &su_shared->dbs[i];
	if (db == NULL && su_shared->n_dbs < SU_MAX_DATABASES)
		db = &su_shared->dbs[su_shared->n_dbs++];
	if (db == NULL)
		return NULL;
	db->dboid = dboid;
	strlcpy(db->name, name, sizeof(db->name));
	db->state = SU_DB_LOOK;
	db->state_since = GetCurrentTimestamp();
	db->no_slot = false;
	db->creations = 0;
	db->creations_looked = 0;
	db->paused_until = 0;
	db->serving_mask = 0;
	db->leaving_mask = 0;
	db->ext_changes = 0;
	db->fresh = true;
	return db;
}

static bool created_here = false;
static char created_in[NAMEDATALEN];	/* this database's name, then */
static bool created_allowed = false;	/* ... and may a worker serve it? */
static bool dropped_here = false;
static bool callback_set = false;

static void
at_commit(XactEvent event, void *arg)
{
	Latch	   *latches[SU_MAX_WORKERS_PER_DATABASE * 2];
	int			n = 0;

	(void) arg;
	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT &&
		event != XACT_EVENT_PREPARE && event != XACT_EVENT_PARALLEL_ABORT)
		return;
	if (event == XACT_EVENT_COMMIT && (created_here || dropped_here))
	{
		SuDbSlot   *db;

		SpinLockAcquire(&su_shared->mutex);
		db = find_db(NULL, MyDatabaseId);

		/*
		 * A database the launcher has not read yet: its slot is made here,
		 * so that the launcher knows it has the extension (and says so if
		 * no worker slot is free for it).
		 */
		if (db == NULL && created_here && created_allowed)
			db = su_registry_new_db(MyDatabaseId, created_in);
		if (db && created_here)
			db->creations++;
		if (created_here && su_shared->launcher_latch)
			latches[n++] = su_shared->launcher_latch;
		if (db && dropped_here)
		{
			db->ext_changes++;
			for (int i = 0; i < su_shared->n_workers && n < (int) lengthof(latches); i++)
				if (su_shared->workers[i].dboid == MyDatabaseId && su_shared->workers[i].latch)
					latches[n++] = su_shared->workers[i].latch;
		}
		SpinLockRelease(&su_shared->mutex);
		if (created_here)
			pg_atomic_write_u32(&su_shared->rescan, 1);
		for (int i = 0; i < n; i++)
			SetLatch(latches[i]);
	}
	created_here = false;
	dropped_here = false;
}

static void
watch_commit(void)
{
	if (!callback_set)
	{
		RegisterXactCallback(at_commit, NULL);
		callback_set = true;
	}
}

void
su_registry_extension_created(void)
{
	char	   *name;

	if (su_shared == NULL)
		return;
	watch_commit();
	created_here = true;
	name = get_database_name(MyDatabaseId);
	strlcpy(created_in, name ? name : "", sizeof(created_in));

	/*
	 * A slot made at commit (the launcher has not read this database yet)
	 * only for a database the settings allow: the launcher would start a
	 * worker for it before its next read of pg_database.
	 */
	created_allowed = name != NULL && su_database_allowed(name);
}

void
su_registry_something_dropped(void)
{
	if (su_shared == NULL)
		return;
	watch_commit();
	dropped_here = true;
}

int
su_registry_workers_here(pid_t *pid)
{
	int			n = 0;

	*pid = 0;
	if (su_shared == NULL)
		return 0;
	SpinLockAcquire(&su_shared->mutex);
	for (int i = 0; i < su_shared->n_workers; i++)
	{
		SuWorkerSlot *w = &su_shared->workers[i];

		if (w->dboid == MyDatabaseId && w->pid != 0)
		{
			if (n++ == 0)
				*pid = w->pid;
		}
	}
	SpinLockRelease(&su_shared->mutex);
	return n;
}
