/*-------------------------------------------------------------------------
 *
 * shopping_upload.c
 *		Module load: settings, and (with shared_preload_libraries) shared
 *		memory and the background worker.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

#include "shopping_upload.h"

PG_MODULE_MAGIC;

char	   *su_appid = NULL;
bool		su_auto_upload = true;

void
_PG_init(void)
{
	DefineCustomStringVariable("shopping_upload.appid",
							   "Default merchant Mini Program appid.",
							   "Orders whose appid is NULL belong to this appid.",
							   &su_appid,
							   NULL,
							   PGC_USERSET,
							   0,
							   NULL, NULL, NULL);

	DefineCustomBoolVariable("shopping_upload.auto_upload",
							 "Queue orders for upload when the order tables are written.",
							 NULL,
							 &su_auto_upload,
							 true,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);

	MarkGUCPrefixReserved("shopping_upload");
}
