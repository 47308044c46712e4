/*-------------------------------------------------------------------------
 *
 * wake.c
 *		The wake-up protocol between committing backends and the worker.
 *
 * The worker sets wake_wanted, then takes queued_dues, before the snapshot
 * of each claim; a committing backend sets queued_dues, then reads
 * wake_wanted, after its commit became visible: a commit is either seen by
 * that claim or marked for the next one, which is then planned or woken
 * for.  A worker that has a claim planned anyway clears wake_wanted and is
 * not woken: one wake-up a claim, not one a commit (each may cost both
 * processes a system call).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/spin.h"

#include "shared.h"
#include "wake.h"

void
su_wake_worker(uint32 dues)
{
	Latch	   *latch = NULL;

	if (su_shared == NULL)
		return;
	pg_atomic_fetch_or_u32(&su_shared->queued_dues, dues);
	pg_memory_barrier();
	if (pg_atomic_read_u32(&su_shared->wake_wanted) == 0)
		return;
	SpinLockAcquire(&su_shared->mutex);
	if (su_shared->worker_latch && su_shared->worker_dboid == MyDatabaseId)
		latch = su_shared->worker_latch;
	SpinLockRelease(&su_shared->mutex);
	/* outside the spinlock: SetLatch may make a system call */
	if (latch && pg_atomic_exchange_u32(&su_shared->wake_wanted, 0) == 1)
		SetLatch(latch);
}

void
su_wake_release_holds(void)
{
	if (su_shared)
		pg_atomic_fetch_add_u32(&su_shared->holds_released, 1);
}

/* the worker's latch, published for the backends that wake it, or not */
static void
publish(int code, Datum arg)
{
	bool		on = DatumGetBool(arg);

	(void) code;
	SpinLockAcquire(&su_shared->mutex);
	su_shared->worker_latch = on ? MyLatch : NULL;
	su_shared->worker_pid = on ? MyProcPid : 0;
	su_shared->worker_dboid = on ? MyDatabaseId : InvalidOid;
	SpinLockRelease(&su_shared->mutex);
}

void
su_wake_publish(void)
{
	publish(0, BoolGetDatum(true));
	before_shmem_exit(publish, BoolGetDatum(false));
}

uint32
su_wake_expect(void)
{
	pg_atomic_write_u32(&su_shared->wake_wanted, 1);
	pg_memory_barrier();
	return pg_atomic_exchange_u32(&su_shared->queued_dues, 0);
}

uint32
su_wake_peek(void)
{
	return pg_atomic_read_u32(&su_shared->queued_dues);
}

void
su_wake_planned(void)
{
	pg_atomic_write_u32(&su_shared->wake_wanted, 0);
}

uint32
su_wake_holds_released(void)
{
	return pg_atomic_read_u32(&su_shared->holds_released);
}
