/*-------------------------------------------------------------------------
 *
 * shipping.h
 *		Shipping tables <-> /user-order/orders/shippings body (json-c).
 *
 * Files that include json-c must not include utils/builtins.h (payload.h).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SU_SHIPPING_H
#define SU_SHIPPING_H

#include "datatype/timestamp.h"

struct json_object;

/*
 * The order whose order_key is the body's (enum aliases read) for appid
 * (NULL: the orders stored without an appid, i.e. shopping_upload.appid, as
 * import_order() stores them); 0 when none.  A body whose order_key cannot
 * name an order is an error unless quiet (then 0).  SPI must be connected;
 * read_only as for SPI_execute_plan.
 */
extern int64 su_find_order_by_key(struct json_object *payload,
								  const char *appid, bool quiet,
								  bool read_only);

/*
 * The merchant_item_ids of an order's items (NULLs left out), palloc'd in
 * cxt; *n is their number.  SPI must be connected; reads as read_only.
 */
extern char **su_order_item_ids(int64 order_id, MemoryContext cxt, int *n);

/*
 * Stores an API-shaped shipping body as the shipping information of the
 * order of its order_key (replacing any); returns the order's id.  An
 * unknown order key is an error naming it.  SPI must be connected.
 */
extern int64 su_import_shipping(struct json_object *payload, const char *appid);

/*
 * The shipping body of an order, tracked: order_key and payer from the
 * order, upload_time, delivery_mode, shipping_list.  An order that does not
 * exist, or has no shipping information, is an error.  SPI must be
 * connected.
 */
extern struct json_object *su_build_shipping_payload(int64 order_id,
													 TimestampTz upload_time);

/*
 * The same; quiet: NULL instead of an error when the order or its shipping
 * information does not exist.  appid (may be NULL) gets the order's appid,
 * or shopping_upload.appid, or NULL; accepted (may be NULL), whether the
 * order's current version was accepted, read in the snapshot of the body.
 * The rows' text is counted from their headers before anything is built:
 * past SU_MAX_BODY_BYTES, *oversized (may be NULL: an error) is set and the
 * body holds the order_key alone, or nothing when the key itself is large.
 */
extern struct json_object *su_build_shipping_payload_ex(int64 order_id,
														TimestampTz upload_time,
														bool quiet, char **appid,
														bool *accepted,
														bool *oversized);

/*
 * The body of /wxa/sec/order/upload_shipping_info (the order shipping
 * management service) for an order, tracked: order_key, logistics_type
 * (the shipping information's, else the order's, else 1), delivery_mode,
 * is_all_delivered, shipping_list (each parcel's item_desc its own, or
 * derived from its items), upload_time, payer.  An order that does not
 * exist, has no shipping information, or whose body would pass
 * SU_MAX_BODY_BYTES, is an error.  SPI must be connected.
 */
extern struct json_object *su_build_trade_shipping_payload(int64 order_id,
														   TimestampTz upload_time);
/*
 * The same for the worker and the calls: quiet, NULL when the order or its
 * shipping information is gone; with oversized, an empty body and
 * *oversized set instead of the error of a body over SU_MAX_BODY_BYTES.
 */
extern struct json_object *su_build_trade_shipping_payload_ex(int64 order_id,
															  TimestampTz upload_time,
															  bool quiet,
															  bool *oversized);
/*
 * The query key of get_order and notify_confirm_receive (transaction_id, or
 * merchant_id and merchant_trade_no) of an order; its appid (or the
 * configured one), its shippings' received_at (0: none) and its
 * logistics_type.  NULL: no such order.  SPI connected.
 */
extern struct json_object *su_build_trade_query_payload(int64 order_id, char **appid,
														TimestampTz *received_at,
														int *logistics_type);
/* delivery_companies' delivery_ids (NULL while it is empty), in cxt */
extern char **su_delivery_ids(MemoryContext cxt, int *n);

#endif							/* SU_SHIPPING_H */
