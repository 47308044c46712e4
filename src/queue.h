/*-------------------------------------------------------------------------
 *
 * queue.h
 *		Where every order stands (shopping_upload.order_state): claim,
 *		complete, retry, hold, reject, dead-letter.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SU_QUEUE_H
#define SU_QUEUE_H

#include "datatype/timestamp.h"

#include "upload.h"

/*
 * Starts an attempt on one order (SPI connected): bumps its attempt count
 * and returns its next upload_time, strictly later than the last one sent.
 * Raises an error naming the order when it does not exist.
 */
extern TimestampTz su_queue_begin(int64 order_id, int64 *version, int *attempt);

/* Records an attempt's outcome: the order's next state (SPI connected). */
extern void su_queue_record(SuUpload *u);

/* When an order whose attempt ended so goes next, and in which state. */
extern const char *su_queue_next_state(SuUpload *u, TimestampTz now,
									   TimestampTz *next_attempt_at);

#endif							/* SU_QUEUE_H */
