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

json_object *
su_json_parse(const char *text, size_t len)
{
	json_tokener *tok = json_tokener_new();
	json_object *obj;
	enum json_tokener_error jerr;

	if (tok == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	/* with the terminating NUL, so that a bare number at the end parses */
	obj = json_tokener_parse_ex(tok, text, (int) len + 1);
	jerr = json_tokener_get_error(tok);
	if (obj != NULL && jerr == json_tokener_success &&
		json_tokener_get_parse_end(tok) < len)
		jerr = json_tokener_error_parse_unexpected;
	json_tokener_free(tok);
	if (jerr != json_tokener_success)
	{
		json_object_put(obj);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid JSON: %s", json_tokener_error_desc(jerr))));
	}
	su_json_track(obj);
	return obj;
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

