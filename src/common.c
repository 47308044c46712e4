/*-------------------------------------------------------------------------
 *
 * common.c
 *		Helpers every file uses: kept SPI plans, SQL arrays, the "order does
 *		not exist" error, and waking the worker through shared memory.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "storage/spin.h"
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_extension.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/lsyscache.h"

#include "common.h"

#ifndef SU_EXTVERSION
#error "SU_EXTVERSION (the control file's default_version) is set by the Makefile"
#endif

SuShared   *su_shared = NULL;

SPIPlanPtr
su_kept_plan(SPIPlanPtr *cache, const char *sql, int nargs, Oid *argtypes,
			 int cursor_options)
{
	if (*cache == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, argtypes, cursor_options);

		if (plan == NULL)
			elog(ERROR, "could not prepare \"%s\": %s", sql,
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "could not keep the plan of \"%s\"", sql);
		*cache = plan;
	}
	return *cache;
}

/*
 * The version of shopping_upload installed in this database, in cxt; NULL
 * when it is not installed.  Inside a transaction.
 */
char *
su_installed_version(MemoryContext cxt)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	char	   *version = NULL;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum("shopping_upload"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, Anum_pg_extension_extversion,
									 RelationGetDescr(rel), &isnull);
		MemoryContext old = MemoryContextSwitchTo(cxt);

		version = isnull ? pstrdup("") : TextDatumGetCString(d);
		MemoryContextSwitchTo(old);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return version;
}

/*
 * The SQL functions run statements written for the tables of SU_EXTVERSION:
 * with another version installed (the library was upgraded, ALTER EXTENSION
 * UPDATE not yet run) they refuse with a clear error instead of failing on
 * a missing index or column.  Checked once per backend: versions only move
 * forward, by ALTER EXTENSION, which a new library requires first.
 */
void
su_require_extension_version(void)
{
	static bool checked = false;
	char	   *version;

	if (checked)
		return;
	version = su_installed_version(CurrentMemoryContext);
	if (version != NULL && strcmp(version, SU_EXTVERSION) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("shopping_upload version %s is installed in this database, but its library is version %s",
						version, SU_EXTVERSION),
				 errhint("Run ALTER EXTENSION shopping_upload UPDATE.")));
	checked = (version != NULL);
}

void
su_order_missing(int64 order_id)
{
	ereport(ERROR,
			(errcode(ERRCODE_NO_DATA_FOUND),
			 errmsg("order " INT64_FORMAT " does not exist", order_id),
			 errhint("Orders are rows of shopping_upload.orders.")));
}

Datum
su_array(Datum *values, bool *nulls, int n, Oid elemtype)
{
	int16		typlen;
	bool		byval;
	char		align;
	int			dims[1] = {n};
	int			lbs[1] = {1};

	get_typlenbyvalalign(elemtype, &typlen, &byval, &align);
	return PointerGetDatum(construct_md_array(values, nulls, 1, dims, lbs,
											  elemtype, typlen, byval, align));
}

void
su_wake_worker(uint32 kinds)
{
	Latch	   *latch = NULL;

	if (su_shared == NULL)
		return;
	/* which kinds the next claim must look at (see claim() in worker.c) */
	pg_atomic_fetch_or_u32(&su_shared->queued_kinds, kinds);

	/*
	 * A worker that has a claim planned anyway is not woken: one wake-up a
	 * claim, not one a commit (each may cost both processes a system call).
	 * The worker sets wake_wanted, then takes queued_kinds, before the
	 * snapshot of each claim; this sets queued_kinds, then reads wake_wanted,
	 * after our commit became visible: a commit is either seen by that claim
	 * or marked for the next one, which is then planned or woken for.
	 */
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

char *
su_clean_text(const char *s)
{
	int			enc = GetDatabaseEncoding();
	size_t		len = strlen(s);
	StringInfoData buf;
	const char *p = s;
	const char *end = s + len;

	/* nearly always valid as it is */
	if (pg_verify_mbstr(enc, s, (int) Min(len, (size_t) INT_MAX), true))
		return pstrdup(s);
	initStringInfo(&buf);
	while (p < end)
	{
		int			l = pg_encoding_verifymbchar(enc, p, (int) Min(end - p, INT_MAX));

		if (l > 0)
		{
			appendBinaryStringInfo(&buf, p, l);
			p += l;
		}
		else
		{
			/* a byte that is no character: shown as \xNN */
			appendStringInfo(&buf, "\\x%02X", (unsigned char) *p);
			p++;
		}
	}
	return buf.data;
}

char *
su_clean_text_capped(const char *s)
{
	size_t		len = strlen(s);
	char	   *clean;
	int			keep;

	if (len <= SU_MAX_ANSWER_TEXT)
		return su_clean_text(s);
	/* cleaned from a prefix only: \xNN may make it up to four times longer */
	clean = su_clean_text(pnstrdup(s, SU_MAX_ANSWER_TEXT));
	keep = pg_mbcliplen(clean, (int) strlen(clean), SU_MAX_ANSWER_TEXT - 64);
	clean[keep] = '\0';
	return psprintf("%s... [cut: %zu bytes in all]", clean, len);
}
