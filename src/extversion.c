/*-------------------------------------------------------------------------
 *
 * extversion.c
 *		Which version of shopping_upload a database has, and the guard that
 *		keeps this library's statements off the tables of another version.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_extension.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"

#include "extversion.h"

#ifndef SU_EXTVERSION
#error "SU_EXTVERSION (the control file's default_version) is set by the Makefile"
#endif

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
