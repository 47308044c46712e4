/*-------------------------------------------------------------------------
 *
 * payload.c
 *		Order tables <-> uploadShoppingInfo payload, with json-c.
 *
 * Building reads an order with two prepared SPI queries and writes the
 * payload's wire form: integers for order_number_type and logistics_type,
 * names for link types, optional fields left out when empty.
 *
 * Importing reads an API-shaped payload (enum aliases accepted) and stores
 * it as it is, rules broken or not; only JSON that cannot be stored at all
 * (a wrong JSON type) is refused, with an error naming the field.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <json-c/json.h>

#include "catalog/pg_type.h"
#include "access/detoast.h"
#include "access/xact.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/datetime.h"
#include "utils/lsyscache.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/snapmgr.h"

#include "json_util.h"
#include "payload.h"
#include "common.h"
#include "settings.h"
#include "validate.h"
#include "spi_util.h"
#include "queue_sql.h"

char *
su_format_upload_time(TimestampTz t)
{
	struct pg_tm tm;
	fsec_t		fsec;
	int			tz;
	int			off;

	if (timestamp2tm(t, &tz, &tm, &fsec, NULL, NULL) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("upload_time is out of range")));
	off = -tz;					/* timestamp2tm's tz is seconds west */
	return psprintf("%04d-%02d-%02dT%02d:%02d:%02d.%03d%c%02d:%02d",
					tm.tm_year, tm.tm_mon, tm.tm_mday,
					tm.tm_hour, tm.tm_min, tm.tm_sec, (int) (fsec / 1000),
					off < 0 ? '-' : '+', abs(off) / 3600, (abs(off) % 3600) / 60);
}

/* ---------------------------------------------------------------------
 * SPI helpers
 * ---------------------------------------------------------------------
 */

static char *
su_datum_text(Datum d)
{
	text	   *t = (text *) PG_DETOAST_DATUM_PACKED(d);

	return pnstrdup(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
}

/* a short column (appid) of an oversized row: read unless it is itself large */
static char *
su_col_text_capped(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	if (isnull || toast_raw_datum_size(d) > 1024)
		return NULL;
	return su_datum_text(d);
}

/* column value as a string, or NULL */
static char *
su_col_text(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	return isnull ? NULL : su_datum_text(d);
}

/* ---------------------------------------------------------------------
 * Building
 * ---------------------------------------------------------------------
 */

static SPIPlanPtr order_plan = NULL;
static SPIPlanPtr lines_plan = NULL;

/*
 * The two statements of su_build_payloads(), each with the enum of its
 * columns: C reads them by these numbers (SPI's attnums, from 1), so a column
 * added to a SELECT is added to its enum at the same place.
 *
 * One index lookup per order, whatever the statistics say: "= ANY ($1)"
 * is planned as a scan of a large part of the tables until they have been
 * analyzed; the OFFSET 0 fences keep the lookups apart, so that the plan
 * stays good as the tables grow, and can be kept.  The order's version is
 * read with its content, in the same snapshot: the version recorded for
 * an upload is the one whose content was sent.
 */

/* the orders, one row each, sorted by order_id */
#define ORDER_SQL \
	"SELECT o.order_id, o.order_number_type, o.transaction_id," \
	" o.mchid, o.out_trade_no, o.openid, o.logistics_type, o.appid," \
	" " SU_SQL_ORDER_VERSION("o") \
	" FROM pg_catalog.unnest($1) AS k(order_id), LATERAL" \
	" (SELECT * FROM " SU_SCHEMA ".orders o" \
	"  WHERE o.order_id OPERATOR(pg_catalog.=) k.order_id OFFSET 0) o" \
	" ORDER BY k.order_id"
enum
{
	Anum_order_order_id = 1,
	Anum_order_order_number_type,
	Anum_order_transaction_id,
	Anum_order_mchid,
	Anum_order_out_trade_no,
	Anum_order_openid,
	Anum_order_logistics_type,
	Anum_order_appid,
	Anum_order_version			/* order_state.version, NULL if none */
};

/* su_add_order_key() reads four columns in a row from order_number_type */
StaticAssertDecl(Anum_order_transaction_id == Anum_order_order_number_type + 1 &&
				 Anum_order_mchid == Anum_order_order_number_type + 2 &&
				 Anum_order_out_trade_no == Anum_order_order_number_type + 3,
				 "order key columns not in su_add_order_key()'s order");

/*
 * The sub-orders x items join, one row per item (a sub-order without items:
 * one row, its item columns NULL), sorted by order, sub-order and item.  The
 * links of the sub-order and of the item have the same column names in their
 * tables: they are told apart with sub_ and item_.
 */
#define LINES_SQL \
	"SELECT k.order_id, l.sub_order_no, l.merchant_order_no," \
	" l.sub_link_type, l.sub_link_url, l.sub_link_appid, l.sub_link_path," \
	" l.merchant_item_id, l.name, l.description, l.unit_price," \
	" l.quantity, l.image_url," \
	" l.item_link_type, l.item_link_url, l.item_link_appid, l.item_link_path," \
	" l.item_no" \
	" FROM pg_catalog.unnest($1) AS k(order_id), LATERAL" \
	" (SELECT s.sub_order_no, s.merchant_order_no," \
	"  s.link_type AS sub_link_type, s.link_url AS sub_link_url," \
	"  s.link_appid AS sub_link_appid, s.link_path AS sub_link_path," \
	"  i.merchant_item_id, i.name, i.description, i.unit_price," \
	"  i.quantity, i.image_url," \
	"  i.link_type AS item_link_type, i.link_url AS item_link_url," \
	"  i.link_appid AS item_link_appid, i.link_path AS item_link_path," \
	"  i.item_no" \
	"  FROM " SU_SCHEMA ".sub_orders s" \
	"  LEFT JOIN " SU_SCHEMA ".items i" \
	"   ON i.order_id OPERATOR(pg_catalog.=) s.order_id" \
	"   AND i.sub_order_no OPERATOR(pg_catalog.=) s.sub_order_no" \
	"  WHERE s.order_id OPERATOR(pg_catalog.=) k.order_id OFFSET 0) l" \
	" ORDER BY k.order_id, l.sub_order_no, l.item_no"
enum
{
	Anum_lines_order_id = 1,
	Anum_lines_sub_order_no,
	Anum_lines_merchant_order_no,
	Anum_lines_sub_link_type,
	Anum_lines_sub_link_url,
	Anum_lines_sub_link_appid,
	Anum_lines_sub_link_path,
	Anum_lines_merchant_item_id,
	Anum_lines_name,
	Anum_lines_description,
	Anum_lines_unit_price,
	Anum_lines_quantity,
	Anum_lines_image_url,
	Anum_lines_item_link_type,
	Anum_lines_item_link_url,
	Anum_lines_item_link_appid,
	Anum_lines_item_link_path,
	Anum_lines_item_no			/* NULL: a sub-order without items */
};

/* build_link() reads four columns in a row from a link's type */
StaticAssertDecl(Anum_lines_sub_link_url == Anum_lines_sub_link_type + 1 &&
				 Anum_lines_sub_link_appid == Anum_lines_sub_link_type + 2 &&
				 Anum_lines_sub_link_path == Anum_lines_sub_link_type + 3,
				 "sub-order link columns not in build_link()'s order");
StaticAssertDecl(Anum_lines_item_link_url == Anum_lines_item_link_type + 1 &&
				 Anum_lines_item_link_appid == Anum_lines_item_link_type + 2 &&
				 Anum_lines_item_link_path == Anum_lines_item_link_type + 3,
				 "item link columns not in build_link()'s order");

/* adds a string member unless NULL (or, when optional, empty) */
static void
add_string(json_object *obj, const char *key, const char *value, bool optional)
{
	if (value == NULL || (optional && value[0] == '\0'))
		return;
	json_object_object_add(obj, key, json_object_new_string(value));
}

static void
add_int_col(json_object *obj, const char *key, HeapTuple tup, TupleDesc desc,
			int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	if (isnull)
		return;
	if (SPI_gettypeid(desc, col) == INT4OID)
		json_object_object_add(obj, key, json_object_new_int64(DatumGetInt32(d)));
	else
		json_object_object_add(obj, key, json_object_new_int64(DatumGetInt64(d)));
}

/* a link object from four columns (type, url, appid, path); NULL if all NULL */
static json_object *
build_link(HeapTuple tup, TupleDesc desc, int first)
{
	static const char *const keys[] = {"type", "url", "appid", "path"};
	json_object *link = NULL;

	for (int i = 0; i < 4; i++)
	{
		char	   *v = su_col_text(tup, desc, first + i);

		if (v == NULL)
			continue;
		if (link == NULL)
			link = json_object_new_object();
		json_object_object_add(link, keys[i], json_object_new_string(v));
	}
	return link;
}

static json_object *
build_image_urls(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);
	json_object *arr = json_object_new_array();
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	if (isnull)
		return arr;
	deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
		if (!nulls[i])
			json_object_array_add(arr,
								  json_object_new_string(su_datum_text(elems[i])));
	return arr;
}

/* the orders to build, sorted by order_id, with their place in the caller's arrays */
typedef struct BuildSlot
{
	int64		order_id;
	int			pos;
	int			sub_no;			/* the sub-order being filled, or -1 */
	json_object *items;			/* its item_list */
	size_t		bytes;			/* text read so far */
	bool		oversized;		/* over SU_MAX_BODY_BYTES: building stopped */
} BuildSlot;

/*
 * The bytes of a row's text and arrays, read from their headers (nothing is
 * detoasted): an order over the cap is refused before it is built.
 */
size_t
su_row_bytes(HeapTuple tup, TupleDesc desc)
{
	size_t		total = 0;

	for (int col = 1; col <= desc->natts; col++)
	{
		bool		isnull;
		Datum		d;

		if (TupleDescAttr(desc, col - 1)->attlen != -1)
			continue;
		d = SPI_getbinval(tup, desc, col, &isnull);
		if (!isnull)
			total += toast_raw_datum_size(d);
	}
	return total;
}

/* counts a row against the slot's cap; false (and oversized) once over */
static bool
take_bytes(BuildSlot *slot, HeapTuple tup, TupleDesc desc)
{
	if (slot->oversized)
		return false;
	slot->bytes += su_row_bytes(tup, desc);
	if (slot->bytes > SU_MAX_BODY_BYTES)
		slot->oversized = true;
	return !slot->oversized;
}

static int
slot_cmp(const void *a, const void *b)
{
	int64		x = ((const BuildSlot *) a)->order_id;
	int64		y = ((const BuildSlot *) b)->order_id;

	return x < y ? -1 : (x > y ? 1 : 0);
}

/* the slot of order_id, moving forward from *k (results come sorted) */
static BuildSlot *
find_slot(BuildSlot *slots, int n, int *k, int64 order_id)
{
	while (*k < n && slots[*k].order_id < order_id)
		(*k)++;
	return (*k < n && slots[*k].order_id == order_id) ? &slots[*k] : NULL;
}

void
su_add_order_key(json_object *root, HeapTuple tup, TupleDesc desc, int first)
{
	json_object *key = json_object_new_object();

	/* owned by root at once: freed with it if reading a column fails */
	json_object_object_add(root, "order_key", key);
	add_int_col(key, "order_number_type", tup, desc, first);
	add_string(key, "transaction_id", su_col_text(tup, desc, first + 1), true);
	add_string(key, "mchid", su_col_text(tup, desc, first + 2), true);
	add_string(key, "out_trade_no", su_col_text(tup, desc, first + 3), true);
}

/* the order's row: order_key, an empty order_list, payer, logistics_type, upload_time */
static json_object *
build_order(HeapTuple tup, TupleDesc desc, TimestampTz upload_time, char **appid)
{
	json_object *root = json_object_new_object();
	json_object *payer = json_object_new_object();

	su_json_track(root);
	su_add_order_key(root, tup, desc, Anum_order_order_number_type);
	json_object_object_add(root, "order_list", json_object_new_array());
	add_string(payer, "openid", su_col_text(tup, desc, Anum_order_openid), false);
	json_object_object_add(root, "payer", payer);
	add_int_col(root, "logistics_type", tup, desc, Anum_order_logistics_type);
	add_string(root, "upload_time", su_format_upload_time(upload_time), false);

	*appid = su_col_text(tup, desc, Anum_order_appid);
	if (*appid == NULL && su_appid != NULL && su_appid[0] != '\0')
		*appid = pstrdup(su_appid);
	return root;
}

/* one row of the sub-orders x items join, added to the order's order_list */
static void
build_line(json_object *root, BuildSlot *slot, HeapTuple tup, TupleDesc desc)
{
	json_object *item;
	json_object *link;
	bool		isnull;
	int			sub_no = DatumGetInt32(SPI_getbinval(tup, desc, Anum_lines_sub_order_no,
													 &isnull));

	/* a new sub-order when its number changes (rows come sorted) */
	if (slot->items == NULL || sub_no != slot->sub_no)
	{
		json_object *sub = json_object_new_object();

		add_string(sub, "merchant_order_no",
				   su_col_text(tup, desc, Anum_lines_merchant_order_no), false);
		if ((link = build_link(tup, desc, Anum_lines_sub_link_type)) != NULL)
			json_object_object_add(sub, "order_detail_jump_link", link);
		slot->items = json_object_new_array();
		slot->sub_no = sub_no;
		json_object_object_add(sub, "item_list", slot->items);
		json_object_array_add(json_object_object_get(root, "order_list"), sub);
	}
	SPI_getbinval(tup, desc, Anum_lines_item_no, &isnull);
	if (isnull)
		return;					/* a sub-order without items */

	item = json_object_new_object();
	add_string(item, "merchant_item_id",
			   su_col_text(tup, desc, Anum_lines_merchant_item_id), false);
	add_string(item, "name", su_col_text(tup, desc, Anum_lines_name), false);
	add_string(item, "description",
			   su_col_text(tup, desc, Anum_lines_description), true);
	add_int_col(item, "unit_price", tup, desc, Anum_lines_unit_price);
	add_int_col(item, "quantity", tup, desc, Anum_lines_quantity);
	json_object_object_add(item, "image_url",
						   build_image_urls(tup, desc, Anum_lines_image_url));
	if ((link = build_link(tup, desc, Anum_lines_item_link_type)) != NULL)
		json_object_object_add(item, "item_detail_jump_link", link);
	json_object_array_add(slot->items, item);
}

void
su_build_payloads(int n, const int64 *order_ids, const TimestampTz *upload_times,
				  MemoryContext *cxts, json_object **out, char **appids,
				  int64 *versions, bool *oversized)
{
	Oid			argtypes[1] = {INT8ARRAYOID};
	Datum		args[1];
	Datum	   *ids = palloc(sizeof(Datum) * n);
	BuildSlot  *slots = palloc(sizeof(BuildSlot) * n);
	MemoryContext caller = CurrentMemoryContext;	/* SPI calls leave it */
	SPITupleTable *tt;
	int			k = 0;

	su_kept_plan(&order_plan, ORDER_SQL, 1, argtypes, CURSOR_OPT_GENERIC_PLAN);
	su_kept_plan(&lines_plan, LINES_SQL, 1, argtypes, CURSOR_OPT_GENERIC_PLAN);

	MemoryContextSwitchTo(caller);
	for (int i = 0; i < n; i++)
	{
		ids[i] = Int64GetDatum(order_ids[i]);
		slots[i].order_id = order_ids[i];
		slots[i].pos = i;
		slots[i].sub_no = -1;
		slots[i].items = NULL;
		slots[i].bytes = 0;
		slots[i].oversized = false;
		out[i] = NULL;
		appids[i] = NULL;
		if (versions)
			versions[i] = 0;
	}
	qsort(slots, n, sizeof(BuildSlot), slot_cmp);
	args[0] = su_array(ids, NULL, n, INT8OID);

	/*
	 * Both queries read one snapshot, taken now: later than whatever the
	 * caller wrote (a claim, an attempt's start), so that an order committed
	 * before it is seen, and the same for both, so that an order and its
	 * lines are of one version.
	 */
	CommandCounterIncrement();
	PushActiveSnapshot(GetTransactionSnapshot());

	if (SPI_execute_plan(order_plan, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the orders to upload");
	tt = SPI_tuptable;
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(tt->vals[r], tt->tupdesc,
													 Anum_order_order_id, &isnull));
		BuildSlot  *slot = find_slot(slots, n, &k, id);
		Datum		version;

		if (slot == NULL)
			continue;
		MemoryContextSwitchTo(cxts ? cxts[slot->pos] : caller);
		if (take_bytes(slot, tt->vals[r], tt->tupdesc))
			out[slot->pos] = build_order(tt->vals[r], tt->tupdesc,
										 upload_times[slot->pos], &appids[slot->pos]);
		else
		{
			/* what is sent nowhere, and audited: the order's place only */
			out[slot->pos] = json_object_new_object();
			su_json_track(out[slot->pos]);
			appids[slot->pos] = su_col_text_capped(tt->vals[r], tt->tupdesc,
												   Anum_order_appid);
		}
		version = SPI_getbinval(tt->vals[r], tt->tupdesc, Anum_order_version, &isnull);
		if (versions && !isnull)
			versions[slot->pos] = DatumGetInt64(version);
	}
	SPI_freetuptable(tt);

	if (SPI_execute_plan(lines_plan, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the sub-orders of the orders to upload");
	PopActiveSnapshot();
	tt = SPI_tuptable;
	k = 0;
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(tt->vals[r], tt->tupdesc,
													 Anum_lines_order_id, &isnull));
		BuildSlot  *slot = find_slot(slots, n, &k, id);

		if (slot == NULL || out[slot->pos] == NULL ||
			!take_bytes(slot, tt->vals[r], tt->tupdesc))
			continue;
		MemoryContextSwitchTo(cxts ? cxts[slot->pos] : caller);
		build_line(out[slot->pos], slot, tt->vals[r], tt->tupdesc);
	}
	SPI_freetuptable(tt);
	MemoryContextSwitchTo(caller);
	for (int i = 0; i < n && oversized; i++)
		oversized[slots[i].pos] = slots[i].oversized;
}

json_object *
su_build_payload(int64 order_id, TimestampTz upload_time, char **appid,
				 bool missing_ok)
{
	json_object *payload;
	char	   *order_appid;

	bool		oversized;

	su_build_payloads(1, &order_id, &upload_time, NULL, &payload, &order_appid,
					  NULL, &oversized);
	if (payload == NULL && !missing_ok)
		su_order_missing(order_id);
	if (oversized)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("order " INT64_FORMAT " is too large to upload", order_id),
				 errdetail("Its text is over %d bytes; WeChat takes a body of at most that much.",
						   SU_MAX_BODY_BYTES),
				 errhint("An upload answers errcode 45002 and the order is rejected until it changes.")));
	if (appid)
		*appid = order_appid;
	return payload;
}

/* ---------------------------------------------------------------------
 * Importing
 * ---------------------------------------------------------------------
 */

static SPIPlanPtr insert_plan = NULL;
static SPIPlanPtr upsert_merchant_plan = NULL;
static SPIPlanPtr upsert_transaction_plan = NULL;
static SPIPlanPtr upsert_merchant_long_plan = NULL;
static SPIPlanPtr upsert_transaction_long_plan = NULL;
static SPIPlanPtr clear_plan = NULL;
static SPIPlanPtr sub_plan = NULL;
static SPIPlanPtr item_plan = NULL;

/* the bytes of a text value, as octet_length() counts them; NULL: 0 */
static int64
text_bytes(Datum value, char null)
{
	return null == 'n' ? 0 : (int64) VARSIZE_ANY_EXHDR(DatumGetPointer(value));
}

/*
 * Readers of API-shaped bodies, shared by the imports (import_order() here,
 * import_shipping() in shipping.c): a value of the wrong JSON type is an
 * error naming its field, with the caller's detail; a rule of WeChat's is
 * never checked here.
 */
void
su_import_type_error(const char *path, const char *expected, json_object *v,
					 const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s must be %s, not %s", path, expected, su_json_type_phrase(v)),
			 errdetail_internal("%s", detail)));
}

/* member of an object; NULL when absent or JSON null */
json_object *
su_import_member(json_object *obj, const char *key)
{
	json_object *v = NULL;

	if (obj == NULL || !json_object_object_get_ex(obj, key, &v))
		return NULL;
	return json_object_get_type(v) == json_type_null ? NULL : v;
}

json_object *
su_import_container(json_object *obj, const char *key, int type,
					const char *path, const char *detail)
{
	json_object *v = su_import_member(obj, key);

	if (v != NULL && (int) json_object_get_type(v) != type)
		su_import_type_error(path, type == json_type_object ? "an object" : "an array",
							 v, detail);
	return v;
}

/* a string member as text; *isnull when absent */
Datum
su_import_text(json_object *obj, const char *key, const char *path,
			   const char *detail, bool *isnull)
{
	json_object *v = su_import_member(obj, key);

	*isnull = (v == NULL);
	if (v == NULL)
		return (Datum) 0;
	if (json_object_get_type(v) != json_type_string)
		su_import_type_error(path, "a string", v, detail);
	return su_text_datum(json_object_get_string(v));
}

/*
 * An integer member (bigint, or integer), or one of its enum aliases
 * (names[i] stands for i + 1).  A fraction is refused as not an integer
 * "within" that type's name.
 */
Datum
su_import_int(json_object *obj, const char *key, const char *path, bool is_int8,
			  const char *const *names, int nnames, const char *within,
			  const char *detail, bool *isnull)
{
	json_object *v = su_import_member(obj, key);
	int64		n;

	*isnull = (v == NULL);
	if (v == NULL)
		return (Datum) 0;
	if (json_object_get_type(v) == json_type_string && nnames > 0)
	{
		const char *s = json_object_get_string(v);

		for (int i = 0; i < nnames; i++)
			if (names[i] != NULL && strcmp(s, names[i]) == 0)
				return Int32GetDatum(i + 1);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("%s must be an integer or one of its names, not \"%s\"",
						path, s)));
	}
	if (json_object_get_type(v) == json_type_double)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("%s must be an integer within %s, not %.15g",
						path, within, json_object_get_double(v)),
				 errdetail("A number is never stored as a different number.")));
	if (json_object_get_type(v) != json_type_int)
		su_import_type_error(path, "an integer", v, detail);
	errno = 0;
	n = json_object_get_int64(v);
	if (errno == ERANGE || (!is_int8 && (n < PG_INT32_MIN || n > PG_INT32_MAX)))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("%s is out of range", path)));
	return is_int8 ? Int64GetDatum(n) : Int32GetDatum((int32) n);
}

#define ORDER_DETAIL "import_order() stores orders that break WeChat's rules, " \
	"but not values of the wrong JSON type."
#define import_type_error(path, expected, v) \
	su_import_type_error(path, expected, v, ORDER_DETAIL)
#define member(obj, key) su_import_member(obj, key)
#define get_container(obj, key, type, path) \
	su_import_container(obj, key, type, path, ORDER_DETAIL)
#define get_text(obj, key, path, isnull) \
	su_import_text(obj, key, path, ORDER_DETAIL, isnull)
#define get_int(obj, key, path, is_int8, names, nnames, isnull) \
	su_import_int(obj, key, path, is_int8, names, nnames, "bigint", ORDER_DETAIL, isnull)

/* link type: "URL", "MINI_PROGRAM" (or anything else, kept) or 1/2 */
static Datum
get_link_type(json_object *link, const char *path, bool *isnull)
{
	json_object *v = member(link, "type");

	*isnull = (v == NULL);
	if (v == NULL)
		return (Datum) 0;
	if (json_object_get_type(v) == json_type_int)
	{
		int64		n = json_object_get_int64(v);

		if (n == 1)
			return su_text_datum("URL");
		if (n == 2)
			return su_text_datum("MINI_PROGRAM");
		return su_text_datum(psprintf(INT64_FORMAT, n));
	}
	if (json_object_get_type(v) != json_type_string)
		import_type_error(path, "a string", v);
	return su_text_datum(json_object_get_string(v));
}

/* fills values/nulls[0..3] from a link object */
static void
get_link(json_object *obj, const char *key, const char *path,
		 Datum *values, char *nulls)
{
	json_object *link = get_container(obj, key, json_type_object, path);
	static const char *const keys[] = {"url", "appid", "path"};
	bool		isnull;

	values[0] = get_link_type(link, psprintf("%s.type", path), &isnull);
	nulls[0] = isnull ? 'n' : ' ';
	for (int i = 0; i < 3; i++)
	{
		values[i + 1] = get_text(link, keys[i],
								 psprintf("%s.%s", path, keys[i]), &isnull);
		nulls[i + 1] = isnull ? 'n' : ' ';
	}
}

static Datum
get_text_array(json_object *obj, const char *key, const char *path,
			   bool *isnull)
{
	json_object *arr = get_container(obj, key, json_type_array, path);
	size_t		n;
	Datum	   *elems;

	*isnull = (arr == NULL);
	if (arr == NULL)
		return (Datum) 0;
	n = json_object_array_length(arr);
	elems = palloc(sizeof(Datum) * (n + 1));
	for (size_t i = 0; i < n; i++)
	{
		json_object *e = json_object_array_get_idx(arr, i);

		if (e == NULL || json_object_get_type(e) != json_type_string)
			import_type_error(psprintf("%s[%zu]", path, i), "a string", e);
		elems[i] = su_text_datum(json_object_get_string(e));
	}
	return su_array(elems, NULL, (int) n, TEXTOID);
}

static void
import_items(json_object *sub, const char *path, int64 order_id, int sub_no)
{
	Oid			types[13] = {INT8OID, INT4OID, INT4OID, TEXTOID, TEXTOID,
		TEXTOID, INT8OID, INT8OID, TEXTARRAYOID,
	TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	char	   *ipath = psprintf("%s.item_list", path);
	json_object *items = get_container(sub, "item_list", json_type_array, ipath);
	size_t		n = items ? json_object_array_length(items) : 0;

	su_kept_plan(&item_plan,
				 "INSERT INTO " SU_SCHEMA ".items (order_id, sub_order_no, item_no,"
				 " merchant_item_id, name, description, unit_price, quantity,"
				 " image_url, link_type, link_url, link_appid, link_path)"
				 " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
				 13, types, 0);

	for (size_t j = 0; j < n; j++)
	{
		json_object *item = json_object_array_get_idx(items, j);
		char	   *p = psprintf("%s[%zu]", ipath, j);
		Datum		values[13];
		char		nulls[13];
		bool		isnull;

		if (item == NULL || json_object_get_type(item) != json_type_object)
			import_type_error(p, "an object", item);
		memset(nulls, ' ', sizeof(nulls));
		values[0] = Int64GetDatum(order_id);
		values[1] = Int32GetDatum(sub_no);
		values[2] = Int32GetDatum((int) j);
#define TEXT_COL(i, k) \
		values[i] = get_text(item, k, psprintf("%s.%s", p, k), &isnull); \
		nulls[i] = isnull ? 'n' : ' '
		TEXT_COL(3, "merchant_item_id");
		TEXT_COL(4, "name");
		TEXT_COL(5, "description");
#undef TEXT_COL
		values[6] = get_int(item, "unit_price", psprintf("%s.unit_price", p),
							true, NULL, 0, &isnull);
		nulls[6] = isnull ? 'n' : ' ';
		values[7] = get_int(item, "quantity", psprintf("%s.quantity", p),
							true, NULL, 0, &isnull);
		nulls[7] = isnull ? 'n' : ' ';
		values[8] = get_text_array(item, "image_url",
								   psprintf("%s.image_url", p), &isnull);
		nulls[8] = isnull ? 'n' : ' ';
		get_link(item, "item_detail_jump_link",
				 psprintf("%s.item_detail_jump_link", p), &values[9], &nulls[9]);

		if (SPI_execute_plan(item_plan, values, nulls, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not store %s", p);
	}
}

static void
import_sub_orders(json_object *payload, int64 order_id)
{
	Oid			types[7] = {INT8OID, INT4OID, TEXTOID, TEXTOID, TEXTOID,
	TEXTOID, TEXTOID};
	json_object *list = get_container(payload, "order_list", json_type_array,
									  "order_list");
	size_t		n = list ? json_object_array_length(list) : 0;

	su_kept_plan(&sub_plan,
				 "INSERT INTO " SU_SCHEMA ".sub_orders (order_id, sub_order_no,"
				 " merchant_order_no, link_type, link_url, link_appid, link_path)"
				 " VALUES ($1, $2, $3, $4, $5, $6, $7)",
				 7, types, 0);

	for (size_t i = 0; i < n; i++)
	{
		json_object *sub = json_object_array_get_idx(list, i);
		char	   *p = psprintf("order_list[%zu]", i);
		Datum		values[7];
		char		nulls[7];
		bool		isnull;

		if (sub == NULL || json_object_get_type(sub) != json_type_object)
			import_type_error(p, "an object", sub);
		memset(nulls, ' ', sizeof(nulls));
		values[0] = Int64GetDatum(order_id);
		values[1] = Int32GetDatum((int) i);
		values[2] = get_text(sub, "merchant_order_no",
							 psprintf("%s.merchant_order_no", p), &isnull);
		nulls[2] = isnull ? 'n' : ' ';
		get_link(sub, "order_detail_jump_link",
				 psprintf("%s.order_detail_jump_link", p), &values[3], &nulls[3]);
		if (SPI_execute_plan(sub_plan, values, nulls, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not store %s", p);
		import_items(sub, p, order_id, (int) i);
	}
}

int64
su_import_order(json_object *payload, const char *appid)
{
	static const char *const order_types[] = {"MERCHANT_TRADE_NUMBER",
	"WXPAY_TRADE_NUMBER"};
	static const char *const logistics_types[] = {NULL, "LOCATION_BASED_LOGISTICS"};
	Oid			types[7] = {TEXTOID, INT4OID, TEXTOID, TEXTOID, TEXTOID,
	TEXTOID, INT4OID};
	Datum		values[7];
	char		nulls[7];
	bool		isnull;
	json_object *key;
	json_object *payer;
	SPIPlanPtr	plan;
	int64		order_id;
	bool		replaced;

#define ORDER_COLS " (appid, order_number_type, transaction_id, mchid," \
		" out_trade_no, openid, logistics_type)" \
		" VALUES ($1, $2, $3, $4, $5, $6, $7)"
#define ORDER_SET " DO UPDATE SET appid = EXCLUDED.appid," \
		" order_number_type = EXCLUDED.order_number_type," \
		" transaction_id = EXCLUDED.transaction_id, mchid = EXCLUDED.mchid," \
		" out_trade_no = EXCLUDED.out_trade_no, openid = EXCLUDED.openid," \
		" logistics_type = EXCLUDED.logistics_type, updated_at = pg_catalog.now()"
#define ORDER_RETURNING " RETURNING order_id, xmax OPERATOR(pg_catalog.<>) 0"
#define ORDER_UPDATE ORDER_SET ORDER_RETURNING
/* a long key's digests found the row: its parts must be the key's too */
#define SAME_APPID " WHERE COALESCE(o.appid, '')" \
		" OPERATOR(pg_catalog.=) COALESCE(EXCLUDED.appid, '')"

	/*
	 * The columns that the three statements below return: ORDER_UPDATE's
	 * RETURNING for the two upserts, and insert_plan's "RETURNING order_id,
	 * false" in the same order.
	 */
	enum
	{
		Anum_store_order_order_id = 1,
		Anum_store_order_replaced	/* an existing order was updated */
	};

	if (payload == NULL || json_object_get_type(payload) != json_type_object)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the payload must be a JSON object, not %s",
						payload ? su_json_type_phrase(payload) : "null")));

	key = get_container(payload, "order_key", json_type_object, "order_key");
	payer = get_container(payload, "payer", json_type_object, "payer");

	memset(nulls, ' ', sizeof(nulls));
	values[0] = appid ? su_text_datum(appid) : (Datum) 0;
	nulls[0] = appid ? ' ' : 'n';
	values[1] = get_int(key, "order_number_type", "order_key.order_number_type",
						false, order_types, 2, &isnull);
	nulls[1] = isnull ? 'n' : ' ';
	values[2] = get_text(key, "transaction_id", "order_key.transaction_id", &isnull);
	nulls[2] = isnull ? 'n' : ' ';
	values[3] = get_text(key, "mchid", "order_key.mchid", &isnull);
	nulls[3] = isnull ? 'n' : ' ';
	values[4] = get_text(key, "out_trade_no", "order_key.out_trade_no", &isnull);
	nulls[4] = isnull ? 'n' : ' ';
	values[5] = get_text(payer, "openid", "payer.openid", &isnull);
	nulls[5] = isnull ? 'n' : ' ';
	values[6] = get_int(payload, "logistics_type", "logistics_type", false,
						logistics_types, 2, &isnull);
	nulls[6] = isnull ? 'n' : ' ';

	/*
	 * The order key decides whether this replaces a stored order, and its
	 * length which unique index says so (payload.h).
	 */
	if (nulls[1] == ' ' && DatumGetInt32(values[1]) == 1 &&
		nulls[3] == ' ' && nulls[4] == ' ')
	{
		if (text_bytes(values[0], nulls[0]) + text_bytes(values[3], nulls[3]) +
			text_bytes(values[4], nulls[4]) <= SU_KEY_INDEXED_BYTES)
			plan = su_kept_plan(&upsert_merchant_plan,
								"INSERT INTO " SU_SCHEMA ".orders AS o" ORDER_COLS
								" ON CONFLICT ((COALESCE(appid, '')), mchid, out_trade_no)"
								" WHERE order_number_type OPERATOR(pg_catalog.=) 1"
								" AND " SU_MERCHANT_KEY_BYTES SU_KEY_SHORT ORDER_UPDATE,
								7, types, 0);
		else
			plan = su_kept_plan(&upsert_merchant_long_plan,
								"INSERT INTO " SU_SCHEMA ".orders AS o" ORDER_COLS
								" ON CONFLICT ((pg_catalog.md5(COALESCE(appid, ''))),"
								"  (pg_catalog.md5(mchid)), (pg_catalog.md5(out_trade_no)))"
								" WHERE order_number_type OPERATOR(pg_catalog.=) 1"
								" AND " SU_MERCHANT_KEY_BYTES SU_KEY_LONG ORDER_SET SAME_APPID
								" AND o.mchid OPERATOR(pg_catalog.=) EXCLUDED.mchid"
								" AND o.out_trade_no OPERATOR(pg_catalog.=) EXCLUDED.out_trade_no"
								ORDER_RETURNING,
								7, types, 0);
	}
	else if (nulls[1] == ' ' && DatumGetInt32(values[1]) == 2 && nulls[2] == ' ')
	{
		if (text_bytes(values[0], nulls[0]) + text_bytes(values[2], nulls[2])
			<= SU_KEY_INDEXED_BYTES)
			plan = su_kept_plan(&upsert_transaction_plan,
								"INSERT INTO " SU_SCHEMA ".orders AS o" ORDER_COLS
								" ON CONFLICT ((COALESCE(appid, '')), transaction_id)"
								" WHERE order_number_type OPERATOR(pg_catalog.=) 2"
								" AND " SU_TRANSACTION_KEY_BYTES SU_KEY_SHORT ORDER_UPDATE,
								7, types, 0);
		else
			plan = su_kept_plan(&upsert_transaction_long_plan,
								"INSERT INTO " SU_SCHEMA ".orders AS o" ORDER_COLS
								" ON CONFLICT ((pg_catalog.md5(COALESCE(appid, ''))),"
								"  (pg_catalog.md5(transaction_id)))"
								" WHERE order_number_type OPERATOR(pg_catalog.=) 2"
								" AND " SU_TRANSACTION_KEY_BYTES SU_KEY_LONG ORDER_SET SAME_APPID
								" AND o.transaction_id OPERATOR(pg_catalog.=) EXCLUDED.transaction_id"
								ORDER_RETURNING,
								7, types, 0);
	}
	else
		plan = su_kept_plan(&insert_plan,
							"INSERT INTO " SU_SCHEMA ".orders" ORDER_COLS
							" RETURNING order_id, false",
							7, types, 0);

	if (SPI_execute_plan(plan, values, nulls, false, 0) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "could not store the order");
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("the order key's md5 digests are those of another stored order's key"),
				 errdetail("A key of over %d bytes is stored by the md5 digests of its parts; "
						   "two different keys with the same digests cannot both be stored.",
						   SU_KEY_INDEXED_BYTES),
				 errhint("Use another order key.")));
	order_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
										   SPI_tuptable->tupdesc,
										   Anum_store_order_order_id, &isnull));
	replaced = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc,
										  Anum_store_order_replaced, &isnull));

	if (replaced)
	{
		Oid			argtypes[1] = {INT8OID};
		Datum		args[1] = {Int64GetDatum(order_id)};

		su_kept_plan(&clear_plan,
					 "DELETE FROM " SU_SCHEMA ".sub_orders"
					 " WHERE order_id OPERATOR(pg_catalog.=) $1",
					 1, argtypes, 0);
		if (SPI_execute_plan(clear_plan, args, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not replace the sub-orders of order " INT64_FORMAT,
				 order_id);
	}
	import_sub_orders(payload, order_id);
	return order_id;
}
