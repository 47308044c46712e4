/*-------------------------------------------------------------------------
 *
 * spi_util.c
 *		What the statements of every room share: plans prepared once per
 *		process and kept, and SQL arrays built from C values.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "utils/array.h"
#include "utils/lsyscache.h"

#include "spi_util.h"

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
