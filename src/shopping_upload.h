/*-------------------------------------------------------------------------
 *
 * shopping_upload.h
 *		Settings and helpers shared by every room of shopping_upload.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SHOPPING_UPLOAD_H
#define SHOPPING_UPLOAD_H

#define SU_SCHEMA "shopping_upload"

/* settings (src/shopping_upload.c) */
extern char *su_appid;
extern bool su_auto_upload;

extern void _PG_init(void);

#endif							/* SHOPPING_UPLOAD_H */
