/*-------------------------------------------------------------------------
 *
 * test_validate_trade.c
 *		Unit tests of validate_trade.c (/wxa/sec/order/upload_shipping_info),
 *		without PostgreSQL.  Linked into test_validate (make unit-test),
 *		whose counts they add to.
 *
 * Each case starts from a valid body (EXPRESS: split delivery by courier,
 * or its own JSON text), applies patches (unit.h) or a builder, and lists
 * the violations expected, in order: errcode, field and, where given, the
 * exact message.  The delivery_ids known are DELIVERY_IDS unless the case
 * says they are unknown (NULL).
 *
 *-------------------------------------------------------------------------
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "errcodes.h"
#include "validate_trade.h"
#include "unit.h"

#define FMT		WX_ERR_DATA_FORMAT
#define S0		"shipping_list[0]"
#define S1		"shipping_list[1]"
#define C0		S0 ".contact"

#define KEY \
	"\"order_key\":{\"order_number_type\":1,\"mchid\":\"1230000109\"," \
	"\"out_trade_no\":\"ORDER_20220520_001\"},"
#define TIME_AND_PAYER \
	"\"upload_time\":\"2022-12-15T13:29:35.120+08:00\"," \
	"\"payer\":{\"openid\":\"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o\"}"

/* split delivery by courier, 2 parcels, one of them SF with a contact */
#define EXPRESS \
	"{" KEY "\"logistics_type\":1,\"delivery_mode\":2,\"is_all_delivered\":false," \
	"\"shipping_list\":[" \
	"{\"tracking_no\":\"SF1234567890\",\"express_company\":\"SF\"," \
	"\"item_desc\":\"微信红包抱枕*1个\"," \
	"\"contact\":{\"receiver_contact\":\"189****1234\"}}," \
	"{\"tracking_no\":\"YT9876543210\",\"express_company\":\"YTO\"," \
	"\"item_desc\":\"mug*2\"}]," TIME_AND_PAYER "}"
/* unified, virtual goods: one entry with only item_desc */
#define VIRTUAL \
	"{" KEY "\"logistics_type\":3,\"delivery_mode\":1," \
	"\"shipping_list\":[{\"item_desc\":\"gift card*1\"}]," TIME_AND_PAYER "}"

static const char *const delivery_ids[] = {"YTO", "SF", "ZTO", "YD"};

typedef struct TradeCase
{
	const char *name;
	const char *payload;		/* NULL: EXPRESS */
	Patch		patches[6];
	void		(*build) (struct json_object *root);
	bool		unknown_ids;	/* delivery_ids NULL: that rule skipped */
	Expect		expect[12];
} TradeCase;

static void build_15(struct json_object *root);
static void build_16(struct json_object *root);

static const TradeCase cases[] = {
	/* the body itself */
	{"express split body is valid", .expect = NONE},
	{"virtual unified body is valid", VIRTUAL, .expect = NONE},
	{"pick-up, one entry with only item_desc", VIRTUAL,
		.patches = {{"logistics_type", "4"}}, .expect = NONE},
	{"body is an array", "[]",
		.expect = {{FMT, "", "the payload must be a JSON object, got an array"}}},
	{"empty object: every required member, in order", "{}",
		.expect = {
			{268485194, "order_key", "order_key is required"},
			{10060005, "logistics_type", "logistics_type is required"},
			{268485224, "delivery_mode", "delivery_mode is required"},
			{FMT, "shipping_list", "shipping_list is required"},
			{268485214, "upload_time", NULL},
			{268485192, "payer", NULL}}},
	{"unknown keys are ignored",
		.patches = {{"extra", "[1]"}, {S0 ".extra", "{}"}}, .expect = NONE},

	/* order_key, payer, upload_time: the upload's rules, this API's codes */
	{"type 1: mchid missing",
		.patches = {{"order_key.mchid", NULL}},
		.expect = {{268485196, "order_key.mchid", NULL}}},
	{"type 2 key is valid",
		.patches = {{"order_key",
			"{\"order_number_type\":2,\"transaction_id\":\"4200001234202205201234567890\"}"}},
		.expect = NONE},
	{"type 2: transaction_id empty",
		.patches = {{"order_key", "{\"order_number_type\":2,\"transaction_id\":\"\"}"}},
		.expect = {{268485195, "order_key.transaction_id", NULL}}},
	{"order_key a string",
		.patches = {{"order_key", "\"x\""}},
		.expect = {{FMT, "order_key", NULL}}},
	{"payer.openid 129 bytes: 47001 here",
		.patches = {{"payer.openid", "~|129|o"}},
		.expect = {{FMT, "payer.openid",
			"payer.openid is 129 bytes long; at most 128 allowed"}}},
	{"upload_time not RFC 3339",
		.patches = {{"upload_time", "\"2022-12-15 13:29:35\""}},
		.expect = {{268485216, "upload_time", NULL}}},

	/* logistics_type, delivery_mode, is_all_delivered */
	{"logistics_type 5",
		.patches = {{"logistics_type", "5"}},
		.expect = {{10060005, "logistics_type", "logistics_type must be 1 (express), "
			"2 (same-city), 3 (virtual goods) or 4 (picked up by the buyer), got 5"}}},
	{"logistics_type as a string",
		.patches = {{"logistics_type", "\"1\""}},
		.expect = {{10060005, "logistics_type", NULL}}},
	{"delivery_mode 3",
		.patches = {{"delivery_mode", "3"}},
		.expect = {{268485224, "delivery_mode", NULL}}},
	{"delivery_mode by name: numbers only",
		.patches = {{"delivery_mode", "\"SPLIT_DELIVERY\""}},
		.expect = {{268485224, "delivery_mode",
			"delivery_mode must be 1 (UNIFIED_DELIVERY) or 2 (SPLIT_DELIVERY), "
			"as a number, got \"SPLIT_DELIVERY\""}}},
	{"split with same-city delivery",
		.patches = {{"logistics_type", "2"}},
		.expect = {
			{10060006, "delivery_mode", "delivery_mode is 2 (SPLIT_DELIVERY), "
				"which needs logistics_type 1 (express), got 2"},
			{10060006, "shipping_list", NULL}}},
	{"split without is_all_delivered",
		.patches = {{"is_all_delivered", NULL}},
		.expect = {{10060007, "is_all_delivered",
			"is_all_delivered is required when delivery_mode is 2 (SPLIT_DELIVERY)"}}},
	{"split, is_all_delivered true",
		.patches = {{"is_all_delivered", "true"}}, .expect = NONE},
	{"is_all_delivered a string",
		.patches = {{"is_all_delivered", "\"true\""}},
		.expect = {{FMT, "is_all_delivered", NULL}}},
	{"unified without is_all_delivered", VIRTUAL, .expect = NONE},

	/* shipping_list */
	{"shipping_list an object (answered 47001)",
		.patches = {{"shipping_list", "{}"}},
		.expect = {{FMT, "shipping_list",
			"shipping_list must be an array, got an object"}}},
	{"shipping_list empty",
		.patches = {{"shipping_list", "[]"}},
		.expect = {{FMT, "shipping_list", NULL}}},
	{"unified with 2 parcels",
		.patches = {{"delivery_mode", "1"}},
		.expect = {{268485228, "shipping_list", NULL}}},
	{"15 parcels (the current pages' limit)", .build = build_15, .expect = NONE},
	{"16 parcels", .build = build_16,
		.expect = {{10060024, "shipping_list",
			"shipping_list has 16 shipments; at most 15 allowed"}}},
	{"2 entries for virtual goods", VIRTUAL,
		.patches = {{"delivery_mode", "2"}, {"is_all_delivered", "true"},
		{S1, "{\"item_desc\":\"x\"}"}},
		.expect = {
			{10060006, "delivery_mode", NULL},
			{10060006, "shipping_list", NULL}}},

	/* a parcel */
	{"express: tracking_no missing",
		.patches = {{S0 ".tracking_no", NULL}},
		.expect = {{268485226, S0 ".tracking_no",
			S0 ".tracking_no is required when logistics_type is 1 (express)"}}},
	{"express: express_company empty",
		.patches = {{S1 ".express_company", "\"\""}},
		.expect = {{268485227, S1 ".express_company", NULL}}},
	{"tracking_no 129 bytes",
		.patches = {{S1 ".tracking_no", "~|129|7"}},
		.expect = {{10060026, S1 ".tracking_no",
			S1 ".tracking_no is 129 bytes long; at most 128 allowed"}}},
	{"express_company 129 bytes",
		.patches = {{S1 ".express_company", "~|129|Y"}}, .unknown_ids = true,
		.expect = {{10060025, S1 ".express_company", NULL}}},
	{"express_company not in the list",
		.patches = {{S1 ".express_company", "\"NOPE\""}},
		.expect = {{-3, S1 ".express_company", NULL}}},
	{"express_company not in the list, list unknown",
		.patches = {{S1 ".express_company", "\"NOPE\""}}, .unknown_ids = true,
		.expect = NONE},
	{"virtual goods: no tracking needed", VIRTUAL, .expect = NONE},
	{"item_desc missing",
		.patches = {{S0 ".item_desc", NULL}},
		.expect = {{10060008, S0 ".item_desc", NULL}}},
	{"item_desc empty",
		.patches = {{S1 ".item_desc", "\"\""}},
		.expect = {{10060008, S1 ".item_desc", NULL}}},
	{"item_desc 120 characters of 3 bytes", .patches = {{S1 ".item_desc", "~|120|枕"}},
		.expect = NONE},
	{"item_desc 121 characters",
		.patches = {{S1 ".item_desc", "~|121|a"}},
		.expect = {{10060009, S1 ".item_desc",
			S1 ".item_desc is 121 characters long; at most 120 allowed"}}},

	/* contact */
	{"SF without contact",
		.patches = {{C0, NULL}},
		.expect = {{FMT, C0, NULL}}},
	{"SF with an empty contact",
		.patches = {{C0, "{}"}},
		.expect = {{FMT, C0, NULL}}},
	{"SF with the consignor's phone only",
		.patches = {{C0, "{\"consignor_contact\":\"021-****1234\"}"}},
		.expect = NONE},
	{"contact: a mask among the last 4 digits",
		.patches = {{C0 ".receiver_contact", "\"1891234***4\""}},
		.expect = {{FMT, C0 ".receiver_contact", NULL}}},
	{"contact 1025 bytes",
		.patches = {{C0 ".receiver_contact", "~|1025|1"}},
		.expect = {{FMT, C0 ".receiver_contact", NULL}, {FMT, C0, NULL}}},
	{"not SF: no contact needed",
		.patches = {{S0 ".express_company", "\"ZTO\""}, {C0, NULL}},
		.expect = NONE},

	/* many at once, in document order */
	{"violations in document order",
		.patches = {{"payer", NULL}, {"logistics_type", "9"},
		{S0 ".item_desc", NULL}, {S1 ".tracking_no", "7"},
		{"upload_time", "\"yesterday\""}},
		.expect = {
			{10060005, "logistics_type", NULL},
			{10060008, S0 ".item_desc", NULL},
			{FMT, S1 ".tracking_no", NULL},
			{268485216, "upload_time", NULL},
			{268485192, "payer", NULL}}},
};

/* shipping_list = n valid parcels */
static void
build_parcels(struct json_object *root, int n)
{
	struct json_object *list = json_object_new_array();

	for (int k = 0; k < n; k++)
	{
		struct json_object *s = json_object_new_object();
		char		no[16];

		snprintf(no, sizeof(no), "T%d", k);
		json_object_object_add(s, "tracking_no", json_object_new_string(no));
		json_object_object_add(s, "express_company", json_object_new_string("YTO"));
		json_object_object_add(s, "item_desc", json_object_new_string("mug*1"));
		json_object_array_add(list, s);
	}
	json_object_object_add(root, "shipping_list", list);
}

static void
build_15(struct json_object *root)
{
	build_parcels(root, 15);
}

static void
build_16(struct json_object *root)
{
	build_parcels(root, 16);
}

static void
run_case(const TradeCase *c)
{
	struct json_object *payload = json_tokener_parse(c->payload ? c->payload : EXPRESS);
	Got		   *got = calloc(1, sizeof(Got));
	int			ok = payload != NULL || (c->payload && strcmp(c->payload, "null") == 0);
	int			ret;

	for (const Patch *p = c->patches; ok && p->path != NULL; p++)
		ok &= apply_patch(payload, p);
	if (c->build)
		c->build(payload);
	if (!ok)
	{
		failed++;
		fprintf(stderr, "FAIL: trade: %s: bad test\n", c->name);
	}
	else
	{
		ret = su_validate_trade_shipping(payload,
										 c->unknown_ids ? NULL : delivery_ids,
										 c->unknown_ids ? 0 : 4,
										 collect, got, NULL, NULL);
		compare_got("trade", c->name, ret, got, c->expect);
	}
	free(got);
	json_object_put(payload);
}

void
run_trade_tests(void)
{
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++)
		run_case(&cases[k]);
}
