/*-------------------------------------------------------------------------
 *
 * wake.c
 *		The wake-up protocol between committing backends and the workers.
 *
 * Per worker (shared.h): the worker sets wake_wanted, then takes
 * queued_dues, before the snapshot of each claim; a committing backend sets
 * queued_dues, then reads wake_wanted, after its commit became visible (for
 * every worker of its database): a commit is either seen by
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
	Latch	   *latches[SU_MAX_WORKERS_PER_DATABASE];
	SuWorkerSlot *slots[SU_MAX_WORKERS_PER_DATABASE];
	int			n = 0;

	if (su_shared == NULL)
		return;

	/*
	 * Every worker of this database: each claims its own partition, and a
	 * commit may have queued rows of any.
	 */
	SpinLockAcquire(&su_shared->mutex);
	for (int i = 0; i < su_shared->n_workers && n < (int) lengthof(latches); i++)
	{
		SuWorkerSlot *w = &su_shared->workers[i];

		if (w->dboid == MyDatabaseId && w->latch)
		{
			slots[n] = w;
			latches[n++] = w->latch;
		}
	}
	SpinLockRelease(&su_shared->mutex);
	for (int i = 0; i < n; i++)
	{
		pg_atomic_fetch_or_u32(&slots[i]->queued_dues, dues);
		pg_memory_barrier();
		/* outside the spinlock: SetLatch may make a system call */
		if (pg_atomic_read_u32(&slots[i]->wake_wanted) != 0 &&
			pg_atomic_exchange_u32(&slots[i]->wake_wanted, 0) == 1)
			SetLatch(latches[i]);
	}
}

void
su_wake_release_holds(void)
{
	if (su_shared)
		pg_atomic_fetch_add_u32(&su_shared->holds_released, 1);
}

uint32
su_wake_expect(void)
{
	pg_atomic_write_u32(&su_my_worker->wake_wanted, 1);
	pg_memory_barrier();
	return pg_atomic_exchange_u32(&su_my_worker->queued_dues, 0);
}

uint32
su_wake_peek(void)
{
	return pg_atomic_read_u32(&su_my_worker->queued_dues);
}

void
su_wake_planned(void)
{
	pg_atomic_write_u32(&su_my_worker->wake_wanted, 0);
}

uint32
su_wake_holds_released(void)
{
	return pg_atomic_read_u32(&su_shared->holds_released);
}
