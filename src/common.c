/*-------------------------------------------------------------------------
 *
 * common.c
 *		The one error every room raises: "order N does not exist".
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common.h"

void
su_order_missing(int64 order_id)
{
	ereport(ERROR,
			(errcode(ERRCODE_NO_DATA_FOUND),
			 errmsg("order " INT64_FORMAT " does not exist", order_id),
			 errhint("Orders are rows of shopping_upload.orders.")));
}
