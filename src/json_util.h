/*-------------------------------------------------------------------------
 *
 * json_util.h
 *		json-c inside PostgreSQL.
 *
 * Files that include json-c must not include utils/builtins.h: json-c's
 * json_object type clashes with PostgreSQL's json_object() prototype.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SU_JSON_UTIL_H
#define SU_JSON_UTIL_H

#include "utils/jsonb.h"

struct json_object;

/*
 * json-c allocates with malloc.  A tracked object is released (put) when
 * the memory context that was current at tracking time is reset or deleted,
 * so an ereport() cannot leak it.  Never put a tracked object by hand.
 */
extern void su_json_track(struct json_object *obj);

/* Compact wire form of a json-c value, palloc'd; non-ASCII kept raw. */
extern char *su_json_text(struct json_object *obj, size_t *len);

/*
 * The json-c document of a jsonb, tracked, built without a round trip
 * through text: any depth, and a number is an integer only when it is one
 * within bigint (else a double), so no number is read as a different one.
 * NULL for a JSON null.
 */
extern struct json_object *su_jsonb_to_json(Jsonb *jb);

/* A text Datum of a C string (utils/builtins.h's is out of reach here). */
extern Datum su_text_datum(const char *s);

/* The jsonb of a json-c document, built without a round trip through text. */
extern Datum su_json_to_jsonb(struct json_object *obj);

#endif							/* SU_JSON_UTIL_H */
