/*-------------------------------------------------------------------------
 *
 * validate_trade.c
 *		Every rule of /wxa/sec/order/upload_shipping_info, the order
 *		shipping management service's shipping upload
 *		(docs/order-shipping.md), checked before an upload.
 *
 * As validate.c: each violation is reported as WeChat's errcode, the JSON
 * path of the offending value and a plain English message that starts with
 * that path; the body is walked in the spec's order whatever the order of
 * its keys, and the walk goes on after a violation.  order_key, payer and
 * upload_time follow the upload's rules: the checks are validate.c's.
 *
 * Where the spec gives no errcode, a malformed or missing value is 47001
 * (data format error), which this service answers for them.
 *
 * Pure: no I/O, no globals, no PostgreSQL headers; only libc and json-c.
 *
 *-------------------------------------------------------------------------
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "errcodes.h"
#include "validate_internal.h"
#include "validate_shipping.h"
#include "validate_trade.h"

#define WHEN_EXPRESS	" when logistics_type is 1 (express)"

static const EnumDef logistics_type_enum = {
	1, 4, {{NULL, 0}},
	WX_ERR_TRADE_LOGISTICS_TYPE, WX_ERR_TRADE_LOGISTICS_TYPE,
	"1 (express), 2 (same-city), 3 (virtual goods) or 4 (picked up by the buyer)"
};

/* numbers only: the pages print names, WeChat and the SDKs take numbers */
static const EnumDef trade_delivery_mode_enum = {
	1, 2, {{NULL, 0}},
	WX_ERR_DELIVERY_MODE, WX_ERR_DELIVERY_MODE,
	"1 (UNIFIED_DELIVERY) or 2 (SPLIT_DELIVERY), as a number"
};

/* the known delivery_ids, sorted for lookups */
typedef struct DeliveryIds
{
	bool		known;			/* false: the rule is skipped */
	const char **ids;
	size_t		n;
} DeliveryIds;

static int
cstr_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

static void
delivery_ids_init(DeliveryIds *set, const char *const *ids, size_t n)
{
	set->known = false;
	set->ids = NULL;
	set->n = 0;
	if (ids == NULL)
		return;
	set->ids = malloc(sizeof(char *) * (n ? n : 1));
	if (set->ids == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		if (ids[i] != NULL)
			set->ids[set->n++] = ids[i];
	qsort(set->ids, set->n, sizeof(char *), cstr_cmp);
	set->known = true;
}

/* a value holding a NUL is never a delivery_id */
static bool
delivery_ids_has(const DeliveryIds *set, const StrVal *v)
{
	if (strlen(v->s) != v->len)
		return false;
	return bsearch(&v->s, set->ids, set->n, sizeof(char *), cstr_cmp) != NULL;
}

/* contact.<key>: optional, a masked phone number; true if one is given */
static bool
check_contact_value(Ctx *c, struct json_object *contact, const char *key,
					const char *contact_path)
{
	char		path[PATH_LEN];
	StrVal		v;
	StrState	st;

	su_v_path_key(path, contact_path, key);
	st = su_v_check_string(c, contact, key, path,
						   &(StrRule) {0, "", SU_TRADE_CONTACT_MAX, BYTES, 0}, &v);
	if (st == STR_OK && !su_v_contact_ok(&v))
		su_v_report(c, WX_ERR_DATA_FORMAT, path,
					"must be a masked phone number with its last 4 digits "
					"in clear, such as 189****1234");
	return st == STR_OK;
}

/* contact: optional, but an SF Express shipment needs one of its phones */
static void
check_contact(Ctx *c, struct json_object *shipment, const char *shipment_path,
			  bool sf)
{
	struct json_object *contact = su_v_member(shipment, "contact");
	char		path[PATH_LEN];
	bool		given = false;

	su_v_path_key(path, shipment_path, "contact");
	if (contact == NULL)
	{
		if (sf)
			su_v_report(c, WX_ERR_DATA_FORMAT, path,
						"is required when express_company is \"SF\" (SF Express): "
						"give consignor_contact or receiver_contact");
		return;
	}
	if (!su_v_is_object(c, contact, path))
		return;
	given |= check_contact_value(c, contact, "consignor_contact", path);
	given |= check_contact_value(c, contact, "receiver_contact", path);
	if (sf && !given)
		su_v_report(c, WX_ERR_DATA_FORMAT, path,
					"needs consignor_contact or receiver_contact when "
					"express_company is \"SF\" (SF Express)");
}

/* shipping_list[i] */
static void
check_shipment(Ctx *c, struct json_object *list, size_t i, int logistics,
			   const DeliveryIds *known)
{
	struct json_object *shipment = json_object_array_get_idx(list, i);
	bool		express = logistics == SU_LOGISTICS_EXPRESS;
	char		path[PATH_LEN];
	char		sub[PATH_LEN];
	StrVal		v;
	bool		sf = false;

	su_v_path_index(path, "shipping_list", i);
	if (!su_v_is_object(c, shipment, path))
		return;

	su_v_path_key(sub, path, "tracking_no");
	su_v_check_string(c, shipment, "tracking_no", sub,
					  &(StrRule) {express ? WX_ERR_TRACKING_NO_MISSING : 0,
					  WHEN_EXPRESS, SU_TRADE_TRACKING_NO_MAX, BYTES,
					  WX_ERR_TRADE_TRACKING_NO_TOO_LONG}, &v);

	su_v_path_key(sub, path, "express_company");
	if (su_v_check_string(c, shipment, "express_company", sub,
						  &(StrRule) {express ? WX_ERR_EXPRESS_COMPANY_MISSING : 0,
						  WHEN_EXPRESS, SU_TRADE_EXPRESS_COMPANY_MAX, BYTES,
						  WX_ERR_TRADE_EXPRESS_COMPANY_TOO_LONG}, &v) == STR_OK)
	{
		sf = v.len == strlen(SU_DELIVERY_ID_SF) &&
			memcmp(v.s, SU_DELIVERY_ID_SF, v.len) == 0;
		if (known->known && !delivery_ids_has(known, &v))
			su_v_report(c, SU_ERR_UNKNOWN_DELIVERY_ID, sub,
						"is not a delivery_id of WeChat's delivery company list "
						"(shopping_upload.delivery_companies)");
	}

	su_v_path_key(sub, path, "item_desc");
	su_v_check_string(c, shipment, "item_desc", sub,
					  &(StrRule) {WX_ERR_TRADE_ITEM_DESC_MISSING, "",
					  SU_TRADE_ITEM_DESC_MAX, CHARS,
					  WX_ERR_TRADE_ITEM_DESC_TOO_LONG}, &v);

	check_contact(c, shipment, path, sf);
}

static void
check_shipping_list(Ctx *c, struct json_object *payload, int logistics,
					int mode, const DeliveryIds *known)
{
	struct json_object *list = su_v_member(payload, "shipping_list");
	size_t		n;

	if (list == NULL)
	{
		su_v_report(c, WX_ERR_DATA_FORMAT, "shipping_list", "is required");
		return;
	}
	if (!json_object_is_type(list, json_type_array))
	{
		su_v_report(c, WX_ERR_DATA_FORMAT, "shipping_list",
					"must be an array, got %s", su_json_type_phrase(list));
		return;
	}
	n = json_object_array_length(list);
	if (n == 0)
	{
		su_v_report(c, WX_ERR_DATA_FORMAT, "shipping_list",
					"must not be empty: give at least one shipment");
		return;
	}
	if (n > SU_TRADE_SHIPPING_LIST_MAX)
		su_v_report(c, WX_ERR_TRADE_SHIPPING_LIST_TOO_LONG, "shipping_list",
					"has %zu shipments; at most %d allowed", n,
					SU_TRADE_SHIPPING_LIST_MAX);
	if (mode == SU_UNIFIED_DELIVERY && n > 1)
		su_v_report(c, WX_ERR_UNIFIED_NEEDS_ONE_SHIPMENT, "shipping_list",
					"has %zu shipments; delivery_mode 1 (UNIFIED_DELIVERY) "
					"needs exactly 1", n);
	else if (n > 1 && logistics != 0 && logistics != SU_LOGISTICS_EXPRESS)
		su_v_report(c, WX_ERR_TRADE_SPLIT_NOT_EXPRESS, "shipping_list",
					"has %zu shipments; more than one only with "
					"logistics_type 1 (express)", n);
	/* past the limit, reported: the rest is not walked */
	if (n > SU_TRADE_SHIPPING_LIST_MAX)
		n = SU_TRADE_SHIPPING_LIST_MAX;
	for (size_t i = 0; i < n && !su_v_stopping(c); i++)
		check_shipment(c, list, i, logistics, known);
}

int
su_validate_trade_shipping(struct json_object *payload,
						   const char *const *delivery_ids, size_t n_delivery_ids,
						   su_violation_cb cb, void *arg,
						   su_stop_cb stop, void *stop_arg)
{
	Ctx			c = {NULL, cb, arg, 0, stop, stop_arg, false, WX_ERR_DATA_FORMAT};
	DeliveryIds known;
	struct json_object *all;
	int			logistics;
	int			mode;

	if (!json_object_is_type(payload, json_type_object))
	{
		su_v_report(&c, WX_ERR_DATA_FORMAT, "", "must be a JSON object, got %s",
					su_json_type_phrase(payload));
		return c.count;
	}
	su_v_check_order_key(&c, payload);
	logistics = su_v_check_enum(&c, su_v_member(payload, "logistics_type"),
								"logistics_type", &logistics_type_enum, true);
	mode = su_v_check_enum(&c, su_v_member(payload, "delivery_mode"),
						   "delivery_mode", &trade_delivery_mode_enum, true);
	if (mode == SU_SPLIT_DELIVERY && logistics != 0 &&
		logistics != SU_LOGISTICS_EXPRESS)
		su_v_report(&c, WX_ERR_TRADE_SPLIT_NOT_EXPRESS, "delivery_mode",
					"is 2 (SPLIT_DELIVERY), which needs logistics_type 1 "
					"(express), got %d", logistics);

	all = su_v_member(payload, "is_all_delivered");
	if (all == NULL && mode == SU_SPLIT_DELIVERY)
		su_v_report(&c, WX_ERR_TRADE_ALL_DELIVERED_MISSING, "is_all_delivered",
					"is required when delivery_mode is 2 (SPLIT_DELIVERY)");
	else if (all != NULL && !json_object_is_type(all, json_type_boolean))
		su_v_report(&c, WX_ERR_DATA_FORMAT, "is_all_delivered",
					"must be true or false, got %s", su_json_type_phrase(all));

	delivery_ids_init(&known, delivery_ids, n_delivery_ids);
	check_shipping_list(&c, payload, logistics, mode, &known);
	free(known.ids);
	su_v_check_upload_time(&c, payload);
	su_v_check_payer(&c, payload);
	return c.count;
}
