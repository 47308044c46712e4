/*-------------------------------------------------------------------------
 *
 * validate_internal.h
 *		The checks validate.c and validate_shipping.c share: reporting,
 *		JSON paths, strings, objects, arrays, enums, and the rules the calls
 *		of the product have in common (order_key, payer, upload_time).
 *
 * Not a public interface: only the validators include it.  Pure: libc and
 * json-c only.  The shared functions are defined in validate.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SU_VALIDATE_INTERNAL_H
#define SU_VALIDATE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "errcodes.h"
#include "validate.h"

#define PATH_LEN			192 /* longest path is about 100 bytes */
#define MSG_LEN				1024

/* limits shared by the calls */
#define ITEM_ID_MAX			64	/* merchant_item_id: bytes */
#define OPENID_MAX			128 /* payer.openid: bytes */

#if defined(__GNUC__)
#define SU_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define SU_PRINTF(f, a)
#endif

/* One walk of a validator */
typedef struct Ctx
{
	const char *appid;			/* the merchant's appid, or NULL */
	su_violation_cb cb;
	void	   *arg;
	int			count;
	su_stop_cb	stop;			/* asked between list entries; NULL: never */
	void	   *stop_arg;
	bool		stopped;
	int			param;			/* errcode of a malformed value (a wrong type,
								 * too long, too many): 0 is 268435461, the
								 * /user-order calls'; 47001 for /wxa/sec/order */
} Ctx;

/* the errcode of a malformed value for the API being checked */
static inline int
su_v_param(const Ctx *c)
{
	return c->param != 0 ? c->param : WX_ERR_PARAM;
}

typedef enum LenUnit
{
	BYTES,
	CHARS						/* Unicode code points */
} LenUnit;

/* What a string value must be */
typedef struct StrRule
{
	int			required;		/* errcode when missing or empty; 0: optional */
	const char *when;			/* the condition that made it required, or "" */
	size_t		max;			/* longest allowed, in unit */
	LenUnit		unit;
	int			too_long;		/* errcode when too long; 0: su_v_param() */
} StrRule;

typedef struct StrVal
{
	const char *s;
	size_t		len;			/* bytes; json-c strings may hold a NUL */
} StrVal;

typedef enum StrState
{
	STR_ABSENT,					/* missing or JSON null */
	STR_EMPTY,
	STR_BAD,					/* wrong type or too long: reported */
	STR_OK
} StrState;

typedef struct EnumAlias
{
	const char *name;
	int			value;
} EnumAlias;

typedef struct EnumDef
{
	int64_t		lo;				/* integers accepted */
	int64_t		hi;
	EnumAlias	aliases[3];		/* names accepted; ends with a NULL name */
	int			errcode;		/* missing, or not one of the above */
	int			wrong_type;		/* errcode for neither integer nor string */
	const char *expected;		/* the accepted values, for messages */
} EnumDef;

/* between two list entries: should the walk end here? */
extern bool su_v_stopping(Ctx *c);

/* One violation; the message is "<field> <fmt...>" ("the payload" for "") */
extern void su_v_report(Ctx *c, int errcode, const char *field,
						const char *fmt,...) SU_PRINTF(4, 5);

/* dst = parent.key, dst = parent[i]; cut to PATH_LEN */
extern void su_v_path_key(char *dst, const char *parent, const char *key);
extern void su_v_path_index(char *dst, const char *parent, size_t i);

/* A member of an object; NULL when missing or JSON null */
extern struct json_object *su_v_member(struct json_object *obj, const char *key);

/* A value for "got ...": integers and short strings as such, else a type */
extern const char *su_v_describe_value(struct json_object *v, char *buf,
									   size_t size);

/* v (NULL: reported as null) must be a string obeying rule */
extern StrState su_v_check_string_value(Ctx *c, struct json_object *v,
										const char *path, const StrRule *rule,
										StrVal *out);

/* parent.key (at path) must be a string obeying rule */
extern StrState su_v_check_string(Ctx *c, struct json_object *parent,
								  const char *key, const char *path,
								  const StrRule *rule, StrVal *out);

/* v must be an object (reported if not) */
extern bool su_v_is_object(Ctx *c, struct json_object *v, const char *path);

/* v must be an object; missing (NULL) is reported as errcode missing */
extern struct json_object *su_v_check_object(Ctx *c, struct json_object *v,
											 const char *path, int missing);

/*
 * parent.key must be a non-empty array of at most max (0: any) entries.
 * Returns it unless missing, empty or not an array.
 */
extern struct json_object *su_v_check_array(Ctx *c, struct json_object *parent,
											const char *key, const char *path,
											int missing, size_t max);

/*
 * An enum read with its aliases.  Returns its value; 0 when missing
 * (reported if required) or invalid (reported).
 */
extern int	su_v_check_enum(Ctx *c, struct json_object *v, const char *path,
							const EnumDef *def, bool required);

/* The rules every call of the product shares (uploadShoppingInfo.md) */
extern bool su_v_contact_ok(const StrVal *v);

extern void su_v_check_order_key(Ctx *c, struct json_object *payload);
extern void su_v_check_payer(Ctx *c, struct json_object *payload);
extern void su_v_check_upload_time(Ctx *c, struct json_object *payload);

#endif							/* SU_VALIDATE_INTERNAL_H */
