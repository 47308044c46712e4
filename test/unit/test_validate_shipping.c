/*-------------------------------------------------------------------------
 *
 * test_validate_shipping.c
 *		Unit tests of validate_shipping.c, without PostgreSQL.  Linked into
 *		test_validate (make unit-test), whose counts they add to.
 *
 * Each case starts from a valid body (SPLIT, or UNIFIED) or its own JSON
 * text, applies patches (unit.h) or a builder function, and lists the
 * violations expected, in order: errcode, field and, where given, the
 * exact message.  The order's items are ORDER_ITEMS unless the case says
 * they are unknown (NULL) or none.
 *
 *-------------------------------------------------------------------------
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "errcodes.h"
#include "validate_shipping.h"
#include "unit.h"

#define S0		"shipping_list[0]"
#define S1		"shipping_list[1]"
#define C0		S0 ".contact"

#define KEY_AND_PAYER \
	"\"order_key\":{\"order_number_type\":1,\"mchid\":\"1230000109\"," \
	"\"out_trade_no\":\"ORDER_20220520_001\"}," \
	"\"payer\":{\"openid\":\"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o\"}," \
	"\"upload_time\":\"2022-05-20T13:29:35.120+08:00\","
#define SHIPMENT(no, company, items) \
	"{\"tracking_no\":\"" no "\",\"express_company\":\"" company "\"" items "}"
#define ITEMS2(a, b) \
	",\"item_list\":[{\"merchant_item_id\":\"" a "\"},{\"merchant_item_id\":\"" b "\"}]"
#define ITEMS1(a) ",\"item_list\":[{\"merchant_item_id\":\"" a "\"}]"

/* the valid bodies every case starts from, unless it brings its own */
#define UNIFIED \
	"{" KEY_AND_PAYER "\"delivery_mode\":1,\"shipping_list\":[" \
	"{\"tracking_no\":\"SF1234567890\",\"express_company\":\"SF\"," \
	"\"contact\":{\"consignor_contact\":\"189****1234\"," \
	"\"receiver_contact\":\"139****5678\"}}]}"
#define SPLIT \
	"{" KEY_AND_PAYER "\"delivery_mode\":2,\"shipping_list\":[" \
	SHIPMENT("SF1234567890", "SF", ITEMS2("sku-1", "sku-2")) "," \
	SHIPMENT("YT9876543210", "YTO", ITEMS1("sku-3")) "]}"

#define SPLIT_WHEN " when delivery_mode is 2 (SPLIT_DELIVERY)"
#define CONTACT_MSG " must be a masked phone number with its last 4 digits " \
	"in clear, such as 189****1234"

static const char *const order_items[] = {"sku-3", "sku-1", "sku-2", "sku-4"};

typedef enum Items
{
	ITEMS_KNOWN,				/* order_items */
	ITEMS_UNKNOWN,				/* NULL: the rule is skipped */
	ITEMS_NONE					/* an order without items */
} Items;

typedef struct ShipCase
{
	const char *name;
	const char *payload;		/* NULL: SPLIT */
	Patch		patches[6];
	void		(*build) (struct json_object *root);
	Items		items;
	Expect		expect[12];
} ShipCase;

static void build_10_shipments(struct json_object *root);
static void build_11_shipments(struct json_object *root);
static void build_11_unified(struct json_object *root);

static const ShipCase cases[] = {
	/* the body itself */
	{"split body is valid", .expect = NONE},
	{"unified body is valid", UNIFIED, .expect = NONE},
	{"split body, order's items unknown", .items = ITEMS_UNKNOWN,
		.expect = NONE},
	{"body is an array", "[]",
		.expect = {{PARAM, "", "the payload must be a JSON object, got an array"}}},
	{"body is null", "null",
		.expect = {{PARAM, "", "the payload must be a JSON object, got null"}}},
	{"empty object: every required member, in order", "{}",
		.expect = {
			{268485194, "order_key", "order_key is required"},
			{268485192, "payer", "payer is required"},
			{268485214, "upload_time", "upload_time is required"},
			{PARAM, "delivery_mode", "delivery_mode is required"},
			{PARAM, "shipping_list", "shipping_list is required"}}},
	{"unknown keys are ignored",
		.patches = {{"extra", "[1]"}, {S0 ".extra", "{}"},
		{S0 ".item_list[0].extra", "1"}},
		.expect = NONE},

	/* order_key, payer, upload_time: the upload's rules */
	{"order_key missing",
		.patches = {{"order_key", NULL}},
		.expect = {{268485194, "order_key", NULL}}},
	{"order_number_type 3",
		.patches = {{"order_key.order_number_type", "3"}},
		.expect = {{268485194, "order_key.order_number_type", NULL}}},
	{"type 1: mchid missing",
		.patches = {{"order_key.mchid", NULL}},
		.expect = {{268485196, "order_key.mchid",
			"order_key.mchid is required when order_number_type is 1"}}},
	{"type 1: out_trade_no empty",
		.patches = {{"order_key.out_trade_no", "\"\""}},
		.expect = {{268485197, "order_key.out_trade_no", NULL}}},
	{"out_trade_no with a dot",
		.patches = {{"order_key.out_trade_no", "\"abc.def\""}},
		.expect = {{PARAM, "order_key.out_trade_no", NULL}}},
	{"type 2: transaction_id missing",
		.patches = {{"order_key", "{\"order_number_type\":\"WXPAY_TRADE_NUMBER\"}"}},
		.expect = {{268485195, "order_key.transaction_id", NULL}}},
	{"type 2 key is valid",
		.patches = {{"order_key",
			"{\"order_number_type\":2,\"transaction_id\":\"4200001234202205201234567890\"}"}},
		.expect = NONE},
	{"payer missing",
		.patches = {{"payer", NULL}},
		.expect = {{268485192, "payer", "payer is required"}}},
	{"payer.openid empty",
		.patches = {{"payer.openid", "\"\""}},
		.expect = {{268485192, "payer.openid", NULL}}},
	{"payer.openid 129 bytes",
		.patches = {{"payer.openid", "~|129|o"}},
		.expect = {{PARAM, "payer.openid",
			"payer.openid is 129 bytes long; at most 128 allowed"}}},
	{"upload_time missing",
		.patches = {{"upload_time", NULL}},
		.expect = {{268485214, "upload_time", NULL}}},
	{"upload_time not RFC 3339",
		.patches = {{"upload_time", "\"2022-05-20 13:29:35\""}},
		.expect = {{268485216, "upload_time", NULL}}},

	/* delivery_mode */
	{"delivery_mode missing",
		.patches = {{"delivery_mode", NULL}},
		.expect = {{PARAM, "delivery_mode", "delivery_mode is required"}}},
	{"delivery_mode null",
		.patches = {{"delivery_mode", "null"}},
		.expect = {{PARAM, "delivery_mode", NULL}}},
	{"delivery_mode 3",
		.patches = {{"delivery_mode", "3"}},
		.expect = {{PARAM, "delivery_mode",
			"delivery_mode must be 1, 2, \"UNIFIED_DELIVERY\" or "
			"\"SPLIT_DELIVERY\", got 3"}}},
	{"delivery_mode 0",
		.patches = {{"delivery_mode", "0"}},
		.expect = {{PARAM, "delivery_mode", NULL}}},
	{"delivery_mode \"2\"",
		.patches = {{"delivery_mode", "\"2\""}},
		.expect = {{PARAM, "delivery_mode", NULL}}},
	{"delivery_mode 2.0",
		.patches = {{"delivery_mode", "2.0"}},
		.expect = {{PARAM, "delivery_mode",
			"delivery_mode must be 1, 2, \"UNIFIED_DELIVERY\" or "
			"\"SPLIT_DELIVERY\", got a floating-point number"}}},
	{"alias SPLIT_DELIVERY",
		.patches = {{"delivery_mode", "\"SPLIT_DELIVERY\""}},
		.expect = NONE},
	{"alias UNIFIED_DELIVERY", UNIFIED,
		.patches = {{"delivery_mode", "\"UNIFIED_DELIVERY\""}},
		.expect = NONE},
	{"bad delivery_mode: shipments still checked, item_list not required",
		.patches = {{"delivery_mode", "9"}, {S0 ".tracking_no", "\"\""},
		{S1 ".item_list", NULL}},
		.expect = {
			{PARAM, "delivery_mode", NULL},
			{268485226, S0 ".tracking_no", NULL}}},

	/* shipping_list */
	{"shipping_list missing",
		.patches = {{"shipping_list", NULL}},
		.expect = {{PARAM, "shipping_list", "shipping_list is required"}}},
	{"shipping_list empty",
		.patches = {{"shipping_list", "[]"}},
		.expect = {{PARAM, "shipping_list", "shipping_list must not be empty"}}},
	{"shipping_list an object",
		.patches = {{"shipping_list", "{}"}},
		.expect = {{PARAM, "shipping_list",
			"shipping_list must be an array, got an object"}}},
	{"unified delivery with 2 shipments",
		.patches = {{"delivery_mode", "1"}},
		.expect = {{268485228, "shipping_list",
			"shipping_list has 2 shipments; delivery_mode 1 (UNIFIED_DELIVERY) "
			"needs exactly 1"}}},
	{"unified alias with 2 shipments",
		.patches = {{"delivery_mode", "\"UNIFIED_DELIVERY\""}},
		.expect = {{268485228, "shipping_list", NULL}}},
	{"split delivery with 1 shipment",
		.patches = {{S1, NULL}},
		.expect = NONE},
	{"10 shipments", .build = build_10_shipments,
		.expect = NONE},
	{"11 shipments: reported, the 11th not walked",
		.build = build_11_shipments,
		.expect = {{PARAM, "shipping_list",
			"shipping_list has 11 entries; at most 10 allowed"}}},
	{"11 shipments, unified: both rules", UNIFIED, .build = build_11_unified,
		.expect = {
			{PARAM, "shipping_list", NULL},
			{268485228, "shipping_list", NULL}}},
	{"shipment a string",
		.patches = {{S0, "\"x\""}},
		.expect = {{PARAM, S0, S0 " must be an object, got a string"}}},
	{"shipment null",
		.patches = {{S1, "null"}},
		.expect = {{PARAM, S1, S1 " must be an object, got null"}}},

	/* tracking_no */
	{"tracking_no missing",
		.patches = {{S0 ".tracking_no", NULL}},
		.expect = {{268485226, S0 ".tracking_no",
			S0 ".tracking_no is required"}}},
	{"tracking_no empty",
		.patches = {{S1 ".tracking_no", "\"\""}},
		.expect = {{268485226, S1 ".tracking_no",
			S1 ".tracking_no must not be empty"}}},
	{"tracking_no null",
		.patches = {{S0 ".tracking_no", "null"}},
		.expect = {{268485226, S0 ".tracking_no", NULL}}},
	{"tracking_no empty, unified",
		UNIFIED, .patches = {{S0 ".tracking_no", "\"\""}},
		.expect = {{268485226, S0 ".tracking_no", NULL}}},
	{"tracking_no 128 bytes",
		.patches = {{S0 ".tracking_no", "~|128|7"}},
		.expect = NONE},
	{"tracking_no 129 bytes",
		.patches = {{S0 ".tracking_no", "~|129|7"}},
		.expect = {{PARAM, S0 ".tracking_no",
			S0 ".tracking_no is 129 bytes long; at most 128 allowed"}}},
	{"tracking_no 43 three-byte characters = 129 bytes",
		.patches = {{S0 ".tracking_no", "~|43|单"}},
		.expect = {{PARAM, S0 ".tracking_no", NULL}}},
	{"tracking_no a number",
		.patches = {{S0 ".tracking_no", "1234567890"}},
		.expect = {{PARAM, S0 ".tracking_no",
			S0 ".tracking_no must be a string, got an integer"}}},

	/* express_company */
	{"express_company missing",
		.patches = {{S0 ".express_company", NULL}},
		.expect = {{PARAM, S0 ".express_company",
			S0 ".express_company is required"}}},
	{"express_company empty",
		.patches = {{S1 ".express_company", "\"\""}},
		.expect = {{PARAM, S1 ".express_company", NULL}}},
	{"express_company 128 bytes",
		.patches = {{S0 ".express_company", "~|128|Z"}},
		.expect = NONE},
	{"express_company 129 bytes",
		.patches = {{S0 ".express_company", "~|129|Z"}},
		.expect = {{PARAM, S0 ".express_company", NULL}}},
	{"express_company an object",
		.patches = {{S0 ".express_company", "{}"}},
		.expect = {{PARAM, S0 ".express_company", NULL}}},

	/* item_list */
	{"split: item_list missing",
		.patches = {{S1 ".item_list", NULL}},
		.expect = {{PARAM, S1 ".item_list",
			S1 ".item_list is required" SPLIT_WHEN}}},
	{"split: item_list null",
		.patches = {{S1 ".item_list", "null"}},
		.expect = {{PARAM, S1 ".item_list", NULL}}},
	{"split: item_list empty",
		.patches = {{S0 ".item_list", "[]"}},
		.expect = {{PARAM, S0 ".item_list",
			S0 ".item_list must not be empty" SPLIT_WHEN}}},
	{"split: item_list a string",
		.patches = {{S0 ".item_list", "\"sku-1\""}},
		.expect = {{PARAM, S0 ".item_list",
			S0 ".item_list must be an array, got a string"}}},
	{"split: item a string",
		.patches = {{S0 ".item_list[1]", "\"sku-2\""}},
		.expect = {{PARAM, S0 ".item_list[1]",
			S0 ".item_list[1] must be an object, got a string"}}},
	{"split: merchant_item_id missing",
		.patches = {{S0 ".item_list[0].merchant_item_id", NULL}},
		.expect = {{PARAM, S0 ".item_list[0].merchant_item_id",
			S0 ".item_list[0].merchant_item_id is required"}}},
	{"split: merchant_item_id empty",
		.patches = {{S0 ".item_list[0].merchant_item_id", "\"\""}},
		.expect = {{PARAM, S0 ".item_list[0].merchant_item_id",
			S0 ".item_list[0].merchant_item_id must not be empty"}}},
	{"split: merchant_item_id 65 bytes",
		.patches = {{S0 ".item_list[0].merchant_item_id", "~|65|x"}},
		.items = ITEMS_UNKNOWN,
		.expect = {{PARAM, S0 ".item_list[0].merchant_item_id",
			S0 ".item_list[0].merchant_item_id is 65 bytes long; at most 64 allowed"}}},
	{"split: merchant_item_id a number",
		.patches = {{S1 ".item_list[0].merchant_item_id", "3"}},
		.expect = {{PARAM, S1 ".item_list[0].merchant_item_id", NULL}}},
	{"split: an item not of the order",
		.patches = {{S1 ".item_list[0].merchant_item_id", "\"sku-9\""}},
		.expect = {{PARAM, S1 ".item_list[0].merchant_item_id",
			S1 ".item_list[0].merchant_item_id is not an item of the order"}}},
	{"split: an item differing in case is not of the order",
		.patches = {{S0 ".item_list[1].merchant_item_id", "\"SKU-2\""}},
		.expect = {{PARAM, S0 ".item_list[1].merchant_item_id", NULL}}},
	{"split: a prefix of an item is not of the order",
		.patches = {{S0 ".item_list[1].merchant_item_id", "\"sku-\""}},
		.expect = {{PARAM, S0 ".item_list[1].merchant_item_id", NULL}}},
	{"split: an item with a NUL byte is not of the order",
		.patches = {{S0 ".item_list[1].merchant_item_id", "\"sku-2\\u0000\""}},
		.expect = {{PARAM, S0 ".item_list[1].merchant_item_id", NULL}}},
	{"split: an item not of the order, order's items unknown",
		.patches = {{S1 ".item_list[0].merchant_item_id", "\"sku-9\""}},
		.items = ITEMS_UNKNOWN,
		.expect = NONE},
	{"split: an order without items",
		.items = ITEMS_NONE,
		.expect = {
			{PARAM, S0 ".item_list[0].merchant_item_id", NULL},
			{PARAM, S0 ".item_list[1].merchant_item_id", NULL},
			{PARAM, S1 ".item_list[0].merchant_item_id", NULL}}},
	{"split: the same item in two shipments",
		.patches = {{S1 ".item_list[0].merchant_item_id", "\"sku-1\""}},
		.expect = NONE},
	{"unified: item_list not needed", UNIFIED,
		.expect = NONE},
	{"unified: item_list not compared with the order", UNIFIED,
		.patches = {{S0 ".item_list", "[{\"merchant_item_id\":\"sku-9\"}]"}},
		.expect = NONE},
	{"unified: an empty item_list", UNIFIED,
		.patches = {{S0 ".item_list", "[]"}},
		.expect = NONE},
	{"unified: item_list of the wrong form", UNIFIED,
		.patches = {{S0 ".item_list", "[{\"merchant_item_id\":7}, 1]"}},
		.expect = {
			{PARAM, S0 ".item_list[0].merchant_item_id", NULL},
			{PARAM, S0 ".item_list[1]", NULL}}},

	/* contact */
	{"contact absent",
		UNIFIED, .patches = {{C0, NULL}},
		.expect = NONE},
	{"contact null",
		UNIFIED, .patches = {{C0, "null"}},
		.expect = NONE},
	{"contact empty object",
		UNIFIED, .patches = {{C0, "{}"}},
		.expect = NONE},
	{"contact a string",
		UNIFIED, .patches = {{C0, "\"189****1234\""}},
		.expect = {{PARAM, C0, C0 " must be an object, got a string"}}},
	{"contact: WeChat's examples",
		UNIFIED, .patches = {{C0 ".consignor_contact", "\"0**2-******23-10\""},
		{C0 ".receiver_contact", "\"****123-8008\""}},
		.expect = NONE},
	{"contact: ****1234, 021-****1234",
		UNIFIED, .patches = {{C0 ".consignor_contact", "\"****1234\""},
		{C0 ".receiver_contact", "\"021-****1234\""}},
		.expect = NONE},
	{"contact: a mask among the last 4 digits",
		UNIFIED, .patches = {{C0 ".consignor_contact", "\"1891234***4\""}},
		.expect = {{PARAM, C0 ".consignor_contact",
			C0 ".consignor_contact" CONTACT_MSG}}},
	{"contact: fewer than 4 digits",
		UNIFIED, .patches = {{C0 ".receiver_contact", "\"***123\""}},
		.expect = {{PARAM, C0 ".receiver_contact",
			C0 ".receiver_contact" CONTACT_MSG}}},
	{"contact: empty",
		UNIFIED, .patches = {{C0 ".receiver_contact", "\"\""}},
		.expect = {{PARAM, C0 ".receiver_contact", NULL}}},
	{"contact: a number",
		UNIFIED, .patches = {{C0 ".consignor_contact", "18900001234"}},
		.expect = {{PARAM, C0 ".consignor_contact",
			C0 ".consignor_contact must be a string, got an integer"}}},
	{"contact of a split shipment",
		.patches = {{S1 ".contact", "{\"receiver_contact\":\"139****56\"}"}},
		.expect = {{PARAM, S1 ".contact.receiver_contact", NULL}}},

	/* many at once, in document order */
	{"violations in document order",
		.patches = {{"payer", NULL}, {"delivery_mode", "1"},
		{S0 ".tracking_no", NULL}, {S0 ".item_list[0].merchant_item_id", "\"\""},
		{S1 ".express_company", NULL}, {S1 ".contact", "[]"}},
		.expect = {
			{268485192, "payer", NULL},
			{268485228, "shipping_list", NULL},
			{268485226, S0 ".tracking_no", NULL},
			{PARAM, S0 ".item_list[0].merchant_item_id", NULL},
			{PARAM, S1 ".express_company", NULL},
			{PARAM, S1 ".contact", NULL}}},
};

/* shipping_list = n valid shipments; the 11th has no tracking_no */
static void
build_shipments(struct json_object *root, int n, const char *items)
{
	struct json_object *list = json_object_new_array();

	for (int k = 0; k < n; k++)
	{
		struct json_object *s = json_object_new_object();
		char		no[16];

		snprintf(no, sizeof(no), "T%d", k);
		if (k != 10)
			json_object_object_add(s, "tracking_no", json_object_new_string(no));
		json_object_object_add(s, "express_company", json_object_new_string("SF"));
		if (items)
			json_object_object_add(s, "item_list", json_tokener_parse(items));
		json_object_array_add(list, s);
	}
	json_object_object_add(root, "shipping_list", list);
}

#define ONE_ITEM "[{\"merchant_item_id\":\"sku-4\"}]"

static void
build_10_shipments(struct json_object *root)
{
	build_shipments(root, 10, ONE_ITEM);
}

static void
build_11_shipments(struct json_object *root)
{
	build_shipments(root, 11, ONE_ITEM);
}

static void
build_11_unified(struct json_object *root)
{
	build_shipments(root, 11, NULL);
}

static bool
stop_at_once(void *arg)
{
	(void) arg;
	return true;
}


static void
run_case(const ShipCase *c)
{
	struct json_object *payload = json_tokener_parse(c->payload ? c->payload : SPLIT);
	const char *const *ids = c->items == ITEMS_UNKNOWN ? NULL : order_items;
	size_t		n_ids = c->items == ITEMS_KNOWN ?
		sizeof(order_items) / sizeof(order_items[0]) : 0;
	Got		   *got = calloc(1, sizeof(Got));
	int			ok = 1;
	int			ret;

	if (c->payload && payload == NULL && strcmp(c->payload, "null") != 0)
		ok = 0;
	for (const Patch *p = c->patches; ok && p->path != NULL; p++)
		ok &= apply_patch(payload, p);
	if (c->build)
		c->build(payload);
	if (!ok)
	{
		failed++;
		fprintf(stderr, "FAIL: shipping: %s: bad test\n", c->name);
	}
	else
	{
		ret = su_validate_shipping(payload, ids, n_ids, collect, got, NULL, NULL);
		compare_got("shipping", c->name, ret, got, c->expect);
	}
	free(got);
	json_object_put(payload);
}

/* a NULL callback only counts; a stop ends the walk between shipments */
static void
run_special(void)
{
	struct json_object *empty = json_tokener_parse("{}");
	struct json_object *bad = json_tokener_parse(SPLIT);
	Got		   *got = calloc(1, sizeof(Got));
	Expect		top[] = {{PARAM, "delivery_mode", NULL}, {0, NULL, NULL}};
	int			ret;

	if (su_validate_shipping(empty, NULL, 0, NULL, NULL, NULL, NULL) == 5)
		passed++;
	else
	{
		failed++;
		fprintf(stderr, "FAIL: shipping: NULL callback\n");
	}

	json_object_object_add(bad, "delivery_mode", json_object_new_int(7));
	json_object_object_del(json_object_array_get_idx(
		json_object_object_get(bad, "shipping_list"), 0), "tracking_no");
	ret = su_validate_shipping(bad, order_items, 4, collect, got,
							   stop_at_once, NULL);
	compare_got("shipping", "a stop ends the walk before the shipments", ret, got, top);

	free(got);
	json_object_put(empty);
	json_object_put(bad);
}

void
run_shipping_tests(void)
{
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++)
		run_case(&cases[k]);
	run_special();
}
