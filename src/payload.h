/*-------------------------------------------------------------------------
 *
 * payload.h
 *		Order tables <-> uploadShoppingInfo payload (json-c).
 *
 * Files that include json-c must not include utils/builtins.h: json-c's
 * json_object type clashes with PostgreSQL's json_object() prototype.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SU_PAYLOAD_H
#define SU_PAYLOAD_H

#include "access/htup.h"
#include "access/tupdesc.h"
#include "datatype/timestamp.h"

#include "json_util.h"

struct json_object;

/* RFC 3339 with milliseconds and a numeric offset, in the session's TimeZone. */
extern char *su_format_upload_time(TimestampTz t);

/*
 * Builds the payload of an order as a tracked json-c object.  SPI must be
 * connected.  *appid is set to the order's merchant appid (NULL when the
 * order has none and shopping_upload.appid is not set either).  When the
 * order does not exist: NULL with missing_ok, else an error naming it.
 */
extern struct json_object *su_build_payload(int64 order_id,
											TimestampTz upload_time,
											char **appid, bool missing_ok);

/*
 * The same for n orders at once, with two queries in all: out[i] and
 * appids[i] for order_ids[i] (out[i] NULL if it does not exist), each built
 * in cxts[i] (NULL: the current context).  Everything is read in one fresh
 * snapshot, taken after whatever the caller wrote; versions[i] (when not
 * NULL) is the order's order_state.version in that snapshot, 0 if none.
 * oversized[i] (when not NULL) is true for an order whose text passes
 * SU_MAX_BODY_BYTES: it is not built (out[i] is an empty object), and no
 * large value of it is even detoasted.
 */
extern void su_build_payloads(int n, const int64 *order_ids,
							  const TimestampTz *upload_times,
							  MemoryContext *cxts,
							  struct json_object **out, char **appids,
							  int64 *versions, bool *oversized);

/*
 * Adds to root (tracked) an order's order_key in wire form, from four
 * columns of an SPI row from first: order_number_type, transaction_id,
 * mchid, out_trade_no (empty ones left out).
 */
/*
 * The bytes of a row's text and arrays, read from their headers (nothing is
 * detoasted): a body is capped before it is built.
 */
extern size_t su_row_bytes(HeapTuple tup, TupleDesc desc);

extern void su_add_order_key(struct json_object *root, HeapTuple tup,
							 TupleDesc desc, int first);

/* Stores an API-shaped payload; returns its order_id.  SPI must be connected. */
extern void su_import_type_error(const char *path, const char *expected,
								 struct json_object *v, const char *detail);
extern struct json_object *su_import_member(struct json_object *obj, const char *key);
extern struct json_object *su_import_container(struct json_object *obj,
											   const char *key, int type,
											   const char *path, const char *detail);
extern Datum su_import_text(struct json_object *obj, const char *key,
							const char *path, const char *detail, bool *isnull);
extern Datum su_import_int(struct json_object *obj, const char *key,
						   const char *path, bool is_int8,
						   const char *const *names, int nnames,
						   const char *within, const char *detail,
						   bool *isnull);
extern int64 su_import_order(struct json_object *payload, const char *appid);

/*
 * The order keys' unique indexes (the SQL scripts): a key whose parts, the
 * appid's included, take at most SU_KEY_INDEXED_BYTES bytes is indexed as
 * it is, and a merchant's growing order numbers append at the index's right
 * edge; a longer one (of any length) by the md5 digests of its parts.  A key
 * is always in the same one of the two, so each is unique on its own.  The
 * predicates below are the indexes' own, word for word, so that ON CONFLICT
 * and the lookups name the index meant.
 */
#define SU_KEY_INDEXED_BYTES 1000
#define SU_MERCHANT_KEY_BYTES \
	"pg_catalog.octet_length(COALESCE(appid, ''))" \
	" OPERATOR(pg_catalog.+) pg_catalog.octet_length(mchid)" \
	" OPERATOR(pg_catalog.+) pg_catalog.octet_length(out_trade_no)"
#define SU_TRANSACTION_KEY_BYTES \
	"pg_catalog.octet_length(COALESCE(appid, ''))" \
	" OPERATOR(pg_catalog.+) pg_catalog.octet_length(transaction_id)"
#define SU_KEY_SHORT " OPERATOR(pg_catalog.<=) 1000"
#define SU_KEY_LONG " OPERATOR(pg_catalog.>) 1000"

StaticAssertDecl(SU_KEY_INDEXED_BYTES == 1000,
				 "SU_KEY_SHORT and SU_KEY_LONG spell SU_KEY_INDEXED_BYTES");

#endif							/* SU_PAYLOAD_H */
