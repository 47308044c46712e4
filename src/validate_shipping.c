/*-------------------------------------------------------------------------
 *
 * validate_shipping.c
 *		Every rule of /user-order/orders/shippings (docs/upload-api.md,
 *		section 8), checked before an upload.
 *
 * As validate.c: each violation is reported as WeChat's errcode, the JSON
 * path of the offending value and a plain English message that starts with
 * that path; the body is walked in the spec's order whatever the order of
 * its keys, and the walk goes on after a violation.  order_key, payer and
 * upload_time follow the upload's rules: the checks are validate.c's.
 *
 * Where the spec gives no errcode, a malformed value is 268435461
 * (parameter error), as in the upload.
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

#define WHEN_SPLIT			" when delivery_mode is 2 (SPLIT_DELIVERY)"

static const EnumDef delivery_mode_enum = {
	1, 2, {{"UNIFIED_DELIVERY", SU_UNIFIED_DELIVERY},
	{"SPLIT_DELIVERY", SU_SPLIT_DELIVERY}, {NULL, 0}},
	WX_ERR_PARAM, WX_ERR_PARAM,
	"1, 2, \"UNIFIED_DELIVERY\" or \"SPLIT_DELIVERY\""
};

/* The order's merchant_item_ids, sorted for lookups */
typedef struct ItemIds
{
	bool		known;			/* false: the rule is skipped */
	StrVal	   *ids;
	size_t		n;
} ItemIds;

static int
strval_cmp(const void *a, const void *b)
{
	const StrVal *x = a;
	const StrVal *y = b;
	size_t		n = x->len < y->len ? x->len : y->len;
	int			r = memcmp(x->s, y->s, n);

	if (r != 0)
		return r;
	return x->len < y->len ? -1 : (x->len > y->len ? 1 : 0);
}

/* Unknown (and the rule skipped) when ids is NULL or out of memory */
static void
item_ids_init(ItemIds *set, const char *const *ids, size_t n)
{
	set->known = false;
	set->ids = NULL;
	set->n = 0;
	if (ids == NULL)
		return;
	set->ids = malloc(sizeof(StrVal) * (n ? n : 1));
	if (set->ids == NULL)
		return;
	for (size_t i = 0; i < n; i++)
	{
		if (ids[i] == NULL)
			continue;
		set->ids[set->n].s = ids[i];
		set->ids[set->n].len = strlen(ids[i]);
		set->n++;
	}
	qsort(set->ids, set->n, sizeof(StrVal), strval_cmp);
	set->known = true;
}

static bool
item_ids_has(const ItemIds *set, const StrVal *v)
{
	return bsearch(v, set->ids, set->n, sizeof(StrVal), strval_cmp) != NULL;
}

/* contact.<key> of a shipment: optional, a masked phone number */
static void
check_contact_value(Ctx *c, struct json_object *contact, const char *key,
					const char *contact_path)
{
	char		path[PATH_LEN];
	StrVal		v;
	StrState	st;

	su_v_path_key(path, contact_path, key);
	st = su_v_check_string(c, contact, key, path,
						   &(StrRule) {0, "", SIZE_MAX, BYTES, 0}, &v);
	if ((st == STR_OK || st == STR_EMPTY) && !su_v_contact_ok(&v))
		su_v_report(c, WX_ERR_PARAM, path,
					"must be a masked phone number with its last 4 digits "
					"in clear, such as 189****1234");
}

static void
check_contact(Ctx *c, struct json_object *shipment, const char *shipment_path)
{
	struct json_object *contact = su_v_member(shipment, "contact");
	char		path[PATH_LEN];

	if (contact == NULL)
		return;					/* optional */
	su_v_path_key(path, shipment_path, "contact");
	if (!su_v_is_object(c, contact, path))
		return;
	check_contact_value(c, contact, "consignor_contact", path);
	check_contact_value(c, contact, "receiver_contact", path);
}

/*
 * item_list of a shipment: required for SPLIT_DELIVERY, each entry an item
 * of the order.  Under another delivery_mode WeChat does not read it: a
 * present list is checked for its form only.
 */
static void
check_shipment_items(Ctx *c, struct json_object *shipment,
					 const char *shipment_path, int mode, const ItemIds *order)
{
	bool		split = mode == SU_SPLIT_DELIVERY;
	struct json_object *items;
	char		path[PATH_LEN];
	char		item_path[PATH_LEN];
	char		sub[PATH_LEN];
	size_t		n;

	su_v_path_key(path, shipment_path, "item_list");
	items = su_v_member(shipment, "item_list");
	if (items == NULL)
	{
		if (split)
			su_v_report(c, WX_ERR_PARAM, path, "is required%s", WHEN_SPLIT);
		return;
	}
	if (!json_object_is_type(items, json_type_array))
	{
		su_v_report(c, WX_ERR_PARAM, path, "must be an array, got %s",
					su_json_type_phrase(items));
		return;
	}
	n = json_object_array_length(items);
	if (n == 0 && split)
		su_v_report(c, WX_ERR_PARAM, path, "must not be empty%s", WHEN_SPLIT);

	for (size_t j = 0; j < n && !su_v_stopping(c); j++)
	{
		struct json_object *item = json_object_array_get_idx(items, j);
		StrVal		v;

		su_v_path_index(item_path, path, j);
		if (!su_v_is_object(c, item, item_path))
			continue;
		su_v_path_key(sub, item_path, "merchant_item_id");
		if (su_v_check_string(c, item, "merchant_item_id", sub,
							  &(StrRule) {WX_ERR_PARAM, "", ITEM_ID_MAX, BYTES, 0},
							  &v) == STR_OK &&
			split && order->known && !item_ids_has(order, &v))
			su_v_report(c, WX_ERR_PARAM, sub, "is not an item of the order");
	}
}

/* shipping_list[i] */
static void
check_shipment(Ctx *c, struct json_object *list, size_t i, int mode,
			   const ItemIds *order)
{
	struct json_object *shipment = json_object_array_get_idx(list, i);
	char		path[PATH_LEN];
	char		sub[PATH_LEN];
	StrVal		v;

	su_v_path_index(path, "shipping_list", i);
	if (!su_v_is_object(c, shipment, path))
		return;

	su_v_path_key(sub, path, "tracking_no");
	su_v_check_string(c, shipment, "tracking_no", sub,
					  &(StrRule) {WX_ERR_TRACKING_NO_MISSING, "",
					  SU_TRACKING_NO_MAX, BYTES, 0}, &v);

	su_v_path_key(sub, path, "express_company");
	su_v_check_string(c, shipment, "express_company", sub,
					  &(StrRule) {WX_ERR_PARAM, "", SU_EXPRESS_COMPANY_MAX,
					  BYTES, 0}, &v);

	check_shipment_items(c, shipment, path, mode, order);
	check_contact(c, shipment, path);
}

static void
check_shipping_list(Ctx *c, struct json_object *payload, int mode,
					const ItemIds *order)
{
	struct json_object *list;
	size_t		n;

	list = su_v_check_array(c, payload, "shipping_list", "shipping_list",
							WX_ERR_PARAM, SU_SHIPPING_LIST_MAX);
	if (list == NULL)
		return;
	n = json_object_array_length(list);
	if (mode == SU_UNIFIED_DELIVERY && n > 1)
		su_v_report(c, WX_ERR_UNIFIED_NEEDS_ONE_SHIPMENT, "shipping_list",
					"has %zu shipments; delivery_mode 1 (UNIFIED_DELIVERY) "
					"needs exactly 1", n);
	/* past the limit, reported: the rest is not walked */
	if (n > SU_SHIPPING_LIST_MAX)
		n = SU_SHIPPING_LIST_MAX;
	for (size_t i = 0; i < n && !su_v_stopping(c); i++)
		check_shipment(c, list, i, mode, order);
}

int
su_validate_shipping(struct json_object *payload,
					 const char *const *order_item_ids, size_t n_order_item_ids,
					 su_violation_cb cb, void *arg,
					 su_stop_cb stop, void *stop_arg)
{
	Ctx			c = {NULL, cb, arg, 0, stop, stop_arg, false, 0};
	ItemIds		order;
	int			mode;

	if (!json_object_is_type(payload, json_type_object))
	{
		su_v_report(&c, WX_ERR_PARAM, "", "must be a JSON object, got %s",
					su_json_type_phrase(payload));
		return c.count;
	}
	su_v_check_order_key(&c, payload);
	su_v_check_payer(&c, payload);
	su_v_check_upload_time(&c, payload);
	mode = su_v_check_enum(&c, su_v_member(payload, "delivery_mode"),
						   "delivery_mode", &delivery_mode_enum, true);

	item_ids_init(&order, order_item_ids, n_order_item_ids);
	check_shipping_list(&c, payload, mode, &order);
	free(order.ids);
	return c.count;
}
