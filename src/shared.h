/*-------------------------------------------------------------------------
 *
 * shared.h
 *		The state that backends, the launcher and the workers share in
 *		memory (made by shopping_upload.c at the server's start): the
 *		databases the launcher knows, and one slot per worker it may start.
 *
 * The launcher writes the databases' slots and reserves the workers';
 * a worker fills its own slot and says what it found of its database.
 * The mutex guards both arrays; nothing that may sleep runs under it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SU_SHARED_H
#define SU_SHARED_H

#include "datatype/timestamp.h"
#include "port/atomics.h"
#include "storage/latch.h"
#include "storage/spin.h"

#include "settings.h"
#include "types.h"

/* databases the launcher keeps track of: more are logged once, not served */
#define SU_MAX_DATABASES 1024


typedef enum SuDbState
{
	SU_DB_FREE = 0,				/* an unused slot */
	SU_DB_LOOK,					/* a worker is to look for the extension */
	SU_DB_SERVED,				/* has the extension: its workers run */
	SU_DB_NO_EXTENSION,			/* looked at: no extension; looked at again
								 * when CREATE EXTENSION commits there */
	SU_DB_EXCLUDED,				/* not allowed (shopping_upload.databases), a
								 * template, or no connections allowed */
	SU_DB_GONE					/* dropped: freed once its workers left */
} SuDbState;

typedef struct SuDbSlot
{
	Oid			dboid;
	char		name[NAMEDATALEN];
	SuDbState	state;
	TimestampTz state_since;
	bool		no_slot;		/* a worker could not be started: no free
								 * background worker slot */
	uint32		creations;		/* CREATE or ALTER EXTENSION committed there */
	uint32		creations_looked;	/* ... as the last look that found none
									 * had seen them: another is due when they
									 * differ */
	TimestampTz paused_until;	/* DROP DATABASE and the like: kept out */
	uint32		serving_mask;	/* bit i: worker i claims (its partition) */
	uint32		leaving_mask;	/* bit i: worker i left; its bit goes from
								 * serving_mask under the partitions' lock */
	uint32		ext_changes;	/* a DROP committed there: the workers check
								 * that the extension is still there */
	bool		fresh;			/* (re)used: audit_deleted starts over (by
								 * the launcher: not under the mutex, which a
								 * 64-bit atomic may take itself) */
	pg_atomic_uint64 audit_deleted; /* audit rows past retention, deleted */
} SuDbSlot;

typedef struct SuWorkerSlot
{
	Oid			dboid;			/* InvalidOid: free */
	int			db;				/* its database's slot */
	int			index;			/* 0 .. workers_per_database - 1 */
	pid_t		pid;			/* 0 until the worker attached */
	Latch	   *latch;			/* set to wake the worker; NULL if none */
	TimestampTz reserved_at;
	bool		retire;			/* the launcher wants one worker less: no
								 * more claims, leave once the answers are
								 * recorded */
	/* the wake-up protocol (wake.c) */
	pg_atomic_uint32 wake_wanted;	/* 1: a commit that queues must set the
									 * worker's latch; 0: it will look anyway */
	pg_atomic_uint32 queued_dues;	/* bit 1 << SuDue: rows due by that column
									 * were queued since the last claim */
	/* what each kind's claims wait for: a locked table, or "" */
	char		claim_wait[SU_KINDS][64];
	TimestampTz claim_wait_since[SU_KINDS];
} SuWorkerSlot;

typedef struct SuShared
{
	slock_t		mutex;			/* protects the slots, launcher_latch */
	Latch	   *launcher_latch;
	pg_atomic_uint32 rescan;	/* 1: the launcher reads pg_database soon */
	TimestampTz writable_since; /* when the launcher first ran since the
								 * shared memory was made (recovery over):
								 * leases older than it are a dead
								 * process's */
	pg_atomic_uint32 holds_released;	/* grows when a requeue() of held
										 * orders commits */
	int			n_dbs;			/* slots of dbs[] ever used */
	SuDbSlot	dbs[SU_MAX_DATABASES];
	int			n_workers;		/* max_worker_processes */
	SuWorkerSlot workers[FLEXIBLE_ARRAY_MEMBER];
} SuShared;

/*
 * Is the database known to have the extension (mutex held)?  Served, or
 * to be looked at after a CREATE EXTENSION committed there: a database
 * never looked at yet is not, and is not said to be left without a worker.
 */
static inline bool
su_db_has_extension(const SuDbSlot *db)
{
	return db->state == SU_DB_SERVED ||
		(db->state == SU_DB_LOOK && db->creations != db->creations_looked);
}

/* NULL unless loaded by shared_preload_libraries */
extern SuShared *su_shared;

/* the worker's own slot (NULL in other processes) */
extern SuWorkerSlot *su_my_worker;

extern Size su_shared_size(void);
extern void su_shared_init(SuShared *shared);

#endif							/* SU_SHARED_H */
