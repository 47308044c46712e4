/*-------------------------------------------------------------------------
 *
 * validate_trade.h
 *		Checks the body of /wxa/sec/order/upload_shipping_info (the order
 *		shipping management service) against every rule of
 *		docs/order-shipping.md, naming WeChat's errcode for each violation.
 *
 * Pure: no I/O, no globals, no PostgreSQL headers; only libc and json-c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SU_VALIDATE_TRADE_H
#define SU_VALIDATE_TRADE_H

#include <stddef.h>

#include <json-c/json.h>

#include "validate.h"

/* logistics_type */
#define SU_LOGISTICS_EXPRESS		1	/* a courier company */
#define SU_LOGISTICS_SAME_CITY		2
#define SU_LOGISTICS_VIRTUAL		3	/* virtual goods: no delivery */
#define SU_LOGISTICS_PICKUP			4	/* the buyer picks up */

/*
 * Limits of the spec.  shipping_list: 15 on WeChat's current pages, 10 on
 * the older page and in WxJava (docs/order-shipping.md): the current figure.
 */
#define SU_TRADE_SHIPPING_LIST_MAX	15
#define SU_TRADE_ITEM_DESC_MAX		120 /* characters */
#define SU_TRADE_TRACKING_NO_MAX	128 /* bytes */
#define SU_TRADE_EXPRESS_COMPANY_MAX 128	/* bytes */
#define SU_TRADE_CONTACT_MAX		1024	/* bytes */

/* the delivery_id of SF Express, whose shipments need a contact */
#define SU_DELIVERY_ID_SF			"SF"

/*
 * Checks an upload_shipping_info body against every rule; calls cb once
 * per violation (field: the JSON path, "shipping_list[1].item_desc"), in
 * document order; returns the number of violations.  cb may be NULL.
 *
 * delivery_ids, when not NULL, are the delivery_ids WeChat lists
 * (get_delivery_list; n_delivery_ids of them): an express_company must be
 * one of them.  NULL: the list is not known and that rule is skipped.
 *
 * stop (may be NULL) is asked between list entries.  The work is bounded
 * whatever the body: shipping_list is walked up to its limit.
 */
extern int	su_validate_trade_shipping(struct json_object *payload,
									   const char *const *delivery_ids,
									   size_t n_delivery_ids,
									   su_violation_cb cb, void *arg,
									   su_stop_cb stop, void *stop_arg);

#endif							/* SU_VALIDATE_TRADE_H */
