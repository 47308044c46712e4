/*-------------------------------------------------------------------------
 *
 * extversion.h
 *		The extension's version in this database.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SU_EXTVERSION_H
#define SU_EXTVERSION_H

/*
 * The version of shopping_upload installed in this database, in cxt; NULL
 * when it is not installed.  Inside a transaction.
 */
extern char *su_installed_version(MemoryContext cxt);

/*
 * Raises an error naming both versions when the database has another
 * version than this library's (SU_EXTVERSION).  Checked once per backend.
 */
extern void su_require_extension_version(void);

#endif							/* SU_EXTVERSION_H */
