/*-------------------------------------------------------------------------
 *
 * shipping.c
 *		Shipping tables <-> /user-order/orders/shippings body, with json-c.
 *
 * An order's shipping information is a row of shippings (delivery_mode),
 * its shipments (shipping_list) and their items (item_list, for split
 * delivery).  As for orders (payload.c), importing stores a body as it is,
 * rules broken or not, and refuses only JSON that cannot be stored at all
 * (a wrong JSON type), with an error naming the field; building writes the
 * wire form: integers for order_number_type and delivery_mode, optional
 * fields left out when empty.  The rules are validate_shipping.c's.
 *
 * Every statement names its tables, functions and operators with their
 * schema and is prepared once per process (su_kept_plan).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <json-c/json.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "common.h"
#include "json_util.h"
#include "payload.h"
#include "settings.h"
#include "shipping.h"
#include "validate.h"
#include "spi_util.h"
#include "queue_sql.h"

static SPIPlanPtr find_merchant_plan = NULL;
static SPIPlanPtr find_transaction_plan = NULL;
static SPIPlanPtr find_merchant_long_plan = NULL;
static SPIPlanPtr find_transaction_long_plan = NULL;
static SPIPlanPtr item_ids_plan = NULL;
static SPIPlanPtr upsert_shipping_plan = NULL;
static SPIPlanPtr clear_shipments_plan = NULL;
static SPIPlanPtr shipment_plan = NULL;
static SPIPlanPtr shipment_item_plan = NULL;
static SPIPlanPtr build_order_plan = NULL;
static SPIPlanPtr build_shipments_plan = NULL;

/* ---------------------------------------------------------------------
 * Reading the body
 * ---------------------------------------------------------------------
 */

/* the readers of import_order() (payload.c), with this function's detail */
#define SHIPPING_DETAIL "import_shipping() stores shipping information that breaks " \
	"WeChat's rules, but not values of the wrong JSON type."
#define type_error(path, expected, v) \
	su_import_type_error(path, expected, v, SHIPPING_DETAIL)
#define member(obj, key) su_import_member(obj, key)
#define get_container(obj, key, type, path) \
	su_import_container(obj, key, type, path, SHIPPING_DETAIL)
#define get_text(obj, key, path, isnull) \
	su_import_text(obj, key, path, SHIPPING_DETAIL, isnull)
#define get_int4(obj, key, path, names, nnames, isnull) \
	su_import_int(obj, key, path, false, names, nnames, "integer", SHIPPING_DETAIL, isnull)

/* ---------------------------------------------------------------------
 * The order of an order key
 * ---------------------------------------------------------------------
 */

/* s, quoted and cut to 64 bytes (whole characters), for a message */
static char *
quoted(const char *s)
{
	int			len = strlen(s);
	int			cut = pg_mbcliplen(s, len, 64);

	return psprintf("\"%.*s\"%s", cut, s, cut < len ? "..." : "");
}

/* a string member usable as a key part: present, a string, no NUL byte */
static const char *
key_part(json_object *key, const char *name)
{
	json_object *v = member(key, name);

	if (v == NULL || json_object_get_type(v) != json_type_string ||
		strlen(json_object_get_string(v)) != (size_t) json_object_get_string_len(v))
		return NULL;
	return json_object_get_string(v);
}

/* when not quiet: the key cannot name an order */
static int64
unusable_key(bool quiet, const char *why)
{
	if (!quiet)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("order_key does not name an order: %s", why),
				 errhint("Type 1 takes mchid and out_trade_no, type 2 transaction_id, as strings.")));
	return 0;
}

int64
su_find_order_by_key(json_object *payload, const char *appid, bool quiet,
					 bool read_only)
{
	static const char *const types[] = {"MERCHANT_TRADE_NUMBER", "WXPAY_TRADE_NUMBER"};
	Oid			argtypes[3] = {TEXTOID, TEXTOID, TEXTOID};
	Datum		args[3];
	char		nulls[3] = {' ', ' ', ' '};
	json_object *key;
	json_object *t;
	int			type = 0;
	const char *a;
	const char *b = NULL;
	SPIPlanPtr	plan;
	char	   *desc;
	bool		isnull;

	/* the columns of the lookups below (find_merchant_plan and the others) */
	enum
	{
		Anum_find_order_order_id = 1
	};

	if (payload == NULL || json_object_get_type(payload) != json_type_object)
		return unusable_key(quiet, "the payload is not a JSON object");
	key = member(payload, "order_key");
	if (key == NULL || json_object_get_type(key) != json_type_object)
		return unusable_key(quiet, "it is missing or not an object");
	t = member(key, "order_number_type");
	if (t != NULL && json_object_get_type(t) == json_type_int)
	{
		int64		n = json_object_get_int64(t);

		type = (n == 1 || n == 2) ? (int) n : 0;
	}
	else if (t != NULL && json_object_get_type(t) == json_type_string)
	{
		for (int i = 0; i < 2; i++)
			if (strcmp(json_object_get_string(t), types[i]) == 0)
				type = i + 1;
	}
	if (type == 0)
		return unusable_key(quiet, "order_number_type is not 1 or 2");

	args[0] = appid ? su_text_datum(appid) : (Datum) 0;
	nulls[0] = appid ? ' ' : 'n';
	if (type == 1)
	{
		a = key_part(key, "mchid");
		b = key_part(key, "out_trade_no");
		if (a == NULL || b == NULL)
			return unusable_key(quiet, "mchid or out_trade_no is missing or not a string");
		args[1] = su_text_datum(a);
		args[2] = su_text_datum(b);
		/*
		 * The unique index of the key's length finds the row (payload.h,
		 * import_order()'s ON CONFLICT target); the parts themselves are
		 * compared too.
		 */
		if ((appid ? strlen(appid) : 0) + strlen(a) + strlen(b) <= SU_KEY_INDEXED_BYTES)
			plan = su_kept_plan(&find_merchant_plan,
								"SELECT o.order_id FROM " SU_SCHEMA ".orders o"
								" WHERE order_number_type OPERATOR(pg_catalog.=) 1"
								" AND " SU_MERCHANT_KEY_BYTES SU_KEY_SHORT
								" AND (COALESCE(appid, '') COLLATE pg_catalog.\"C\")"
								"  OPERATOR(pg_catalog.=) COALESCE($1, '')"
								" AND (mchid COLLATE pg_catalog.\"C\") OPERATOR(pg_catalog.=) $2"
								" AND (out_trade_no COLLATE pg_catalog.\"C\") OPERATOR(pg_catalog.=) $3",
								3, argtypes, 0);
		else
			plan = su_kept_plan(&find_merchant_long_plan,
								"SELECT o.order_id FROM " SU_SCHEMA ".orders o"
								" WHERE order_number_type OPERATOR(pg_catalog.=) 1"
								" AND " SU_MERCHANT_KEY_BYTES SU_KEY_LONG
								" AND pg_catalog.md5(COALESCE(appid, ''))"
								"  OPERATOR(pg_catalog.=) pg_catalog.md5(COALESCE($1, ''))"
								" AND pg_catalog.md5(mchid) OPERATOR(pg_catalog.=) pg_catalog.md5($2)"
								" AND pg_catalog.md5(out_trade_no) OPERATOR(pg_catalog.=) pg_catalog.md5($3)"
								" AND COALESCE(appid, '') OPERATOR(pg_catalog.=) COALESCE($1, '')"
								" AND mchid OPERATOR(pg_catalog.=) $2"
								" AND out_trade_no OPERATOR(pg_catalog.=) $3",
								3, argtypes, 0);
		desc = psprintf("mchid %s, out_trade_no %s", quoted(a), quoted(b));
	}
	else
	{
		a = key_part(key, "transaction_id");
		if (a == NULL)
			return unusable_key(quiet, "transaction_id is missing or not a string");
		args[1] = su_text_datum(a);
		if ((appid ? strlen(appid) : 0) + strlen(a) <= SU_KEY_INDEXED_BYTES)
			plan = su_kept_plan(&find_transaction_plan,
								"SELECT o.order_id FROM " SU_SCHEMA ".orders o"
								" WHERE order_number_type OPERATOR(pg_catalog.=) 2"
								" AND " SU_TRANSACTION_KEY_BYTES SU_KEY_SHORT
								" AND (COALESCE(appid, '') COLLATE pg_catalog.\"C\")"
								"  OPERATOR(pg_catalog.=) COALESCE($1, '')"
								" AND (transaction_id COLLATE pg_catalog.\"C\") OPERATOR(pg_catalog.=) $2",
								2, argtypes, 0);
		else
			plan = su_kept_plan(&find_transaction_long_plan,
								"SELECT o.order_id FROM " SU_SCHEMA ".orders o"
								" WHERE order_number_type OPERATOR(pg_catalog.=) 2"
								" AND " SU_TRANSACTION_KEY_BYTES SU_KEY_LONG
								" AND pg_catalog.md5(COALESCE(appid, ''))"
								"  OPERATOR(pg_catalog.=) pg_catalog.md5(COALESCE($1, ''))"
								" AND pg_catalog.md5(transaction_id) OPERATOR(pg_catalog.=) pg_catalog.md5($2)"
								" AND COALESCE(appid, '') OPERATOR(pg_catalog.=) COALESCE($1, '')"
								" AND transaction_id OPERATOR(pg_catalog.=) $2",
								2, argtypes, 0);
		desc = psprintf("transaction_id %s", quoted(a));
	}

	if (SPI_execute_plan(plan, args, nulls, read_only, 2) != SPI_OK_SELECT)
		elog(ERROR, "could not look up the order of an order_key");
	if (SPI_processed == 1)
		return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc,
										   Anum_find_order_order_id, &isnull));
	if (!quiet)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("no order has order_key %s for appid %s",
						desc, appid ? quoted(appid) : "NULL"),
				 errhint("Shipping information is stored for an order of shopping_upload.orders, "
						 "found by its order_key and appid as import_order() stores them "
						 "(appid NULL: orders stored without one).")));
	return 0;
}

char **
su_order_item_ids(int64 order_id, MemoryContext cxt, int *n)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		args[1] = {Int64GetDatum(order_id)};
	char	  **ids;
	int			k = 0;

	/* the columns of item_ids_plan's SELECT */
	enum
	{
		Anum_item_ids_merchant_item_id = 1
	};

	su_kept_plan(&item_ids_plan,
				 "SELECT i.merchant_item_id FROM " SU_SCHEMA ".items i"
				 " WHERE i.order_id OPERATOR(pg_catalog.=) $1"
				 " AND i.merchant_item_id IS NOT NULL",
				 1, argtypes, 0);
	if (SPI_execute_plan(item_ids_plan, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the items of order " INT64_FORMAT, order_id);
	ids = MemoryContextAlloc(cxt, sizeof(char *) * (SPI_processed + 1));
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		char	   *v = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc,
									 Anum_item_ids_merchant_item_id);

		if (v != NULL)
			ids[k++] = MemoryContextStrdup(cxt, v);
	}
	SPI_freetuptable(SPI_tuptable);
	*n = k;
	return ids;
}

/* ---------------------------------------------------------------------
 * Importing
 * ---------------------------------------------------------------------
 */

static void
import_shipment_items(json_object *shipment, const char *path, int64 order_id,
					  int shipment_no)
{
	Oid			types[4] = {INT8OID, INT4OID, INT4OID, TEXTOID};
	char	   *ipath = psprintf("%s.item_list", path);
	json_object *items = get_container(shipment, "item_list", json_type_array, ipath);
	size_t		n = items ? json_object_array_length(items) : 0;

	su_kept_plan(&shipment_item_plan,
				 "INSERT INTO " SU_SCHEMA ".shipment_items"
				 " (order_id, shipment_no, item_no, merchant_item_id)"
				 " VALUES ($1, $2, $3, $4)",
				 4, types, 0);
	for (size_t j = 0; j < n; j++)
	{
		json_object *item = json_object_array_get_idx(items, j);
		char	   *p = psprintf("%s[%zu]", ipath, j);
		Datum		values[4];
		char		nulls[4] = {' ', ' ', ' ', ' '};
		bool		isnull;

		if (item == NULL || json_object_get_type(item) != json_type_object)
			type_error(p, "an object", item);
		values[0] = Int64GetDatum(order_id);
		values[1] = Int32GetDatum(shipment_no);
		values[2] = Int32GetDatum((int) j);
		values[3] = get_text(item, "merchant_item_id",
							 psprintf("%s.merchant_item_id", p), &isnull);
		nulls[3] = isnull ? 'n' : ' ';
		if (SPI_execute_plan(shipment_item_plan, values, nulls, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not store %s", p);
	}
}

static void
import_shipments(json_object *payload, int64 order_id)
{
	Oid			types[6] = {INT8OID, INT4OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	json_object *list = get_container(payload, "shipping_list", json_type_array,
									  "shipping_list");
	size_t		n = list ? json_object_array_length(list) : 0;

	su_kept_plan(&shipment_plan,
				 "INSERT INTO " SU_SCHEMA ".shipments (order_id, shipment_no,"
				 " tracking_no, express_company, consignor_contact, receiver_contact)"
				 " VALUES ($1, $2, $3, $4, $5, $6)",
				 6, types, 0);
	for (size_t i = 0; i < n; i++)
	{
		json_object *shipment = json_object_array_get_idx(list, i);
		char	   *p = psprintf("shipping_list[%zu]", i);
		char	   *cpath = psprintf("%s.contact", p);
		json_object *contact;
		Datum		values[6];
		char		nulls[6];
		bool		isnull;

		if (shipment == NULL || json_object_get_type(shipment) != json_type_object)
			type_error(p, "an object", shipment);
		contact = get_container(shipment, "contact", json_type_object, cpath);
		memset(nulls, ' ', sizeof(nulls));
		values[0] = Int64GetDatum(order_id);
		values[1] = Int32GetDatum((int) i);
#define TEXT_COL(i, obj, path, k) \
		values[i] = get_text(obj, k, psprintf("%s.%s", path, k), &isnull); \
		nulls[i] = isnull ? 'n' : ' '
		TEXT_COL(2, shipment, p, "tracking_no");
		TEXT_COL(3, shipment, p, "express_company");
		TEXT_COL(4, contact, cpath, "consignor_contact");
		TEXT_COL(5, contact, cpath, "receiver_contact");
#undef TEXT_COL
		if (SPI_execute_plan(shipment_plan, values, nulls, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not store %s", p);
		import_shipment_items(shipment, p, order_id, (int) i);
	}
}

int64
su_import_shipping(json_object *payload, const char *appid)
{
	static const char *const modes[] = {"UNIFIED_DELIVERY", "SPLIT_DELIVERY"};
	Oid			types[2] = {INT8OID, INT4OID};
	Datum		values[2];
	char		nulls[2] = {' ', ' '};
	bool		isnull;
	int64		order_id;

	if (payload == NULL || json_object_get_type(payload) != json_type_object)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the payload must be a JSON object, not %s",
						payload ? su_json_type_phrase(payload) : "null")));

	/* what cannot be stored is refused before anything is looked up */
	values[1] = get_int4(payload, "delivery_mode", "delivery_mode", modes, 2,
						 &isnull);
	nulls[1] = isnull ? 'n' : ' ';

	order_id = su_find_order_by_key(payload, appid, false, false);
	values[0] = Int64GetDatum(order_id);

	su_kept_plan(&upsert_shipping_plan,
				 "INSERT INTO " SU_SCHEMA ".shippings AS s (order_id, delivery_mode)"
				 " VALUES ($1, $2) ON CONFLICT (order_id) DO UPDATE"
				 " SET delivery_mode = EXCLUDED.delivery_mode,"
				 " updated_at = pg_catalog.now()",
				 2, types, 0);
	su_kept_plan(&clear_shipments_plan,
				 "DELETE FROM " SU_SCHEMA ".shipments"
				 " WHERE order_id OPERATOR(pg_catalog.=) $1",
				 1, types, 0);
	if (SPI_execute_plan(upsert_shipping_plan, values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not store the shipping information of order " INT64_FORMAT,
			 order_id);
	/* a previous shipping_list is replaced (its items go with it) */
	if (SPI_execute_plan(clear_shipments_plan, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not replace the shipments of order " INT64_FORMAT, order_id);
	import_shipments(payload, order_id);
	return order_id;
}

/* ---------------------------------------------------------------------
 * Building
 * ---------------------------------------------------------------------
 */

/*
 * The two statements of su_build_shipping_payload_ex(), each with the enum
 * of its columns: C reads them by these numbers (SPI's attnums, from 1), so
 * a column added to a SELECT is added to its enum at the same place.
 */

/* the order with its shippings row, if any; one row, or none */
#define BUILD_ORDER_SQL \
	"SELECT o.order_number_type, o.transaction_id, o.mchid," \
	" o.out_trade_no, o.openid, s.order_id, s.delivery_mode, o.appid," \
	" " SU_SQL_ORDER_ACCEPTED("o") \
	" FROM " SU_SCHEMA ".orders o" \
	" LEFT JOIN " SU_SCHEMA ".shippings s" \
	"  ON s.order_id OPERATOR(pg_catalog.=) o.order_id" \
	" WHERE o.order_id OPERATOR(pg_catalog.=) $1"
enum
{
	Anum_build_order_order_number_type = 1,
	Anum_build_order_transaction_id,
	Anum_build_order_mchid,
	Anum_build_order_out_trade_no,
	Anum_build_order_openid,
	Anum_build_order_shipping_order_id, /* s.order_id: NULL without shippings */
	Anum_build_order_delivery_mode,
	Anum_build_order_appid,
	Anum_build_order_accepted	/* the EXISTS: its current version uploaded */
};

/* su_add_order_key() reads four columns in a row from order_number_type */
StaticAssertDecl(Anum_build_order_transaction_id ==
				 Anum_build_order_order_number_type + 1 &&
				 Anum_build_order_mchid ==
				 Anum_build_order_order_number_type + 2 &&
				 Anum_build_order_out_trade_no ==
				 Anum_build_order_order_number_type + 3,
				 "order key columns not in su_add_order_key()'s order");

/*
 * The shipments x shipment_items join, one row per item (a shipment without
 * items: one row, its item columns NULL), sorted by shipment and item.
 */
#define BUILD_SHIPMENTS_SQL \
	"SELECT sh.shipment_no, sh.tracking_no, sh.express_company," \
	" sh.consignor_contact, sh.receiver_contact," \
	" i.merchant_item_id, i.item_no" \
	" FROM " SU_SCHEMA ".shipments sh" \
	" LEFT JOIN " SU_SCHEMA ".shipment_items i" \
	"  ON i.order_id OPERATOR(pg_catalog.=) sh.order_id" \
	"  AND i.shipment_no OPERATOR(pg_catalog.=) sh.shipment_no" \
	" WHERE sh.order_id OPERATOR(pg_catalog.=) $1" \
	" ORDER BY sh.shipment_no, i.item_no"
enum
{
	Anum_build_shipments_shipment_no = 1,
	Anum_build_shipments_tracking_no,
	Anum_build_shipments_express_company,
	Anum_build_shipments_consignor_contact,
	Anum_build_shipments_receiver_contact,
	Anum_build_shipments_merchant_item_id,
	Anum_build_shipments_item_no	/* NULL: a shipment without items */
};

/* adds a text column as a string member unless NULL (or, when optional, empty) */
static void
add_text_col(json_object *obj, const char *key, HeapTuple tup, TupleDesc desc,
			 int col, bool optional)
{
	char	   *v = SPI_getvalue(tup, desc, col);

	if (v == NULL || (optional && v[0] == '\0'))
		return;
	json_object_object_add(obj, key, json_object_new_string(v));
}

/* one row of shipments x shipment_items; a new shipment when its number changes */
static void
build_shipment_row(json_object *list, json_object **shipment, int *shipment_no,
				   HeapTuple tup, TupleDesc desc)
{
	bool		isnull;
	int			no = DatumGetInt32(SPI_getbinval(tup, desc,
												 Anum_build_shipments_shipment_no,
												 &isnull));
	json_object *items;
	json_object *item;

	if (*shipment == NULL || no != *shipment_no)
	{
		json_object *contact = json_object_new_object();

		*shipment = json_object_new_object();
		*shipment_no = no;
		json_object_array_add(list, *shipment);
		add_text_col(*shipment, "tracking_no", tup, desc,
					 Anum_build_shipments_tracking_no, false);
		add_text_col(*shipment, "express_company", tup, desc,
					 Anum_build_shipments_express_company, false);
		json_object_object_add(*shipment, "contact", contact);
		add_text_col(contact, "consignor_contact", tup, desc,
					 Anum_build_shipments_consignor_contact, true);
		add_text_col(contact, "receiver_contact", tup, desc,
					 Anum_build_shipments_receiver_contact, true);
		if (json_object_object_length(contact) == 0)
			json_object_object_del(*shipment, "contact");
	}
	SPI_getbinval(tup, desc, Anum_build_shipments_item_no, &isnull);
	if (isnull)
		return;					/* a shipment without items */
	if (!json_object_object_get_ex(*shipment, "item_list", &items))
	{
		items = json_object_new_array();
		json_object_object_add(*shipment, "item_list", items);
	}
	item = json_object_new_object();
	json_object_array_add(items, item);
	add_text_col(item, "merchant_item_id", tup, desc,
				 Anum_build_shipments_merchant_item_id, false);
}

/*
 * The shipment rows of a body (plan, with args), read unless the order's
 * row alone (bytes) passes SU_MAX_BODY_BYTES; returns bytes plus theirs,
 * counted from the rows' headers until the cap is passed.  *rows stays
 * NULL when they are not read.
 */
static size_t
shipment_rows(SPIPlanPtr plan, Datum *args, int64 order_id, size_t bytes,
			  SPITupleTable **rows, uint64 *n)
{
	if (bytes > SU_MAX_BODY_BYTES)
		return bytes;
	if (SPI_execute_plan(plan, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the shipments of order " INT64_FORMAT, order_id);
	*rows = SPI_tuptable;
	*n = SPI_processed;
	for (uint64 r = 0; r < *n && bytes <= SU_MAX_BODY_BYTES; r++)
		bytes += su_row_bytes((*rows)->vals[r], (*rows)->tupdesc);
	return bytes;
}

json_object *
su_build_shipping_payload(int64 order_id, TimestampTz upload_time)
{
	return su_build_shipping_payload_ex(order_id, upload_time, false, NULL, NULL,
										NULL);
}

json_object *
su_build_shipping_payload_ex(int64 order_id, TimestampTz upload_time,
							 bool quiet, char **appid, bool *accepted,
							 bool *oversized)
{
	size_t		bytes;
	SPITupleTable *ship_tt = NULL;
	uint64		n_ship = 0;
	Oid			argtypes[1] = {INT8OID};
	Datum		args[1] = {Int64GetDatum(order_id)};
	json_object *root;
	json_object *payer;
	json_object *list;
	json_object *shipment = NULL;
	int			shipment_no = -1;
	SPITupleTable *tt;
	HeapTuple	tup;
	bool		isnull;
	Datum		mode;

	su_kept_plan(&build_order_plan, BUILD_ORDER_SQL, 1, argtypes, 0);
	su_kept_plan(&build_shipments_plan, BUILD_SHIPMENTS_SQL, 1, argtypes, 0);

	/*
	 * Both queries read one snapshot, taken after whatever the caller wrote
	 * (as su_build_payloads() does): the order and its shipments of one
	 * version.
	 */
	CommandCounterIncrement();
	PushActiveSnapshot(GetTransactionSnapshot());

	if (SPI_execute_plan(build_order_plan, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read order " INT64_FORMAT, order_id);
	if (SPI_processed == 0 && quiet)
	{
		PopActiveSnapshot();
		return NULL;
	}
	if (SPI_processed == 0)
		su_order_missing(order_id);
	tt = SPI_tuptable;
	tup = tt->vals[0];
	SPI_getbinval(tup, tt->tupdesc, Anum_build_order_shipping_order_id, &isnull);
	if (isnull && quiet)
	{
		PopActiveSnapshot();
		return NULL;
	}
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("order " INT64_FORMAT " has no shipping information", order_id),
				 errhint("Store it with shopping_upload.import_shipping().")));

	if (accepted)
		*accepted = DatumGetBool(SPI_getbinval(tup, tt->tupdesc,
											   Anum_build_order_accepted, &isnull));
	if (appid)
		*appid = NULL;
	if (oversized)
		*oversized = false;

	/*
	 * The body is capped before it is built, from the rows' sizes read in
	 * their headers: an order whose payer or key is tens of megabytes, or a
	 * shipment with such a tracking_no, would cost the worker that much, and
	 * more, at every attempt.
	 */
	bytes = shipment_rows(build_shipments_plan, args, order_id,
						  su_row_bytes(tup, tt->tupdesc), &ship_tt, &n_ship);
	PopActiveSnapshot();
	if (bytes > SU_MAX_BODY_BYTES)
	{
		if (ship_tt)
			SPI_freetuptable(ship_tt);
		SPI_freetuptable(tt);
		if (oversized == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("the shipping information of order " INT64_FORMAT " is over %d bytes",
							order_id, SU_MAX_BODY_BYTES),
					 errdetail("A body holds at most %d bytes: it is not built.",
							   SU_MAX_BODY_BYTES)));
		*oversized = true;
		root = json_object_new_object();
		su_json_track(root);
		return root;
	}

	if (appid)
	{
		*appid = SPI_getvalue(tup, tt->tupdesc, Anum_build_order_appid);
		if (*appid == NULL && su_appid != NULL && su_appid[0] != '\0')
			*appid = pstrdup(su_appid);
	}
	root = json_object_new_object();
	su_json_track(root);
	su_add_order_key(root, tup, tt->tupdesc, Anum_build_order_order_number_type);
	payer = json_object_new_object();
	json_object_object_add(root, "payer", payer);
	add_text_col(payer, "openid", tup, tt->tupdesc, Anum_build_order_openid, false);
	json_object_object_add(root, "upload_time",
						   json_object_new_string(su_format_upload_time(upload_time)));
	mode = SPI_getbinval(tup, tt->tupdesc, Anum_build_order_delivery_mode, &isnull);
	if (!isnull)
		json_object_object_add(root, "delivery_mode",
							   json_object_new_int64(DatumGetInt32(mode)));
	list = json_object_new_array();
	json_object_object_add(root, "shipping_list", list);
	for (uint64 r = 0; r < n_ship; r++)
		build_shipment_row(list, &shipment, &shipment_no, ship_tt->vals[r],
						   ship_tt->tupdesc);
	SPI_freetuptable(ship_tt);
	SPI_freetuptable(tt);
	return root;
}

/* ---------------------------------------------------------------------
 * The order shipping management service's body (/wxa/sec/order)
 * ---------------------------------------------------------------------
 */

/*
 * The order with its shippings row: the order's logistics_type unless the
 * shipping information gives one (1, express, when neither does: WeChat's
 * default for the upload).
 */
#define BUILD_TRADE_ORDER_SQL \
	"SELECT o.order_number_type, o.transaction_id, o.mchid," \
	" o.out_trade_no, o.openid, s.order_id, s.delivery_mode," \
	" coalesce(s.logistics_type, o.logistics_type, 1), s.is_all_delivered" \
	" FROM " SU_SCHEMA ".orders o" \
	" LEFT JOIN " SU_SCHEMA ".shippings s" \
	"  ON s.order_id OPERATOR(pg_catalog.=) o.order_id" \
	" WHERE o.order_id OPERATOR(pg_catalog.=) $1"
enum
{
	Anum_trade_order_order_number_type = 1,
	Anum_trade_order_transaction_id,
	Anum_trade_order_mchid,
	Anum_trade_order_out_trade_no,
	Anum_trade_order_openid,
	Anum_trade_order_shipping_order_id, /* NULL without shippings */
	Anum_trade_order_delivery_mode,
	Anum_trade_order_logistics_type,
	Anum_trade_order_is_all_delivered
};

StaticAssertDecl(Anum_trade_order_transaction_id ==
				 Anum_trade_order_order_number_type + 1 &&
				 Anum_trade_order_mchid ==
				 Anum_trade_order_order_number_type + 2 &&
				 Anum_trade_order_out_trade_no ==
				 Anum_trade_order_order_number_type + 3,
				 "order key columns not in su_add_order_key()'s order");

/*
 * The description of the items of o (an order_id) that w selects: name*
 * quantity (the name alone without a quantity), in the order's order,
 * joined by ';' and cut to SU_TRADE_ITEM_DESC_MAX characters, ending with
 * "..." when cut, as WeChat's own descriptions do.  NULL: no named item.
 */
#define SU_SQL_ITEM_DESC(o, w) \
	"(SELECT CASE WHEN pg_catalog.char_length(d.t) OPERATOR(pg_catalog.>) 120" \
	"  THEN pg_catalog.left(d.t, 117) OPERATOR(pg_catalog.||) '...' ELSE d.t END" \
	" FROM (SELECT pg_catalog.string_agg(i.name OPERATOR(pg_catalog.||)" \
	"   coalesce('*' OPERATOR(pg_catalog.||) CAST(i.quantity AS pg_catalog.text), '')," \
	"   ';' ORDER BY i.sub_order_no, i.item_no) AS t" \
	"  FROM " SU_SCHEMA ".items i" \
	"  WHERE i.order_id OPERATOR(pg_catalog.=) " o \
	"  AND i.name OPERATOR(pg_catalog.<>) '' AND (" w ")) d)"

/*
 * A parcel's items: those of its shipment_items, or all the order's when it
 * lists none (a unified delivery).
 */
#define TRADE_PARCEL_ITEMS \
	"NOT EXISTS (SELECT FROM " SU_SCHEMA ".shipment_items si" \
	"  WHERE si.order_id OPERATOR(pg_catalog.=) sh.order_id" \
	"  AND si.shipment_no OPERATOR(pg_catalog.=) sh.shipment_no)" \
	" OR i.merchant_item_id OPERATOR(pg_catalog.=) ANY (ARRAY(" \
	"  SELECT si.merchant_item_id FROM " SU_SCHEMA ".shipment_items si" \
	"  WHERE si.order_id OPERATOR(pg_catalog.=) sh.order_id" \
	"  AND si.shipment_no OPERATOR(pg_catalog.=) sh.shipment_no))"

/*
 * The parcels, in shipment order; virtual goods and pick-up (logistics_type
 * 3 and 4, $2) without any shipment row: one parcel of the whole order,
 * with only its description.
 */
#define BUILD_TRADE_PARCELS_SQL \
	"SELECT sh.shipment_no, sh.tracking_no, sh.express_company," \
	" sh.consignor_contact, sh.receiver_contact," \
	" coalesce(NULLIF(sh.item_desc, ''), " \
	SU_SQL_ITEM_DESC("sh.order_id", TRADE_PARCEL_ITEMS) ")" \
	" FROM " SU_SCHEMA ".shipments sh" \
	" WHERE sh.order_id OPERATOR(pg_catalog.=) $1" \
	" UNION ALL" \
	" SELECT 0, NULL, NULL, NULL, NULL, " SU_SQL_ITEM_DESC("$1", "true") \
	" WHERE $2 OPERATOR(pg_catalog.>=) 3 AND NOT EXISTS (SELECT FROM " \
	SU_SCHEMA ".shipments sh WHERE sh.order_id OPERATOR(pg_catalog.=) $1)" \
	" ORDER BY 1"
enum
{
	Anum_trade_parcel_shipment_no = 1,
	Anum_trade_parcel_tracking_no,
	Anum_trade_parcel_express_company,
	Anum_trade_parcel_consignor_contact,
	Anum_trade_parcel_receiver_contact,
	Anum_trade_parcel_item_desc
};

static SPIPlanPtr trade_order_plan = NULL;
static SPIPlanPtr trade_parcels_plan = NULL;

static void
build_trade_parcel(json_object *list, HeapTuple tup, TupleDesc desc)
{
	json_object *parcel = json_object_new_object();
	json_object *contact = json_object_new_object();

	json_object_array_add(list, parcel);
	add_text_col(parcel, "tracking_no", tup, desc,
				 Anum_trade_parcel_tracking_no, true);
	add_text_col(parcel, "express_company", tup, desc,
				 Anum_trade_parcel_express_company, true);
	add_text_col(parcel, "item_desc", tup, desc,
				 Anum_trade_parcel_item_desc, false);
	json_object_object_add(parcel, "contact", contact);
	add_text_col(contact, "consignor_contact", tup, desc,
				 Anum_trade_parcel_consignor_contact, true);
	add_text_col(contact, "receiver_contact", tup, desc,
				 Anum_trade_parcel_receiver_contact, true);
	if (json_object_object_length(contact) == 0)
		json_object_object_del(parcel, "contact");
}

json_object *
su_build_trade_shipping_payload(int64 order_id, TimestampTz upload_time)
{
	return su_build_trade_shipping_payload_ex(order_id, upload_time, false, NULL);
}

json_object *
su_build_trade_shipping_payload_ex(int64 order_id, TimestampTz upload_time,
								   bool quiet, bool *oversized)
{
	Oid			order_types[1] = {INT8OID};
	Oid			parcel_types[2] = {INT8OID, INT4OID};
	Datum		args[2] = {Int64GetDatum(order_id), 0};
	SPITupleTable *tt;
	SPITupleTable *parcels = NULL;
	uint64		n_parcels = 0;
	HeapTuple	tup;
	bool		isnull;
	Datum		v;
	size_t		bytes;
	json_object *root;
	json_object *payer;
	json_object *list;

	su_kept_plan(&trade_order_plan, BUILD_TRADE_ORDER_SQL, 1, order_types, 0);
	su_kept_plan(&trade_parcels_plan, BUILD_TRADE_PARCELS_SQL, 2, parcel_types, 0);

	/* one snapshot for both, after whatever the caller wrote */
	CommandCounterIncrement();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_execute_plan(trade_order_plan, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read order " INT64_FORMAT, order_id);
	if (oversized)
		*oversized = false;
	if (SPI_processed == 0 && quiet)
	{
		PopActiveSnapshot();
		return NULL;
	}
	if (SPI_processed == 0)
		su_order_missing(order_id);
	tt = SPI_tuptable;
	tup = tt->vals[0];
	SPI_getbinval(tup, tt->tupdesc, Anum_trade_order_shipping_order_id, &isnull);
	if (isnull && quiet)
	{
		PopActiveSnapshot();
		return NULL;
	}
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("order " INT64_FORMAT " has no shipping information", order_id),
				 errhint("Store it in shopping_upload.shippings and shipments, or with shopping_upload.import_shipping().")));
	args[1] = SPI_getbinval(tup, tt->tupdesc, Anum_trade_order_logistics_type, &isnull);

	/* capped before it is built, as su_build_shipping_payload_ex() does */
	bytes = shipment_rows(trade_parcels_plan, args, order_id,
						  su_row_bytes(tup, tt->tupdesc), &parcels, &n_parcels);
	PopActiveSnapshot();
	if (bytes > SU_MAX_BODY_BYTES && oversized)
	{
		if (parcels)
			SPI_freetuptable(parcels);
		SPI_freetuptable(tt);
		*oversized = true;
		root = json_object_new_object();
		su_json_track(root);
		return root;
	}
	if (bytes > SU_MAX_BODY_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("the shipping information of order " INT64_FORMAT " is over %d bytes",
						order_id, SU_MAX_BODY_BYTES),
				 errdetail("A body holds at most %d bytes: it is not built.",
						   SU_MAX_BODY_BYTES)));

	root = json_object_new_object();
	su_json_track(root);
	su_add_order_key(root, tup, tt->tupdesc, Anum_trade_order_order_number_type);
	json_object_object_add(root, "logistics_type",
						   json_object_new_int64(DatumGetInt32(args[1])));
	v = SPI_getbinval(tup, tt->tupdesc, Anum_trade_order_delivery_mode, &isnull);
	if (!isnull)
		json_object_object_add(root, "delivery_mode",
							   json_object_new_int64(DatumGetInt32(v)));
	v = SPI_getbinval(tup, tt->tupdesc, Anum_trade_order_is_all_delivered, &isnull);
	if (!isnull)
		json_object_object_add(root, "is_all_delivered",
							   json_object_new_boolean(DatumGetBool(v)));
	list = json_object_new_array();
	json_object_object_add(root, "shipping_list", list);
	for (uint64 r = 0; r < n_parcels; r++)
		build_trade_parcel(list, parcels->vals[r], parcels->tupdesc);
	json_object_object_add(root, "upload_time",
						   json_object_new_string(su_format_upload_time(upload_time)));
	payer = json_object_new_object();
	json_object_object_add(root, "payer", payer);
	add_text_col(payer, "openid", tup, tt->tupdesc, Anum_trade_order_openid, false);
	if (parcels)
		SPI_freetuptable(parcels);
	SPI_freetuptable(tt);
	return root;
}

/*
 * The delivery_ids of delivery_companies, copied into cxt; NULL (the rule
 * skipped) while the table is empty.  SPI must be connected.
 */
char	  **
su_delivery_ids(MemoryContext cxt, int *n)
{
	char	  **ids;

	*n = 0;
	if (SPI_execute("SELECT d.delivery_id FROM " SU_SCHEMA ".delivery_companies d"
					" WHERE d.delivery_id IS NOT NULL", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read shopping_upload.delivery_companies");
	if (SPI_processed == 0)
		return NULL;
	ids = MemoryContextAlloc(cxt, sizeof(char *) * SPI_processed);
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		char	   *v = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1);

		ids[(*n)++] = MemoryContextStrdup(cxt, v);
	}
	SPI_freetuptable(SPI_tuptable);
	return ids;
}

/*
 * The query key of get_order and notify_confirm_receive: transaction_id,
 * or merchant_id + merchant_trade_no (the order_key's parts under other
 * names), with the order's appid, its shippings' received_at and
 * logistics_type.
 */
#define BUILD_TRADE_QUERY_SQL \
	"SELECT o.order_number_type, o.transaction_id, o.mchid, o.out_trade_no, o.appid," \
	" h.received_at, coalesce(h.logistics_type, o.logistics_type, 1)" \
	" FROM " SU_SCHEMA ".orders o" \
	" LEFT JOIN " SU_SCHEMA ".shippings h ON h.order_id OPERATOR(pg_catalog.=) o.order_id" \
	" WHERE o.order_id OPERATOR(pg_catalog.=) $1"
enum
{
	Anum_trade_query_order_number_type = 1,
	Anum_trade_query_transaction_id,
	Anum_trade_query_mchid,
	Anum_trade_query_out_trade_no,
	Anum_trade_query_appid,
	Anum_trade_query_received_at,
	Anum_trade_query_logistics_type
};

json_object *
su_build_trade_query_payload(int64 order_id, char **appid,
							 TimestampTz *received_at, int *logistics_type)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[1] = {INT8OID};
	Datum		args[1] = {Int64GetDatum(order_id)};
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum		v;
	json_object *root;
	int			type;

	su_kept_plan(&plan, BUILD_TRADE_QUERY_SQL, 1, types, 0);
	if (SPI_execute_plan(plan, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read order " INT64_FORMAT, order_id);
	if (SPI_processed == 0)
		return NULL;
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	root = json_object_new_object();
	su_json_track(root);
	v = SPI_getbinval(tup, desc, Anum_trade_query_order_number_type, &isnull);
	type = isnull ? 0 : DatumGetInt32(v);
	if (type == 2)
		add_text_col(root, "transaction_id", tup, desc,
					 Anum_trade_query_transaction_id, true);
	else
	{
		add_text_col(root, "merchant_id", tup, desc, Anum_trade_query_mchid, true);
		add_text_col(root, "merchant_trade_no", tup, desc,
					 Anum_trade_query_out_trade_no, true);
	}
	*appid = SPI_getvalue(tup, desc, Anum_trade_query_appid);
	if (*appid == NULL && su_appid != NULL && su_appid[0] != '\0')
		*appid = pstrdup(su_appid);
	v = SPI_getbinval(tup, desc, Anum_trade_query_received_at, &isnull);
	*received_at = isnull ? 0 : DatumGetTimestampTz(v);
	v = SPI_getbinval(tup, desc, Anum_trade_query_logistics_type, &isnull);
	*logistics_type = isnull ? 0 : DatumGetInt32(v);
	SPI_freetuptable(SPI_tuptable);
	return root;
}
