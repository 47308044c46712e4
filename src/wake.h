/*-------------------------------------------------------------------------
 *
 * wake.h
 *		How committing backends wake the worker, through shared memory:
 *		one wake-up a claim, not one a commit.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SU_WAKE_H
#define SU_WAKE_H


/*
 * A backend whose transaction committed: the workers of this database are to
 * look at the rows due by those columns (bits 1 << SuDue).
 */
extern void su_wake_worker(uint32 dues);

/* A backend whose transaction requeued held orders: the holds end. */
extern void su_wake_release_holds(void);

/*
 * The worker, before a claim's snapshot: from now on a commit that queues
 * wakes it.  Returns the due columns queued since the last claim, and
 * clears them (the claim looks at them).
 */
extern uint32 su_wake_expect(void);

/* The worker: the due columns queued since the last claim, kept. */
extern uint32 su_wake_peek(void);

/*
 * The worker: a claim is planned anyway (the next su_wake_expect() comes
 * before its snapshot); commits meanwhile need not wake it.
 */
extern void su_wake_planned(void);

/* The worker: how many requeue()s of held orders committed so far. */
extern uint32 su_wake_holds_released(void);

#endif							/* SU_WAKE_H */
