/*-------------------------------------------------------------------------
 *
 * kinds.h
 *		The table of the kinds of call (kindlist.h): what each is, and the
 *		functions that claim, begin, prepare and record it.  Every per-kind
 *		decision is a lookup in it or a loop over it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SU_KINDS_H
#define SU_KINDS_H

#include "queue.h"
#include "types.h"

/* claims up to max due rows into out; *looked_at: the due rows it took */
typedef int (*SuClaimFn) (int max, const SuPartition *share, SuClaim *out,
						  int *looked_at);

/*
 * starts a call by hand on one order (SPI connected): leases or locks its
 * row; sets u's version, attempt and was_accepted; returns its upload_time
 * (0: none)
 */
typedef TimestampTz (*SuBeginFn) (int64 order_id, SuUpload *u);

/*
 * builds and validates n claimed rows' bodies (SPI connected), us[i]'s in
 * cxts[i] (NULL: the current context); ok[i] false when it is not sent
 */
typedef void (*SuPrepareFn) (int n, SuUpload **us, const TimestampTz *upload_times,
							 MemoryContext *cxts, bool *ok);

/*
 * records n answers (SPI connected) in their rows' states; recorded[i]
 * false for a row another transaction holds; earliest (NULL: not wanted)
 * indexed by SuDue, lowered to the next attempts planned
 */
typedef int (*SuRecordFn) (SuUpload **us, int n, bool *recorded,
						   TimestampTz *earliest);

typedef struct SuKindInfo
{
	const char *name;			/* audit.kind */
	const char *function;		/* the SQL function of a call by hand */
	const char *path;			/* under api_base_url */
	SuDue		due;			/* the due column of its rows */
	const char *const *tables;	/* its bodies' tables, in lock order */
	int			n_tables;
	SuClaimFn	claim;
	SuBeginFn	begin;
	SuPrepareFn prepare;
	SuRecordFn	record;
	SuErrClass	(*classify) (int errcode);	/* WeChat's answer (retry.c) */
} SuKindInfo;

extern const SuKindInfo su_kinds[SU_KINDS];

static inline const SuKindInfo *
su_kind(SuKind kind)
{
	Assert((int) kind >= 0 && (int) kind < SU_KINDS);
	return &su_kinds[kind];
}

/*
 * The kind of that name (audit.kind); an error names it when this build of
 * the library has no such kind.
 */
extern SuKind su_kind_by_name(const char *name);

/*
 * Locks the tables a kind's body is read from (ACCESS SHARE, as its reads
 * would), in one order for every caller.  With wait, waits for each;
 * without, false (the table's name in *blocker) as soon as one is locked,
 * or wanted, in a stronger mode.
 */
extern bool su_lock_kind_tables(SuKind kind, bool wait, const char **blocker);

#endif							/* SU_KINDS_H */
