/*-------------------------------------------------------------------------
 *
 * test_validate.c
 *		Unit tests of validate.c (and errcodes.h), without PostgreSQL.
 *
 * Build and run from the repository's top directory: make unit-test.  The
 * binary holds test_validate_shipping.c's cases too (validate_shipping.c)
 * and test_retry.c's (retry.c), and prints one line "N passed, N failed"
 * over all of them.
 *
 * Each case starts from a valid payload (BASE) or its own JSON text, applies
 * patches (set or delete the value at a path) or a builder function, and
 * lists the violations expected, in order: errcode, field and, where given,
 * the exact message.
 *
 * A patch value is JSON text, NULL to delete the key, or a generated string
 * "~PREFIX|COUNT|UNIT": PREFIX followed by COUNT copies of UNIT.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "errcodes.h"
#include "retry.h"
#include "validate.h"
#include "unit.h"

#define APPID		"wxd678efh567hg6787"
#define NO_APPID	"-"			/* Case.appid: validate with appid NULL */

/* paths */
#define O0		"order_list[0]"
#define OL		O0 ".order_detail_jump_link"
#define I0		O0 ".item_list[0]"
#define I1		O0 ".item_list[1]"
#define IL0		I0 ".item_detail_jump_link"
#define IL1		I1 ".item_detail_jump_link"
#define IMG		I0 ".image_url"

/* the valid payload every case starts from, unless it brings its own */
#define LINK_MP(path) \
	"{\"type\":\"MINI_PROGRAM\",\"appid\":\"" APPID "\",\"path\":\"" path "\"}"
#define LINK_URL(url) "{\"type\":\"URL\",\"url\":\"" url "\"}"
#define ITEM(id) \
	"{\"merchant_item_id\":\"" id "\",\"name\":\"iPhoneX 256G\"," \
	"\"description\":\"Image Store - QQ doll\",\"unit_price\":828800," \
	"\"quantity\":2,\"image_url\":[\"https://qpic.cn/xxx\"]," \
	"\"item_detail_jump_link\":" LINK_MP("/pages/item/detail?id=" id) "}"
#define ORDER(no) \
	"{\"merchant_order_no\":\"" no "\",\"order_detail_jump_link\":" \
	LINK_MP("/pages/order/detail?no=" no) ",\"item_list\":[" \
	ITEM("1246464644") "," ITEM("1246464645") "]}"
#define BASE \
	"{\"order_key\":{\"order_number_type\":1,\"mchid\":\"1230000109\"," \
	"\"out_trade_no\":\"ORDER_20220520_001\"}," \
	"\"order_list\":[" ORDER("232457563423") "]," \
	"\"payer\":{\"openid\":\"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o\"}," \
	"\"logistics_type\":1,\"upload_time\":\"2022-05-20T13:29:35.120+08:00\"}"

typedef struct Case
{
	const char *name;
	const char *payload;		/* NULL: BASE */
	Patch		patches[6];
	void		(*build) (struct json_object *root);
	const char *appid;			/* NULL: APPID; NO_APPID: NULL */
	Expect		expect[16];
} Case;

static void build_items(struct json_object *root, int n);
static void build_50_items(struct json_object *root);
static void build_51_items(struct json_object *root);

static const Case cases[] = {
	/* the payload itself */
	{"base payload is valid",
		.expect = NONE},
	{"payload is an array", "[]",
		.expect = {
			{PARAM, "", "the payload must be a JSON object, got an array"}}},
	{"payload is a string", "\"x\"",
		.expect = {{PARAM, "", NULL}}},
	{"payload is null", "null",
		.expect = {{PARAM, "", "the payload must be a JSON object, got null"}}},
	{"empty object: every required top-level member, in order", "{}",
		.expect = {
			{268485194, "order_key", "order_key is required"},
			{268485191, "order_list", "order_list is required"},
			{268485192, "payer", "payer is required"},
			{268485214, "upload_time", "upload_time is required"}}},
	{"unknown keys are ignored",
		.patches = {
			{"extra", "{\"a\":[1]}"},
			{O0 ".extra", "1"},
			{IL0 ".extra", "\"x\""}},
		.expect = NONE},

	/* order_key */
	{"order_key missing",
		.patches = {{"order_key", NULL}},
		.expect = {{268485194, "order_key", NULL}}},
	{"order_key null",
		.patches = {{"order_key", "null"}},
		.expect = {{268485194, "order_key", NULL}}},
	{"order_key not an object",
		.patches = {{"order_key", "\"k\""}},
		.expect = {
			{PARAM, "order_key", "order_key must be an object, got a string"}}},
	{"order_number_type missing: no required-when rules",
		.patches = {
			{"order_key.order_number_type", NULL},
			{"order_key.mchid", NULL},
			{"order_key.out_trade_no", NULL}},
		.expect = {
			{268485194, "order_key.order_number_type",
				"order_key.order_number_type is required"}}},
	{"order_number_type 3",
		.patches = {{"order_key.order_number_type", "3"}},
		.expect = {
			{268485194, "order_key.order_number_type",
				"order_key.order_number_type must be 1, 2, \"MERCHANT_TRADE_NUMBER\""
				" or \"WXPAY_TRADE_NUMBER\", got 3"}}},
	{"order_number_type 0",
		.patches = {{"order_key.order_number_type", "0"}},
		.expect = {{268485194, "order_key.order_number_type", NULL}}},
	{"order_number_type 2^32+1 is not 1",
		.patches = {{"order_key.order_number_type", "4294967297"}},
		.expect = {{268485194, "order_key.order_number_type", NULL}}},
	{"order_number_type \"1\"",
		.patches = {{"order_key.order_number_type", "\"1\""}},
		.expect = {
			{268485194, "order_key.order_number_type",
				"order_key.order_number_type must be 1, 2, \"MERCHANT_TRADE_NUMBER\""
				" or \"WXPAY_TRADE_NUMBER\", got \"1\""}}},
	{"order_number_type 1.0",
		.patches = {{"order_key.order_number_type", "1.0"}},
		.expect = {
			{268485194, "order_key.order_number_type",
				"order_key.order_number_type must be 1, 2, \"MERCHANT_TRADE_NUMBER\""
				" or \"WXPAY_TRADE_NUMBER\", got a floating-point number"}}},
	{"order_number_type object",
		.patches = {{"order_key.order_number_type", "{}"}},
		.expect = {{268485194, "order_key.order_number_type", NULL}}},
	{"order_number_type lower-case alias",
		.patches = {
			{"order_key.order_number_type", "\"merchant_trade_number\""}},
		.expect = {{268485194, "order_key.order_number_type", NULL}}},
	{"alias MERCHANT_TRADE_NUMBER",
		.patches = {
			{"order_key.order_number_type", "\"MERCHANT_TRADE_NUMBER\""}},
		.expect = NONE},
	{"alias MERCHANT_TRADE_NUMBER requires mchid",
		.patches = {
			{"order_key.order_number_type", "\"MERCHANT_TRADE_NUMBER\""},
			{"order_key.mchid", NULL}},
		.expect = {{268485196, "order_key.mchid", NULL}}},
	{"alias WXPAY_TRADE_NUMBER",
		.patches = {
			{"order_key",
				"{\"order_number_type\":\"WXPAY_TRADE_NUMBER\","
				"\"transaction_id\":\"4200001234202205201234567890\"}"}},
		.expect = NONE},
	{"alias WXPAY_TRADE_NUMBER requires transaction_id",
		.patches = {
			{"order_key", "{\"order_number_type\":\"WXPAY_TRADE_NUMBER\"}"}},
		.expect = {
			{268485195, "order_key.transaction_id",
				"order_key.transaction_id is required when order_number_type is 2"}}},
	{"type 2: transaction_id empty",
		.patches = {
			{"order_key", "{\"order_number_type\":2,\"transaction_id\":\"\"}"}},
		.expect = {
			{268485195, "order_key.transaction_id",
				"order_key.transaction_id must not be empty when order_number_type is 2"}}},
	{"type 2: transaction_id null",
		.patches = {
			{"order_key", "{\"order_number_type\":2,\"transaction_id\":null}"}},
		.expect = {{268485195, "order_key.transaction_id", NULL}}},
	{"type 2: transaction_id 32 bytes",
		.patches = {
			{"order_key", "{\"order_number_type\":2}"},
			{"order_key.transaction_id", "~|32|7"}},
		.expect = NONE},
	{"type 2: transaction_id 33 bytes",
		.patches = {
			{"order_key", "{\"order_number_type\":2}"},
			{"order_key.transaction_id", "~|33|7"}},
		.expect = {
			{PARAM, "order_key.transaction_id",
				"order_key.transaction_id is 33 bytes long; at most 32 allowed"}}},
	{"type 2: transaction_id a number",
		.patches = {
			{"order_key", "{\"order_number_type\":2,\"transaction_id\":42}"}},
		.expect = {
			{PARAM, "order_key.transaction_id",
				"order_key.transaction_id must be a string, got an integer"}}},
	{"type 2: empty mchid and out_trade_no are no error",
		.patches = {
			{"order_key",
				"{\"order_number_type\":2,\"transaction_id\":\"t1\","
				"\"mchid\":\"\",\"out_trade_no\":\"\"}"}},
		.expect = NONE},
	{"type 2: a present mchid and out_trade_no are still checked",
		.patches = {
			{"order_key",
				"{\"order_number_type\":2,\"transaction_id\":\"t1\","
				"\"out_trade_no\":\"abc\"}"},
			{"order_key.mchid", "~|33|1"}},
		.expect = {
			{PARAM, "order_key.mchid", NULL},
			{PARAM, "order_key.out_trade_no", NULL}}},
	{"type 1: transaction_id too long is still checked",
		.patches = {{"order_key.transaction_id", "~|33|7"}},
		.expect = {{PARAM, "order_key.transaction_id", NULL}}},
	{"type 1: mchid missing",
		.patches = {{"order_key.mchid", NULL}},
		.expect = {
			{268485196, "order_key.mchid",
				"order_key.mchid is required when order_number_type is 1"}}},
	{"type 1: mchid empty",
		.patches = {{"order_key.mchid", "\"\""}},
		.expect = {
			{268485196, "order_key.mchid",
				"order_key.mchid must not be empty when order_number_type is 1"}}},
	{"type 1: mchid null",
		.patches = {{"order_key.mchid", "null"}},
		.expect = {{268485196, "order_key.mchid", NULL}}},
	{"mchid 32 bytes",
		.patches = {{"order_key.mchid", "~|32|1"}},
		.expect = NONE},
	{"mchid 33 bytes",
		.patches = {{"order_key.mchid", "~|33|1"}},
		.expect = {
			{PARAM, "order_key.mchid",
				"order_key.mchid is 33 bytes long; at most 32 allowed"}}},
	{"mchid 10 three-byte characters + 2 = 32 bytes",
		.patches = {{"order_key.mchid", "~12|10|中"}},
		.expect = NONE},
	{"mchid 11 three-byte characters = 33 bytes",
		.patches = {{"order_key.mchid", "~|11|中"}},
		.expect = {
			{PARAM, "order_key.mchid",
				"order_key.mchid is 33 bytes long; at most 32 allowed"}}},
	{"mchid a number",
		.patches = {{"order_key.mchid", "1230000109"}},
		.expect = {{PARAM, "order_key.mchid", NULL}}},
	{"type 1: out_trade_no missing",
		.patches = {{"order_key.out_trade_no", NULL}},
		.expect = {
			{268485197, "order_key.out_trade_no",
				"order_key.out_trade_no is required when order_number_type is 1"}}},
	{"type 1: out_trade_no empty",
		.patches = {{"order_key.out_trade_no", "\"\""}},
		.expect = {{268485197, "order_key.out_trade_no", NULL}}},
	{"out_trade_no 5 characters",
		.patches = {{"order_key.out_trade_no", "\"abcde\""}},
		.expect = {
			{PARAM, "order_key.out_trade_no",
				"order_key.out_trade_no is 5 characters long; at least 6 required"}}},
	{"out_trade_no 1 character",
		.patches = {{"order_key.out_trade_no", "\"a\""}},
		.expect = {
			{PARAM, "order_key.out_trade_no",
				"order_key.out_trade_no is 1 character long; at least 6 required"}}},
	{"out_trade_no 6 characters",
		.patches = {{"order_key.out_trade_no", "\"abcdef\""}},
		.expect = NONE},
	{"out_trade_no 32 characters",
		.patches = {{"order_key.out_trade_no", "~|32|Z"}},
		.expect = NONE},
	{"out_trade_no 33 characters",
		.patches = {{"order_key.out_trade_no", "~|33|Z"}},
		.expect = {
			{PARAM, "order_key.out_trade_no",
				"order_key.out_trade_no is 33 characters long; at most 32 allowed"}}},
	{"out_trade_no every allowed character",
		.patches = {{"order_key.out_trade_no", "\"09AZaz_-*|\""}},
		.expect = NONE},
	{"out_trade_no with a space",
		.patches = {{"order_key.out_trade_no", "\"abc def\""}},
		.expect = {
			{PARAM, "order_key.out_trade_no",
				"order_key.out_trade_no may contain only 0-9, A-Z, a-z, _, -, * and |"}}},
	{"out_trade_no with a dot",
		.patches = {{"order_key.out_trade_no", "\"abc.def\""}},
		.expect = {{PARAM, "order_key.out_trade_no", NULL}}},
	{"out_trade_no with Chinese (11 characters, 17 bytes)",
		.patches = {{"order_key.out_trade_no", "\"订单号12345678\""}},
		.expect = {{PARAM, "order_key.out_trade_no", NULL}}},
	{"order_number_type bad: key fields still checked",
		.patches = {
			{"order_key.order_number_type", "9"},
			{"order_key.mchid", "~|33|1"},
			{"order_key.out_trade_no", NULL}},
		.expect = {
			{268485194, "order_key.order_number_type", NULL},
			{PARAM, "order_key.mchid", NULL}}},

	/* order_list */
	{"order_list missing",
		.patches = {{"order_list", NULL}},
		.expect = {{268485191, "order_list", "order_list is required"}}},
	{"order_list null",
		.patches = {{"order_list", "null"}},
		.expect = {{268485191, "order_list", NULL}}},
	{"order_list empty",
		.patches = {{"order_list", "[]"}},
		.expect = {{268485191, "order_list", "order_list must not be empty"}}},
	{"order_list an object",
		.patches = {{"order_list", "{}"}},
		.expect = {
			{PARAM, "order_list",
				"order_list must be an array, got an object"}}},
	{"order_list entry a string",
		.patches = {{O0, "\"o\""}},
		.expect = {{PARAM, O0, O0 " must be an object, got a string"}}},
	{"order_list entry null",
		.patches = {{O0, "null"}},
		.expect = {{PARAM, O0, O0 " must be an object, got null"}}},
	{"merchant_order_no missing",
		.patches = {{O0 ".merchant_order_no", NULL}},
		.expect = {
			{268485201, O0 ".merchant_order_no",
				O0 ".merchant_order_no is required"}}},
	{"merchant_order_no empty",
		.patches = {{O0 ".merchant_order_no", "\"\""}},
		.expect = {
			{268485201, O0 ".merchant_order_no",
				O0 ".merchant_order_no must not be empty"}}},
	{"merchant_order_no 64 bytes",
		.patches = {{O0 ".merchant_order_no", "~|64|9"}},
		.expect = NONE},
	{"merchant_order_no 65 bytes",
		.patches = {{O0 ".merchant_order_no", "~|65|9"}},
		.expect = {{PARAM, O0 ".merchant_order_no", NULL}}},
	{"merchant_order_no 22 three-byte characters = 66 bytes",
		.patches = {{O0 ".merchant_order_no", "~|22|单"}},
		.expect = {{PARAM, O0 ".merchant_order_no", NULL}}},
	{"merchant_order_no a number",
		.patches = {{O0 ".merchant_order_no", "232457563423"}},
		.expect = {{PARAM, O0 ".merchant_order_no", NULL}}},
	{"merchant_order_no repeated twice: reported at the later ones",
		.patches = {
			{"order_list[1]", ORDER("232457563423")},
			{"order_list[2]", ORDER("232457563423")}},
		.expect = {
			{268459786, "order_list[1].merchant_order_no",
				"order_list[1].merchant_order_no repeats "
				"order_list[0].merchant_order_no"},
			{268459786, "order_list[2].merchant_order_no", NULL}}},
	{"merchant_order_no differing in case or length is no repeat",
		.patches = {
			{"order_list[1]", ORDER("A1")},
			{"order_list[2]", ORDER("a1")},
			{"order_list[3]", ORDER("A12")}},
		.expect = NONE},
	{"merchant_item_id may repeat across orders",
		.patches = {{"order_list[1]", ORDER("232457563424")}},
		.expect = NONE},
	{"order_detail_jump_link missing",
		.patches = {{OL, NULL}},
		.expect = {{PARAM, OL, OL " is required"}}},
	{"order_detail_jump_link null",
		.patches = {{OL, "null"}},
		.expect = {{PARAM, OL, NULL}}},
	{"order_detail_jump_link an array",
		.patches = {{OL, "[]"}},
		.expect = {{PARAM, OL, OL " must be an object, got an array"}}},
	{"item_list missing",
		.patches = {{O0 ".item_list", NULL}},
		.expect = {{268485211, O0 ".item_list", NULL}}},
	{"item_list empty",
		.patches = {{O0 ".item_list", "[]"}},
		.expect = {{268485211, O0 ".item_list", NULL}}},
	{"item_list a string",
		.patches = {{O0 ".item_list", "\"i\""}},
		.expect = {{PARAM, O0 ".item_list", NULL}}},
	{"item_list of 50 items", .build = build_50_items,
		.expect = NONE},
	{"item_list of 51 items: reported, the rest not walked", .build = build_51_items,
		.expect = {
			{PARAM, O0 ".item_list",
				O0 ".item_list has 51 entries; at most 50 allowed"}}},
	{"item entry a number",
		.patches = {{I1, "7"}},
		.expect = {{PARAM, I1, I1 " must be an object, got an integer"}}},

	/* items */
	{"merchant_item_id missing",
		.patches = {{I0 ".merchant_item_id", NULL}},
		.expect = {{PARAM, I0 ".merchant_item_id", NULL}}},
	{"merchant_item_id empty",
		.patches = {{I0 ".merchant_item_id", "\"\""}},
		.expect = {{PARAM, I0 ".merchant_item_id", NULL}}},
	{"merchant_item_id 64 bytes",
		.patches = {{I0 ".merchant_item_id", "~|64|x"}},
		.expect = NONE},
	{"merchant_item_id 65 bytes",
		.patches = {{I0 ".merchant_item_id", "~|65|x"}},
		.expect = {
			{PARAM, I0 ".merchant_item_id",
				I0 ".merchant_item_id is 65 bytes long; at most 64 allowed"}}},
	{"merchant_item_id repeated",
		.patches = {{I1 ".merchant_item_id", "\"1246464644\""}},
		.expect = {
			{268486047, I1 ".merchant_item_id",
				I1 ".merchant_item_id repeats " O0
				".item_list[0].merchant_item_id"}}},
	{"name missing",
		.patches = {{I0 ".name", NULL}},
		.expect = {{268485207, I0 ".name", I0 ".name is required"}}},
	{"name empty",
		.patches = {{I0 ".name", "\"\""}},
		.expect = {{268485207, I0 ".name", NULL}}},
	{"name null",
		.patches = {{I0 ".name", "null"}},
		.expect = {{268485207, I0 ".name", NULL}}},
	{"name a number",
		.patches = {{I0 ".name", "5"}},
		.expect = {
			{PARAM, I0 ".name", I0 ".name must be a string, got an integer"}}},
	{"name 256 Chinese characters (768 bytes)",
		.patches = {{I1 ".name", "~|256|中"}},
		.expect = NONE},
	{"name 257 Chinese characters",
		.patches = {{I1 ".name", "~|257|中"}},
		.expect = {
			{PARAM, I1 ".name",
				I1 ".name is 257 characters long; at most 256 allowed"}}},
	{"name 256 four-byte characters",
		.patches = {{I1 ".name", "~|256|😀"}},
		.expect = NONE},
	{"name 257 ASCII characters",
		.patches = {{I1 ".name", "~|257|n"}},
		.expect = {{PARAM, I1 ".name", NULL}}},
	{"description absent",
		.patches = {{I0 ".description", NULL}},
		.expect = NONE},
	{"description null",
		.patches = {{I0 ".description", "null"}},
		.expect = NONE},
	{"description empty",
		.patches = {{I0 ".description", "\"\""}},
		.expect = {
			{PARAM, I0 ".description", I0 ".description must not be empty"}}},
	{"description 512 two-byte characters",
		.patches = {{I0 ".description", "~|512|é"}},
		.expect = NONE},
	{"description 513 two-byte characters",
		.patches = {{I0 ".description", "~|513|é"}},
		.expect = {
			{PARAM, I0 ".description",
				I0 ".description is 513 characters long; at most 512 allowed"}}},
	{"description an array",
		.patches = {{I0 ".description", "[]"}},
		.expect = {{PARAM, I0 ".description", NULL}}},
	{"unit_price missing",
		.patches = {{I0 ".unit_price", NULL}},
		.expect = {
			{268485208, I0 ".unit_price", I0 ".unit_price is required"}}},
	{"unit_price null",
		.patches = {{I0 ".unit_price", "null"}},
		.expect = {{268485208, I0 ".unit_price", NULL}}},
	{"unit_price 0",
		.patches = {{I0 ".unit_price", "0"}},
		.expect = {
			{268485208, I0 ".unit_price",
				I0 ".unit_price must be at least 1, got 0"}}},
	{"unit_price -1",
		.patches = {{I0 ".unit_price", "-1"}},
		.expect = {
			{PARAM, I0 ".unit_price",
				I0 ".unit_price must be at least 1, got -1"}}},
	{"unit_price a string",
		.patches = {{I0 ".unit_price", "\"100\""}},
		.expect = {
			{PARAM, I0 ".unit_price",
				I0 ".unit_price must be an integer, got a string"}}},
	{"unit_price 5.0",
		.patches = {{I0 ".unit_price", "5.0"}},
		.expect = {
			{PARAM, I0 ".unit_price",
				I0
				".unit_price must be an integer, got a floating-point number"}}},
	{"unit_price below the int64 range",
		.patches = {{I0 ".unit_price", "-99999999999999999999"}},
		.expect = {
			{PARAM, I0 ".unit_price",
				I0 ".unit_price must be at least 1, "
				"got an integer out of range"}}},
	{"unit_price 1 and a large one",
		.patches = {
			{I0 ".unit_price", "1"},
			{I1 ".unit_price", "9007199254740993"}},
		.expect = NONE},
	{"quantity missing",
		.patches = {{I1 ".quantity", NULL}},
		.expect = {{268485209, I1 ".quantity", NULL}}},
	{"quantity 0",
		.patches = {{I1 ".quantity", "0"}},
		.expect = {{268485209, I1 ".quantity", NULL}}},
	{"quantity -3",
		.patches = {{I1 ".quantity", "-3"}},
		.expect = {{PARAM, I1 ".quantity", NULL}}},
	{"quantity true",
		.patches = {{I1 ".quantity", "true"}},
		.expect = {
			{PARAM, I1 ".quantity",
				I1 ".quantity must be an integer, got a boolean"}}},
	{"quantity 2.5",
		.patches = {{I1 ".quantity", "2.5"}},
		.expect = {{PARAM, I1 ".quantity", NULL}}},
	{"image_url missing",
		.patches = {{IMG, NULL}},
		.expect = {{268485210, IMG, IMG " is required"}}},
	{"image_url empty",
		.patches = {{IMG, "[]"}},
		.expect = {{268485210, IMG, IMG " must not be empty"}}},
	{"image_url a string",
		.patches = {{IMG, "\"https://qpic.cn/xxx\""}},
		.expect = {{PARAM, IMG, IMG " must be an array, got a string"}}},
	{"image_url of 3",
		.patches = {
			{IMG,
				"[\"http://a.cn/1\",\"http://a.cn/2\"," "\"http://a.cn/3\"]"}},
		.expect = NONE},
	{"image_url of 4: reported, the rest not walked",
		.patches = {
			{IMG,
				"[\"http://a.cn/1\",\"http://a.cn/2\",\"http://a.cn/3\","
				"\"ftp://a.cn/4\"]"}},
		.expect = {
			{PARAM, IMG, IMG " has 4 entries; at most 3 allowed"}}},
	{"image_url entry empty",
		.patches = {{IMG, "[\"\"]"}},
		.expect = {{PARAM, IMG "[0]", IMG "[0] must not be empty"}}},
	{"image_url entry a number and a null",
		.patches = {{IMG, "[1,null]"}},
		.expect = {
			{PARAM, IMG "[0]", IMG "[0] must be a string, got an integer"},
			{PARAM, IMG "[1]", IMG "[1] must be a string, got null"}}},
	{"image_url entry 1024 bytes",
		.patches = {{IMG "[0]", "~https://a.cn/|1011|x"}},
		.expect = NONE},
	{"image_url entry 1025 bytes",
		.patches = {{IMG "[0]", "~https://a.cn/|1012|x"}},
		.expect = {
			{PARAM, IMG "[0]",
				IMG "[0] is 1025 bytes long; at most 1024 allowed"}}},
	{"image_url entry not a URL",
		.patches = {{IMG "[0]", "\"qpic.cn/xxx\""}},
		.expect = {
			{PARAM, IMG "[0]",
				IMG "[0] does not match the URL pattern "
				"(http or https, a host, an optional port, no square brackets "
				"after the host)"}}},
	{"item_detail_jump_link missing",
		.patches = {{IL0, NULL}},
		.expect = {{268485272, IL0, IL0 " is required"}}},
	{"item_detail_jump_link null",
		.patches = {{IL0, "null"}},
		.expect = {{268485272, IL0, NULL}}},
	{"item_detail_jump_link a string",
		.patches = {{IL0, "\"l\""}},
		.expect = {{PARAM, IL0, NULL}}},

	/* links */
	{"link type missing",
		.patches = {{IL0 ".type", NULL}},
		.expect = {{268485202, IL0 ".type", IL0 ".type is required"}}},
	{"link type lower-case",
		.patches = {{IL0 ".type", "\"mini_program\""}},
		.expect = {
			{268485202, IL0 ".type",
				IL0 ".type must be \"URL\", "
				"\"MINI_PROGRAM\", 1 or 2, got \"mini_program\""}}},
	{"link type 3",
		.patches = {{IL0 ".type", "3"}},
		.expect = {{268485202, IL0 ".type", NULL}}},
	{"link type an object",
		.patches = {{IL0 ".type", "{}"}},
		.expect = {{268485202, IL0 ".type", NULL}}},
	{"link type 2 = MINI_PROGRAM",
		.patches = {
			{OL ".type", "2"},
			{IL0 ".type", "2"}},
		.expect = NONE},
	{"URL links, item type 1 = URL",
		.patches = {
			{OL, LINK_URL("https://shop.example.com/o/1")},
			{IL0, LINK_URL("https://shop.example.com/i/1")},
			{IL1 ".type", "1"},
			{IL1 ".url", "\"http://shop.example.com:8080/i/2\""}},
		.expect = NONE},
	{"URL link: url missing",
		.patches = {
			{OL, "{\"type\":\"URL\"}"},
			{IL0, LINK_URL("https://a.cn/")},
			{IL1, LINK_URL("https://a.cn/")}},
		.expect = {
			{268485206, OL ".url", OL ".url is required when type is URL"}}},
	{"URL link: url empty",
		.patches = {
			{OL, LINK_URL("")},
			{IL0, LINK_URL("https://a.cn/")},
			{IL1, LINK_URL("https://a.cn/")}},
		.expect = {
			{268485206, OL ".url",
				OL ".url must not be empty when type is URL"}}},
	{"URL link: bad url; 1025 bytes",
		.patches = {
			{OL, LINK_URL("https://[::1]/")},
			{IL0, LINK_URL("https://a.cn/")},
			{IL1, "{\"type\":\"URL\"}"},
			{IL1 ".url", "~https://a.cn/|1012|x"}},
		.expect = {
			{PARAM, OL ".url", NULL},
			{PARAM, IL1 ".url",
				IL1 ".url is 1025 bytes long; at most 1024 allowed"}}},
	{"URL link: empty appid and path, MINI_PROGRAM appid ignored",
		.patches = {
			{OL,
				"{\"type\":\"URL\",\"url\":\"http://a.cn\",\"appid\":\"\","
				"\"path\":\"\"}"},
			{IL0,
				"{\"type\":\"URL\",\"url\":\"http://a.cn\","
				"\"appid\":\"wxOTHER\"}"},
			{IL1, LINK_URL("http://a.cn")}},
		.expect = NONE},
	{"URL link: appid 33 bytes still checked",
		.patches = {
			{OL, LINK_URL("http://a.cn")},
			{OL ".appid", "~|33|w"},
			{IL0, LINK_URL("http://a.cn")},
			{IL1, LINK_URL("http://a.cn")}},
		.expect = {{PARAM, OL ".appid", NULL}}},
	{"MINI_PROGRAM link: appid missing",
		.patches = {{OL ".appid", NULL}},
		.expect = {
			{268485204, OL ".appid",
				OL ".appid is required when type is MINI_PROGRAM"}}},
	{"MINI_PROGRAM link: appid empty",
		.patches = {{IL0 ".appid", "\"\""}},
		.expect = {{268485204, IL0 ".appid", NULL}}},
	{"MINI_PROGRAM link: appid 33 bytes (no comparison)",
		.patches = {{IL0 ".appid", "~|33|w"}},
		.expect = {
			{PARAM, IL0 ".appid",
				IL0 ".appid is 33 bytes long; at most 32 allowed"}}},
	{"MINI_PROGRAM link: path missing",
		.patches = {{IL1 ".path", NULL}},
		.expect = {
			{268485205, IL1 ".path",
				IL1 ".path is required when type is MINI_PROGRAM"}}},
	{"MINI_PROGRAM link: path empty",
		.patches = {{OL ".path", "\"\""}},
		.expect = {{268485205, OL ".path", NULL}}},
	{"MINI_PROGRAM link: path 512 bytes",
		.patches = {{OL ".path", "~/|511|p"}},
		.expect = NONE},
	{"MINI_PROGRAM link: path 513 bytes",
		.patches = {{OL ".path", "~/|512|p"}},
		.expect = {{PARAM, OL ".path", NULL}}},
	{"MINI_PROGRAM link: empty url ignored, bad url reported",
		.patches = {
			{OL ".url", "\"\""},
			{IL0 ".url", "\"www.a.cn\""}},
		.expect = {{PARAM, IL0 ".url", NULL}}},
	{"link type differs from the order's",
		.patches = {{IL1, LINK_URL("https://a.cn/i/2")}},
		.expect = {
			{268459788, IL1 ".type",
				IL1 ".type is URL but " OL ".type is MINI_PROGRAM; "
				"they must be equal"}}},
	{"link type differs, through aliases",
		.patches = {
			{OL, LINK_URL("https://a.cn/o")},
			{IL0 ".type", "2"}},
		.expect = {
			{268459788, IL0 ".type", NULL},
			{268459788, IL1 ".type", NULL}}},
	{"bad order link type: no comparison",
		.patches = {{OL ".type", "\"H5\""}},
		.expect = {{268485202, OL ".type", NULL}}},
	{"item appid differs from the order's (appid NULL)",
		.patches = {{IL1 ".appid", "\"wx0000000000000000\""}},
		.appid = NO_APPID,
		.expect = {
			{268459789, IL1 ".appid",
				IL1 ".appid differs from " OL ".appid; they must be equal"}}},
	{"item appid differs from the order's and the merchant's",
		.patches = {{IL1 ".appid", "\"wx0000000000000000\""}},
		.expect = {
			{268486029, IL1 ".appid",
				IL1 ".appid must be the merchant's own Mini Program appid "
				"(the app that calls the API)"},
			{268459789, IL1 ".appid", NULL}}},
	{"order appid missing: no item comparison",
		.patches = {
			{OL ".appid", NULL},
			{IL0 ".appid", "\"wxA\""}},
		.appid = NO_APPID,
		.expect = {{268485204, OL ".appid", NULL}}},
	{"all appids differ from the merchant's", .appid = "wx1111111111111111",
		.expect = {
			{268486029, OL ".appid", NULL},
			{268486029, IL0 ".appid", NULL},
			{268486029, IL1 ".appid", NULL}}},
	{"appid check skipped with appid NULL",
		.patches = {
			{OL ".appid", "\"wxA\""},
			{IL0 ".appid", "\"wxA\""},
			{IL1 ".appid", "\"wxA\""}},
		.appid = NO_APPID,
		.expect = NONE},
	{"appid compared exactly (case)",
		.patches = {
			{OL ".appid", "\"WXD678EFH567HG6787\""},
			{IL0 ".appid", "\"WXD678EFH567HG6787\""},
			{IL1 ".appid", "\"WXD678EFH567HG6787\""}},
		.expect = {
			{268486029, OL ".appid", NULL},
			{268486029, IL0 ".appid", NULL},
			{268486029, IL1 ".appid", NULL}}},

	/* payer */
	{"payer missing",
		.patches = {{"payer", NULL}},
		.expect = {{268485192, "payer", "payer is required"}}},
	{"payer null",
		.patches = {{"payer", "null"}},
		.expect = {{268485192, "payer", NULL}}},
	{"payer a string",
		.patches = {{"payer", "\"o\""}},
		.expect = {{PARAM, "payer", NULL}}},
	{"the original's pay/opens are not payer/openid",
		.patches = {
			{"payer", NULL},
			{"pay", "{\"opens\":\"o\"}"}},
		.expect = {{268485192, "payer", NULL}}},
	{"openid missing",
		.patches = {{"payer.openid", NULL}},
		.expect = {{268485192, "payer.openid", "payer.openid is required"}}},
	{"openid empty",
		.patches = {{"payer.openid", "\"\""}},
		.expect = {
			{268485192, "payer.openid", "payer.openid must not be empty"}}},
	{"openid 128 bytes",
		.patches = {{"payer.openid", "~|128|o"}},
		.expect = NONE},
	{"openid 129 bytes",
		.patches = {{"payer.openid", "~|129|o"}},
		.expect = {
			{PARAM, "payer.openid",
				"payer.openid is 129 bytes long; at most 128 allowed"}}},
	{"openid a number",
		.patches = {{"payer.openid", "12"}},
		.expect = {{PARAM, "payer.openid", NULL}}},

	/* logistics_type */
	{"logistics_type absent",
		.patches = {{"logistics_type", NULL}},
		.expect = NONE},
	{"logistics_type null",
		.patches = {{"logistics_type", "null"}},
		.expect = NONE},
	{"logistics_type 4",
		.patches = {{"logistics_type", "4"}},
		.expect = NONE},
	{"logistics_type alias",
		.patches = {{"logistics_type", "\"LOCATION_BASED_LOGISTICS\""}},
		.expect = NONE},
	{"logistics_type 0",
		.patches = {{"logistics_type", "0"}},
		.expect = {{268485193, "logistics_type", NULL}}},
	{"logistics_type 5",
		.patches = {{"logistics_type", "5"}},
		.expect = {
			{268485193, "logistics_type",
				"logistics_type must be 1, 2, "
				"3, 4 or \"LOCATION_BASED_LOGISTICS\", got 5"}}},
	{"logistics_type 2^32+2 is not 2",
		.patches = {{"logistics_type", "4294967298"}},
		.expect = {{268485193, "logistics_type", NULL}}},
	{"logistics_type -2^32+1",
		.patches = {{"logistics_type", "-4294967295"}},
		.expect = {{268485193, "logistics_type", NULL}}},
	{"logistics_type huge",
		.patches = {{"logistics_type", "99999999999999999999"}},
		.expect = {
			{268485193, "logistics_type",
				"logistics_type must be 1, 2, "
				"3, 4 or \"LOCATION_BASED_LOGISTICS\", got an integer out of range"}}},
	{"logistics_type \"2\"",
		.patches = {{"logistics_type", "\"2\""}},
		.expect = {{268485193, "logistics_type", NULL}}},
	{"logistics_type an unknown long name",
		.patches = {{"logistics_type", "~|40|L"}},
		.expect = {
			{268485193, "logistics_type",
				"logistics_type must be 1, 2, "
				"3, 4 or \"LOCATION_BASED_LOGISTICS\", got a string"}}},
	{"logistics_type an object",
		.patches = {{"logistics_type", "{}"}},
		.expect = {
			{268485193, "logistics_type",
				"logistics_type must be 1, 2, "
				"3, 4 or \"LOCATION_BASED_LOGISTICS\", got an object"}}},
	{"logistics_type 2.0",
		.patches = {{"logistics_type", "2.0"}},
		.expect = {{268485193, "logistics_type", NULL}}},

	/* upload_time */
	{"upload_time missing",
		.patches = {{"upload_time", NULL}},
		.expect = {{268485214, "upload_time", NULL}}},
	{"upload_time empty",
		.patches = {{"upload_time", "\"\""}},
		.expect = {
			{268485214, "upload_time", "upload_time must not be empty"}}},
	{"upload_time null",
		.patches = {{"upload_time", "null"}},
		.expect = {{268485214, "upload_time", NULL}}},
	{"upload_time a number",
		.patches = {{"upload_time", "1653024575"}},
		.expect = {{PARAM, "upload_time", NULL}}},
	{"upload_time of the original's sample",
		.patches = {{"upload_time", "\"2022-05-20T13:29:35.120 08:00\""}},
		.expect = {
			{268485216, "upload_time",
				"upload_time is not an RFC 3339 "
				"date-time such as 2022-05-20T13:29:35.120+08:00"}}},

	/* several violations, in document order whatever the key order */
	{"many violations in document order", "{\"upload_time\":\"2022-02-30T00:00:00Z\",\"logistics_type\":7," "\"payer\":{},\"order_list\":[{\"item_list\":[{\"quantity\":0," "\"name\":\"\",\"unit_price\":\"1\"}],\"merchant_order_no\":\"\"}]," "\"order_key\":{\"mchid\":\"\",\"order_number_type\":1}}",
		.expect = {
			{268485196, "order_key.mchid", NULL},
			{268485197, "order_key.out_trade_no", NULL},
			{268485201, O0 ".merchant_order_no", NULL},
			{PARAM, OL, NULL},
			{PARAM, I0 ".merchant_item_id", NULL},
			{268485207, I0 ".name", NULL},
			{PARAM, I0 ".unit_price", NULL},
			{268485209, I0 ".quantity", NULL},
			{268485210, IMG, NULL},
			{268485272, IL0, NULL},
			{268485192, "payer.openid", NULL},
			{268485193, "logistics_type",
				"logistics_type must be 1, 2, 3, 4 "
				"or \"LOCATION_BASED_LOGISTICS\", got 7"},
			{268485216, "upload_time", NULL}}},
	{"many violations, continued", "{\"upload_time\":\"2022-02-30T00:00:00Z\",\"logistics_type\":7," "\"payer\":{},\"order_list\":[{\"item_list\":[{\"merchant_item_id\":\"i\"," "\"name\":\"n\",\"unit_price\":1,\"quantity\":1,\"image_url\":[\"x\"]}]," "\"merchant_order_no\":\"m\",\"order_detail_jump_link\":{\"type\":\"URL\"," "\"url\":\"http://a\"}}],\"order_key\":{\"order_number_type\":2," "\"transaction_id\":\"t\"}}",
		.expect = {
			{PARAM, IMG "[0]", NULL},
			{268485272, IL0, NULL},
			{268485192, "payer.openid", NULL},
			{268485193, "logistics_type", NULL},
			{268485216, "upload_time", NULL}}},
	{"violations in sibling orders and items",
		.patches = {
			{"order_list[1]", ORDER("X")},
			{"order_list[1].item_list[0].name", "\"\""},
			{I1 ".quantity", "0"},
			{"order_list[1].merchant_order_no", "\"\""},
			{"payer.openid", "\"\""}},
		.expect = {
			{268485209, I1 ".quantity", NULL},
			{268485201, "order_list[1].merchant_order_no", NULL},
			{268485207, "order_list[1].item_list[0].name", NULL},
			{268485192, "payer.openid", NULL}}},
};

/* upload_time strings: valid or not */
static const char *const good_times[] = {
	"2022-05-20T13:29:35.120+08:00", "2022-05-20t13:29:35z",
	"2022-05-20T13:29:35Z", "2022-05-20T13:29:35-00:00",
	"2024-02-29T00:00:00+00:00", "2000-02-29T12:00:00Z",
	"2016-12-31T23:59:60Z", "2022-05-20T13:29:35.123456789-23:59",
	"0000-01-01T00:00:00Z", "2022-12-31T23:59:59.9+14:00", NULL
};
static const char *const bad_times[] = {
	"2022-05-20 13:29:35Z", "2022-05-20T13:29:35", "2022-05-20",
	"2023-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2022-13-01T00:00:00Z",
	"2022-00-10T00:00:00Z", "2022-04-31T00:00:00Z", "2022-05-00T00:00:00Z",
	"2022-05-20T24:00:00Z", "2022-05-20T23:60:00Z", "2022-05-20T23:59:61Z",
	"2022-05-20T13:29:35+24:00", "2022-05-20T13:29:35+08:60",
	"2022-05-20T13:29:35.Z", "2022-5-20T13:29:35Z", "2022-05-20T13:29:35+0800",
	"20220520T132935Z", "2022-05-20T13:29:35Z ", " 2022-05-20T13:29:35Z",
	"2022-05-20T13:29:35+08", "2022-05-20T13:29:35.120+08:00Z",
	"2022-05-20T13:29:35,120Z", "2022-05-20T1:29:35Z", "x", NULL
};

/* URLs, through image_url[0]: matching the pattern or not */
static const char *const good_urls[] = {
	"https://qpic.cn/xxx", "http://a", "http://a:80", "https://a:65535/x?y#z",
	"http://a:1", "http://a:123456", "http://a.cn:8080/p:q@r",
	"http://user:pw@host/x", "http://:pw@host", "http://a@b@c",
	"http://a[b]c/x", "http://a:b@c[d]", "http://u[x]@host",
	"https://例子.中国/路径?q=值", "http://a b", "http://a/x?q=1&r=2#f",
	"https://www.WeChat.qq.com/wxpay/pay.php", "http://a:b@[c]", NULL
};
static const char *const bad_urls[] = {
	"ftp://a", "HTTP://a", "Https://a", "http//a", "http:/a", "http://",
	"https://", "http:///a", "http://?a", "http://#a", "http://@a",
	"http://[::1]/", "http://a/[x]", "http://a/x]", "http://:80",
	" http://a", "http:// a", "http://\ta", "https://qpic. cn/[x]",
	"mailto:a@b.cn", "http://a:b@c[d]/[e]", NULL
};

/* errcodes.h */
static const struct
{
	int			errcode;
	const char *cls;
}			classes[] = {
	{0, "ok"}, {-1, "retry"}, {40001, "refresh_token"},
	{40014, "refresh_token"}, {42001, "refresh_token"}, {45011, "quota_minute"},
	{45009, "quota_day"}, {48001, "config"}, {61007, "config"},
	{268485184, "config"}, {268456389, "config"}, {40013, "config"},
	{268435461, "data"}, {268485194, "data"}, {268400000, "data"},
	{268499999, "data"}, {40003, "data"}, {47001, "data"}, {44002, "data"},
	{45002, "data"}, {268399999, "unknown"}, {268500000, "unknown"},
	{1, "unknown"}, {-2, "config"}, {-3, "unknown"}, {40002, "unknown"}, {45010, "unknown"},
	{0, NULL}
};

int			passed;
int			failed;


/* what was reported equals expect (and the count returned) */
void
compare_got(const char *suite, const char *name, int ret, const Got *got,
			const Expect *expect)
{
	int			n = 0;
	int			ok;

	while (expect[n].errcode != 0)
		n++;
	ok = ret == got->n && got->n == n;
	for (int k = 0; ok && k < n; k++)
		if (got->errcode[k] != expect[k].errcode ||
			strcmp(got->field[k], expect[k].field) != 0 ||
			(expect[k].msg && strcmp(got->msg[k], expect[k].msg) != 0))
			ok = 0;
	if (ok)
	{
		passed++;
		return;
	}
	failed++;
	fprintf(stderr, "FAIL: %s: %s (returned %d)\n", suite, name, ret);
	for (int k = 0; k < n; k++)
		fprintf(stderr, "    expected %d %s%s%s\n", expect[k].errcode,
				expect[k].field, expect[k].msg ? ": " : "",
				expect[k].msg ? expect[k].msg : "");
	print_got(got);
}

void
collect(void *arg, int errcode, const char *field, const char *errmsg)
{
	Got		   *got = (Got *) arg;

	if (got->n < MAX_GOT)
	{
		got->errcode[got->n] = errcode;
		snprintf(got->field[got->n], sizeof(got->field[0]), "%s", field);
		snprintf(got->msg[got->n], sizeof(got->msg[0]), "%s", errmsg);
	}
	got->n++;
}

/* "~PREFIX|COUNT|UNIT" -> a JSON string */
static struct json_object *
generated_string(const char *spec)
{
	const char *bar1 = strchr(spec, '|');
	const char *unit = strchr(bar1 + 1, '|') + 1;
	int			count = atoi(bar1 + 1);
	size_t		plen = (size_t) (bar1 - spec - 1);
	size_t		ulen = strlen(unit);
	size_t		len = plen + ulen * (size_t) count;
	char	   *buf = malloc(len + 1);
	struct json_object *v;
	int			k;

	memcpy(buf, spec + 1, plen);
	for (k = 0; k < count; k++)
		memcpy(buf + plen + ulen * (size_t) k, unit, ulen);
	buf[len] = '\0';
	v = json_object_new_string_len(buf, (int) len);
	free(buf);
	return v;
}

static struct json_object *
parse_value(const char *text, int *ok)
{
	enum json_tokener_error err;
	struct json_object *v;

	if (text[0] == '~')
		return generated_string(text);
	v = json_tokener_parse_verbose(text, &err);
	if (err != json_tokener_success)
	{
		fprintf(stderr, "bad JSON in test: %s\n", text);
		*ok = 0;
	}
	return v;
}

/*
 * Sets (json != NULL) or deletes the value at path: "a.b[1].c".  Setting an
 * index past the end of an array appends.
 */
int
apply_patch(struct json_object *root, const Patch *p)
{
	char		seg[128];
	const char *s = p->path;
	struct json_object *cur = root;
	int			ok = 1;

	for (;;)
	{
		size_t		n = strcspn(s, ".[");
		int			is_index = (*s == '[');
		size_t		idx = 0;
		struct json_object *next = NULL;

		if (is_index)
		{
			idx = (size_t) strtoul(s + 1, NULL, 10);
			n = strcspn(s, "]") + 1;
		}
		else
			snprintf(seg, sizeof(seg), "%.*s", (int) n, s);
		if (s[n] == '\0' || (s[n] == '.' && s[n + 1] == '\0'))
		{
			struct json_object *v = p->json ? parse_value(p->json, &ok) : NULL;

			if (is_index && p->json)
				json_object_array_put_idx(cur, idx, v);
			else if (is_index)
				json_object_array_del_idx(cur, idx, 1);
			else if (p->json)
				json_object_object_add(cur, seg, v);
			else
				json_object_object_del(cur, seg);
			return ok;
		}
		if (is_index)
			next = json_object_array_get_idx(cur, idx);
		else
			json_object_object_get_ex(cur, seg, &next);
		if (next == NULL)
		{
			fprintf(stderr, "bad path in test: %s\n", p->path);
			return 0;
		}
		cur = next;
		s += n;
		if (*s == '.')
			s++;
	}
}

/* order_list[0].item_list = n distinct valid items; the 51st has no name */
static void
build_items(struct json_object *root, int n)
{
	struct json_object *orders;
	struct json_object *items = json_object_new_array();
	int			k;

	for (k = 0; k < n; k++)
	{
		struct json_object *item = json_tokener_parse(ITEM("x"));
		char		id[16];

		snprintf(id, sizeof(id), "id%d", k);
		json_object_object_add(item, "merchant_item_id",
							   json_object_new_string(id));
		if (k == 50)
			json_object_object_add(item, "name", json_object_new_string(""));
		json_object_array_add(items, item);
	}
	json_object_object_get_ex(root, "order_list", &orders);
	json_object_object_add(json_object_array_get_idx(orders, 0), "item_list",
						   items);
}

static void
build_50_items(struct json_object *root)
{
	build_items(root, 50);
}

static void
build_51_items(struct json_object *root)
{
	build_items(root, 51);
}

void
print_got(const Got *got)
{
	int			k;

	for (k = 0; k < got->n && k < MAX_GOT; k++)
		fprintf(stderr, "    got %d %s: %s\n", got->errcode[k], got->field[k],
				got->msg[k]);
}

/* Compares what validation of payload reported with expect */
static void
check(const char *name, struct json_object *payload, const char *appid,
	  const Expect *expect)
{
	Got		   *got = calloc(1, sizeof(Got));
	int			n = 0;
	int			k;
	int			ret;
	int			ok = 1;

	ret = su_validate_payload(payload, appid, collect, got);
	while (expect[n].errcode != 0)
		n++;
	if (ret != got->n || got->n != n)
		ok = 0;
	for (k = 0; ok && k < n; k++)
	{
		if (got->errcode[k] != expect[k].errcode ||
			strcmp(got->field[k], expect[k].field) != 0 ||
			(expect[k].msg && strcmp(got->msg[k], expect[k].msg) != 0))
			ok = 0;
	}
	if (ok)
		passed++;
	else
	{
		failed++;
		fprintf(stderr, "FAIL: %s (returned %d)\n", name, ret);
		for (k = 0; k < n; k++)
			fprintf(stderr, "    expected %d %s%s%s\n", expect[k].errcode,
					expect[k].field, expect[k].msg ? ": " : "",
					expect[k].msg ? expect[k].msg : "");
		print_got(got);
	}
	free(got);
}

static void
run_case(const Case *c)
{
	struct json_object *payload;
	const char *appid = c->appid == NULL ? APPID :
		strcmp(c->appid, NO_APPID) == 0 ? NULL : c->appid;
	const Patch *p;
	int			ok = 1;

	payload = json_tokener_parse(c->payload ? c->payload : BASE);
	for (p = c->patches; p->path != NULL; p++)
		ok &= apply_patch(payload, p);
	if (c->build)
		c->build(payload);
	if (!ok)
	{
		failed++;
		fprintf(stderr, "FAIL: %s: bad test\n", c->name);
	}
	else
		check(c->name, payload, appid, c->expect);
	json_object_put(payload);
}

/* value at path in BASE, expecting expect (one violation, or none) */
static void
run_value(const char *path, const char *value, int errcode)
{
	struct json_object *payload = json_tokener_parse(BASE);
	Patch		p = {path, NULL};
	Expect		expect[2] = {{errcode, path, NULL}, {0, NULL, NULL}};
	char		json[2048];
	char		name[2200];

	/* value as a JSON string; the test values need no escaping but \t */
	if (strchr(value, '\t'))
		snprintf(json, sizeof(json), "\"http://\\ta\"");
	else
		snprintf(json, sizeof(json), "\"%s\"", value);
	p.json = json;
	apply_patch(payload, &p);
	snprintf(name, sizeof(name), "%s = %s", path, json);
	check(name, payload, APPID, expect);
	json_object_put(payload);
}

static void
run_lists(void)
{
	int			k;

	for (k = 0; good_times[k]; k++)
		run_value("upload_time", good_times[k], 0);
	for (k = 0; bad_times[k]; k++)
		run_value("upload_time", bad_times[k], 268485216);
	for (k = 0; good_urls[k]; k++)
		run_value(IMG "[0]", good_urls[k], 0);
	for (k = 0; bad_urls[k]; k++)
		run_value(IMG "[0]", bad_urls[k], PARAM);
}

static void
run_classes(void)
{
	int			k;

	for (k = 0; classes[k].cls; k++)
	{
		const char *name = su_retry_class_name(su_retry_classify(classes[k].errcode));

		if (strcmp(name, classes[k].cls) == 0)
			passed++;
		else
		{
			failed++;
			fprintf(stderr, "FAIL: errcode %d: expected %s, got %s\n",
					classes[k].errcode, classes[k].cls, name);
		}
	}
}

/* a NULL callback only counts */
static void
run_null_callback(void)
{
	struct json_object *payload = json_tokener_parse("{}");

	if (su_validate_payload(payload, NULL, NULL, NULL) == 4)
		passed++;
	else
	{
		failed++;
		fprintf(stderr, "FAIL: NULL callback\n");
	}
	json_object_put(payload);
}

int
main(void)
{
	size_t		k;

	for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++)
		run_case(&cases[k]);
	run_lists();
	run_classes();
	run_null_callback();
	run_shipping_tests();
	run_trade_tests();
	run_retry_tests();
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
