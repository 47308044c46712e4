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
#include "utils/array.h"
#include "utils/lsyscache.h"

#include "common.h"

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
su_wake_worker(void)
{
	Latch	   *latch = NULL;

	if (su_shared == NULL)
		return;
	SpinLockAcquire(&su_shared->mutex);
	if (su_shared->worker_latch && su_shared->worker_dboid == MyDatabaseId)
		latch = su_shared->worker_latch;
	SpinLockRelease(&su_shared->mutex);
	/* outside the spinlock: SetLatch may make a system call */
	if (latch)
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
