/*-------------------------------------------------------------------------
 *
 * validate_shipping.h
 *		Checks the body of /user-order/orders/shippings (upload shipping
 *		information) against every rule of docs/upload-api.md (section 8), naming
 *		WeChat's errcode for each violation.
 *
 * Pure: no I/O, no globals, no PostgreSQL headers; only libc and json-c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SU_VALIDATE_SHIPPING_H
#define SU_VALIDATE_SHIPPING_H

#include <stddef.h>

#include <json-c/json.h>

#include "validate.h"

/* delivery_mode */
#define SU_UNIFIED_DELIVERY		1	/* all items in one shipment */
#define SU_SPLIT_DELIVERY		2	/* several shipments */

/* limits of the spec */
#define SU_SHIPPING_LIST_MAX	10	/* shipments in one body */
#define SU_TRACKING_NO_MAX		128 /* bytes */
#define SU_EXPRESS_COMPANY_MAX	128 /* bytes */

/*
 * Checks a shipping body against every rule; calls cb once per violation
 * (field: the JSON path, "shipping_list[1].item_list[0].merchant_item_id"),
 * in document order; returns the number of violations.  cb may be NULL to
 * only count.
 *
 * order_item_ids, when not NULL, are the merchant_item_ids of the order's
 * items (n_order_item_ids of them, NUL-terminated): for SPLIT_DELIVERY,
 * every item of a shipment must be one of them.  NULL: the order's items
 * are not known and that rule is skipped.
 *
 * stop (may be NULL) is asked between list entries, as for
 * su_validate_payload_ex().  The work is bounded whatever the body:
 * shipping_list is walked up to its limit, an item is looked up in a sorted
 * copy of the order's ids.
 */
extern int	su_validate_shipping(struct json_object *payload,
								 const char *const *order_item_ids,
								 size_t n_order_item_ids,
								 su_violation_cb cb, void *arg,
								 su_stop_cb stop, void *stop_arg);

#endif							/* SU_VALIDATE_SHIPPING_H */
