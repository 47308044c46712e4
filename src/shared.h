/*-------------------------------------------------------------------------
 *
 * shared.h
 *		The state that backends, the launcher and the worker share in
 *		memory (made by shopping_upload.c at the server's start).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SU_SHARED_H
#define SU_SHARED_H

#include "datatype/timestamp.h"
#include "port/atomics.h"
#include "storage/latch.h"
#include "storage/spin.h"

#include "types.h"

typedef struct SuShared
{
	slock_t		mutex;			/* protects worker_latch and worker_pid, and
								 * claim_wait */
	Latch	   *worker_latch;	/* set to wake the worker; NULL if none */
	pid_t		worker_pid;
	Oid			worker_dboid;	/* the database the worker serves */
	pid_t		launcher_pid;
	TimestampTz drop_requested_at;	/* DROP DATABASE of our database */
	pg_atomic_uint64 audit_deleted; /* audit rows past retention, deleted */
	/* the wake-up protocol (wake.c) */
	pg_atomic_uint32 wake_wanted;	/* 1: a commit that queues must set the
									 * worker's latch; 0: it will look anyway */
	pg_atomic_uint32 queued_dues;	/* bit 1 << SuDue: rows due by that column
									 * were queued since the last claim */
	pg_atomic_uint32 holds_released;	/* grows when a requeue() of held
										 * orders commits */
	/* what each kind's claims wait for (mutex): a locked table, or "" */
	char		claim_wait[SU_KINDS][64];
	TimestampTz claim_wait_since[SU_KINDS];
} SuShared;

/* NULL unless loaded by shared_preload_libraries */
extern SuShared *su_shared;

#endif							/* SU_SHARED_H */
