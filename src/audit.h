/*-------------------------------------------------------------------------
 *
 * audit.h
 *		shopping_upload.audit: write, and delete what is past retention.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SU_AUDIT_H
#define SU_AUDIT_H

#include "types.h"

/*
 * Computes the SHA-256 digest of the body sent, kept in u for its audit row
 * (even when the body itself is dropped before the row is written).
 */
extern void su_audit_digest(SuUpload *u);

/* Writes the audit rows of n attempts in one statement (SPI connected); sets audit_id. */
extern void su_audit_insert(SuUpload **us, int n);

/*
 * Deletes audit rows older than the retention, in batches of batch rows,
 * until none is left or budget_ms has passed (SPI connected, in a
 * transaction).  Returns the count; *caught_up tells whether none is left.
 */
extern int64 su_audit_trim(int batch, int budget_ms, bool *caught_up);

#endif							/* SU_AUDIT_H */
