/*-------------------------------------------------------------------------
 *
 * common.h
 *		What every room knows of the extension: its schema's name, the
 *		largest body sent, and the error for an order that does not exist.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SU_COMMON_H
#define SU_COMMON_H

#define SU_SCHEMA "shopping_upload"

/*
 * The largest body sent: an order whose text passes it is refused before it
 * is built (errcode 45002, content size out of limit).  WeChat's limits make
 * a real order far smaller: 50 items of at most about 8 kB per sub-order.
 */
#define SU_MAX_BODY_BYTES (1024 * 1024)

/*
 * The most of an answer's member kept (get_order's order object): a larger
 * one is not kept.  A call by hand hands it back through its slot.
 */
#define SU_RESULT_MAX_BYTES (16 * 1024)

/* a timestamptz as the Unix seconds WeChat's /wxa/sec/order calls take */
#define su_unix_seconds(t) \
	((t) / INT64CONST(1000000) + INT64CONST(946684800))

/* Raises "order N does not exist" (ERRCODE_NO_DATA_FOUND). */
#if PG_VERSION_NUM >= 180000
/* PostgreSQL 18 replaced pg_attribute_noreturn() with pg_noreturn */
pg_noreturn extern void su_order_missing(int64 order_id);
#else
extern void su_order_missing(int64 order_id) pg_attribute_noreturn();
#endif

#endif							/* SU_COMMON_H */
