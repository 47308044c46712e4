/*-------------------------------------------------------------------------
 *
 * json_util.c
 *		json-c inside PostgreSQL: tracked objects, parsing with ereport,
 *		wire text, jsonb without a round trip through text.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <json-c/json.h>

#include "miscadmin.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "json_util.h"


static void
su_json_put_callback(void *arg)
{
	json_object_put((json_object *) arg);
}

void
su_json_track(json_object *obj)
{
	MemoryContextCallback *cb;

	if (obj == NULL)
		return;
	cb = MemoryContextAlloc(CurrentMemoryContext, sizeof(MemoryContextCallback));
	cb->func = su_json_put_callback;
	cb->arg = obj;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, cb);
}

char *
su_json_text(json_object *obj, size_t *len)
{
	size_t		n;
	const char *s;

	s = json_object_to_json_string_length(obj,
										  JSON_C_TO_STRING_PLAIN |
										  JSON_C_TO_STRING_NOSLASHESCAPE,
										  &n);
	if (len)
		*len = n;
	return pnstrdup(s, n);
}

/* utils/builtins.h (fmgrprotos.h) cannot be included next to json-c */
extern Datum float8_numeric(PG_FUNCTION_ARGS);
extern Datum jsonb_in(PG_FUNCTION_ARGS);

static JsonbValue *
push_json(JsonbParseState **state, json_object *v, JsonbIteratorToken token)
{
	JsonbValue	jv;

	switch (json_object_get_type(v))
	{
		case json_type_object:
			pushJsonbValue(state, WJB_BEGIN_OBJECT, NULL);
			{
				json_object_iter it;

				json_object_object_foreachC(v, it)
				{
					jv.type = jbvString;
					jv.val.string.val = it.key;
					jv.val.string.len = strlen(it.key);
					pushJsonbValue(state, WJB_KEY, &jv);
					push_json(state, it.val, WJB_VALUE);
				}
			}
			return pushJsonbValue(state, WJB_END_OBJECT, NULL);
		case json_type_array:
			pushJsonbValue(state, WJB_BEGIN_ARRAY, NULL);
			for (size_t i = 0; i < json_object_array_length(v); i++)
				push_json(state, json_object_array_get_idx(v, i), WJB_ELEM);
			return pushJsonbValue(state, WJB_END_ARRAY, NULL);
		case json_type_string:
			jv.type = jbvString;
			jv.val.string.val = (char *) json_object_get_string(v);
			jv.val.string.len = json_object_get_string_len(v);
			break;
		case json_type_int:
			jv.type = jbvNumeric;
			jv.val.numeric = int64_to_numeric(json_object_get_int64(v));
			break;
		case json_type_double:
			jv.type = jbvNumeric;
			jv.val.numeric = DatumGetNumeric(DirectFunctionCall1(float8_numeric,
																 Float8GetDatum(json_object_get_double(v))));
			break;
		case json_type_boolean:
			jv.type = jbvBool;
			jv.val.boolean = json_object_get_boolean(v);
			break;
		default:
			jv.type = jbvNull;
			break;
	}
	return pushJsonbValue(state, token, &jv);
}

Datum
su_json_to_jsonb(json_object *obj)
{
	JsonbParseState *state = NULL;

	/* a document is an object or an array; anything else goes through text */
	if (!json_object_is_type(obj, json_type_object) &&
		!json_object_is_type(obj, json_type_array))
		return DirectFunctionCall1(jsonb_in,
								   CStringGetDatum(su_json_text(obj, NULL)));
	return PointerGetDatum(JsonbValueToJsonb(push_json(&state, obj, WJB_DONE)));
}

/* utils/builtins.h (fmgrprotos.h) cannot be included next to json-c */
extern Datum numeric_scale(PG_FUNCTION_ARGS);
extern Datum numeric_int8(PG_FUNCTION_ARGS);
extern Datum numeric_cmp(PG_FUNCTION_ARGS);
extern Datum numeric_out(PG_FUNCTION_ARGS);

/*
 * A JSON number as json-c holds it: an integer when it is one within
 * bigint, else a double (inexact, or infinite): never a different integer.
 */
static json_object *
number_to_json(Numeric n)
{
	static Numeric lo = NULL;
	static Numeric hi = NULL;
	char	   *text;
	double		d;

	if (lo == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		lo = int64_to_numeric(PG_INT64_MIN);
		hi = int64_to_numeric(PG_INT64_MAX);
		MemoryContextSwitchTo(old);
	}
	if (DatumGetInt32(DirectFunctionCall1(numeric_scale, NumericGetDatum(n))) == 0 &&
		DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(n),
										  NumericGetDatum(lo))) >= 0 &&
		DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(n),
										  NumericGetDatum(hi))) <= 0)
		return json_object_new_int64(DatumGetInt64(DirectFunctionCall1(numeric_int8,
																		NumericGetDatum(n))));
	text = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(n)));
	d = strtod(text, NULL);		/* +-HUGE_VAL beyond double's range */
	pfree(text);
	return json_object_new_double(d);
}

json_object *
su_jsonb_to_json(Jsonb *jb)
{
	JsonbIterator *it = JsonbIteratorInit(&jb->root);
	JsonbValue	v;
	JsonbIteratorToken tok;
	json_object **stack = palloc(sizeof(json_object *) * 16);
	int			cap = 16;
	int			depth = 0;
	json_object *root = NULL;
	char	   *key = NULL;
	long		n = 0;

	while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE)
	{
		json_object *node = NULL;

		if ((++n & 1023) == 0)
			CHECK_FOR_INTERRUPTS();
		switch (tok)
		{
			case WJB_BEGIN_OBJECT:
				node = json_object_new_object();
				break;
			case WJB_BEGIN_ARRAY:
				if (v.val.array.rawScalar)
					continue;	/* its one element is the document */
				node = json_object_new_array();
				break;
			case WJB_END_OBJECT:
			case WJB_END_ARRAY:
				if (depth > 0)
					depth--;
				continue;
			case WJB_KEY:
				key = pnstrdup(v.val.string.val, v.val.string.len);
				continue;
			case WJB_VALUE:
			case WJB_ELEM:
				switch (v.type)
				{
					case jbvString:
						node = json_object_new_string_len(v.val.string.val,
														  v.val.string.len);
						break;
					case jbvNumeric:
						node = number_to_json(v.val.numeric);
						break;
					case jbvBool:
						node = json_object_new_boolean(v.val.boolean);
						break;
					default:
						node = NULL;	/* JSON null */
						break;
				}
				break;
			default:
				continue;
		}

		/* attach the new node where it belongs; the tracked root owns it */
		if (depth == 0)
		{
			/* the document: an object, an array, or a raw scalar */
			root = node;
			su_json_track(root);
		}
		else if (json_object_is_type(stack[depth - 1], json_type_object))
			json_object_object_add(stack[depth - 1], key, node);
		else
			json_object_array_add(stack[depth - 1], node);

		if (tok == WJB_BEGIN_OBJECT || tok == WJB_BEGIN_ARRAY)
		{
			if (depth == cap)
			{
				cap *= 2;
				stack = repalloc(stack, sizeof(json_object *) * cap);
			}
			stack[depth++] = node;
		}
	}
	pfree(stack);
	return root;
}

/* A text Datum of a C string. */
Datum
su_text_datum(const char *s)
{
	size_t		len = strlen(s);
	text	   *t = palloc(len + VARHDRSZ);

	SET_VARSIZE(t, len + VARHDRSZ);
	memcpy(VARDATA(t), s, len);
	return PointerGetDatum(t);
}

